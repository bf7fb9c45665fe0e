//! `cpo collect CAMPAIGN --out DIR`: wait until the campaign is complete, as
//! the store and the progress counters say (the rule of `cpo status`), then
//! write its outbox (merged from every delivery replica's `--outbox`) and a
//! summary whose counts come from the store. Nothing is consumed, so any
//! number of collectors, for any campaigns, may run at once.

use std::collections::BTreeMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cpo_shared::config::Settings;
use cpo_shared::model::CampaignRequest;
use cpo_shared::progress::{self, CampaignProgress, CampaignState, ProgressStore};
use cpo_shared::redis_cache::{RedisCache, RedisConfig};
use cpo_shared::runtime::RuntimeConfig;
use cpo_shared::store::Store;

use super::fleet::CollectArgs;
use super::record::{self, RecordView};
use crate::embedded::Summary;

pub fn collect(args: CollectArgs, config: Option<&Path>) -> anyhow::Result<u8> {
    super::init_logging(true, false);
    let settings = Settings::load(config)?;
    let redis: RedisConfig = settings.section("redis")?;
    let runtime_config: RuntimeConfig = settings.section("runtime")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let summary = rt.block_on(async {
        let store = crate::wiring::open_store(&settings).await?;
        let progress_store = ProgressStore::new(
            std::sync::Arc::new(RedisCache::new(&redis)?),
            Duration::from_secs(runtime_config.progress_ttl_s),
        );
        let deadline = Instant::now() + Duration::from_secs(args.timeout);
        let (progress, view) = loop {
            if Instant::now() > deadline {
                bail!(
                    "campaign {} not complete before the timeout",
                    args.campaign_id
                );
            }
            // Either read may fail while a service restarts: look again next round.
            let progress = progress_store.read(&args.campaign_id).await;
            let view = RecordView::read(store.as_ref(), &args.campaign_id).await;
            match (progress, view) {
                (Ok(Some(progress)), Ok(view))
                    if record::state(Some(&progress), &view) == Some(CampaignState::Complete) =>
                {
                    break (progress, view);
                }
                (Err(e), _) => eprintln!("warning: cannot read the progress counters ({e})"),
                (_, Err(e)) => eprintln!("warning: {e:#}"),
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        summary_of(store.as_ref(), &args.campaign_id, &progress, &view).await
    })?;

    std::fs::create_dir_all(&args.out)?;
    let out_outbox = args.out.join("outbox.jsonl");
    let mut summary = summary;
    summary.messages = merge_outboxes(&args.outbox, &out_outbox, &args.campaign_id)?;
    cpo_delivery::canonicalize_outbox(&out_outbox)?;
    let file = std::fs::File::create(args.out.join("summary.json"))?;
    serde_json::to_writer_pretty(BufWriter::new(file), &summary)?;
    println!(
        "campaign {}: {} customers, {} assigned, {} excluded, {} messages, {} dead letters",
        summary.campaign_id,
        summary.customers_total,
        summary.customers_assigned,
        summary.customers_excluded,
        summary.messages,
        summary.dead_lettered
    );
    Ok(0)
}

/// The summary of a complete campaign: customers from the store (assigned,
/// excluded by reason, arms), what only the stages counted from Redis (the
/// audience size, exclusions at segmentation under `segmentation`, segments,
/// variants, dead letters).
async fn summary_of(
    store: &dyn Store,
    campaign_id: &str,
    progress: &CampaignProgress,
    view: &RecordView,
) -> anyhow::Result<Summary> {
    let n = |field: &str| progress.get(field).max(0) as u64;
    let request: Option<CampaignRequest> = view
        .campaign
        .as_ref()
        .and_then(|c| serde_json::from_str(&c.request).ok());
    let mut per_arm: BTreeMap<String, u64> = BTreeMap::new();
    for assignment in store.assignments_for_campaign(campaign_id).await? {
        *per_arm.entry(assignment.arm).or_default() += 1;
    }
    let mut excluded_by_reason = view.counts.excluded_by_reason.clone();
    // A store without the audience (recorded before segmentation wrote it) has
    // only assignment's exclusions: segmentation's count comes from Redis.
    let at_segmentation = match view.counts.customers_total {
        Some(_) => 0,
        None => n(progress::EXCLUDED_AT_SEGMENTATION),
    };
    if at_segmentation > 0 {
        excluded_by_reason.insert("segmentation".into(), at_segmentation);
    }
    let dead_lettered: i64 = progress
        .dead_letters()
        .values()
        .flat_map(|k| k.values())
        .sum();
    Ok(Summary {
        campaign_id: campaign_id.to_string(),
        customers_file: request.as_ref().and_then(|r| match &r.audience {
            cpo_shared::model::AudienceSource::Csv { path } => Some(path.clone()),
            cpo_shared::model::AudienceSource::Inline { .. } => None,
        }),
        customers_total: view
            .counts
            .customers_total
            .unwrap_or_else(|| n(progress::CUSTOMERS_TOTAL)),
        customers_assigned: view.counts.assigned,
        customers_excluded: view.counts.excluded() + at_segmentation,
        excluded_by_reason,
        segments: n(progress::SEGMENTS),
        variants_generated: n(progress::VARIANTS_GENERATED),
        variants_approved: n(progress::VARIANTS_APPROVED),
        variants_blocked: n(progress::VARIANTS_BLOCKED),
        messages: 0,
        fallbacks: n(progress::FALLBACKS),
        merge_values_replaced: n(progress::MERGE_VALUES_REPLACED),
        dead_lettered: dead_lettered.max(0) as u64,
        per_arm,
        arm_weights: request
            .as_ref()
            .map(crate::embedded::effective_weights)
            .unwrap_or_default(),
        simulated: false,
    })
}

/// The campaign's lines of every outbox (one per delivery replica) into `to`.
/// Every line counts, duplicates included: a duplicate send must show.
fn merge_outboxes(from: &[PathBuf], to: &Path, campaign_id: &str) -> anyhow::Result<u64> {
    let mut writer = BufWriter::new(std::fs::File::create(to)?);
    let needle = format!("\"campaign_id\":\"{campaign_id}\"");
    let mut n = 0;
    for path in from {
        if !path.exists() {
            continue;
        }
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot read the outbox {}", path.display()))?;
        for line in std::io::BufReader::new(file).lines() {
            let line = line?;
            if line.contains(&needle) {
                writer.write_all(line.as_bytes())?;
                writer.write_all(b"\n")?;
                n += 1;
            }
        }
    }
    writer.flush()?;
    Ok(n)
}
