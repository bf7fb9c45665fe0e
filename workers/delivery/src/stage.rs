//! The delivery stage: the `Stage` implementation around verification,
//! rendering, dedupe, the sink and the audit trail.

use std::sync::Arc;

use cpo_shared::audit::AuditSink;
use cpo_shared::batch_signing::{sign_batch, verify_batch};
use cpo_shared::cache::Cache;
use cpo_shared::dead_letter::DeadLetterKind;
use cpo_shared::envelope::derive_id;
use cpo_shared::model::SendBatch;
use cpo_shared::privacy::Pseudonymizer;
use cpo_shared::progress;
use cpo_shared::signing::Signer;
use cpo_shared::{Emitter, Envelope, Stage, StageError, StageResult, queues};
use tracing::debug;

use crate::audit::send_batch_event;
use crate::config::DeliveryConfig;
use crate::metrics::delivery_metrics;
use crate::outbox::{OutboxEntry, OutboxSink};
use crate::prepare::{Limits, Rejected, Rendered, prepare};

/// Key of the marker that says a message was sent.
pub fn sent_key(message_id: &str) -> String {
    format!("cpo:v1:sent:{message_id}")
}

/// What the delivery stage sends with and records to.
pub struct DeliveryBackends {
    /// Verifies safety's approvals (the same key safety signs with).
    pub signer: Signer,
    /// Verifies experimentation's send-batch signatures (`security.batch_key`),
    /// and re-signs the one-message parts of a verified batch it dead-letters.
    pub batch_signer: Signer,
    /// Sent-markers (dedupe across redeliveries and workers).
    pub cache: Arc<dyn Cache>,
    pub sink: Arc<dyn OutboxSink>,
    pub audit: Arc<dyn AuditSink>,
    /// Customer ids in the audit trail are pseudonyms.
    pub pseudonymizer: Pseudonymizer,
}

pub struct DeliveryStage {
    config: DeliveryConfig,
    backends: DeliveryBackends,
}

impl DeliveryStage {
    pub fn new(config: DeliveryConfig, backends: DeliveryBackends) -> Self {
        Self { config, backends }
    }

    /// Messages not marked as sent yet, with their marker keys, in one cache
    /// round trip. Without the dedupe store, sending pauses (the batch waits
    /// for the store, `StageError::Unavailable`) rather than risking a second send.
    async fn unsent<'r, 'a>(
        &self,
        rendered: &'r [Rendered<'a>],
    ) -> Result<(Vec<&'r Rendered<'a>>, Vec<String>), StageError> {
        let keys: Vec<String> = rendered
            .iter()
            .map(|r| sent_key(&r.message.message_id))
            .collect();
        let markers =
            self.backends.cache.get_many(&keys).await.map_err(|e| {
                StageError::Unavailable(format!("dedupe store: {e}; sending paused"))
            })?;
        if markers.len() != keys.len() {
            return Err(StageError::Unavailable(format!(
                "dedupe store answered {} of {} keys; sending paused",
                markers.len(),
                keys.len()
            )));
        }
        let mut fresh = Vec::with_capacity(rendered.len());
        let mut fresh_keys = Vec::with_capacity(rendered.len());
        for ((message, key), marker) in rendered.iter().zip(keys).zip(markers) {
            if marker.is_none() {
                fresh.push(message);
                fresh_keys.push(key);
            }
        }
        Ok((fresh, fresh_keys))
    }
}

fn entry<'a>(campaign_id: &'a str, rendered: &'a Rendered<'_>) -> OutboxEntry<'a> {
    let message = rendered.message;
    OutboxEntry {
        message_id: &message.message_id,
        campaign_id,
        customer_id: &message.recipient.customer_id,
        segment: &message.segment,
        arm: &message.arm,
        variant_id: &message.variant_id,
        to: &message.recipient.email,
        subject: &rendered.subject,
        body: &rendered.body,
        citations: &rendered.template.citations,
        fallback: message.fallback.as_deref(),
    }
}

