//! `cpo status CAMPAIGN`: where a campaign stands in the fleet, from the
//! progress counters the stages keep in Redis (see `cpo_shared::progress`).
//!
//! Reading is side-effect free, so any number of operators, dashboards or a
//! CRM can ask at once (unlike `cpo collect`, which consumes the ledger).
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
use serde::Serialize;

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
        let cache = RedisCache::new(&redis)?;
        cache.ping().await.context("cannot reach Redis")?;
        let store = ProgressStore::new(
            std::sync::Arc::new(cache),
            Duration::from_secs(runtime_config.progress_ttl_s),
        );
        let deadline = Instant::now() + Duration::from_secs(args.timeout);
        loop {
            let read = match store.read(&args.campaign_id).await {
                Ok(read) => read,
                // While waiting, a Redis hiccup is not the end: ask again until the deadline.
                Err(e) if args.wait && Instant::now() < deadline => {
                    eprintln!("warning: cannot read the progress counters ({e}); trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Err(e) => return Err(e).context("cannot read the progress counters"),
            };
            let done = read
                .as_ref()
                .is_some_and(|p| p.state() == CampaignState::Complete);
            if !args.wait || done || Instant::now() >= deadline {
                return Ok(report(&args, read.as_ref(), args.wait && !done));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

fn report(args: &StatusArgs, progress: Option<&CampaignProgress>, timed_out: bool) -> u8 {
    let Some(progress) = progress else {
        if args.json {
            println!(
                "{}",
                serde_json::json!({"campaign_id": args.campaign_id, "state": "unknown"})
            );
        } else {
            println!(
                "campaign {}: unknown (no stage has reported it: not enqueued yet, \
                 another key prefix, or its counters expired)",
                args.campaign_id
            );
        }
        return if timed_out { TIMED_OUT } else { UNKNOWN };
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&StatusJson::from(progress)).unwrap_or_default()
        );
    } else {
        print!("{}", render(progress, now_ms()));
    }
    if timed_out { TIMED_OUT } else { 0 }
}

/// The `cpo status --json` document (also the gateway's `GET /v1/campaigns/{id}`).
#[derive(Serialize)]
pub(crate) struct StatusJson<'a> {
    campaign_id: &'a str,
    state: CampaignState,
    outstanding: Option<i64>,
    dead_letters_pending: i64,
    counters: &'a std::collections::BTreeMap<String, i64>,
}

impl<'a> From<&'a CampaignProgress> for StatusJson<'a> {
    fn from(p: &'a CampaignProgress) -> Self {
        Self {
            campaign_id: &p.campaign_id,
            state: p.state(),
            outstanding: p.outstanding(),
            dead_letters_pending: p.dead_letters_pending(),
            counters: &p.counters,
        }
    }
}

/// The human report: one line per stage of the pipeline.
fn render(p: &CampaignProgress, now_ms: u64) -> String {
    use std::fmt::Write;
    let n = |field: &str| p.get(field);
    let mut out = String::new();
    let _ = writeln!(out, "campaign {}: {}", p.campaign_id, p.state().as_str());
    match p.outstanding() {
        Some(outstanding) => {
            let _ = writeln!(
                out,
                "  customers      {} total: {} delivered, {} excluded, {} outstanding",
                n(progress::CUSTOMERS_TOTAL),
                n(progress::MESSAGES_DELIVERED),
                n(progress::EXCLUDED_AT_SEGMENTATION) + n(progress::EXCLUDED_AT_ASSIGNMENT),
                outstanding
            );
        }
        None => {
            let _ = writeln!(out, "  customers      not read yet");
        }
    }
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
    use super::*;

    fn progress(fields: &[(&str, i64)]) -> CampaignProgress {
        CampaignProgress {
            campaign_id: "spring".into(),
            counters: fields.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
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
        let text = render(&p, 10_000);
        assert!(
            text.starts_with("campaign spring: waiting on dead letters\n"),
            "{text}"
        );
        assert!(
            text.contains("100 total: 50 delivered, 4 excluded, 46 outstanding"),
            "{text}"
        );
        assert!(text.contains("1 of 2 batches: 50 assigned"), "{text}");
        assert!(
            text.contains("experimentation timeout 1, safety blocked 1"),
            "{text}"
        );
        assert!(text.contains("9.0 s ago; last update 1.0 s ago"), "{text}");

        let json = serde_json::to_value(StatusJson::from(&p)).unwrap();
        assert_eq!(json["state"], "waiting");
        assert_eq!(json["outstanding"], 46);
        assert_eq!(json["dead_letters_pending"], 1);
        assert_eq!(json["counters"]["customers_assigned"], 50);
    }

    #[test]
    fn a_campaign_dead_lettered_before_its_audience_was_read_is_waiting() {
        let p = progress(&[("dead_letters:segmentation:permanent", 1)]);
        let text = render(&p, 0);
        assert!(
            text.starts_with("campaign spring: waiting on dead letters\n"),
            "{text}"
        );
        assert!(text.contains("customers      not read yet"), "{text}");
        assert!(text.contains("segmentation permanent 1"), "{text}");
        let json = serde_json::to_value(StatusJson::from(&p)).unwrap();
        assert_eq!(json["state"], "waiting");
        assert_eq!(json["dead_letters_pending"], 1);
    }

    #[test]
    fn a_campaign_without_an_audience_yet_says_so() {
        let text = render(&progress(&[(progress::VARIANTS_GENERATED, 3)]), 0);
        assert!(text.starts_with("campaign spring: starting"), "{text}");
        assert!(text.contains("customers      not read yet"), "{text}");
        assert!(text.contains("enqueued       unknown"), "{text}");
    }
}
