//! `cpo audit verify FILE`: check an audit log's MAC chain and its signed head.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use cpo_shared::audit::{AuditError, FileHead, HeadStore, verify};
use cpo_shared::config::Settings;
use cpo_shared::redis_cache::{RedisAuditHead, RedisConfig};

use super::Stdout;
use crate::audit_key;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Exit 1 naming the problem if any line was edited, removed, reordered,
    /// forged or rewritten, if the log was cut short of its head, or if the
    /// head does not match. The key is `security.audit_key` (or `audit_key_file`),
    /// else the `audit.key` that `cpo run` keeps beside the log.
    Verify {
        file: PathBuf,
        /// The signed head (default: `<log stem>.head.json` beside the log, as `cpo run` writes it).
        #[arg(long, conflicts_with = "redis_head")]
        head: Option<PathBuf>,
        /// Read the head from the configured Redis, where fleet workers keep it.
        #[arg(long)]
        redis_head: bool,
    },
}

pub fn run(command: AuditCommand, config: Option<&Path>) -> anyhow::Result<u8> {
    match command {
        AuditCommand::Verify {
            file,
            head,
            redis_head,
        } => {
            let settings = Settings::load(config)?;
            let key = audit_key::for_log(&settings, &file)?;
            let store: Box<dyn HeadStore> = if redis_head {
                let redis: RedisConfig = settings.section("redis")?;
                let name = file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                Box::new(RedisAuditHead::new(&redis, &name)?)
            } else {
                Box::new(head.map_or_else(|| FileHead::beside(&file), FileHead::new))
            };
            let Some(signed) = store.load()? else {
                let hint = if redis_head {
                    ""
                } else {
                    " (a fleet worker's head is in Redis: --redis-head)"
                };
                eprintln!(
                    "{}: no head at {}: the log cannot be shown complete (its last lines may be cut off){hint}",
                    file.display(),
                    store.describe()
                );
                return Ok(1);
            };
            let reader = std::fs::File::open(&file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            match verify(reader, &key, Some(&signed)) {
                Ok(summary) => {
                    let mut out = Stdout::new();
                    out.line(format_args!(
                        "ok: {} lines, chain intact, head matches (last {})",
                        summary.lines,
                        &summary.last_hash[..16]
                    ))?;
                    if summary.after_head > 0 {
                        out.line(format_args!(
                            "note: the last {} lines were written after the head's last update (an interrupted write); their MACs verify",
                            summary.after_head
                        ))?;
                    }
                    Ok(0)
                }
                Err(AuditError::Broken { line, reason }) => {
                    eprintln!("{}: line {line}: {reason}", file.display());
                    Ok(1)
                }
                Err(AuditError::Head(reason)) => {
                    eprintln!("{}: {reason} (head {})", file.display(), store.describe());
                    Ok(1)
                }
                Err(e) => Err(e).with_context(|| format!("cannot read {}", file.display())),
            }
        }
    }
}
