//! The audit key: `security.audit_key` (or `audit_key_file`), required in the
//! fleet. `cpo run` without one makes a random key the first time it writes
//! into an output directory and keeps it there (`audit.key`, mode 0600), so
//! `cpo audit verify` can check that directory's log later. A key beside the
//! log only guards against whoever cannot read the directory; where the log
//! must hold up against its own host, configure a key kept elsewhere.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use cpo_shared::audit::AuditKey;
use cpo_shared::config::Settings;

use crate::wiring::{SecurityConfig, secret};

/// Name of the generated key in an output directory.
pub const KEY_FILE: &str = "audit.key";

/// The configured key, if any.
pub fn configured(settings: &Settings) -> anyhow::Result<Option<AuditKey>> {
    let security: SecurityConfig = settings.section("security")?;
    Ok(secret(&security.audit_key, &security.audit_key_file, "audit_key")?.map(AuditKey::new))
}

/// The configured key, or the fleet's error naming the setting.
pub fn required(settings: &Settings) -> anyhow::Result<AuditKey> {
    configured(settings)?.context("security.audit_key is not set (CPO__SECURITY__AUDIT_KEY)")
}

/// The configured key, else the one kept in `dir` (made now if there is none).
pub fn for_output_dir(settings: &Settings, dir: &Path) -> anyhow::Result<AuditKey> {
    if let Some(key) = configured(settings)? {
        return Ok(key);
    }
    let path = dir.join(KEY_FILE);
    if !path.exists() {
        make_key_file(&path)?;
    }
    read_key_file(&path)
}

/// The key `cpo audit verify` uses for `log`: the configured one, else the
/// generated key beside it.
pub fn for_log(settings: &Settings, log: &Path) -> anyhow::Result<AuditKey> {
    if let Some(key) = configured(settings)? {
        return Ok(key);
    }
    let path = log.with_file_name(KEY_FILE);
    anyhow::ensure!(
        path.exists(),
        "no audit key: set security.audit_key (CPO__SECURITY__AUDIT_KEY) or \
         security.audit_key_file, or keep the {KEY_FILE} `cpo run` made beside the log ({})",
        path.display()
    );
    read_key_file(&path)
}

fn read_key_file(path: &PathBuf) -> anyhow::Result<AuditKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the audit key {}", path.display()))?;
    let key = text.trim();
    anyhow::ensure!(!key.is_empty(), "the audit key {} is empty", path.display());
    Ok(AuditKey::new(key.as_bytes().to_vec()))
}

fn make_key_file(path: &Path) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    // create_new: two processes never both write a key; only the owner reads it.
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create the audit key {}", path.display()))?;
    let key = hex::encode(rand::random::<[u8; 32]>());
    writeln!(file, "{key}").with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
