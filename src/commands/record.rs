//! Reading the system of record from the command line: `cpo analyze
//! --campaign ID` (the campaign's assignments and events from the store), and
//! the store side of `cpo status` and `cpo collect`. Reading consumes nothing,
//! so any number of callers may read at once.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use cpo_analysis::cli::AnalyzeArgs;
use cpo_analysis::run::record::{StoredAssignment, StoredCampaign, StoredEvent};
use cpo_shared::config::Settings;
use cpo_shared::model::{AudienceSource, CampaignRequest};
use cpo_shared::store::{CampaignCounts, CampaignRecord, Store};

/// What the store says about one campaign.
#[derive(Debug, Clone, Default)]
pub struct RecordView {
    pub campaign: Option<CampaignRecord>,
    pub counts: CampaignCounts,
}

impl RecordView {
    pub async fn read(store: &dyn Store, campaign_id: &str) -> anyhow::Result<Self> {
        Ok(Self {
            campaign: store
                .campaign(campaign_id)
                .await
                .context("cannot read the campaign from the store")?,
            counts: store
                .campaign_counts(campaign_id)
                .await
                .context("cannot count the campaign in the store")?,
        })
    }

    /// Whether the store knows anything of the campaign.
    pub fn known(&self) -> bool {
        self.campaign.is_some()
            || self.counts.assigned > 0
            || !self.counts.excluded_by_reason.is_empty()
    }
}

/// A campaign read from the store into the analysis crate's inputs.
pub async fn stored_campaign(
    store: &dyn Store,
    campaign_id: &str,
) -> anyhow::Result<StoredCampaign> {
    let record = store.campaign(campaign_id).await?;
    let request: Option<CampaignRequest> = record
        .as_ref()
        .and_then(|r| serde_json::from_str(&r.request).ok());
    let arm_weights = request
        .as_ref()
        .and_then(|r| r.arms().ok())
        .map(|arms| arms.weight_map());
    let customers_file = request.as_ref().and_then(|r| match &r.audience {
        AudienceSource::Csv { path } => Some(
            std::fs::canonicalize(path)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| path.clone()),
        ),
        AudienceSource::Inline { .. } => None,
    });
    let assignments = store
        .assignments_for_campaign(campaign_id)
        .await
        .context("cannot read the assignments")?
        .into_iter()
        .map(|a| StoredAssignment {
            message_id: a.message_id,
            customer_id: a.customer_id,
            segment: a.segment,
            arm: a.arm,
        })
        .collect();
    let events = store
        .events_for_campaign(campaign_id)
        .await
        .context("cannot read the events")?
        .into_iter()
        .filter_map(|e| {
            Some(StoredEvent {
                message_id: e.message_id?,
                provider_event_id: e.provider_event_id,
                event_type: e.event_type,
                occurred_at_ms: e.occurred_at_ms,
                raw: e.raw,
            })
        })
        .collect();
    Ok(StoredCampaign {
        campaign_id: campaign_id.to_string(),
        assignments,
        events,
        arm_weights,
        customers_file,
    })
}

/// `cpo analyze --campaign ID`.
pub fn analyze(args: AnalyzeArgs, config: Option<&Path>) -> anyhow::Result<u8> {
    super::init_logging(true, false);
    let settings = Settings::load(config)?;
    let campaign_id = args.campaign.clone().context("--campaign ID is required")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let campaign = rt.block_on(async {
        let store: Arc<dyn Store> = crate::wiring::open_store(&settings).await?;
        stored_campaign(store.as_ref(), &campaign_id).await
    })?;
    cpo_analysis::cli::run_analyze_stored(args, &campaign)?;
    Ok(0)
}
