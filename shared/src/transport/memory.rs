//! In-memory transport with the semantics of the AMQP one: confirmed publish,
//! bounded queues (backpressure), prefetch, ack/reject, redelivery of anything
//! left unacked (a dropped delivery counts as a crashed consumer), and delayed
//! publishes for retries. It also knows when no work is left, which is how the
//! embedded mode (`cpo run`) decides that a campaign is finished.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::{Acker, Delivery, Publish, Subscription, Transport, TransportError};
use crate::queues;

struct Stored {
    body: Vec<u8>,
    redelivered: bool,
    /// Whether this message took a capacity slot (delayed and requeued ones bypass the bound).
    holds_slot: bool,
}

struct MemQueue {
    ready: Mutex<VecDeque<Stored>>,
    available: Notify,
    /// Free slots; `None` for unbounded queues.
    space: Option<Arc<Semaphore>>,
    /// Counts toward the transport's idle detection.
    is_work: bool,
}

impl MemQueue {
    fn push(&self, stored: Stored, front: bool) {
        let mut ready = lock(&self.ready);
        if front {
            ready.push_front(stored);
        } else {
            ready.push_back(stored);
        }
        drop(ready);
        self.available.notify_one();
    }

    fn pop(&self) -> Option<Stored> {
        let stored = lock(&self.ready).pop_front()?;
        if stored.holds_slot
            && let Some(space) = &self.space
        {
            space.add_permits(1);
        }
        Some(stored)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the deque half-updated, so poison is harmless.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Shared {
    queues: Mutex<HashMap<String, Arc<MemQueue>>>,
    capacity: usize,
    /// Messages on work queues that are ready, delayed or unacked.
    outstanding: AtomicI64,
    idle: Notify,
}

impl Shared {
    fn queue(&self, name: &str) -> Arc<MemQueue> {
        let mut queues = lock(&self.queues);
        queues
            .entry(name.to_string())
            .or_insert_with(|| {
                let is_sink = queues::SINK_QUEUES.contains(&name);
                Arc::new(MemQueue {
                    ready: Mutex::new(VecDeque::new()),
                    available: Notify::new(),
                    space: (!is_sink).then(|| Arc::new(Semaphore::new(self.capacity))),
                    is_work: !is_sink,
                })
            })
            .clone()
    }

    fn settle(&self, queue: &MemQueue) {
        if queue.is_work && self.outstanding.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }
}

/// The embedded transport. Cheap to clone; clones share the queues.
#[derive(Clone)]
pub struct MemoryTransport {
    shared: Arc<Shared>,
}

impl MemoryTransport {
    /// `capacity` bounds every work queue so a fast producer waits for its consumer.
    pub fn new(capacity: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                queues: Mutex::new(HashMap::new()),
                capacity: capacity.max(1),
                outstanding: AtomicI64::new(0),
                idle: Notify::new(),
            }),
        }
    }

    /// Wait until no work queue holds a ready, delayed or unacked message.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.shared.idle.notified();
            if self.shared.outstanding.load(Ordering::Acquire) <= 0 {
                return;
            }
            notified.await;
        }
    }

    /// Messages on work queues not yet acked.
    pub fn outstanding(&self) -> i64 {
        self.shared.outstanding.load(Ordering::Acquire)
    }

    /// Remove and return every ready message of a queue (used for sinks at the end of a run).
    pub fn drain(&self, queue: &str) -> Vec<Vec<u8>> {
        let q = self.shared.queue(queue);
        let mut out = Vec::new();
        while let Some(stored) = q.pop() {
            self.shared.settle(&q);
            out.push(stored.body);
        }
        out
    }

    /// Copies of the ready messages of a queue, oldest first.
    pub fn peek(&self, queue: &str) -> Vec<Vec<u8>> {
        let q = self.shared.queue(queue);
        let ready = lock(&q.ready);
        ready.iter().map(|s| s.body.clone()).collect()
    }
}

#[async_trait]
impl Transport for MemoryTransport {
    async fn publish(&self, queue: &str, message: Publish) -> Result<(), TransportError> {
        let q = self.shared.queue(queue);
        // Counted once stored (after any wait for space), so a cancelled publish leaves no trace.
        let count = || {
            if q.is_work {
                self.shared.outstanding.fetch_add(1, Ordering::AcqRel);
            }
        };
        match message.delay {
            Some(delay) if !delay.is_zero() => {
                // Like a delay-tier queue: the message is stored now and becomes ready later.
                let body = message.body;
                count();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    q.push(
                        Stored {
                            body,
                            redelivered: false,
                            holds_slot: false,
                        },
                        false,
                    );
                });
            }
            _ => {
                let holds_slot = match &q.space {
                    Some(space) => {
                        let permit = space.acquire().await.map_err(|_| TransportError::Closed)?;
                        permit.forget();
                        true
                    }
                    None => false,
                };
                count();
                q.push(
                    Stored {
                        body: message.body,
                        redelivered: false,
                        holds_slot,
                    },
                    false,
                );
            }
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        queue: &str,
        prefetch: u16,
    ) -> Result<Box<dyn Subscription>, TransportError> {
        Ok(Box::new(MemSubscription {
            shared: self.shared.clone(),
            queue: self.shared.queue(queue),
            prefetch: Arc::new(Semaphore::new(usize::from(prefetch.max(1)))),
        }))
    }
}

