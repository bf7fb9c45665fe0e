//! Runs `cpo analyze --summary` without the main binary:
//! `cargo run -p cpo-analysis --example analyze_summary -- FILE OUT_DIR`.

use clap::Parser;
use cpo_analysis::cli::{AnalyzeArgs, run_analyze};

#[derive(Parser)]
struct Command {
    #[command(flatten)]
    analyze: AnalyzeArgs,
}

fn main() -> anyhow::Result<()> {
    run_analyze(Command::parse().analyze)
}
