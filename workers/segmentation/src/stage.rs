//! The segmentation stage: `campaigns` in; segment tasks, customer batches and
//! one audience ledger entry out.

use std::path::Path;
use std::sync::Arc;

use cpo_shared::model::{AudienceSource, CampaignContext, CampaignRequest};
use cpo_shared::progress;
use cpo_shared::{Emitter, Envelope, Outgoing, Stage, StageError, StageResult, queues};
use tokio::sync::mpsc;
use tracing::info;

use crate::config::{SegmentationConfig, SegmentationError};
use crate::encode::BatchEncoder;
use crate::metrics::{outcome_label, segmentation_metrics};
use crate::outputs;
use crate::rules::RuleSet;
use crate::scan::{
    Audience, CsvFile, PassOne, PassTwo, Plan, RowSyntax, ScanError, pass_one, pass_two,
};
use crate::screen::Suppressions;

/// Batches the reading thread may run ahead of the publisher: bounds memory
/// while letting parsing and publishing overlap.
const BATCHES_IN_FLIGHT: usize = 2;

pub struct SegmentationStage {
    config: SegmentationConfig,
    rules: RuleSet,
    /// The system of record the audience is written to (`record.rs`).
    store: Option<std::sync::Arc<dyn cpo_shared::store::Store>>,
}

impl SegmentationStage {
    /// Validates the config and loads its rule set (the bundled one by default).
    pub fn new(config: SegmentationConfig) -> Result<Self, SegmentationError> {
        let rules = config.load_rules()?;
        Ok(Self {
            config,
            rules,
            store: None,
        })
    }

    /// Write every campaign's audience total and exclusions to `store`.
    pub fn with_record(mut self, store: std::sync::Arc<dyn cpo_shared::store::Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// With an explicit rule set (tests, embedders); `config.rules_file` is ignored.
    pub fn with_rules(
        config: SegmentationConfig,
        rules: RuleSet,
    ) -> Result<Self, SegmentationError> {
        config.validate()?;
        Ok(Self {
            config,
            rules,
            store: None,
        })
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    fn audience(&self, source: AudienceSource) -> Result<Audience, StageError> {
        match source {
            AudienceSource::Inline { customers } => Ok(Audience::Inline(customers)),
            AudienceSource::Csv { path } if path.trim().is_empty() => {
                Err(StageError::Permanent("audience csv path is empty".into()))
            }
            AudienceSource::Csv { path } => self
                .config
                .audience_file(Path::new(path.trim()))
                .map(|path| {
                    Audience::File(CsvFile {
                        path,
                        syntax: RowSyntax::multiline(self.config.csv.multiline_fields),
                    })
                })
                .map_err(StageError::Permanent),
        }
    }

    /// Pass two on a blocking thread, its batches published here as they come.
    /// Hands pass one back (the ledger needs its exclusions) with pass two's result.
    async fn stream_batches(
        &self,
        audience: Arc<Audience>,
        plan: Arc<Plan>,
        one: PassOne,
        campaign: &CampaignContext,
        emit: &Emitter,
    ) -> Result<(PassOne, PassTwo), StageError> {
        let (tx, mut rx) = mpsc::channel::<Outgoing>(BATCHES_IN_FLIGHT);
        let context = campaign.clone();
        let producer = tokio::task::spawn_blocking(move || {
            let mut encoder = BatchEncoder::new(context, plan.batch_size, |out| {
                tx.blocking_send(out).map_err(|_| ScanError::Stopped)
            });
            let two = pass_two(&*audience, &plan, &one, &mut encoder);
            (one, two)
        });
        let mut published = Ok(());
        while let Some(out) = rx.recv().await {
            if let Err(e) = emit.emit(out).await {
                published = Err(e);
                break;
            }
            segmentation_metrics().batches.inc();
        }
        // Closing the channel makes a still-running reader stop at its next batch.
        drop(rx);
        let (one, two) = producer.await.map_err(task_failed)?;
        published?;
        Ok((one, two.map_err(stage_error)?))
    }
}

impl Stage for SegmentationStage {
    type Input = CampaignRequest;

    fn name(&self) -> &'static str {
        "segmentation"
    }

    fn inputs(&self) -> &'static [&'static str] {
        &[queues::CAMPAIGNS]
    }

