//! The experimentation stage: the `Stage` implementation around the join and
//! the assignment.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use cpo_safety::MergeValueScreen;
use cpo_shared::cache::Cache;
use cpo_shared::envelope::derive_id;
use cpo_shared::model::{CustomerBatch, ExperimentInput, LedgerEntry, VariantDecision};
use cpo_shared::progress;
use cpo_shared::signing::Signer;
use cpo_shared::stage::decode_json;
use cpo_shared::{Emitter, Envelope, Outgoing, Stage, StageError, StageResult, queues};
use serde::Serialize;
use tracing::debug;

use crate::arms::ArmPlan;
use crate::assign::{RecordExclusions, Route, assign_batch_except, segment_routes};
use crate::config::ExperimentationConfig;
use crate::error::ExperimentError;
use crate::join::{JoinState, SegmentJoin};
use crate::merge::screen_merge_values;
use crate::metrics::experiment_metrics;
use crate::output::{SendBatchOut, templates_of};
use crate::record::Record;

pub struct ExperimentationStage {
    config: ExperimentationConfig,
    join: JoinState,
    /// Signs each send batch (`security.batch_key`, shared with delivery only).
    batch_signer: Signer,
    merge_screen: MergeValueScreen,
    /// Suppressions, frequency cap and the written record; `None` only in
    /// tests of the stage alone (the CLI always sets it).
    record: Option<Record>,
}

impl ExperimentationStage {
    /// `cache` holds the join state (the in-memory cache embedded, Redis in the
    /// fleet); `batch_signer` signs every send batch for delivery to verify.
    pub fn new(
        config: ExperimentationConfig,
        cache: Arc<dyn Cache>,
        batch_signer: Signer,
    ) -> Result<Self, ExperimentError> {
        Ok(Self {
            config: config.clone(),
            join: JoinState::new(cache, config.join_ttl()),
            batch_signer,
            merge_screen: MergeValueScreen::new()
                .map_err(|e| ExperimentError::Screen(e.to_string()))?,
            record: None,
        })
    }

    /// Check every batch against the store's suppressions and the frequency
    /// cap before assignment, and write what it decided back to the store.
    pub fn with_record(mut self, record: Record) -> Self {
        self.record = Some(record);
        self
    }

    async fn on_decision(&self, decision: &VariantDecision) -> StageResult {
        self.join.record(decision).await?;
        debug!(
            segment = %decision.variant.segment,
            variant_id = %decision.variant.variant_id,
            arm = %decision.variant.arm,
            "recorded decision"
        );
        Ok(Vec::new())
    }

