//! `cpo audit verify FILE`: check the hash chain of an audit log.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use cpo_shared::audit::{AuditError, verify};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Exit non-zero and name the first bad line if any line was edited, removed or reordered.
    Verify { file: PathBuf },
}

pub fn run(command: AuditCommand) -> anyhow::Result<u8> {
    match command {
        AuditCommand::Verify { file } => {
            let reader = std::fs::File::open(&file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            match verify(reader) {
                Ok(summary) => {
                    println!(
                        "ok: {} lines, chain intact (head {})",
                        summary.lines,
                        &summary.last_hash[..16]
                    );
                    Ok(0)
                }
                Err(AuditError::Broken { line, reason }) => {
                    eprintln!("{}: line {line}: {reason}", file.display());
                    Ok(1)
                }
                Err(e) => Err(e).with_context(|| format!("cannot read {}", file.display())),
            }
        }
    }
}
