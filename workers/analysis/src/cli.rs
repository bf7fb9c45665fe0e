//! Command-line entry points for `cpo analyze`, `cpo ingest` and `cpo simulate`.
//! The binary owns the top-level parser; these are its subcommands' arguments.
//! This is the edge where library errors become `anyhow` errors.

use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::compare::AnalysisOptions;
use crate::events::InputFormat;
use crate::events::ingest::ingest_checked;
use crate::metric::Metric;
use crate::report::write_reports;
use crate::run::outbox::Outbox;
use crate::run::{RunOptions, analyze_run};
use crate::simulate::{SimulationConfig, simulate_run};
use crate::stats::multiple::Correction;
use crate::summary::{SummaryInput, analyze_summary};

/// Relative lift a run is sized for when no target is given: +10% is a
/// meaningful improvement for an email subject or tone.
pub const DEFAULT_TARGET_LIFT: f64 = 0.10;

/// Multiplicity correction on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CorrectionArg {
    /// Holm step-down: controls the family-wise error rate.
    #[default]
    Holm,
    /// Benjamini-Hochberg: controls the false discovery rate.
    Bh,
}

impl From<CorrectionArg> for Correction {
    fn from(arg: CorrectionArg) -> Self {
        match arg {
            CorrectionArg::Holm => Correction::Holm,
            CorrectionArg::Bh => Correction::BenjaminiHochberg,
        }
    }
}

/// `cpo analyze`: analyse arm totals (`--summary`) or a campaign run (`--run`).
#[derive(Debug, Clone, clap::Args)]
pub struct AnalyzeArgs {
    /// JSON arm totals: {"alpha", "expected_weights", "target_relative_lift", "arms": [{"name", "users", "successes"}]}, control first.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "run",
        required_unless_present = "run"
    )]
    pub summary: Option<PathBuf>,
    /// Campaign run directory holding outbox.jsonl, summary.json and events.
    #[arg(long, value_name = "DIR")]
    pub run: Option<PathBuf>,
    /// Events file for --run (default: DIR/events.jsonl).
    #[arg(long, value_name = "FILE", requires = "run")]
    pub events: Option<PathBuf>,
    /// Where to write analysis.json, report.md and report.html (default: the run directory).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Significance level; overrides the summary file's.
    #[arg(long)]
    pub alpha: Option<f64>,
    /// Power for sample sizes and detectable lifts.
    #[arg(long, default_value_t = 0.8)]
    pub power: f64,
    /// Relative lift to size the test for, e.g. 0.1 for +10% (run default: 0.1).
    #[arg(long)]
    pub target_lift: Option<f64>,
    /// Which adjusted p-value decides significance.
    #[arg(long, value_enum, default_value_t = CorrectionArg::Holm)]
    pub correction: CorrectionArg,
    /// Tuning parameter of the always-valid confidence sequences (GrowthBook's default).
    #[arg(long, default_value_t = crate::stats::sequential::DEFAULT_TUNING)]
    pub sequential_tuning: f64,
    /// Metric of the timeline, segment chart and next-wave weights.
    #[arg(long, value_enum, default_value_t = Metric::Opened)]
    pub primary_metric: Metric,
    /// Seed of the Thompson-sampling weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `cpo ingest`: normalize ESP webhook events into our events JSONL.
#[derive(Debug, Clone, clap::Args)]
pub struct IngestArgs {
    /// Event files: our JSONL, SendGrid batches, SNS-wrapped SES notifications or Mailgun webhooks.
    #[arg(required = true, value_name = "FILE")]
    pub inputs: Vec<PathBuf>,
    /// Campaign run directory whose outbox.jsonl maps message ids to customers and arms.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// Input format; auto recognizes each event by its shape.
    #[arg(long, value_enum, default_value_t = InputFormat::Auto)]
    pub format: InputFormat,
    /// Output events file (default: DIR/events.jsonl); existing events are kept and deduped against.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also write the full ingest report (every malformed and unmatched event) as JSON.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

/// `cpo simulate`: simulated events for a run's assignment, always labelled.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Campaign run directory holding outbox.jsonl.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// Simulation config (YAML, or JSON by extension); defaults apply to anything omitted.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Random seed (default: the config's, else 0).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output events file (default: DIR/events.jsonl); never replaces observed events.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Analyse the simulated events and write the (SIMULATED) reports into the run directory.
    #[arg(long)]
    pub report: bool,
}

fn options(args: &AnalyzeArgs) -> AnalysisOptions {
    AnalysisOptions {
        alpha: args.alpha.unwrap_or(0.05),
        power: args.power,
        target_relative_lift: args.target_lift,
        correction: args.correction.into(),
        sequential_tuning: args.sequential_tuning,
        bandit_seed: args.seed,
        ..AnalysisOptions::default()
    }
}