    fn preset_metrics(&self) {
        crate::metrics::segmentation_metrics();
    }

    async fn handle(&self, message: Envelope<CampaignRequest>, emit: &Emitter) -> StageResult {
        let enqueued_ms = message.first_seen_ms;
        let request = message.payload;
        // The id was checked as the message was decoded; the arms are checked
        // here too, so a campaign no later stage could run stops at the start.
        request
            .validate()
            .map_err(|e| StageError::Permanent(format!("invalid campaign: {e}")))?;
        let campaign = request.context();
        let audience = Arc::new(self.audience(request.audience)?);
        let plan = Arc::new(Plan {
            rules: self.rules.clone(),
            suppressions: Suppressions::new(&request.suppressions),
            batch_size: self.config.batch_size,
        });

        // The reads are blocking file IO and a second of CPU for a million rows:
        // keep them off the async workers other stages share.
        let one = {
            let (audience, plan) = (audience.clone(), plan.clone());
            tokio::task::spawn_blocking(move || pass_one(&*audience, &plan))
                .await
                .map_err(task_failed)?
                .map_err(stage_error)?
        };
        // Profiles first, so retrieval and generation work while the audience streams.
        for task in outputs::segment_tasks(&campaign, &one.profiles)? {
            emit.emit(task).await?;
        }
        let (one, two) = self
            .stream_batches(audience, plan, one, &campaign, emit)
            .await?;
        one.check(&two).map_err(stage_error)?;

        record_metrics(&one);
        info!(
            campaign = %campaign.campaign_id,
            customers_total = one.customers_total,
            segments = one.profiles.len(),
            excluded = one.exclusions.len(),
            batches = two.batches,
            "audience segmented"
        );
        if let Some(store) = &self.store {
            crate::audience_record::write_audience(
                store.as_ref(),
                &campaign.campaign_id,
                one.customers_total,
                two.batches,
                &one.exclusions,
                cpo_shared::envelope::now_ms() as i64,
            )
            .await?;
        }
        // The earliest: a replayed campaign message is first seen again at the replay.
        emit.stamp_first(progress::ENQUEUED_MS, enqueued_ms);
        emit.count(progress::CUSTOMERS_TOTAL, one.customers_total);
        emit.count(
            progress::EXCLUDED_AT_SEGMENTATION,
            one.exclusions.len() as u64,
        );
        emit.count(progress::SEGMENTS, one.profiles.len() as u64);
        emit.count(progress::AUDIENCE_BATCHES, two.batches);
        Ok(vec![outputs::audience_ledger(
            &campaign.campaign_id,
            one,
            two.batches,
        )?])
    }
}

fn record_metrics(one: &PassOne) {
    let m = segmentation_metrics();
    m.customers
        .with_label_values(&["segmented"])
        .inc_by(one.segmented());
    for exclusion in &one.exclusions {
        m.customers
            .with_label_values(&[outcome_label(exclusion.reason)])
            .inc();
    }
}

fn stage_error(e: ScanError) -> StageError {
    match e {
        ScanError::Open { .. } | ScanError::Header { .. } | ScanError::Encode(_) => {
            StageError::Permanent(e.to_string())
        }
        // A read error mid-file, a file replaced between passes, or a publisher that
        // went away: the next attempt reads everything again.
        ScanError::Read { .. } | ScanError::Changed(_) | ScanError::Stopped => {
            StageError::Transient(e.to_string())
        }
    }
}

fn task_failed(e: tokio::task::JoinError) -> StageError {
    // A panic would recur on every attempt; a cancelled task (shutdown) would not.
    if e.is_panic() {
        StageError::Permanent(format!("segmentation reader panicked: {e}"))
    } else {
        StageError::Transient(format!("segmentation reader task stopped: {e}"))
    }
}
