//! The Stage trait: pure domain logic behind one async method.
//!
//! The runtime (`runtime.rs`) owns everything else: decoding, acking, retries,
//! dead-lettering, metrics, spans and shutdown. A stage never sees the broker.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::warn;

use crate::cache::HashUpdate;
use crate::dead_letter::{DeadLetter, DeadLetterKind};
use crate::envelope::{Envelope, EnvelopeHeader, SCHEMA_VERSION, derive_id, now_ms};
use crate::log_field::bounded;
use crate::metrics::metrics;
use crate::progress::ProgressStore;
use crate::queues;
use crate::transport::{Publish, Transport, TransportError};

/// A message a stage wants published once its input is handled.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Logical queue name (see `queues`); the transport adds its prefix.
    pub queue: &'static str,
    pub id: String,
    pub body: Vec<u8>,
}

impl Outgoing {
    pub fn new<T: Serialize>(
        queue: &'static str,
        envelope: &Envelope<T>,
    ) -> Result<Self, StageError> {
        let body = serde_json::to_vec(envelope)
            .map_err(|e| StageError::Permanent(format!("cannot encode output: {e}")))?;
        Ok(Self {
            queue,
            id: envelope.id.clone(),
            body,
        })
    }
}

/// Why a stage could not finish a message, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// May succeed later (backend timeout, cache down): retried with backoff up to the limit.
    #[error("transient: {0}")]
    Transient(String),
    /// Will never succeed (bad content, unknown field): dead-lettered at once.
    #[error("permanent: {0}")]
    Permanent(String),
    /// A safety decision, not an error: the input is dead-lettered with the reasons,
    /// and `notify` (e.g. the blocked decision for experimentation) is still published.
    #[error("blocked: {}", reasons.join("; "))]
    Blocked {
        reasons: Vec<String>,
        notify: Vec<Outgoing>,
    },
    /// Not ready yet (waiting for a join): redelivered after `after`, attempt unchanged,
    /// until `runtime.defer_timeout_ms` since first seen, then dead-lettered.
    #[error("deferred: {reason}")]
    Defer { reason: String, after: Duration },
    /// A dependency is down (the dedupe store, the join state): the message
    /// waits, redelivered every `runtime.outage_retry_ms` without using up its
    /// attempts, until `runtime.outage_timeout_ms` since first seen, then it is
    /// dead-lettered. Nothing is done halfway meanwhile (delivery sends nothing).
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl StageError {
    pub fn kind(&self) -> &'static str {
        match self {
            StageError::Transient(_) => "transient",
            StageError::Permanent(_) => "permanent",
            StageError::Blocked { .. } => "blocked",
            StageError::Defer { .. } => "deferred",
            StageError::Unavailable(_) => "unavailable",
        }
    }
}

pub type StageResult = Result<Vec<Outgoing>, StageError>;

/// One pipeline stage. Implementations are pure domain logic plus the backends
/// (generator, screen, cache, sink) they were built with.
pub trait Stage: Send + Sync + 'static {
    /// Payload type of the input queue(s).
    type Input: DeserializeOwned + Send + 'static;

    /// Stage name, used for metrics labels, spans and dead letters.
    fn name(&self) -> &'static str;

    /// Logical queues this stage consumes.
    fn inputs(&self) -> &'static [&'static str];

    /// Create the stage's own labelled metric series at 0 (every outcome it
    /// counts), so the first scrape already has them. The runtime calls it
    /// before consuming and presets its own series itself.
    fn preset_metrics(&self) {}

    /// Decode a message consumed from `queue`. The runtime has checked the size
    /// only; it reports the schema version and any error. A stage whose queues
    /// carry different payloads (experimentation) overrides this to decode each
    /// queue's type directly instead of trying the shapes of an untagged enum.
    fn decode(
        &self,
        queue: &'static str,
        body: &[u8],
    ) -> Result<Envelope<Self::Input>, serde_json::Error> {
        let _ = queue;
        decode_json(body)
    }

    /// Handle one message. Returning `Ok` means: publish these, then ack the input.
    /// Stages with large fan-out (segmentation) publish as they go through `emit`;
    /// a redelivered input then emits again, which idempotent consumers absorb.
    fn handle(
        &self,
        message: Envelope<Self::Input>,
        emit: &Emitter,
    ) -> impl Future<Output = StageResult> + Send;
}

/// Decode JSON, checking that the body is UTF-8 once, up front: serde_json
/// then reads it as a `str` and skips the check it would make on every string
/// (a noticeable share of decoding a batch of a thousand customers).
pub fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    let text = std::str::from_utf8(body).map_err(|e| {
        <serde_json::Error as serde::de::Error>::custom(format!("message is not UTF-8: {e}"))
    })?;
    serde_json::from_str(text)
}

/// Publishes on behalf of a stage while it handles a message. Everything it
/// publishes is confirmed before `emit` returns. It also collects the
/// message's progress counts (`count`), which the runtime records once the
/// message is handled.
#[derive(Clone)]
pub struct Emitter {
    transport: Arc<dyn Transport>,
    stage: &'static str,
    queue: &'static str,
    progress: Option<Arc<ProgressStore>>,
    counts: Arc<Mutex<HashUpdate>>,
}

impl Emitter {
    pub fn new(transport: Arc<dyn Transport>, stage: &'static str, queue: &'static str) -> Self {
        Self {
            transport,
            stage,
            queue,
            progress: None,
            counts: Arc::default(),
        }
    }

    /// Count dead letters in `store` (the runtime's progress store).
    pub fn with_progress(mut self, store: Option<Arc<ProgressStore>>) -> Self {
        self.progress = store;
        self
    }

