//! The embedded mode: every stage in one process on the in-memory transport,
//! with the in-memory cache. Same stage code and runtime as the fleet; only the
//! transport and cache differ.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cpo_shared::audit::{FileAuditLog, FileHead};
use cpo_shared::cache::{Cache, MemoryCache};
use cpo_shared::config::Settings;
use cpo_shared::dead_letter::{DeadLetter, DeadLetterKind};
use cpo_shared::envelope::{Envelope, derive_id, now_ms};
use cpo_shared::metrics::metrics;
use cpo_shared::model::{
    AudienceSource, CampaignRequest, Exclusion, LedgerEntry, ReplacedValue, SafetyVerdict,
    SegmentProfile, Variant,
};
use cpo_shared::queues;
use cpo_shared::runtime::{Runtime, RuntimeConfig};
use cpo_shared::store::{CampaignRecord, StoreConfig};
use cpo_shared::transport::{MemoryTransport, Publish, Transport};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::wiring;

pub struct Options {
    pub settings: Settings,
    /// Overrides the configured corpus directory.
    pub content_dir: Option<PathBuf>,
    pub out_dir: PathBuf,
    pub progress: bool,
    /// Test hooks: replace the configured generator or safety screen.
    pub generator: Option<Arc<dyn cpo_generation::Generator>>,
    pub screen: Option<Arc<dyn cpo_safety::SafetyScreen>>,
}

/// Transport settings of the embedded mode (config section `embedded`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Messages a work queue holds before publishers wait (backpressure keeps memory flat).
    pub queue_capacity: usize,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self { queue_capacity: 16 }
    }
}

/// `summary.json`.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub campaign_id: String,
    pub customers_file: Option<String>,
    pub customers_total: u64,
    pub customers_assigned: u64,
    pub customers_excluded: u64,
    pub excluded_by_reason: BTreeMap<String, u64>,
    pub segments: u64,
    pub variants_generated: u64,
    pub variants_approved: u64,
    pub variants_blocked: u64,
    pub messages: u64,
    pub fallbacks: u64,
    /// Merge values the screen refused and replaced by their fallback
    /// (listed in `replaced_values.jsonl`).
    pub merge_values_replaced: u64,
    pub dead_lettered: u64,
    pub per_arm: BTreeMap<String, u64>,
    pub arm_weights: BTreeMap<String, f64>,
    pub simulated: bool,
}

pub struct RunReport {
    pub summary: Summary,
    /// Dead letters that are safety blocks: decisions, not failures.
    pub blocked_letters: u64,
    /// Why the campaign itself was dead-lettered (its file or customer list
    /// could not be read or is invalid), if it was.
    pub input_rejected: Option<String>,
}

impl RunReport {
    /// Customers neither assigned nor excluded: must be zero.
    pub fn unaccounted(&self) -> i64 {
        let s = &self.summary;
        s.customers_total as i64 - s.customers_assigned as i64 - s.customers_excluded as i64
    }
}

/// One variant as `variants.json` shows it: the copy and what safety decided.
#[derive(Serialize)]
struct VariantReport<'a> {
    variant_id: &'a str,
    segment: &'a str,
    arm: &'a str,
    subject: &'a str,
    body: &'a str,
    citations: &'a [String],
    generator: &'a str,
    verdict: Option<&'a SafetyVerdict>,
}

