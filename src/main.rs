//! `cpo`: the Customer Personalization Orchestrator command line.
//!
//! `cpo run` runs every stage in one process on the in-memory transport (the
//! embedded mode); the other commands are tools around it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cpo::commands;

#[derive(Parser)]
#[command(name = "cpo", version, about = "Customer Personalization Orchestrator")]
struct Cli {
    /// YAML configuration file (defaults, then this file, then CPO__SECTION__KEY variables).
    #[arg(long, global = true, env = "CPO_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole pipeline in one process on a campaign and a customer list.
    #[command(after_help = commands::run::EXIT_CODES_HELP)]
    Run(commands::run::RunArgs),
    /// Run one stage as its own process on RabbitMQ and Redis (the fleet).
    Worker(commands::worker::WorkerArgs),
    /// Publish a campaign request to the fleet, as a CRM would.
    Enqueue(commands::fleet::EnqueueArgs),
    /// Follow a campaign through the fleet until complete; write its outbox and summary.
    Collect(commands::fleet::CollectArgs),
    /// Where a campaign stands in the fleet (progress counters in Redis).
    Status(commands::status::StatusArgs),
    /// Apply the store's migrations (`store.url`) and exit: the init step of a deployment.
    Migrate,
    /// Delete the configured prefix's queues and Redis keys (tests and demos).
    Teardown,
    /// Generate synthetic customers with realistic distributions.
    GenData(cpo_segmentation::GenDataArgs),
    /// Screen JSONL messages with the embedded safety screen.
    Screen(cpo_safety::ScreenArgs),
    /// Inspect the tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        command: commands::audit::AuditCommand,
    },
    /// Inspect dead letters.
    Dlq {
        #[command(subcommand)]
        command: commands::dlq::DlqCommand,
    },
    /// Analyze an experiment: a summary file or a campaign run with its events.
    Analyze(cpo_analysis::cli::AnalyzeArgs),
    /// Normalize engagement events (own JSONL, SendGrid, SES via SNS, Mailgun).
    Ingest(cpo_analysis::cli::IngestArgs),
    /// Simulate engagement events for a run (always labelled simulated).
    Simulate(cpo_analysis::cli::SimulateArgs),
    /// Print one customer's email exactly as it would be sent (an .eml).
    Preview(commands::preview::PreviewArgs),
    /// The global suppression list in the store (`store.url`).
    Suppress {
        #[command(subcommand)]
        command: commands::suppress::SuppressCommand,
    },
    /// Erase a person's personal data from the store, keeping a keyed-hash tombstone.
    Forget(commands::forget::ForgetArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => commands::run::run(args, cli.config.as_deref()),
        Command::Worker(args) => commands::worker::run(args, cli.config.as_deref()),
        Command::Enqueue(args) => commands::fleet::enqueue(args, cli.config.as_deref()),
        Command::Collect(args) => commands::fleet::collect(args, cli.config.as_deref()),
        Command::Status(args) => commands::status::status(args, cli.config.as_deref()),
        Command::Migrate => commands::migrate::migrate(cli.config.as_deref()),
        Command::Teardown => commands::fleet::teardown(cli.config.as_deref()),
        Command::GenData(args) => cpo_segmentation::run_gen_data(args).map(|()| 0),
        Command::Screen(args) => {
            cpo_safety::cli::run_screen_with_config(args, cli.config.as_deref()).map(|()| 0)
        }
        Command::Audit { command } => commands::audit::run(command, cli.config.as_deref()),
        Command::Dlq { command } => commands::dlq::run(command, cli.config.as_deref()),
        Command::Analyze(args) => cpo_analysis::cli::run_analyze(args).map(|()| 0),
        Command::Ingest(args) => commands::gateway::ingest(args, cli.config.as_deref()),
        Command::Simulate(args) => cpo_analysis::cli::run_simulate(args).map(|()| 0),
        Command::Preview(args) => commands::preview::preview(args, cli.config.as_deref()),
        Command::Suppress { command } => commands::suppress::run(command, cli.config.as_deref()),
        Command::Forget(args) => commands::forget::run(args, cli.config.as_deref()),
    };
    match result {
        Ok(code) => code.into(),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