struct MemSubscription {
    shared: Arc<Shared>,
    queue: Arc<MemQueue>,
    prefetch: Arc<Semaphore>,
}

#[async_trait]
impl Subscription for MemSubscription {
    async fn next(&mut self) -> Option<Result<Delivery, TransportError>> {
        let permit = self.prefetch.clone().acquire_owned().await.ok()?;
        loop {
            let notified = self.queue.available.notified();
            if let Some(stored) = self.queue.pop() {
                return Some(Ok(Delivery {
                    body: stored.body.clone(),
                    redelivered: stored.redelivered,
                    acker: Box::new(MemAcker {
                        shared: self.shared.clone(),
                        queue: self.queue.clone(),
                        body: Some(stored.body),
                        _permit: permit,
                    }),
                }));
            }
            notified.await;
        }
    }
}

struct MemAcker {
    shared: Arc<Shared>,
    queue: Arc<MemQueue>,
    /// The message, kept until settled so a dropped delivery can be redelivered.
    body: Option<Vec<u8>>,
    _permit: OwnedSemaphorePermit,
}

#[async_trait]
impl Acker for MemAcker {
    async fn ack(mut self: Box<Self>) -> Result<(), TransportError> {
        if self.body.take().is_some() {
            self.shared.settle(&self.queue);
        }
        Ok(())
    }

    async fn reject(mut self: Box<Self>, requeue: bool) -> Result<(), TransportError> {
        if let Some(body) = self.body.take() {
            if requeue {
                self.queue.push(
                    Stored {
                        body,
                        redelivered: true,
                        holds_slot: false,
                    },
                    true,
                );
            } else {
                self.shared.settle(&self.queue);
            }
        }
        Ok(())
    }
}

impl Drop for MemAcker {
    fn drop(&mut self) {
        // Never acked nor rejected: the consumer died with it, so the broker redelivers.
        if let Some(body) = self.body.take() {
            self.queue.push(
                Stored {
                    body,
                    redelivered: true,
                    holds_slot: false,
                },
                true,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn msg(body: &str) -> Publish {
        Publish {
            id: body.into(),
            body: body.as_bytes().to_vec(),
            delay: None,
        }
    }

    #[tokio::test]
    async fn unacked_delivery_is_redelivered_and_idle_waits_for_ack() {
        let t = MemoryTransport::new(4);
        t.publish("segments", msg("a")).await.unwrap();
        let mut sub = t.subscribe("segments", 1).await.unwrap();
        let first = sub.next().await.unwrap().unwrap();
        assert!(!first.redelivered);
        drop(first); // consumer "crashes"
        assert_eq!(t.outstanding(), 1);
        let again = sub.next().await.unwrap().unwrap();
        assert!(again.redelivered);
        assert_eq!(again.body, b"a");
        again.acker.ack().await.unwrap();
        tokio::time::timeout(Duration::from_secs(1), t.wait_idle())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn bounded_queue_applies_backpressure() {
        let t = MemoryTransport::new(1);
        t.publish("audience", msg("1")).await.unwrap();
        let blocked =
            tokio::time::timeout(Duration::from_millis(50), t.publish("audience", msg("2"))).await;
        assert!(blocked.is_err(), "second publish must wait for space");
        // sinks are never bounded
        for i in 0..10 {
            t.publish(crate::queues::DEAD_LETTER, msg(&i.to_string()))
                .await
                .unwrap();
        }
        assert_eq!(t.peek(crate::queues::DEAD_LETTER).len(), 10);
        assert_eq!(t.outstanding(), 1, "sinks do not count as work");
    }

    #[tokio::test]
    async fn delayed_publish_arrives_later() {
        let t = MemoryTransport::new(4);
        let mut p = msg("late");
        p.delay = Some(Duration::from_millis(30));
        t.publish("send", p).await.unwrap();
        assert!(t.peek("send").is_empty());
        assert_eq!(t.outstanding(), 1);
        let mut sub = t.subscribe("send", 1).await.unwrap();
        let d = tokio::time::timeout(Duration::from_secs(1), sub.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(d.body, b"late");
    }
}