    async fn on_batch(
        &self,
        envelope: &Envelope<ExperimentInput>,
        batch: &CustomerBatch,
        emit: &Emitter,
    ) -> StageResult {
        let campaign_id = batch.campaign.campaign_id.as_str();
        let plan = ArmPlan::from_campaign(&batch.campaign).map_err(ExperimentError::from)?;
        let segments: BTreeSet<&str> = batch.customers.iter().map(|c| c.segment.as_str()).collect();
        let mut decided = Vec::with_capacity(segments.len());
        let mut waiting = Vec::new();
        for segment in segments {
            match self.join.segment(campaign_id, segment).await? {
                SegmentJoin::Decided(arms) => decided.push((segment, arms)),
                SegmentJoin::Waiting { have, expected } => waiting.push(format!(
                    "`{segment}` has {have} of {} decisions",
                    expected.map_or_else(|| "?".to_string(), |n| n.to_string())
                )),
            }
        }
        if !waiting.is_empty() {
            return Err(StageError::Defer {
                reason: format!("waiting for safety decisions: {}", waiting.join(", ")),
                after: self.config.defer(),
            });
        }
        let routes: HashMap<&str, Vec<Route<'_>>> = decided
            .iter()
            .map(|(segment, arms)| (*segment, segment_routes(&plan, arms)))
            .collect();
        // Only a batch whose segments are decided reaches the store.
        let now = cpo_shared::envelope::now_ms() as i64;
        let excluded = match &self.record {
            Some(record) => record.screen(batch, now).await?,
            None => RecordExclusions::new(),
        };
        let mut assigned = assign_batch_except(batch, &plan, &routes, &excluded);
        // Before signing: the signed batch carries only screened values.
        let replaced_values = screen_merge_values(&self.merge_screen, &mut assigned.messages);

        let seq = batch.batch_seq.to_string();
        let assignments = assigned.messages.len() as u64;
        let excluded = assigned.exclusions.len() as u64;
        let counters = &experiment_metrics().customers;
        counters
            .with_label_values(&["assigned"])
            .inc_by(assignments - assigned.fallbacks);
        counters
            .with_label_values(&["fallback"])
            .inc_by(assigned.fallbacks);
        counters.with_label_values(&["excluded"]).inc_by(excluded);
        for replaced in &replaced_values {
            experiment_metrics()
                .replaced_values
                .with_label_values(&[replaced.field.as_str()])
                .inc();
        }
        emit.count(
            progress::MERGE_VALUES_REPLACED,
            replaced_values.len() as u64,
        );
        emit.count(progress::BATCHES_ASSIGNED, 1);
        emit.count(progress::CUSTOMERS_ASSIGNED, assignments);
        emit.count(progress::FALLBACKS, assigned.fallbacks);
        emit.count(progress::EXCLUDED_AT_ASSIGNMENT, excluded);
        debug!(
            batch_seq = batch.batch_seq,
            assignments,
            fallbacks = assigned.fallbacks,
            excluded,
            replaced_values = replaced_values.len(),
            "assigned batch"
        );

        if let Some(record) = &self.record {
            record
                .write(campaign_id, &assigned.messages, &assigned.exclusions, now)
                .await?;
        }

        let mut outputs = Vec::with_capacity(2);
        if !assigned.messages.is_empty() {
            let templates = templates_of(&assigned.messages)?;
            // Sized up front: growing a ~500 KB buffer by doubling copies it several times.
            let capacity = templates
                .iter()
                .map(|t| t.subject.len() + t.body.len() + 512)
                .sum::<usize>()
                + assigned.messages.len() * 384;
            let mut send_batch = SendBatchOut {
                campaign_id,
                batch_seq: batch.batch_seq,
                call_to_action_url: batch.campaign.call_to_action_url.as_deref(),
                templates,
                messages: assigned.messages,
                signature: None,
            };
            send_batch.sign(&self.batch_signer);
            let send = envelope.derive(derive_id(&[campaign_id, "send", &seq]), send_batch);
            outputs.push(encode(queues::SEND, &send, capacity)?);
        }
        let ledger = envelope.derive(
            derive_id(&[campaign_id, "assigned", &seq]),
            LedgerEntry::Assigned {
                batch_seq: batch.batch_seq,
                assignments,
                per_arm: assigned.per_arm,
                fallbacks: assigned.fallbacks,
                exclusions: assigned.exclusions,
                replaced_values,
            },
        );
        outputs.push(Outgoing::new(queues::LEDGER, &ledger)?);
        Ok(outputs)
    }
}

fn encode<T: Serialize>(
    queue: &'static str,
    envelope: &Envelope<T>,
    capacity: usize,
) -> Result<Outgoing, ExperimentError> {
    let mut body = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut body, envelope)
        .map_err(|e| ExperimentError::Encode(e.to_string()))?;
    Ok(Outgoing {
        queue,
        id: envelope.id.clone(),
        body,
    })
}

impl Stage for ExperimentationStage {
    type Input = ExperimentInput;

    fn name(&self) -> &'static str {
        "experimentation"
    }

    fn inputs(&self) -> &'static [&'static str] {
        &[queues::DECISIONS, queues::AUDIENCE]
    }

    fn preset_metrics(&self) {
        crate::metrics::experiment_metrics();
    }

    /// Each queue carries one payload type: decode it directly rather than
    /// buffering the payload to try the shapes of the untagged `ExperimentInput`.
    fn decode(
        &self,
        queue: &'static str,
        body: &[u8],
    ) -> Result<Envelope<ExperimentInput>, serde_json::Error> {
        match queue {
            queues::DECISIONS => Ok(wrap(
                decode_json::<Envelope<VariantDecision>>(body)?,
                ExperimentInput::Decision,
            )),
            queues::AUDIENCE => Ok(wrap(
                decode_json::<Envelope<CustomerBatch>>(body)?,
                ExperimentInput::Batch,
            )),
            _ => decode_json(body),
        }
    }

    async fn handle(&self, message: Envelope<ExperimentInput>, emit: &Emitter) -> StageResult {
        match &message.payload {
            ExperimentInput::Decision(decision) => self.on_decision(decision).await,
            ExperimentInput::Batch(batch) => self.on_batch(&message, batch, emit).await,
        }
    }
}

