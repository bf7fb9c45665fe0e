//! `cpo status CAMPAIGN`: where a campaign stands, from the system of record
//! (assigned, excluded by reason, sent, failed: `commands::record`) and the
//! progress counters the stages keep in Redis for what only they know (the
//! audience size, exclusions at segmentation, dead letters; see
//! `cpo_shared::progress`). Completion is decided on the store's counts.
//!
//! Reading is side-effect free, so any number of operators, dashboards or a
//! CRM can ask at once.
//! Exit codes: 0 the campaign is known (with `--wait`: complete), 3 no stage
//! has reported it (not started, another key prefix, or expired), 4 `--wait`
//! timed out.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use cpo_shared::config::Settings;
use cpo_shared::envelope::now_ms;
use cpo_shared::progress::{self, CampaignProgress, CampaignState, ProgressStore};
use cpo_shared::redis_cache::{RedisCache, RedisConfig};
use cpo_shared::runtime::RuntimeConfig;

use super::record::{self, RecordView};

/// Exit code when no stage has reported the campaign.
const UNKNOWN: u8 = 3;
/// Exit code when `--wait` gave up.
const TIMED_OUT: u8 = 4;

#[derive(Args)]
pub struct StatusArgs {
    /// Campaign id.
    pub campaign_id: String,
    /// Print JSON (counters, state, outstanding customers, dead letters).
    #[arg(long)]
    pub json: bool,
    /// Wait until the campaign is complete (polling every half second).
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds (exit code 4).
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
}