    /// Add `n` to the campaign's progress counter `field` (see `progress` for
    /// the names) once this message is handled. Counted once per message,
    /// however often it is redelivered.
    pub fn count(&self, field: &str, n: u64) {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.update(|u| match u.add.iter_mut().find(|(f, _)| f == field) {
            Some((_, total)) => *total = total.saturating_add(n),
            None => u.add.push((field.to_string(), n)),
        });
    }

    /// Raise the campaign's progress field `field` to at least `value` (timestamps).
    pub fn stamp(&self, field: &str, value: u64) {
        let value = i64::try_from(value).unwrap_or(i64::MAX);
        self.update(|u| match u.max.iter_mut().find(|(f, _)| f == field) {
            Some((_, current)) => *current = (*current).max(value),
            None => u.max.push((field.to_string(), value)),
        });
    }

    /// Lower the campaign's progress field `field` to at most `value` (first times).
    pub fn stamp_first(&self, field: &str, value: u64) {
        let value = i64::try_from(value).unwrap_or(i64::MAX);
        self.update(|u| match u.min.iter_mut().find(|(f, _)| f == field) {
            Some((_, current)) => *current = (*current).min(value),
            None => u.min.push((field.to_string(), value)),
        });
    }

    fn update(&self, f: impl FnOnce(&mut HashUpdate)) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut counts);
    }

    /// The counts collected so far (the runtime records them after handling).
    pub fn take_counts(&self) -> HashUpdate {
        std::mem::take(&mut *self.counts.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Publish now and wait for the confirm. A transport failure is transient.
    pub async fn emit(&self, out: Outgoing) -> Result<(), StageError> {
        self.transport
            .publish(
                out.queue,
                Publish {
                    id: out.id,
                    body: out.body,
                    delay: None,
                },
            )
            .await
            .map_err(|e| StageError::Transient(format!("publish to {}: {e}", out.queue)))
    }

    /// Dead-letter one part of the input (e.g. one tampered message of a batch)
    /// while the rest goes on. `message` is what replay would publish again.
    pub async fn dead_letter_part(
        &self,
        kind: DeadLetterKind,
        reason: String,
        message: &serde_json::Value,
    ) -> Result<(), StageError> {
        let body = serde_json::to_vec(message)
            .map_err(|e| StageError::Permanent(format!("encode dead letter: {e}")))?;
        self.dead_letter(&body, kind, reason, Vec::new(), 1)
            .await
            .map_err(|e| StageError::Transient(format!("publish dead letter: {e}")))
    }

    /// Build and publish a dead letter for `body` consumed from this emitter's queue.
    pub(crate) async fn dead_letter(
        &self,
        body: &[u8],
        kind: DeadLetterKind,
        reason: String,
        reasons: Vec<String>,
        attempts: u32,
    ) -> Result<(), TransportError> {
        let header: Option<EnvelopeHeader> = serde_json::from_slice(body).ok();
        let message: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let id = header
            .as_ref()
            .and_then(|h| h.id.clone())
            .unwrap_or_else(|| format!("raw-{}", derive_id(&[&String::from_utf8_lossy(body)])));
        let raw = message.is_none().then(|| {
            String::from_utf8_lossy(body)
                .chars()
                .take(4096)
                .collect::<String>()
        });
        let now = now_ms();
        let letter = DeadLetter {
            version: SCHEMA_VERSION,
            id: id.clone(),
            campaign_id: header.as_ref().and_then(|h| h.campaign_id.clone()),
            stage: self.stage.to_string(),
            queue: self.queue.to_string(),
            kind,
            reason,
            reasons,
            attempts,
            first_seen_ms: header
                .as_ref()
                .and_then(|h| h.first_seen_ms)
                .filter(|ms| *ms > 0)
                .unwrap_or(now),
            dead_lettered_ms: now,
            // An oversized payload is not copied into the dead-letter queue; the reason says why.
            message: if kind == DeadLetterKind::Oversized {
                None
            } else {
                message
            },
            raw: if kind == DeadLetterKind::Oversized {
                None
            } else {
                raw
            },
        };
        warn!(stage = self.stage, queue = self.queue, kind = kind.as_str(), msg_id = %bounded(&id), reason = %bounded(&letter.reason), "dead-lettered");
        metrics()
            .dead_lettered
            .with_label_values(&[self.stage, kind.as_str()])
            .inc();
        let body = serde_json::to_vec(&letter)
            .map_err(|e| TransportError::Broker(format!("encode dead letter: {e}")))?;
        self.transport
            .publish(
                queues::DEAD_LETTER,
                Publish {
                    id: id.clone(),
                    body,
                    delay: None,
                },
            )
            .await?;
        if let (Some(store), Some(campaign)) = (&self.progress, &letter.campaign_id) {
            store
                .dead_letter(campaign, self.stage, kind, &id, letter.first_seen_ms)
                .await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_json_reads_what_from_slice_reads_and_rejects_bad_utf8() {
        let body =
            "{\"id\":\"x\",\"campaign_id\":\"c\",\"version\":1,\"payload\":\"é \\u00e9 \\\" 🦀\"}";
        let ours: Envelope<String> = decode_json(body.as_bytes()).unwrap();
        let theirs: Envelope<String> = serde_json::from_slice(body.as_bytes()).unwrap();
        assert_eq!(ours, theirs);
        assert_eq!(ours.payload, "é é \" 🦀");
        let mut invalid = body.as_bytes().to_vec();
        invalid[52] = 0xff;
        let err = decode_json::<Envelope<String>>(&invalid).unwrap_err();
        assert!(err.to_string().contains("not UTF-8"), "{err}");
        assert!(decode_json::<Envelope<String>>(b"{\"id\":").is_err());
    }
}