/// A rejected message as a one-message batch envelope (with its template, when
/// the batch had one), so replaying the dead letter publishes something
/// delivery can consume again.
fn replayable(
    envelope: &Envelope<SendBatch>,
    rejected: &Rejected<'_>,
    batch_signer: &Signer,
) -> Result<serde_json::Value, StageError> {
    let batch = &envelope.payload;
    let message = rejected.message;
    let mut part = envelope.derive(
        derive_id(&[&batch.campaign_id, "send-part", &message.message_id]),
        SendBatch {
            campaign_id: batch.campaign_id.clone(),
            batch_seq: batch.batch_seq,
            call_to_action_url: batch.call_to_action_url.clone(),
            templates: rejected.template.into_iter().cloned().collect(),
            messages: vec![message.clone()],
            signature: None,
        },
    );
    // Only parts of a batch whose signature verified get here, so signing the
    // part vouches for nothing experimentation did not sign.
    sign_batch(batch_signer, &mut part.payload);
    part.first_seen_ms = envelope.first_seen_ms;
    serde_json::to_value(&part)
        .map_err(|e| StageError::Permanent(format!("encode dead letter: {e}")))
}

impl Stage for DeliveryStage {
    type Input = SendBatch;

    fn name(&self) -> &'static str {
        "delivery"
    }

    fn inputs(&self) -> &'static [&'static str] {
        &[queues::SEND]
    }

    fn preset_metrics(&self) {
        crate::metrics::delivery_metrics();
    }

    async fn handle(&self, message: Envelope<SendBatch>, emit: &Emitter) -> StageResult {
        let batch = &message.payload;
        // Fail closed before anything is rendered: an unsigned or altered batch
        // (new recipients, merge values or links on a genuine template) is
        // dead-lettered whole, as it arrived.
        if let Err(e) = verify_batch(&self.backends.batch_signer, batch) {
            let refused = batch.messages.len() as u64;
            emit.count(progress::MESSAGES_REFUSED, refused);
            delivery_metrics()
                .messages
                .with_label_values(&["rejected"])
                .inc_by(refused);
            return Err(StageError::Permanent(e.to_string()));
        }
        let prepared = prepare(
            batch,
            &self.backends.signer,
            Limits {
                max_value_chars: self.config.max_merge_value_chars,
                allowed_link_domains: &self.config.allowed_link_domains,
            },
        );
        let (fresh, keys) = self.unsent(&prepared.rendered).await?;

        if !fresh.is_empty() {
            let entries: Vec<OutboxEntry<'_>> =
                fresh.iter().map(|r| entry(&batch.campaign_id, r)).collect();
            self.backends
                .sink
                .write_batch(&entries)
                .await
                .map_err(|e| StageError::Transient(e.to_string()))?;
            // Audited before marking: a failure here retries, and the retry
            // audits again rather than leaving a send unaudited.
            let event = send_batch_event(
                &batch.campaign_id,
                batch.batch_seq,
                &fresh,
                &self.backends.pseudonymizer,
            );
            self.backends
                .audit
                .append_json(&event)
                .map_err(StageError::from)?;
            let markers: Vec<(String, Vec<u8>)> =
                keys.into_iter().map(|key| (key, b"1".to_vec())).collect();
            self.backends
                .cache
                .set_many(&markers, self.config.sent_marker_ttl())
                .await
                // Sent but not marked: wait for the store rather than use up
                // attempts. The retry finds no markers and writes again; the file
                // outbox skips ids it already holds (see design.md).
                .map_err(|e| StageError::Unavailable(format!("dedupe store: {e}")))?;
        }

        for rejected in &prepared.rejected {
            let part = replayable(&message, rejected, &self.backends.batch_signer)?;
            emit.dead_letter_part(DeadLetterKind::Permanent, rejected.reason.clone(), &part)
                .await?;
        }

        let sent = fresh.len() as u64;
        let duplicates = (prepared.rendered.len() - fresh.len()) as u64;
        let rejected = prepared.rejected.len() as u64;
        // Duplicates are in the outbox too (an earlier attempt sent them), and
        // the runtime records this once per batch.
        emit.count(progress::MESSAGES_DELIVERED, sent + duplicates);
        emit.count(progress::MESSAGES_REFUSED, rejected);
        let counters = &delivery_metrics().messages;
        counters.with_label_values(&["sent"]).inc_by(sent);
        counters
            .with_label_values(&["duplicate"])
            .inc_by(duplicates);
        counters.with_label_values(&["rejected"]).inc_by(rejected);
        debug!(
            batch_seq = batch.batch_seq,
            sent, duplicates, rejected, "delivered batch"
        );
        Ok(Vec::new())
    }
}
