//! The address key (`security.address_key` or `address_key_file`): the HMAC
//! key of email addresses in suppressions. It must not change once used, or
//! a suppressed address no longer matches its hash. The fleet requires one.
//! `cpo run` without one makes a random key the first time it opens a SQLite
//! store and keeps it beside the file (`<store file>.address.key`, mode 0600),
//! so every later run on that store hashes addresses the same way.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use cpo_shared::config::Settings;
use cpo_shared::privacy::AddressHasher;

use crate::wiring::{SecurityConfig, secret};

fn configured(settings: &Settings) -> anyhow::Result<Option<Vec<u8>>> {
    let security: SecurityConfig = settings.section("security")?;
    secret(
        &security.address_key,
        &security.address_key_file,
        "address_key",
    )
}

/// The configured key, or the fleet's error naming the setting.
pub fn required(settings: &Settings) -> anyhow::Result<AddressHasher> {
    let key = configured(settings)?
        .context("security.address_key is not set (CPO__SECURITY__ADDRESS_KEY)")?;
    Ok(AddressHasher::new(key))
}

/// The path of a `sqlite://` (or `sqlite:`) URL's file, without its query.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// The key file kept beside a SQLite store.
pub fn beside(store_file: &Path) -> PathBuf {
    let mut name = store_file
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".address.key");
    store_file.with_file_name(name)
}

/// The configured key, else (for a SQLite store) the one kept beside the
/// store's file, made now if there is none.
pub fn for_store(settings: &Settings, store_url: &str) -> anyhow::Result<AddressHasher> {
    if let Some(key) = configured(settings)? {
        return Ok(AddressHasher::new(key));
    }
    let Some(file) = sqlite_path(store_url) else {
        return required(settings);
    };
    let path = beside(&file);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if !path.exists() {
        make_key_file(&path)?;
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the address key {}", path.display()))?;
    let key = text.trim();
    anyhow::ensure!(
        !key.is_empty(),
        "the address key {} is empty",
        path.display()
    );
    Ok(AddressHasher::new(key.as_bytes()))
}

fn make_key_file(path: &Path) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    // create_new: of two runs starting at once, one writes the key, the other reads it.
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = match options.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot create the address key {}", path.display()));
        }
    };
    let key = hex::encode(rand::random::<[u8; 32]>());
    writeln!(file, "{key}").with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_kept_beside_the_store_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/out/cpo.sqlite", dir.path().display());
        let settings = Settings::from_yaml("other: 1\n").unwrap();
        let first = for_store(&settings, &url).unwrap().hash("a@example.com");
        let again = for_store(&settings, &url).unwrap().hash("A@example.com ");
        assert_eq!(first, again);
        let file = dir.path().join("out/cpo.sqlite.address.key");
        assert!(file.exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // a configured key wins; PostgreSQL without one is refused with the key's name
        let set = Settings::from_yaml("security:\n  address_key: k\n").unwrap();
        assert_ne!(for_store(&set, &url).unwrap().hash("a@example.com"), first);
        let err = for_store(&settings, "postgres://db/cpo")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("security.address_key"), "{err}");
        assert_eq!(
            sqlite_path("sqlite:x.db?mode=rwc"),
            Some(PathBuf::from("x.db"))
        );
    }
}
