//! `cpo run`: the whole pipeline in one process, on the bundled data by default.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use cpo_shared::campaign_file::CampaignFile;
use cpo_shared::config::Settings;
use cpo_shared::log_field::bounded;
use cpo_shared::model::{AudienceSource, CampaignRequest};

use super::Stdout;
use crate::embedded::{self, RunReport};
use crate::out_dir;

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
    /// Replace the files of an earlier run in the output directory (without
    /// it, such a directory is refused).
    #[arg(long)]
    pub force: bool,
    /// Also write every message as DIR/<message_id>.eml (RFC 5322, as an SMTP
    /// server would receive it; needs `delivery.mail` and `gateway.public_url`).
    #[arg(long, value_name = "DIR")]
    pub eml: Option<PathBuf>,
}

/// Exit codes of `cpo run`. When several apply, the lowest but 0 wins.
pub mod exit {
    /// Every customer accounted for, something delivered, nothing dead-lettered
    /// but safety blocks (a block is a decision, not a failure).
    pub const OK: u8 = 0;
    /// Configuration, output directory (in use by another run, holding an
    /// earlier run's files without `--force`) or an IO error.
    pub const ERROR: u8 = 1;
    /// The campaign or its customer list could not be read or is invalid.
    pub const INPUT_REJECTED: u8 = 3;
    /// The customer list held no customer.
    pub const NO_CUSTOMERS: u8 = 4;
    /// Messages were dead-lettered (other than safety blocks).
    pub const DEAD_LETTERED: u8 = 5;
    /// Customers neither assigned nor listed as excluded (with no dead letter to say why).
    pub const UNACCOUNTED: u8 = 6;
    /// Nothing was delivered.
    pub const NOTHING_DELIVERED: u8 = 7;
}

/// `cpo run --help` shows this; README.md has the same table.
pub const EXIT_CODES_HELP: &str = "Exit codes (the lowest that applies):
  0  ok: every customer accounted for, messages delivered, no dead letters but safety blocks
  1  error: configuration, IO, or the output directory (in use by another run; holding an earlier run's files without --force)
  2  usage: invalid arguments
  3  input rejected: the campaign or its customer list cannot be read or is invalid
  4  no customer was read
  5  messages were dead-lettered (safety blocks are decisions and do not count)
  6  customers unaccounted for
  7  nothing was delivered";

const DEFAULT_CUSTOMERS: &str = "data/customers.csv";
pub const DEMO_CONFIG: &str = "data/cpo.yaml";

pub fn load_campaign(path: &Path, customers: Option<&Path>) -> anyhow::Result<CampaignRequest> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read campaign {}", path.display()))?;
    let invalid = || format!("invalid campaign {}", path.display());
    let mut file = CampaignFile::parse(&text).map_err(|e| anyhow!("{}: {e}", invalid()))?;
    // --customers replaces the file's audience; neither: the bundled customers.
    let csv = customers.map_or(DEFAULT_CUSTOMERS.to_string(), |c| c.display().to_string());
    if customers.is_some() {
        file.audience = None;
    }
    let campaign = file
        .into_request(AudienceSource::Csv { path: csv })
        .with_context(invalid)?;
    if let AudienceSource::Csv { path } = &campaign.audience
        && !Path::new(path).exists()
    {
        bail!("customer file {path} not found (pass --customers FILE, or run `cpo gen-data`)");
    }
    Ok(campaign)
}

pub fn run(args: RunArgs, config: Option<&Path>) -> anyhow::Result<u8> {
    super::init_logging(args.quiet, false);
    // The bundled demo settings apply when no configuration file is named.
    let demo_config = Path::new(DEMO_CONFIG);
    let config = config.or_else(|| demo_config.exists().then_some(demo_config));
    let settings = Settings::load(config)?;
    crate::wiring::check_run_sections(&settings)?;
    let campaign = match load_campaign(&args.campaign, args.customers.as_deref()) {
        Ok(campaign) => campaign,
        Err(error) => {
            eprintln!("error: input rejected: {error:#}");
            return Ok(exit::INPUT_REJECTED);
        }
    };
    if let Err(error) = crate::wiring::check_campaign_links(&settings, &campaign) {
        eprintln!("error: input rejected: {error:#}");
        return Ok(exit::INPUT_REJECTED);
    }
    // Checked before the output directory is touched: a bad mail setting
    // fails at once, naming its key.
    let eml_mail = match &args.eml {
        Some(_) => Some(crate::mail::mail(&settings, args.content.as_deref(), true)?),
        None => None,
    };
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("out").join(&campaign.campaign_id));
    // Held until the process ends: the directory is this run's, --simulate included.
    let _lock = out_dir::prepare(&out_dir, args.force)?;
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let call_to_action_url = campaign.call_to_action_url.clone();
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
    let (code, why) = outcome(&report, &out_dir);
    let mut out = Stdout::new();
    print_summary(&mut out, &report, &out_dir, elapsed.as_secs_f64())?;
    if let (Some(dir), Some(mail)) = (&args.eml, &eml_mail) {
        let outbox = out_dir.join("outbox.jsonl");
        let written = super::preview::write_eml(&outbox, mail, call_to_action_url.as_deref(), dir)?;
        out.line(format_args!(
            "  eml: {written} messages in {}",
            dir.display()
        ))?;
    }
    out.line(format_args!("  result: {why} (exit {code})"))?;
    if args.simulate && code == exit::OK {
        let paths = cpo_analysis::simulate_and_report(&out_dir, args.seed)?;
        out.line("")?;
        out.line(format_args!(
            "SIMULATED engagement (not real outcomes): report at {}",
            paths.html.display()
        ))?;
    }
    Ok(code)
}