fn wrap<T>(
    envelope: Envelope<T>,
    into: impl FnOnce(T) -> ExperimentInput,
) -> Envelope<ExperimentInput> {
    Envelope {
        id: envelope.id,
        campaign_id: envelope.campaign_id,
        version: envelope.version,
        attempt: envelope.attempt,
        first_seen_ms: envelope.first_seen_ms,
        paused_ms: envelope.paused_ms,
        payload: into(envelope.payload),
    }
}

#[cfg(test)]
mod tests {
    use cpo_shared::model::SegmentedCustomer;

    use super::*;
    use crate::join::tests::decision;
    use crate::tests::batch;

    #[test]
    fn both_producers_payloads_decode_as_the_right_variant() {
        let from_safety = serde_json::to_vec(&Envelope::new(
            "d1",
            "camp-1",
            decision("s", "urgent", true, 4),
        ))
        .unwrap();
        let decoded: Envelope<ExperimentInput> = serde_json::from_slice(&from_safety).unwrap();
        assert!(
            matches!(&decoded.payload, ExperimentInput::Decision(d) if d.variant.arm == "urgent")
        );

        let from_segmentation =
            serde_json::to_vec(&Envelope::new("b1", "camp-1", batch(3, &["s"]))).unwrap();
        let decoded: Envelope<ExperimentInput> =
            serde_json::from_slice(&from_segmentation).unwrap();
        assert!(matches!(&decoded.payload, ExperimentInput::Batch(b) if b.customers.len() == 3));

        // an empty batch has no customer to give its shape away, and still decodes as a batch
        let mut empty = batch(0, &["s"]);
        empty.customers = Vec::<SegmentedCustomer>::new();
        let raw = serde_json::to_vec(&Envelope::new("b2", "camp-1", empty)).unwrap();
        let decoded: Envelope<ExperimentInput> = serde_json::from_slice(&raw).unwrap();
        assert!(matches!(decoded.payload, ExperimentInput::Batch(_)));
    }

    #[test]
    fn each_queue_decodes_its_own_payload_type() {
        let stage = ExperimentationStage::new(
            ExperimentationConfig::default(),
            Arc::new(cpo_shared::cache::MemoryCache::new()),
            Signer::new(b"batch-key".to_vec()),
        )
        .unwrap();
        let mut envelope = Envelope::new("d1", "camp-1", decision("s", "urgent", true, 4));
        envelope.attempt = 2;
        envelope.first_seen_ms = 17;
        let from_safety = serde_json::to_vec(&envelope).unwrap();
        let decoded = stage.decode(queues::DECISIONS, &from_safety).unwrap();
        assert_eq!(
            (decoded.id.as_str(), decoded.campaign_id.as_str()),
            ("d1", "camp-1")
        );
        assert_eq!((decoded.attempt, decoded.first_seen_ms), (2, 17));
        assert!(
            matches!(&decoded.payload, ExperimentInput::Decision(d) if d.variant.arm == "urgent")
        );
        let from_segmentation =
            serde_json::to_vec(&Envelope::new("b1", "camp-1", batch(3, &["s"]))).unwrap();
        assert!(matches!(
            stage.decode(queues::AUDIENCE, &from_segmentation).unwrap().payload,
            ExperimentInput::Batch(b) if b.customers.len() == 3
        ));
        // a payload on the wrong queue is an error the runtime dead-letters, not a guess
        let err = stage.decode(queues::AUDIENCE, &from_safety).unwrap_err();
        assert!(err.to_string().contains("missing field"), "{err}");
        assert!(stage.decode(queues::DECISIONS, &from_segmentation).is_err());
        // what decodes per queue also decodes as the untagged input the schema describes
        let untagged: Envelope<ExperimentInput> = serde_json::from_slice(&from_safety).unwrap();
        assert_eq!(
            untagged,
            stage.decode(queues::DECISIONS, &from_safety).unwrap()
        );
    }
}
