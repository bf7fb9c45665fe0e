//! The delivery stage: the `Stage` implementation around verification,
//! rendering, the send records, the suppression re-check, the rate limit, the
//! sink and the audit trail.

use std::sync::Arc;

use cpo_shared::audit::AuditSink;
use cpo_shared::batch_signing::{sign_batch, verify_batch};
use cpo_shared::dead_letter::DeadLetterKind;
use cpo_shared::envelope::{derive_id, now_ms};
use cpo_shared::model::SendBatch;
use cpo_shared::privacy::{AddressHasher, Pseudonymizer};
use cpo_shared::progress;
use cpo_shared::rate_limit::RateLimiter;
use cpo_shared::signing::Signer;
use cpo_shared::store::Store;
use cpo_shared::{Emitter, Envelope, Stage, StageError, StageResult, queues};
use tracing::{debug, warn};

use crate::audit::send_batch_event;
use crate::compose::Composer;
use crate::config::DeliveryConfig;
use crate::metrics::delivery_metrics;
use crate::prepare::{Limits, Rejected, Rendered, prepare};
use crate::sending::HandBack;
use crate::sink::MailSink;

mod deliver;

/// What the delivery stage sends with and records to.
pub struct DeliveryBackends {
    /// Verifies safety's approvals (the same key safety signs with).
    pub signer: Signer,
    /// Verifies experimentation's send-batch signatures (`security.batch_key`),
    /// and re-signs the one-message parts of a verified batch it dead-letters.
    pub batch_signer: Signer,
    /// Send records (dedupe across redeliveries and replicas): the system of
    /// record, or, for `cpo run` into the file outbox, a store of the run's own.
    pub store: Arc<dyn Store>,
    /// The system of record: suppressions, campaign states.
    pub record: Arc<dyn Store>,
    pub sink: Arc<dyn MailSink>,
    /// The shared rate limit (Redis in the fleet, in memory in `cpo run`).
    pub limiter: Arc<dyn RateLimiter>,
    pub composer: Composer,
    /// Keys address suppressions (`security.address_key`).
    pub address_hasher: AddressHasher,
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
        crate::metrics::preset_sink(backends.sink.name());
        Self { config, backends }
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
        let (tally, hand_back) = self.deliver(batch, &prepared.rendered).await?;
        let sink = self.backends.sink.name();
        let paused = delivery_metrics().paused_until.with_label_values(&[sink]);

        // Audited once recorded. A retry of this envelope audits what earlier
        // attempts sent too, in case they stopped before their audit line.
        let retried = message.attempt > 0 || message.paused_ms > 0;
        let mut audited: Vec<&Rendered<'_>> = tally
            .sent_now
            .iter()
            .map(|&i| &prepared.rendered[i])
            .collect();
        if retried {
            audited.extend(tally.already_sent.iter().map(|&i| &prepared.rendered[i]));
        }
        if !audited.is_empty() {
            let event = send_batch_event(
                &batch.campaign_id,
                batch.batch_seq,
                &audited,
                &self.backends.pseudonymizer,
            );
            self.backends
                .audit
                .append_json(&event)
                .map_err(StageError::from)?;
        }

        match hand_back {
            Some(HandBack::QuotaSpent { until_ms }) => {
                paused.set(i64::try_from(until_ms / 1_000).unwrap_or(i64::MAX));
                let state = format!("paused until {}", utc_midnight(until_ms));
                let now = i64::try_from(now_ms()).unwrap_or(i64::MAX);
                if let Err(e) = self
                    .backends
                    .record
                    .set_campaign_state(&batch.campaign_id, &state, now)
                    .await
                {
                    warn!(error = %e, "campaign state not recorded");
                }
                return Err(StageError::Unavailable(format!(
                    "daily quota of delivery.rate.per_day spent; campaign {state}"
                )));
            }
            Some(
                HandBack::Held { reason }
                | HandBack::LimiterDown { reason }
                | HandBack::RecordFailed { reason },
            ) => {
                return Err(StageError::Unavailable(format!(
                    "{} of {} messages wait: {reason}",
                    prepared.rendered.len() - tally.sent_now.len() - tally.already_sent.len(),
                    prepared.rendered.len()
                )));
            }
            None => {}
        }
        if !tally.sent_now.is_empty() {
            self.resume(&batch.campaign_id).await;
        }
        if let Some(until_ms) = tally.held_until_ms {
            // Another worker holds these claims: wait for its answer or its lease.
            return Err(StageError::Unavailable(format!(
                "sends held by another worker (lease until {until_ms} ms)"
            )));
        }

        for rejected in &prepared.rejected {
            let part = replayable(&message, rejected, &self.backends.batch_signer)?;
            emit.dead_letter_part(DeadLetterKind::Permanent, rejected.reason.clone(), &part)
                .await?;
        }

        let sent = tally.sent_now.len() as u64;
        let duplicates = tally.already_sent.len() as u64;
        let rejected = prepared.rejected.len() as u64;
        // Duplicates were sent by an earlier attempt, and the runtime records
        // these counts once per batch.
        emit.count(progress::MESSAGES_DELIVERED, sent + duplicates);
        emit.count(progress::MESSAGES_REFUSED, rejected);
        emit.count(progress::MESSAGES_FAILED, tally.failed);
        emit.count(progress::MESSAGES_SUPPRESSED, tally.suppressed);
        emit.count(progress::MESSAGES_UNCONFIRMED, tally.unconfirmed);
        let counters = &delivery_metrics().messages;
        counters.with_label_values(&["sent"]).inc_by(sent);
        counters
            .with_label_values(&["duplicate"])
            .inc_by(duplicates);
        counters.with_label_values(&["rejected"]).inc_by(rejected);
        debug!(
            batch_seq = batch.batch_seq,
            sent,
            duplicates,
            rejected,
            failed = tally.failed,
            suppressed = tally.suppressed,
            "delivered batch"
        );
        Ok(Vec::new())
    }
}

impl DeliveryStage {
    /// A campaign paused on the daily quota is running again once it sends.
    async fn resume(&self, campaign_id: &str) {
        let store = &self.backends.record;
        if let Ok(Some(campaign)) = store.campaign(campaign_id).await
            && campaign.state.starts_with("paused until")
        {
            let now = i64::try_from(now_ms()).unwrap_or(i64::MAX);
            let _ = store.set_campaign_state(campaign_id, "running", now).await;
        }
    }
}

/// `until_ms` (a UTC midnight) as `YYYY-MM-DDT00:00:00Z`.
fn utc_midnight(until_ms: u64) -> String {
    // Howard Hinnant's days-to-civil.
    let z = (until_ms / 86_400_000) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T00:00:00Z")
}

#[cfg(test)]
mod tests {
    #[test]
    fn pause_ends_are_written_as_utc_dates() {
        assert_eq!(super::utc_midnight(0), "1970-01-01T00:00:00Z");
        // 2026-12-07
        assert_eq!(
            super::utc_midnight(20_794 * 86_400_000),
            "2026-12-07T00:00:00Z"
        );
        assert_eq!(
            super::utc_midnight(11_016 * 86_400_000),
            "2000-02-29T00:00:00Z"
        );
    }
}
