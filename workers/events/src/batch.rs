//! Group commit: the runtime hands the stage one message at a time (up to
//! its prefetch at once); each waits here until the batch it joined is
//! written, then its handler returns and the runtime acks it. So no message
//! is acked before the store committed it, and a burst of events costs one
//! write per `max_batch` events instead of one per event.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cpo_shared::model::EventMessage;
use tokio::sync::{mpsc, oneshot};

use crate::error::EventsError;
use crate::writer::EventWriter;

struct Job {
    event: EventMessage,
    done: oneshot::Sender<Result<(), EventsError>>,
}

pub(crate) struct Batcher {
    writer: Arc<EventWriter>,
    max_batch: usize,
    flush_interval: Duration,
    /// Started on first use, inside the runtime that handles messages.
    jobs: OnceLock<mpsc::Sender<Job>>,
}

impl Batcher {
    pub(crate) fn new(
        writer: Arc<EventWriter>,
        max_batch: usize,
        flush_interval: Duration,
    ) -> Self {
        Self {
            writer,
            max_batch: max_batch.max(1),
            flush_interval,
            jobs: OnceLock::new(),
        }
    }

    /// Write `event` with the others that arrive within the flush interval;
    /// returns once its batch is committed (or failed).
    pub(crate) async fn submit(&self, event: EventMessage) -> Result<(), EventsError> {
        let (done, outcome) = oneshot::channel();
        let jobs = self.jobs.get_or_init(|| self.start());
        let lost = || EventsError::Unavailable {
            op: "batch",
            reason: "the batch writer stopped".into(),
        };
        jobs.send(Job { event, done }).await.map_err(|_| lost())?;
        outcome.await.map_err(|_| lost())?
    }

    fn start(&self) -> mpsc::Sender<Job> {
        // Room for a whole batch more while one is written.
        let (tx, rx) = mpsc::channel(self.max_batch * 2);
        tokio::spawn(run(
            self.writer.clone(),
            rx,
            self.max_batch,
            self.flush_interval,
        ));
        tx
    }
}

/// Until every sender is gone (the stage dropped): take the first job, wait
/// up to the flush interval for more, write them, answer each.
async fn run(
    writer: Arc<EventWriter>,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
    flush_interval: Duration,
) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        let deadline = tokio::time::Instant::now() + flush_interval;
        while jobs.len() < max_batch {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(job)) => jobs.push(job),
                Ok(None) | Err(_) => break,
            }
        }
        let events: Vec<&EventMessage> = jobs.iter().map(|j| &j.event).collect();
        let outcomes = writer.write(&events).await;
        for (job, outcome) in jobs.into_iter().zip(outcomes) {
            // A handler that went away has nothing to ack; its message comes again.
            let _ = job.done.send(outcome);
        }
    }
}
