//! One attempt at a batch's sends: the send records, the suppression
//! re-check, the claims, the send loop and the outcomes (see design.md).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use cpo_shared::StageError;
use cpo_shared::envelope::now_ms;
use cpo_shared::model::SendBatch;
use cpo_shared::store::{Claim, SendMark, SuppressionKey};
use tracing::warn;

use super::DeliveryStage;
use crate::compose::ComposeInput;
use crate::metrics::delivery_metrics;
use crate::prepare::Rendered;
use crate::sending::{HandBack, Pending, SendLoop, Settled};
use crate::sink::MessageMeta;
use crate::triage::{
    RELEASED_PREFIX, SKIPPED_UNCONFIRMED, Triage, triage, unconfirmed_resent_error,
};

fn unavailable(what: &str) -> impl FnOnce(cpo_shared::store::StoreError) -> StageError + '_ {
    move |e| StageError::Unavailable(format!("{what}: {e}; sending paused"))
}

/// Where each message of the batch stands after this attempt.
#[derive(Default)]
pub(super) struct Tally {
    pub sent_now: Vec<usize>,
    pub already_sent: Vec<usize>,
    pub failed: u64,
    pub suppressed: u64,
    pub unconfirmed: u64,
    pub held_until_ms: Option<i64>,
}

impl DeliveryStage {
    /// Which of `candidates` are suppressed (customer id or address hash), in one lookup.
    async fn suppressed(
        &self,
        rendered: &[Rendered<'_>],
        candidates: &[usize],
    ) -> Result<HashSet<usize>, StageError> {
        if candidates.is_empty() {
            return Ok(HashSet::new());
        }
        let keys: Vec<(SuppressionKey, SuppressionKey)> = candidates
            .iter()
            .map(|&i| {
                let recipient = &rendered[i].message.recipient;
                (
                    SuppressionKey::Customer(recipient.customer_id.clone()),
                    SuppressionKey::AddressHash(
                        self.backends.address_hasher.hash(&recipient.email),
                    ),
                )
            })
            .collect();
        let flat: Vec<SuppressionKey> = keys
            .iter()
            .flat_map(|(a, b)| [a.clone(), b.clone()])
            .collect();
        let found = self
            .backends
            .record
            .suppressed(&flat)
            .await
            .map_err(unavailable("suppression check"))?;
        Ok(candidates
            .iter()
            .zip(&keys)
            .filter(|(_, (a, b))| found.contains(a) || found.contains(b))
            .map(|(&i, _)| i)
            .collect())
    }

    /// The limiter's key: the sink, or the sink and the sending domain.
    fn limit_key(&self, from: &str) -> String {
        let sink = self.backends.sink.name();
        match from.rsplit_once('@') {
            Some((_, domain)) if self.config.rate.per_domain => {
                format!("{sink}:{}", domain.to_ascii_lowercase())
            }
            _ => sink.to_string(),
        }
    }

    /// Send every message of `rendered` that is not settled yet.
    pub(super) async fn deliver(
        &self,
        batch: &SendBatch,
        rendered: &[Rendered<'_>],
    ) -> Result<(Tally, Option<HandBack>), StageError> {
        let store = &self.backends.store;
        let sink = self.backends.sink.name();
        let counters = &delivery_metrics().sends;
        let ids: Vec<String> = rendered
            .iter()
            .map(|r| r.message.message_id.clone())
            .collect();
        let records = store
            .sends_for(&ids)
            .await
            .map_err(unavailable("send records"))?;
        let now = i64::try_from(now_ms()).unwrap_or(i64::MAX);
        let mut tally = Tally::default();
        let mut candidates = Vec::new();
        let mut pre_marks = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            match triage(records.get(id), now, self.config.on_unconfirmed) {
                Triage::Send => candidates.push(i),
                Triage::Resend { attempts } => {
                    tally.unconfirmed += 1;
                    delivery_metrics()
                        .unconfirmed
                        .with_label_values(&["resend"])
                        .inc();
                    let error = unconfirmed_resent_error();
                    pre_marks.push((id.clone(), attempts, SendMark::Failed { error }));
                    candidates.push(i);
                }
                Triage::SkipUnconfirmed { attempts } => {
                    tally.unconfirmed += 1;
                    tally.failed += 1;
                    delivery_metrics()
                        .unconfirmed
                        .with_label_values(&["skip"])
                        .inc();
                    counters
                        .with_label_values(&[sink, "unconfirmed_skipped"])
                        .inc();
                    let error = SKIPPED_UNCONFIRMED.to_string();
                    pre_marks.push((id.clone(), attempts, SendMark::Failed { error }));
                }
                Triage::AlreadySent => tally.already_sent.push(i),
                Triage::AlreadyFailed => tally.failed += 1,
                Triage::Held { until_ms } => {
                    tally.held_until_ms = tally.held_until_ms.max(Some(until_ms));
                }
            }
        }
        if !pre_marks.is_empty() {
            store
                .mark_sends(&pre_marks, now)
                .await
                .map_err(unavailable("send records"))?;
        }
        // Right before the send: an unsubscribe that arrived mid-campaign wins.
        let suppressed = self.suppressed(rendered, &candidates).await?;
        tally.suppressed = suppressed.len() as u64;
        counters
            .with_label_values(&[sink, "suppressed"])
            .inc_by(tally.suppressed);
        candidates.retain(|i| !suppressed.contains(i));

        let claim_ids: Vec<String> = candidates.iter().map(|&i| ids[i].clone()).collect();
        let claims = store
            .claim_sends(&claim_ids, sink, now, self.config.lease_ms())
            .await
            .map_err(unavailable("claim sends"))?;
        let mut attempts: HashMap<usize, i32> = HashMap::new();
        let mut pending = Vec::new();
        let mut marks = Vec::new();
        for (&i, claim) in candidates.iter().zip(claims) {
            match claim {
                Claim::Claimed { attempt } => {
                    attempts.insert(i, attempt);
                    let r = &rendered[i];
                    let message = r.message;
                    let subject = r.subject.plain();
                    let body = r.body.plain();
                    let composed = self.backends.composer.compose(&ComposeInput {
                        message_id: &message.message_id,
                        campaign_id: &batch.campaign_id,
                        customer_id: &message.recipient.customer_id,
                        to: &message.recipient.email,
                        first_name: &message.recipient.first_name,
                        subject: &subject,
                        body: &body,
                        citations: &r.template.citations,
                        call_to_action_url: batch.call_to_action_url.as_deref(),
                    });
                    match composed {
                        Ok(email) => pending.push(Pending {
                            index: i,
                            attempt,
                            email,
                            meta: MessageMeta {
                                segment: &message.segment,
                                arm: &message.arm,
                                variant_id: &message.variant_id,
                                citations: &r.template.citations,
                                fallback: message.fallback.as_deref(),
                            },
                            tries: 0,
                            not_before: Instant::now(),
                        }),
                        // Cannot become sendable by waiting: failed, with the reason.
                        Err(reason) => {
                            tally.failed += 1;
                            counters.with_label_values(&[sink, "failed"]).inc();
                            let error = format!("compose: {reason}");
                            marks.push((ids[i].clone(), attempt, SendMark::Failed { error }));
                        }
                    }
                }
                Claim::AlreadySent { .. } => tally.already_sent.push(i),
                Claim::Held { lease_until_ms } => {
                    tally.held_until_ms = tally.held_until_ms.max(Some(lease_until_ms));
                }
            }
        }
        let from = pending
            .first()
            .map(|p| p.email.from.address.clone())
            .unwrap_or_default();
        // Compose failures are recorded before anything is sent.
        if !marks.is_empty() {
            store
                .mark_sends(&marks, now)
                .await
                .map_err(unavailable("record sends"))?;
            marks.clear();
        }
        let report = SendLoop {
            sink: &self.backends.sink,
            store,
            limiter: &self.backends.limiter,
            retry: &self.config.retry,
            limit_key: self.limit_key(&from),
        }
        .run(pending)
        .await;
        for (i, settled) in report.settled {
            match settled {
                Settled::Sent { .. } => tally.sent_now.push(i),
                Settled::Failed { .. } => tally.failed += 1,
            }
        }
        // Given back unsent: released, so the next attempt claims them again.
        for i in &report.unsent {
            let error = format!("{RELEASED_PREFIX} {:?}", report.hand_back);
            marks.push((ids[*i].clone(), attempts[i], SendMark::Failed { error }));
        }
        if !marks.is_empty() {
            let marked_at = i64::try_from(now_ms()).unwrap_or(i64::MAX);
            store
                .mark_sends(&marks, marked_at)
                .await
                // Unreleased, these claims run out and are sent then.
                .map_err(unavailable("release sends"))?;
        }
        if report.lost > 0 {
            warn!(
                lost = report.lost,
                "claims lost before their outcome was recorded (a lease ran out mid-send)"
            );
        }
        Ok((tally, report.hand_back))
    }
}
