//! cpo analysis: proves lift, or refuses to claim it.
//!
//! Takes a campaign's arm assignment (the run's outbox) and engagement events,
//! and answers, per metric, per arm and per segment: does the arm differ from
//! control, by how much, with what uncertainty, and if the test cannot tell,
//! how many customers it would need. The rules it keeps:
//!
//! - nothing is called significant unless its multiplicity-adjusted (Holm by
//!   default) p-value is below alpha;
//! - underpowered tests say what they could detect and what a conclusion needs;
//! - simulated outcomes are labelled SIMULATED in every output;
//! - degenerate input is a clear error or note, never NaN or a panic.
//!
//! The statistics in [`stats`] match statsmodels, scipy and GrowthBook's gbstats
//! (golden fixtures in `fixtures/`). [`events`] reads our JSONL and the webhook
//! formats of SendGrid, SES and Mailgun; [`simulate`] produces labelled outcomes;
//! [`report`] writes `analysis.json`, `report.md` and `report.html`.

pub mod analysis;
pub mod cli;
pub mod compare;
pub mod error;
pub mod events;
pub mod metric;
pub mod parallel;
pub mod report;
pub mod run;
pub mod simulate;
pub mod stats;
pub mod summary;
pub mod synth;

use std::path::Path;

pub use analysis::Analysis;
pub use compare::{AnalysisOptions, ArmCounts, Comparison, MetricAnalysis};
pub use error::{AnalysisError, Result};
pub use report::{ReportPaths, write_reports};
pub use run::{RunOptions, analyze_run};
pub use simulate::{SimulationConfig, simulate_run};
pub use summary::{SummaryInput, analyze_summary};

/// Simulates outcomes for the run in `run_dir` (default configuration, the given
/// seed), writes `events.jsonl` and `simulation.json` there, analyses the run and
/// writes the reports (all marked SIMULATED) into the same directory.
///
/// Refuses to run when `run_dir/events.jsonl` holds observed events.
pub fn simulate_and_report(run_dir: &Path, seed: u64) -> Result<ReportPaths> {
    let config = SimulationConfig::default();
    simulate_run(run_dir, &config, Some(seed), None)?;
    let options = RunOptions {
        analysis: AnalysisOptions {
            target_relative_lift: Some(cli::DEFAULT_TARGET_LIFT),
            bandit_seed: seed,
            ..AnalysisOptions::default()
        },
        ..RunOptions::default()
    };
    let analysis = analyze_run(run_dir, &options)?;
    write_reports(&analysis, run_dir)
}