pub fn status(args: StatusArgs, config: Option<&Path>) -> anyhow::Result<u8> {
    super::init_logging(true, false);
    let settings = Settings::load(config)?;
    let redis: RedisConfig = settings.section("redis")?;
    let runtime_config: RuntimeConfig = settings.section("runtime")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        // Completion and counts come from the store; the stages' progress
        // counters add what only they know (audience size, dead letters).
        let store = crate::wiring::open_store(&settings).await?;
        let cache = RedisCache::new(&redis)?;
        let progress_store = ProgressStore::new(
            std::sync::Arc::new(cache),
            Duration::from_secs(runtime_config.progress_ttl_s),
        );
        let deadline = Instant::now() + Duration::from_secs(args.timeout);
        loop {
            let progress = match progress_store.read(&args.campaign_id).await {
                Ok(read) => read,
                Err(e) => {
                    eprintln!(
                        "warning: cannot read the progress counters in Redis ({e}); the store only"
                    );
                    None
                }
            };
            let view = match RecordView::read(store.as_ref(), &args.campaign_id).await {
                Ok(view) => view,
                // While waiting, a store hiccup is not the end: ask again until the deadline.
                Err(e) if args.wait && Instant::now() < deadline => {
                    eprintln!("warning: {e:#}; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let done = record::state(progress.as_ref(), &view) == Some(CampaignState::Complete);
            if !args.wait || done || Instant::now() >= deadline {
                return Ok(report(&args, progress.as_ref(), &view, args.wait && !done));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

fn report(
    args: &StatusArgs,
    progress: Option<&CampaignProgress>,
    view: &RecordView,
    timed_out: bool,
) -> u8 {
    if progress.is_none() && !view.known() {
        if args.json {
            println!(
                "{}",
                serde_json::json!({"campaign_id": args.campaign_id, "state": "unknown"})
            );
        } else {
            println!(
                "campaign {}: unknown (neither the store nor a stage knows it: not enqueued \
                 yet, another store or key prefix, or its counters expired)",
                args.campaign_id
            );
        }
        return if timed_out { TIMED_OUT } else { UNKNOWN };
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&status_json(&args.campaign_id, progress, view))
                .unwrap_or_default()
        );
    } else {
        print!("{}", render(&args.campaign_id, progress, view, now_ms()));
    }
    if timed_out { TIMED_OUT } else { 0 }
}

/// The `cpo status --json` document: state, outstanding customers and dead
/// letters, the stages' counters, and `record` (the store's counts).
pub fn status_json(
    campaign_id: &str,
    progress: Option<&CampaignProgress>,
    view: &RecordView,
) -> serde_json::Value {
    let state = record::state(progress, view).unwrap_or(CampaignState::Starting);
    serde_json::json!({
        "campaign_id": campaign_id,
        "state": state,
        "outstanding": record::outstanding(progress, view),
        "dead_letters_pending": progress.map_or(0, |p| p.dead_letters_pending()),
        "counters": progress.map(|p| p.counters.clone()).unwrap_or_default(),
        "record": record::record_json(view),
        "delivery": record::delivery_json(progress, view),
    })
}

/// The human report: one line per stage of the pipeline.
fn render(
    campaign_id: &str,
    progress: Option<&CampaignProgress>,
    view: &RecordView,
    now_ms: u64,
) -> String {
    use std::fmt::Write;
    let state = record::state(progress, view).unwrap_or(CampaignState::Starting);
    let mut out = String::new();
    let _ = writeln!(out, "campaign {campaign_id}: {}", state.as_str());
    let total = view.counts.customers_total.or_else(|| {
        progress.and_then(|p| {
            p.counters
                .get(progress::CUSTOMERS_TOTAL)
                .map(|n| (*n).max(0) as u64)
        })
    });
    match (total, record::outstanding(progress, view)) {
        (Some(total), Some(outstanding)) => {
            let _ = writeln!(
                out,
                "  customers      {total} total: {} delivered, {} excluded, {} outstanding",
                record::delivered(progress, view),
                record::excluded(progress, view),
                outstanding
            );
        }
        _ => {
            let _ = writeln!(out, "  customers      not read yet");
        }
    }
    out.push_str(&record::record_line(view));
    out.push_str(&record::delivery_lines(progress, view));
    let Some(p) = progress else {
        let _ = writeln!(
            out,
            "  progress       no counters in Redis (expired, or never kept)"
        );
        return out;
    };
    let n = |field: &str| p.get(field);
    let _ = writeln!(
        out,
        "  segmentation   {} segments, {} batches, {} excluded",
        n(progress::SEGMENTS),
        n(progress::AUDIENCE_BATCHES),
        n(progress::EXCLUDED_AT_SEGMENTATION)
    );
    let _ = writeln!(
        out,
        "  content        {} briefs; variants: {} generated, {} approved, {} blocked",
        n(progress::SEGMENTS_RETRIEVED),
        n(progress::VARIANTS_GENERATED),
        n(progress::VARIANTS_APPROVED),
        n(progress::VARIANTS_BLOCKED)
    );
    let _ = writeln!(
        out,
        "  assignment     {} of {} batches: {} assigned ({} fallbacks, {} merge values replaced), {} excluded",
        n(progress::BATCHES_ASSIGNED),
        n(progress::AUDIENCE_BATCHES),
        n(progress::CUSTOMERS_ASSIGNED),
        n(progress::FALLBACKS),
        n(progress::MERGE_VALUES_REPLACED),
        n(progress::EXCLUDED_AT_ASSIGNMENT)
    );
    let _ = writeln!(
        out,
        "  delivery       {} messages, {} refused",
        n(progress::MESSAGES_DELIVERED),
        n(progress::MESSAGES_REFUSED)
    );
    let dead = p.dead_letters();
    if dead.is_empty() {
        let _ = writeln!(out, "  dead letters   none");
    } else {
        let replayed = p.replayed();
        let parts: Vec<String> = dead
            .iter()
            .flat_map(|(stage, kinds)| {
                let replayed = &replayed;
                kinds.iter().map(move |(kind, count)| {
                    let again = replayed
                        .get(stage)
                        .and_then(|k| k.get(kind))
                        .copied()
                        .unwrap_or(0);
                    if again > 0 {
                        format!("{stage} {kind} {count} ({again} replayed)")
                    } else {
                        format!("{stage} {kind} {count}")
                    }
                })
            })
            .collect();
        let _ = writeln!(
            out,
            "  dead letters   {} (see `cpo dlq list`)",
            parts.join(", ")
        );
    }
    let ago = |field: &str| {
        u64::try_from(n(field))
            .ok()
            .filter(|ms| *ms > 0)
            .map(|ms| format!("{:.1} s ago", now_ms.saturating_sub(ms) as f64 / 1000.0))
    };
    let _ = writeln!(
        out,
        "  enqueued       {}; last update {}",
        ago(progress::ENQUEUED_MS).unwrap_or_else(|| "unknown".into()),
        ago(progress::UPDATED_MS).unwrap_or_else(|| "unknown".into())
    );
    out
}

#[cfg(test)]
mod tests {
    use cpo_shared::store::CampaignCounts;

    use super::*;

    fn progress(fields: &[(&str, i64)]) -> CampaignProgress {
        CampaignProgress {
            campaign_id: "spring".into(),
            counters: fields.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    fn view(assigned: u64, excluded: &[(&str, u64)], sent: u64) -> RecordView {
        RecordView {
            campaign: None,
            counts: CampaignCounts {
                assigned,
                excluded_by_reason: excluded.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
                sent,
                ..CampaignCounts::default()
            },
            ..RecordView::default()
        }
    }

    #[test]
    fn the_report_names_every_stage_and_the_dead_letters() {
        let p = progress(&[
            (progress::CUSTOMERS_TOTAL, 100),
            (progress::EXCLUDED_AT_SEGMENTATION, 4),
            (progress::SEGMENTS, 3),
            (progress::AUDIENCE_BATCHES, 2),
            (progress::VARIANTS_GENERATED, 9),
            (progress::VARIANTS_APPROVED, 8),
            (progress::VARIANTS_BLOCKED, 1),
            (progress::BATCHES_ASSIGNED, 1),
            (progress::CUSTOMERS_ASSIGNED, 50),
            (progress::MESSAGES_DELIVERED, 50),
            ("dead_letters:experimentation:timeout", 1),
            ("dead_letters:safety:blocked", 1),
            (progress::ENQUEUED_MS, 1_000),
            (progress::UPDATED_MS, 9_000),
        ]);
        // The store: 48 assigned and 2 over the cap in the batch that went through.
        let v = view(48, &[("frequency_cap", 2)], 48);
        let text = render("spring", Some(&p), &v, 10_000);
        assert!(
            text.starts_with("campaign spring: waiting on dead letters\n"),
            "{text}"
        );
        assert!(
            text.contains("100 total: 50 delivered, 6 excluded, 46 outstanding"),
            "{text}"
        );
        assert!(
            text.contains(
                "record         48 assigned, 2 excluded (frequency_cap 2); sends: 48 sent"
            ),
            "{text}"
        );
        assert!(text.contains("1 of 2 batches: 50 assigned"), "{text}");
        assert!(
            text.contains("experimentation timeout 1, safety blocked 1"),
            "{text}"
        );
        assert!(text.contains("9.0 s ago; last update 1.0 s ago"), "{text}");

        let json = status_json("spring", Some(&p), &v);
        assert_eq!(json["state"], "waiting");
        assert_eq!(json["outstanding"], 46);
        assert_eq!(json["dead_letters_pending"], 1);
        assert_eq!(json["counters"]["customers_assigned"], 50);
        assert_eq!(json["record"]["excluded_by_reason"]["frequency_cap"], 2);
        assert_eq!(json["record"]["sent"], 48);
    }

    #[test]
    fn complete_needs_every_customer_in_the_store_and_every_message_sent() {
        let p = progress(&[
            (progress::CUSTOMERS_TOTAL, 10),
            (progress::EXCLUDED_AT_SEGMENTATION, 1),
        ]);
        let settled = view(6, &[("unsubscribed", 1), ("bounced", 2)], 5);
        assert_eq!(
            record::state(Some(&p), &settled),
            Some(CampaignState::Running)
        );
        let sent = view(6, &[("unsubscribed", 1), ("bounced", 2)], 6);
        assert_eq!(
            record::state(Some(&p), &sent),
            Some(CampaignState::Complete)
        );
        let json = status_json("spring", Some(&p), &sent);
        assert_eq!(json["state"], "complete");
        assert_eq!(json["outstanding"], 0);
        assert_eq!(json["record"]["excluded"], 3);
        // expired counters: the store's own state of the campaign
        let mut stored = view(6, &[], 6);
        assert_eq!(record::state(None, &stored), Some(CampaignState::Starting));
        stored.campaign = Some(cpo_shared::store::CampaignRecord {
            campaign_id: "spring".into(),
            request: "{}".into(),
            state: "complete".into(),
            updated_at_ms: 0,
        });
        assert_eq!(record::state(None, &stored), Some(CampaignState::Complete));
        assert_eq!(record::state(None, &view(0, &[], 0)), None);

        // The store holds the audience: it alone decides, Redis or not.
        let mut audience = view(6, &[("no_consent", 1), ("bounced", 3)], 5);
        audience.counts.customers_total = Some(10);
        assert_eq!(record::state(None, &audience), Some(CampaignState::Running));
        audience.counts.sent = 6;
        assert_eq!(
            record::state(None, &audience),
            Some(CampaignState::Complete)
        );
        let text = render("spring", None, &audience, 0);
        assert!(
            text.contains("10 total: 6 delivered, 4 excluded, 0 outstanding"),
            "{text}"
        );
        // and the Redis count of segmentation's exclusions is not added twice
        assert_eq!(record::excluded(Some(&p), &audience), 4);
    }

    #[test]
    fn a_campaign_dead_lettered_before_its_audience_was_read_is_waiting() {
        let p = progress(&[("dead_letters:segmentation:permanent", 1)]);
        let text = render("spring", Some(&p), &RecordView::default(), 0);
        assert!(
            text.starts_with("campaign spring: waiting on dead letters\n"),
            "{text}"
        );
        assert!(text.contains("customers      not read yet"), "{text}");
        assert!(text.contains("segmentation permanent 1"), "{text}");
        let json = status_json("spring", Some(&p), &RecordView::default());
        assert_eq!(json["state"], "waiting");
        assert_eq!(json["dead_letters_pending"], 1);
    }

    #[test]
    fn a_campaign_without_an_audience_yet_says_so() {
        let p = progress(&[(progress::VARIANTS_GENERATED, 3)]);
        let text = render("spring", Some(&p), &RecordView::default(), 0);
        assert!(text.starts_with("campaign spring: starting"), "{text}");
        assert!(text.contains("customers      not read yet"), "{text}");
        assert!(text.contains("enqueued       unknown"), "{text}");
    }
}
