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
use cpo_shared::store::{CampaignCounts, CampaignRecord, SendRecord, Store};

/// How many failure reasons `cpo status` names.
pub const TOP_REASONS: u32 = 5;
/// How many unconfirmed claims `cpo status` lists.
pub const UNCONFIRMED_LISTED: u32 = 20;

/// What the store says about one campaign.
#[derive(Debug, Clone, Default)]
pub struct RecordView {
    pub campaign: Option<CampaignRecord>,
    pub counts: CampaignCounts,
    /// The most frequent reasons of failed sends (`sends.last_error`), with counts.
    pub failure_reasons: Vec<(String, u64)>,
    /// Claims whose worker stopped before confirming them (most recent first).
    pub unconfirmed: Vec<SendRecord>,
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
            failure_reasons: store
                .failure_reasons(campaign_id, TOP_REASONS)
                .await
                .context("cannot summarize the campaign's failed sends")?,
            unconfirmed: store
                .campaign_unconfirmed(campaign_id, UNCONFIRMED_LISTED)
                .await
                .context("cannot list the campaign's unconfirmed sends")?,
        })
    }

    /// The campaign state delivery wrote when the daily quota was spent
    /// (`paused until ...`), if it is paused.
    pub fn paused_until(&self) -> Option<&str> {
        self.campaign
            .as_ref()
            .map(|c| c.state.as_str())
            .filter(|s| s.starts_with("paused until"))
    }

    /// Whether the store knows anything of the campaign.
    pub fn known(&self) -> bool {
        self.campaign.is_some()
            || self.counts.customers_total.is_some()
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

/// Where a campaign stands. The store accounts for every customer once
/// segmentation recorded the audience (its total and exclusions) and
/// experimentation the assignments and its exclusions; complete when none is
/// outstanding and every assigned message has an outcome. The progress
/// counters in Redis add the dead letters (and stand in for a store without
/// the audience, written before it was recorded there).
pub fn state(
    progress: Option<&cpo_shared::progress::CampaignProgress>,
    view: &RecordView,
) -> Option<cpo_shared::progress::CampaignState> {
    use cpo_shared::progress::CampaignState;
    let pending = progress.map_or(0, |p| p.dead_letters_pending());
    if progress.is_none() && !view.known() {
        return None;
    }
    Some(match outstanding(progress, view) {
        None if pending > 0 => CampaignState::Waiting,
        None if view
            .campaign
            .as_ref()
            .is_some_and(|c| c.state == "complete") =>
        {
            CampaignState::Complete
        }
        None => CampaignState::Starting,
        Some(0) if delivered(progress, view) >= view.counts.assigned => CampaignState::Complete,
        Some(_) if pending > 0 => CampaignState::Waiting,
        Some(_) => CampaignState::Running,
    })
}

/// Messages with an outcome: the store's sends (sent or failed). Until every
/// delivery worker writes `sends`, the progress counter of delivered messages
/// stands in when it is ahead.
pub fn delivered(
    progress: Option<&cpo_shared::progress::CampaignProgress>,
    view: &RecordView,
) -> u64 {
    let stored = view.counts.sent + view.counts.failed;
    let counted = progress
        .map(|p| p.get(cpo_shared::progress::MESSAGES_DELIVERED).max(0) as u64)
        .unwrap_or(0);
    stored.max(counted)
}

/// Customers neither assigned nor excluded yet (`None` before the audience is
/// known): from the store alone once it holds the audience.
pub fn outstanding(
    progress: Option<&cpo_shared::progress::CampaignProgress>,
    view: &RecordView,
) -> Option<u64> {
    use cpo_shared::progress as p;
    if let Some(n) = view.counts.outstanding() {
        return Some(n);
    }
    let progress = progress?;
    let total = progress.counters.get(p::CUSTOMERS_TOTAL).copied()?.max(0) as u64;
    let segmentation = progress.get(p::EXCLUDED_AT_SEGMENTATION).max(0) as u64;
    Some(total.saturating_sub(view.counts.assigned + view.counts.excluded() + segmentation))
}

/// Customers excluded in all: the store's, plus those segmentation counted in
/// Redis when the store does not hold the audience.
pub fn excluded(
    progress: Option<&cpo_shared::progress::CampaignProgress>,
    view: &RecordView,
) -> u64 {
    let segmentation = match view.counts.customers_total {
        Some(_) => 0,
        None => progress.map_or(0, |p| {
            p.get(cpo_shared::progress::EXCLUDED_AT_SEGMENTATION).max(0) as u64
        }),
    };
    view.counts.excluded() + segmentation
}

/// The store's part of `cpo status --json` (and of the gateway's campaign answer).
pub fn record_json(view: &RecordView) -> serde_json::Value {
    let c = &view.counts;
    serde_json::json!({
        "customers_total": c.customers_total,
        "assigned": c.assigned,
        "excluded": c.excluded(),
        "excluded_by_reason": c.excluded_by_reason,
        "sent": c.sent,
        "failed": c.failed,
        "in_flight": c.in_flight,
        "events": c.events,
        "campaign_state": view.campaign.as_ref().map(|r| r.state.clone()),
    })
}

/// The store's line of the human `cpo status` report.
pub fn record_line(view: &RecordView) -> String {
    let c = &view.counts;
    let reasons = if c.excluded_by_reason.is_empty() {
        String::new()
    } else {
        let parts: Vec<String> = c
            .excluded_by_reason
            .iter()
            .map(|(reason, n)| format!("{reason} {n}"))
            .collect();
        format!(" ({})", parts.join(", "))
    };
    format!(
        "  record         {} assigned, {} excluded{reasons}; sends: {} sent, {} failed, {} in flight; {} events\n",
        c.assigned,
        c.excluded(),
        c.sent,
        c.failed,
        c.in_flight,
        c.events
    )
}

/// Messages assigned but without an outcome, a live claim or a suppression at
/// the send: queued for delivery, or waiting there on the shared rate limit.
pub fn waiting_to_send(
    progress: Option<&cpo_shared::progress::CampaignProgress>,
    view: &RecordView,
) -> u64 {
    let c = &view.counts;
    let suppressed = progress.map_or(0, |p| {
        p.get(cpo_shared::progress::MESSAGES_SUPPRESSED).max(0) as u64
    });
    c.assigned
        .saturating_sub(c.sent + c.failed + c.in_flight)
        .saturating_sub(suppressed)
}

/// The delivery part of `cpo status --json`: outcomes, top failure reasons,
/// suppressed at the send, waiting, paused, and the unconfirmed claims.
pub fn delivery_json(
    progress: Option<&cpo_shared::progress::CampaignProgress>,
    view: &RecordView,
) -> serde_json::Value {
    use cpo_shared::progress as p;
    let counter = |field: &str| progress.map_or(0, |pr| pr.get(field).max(0) as u64);
    let reasons: Vec<serde_json::Value> = view
        .failure_reasons
        .iter()
        .map(|(reason, count)| serde_json::json!({"reason": reason, "count": count}))
        .collect();
    let unconfirmed: Vec<serde_json::Value> = view
        .unconfirmed
        .iter()
        .map(|s| {
            serde_json::json!({
                "message_id": s.message_id,
                "sink": s.sink,
                "state": s.state.as_str(),
                "attempts": s.attempts,
                "last_error": s.last_error,
                "updated_at_ms": s.updated_at_ms,
            })
        })
        .collect();
    serde_json::json!({
        "sent": view.counts.sent,
        "failed": view.counts.failed,
        "failure_reasons": reasons,
        "suppressed_at_send": counter(p::MESSAGES_SUPPRESSED),
        "in_flight": view.counts.in_flight,
        "waiting": waiting_to_send(progress, view),
        "paused_until": view.paused_until().map(|s| s.trim_start_matches("paused until ").to_string()),
        "unconfirmed_count": counter(p::MESSAGES_UNCONFIRMED).max(view.unconfirmed.len() as u64),
        "unconfirmed": unconfirmed,
    })
}

/// The delivery lines of the human `cpo status` report.
pub fn delivery_lines(
    progress: Option<&cpo_shared::progress::CampaignProgress>,
    view: &RecordView,
) -> String {
    use std::fmt::Write;
    let json = delivery_json(progress, view);
    let n = |key: &str| json[key].as_u64().unwrap_or(0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  sends          {} sent, {} failed, {} suppressed at send, {} in flight, {} waiting (queued or on the rate limit)",
        n("sent"),
        n("failed"),
        n("suppressed_at_send"),
        n("in_flight"),
        n("waiting"),
    );
    if !view.failure_reasons.is_empty() {
        let parts: Vec<String> = view
            .failure_reasons
            .iter()
            .map(|(reason, count)| format!("{count} × {}", one_line(reason)))
            .collect();
        let _ = writeln!(out, "  failed         {}", parts.join("; "));
    }
    if let Some(until) = json["paused_until"].as_str() {
        let _ = writeln!(
            out,
            "  paused         until {until} (the daily quota is spent; sending resumes then)"
        );
    }
    let unconfirmed = n("unconfirmed_count");
    if unconfirmed > 0 {
        let _ = writeln!(
            out,
            "  unconfirmed    {unconfirmed} claims whose worker stopped mid-send (resolved by delivery.on_unconfirmed):"
        );
        for s in &view.unconfirmed {
            let _ = writeln!(
                out,
                "    {} {} attempt {}: {}",
                s.message_id,
                s.state.as_str(),
                s.attempts,
                one_line(s.last_error.as_deref().unwrap_or(""))
            );
        }
        if unconfirmed > view.unconfirmed.len() as u64 {
            let _ = writeln!(
                out,
                "    ... (the {} most recent listed)",
                view.unconfirmed.len()
            );
        }
    }
    out
}

/// A reason on one line: a server's multi-line reply is joined, control
/// characters (hostile input from a provider) are dropped.
fn one_line(text: &str) -> String {
    text.split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ")
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