/// The exit code of a finished run and the reason the summary gives.
pub fn outcome(report: &RunReport, out_dir: &Path) -> (u8, String) {
    let s = &report.summary;
    let letters = format!(
        "cpo dlq list --file {}",
        out_dir.join("dead_letters.jsonl").display()
    );
    let failures = s.dead_lettered - report.blocked_letters;
    if let Some(reason) = &report.input_rejected {
        return (
            exit::INPUT_REJECTED,
            format!("input rejected: {}", bounded(reason)),
        );
    }
    if s.customers_total == 0 {
        return (exit::NO_CUSTOMERS, "no customer was read".into());
    }
    // Before unaccounted customers: the dead letters are usually why they are.
    if failures > 0 {
        let unaccounted = match report.unaccounted() {
            0 => String::new(),
            n => format!(", {n} customers unaccounted for"),
        };
        return (
            exit::DEAD_LETTERED,
            format!("{failures} messages dead-lettered{unaccounted} (see `{letters}`)"),
        );
    }
    if report.unaccounted() != 0 {
        return (
            exit::UNACCOUNTED,
            format!("{} customers unaccounted for", report.unaccounted()),
        );
    }
    if s.messages == 0 {
        return (exit::NOTHING_DELIVERED, "nothing was delivered".into());
    }
    let blocked = if report.blocked_letters > 0 {
        format!(
            " ({} blocked by safety: decisions, not failures)",
            report.blocked_letters
        )
    } else {
        String::new()
    };
    (exit::OK, format!("ok{blocked}"))
}

fn print_summary(
    out: &mut Stdout,
    report: &RunReport,
    out_dir: &Path,
    seconds: f64,
) -> std::io::Result<()> {
    let s = &report.summary;
    out.line(format_args!(
        "campaign {} finished in {seconds:.2}s",
        bounded(&s.campaign_id)
    ))?;
    out.line(format_args!(
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
    ))?;
    out.line(format_args!("  segments: {}", s.segments))?;
    out.line(format_args!(
        "  variants: {} generated, {} approved, {} blocked",
        s.variants_generated, s.variants_approved, s.variants_blocked
    ))?;
    out.line(format_args!(
        "  messages: {} in the outbox ({} with control fallback, {} merge values replaced), {} dead letters",
        s.messages, s.fallbacks, s.merge_values_replaced, s.dead_lettered
    ))?;
    let arms: Vec<String> = s
        .per_arm
        .iter()
        .map(|(arm, n)| format!("{arm} {n}"))
        .collect();
    out.line(format_args!("  arms: {}", arms.join(", ")))?;
    if report.unaccounted() != 0 {
        out.line(format_args!(
            "  WARNING: {} customers unaccounted for",
            report.unaccounted()
        ))?;
    }
    out.line(format_args!("  output: {}", out_dir.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::Summary;

    fn report(dead: u64, blocked: u64, messages: u64) -> RunReport {
        RunReport {
            summary: Summary {
                customers_total: 10,
                customers_assigned: 8,
                customers_excluded: 2,
                dead_lettered: dead,
                messages,
                ..Summary::default()
            },
            blocked_letters: blocked,
            input_rejected: None,
        }
    }

    #[test]
    fn a_safety_block_is_a_decision_and_other_dead_letters_fail_the_run() {
        let out = Path::new("out/x");
        let (code, why) = outcome(&report(2, 2, 8), out);
        assert_eq!(code, exit::OK);
        assert!(why.contains("2 blocked by safety"), "{why}");
        assert_eq!(outcome(&report(3, 2, 8), out).0, exit::DEAD_LETTERED);
        assert_eq!(outcome(&report(2, 2, 0), out).0, exit::NOTHING_DELIVERED);
        let mut lost = report(1, 0, 0);
        lost.summary.customers_assigned = 0;
        let (code, why) = outcome(&lost, out);
        assert_eq!(code, exit::DEAD_LETTERED);
        assert!(why.contains("8 customers unaccounted for"), "{why}");
        lost.summary.dead_lettered = 0;
        assert_eq!(outcome(&lost, out).0, exit::UNACCOUNTED);
        let mut empty = report(0, 0, 0);
        empty.summary.customers_total = 0;
        assert_eq!(outcome(&empty, out).0, exit::NO_CUSTOMERS);
        empty.input_rejected = Some("header has no \"consent\" column".into());
        assert_eq!(outcome(&empty, out).0, exit::INPUT_REJECTED);
    }
}
