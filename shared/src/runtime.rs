//! The stage runtime: consume, decode, dispatch, publish, ack, retry, dead-letter.
//!
//! Ordering is what makes it safe: outputs are published (and confirmed by the
//! transport) before the input is acked, so a crash at any instant leaves either
//! the input unacked (redelivered; consumers are idempotent) or the outputs
//! stored. Retries are new publishes with a higher attempt count and a delay,
//! never a requeue loop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span, warn};

use crate::cache::Cache;
use crate::dead_letter::DeadLetterKind;
use crate::envelope::{EnvelopeHeader, SCHEMA_VERSION, now_ms};
use crate::log_field::bounded;
use crate::metrics::metrics;
use crate::progress::ProgressStore;
use crate::stage::{Emitter, Outgoing, Stage, StageError};
use crate::transport::{Delivery, Publish, Transport, TransportError};

mod config;

pub use config::RuntimeConfig;

/// Runs stages on a transport until the shutdown token fires.
#[derive(Clone)]
pub struct Runtime {
    transport: Arc<dyn Transport>,
    config: RuntimeConfig,
    shutdown: CancellationToken,
    progress: Option<Arc<ProgressStore>>,
}

enum Settle {
    Ack,
}

impl Runtime {
    pub fn new(
        transport: Arc<dyn Transport>,
        config: RuntimeConfig,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            transport,
            config,
            shutdown,
            progress: None,
        }
    }

    /// Record campaign progress (`Emitter::count`, dead letters) in `cache`,
    /// kept for `progress_ttl_s` after a campaign's last update.
    pub fn with_progress(mut self, cache: Arc<dyn Cache>) -> Self {
        let ttl = Duration::from_secs(self.config.progress_ttl_s);
        self.progress = Some(Arc::new(ProgressStore::new(cache, ttl)));
        self
    }

    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// Consume the stage's inputs until shutdown; in-flight messages finish first.
    pub async fn run<S: Stage>(&self, stage: Arc<S>) -> Result<(), TransportError> {
        // Before the first message, so alerts on increase() see a first burst rise from 0.
        metrics().preset_stage(stage.name());
        stage.preset_metrics();
        let mut consumers = JoinSet::new();
        for &queue in stage.inputs() {
            let subscription = self
                .transport
                .subscribe(queue, self.config.concurrency)
                .await?;
            let runtime = self.clone();
            let stage = stage.clone();
            consumers.spawn(async move { runtime.consume(stage, queue, subscription).await });
        }
        while let Some(joined) = consumers.join_next().await {
            if let Ok(Err(e)) = joined {
                self.shutdown.cancel();
                return Err(e);
            }
        }
        Ok(())
    }

    async fn consume<S: Stage>(
        &self,
        stage: Arc<S>,
        queue: &'static str,
        mut subscription: Box<dyn crate::transport::Subscription>,
    ) -> Result<(), TransportError> {
        let mut in_flight = JoinSet::new();
        loop {
            let next = tokio::select! {
                // Stop taking new work; what is in flight finishes below.
                _ = self.shutdown.cancelled() => break,
                next = subscription.next() => next,
            };
            let delivery = match next {
                Some(Ok(delivery)) => delivery,
                Some(Err(e)) => return Err(e),
                None => break,
            };
            let runtime = self.clone();
            let handler = stage.clone();
            in_flight.spawn(async move { runtime.process(&*handler, queue, delivery).await });
            // The subscription's prefetch bounds concurrency; reap finished tasks as we go.
            while let Some(done) = in_flight.try_join_next() {
                if let Ok(Err(e)) = done {
                    warn!(stage = stage.name(), error = %e, "settling a message failed");
                }
            }
        }
        while in_flight.join_next().await.is_some() {}
        Ok(())
    }

    async fn process<S: Stage>(
        &self,
        stage: &S,
        queue: &'static str,
        delivery: Delivery,
    ) -> Result<(), TransportError> {
        let name = stage.name();
        let m = metrics();
        m.received.with_label_values(&[name]).inc();
        let started = Instant::now();
        let settle = self.dispatch(stage, queue, &delivery.body).await;
        m.handle_seconds
            .with_label_values(&[name])
            .observe(started.elapsed().as_secs_f64());
        match settle {
            Ok(Settle::Ack) => delivery.acker.ack().await,
            Err(e) => {
                // Could not store what the message produced: hand it back so nothing is lost.
                warn!(stage = name, error = %e, "publish failed, requeueing input");
                delivery.acker.reject(true).await
            }
        }
    }

    async fn dispatch<S: Stage>(
        &self,
        stage: &S,
        queue: &'static str,
        body: &[u8],
    ) -> Result<Settle, TransportError> {
        let name = stage.name();
        let dl = |kind, reason: String, attempts| DeadLetterDraft {
            kind,
            reason,
            reasons: Vec::new(),
            attempts,
        };
        let emitter =
            Emitter::new(self.transport.clone(), name, queue).with_progress(self.progress.clone());
        if body.len() > self.config.max_message_bytes {
            let reason = format!(
                "message of {} bytes exceeds the limit of {}",
                body.len(),
                self.config.max_message_bytes
            );
            self.dead_letter(&emitter, body, dl(DeadLetterKind::Oversized, reason, 1))
                .await?;
            return Ok(Settle::Ack);
        }
        // Decode first: a well-formed message is then parsed once. Only when that
        // fails (or names another version) is the header read, to tell which
        // reason applies, so the reasons are those of checking the header first.
        let envelope = match stage.decode(queue, body) {
            Ok(envelope) if envelope.version == SCHEMA_VERSION => envelope,
            decoded => {
                let (kind, reason, attempts) = rejection(queue, body, decoded.err());
                self.dead_letter(&emitter, body, dl(kind, reason, attempts))
                    .await?;
                return Ok(Settle::Ack);
            }
        };
        let attempt = envelope.attempt;
        let id = envelope.id.clone();
        let first_seen_ms = envelope.first_seen_ms;
        let paused_ms = envelope.paused_ms;
        let campaign = envelope.campaign_id.clone();
        let span = info_span!("handle", stage = name, msg_id = %bounded(&envelope.id), campaign = %bounded(&envelope.campaign_id), attempt);
        let handling = Instant::now();
        let outcome = stage.handle(envelope, &emitter).instrument(span).await;
        let m = metrics();
        match outcome {
            Ok(outputs) => {
                self.publish_all(outputs).await?;
                self.record_progress(&emitter, &campaign, name, &id).await;
                m.succeeded.with_label_values(&[name]).inc();
                Ok(Settle::Ack)
            }
            Err(StageError::Transient(reason)) => {
                let next_attempt = attempt + 1;
                if next_attempt >= self.config.max_attempts {
                    let reason = format!("gave up after {next_attempt} attempts: {reason}");
                    self.dead_letter(
                        &emitter,
                        body,
                        dl(DeadLetterKind::Exhausted, reason, next_attempt),
                    )
                    .await?;
                } else {
                    let delay = self.config.retry_delay(next_attempt);
                    debug!(stage = name, attempt = next_attempt, delay_ms = delay.as_millis() as u64, reason = %bounded(&reason), "retrying");
                    self.republish(
                        queue,
                        body,
                        &id,
                        Some(("attempt", next_attempt.into())),
                        delay,
                    )
                    .await?;
                    m.retried.with_label_values(&[name]).inc();
                }
                Ok(Settle::Ack)
            }
            Err(StageError::Permanent(reason)) => {
                self.dead_letter(
                    &emitter,
                    body,
                    dl(DeadLetterKind::Permanent, reason, attempt + 1),
                )
                .await?;
                Ok(Settle::Ack)
            }
            Err(StageError::Blocked { reasons, notify }) => {
                self.publish_all(notify).await?;
                let mut draft = dl(
                    DeadLetterKind::Blocked,
                    format!("blocked by safety: {}", reasons.join("; ")),
                    attempt + 1,
                );
                draft.reasons = reasons;
                self.dead_letter(&emitter, body, draft).await?;
                self.record_progress(&emitter, &campaign, name, &id).await;
                m.succeeded.with_label_values(&[name]).inc();
                Ok(Settle::Ack)
            }
            Err(StageError::Defer { reason, after }) => {
                // Time spent waiting out an outage is not time waiting for the join.
                let waited = now_ms()
                    .saturating_sub(first_seen_ms)
                    .saturating_sub(paused_ms);
                if waited > self.config.defer_timeout_ms {
                    let reason =
                        format!("waited {waited} ms, longer than the join timeout: {reason}");
                    self.dead_letter(
                        &emitter,
                        body,
                        dl(DeadLetterKind::Timeout, reason, attempt + 1),
                    )
                    .await?;
                } else {
                    self.republish(queue, body, &id, None, after).await?;
                    m.deferred.with_label_values(&[name]).inc();
                }
                Ok(Settle::Ack)
            }
            Err(StageError::Unavailable(reason)) => {
                if paused_ms >= self.config.outage_timeout_ms {
                    let reason = format!(
                        "waited {paused_ms} ms for a dependency, longer than the outage timeout: {reason}"
                    );
                    self.dead_letter(
                        &emitter,
                        body,
                        dl(DeadLetterKind::Exhausted, reason, attempt + 1),
                    )
                    .await?;
                } else {
                    let after = self.config.outage_delay(paused_ms);
                    warn!(stage = name, msg_id = %bounded(&id), paused_ms, retry_in_ms = after.as_millis() as u64, reason = %bounded(&reason), "dependency unavailable, message waits");
                    // The attempt that met the outage (a backend timeout, say) waited too.
                    let waited = handling.elapsed() + after;
                    let paused = paused_ms.saturating_add(waited.as_millis() as u64);
                    self.republish(queue, body, &id, Some(("paused_ms", paused.into())), after)
                        .await?;
                    m.paused.with_label_values(&[name]).inc();
                }
                Ok(Settle::Ack)
            }
        }
    }

    /// Record what the stage counted for this message (once per message id).
    async fn record_progress(&self, emitter: &Emitter, campaign: &str, stage: &str, id: &str) {
        let Some(store) = &self.progress else {
            return;
        };
        let mut update = emitter.take_counts();
        if update.is_empty() {
            return;
        }
        let now = i64::try_from(now_ms()).unwrap_or(i64::MAX);
        update.max.push((crate::progress::UPDATED_MS.into(), now));
        store.record(campaign, stage, id, &update).await;
    }

    async fn publish_all(&self, outputs: Vec<Outgoing>) -> Result<(), TransportError> {
        for out in outputs {
            self.transport
                .publish(
                    out.queue,
                    Publish {
                        id: out.id,
                        body: out.body,
                        delay: None,
                    },
                )
                .await?;
        }
        Ok(())
    }

    /// Publish the same message again, later, optionally with one envelope
    /// field changed (the attempt count, the time paused).
    async fn republish(
        &self,
        queue: &str,
        body: &[u8],
        id: &str,
        change: Option<(&str, serde_json::Value)>,
        delay: Duration,
    ) -> Result<(), TransportError> {
        let body = match change {
            // A deferred message goes back unchanged: no need to re-encode a large batch.
            None => body.to_vec(),
            Some((field, new)) => {
                let mut value: serde_json::Value = serde_json::from_slice(body)
                    .map_err(|e| TransportError::Broker(format!("re-encode: {e}")))?;
                if let Some(obj) = value.as_object_mut() {
                    obj.insert(field.into(), new);
                }
                serde_json::to_vec(&value)
                    .map_err(|e| TransportError::Broker(format!("re-encode: {e}")))?
            }
        };
        self.transport
            .publish(
                queue,
                Publish {
                    id: id.to_string(),
                    body,
                    delay: Some(delay),
                },
            )
            .await
    }

    async fn dead_letter(
        &self,
        emitter: &Emitter,
        body: &[u8],
        draft: DeadLetterDraft,
    ) -> Result<(), TransportError> {
        emitter
            .dead_letter(
                body,
                draft.kind,
                draft.reason,
                draft.reasons,
                draft.attempts,
            )
            .await
    }
}

/// Why a message that did not decode (or names another schema version) is
/// dead-lettered: the kind, the reason and the attempt count to record.
fn rejection(
    queue: &str,
    body: &[u8],
    decode_error: Option<serde_json::Error>,
) -> (DeadLetterKind, String, u32) {
    let header: EnvelopeHeader = match serde_json::from_slice(body) {
        Ok(header) => header,
        Err(e) => {
            return (
                DeadLetterKind::Undecodable,
                format!("not a JSON envelope: {e}"),
                1,
            );
        }
    };
    let attempts = header.attempt.unwrap_or(0) + 1;
    let reason = match decode_error {
        Some(e) if header.version == Some(SCHEMA_VERSION) => {
            format!("payload does not match the {queue} schema: {e}")
        }
        _ => format!(
            "unsupported schema version {:?}, expected {SCHEMA_VERSION}",
            header.version
        ),
    };
    (DeadLetterKind::Undecodable, reason, attempts)
}

struct DeadLetterDraft {
    kind: DeadLetterKind,
    reason: String,
    reasons: Vec<String>,
    attempts: u32,
}