pub async fn run(campaign: CampaignRequest, options: Options) -> anyhow::Result<RunReport> {
    let out = &options.out_dir;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    // `cpo run` has locked the directory and refused or removed an earlier
    // run's files (`out_dir.rs`); a library caller owns its directory.
    for stale in crate::out_dir::RUN_FILES {
        let path = out.join(stale);
        if path.exists() {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot replace {}", path.display()))?;
        }
    }
    let embedded: EmbeddedConfig = options.settings.section("embedded")?;
    let runtime_config: RuntimeConfig = options.settings.section("runtime")?;
    let transport = MemoryTransport::new(embedded.queue_capacity);
    let cache: Arc<dyn Cache> = Arc::new(MemoryCache::new());
    let audit_path = out.join("audit.jsonl");
    let audit_key = crate::audit_key::for_output_dir(&options.settings, out)?;
    let audit = Arc::new(FileAuditLog::open(
        &audit_path,
        audit_key,
        Box::new(FileHead::beside(&audit_path)),
    )?);
    let token = CancellationToken::new();
    let runtime = Runtime::new(Arc::new(transport.clone()), runtime_config, token.clone())
        .with_progress(cache.clone());

    // The record outlives the run: suppressions and contacts of earlier runs
    // that used the same store (by default `out/cpo.sqlite` in the working
    // directory) apply to this one.
    let store_config: StoreConfig = options.settings.section("store")?;
    let store = wiring::open_store(&options.settings).await?;
    let address_hasher = crate::address_key::for_store(&options.settings, &store_config.url)?;
    let (signer, pseudonymizer) = wiring::keys(&options.settings, true)?;
    let batch_signer = wiring::batch_signer(&options.settings, true)?;
    let delivery: cpo_delivery::DeliveryConfig = options.settings.section("delivery")?;
    // Into the file outbox nothing reaches a mailbox: the run's send records
    // are its own (removed with its other files), so a re-run writes its
    // outbox again. Suppressions and contacts still come from the record.
    let send_records = match delivery.sink {
        cpo_delivery::SinkKind::Outbox => {
            let url = format!("sqlite://{}", out.join("sends.sqlite").display());
            cpo_shared::store::connect(&StoreConfig {
                url,
                ..store_config.clone()
            })
            .await
            .context("cannot open the run's send records")?
        }
        _ => store.clone(),
    };
    let backends = wiring::Backends {
        settings: &options.settings,
        cache: cache.clone(),
        store: Some(store.clone()),
        send_records: Some(send_records),
        address_hasher: Some(address_hasher),
        redis: None,
        audit: audit.clone(),
        signer,
        batch_signer: Some(batch_signer),
        pseudonymizer,
        content_dir: options.content_dir.as_deref(),
        outbox: out.join("outbox.jsonl"),
        generator: options.generator.clone(),
        screen: options.screen.clone(),
    };
    let mut stages = JoinSet::new();
    wiring::spawn_all(&runtime, &backends, &mut stages)?;

    let campaign_id = campaign.campaign_id.clone();
    let customers_file = match &campaign.audience {
        // Absolute, so `cpo analyze --run` finds the covariates from any directory.
        AudienceSource::Csv { path } => Some(
            std::fs::canonicalize(path)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| path.clone()),
        ),
        AudienceSource::Inline { .. } => None,
    };
    let arm_weights = effective_weights(&campaign);
    store
        .put_campaign(&CampaignRecord {
            campaign_id: campaign_id.clone(),
            request: serde_json::to_string(&campaign)?,
            state: "running".into(),
            updated_at_ms: now_ms() as i64,
        })
        .await
        .context("cannot record the campaign in the store")?;
    let envelope = Envelope::new(
        derive_id(&[&campaign_id, "campaign"]),
        campaign_id.clone(),
        campaign,
    );
    let body = serde_json::to_vec(&envelope)?;
    transport
        .publish(
            queues::CAMPAIGNS,
            Publish {
                id: envelope.id.clone(),
                body,
                delay: None,
            },
        )
        .await?;

    let progress = options.progress.then(progress_bar);
    let idle = transport.wait_idle();
    tokio::pin!(idle);
    loop {
        tokio::select! {
            _ = &mut idle => break,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if let Some(bar) = &progress {
                    bar.set_message(progress_message());
                }
            }
        }
    }
    token.cancel();
    while let Some(joined) = stages.join_next().await {
        joined.context("a stage task failed")??;
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    audit.flush()?;
    drop(backends);
    // Into the file outbox, its lines are the messages; into a real sink, the
    // send records that say `sent` (a 5xx is `failed`, not a message).
    let messages = match delivery.sink {
        cpo_delivery::SinkKind::Outbox => wiring::finish_outbox(&out.join("outbox.jsonl"))?,
        _ => {
            store
                .campaign_counts(&campaign_id)
                .await
                .context("cannot read the campaign's sends from the store")?
                .sent
        }
    };

    let ledger: Vec<LedgerEntry> = transport
        .drain(queues::LEDGER)
        .iter()
        .map(|b| serde_json::from_slice::<Envelope<LedgerEntry>>(b).map(|e| e.payload))
        .collect::<Result<_, _>>()
        .context("undecodable ledger entry")?;
    let dead_letters: Vec<DeadLetter> = transport
        .drain(queues::DEAD_LETTER)
        .iter()
        .map(|b| serde_json::from_slice(b))
        .collect::<Result<_, _>>()
        .context("undecodable dead letter")?;

    let mut summary = Summary {
        campaign_id,
        customers_file,
        arm_weights,
        ..Summary::default()
    };
    summary.dead_lettered = dead_letters.len() as u64;
    let blocked_letters = dead_letters
        .iter()
        .filter(|l| l.kind == DeadLetterKind::Blocked)
        .count() as u64;
    let input_rejected = dead_letters
        .iter()
        .find(|l| l.queue == queues::CAMPAIGNS)
        .map(|l| l.reason.clone());
    write_jsonl(&out.join("dead_letters.jsonl"), &dead_letters)?;
    summarize(&ledger, &mut summary, out)?;
    summary.messages = messages;
    let file = File::create(out.join("summary.json"))?;
    serde_json::to_writer_pretty(BufWriter::new(file), &summary)?;
    let report = RunReport {
        summary,
        blocked_letters,
        input_rejected,
    };
    let state = if report.unaccounted() == 0 && report.input_rejected.is_none() {
        "complete"
    } else {
        "incomplete"
    };
    store
        .set_campaign_state(&report.summary.campaign_id, state, now_ms() as i64)
        .await
        .context("cannot record the campaign's state in the store")?;
    Ok(report)
}

