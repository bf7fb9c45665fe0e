//! `cpo suppress add|remove|list|import`: the global suppression list in the
//! store (`store.url`). Addresses are only ever stored, shown and compared as
//! their keyed hash (`security.address_key`); nothing here prints one.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use cpo_events::address::normalize_address;
use cpo_shared::config::Settings;
use cpo_shared::envelope::now_ms;
use cpo_shared::privacy::AddressHasher;
use cpo_shared::store::{Store, Suppression, SuppressionKey, reasons};
use serde_json::json;

use super::Stdout;
use crate::wiring;

#[derive(Subcommand)]
pub enum SuppressCommand {
    /// Never mail this address or customer again (source `cli`).
    Add {
        #[command(flatten)]
        target: Target,
        /// suppressed (default), unsubscribed, bounced or complained.
        #[arg(long, default_value = reasons::SUPPRESSED)]
        reason: String,
    },
    /// Lift a suppression. An erasure tombstone (reason `erased`) needs --force.
    Remove {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        force: bool,
    },
    /// Every suppression, oldest first: kind, customer id or address hash,
    /// reason, source, time. Never an address.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Suppress the rows of a CSV file with a header naming an `email` and/or
    /// a `customer_id` column and optionally a `reason` column (other columns
    /// are ignored). The whole file is checked before anything is written.
    Import { file: PathBuf },
}

#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct Target {
    /// The address (stored as its keyed hash only).
    #[arg(long)]
    pub email: Option<String>,
    /// The customer id.
    #[arg(long)]
    pub customer: Option<String>,
}

/// The hasher, or the error that says which key to set.
pub(crate) fn hasher(settings: &Settings) -> anyhow::Result<AddressHasher> {
    wiring::address_hasher(settings)?.context(
        "security.address_key is not set (CPO__SECURITY__ADDRESS_KEY or address_key_file): \
         addresses are kept only as keyed hashes",
    )
}

/// A customer id as typed: not empty, bounded, printable.
pub(crate) fn customer_id(text: &str) -> anyhow::Result<String> {
    let id = text.trim();
    if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) {
        bail!("customer id must be 1 to 256 printable characters");
    }
    Ok(id.to_string())
}

/// An address as typed: exactly one plain address.
pub(crate) fn address(text: &str) -> anyhow::Result<String> {
    normalize_address(text).context("--email is not one plain address (like name@example.com)")
}

fn key(settings: &Settings, target: &Target) -> anyhow::Result<SuppressionKey> {
    Ok(match (&target.email, &target.customer) {
        (Some(email), _) => SuppressionKey::AddressHash(hasher(settings)?.hash(&address(email)?)),
        (None, Some(customer)) => SuppressionKey::Customer(customer_id(customer)?),
        (None, None) => bail!("give --email or --customer"),
    })
}

fn manual_reason(reason: &str) -> anyhow::Result<String> {
    if reasons::MANUAL.contains(&reason) {
        Ok(reason.to_string())
    } else {
        bail!(
            "unknown reason `{}` (expected one of: {})",
            reason.chars().take(40).collect::<String>(),
            reasons::MANUAL.join(", ")
        )
    }
}

pub(crate) fn describe(key: &SuppressionKey) -> String {
    match key {
        SuppressionKey::Customer(id) => format!("customer {id}"),
        SuppressionKey::AddressHash(hash) => format!("address {hash}"),
    }
}

pub(crate) fn block_on<T>(work: impl std::future::Future<Output = T>) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(work))
}

pub fn run(command: SuppressCommand, config: Option<&Path>) -> anyhow::Result<u8> {
    let settings = Settings::load(config)?;
    // Inputs are checked before the store is opened.
    let job = match command {
        SuppressCommand::Add { target, reason } => {
            Job::Add(key(&settings, &target)?, manual_reason(&reason)?)
        }
        SuppressCommand::Remove { target, force } => Job::Remove(key(&settings, &target)?, force),
        SuppressCommand::List { json } => Job::List(json),
        SuppressCommand::Import { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let hasher = wiring::address_hasher(&settings)?;
            let rows = parse_import(&text, hasher.as_ref())
                .with_context(|| format!("{}", file.display()))?;
            Job::Import(rows)
        }
    };
    block_on(async {
        let store = wiring::open_store(&settings).await?;
        job.run(store.as_ref()).await
    })?
}

enum Job {
    Add(SuppressionKey, String),
    Remove(SuppressionKey, bool),
    List(bool),
    Import(Vec<Suppression>),
}

