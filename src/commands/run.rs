//! `cpo run`: the whole pipeline in one process, on the bundled data by default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use cpo_shared::config::Settings;
use cpo_shared::model::{AudienceSource, CampaignRequest, default_tones};
use serde::Deserialize;

use crate::embedded::{self, RunReport};

#[derive(Args)]
pub struct RunArgs {
    /// Campaign request (YAML or JSON).
    #[arg(long, default_value = "data/campaign.yaml")]
    pub campaign: PathBuf,
    /// Customer CSV; overrides the campaign's audience.
    #[arg(long)]
    pub customers: Option<PathBuf>,
    /// Output directory (default `out/<campaign-id>/`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Approved content corpus (one Markdown file per document; default `retrieval.corpus_dir`, data/content).
    #[arg(long)]
    pub content: Option<PathBuf>,
    /// After the run, simulate engagement and write the (simulated) experiment report.
    #[arg(long)]
    pub simulate: bool,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// No progress display.
    #[arg(long, short)]
    pub quiet: bool,
}

/// A campaign file as people write it: the request, with the audience optional.
#[derive(Deserialize)]
struct CampaignFile {
    campaign_id: String,
    name: String,
    objective: String,
    #[serde(default)]
    call_to_action_url: Option<String>,
    #[serde(default = "default_tones")]
    tones: Vec<String>,
    #[serde(default)]
    arm_weights: BTreeMap<String, f64>,
    #[serde(default)]
    suppressions: Vec<String>,
    #[serde(default)]
    audience: Option<AudienceSource>,
}

const DEFAULT_CUSTOMERS: &str = "data/customers.csv";
const DEMO_CONFIG: &str = "data/cpo.yaml";

pub fn load_campaign(path: &Path, customers: Option<&Path>) -> anyhow::Result<CampaignRequest> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read campaign {}", path.display()))?;
    let file: CampaignFile = serde_norway::from_str(&text)
        .with_context(|| format!("invalid campaign {}", path.display()))?;
    let audience = match (customers, file.audience) {
        (Some(csv), _) => AudienceSource::Csv {
            path: csv.display().to_string(),
        },
        (None, Some(audience)) => audience,
        (None, None) => AudienceSource::Csv {
            path: DEFAULT_CUSTOMERS.to_string(),
        },
    };
    if let AudienceSource::Csv { path } = &audience
        && !Path::new(path).exists()
    {
        bail!("customer file {path} not found (pass --customers FILE, or run `cpo gen-data`)");
    }
    if file.campaign_id.trim().is_empty() {
        bail!("{}: campaign_id is empty", path.display());
    }
    Ok(CampaignRequest {
        campaign_id: file.campaign_id,
        name: file.name,
        objective: file.objective,
        call_to_action_url: file.call_to_action_url,
        tones: file.tones,
        arm_weights: file.arm_weights,
        suppressions: file.suppressions,
        audience,
    })
}

pub fn run(args: RunArgs, config: Option<&Path>) -> anyhow::Result<u8> {
    super::init_logging(args.quiet, false);
    // The bundled demo settings apply when no configuration file is named.
    let demo_config = Path::new(DEMO_CONFIG);
    let config = config.or_else(|| demo_config.exists().then_some(demo_config));
    let settings = Settings::load(config)?;
    let campaign = load_campaign(&args.campaign, args.customers.as_deref())?;
    crate::wiring::check_campaign_links(&settings, &campaign)?;
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("out").join(&campaign.campaign_id));
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let options = embedded::Options {
        settings,
        content_dir: args.content.clone(),
        out_dir: out_dir.clone(),
        progress: !args.quiet,
        generator: None,
        screen: None,
    };
    let report = runtime.block_on(embedded::run(campaign, options))?;
    let elapsed = started.elapsed();
    print_summary(&report, &out_dir, elapsed.as_secs_f64());
    if args.simulate {
        let paths = cpo_analysis::simulate_and_report(&out_dir, args.seed)?;
        println!();
        println!(
            "SIMULATED engagement (not real outcomes): report at {}",
            paths.html.display()
        );
    }
    Ok(if report.unaccounted() == 0 { 0 } else { 2 })
}

fn print_summary(report: &RunReport, out_dir: &Path, seconds: f64) {
    let s = &report.summary;
    println!("campaign {} finished in {seconds:.2}s", s.campaign_id);
    println!(
        "  customers: {} total, {} assigned, {} excluded{}",
        s.customers_total,
        s.customers_assigned,
        s.customers_excluded,
        if s.excluded_by_reason.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                s.excluded_by_reason
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    println!("  segments: {}", s.segments);
    println!(
        "  variants: {} generated, {} approved, {} blocked",
        s.variants_generated, s.variants_approved, s.variants_blocked
    );
    println!(
        "  messages: {} in the outbox ({} with control fallback, {} merge values replaced), {} dead letters",
        s.messages, s.fallbacks, s.merge_values_replaced, s.dead_lettered
    );
    let arms: Vec<String> = s
        .per_arm
        .iter()
        .map(|(arm, n)| format!("{arm} {n}"))
        .collect();
    println!("  arms: {}", arms.join(", "));
    if report.unaccounted() != 0 {
        println!(
            "  WARNING: {} customers unaccounted for",
            report.unaccounted()
        );
    }
    println!("  output: {}", out_dir.display());
}