/// The weight of every arm, by the rule the stages share; a campaign that
/// breaks it has no arms (and `cpo run` refuses it before it starts).
pub fn effective_weights(campaign: &CampaignRequest) -> BTreeMap<String, f64> {
    campaign
        .arms()
        .map(|arms| arms.weight_map())
        .unwrap_or_default()
}

pub fn summarize(ledger: &[LedgerEntry], summary: &mut Summary, out: &Path) -> anyhow::Result<()> {
    let mut segments: Vec<&SegmentProfile> = Vec::new();
    let mut exclusions: Vec<&Exclusion> = Vec::new();
    let mut replaced: Vec<&ReplacedValue> = Vec::new();
    let mut variants: Vec<&Variant> = Vec::new();
    let mut verdicts: BTreeMap<&str, &SafetyVerdict> = BTreeMap::new();
    for entry in ledger {
        match entry {
            LedgerEntry::Audience {
                customers_total,
                segments: profiles,
                exclusions: excluded,
                ..
            } => {
                summary.customers_total += customers_total;
                segments.extend(profiles);
                exclusions.extend(excluded);
            }
            LedgerEntry::Variants {
                variants: generated,
                ..
            } => variants.extend(generated),
            LedgerEntry::Verdict { verdict, .. } => {
                verdicts.insert(&verdict.variant_id, verdict);
            }
            LedgerEntry::Assigned {
                assignments,
                per_arm,
                fallbacks,
                exclusions: excluded,
                replaced_values,
                ..
            } => {
                summary.customers_assigned += assignments;
                summary.fallbacks += fallbacks;
                replaced.extend(replaced_values);
                for (arm, n) in per_arm {
                    *summary.per_arm.entry(arm.clone()).or_default() += n;
                }
                exclusions.extend(excluded);
            }
        }
    }
    summary.segments = segments.len() as u64;
    summary.customers_excluded = exclusions.len() as u64;
    for e in &exclusions {
        let reason = serde_json::to_value(e.reason)?
            .as_str()
            .unwrap_or("unknown")
            .to_string();
        *summary.excluded_by_reason.entry(reason).or_default() += 1;
    }
    summary.variants_generated = variants.len() as u64;
    summary.variants_approved = verdicts
        .values()
        .filter(|v| v.decision == cpo_shared::model::Decision::Approved)
        .count() as u64;
    summary.variants_blocked = summary.variants_generated - summary.variants_approved;

    segments.sort_by(|a, b| a.name.cmp(&b.name));
    let file = File::create(out.join("segments.json"))?;
    serde_json::to_writer_pretty(BufWriter::new(file), &segments)?;

    variants.sort_by(|a, b| (&a.segment, &a.arm).cmp(&(&b.segment, &b.arm)));
    let reports: Vec<VariantReport> = variants
        .iter()
        .map(|v| VariantReport {
            variant_id: &v.variant_id,
            segment: &v.segment,
            arm: &v.arm,
            subject: &v.subject,
            body: &v.body,
            citations: &v.citations,
            generator: &v.generator,
            verdict: verdicts.get(v.variant_id.as_str()).copied(),
        })
        .collect();
    let file = File::create(out.join("variants.json"))?;
    serde_json::to_writer_pretty(BufWriter::new(file), &reports)?;

    exclusions.sort_by(|a, b| (a.line, &a.customer_id).cmp(&(b.line, &b.customer_id)));
    write_jsonl(&out.join("exclusions.jsonl"), &exclusions)?;
    summary.merge_values_replaced = replaced.len() as u64;
    replaced.sort_by(|a, b| (&a.customer_id, &a.field).cmp(&(&b.customer_id, &b.field)));
    write_jsonl(&out.join("replaced_values.jsonl"), &replaced)?;
    Ok(())
}

pub fn write_jsonl<T: Serialize>(path: &Path, items: &[T]) -> anyhow::Result<()> {
    let mut writer = BufWriter::new(
        File::create(path).with_context(|| format!("cannot write {}", path.display()))?,
    );
    for item in items {
        serde_json::to_writer(&mut writer, item)?;
        writer.write_all(b"\n")?;
    }
    writer.flush()?;
    Ok(())
}

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn progress_message() -> String {
    let done = |stage: &str| metrics().succeeded.with_label_values(&[stage]).get();
    format!(
        "segments {} · briefs {} · variants {} · screened {} · batches assigned {} · batches delivered {}",
        done("segmentation"),
        done("retrieval"),
        done("generation"),
        done("safety"),
        done("experimentation"),
        done("delivery"),
    )
}
