//! `cpo dlq list`: the dead letters of a run, with stage, reason and attempts.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use cpo_shared::dead_letter::DeadLetter;

#[derive(Subcommand)]
pub enum DlqCommand {
    /// List dead letters (stage, kind, reason, attempts, first seen).
    List {
        /// A run's `dead_letters.jsonl`.
        #[arg(long)]
        file: PathBuf,
        /// Print full JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: DlqCommand) -> anyhow::Result<u8> {
    match command {
        DlqCommand::List { file, json } => {
            let reader = std::fs::File::open(&file).with_context(|| format!("cannot open {}", file.display()))?;
            let mut count = 0;
            for (index, line) in std::io::BufReader::new(reader).lines().enumerate() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                let letter: DeadLetter = serde_json::from_str(&line)
                    .with_context(|| format!("{}: line {}: not a dead letter", file.display(), index + 1))?;
                count += 1;
                if json {
                    println!("{line}");
                } else {
                    println!(
                        "{:<40} {:<16} {:<12} attempts={} first_seen_ms={} {}",
                        letter.id,
                        letter.stage,
                        letter.kind.as_str(),
                        letter.attempts,
                        letter.first_seen_ms,
                        letter.reason
                    );
                }
            }
            if !json {
                println!("{count} dead letter(s)");
            }
            Ok(0)
        }
    }
}