impl Job {
    async fn run(self, store: &dyn Store) -> anyhow::Result<u8> {
        let mut out = Stdout::new();
        match self {
            Job::Add(key, reason) => {
                let row = Suppression {
                    key: key.clone(),
                    reason,
                    source: "cli".into(),
                    created_at_ms: now_ms() as i64,
                };
                let outcome = store.suppress(std::slice::from_ref(&row)).await?;
                if outcome.inserted == 1 {
                    out.line(format!("suppressed {} ({})", describe(&key), row.reason))?;
                } else {
                    let reason = store
                        .suppression_of(&key)
                        .await?
                        .map_or_else(|| "removed meanwhile".to_string(), |s| s.reason);
                    out.line(format!("already suppressed: {} ({reason})", describe(&key)))?;
                }
            }
            Job::Remove(key, force) => {
                let Some(current) = store.suppression_of(&key).await? else {
                    bail!("{} is not suppressed", describe(&key));
                };
                if current.reason == reasons::ERASED && !force {
                    bail!(
                        "{} is an erasure tombstone (reason erased, `cpo forget`): \
                         pass --force to remove it",
                        describe(&key)
                    );
                }
                store.unsuppress(&key).await?;
                out.line(format!("removed {}", describe(&key)))?;
            }
            Job::List(as_json) => {
                let rows = store.list_suppressions().await?;
                if as_json {
                    let list: Vec<_> = rows
                        .iter()
                        .map(|s| {
                            let (kind, value) = match &s.key {
                                SuppressionKey::Customer(v) => ("customer", v),
                                SuppressionKey::AddressHash(v) => ("address", v),
                            };
                            json!({"kind": kind, "value": value, "reason": s.reason,
                                   "source": s.source, "created_at_ms": s.created_at_ms})
                        })
                        .collect();
                    out.line(serde_json::to_string_pretty(&list)?)?;
                } else {
                    out.line("kind\tvalue\treason\tsource\tcreated_at_ms")?;
                    for s in &rows {
                        let (kind, value) = match &s.key {
                            SuppressionKey::Customer(v) => ("customer", v),
                            SuppressionKey::AddressHash(v) => ("address", v),
                        };
                        out.line(format!(
                            "{kind}\t{value}\t{}\t{}\t{}",
                            s.reason, s.source, s.created_at_ms
                        ))?;
                    }
                }
            }
            Job::Import(rows) => {
                let outcome = store.suppress(&rows).await?;
                out.line(format!(
                    "imported {} suppressions: {} new, {} already present ({} statements)",
                    rows.len(),
                    outcome.inserted,
                    rows.len() as u64 - outcome.inserted,
                    outcome.statements
                ))?;
            }
        }
        Ok(0)
    }
}

/// The suppressions of an import file; the first bad row fails it, naming its line.
pub(crate) fn parse_import(
    text: &str,
    hasher: Option<&AddressHasher>,
) -> anyhow::Result<Vec<Suppression>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .context("line 1: cannot read the header")?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (email_col, customer_col, reason_col) =
        (column("email"), column("customer_id"), column("reason"));
    if email_col.is_none() && customer_col.is_none() {
        bail!("line 1: the header names neither an `email` nor a `customer_id` column");
    }
    if email_col.is_some() && hasher.is_none() {
        hasher_missing()?;
    }
    let now = now_ms() as i64;
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            anyhow::anyhow!("line {line}: {e}")
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let field = |col: Option<usize>| col.and_then(|c| record.get(c)).filter(|v| !v.is_empty());
        let reason = match field(reason_col) {
            Some(r) => manual_reason(r).with_context(|| format!("line {line}"))?,
            None => reasons::SUPPRESSED.to_string(),
        };
        let mut keys = Vec::new();
        if let Some(email) = field(email_col) {
            let address = normalize_address(email)
                .with_context(|| format!("line {line}: `email` is not one plain address"))?;
            if let Some(hasher) = hasher {
                keys.push(SuppressionKey::AddressHash(hasher.hash(&address)));
            }
        }
        if let Some(customer) = field(customer_col) {
            keys.push(SuppressionKey::Customer(
                customer_id(customer).with_context(|| format!("line {line}: `customer_id`"))?,
            ));
        }
        if keys.is_empty() {
            bail!("line {line}: neither `email` nor `customer_id` is given");
        }
        rows.extend(keys.into_iter().map(|key| Suppression {
            key,
            reason: reason.clone(),
            source: "import".into(),
            created_at_ms: now,
        }));
    }
    Ok(rows)
}

fn hasher_missing() -> anyhow::Result<()> {
    bail!(
        "the file has an `email` column but security.address_key is not set \
         (CPO__SECURITY__ADDRESS_KEY): addresses are kept only as keyed hashes"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_rows_and_bad_lines_named() {
        let hasher = AddressHasher::new(b"k");
        let rows = parse_import(
            "name,email,customer_id,reason\nAda, Ada@X.io ,,\nBob,,C2,bounced\nCy,cy@x.io,C3,complained\n",
            Some(&hasher),
        )
        .unwrap();
        let got: Vec<_> = rows
            .iter()
            .map(|r| (r.key.clone(), r.reason.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    SuppressionKey::AddressHash(hasher.hash("ada@x.io")),
                    "suppressed"
                ),
                (SuppressionKey::Customer("C2".into()), "bounced"),
                (
                    SuppressionKey::AddressHash(hasher.hash("cy@x.io")),
                    "complained"
                ),
                (SuppressionKey::Customer("C3".into()), "complained"),
            ]
        );
        assert!(rows.iter().all(|r| r.source == "import"));

        let err = |text: &str| format!("{:#}", parse_import(text, Some(&hasher)).unwrap_err());
        assert!(err("email\nok@x.io\nnot-an-address\n").starts_with("line 3:"));
        assert!(err("customer_id,reason\nC1,erased\n").contains("line 2"));
        assert!(err("customer_id,reason\nC1,erased\n").contains("unknown reason"));
        assert!(err("email,customer_id\n,\n").contains("line 2: neither"));
        assert!(err("name\nAda\n").contains("line 1"));
        assert!(err("customer_id,reason\nC1\n").contains("line 2"));
        let no_key = format!("{:#}", parse_import("email\na@x.io\n", None).unwrap_err());
        assert!(no_key.contains("security.address_key"), "{no_key}");
        // A spreadsheet's byte-order mark and CRLF line ends are no problem.
        let bom = parse_import("\u{feff}customer_id,reason\r\nC9,bounced\r\n", None).unwrap();
        assert_eq!(bom[0].key, SuppressionKey::Customer("C9".into()));
        assert!(err("").contains("line 1"));
        // A customer-only file needs no address key.
        assert_eq!(parse_import("customer_id\nC1\n", None).unwrap().len(), 1);
    }
}