/// Runs `cpo analyze`.
pub fn run_analyze(args: AnalyzeArgs) -> anyhow::Result<()> {
    let mut analysis_options = options(&args);
    let (analysis, out_dir) = match (&args.summary, &args.run) {
        (Some(path), _) => {
            let mut input = SummaryInput::load(path)?;
            if let Some(alpha) = args.alpha {
                input.alpha = Some(alpha);
            }
            let Some(out) = args.out.clone() else {
                bail!("--out DIR is required with --summary");
            };
            (
                analyze_summary(&input, &analysis_options)
                    .with_context(|| format!("analysing {}", path.display()))?,
                out,
            )
        }
        (None, Some(run_dir)) => {
            analysis_options.target_relative_lift = args.target_lift.or(Some(DEFAULT_TARGET_LIFT));
            let run_options = RunOptions {
                analysis: analysis_options,
                primary_metric: args.primary_metric,
                events: args.events.clone(),
            };
            let analysis = analyze_run(run_dir, &run_options)
                .with_context(|| format!("analysing run {}", run_dir.display()))?;
            (
                analysis,
                args.out.clone().unwrap_or_else(|| run_dir.clone()),
            )
        }
        (None, None) => bail!("give --summary FILE or --run DIR"),
    };
    let paths = write_reports(&analysis, &out_dir)?;
    if analysis.simulated {
        println!("SIMULATED: these results come from simulated outcomes");
    }
    for sentence in &analysis.verdict {
        println!("{sentence}");
    }
    println!(
        "wrote {}, {} and {}",
        paths.json.display(),
        paths.markdown.display(),
        paths.html.display()
    );
    Ok(())
}

/// Runs `cpo ingest`. Malformed and unmatched events are reported, not fatal.
pub fn run_ingest(args: IngestArgs) -> anyhow::Result<()> {
    run_ingest_checked(args, &crate::events::RefuseSigned)
}

/// [`run_ingest`] with the signatures events carry checked by `check`.
pub fn run_ingest_checked(
    args: IngestArgs,
    check: &dyn crate::events::SignatureCheck,
) -> anyhow::Result<()> {
    let outbox = Outbox::load(&args.run.join("outbox.jsonl"))?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.run.join("events.jsonl"));
    let report = ingest_checked(&args.inputs, args.format, &outbox, &out, check)?;
    println!(
        "read {} events: wrote {} new to {}, {} duplicates, {} ignored, {} malformed, {} not in the outbox",
        report.events_read,
        report.written,
        out.display(),
        report.duplicates,
        report.ignored.values().sum::<usize>(),
        report.malformed_count,
        report.unmatched_count
    );
    for problem in report.malformed.iter().take(20) {
        println!(
            "malformed: {} {}: {}",
            problem.file, problem.location, problem.reason
        );
    }
    if report.rejected_count > 0 {
        println!(
            "{} event(s) refused: their signature did not verify",
            report.rejected_count
        );
    }
    for problem in report.rejected.iter().take(20) {
        println!(
            "rejected: {} {}: {}",
            problem.file, problem.location, problem.reason
        );
    }
    for problem in report.unmatched.iter().take(20) {
        println!(
            "unmatched: {} {}: {}",
            problem.file, problem.location, problem.reason
        );
    }
    let hidden = report
        .malformed_count
        .min(report.malformed.len())
        .saturating_sub(20)
        + report.unmatched_count.saturating_sub(20);
    if hidden > 0 {
        println!(
            "... {hidden} more problem(s){}",
            if args.report.is_some() {
                " in the report file"
            } else {
                "; use --report FILE for all"
            }
        );
    }
    if let Some(path) = &args.report {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Runs `cpo simulate`.
pub fn run_simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => SimulationConfig::load(path)?,
        None => SimulationConfig::default(),
    };
    let result = simulate_run(&args.run, &config, args.seed, args.out.as_deref())?;
    println!(
        "SIMULATED: wrote {} simulated events to {} (truth in {})",
        result.events,
        result.events_path.display(),
        result.simulation_path.display()
    );
    if args.report {
        let run_options = RunOptions {
            analysis: AnalysisOptions {
                target_relative_lift: Some(DEFAULT_TARGET_LIFT),
                ..AnalysisOptions::default()
            },
            events: Some(result.events_path.clone()),
            ..RunOptions::default()
        };
        let analysis = analyze_run(&args.run, &run_options)?;
        let paths = write_reports(&analysis, &args.run)?;
        println!("SIMULATED report: {}", paths.html.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser, Subcommand};

    /// Stands in for the binary's parser, which flattens these subcommands.
    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Sub,
    }

    #[derive(Subcommand)]
    enum Sub {
        Analyze(AnalyzeArgs),
        Ingest(IngestArgs),
        Simulate(SimulateArgs),
    }

    #[test]
    fn arguments_are_consistent_and_parse() {
        Cli::command().debug_assert();
        let Sub::Analyze(args) = Cli::try_parse_from([
            "cpo",
            "analyze",
            "--run",
            "r",
            "--correction",
            "bh",
            "--target-lift",
            "0.2",
        ])
        .expect("analyze --run")
        .command
        else {
            panic!("wrong subcommand")
        };
        assert_eq!(
            Correction::from(args.correction),
            Correction::BenjaminiHochberg
        );
        assert_eq!(args.target_lift, Some(0.2));
        assert!(
            Cli::try_parse_from(["cpo", "analyze"]).is_err(),
            "needs --summary or --run"
        );
        assert!(Cli::try_parse_from(["cpo", "analyze", "--summary", "s", "--run", "r"]).is_err());
        let Sub::Ingest(ingest) = Cli::try_parse_from([
            "cpo", "ingest", "--run", "r", "--format", "ses", "a.jsonl", "b.json",
        ])
        .expect("ingest")
        .command
        else {
            panic!("wrong subcommand")
        };
        assert_eq!(ingest.inputs.len(), 2);
        assert_eq!(ingest.format, InputFormat::Ses);
        assert!(
            Cli::try_parse_from(["cpo", "simulate", "--run", "r", "--seed", "7", "--report"])
                .is_ok()
        );
    }
}
