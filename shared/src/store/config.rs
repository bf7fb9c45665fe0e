//! The `store` config section.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{ConfigError, resolve_url};
use crate::privacy::redact_url;

/// Settings of the system of record (config section `store`; `CPO__STORE__URL` overrides the URL).
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `postgres://user:password@host:5432/db` for the fleet, `sqlite://path` for `cpo run`.
    /// The password is never logged.
    pub url: String,
    /// A file holding the whole URL (a mounted secret); replaces `url`.
    pub url_file: Option<PathBuf>,
    /// A file holding the password, put into the URL (percent-encoded) at connect time.
    pub password_file: Option<PathBuf>,
    /// Most connections the pool opens.
    pub pool_size: u32,
    /// How long a call waits for a free connection (and `connect` for the server).
    pub acquire_timeout_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            // Relative to the working directory: runs in one directory share it, so
            // suppressions and contact history outlive a single `cpo run`.
            url: "sqlite://out/cpo.sqlite".into(),
            url_file: None,
            password_file: None,
            pool_size: 8,
            acquire_timeout_ms: 30_000,
        }
    }
}

// By hand: a derived Debug would print the password inside the URL.
impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &redact_url(&self.url))
            .field("url_file", &self.url_file)
            .field("password_file", &self.password_file)
            .field("pool_size", &self.pool_size)
            .field("acquire_timeout_ms", &self.acquire_timeout_ms)
            .finish()
    }
}

impl StoreConfig {
    /// The config with `url_file` and `password_file` read into `url`.
    pub fn resolve(mut self) -> Result<Self, ConfigError> {
        self.url = resolve_url(
            "store",
            &self.url,
            self.url_file.as_deref(),
            self.password_file.as_deref(),
        )?;
        self.url_file = None;
        self.password_file = None;
        Ok(self)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| ConfigError::Section {
            section: "store".into(),
            message: format!("key `store.{key}`: {message}"),
        };
        let scheme_ok = ["postgres://", "postgresql://", "sqlite:"]
            .iter()
            .any(|p| self.url.starts_with(p));
        if !scheme_ok {
            return Err(bad(
                "url",
                format!(
                    "`{}` must start with postgres://, postgresql:// or sqlite://",
                    redact_url(&self.url)
                ),
            ));
        }
        if self.pool_size == 0 {
            return Err(bad("pool_size", "must be at least 1".into()));
        }
        if self.acquire_timeout_ms == 0 {
            return Err(bad("acquire_timeout_ms", "must be greater than 0".into()));
        }
        Ok(())
    }

    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.acquire_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn debug_hides_the_password_and_the_section_is_known() {
        let config = StoreConfig {
            url: "postgres://cpo:hunter2@db:5432/cpo".into(),
            ..StoreConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("cpo:***@db"), "{shown}");

        let settings = Settings::from_yaml("store:\n  pool_size: 3\n").unwrap();
        let config: StoreConfig = settings.section("store").unwrap();
        assert_eq!(config.pool_size, 3);
        assert_eq!(config.url, "sqlite://out/cpo.sqlite");
        config.validate().unwrap();
    }

    #[test]
    fn password_file_is_percent_encoded_and_bad_values_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let password_file = dir.path().join("pw");
        std::fs::write(&password_file, "p@ss/w\n").unwrap();
        let config = StoreConfig {
            url: "postgres://cpo@db:5432/cpo".into(),
            password_file: Some(password_file),
            ..StoreConfig::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(config.url, "postgres://cpo:p%40ss%2Fw@db:5432/cpo");

        let err = StoreConfig {
            url: "mysql://u:topsecret@h/db".into(),
            ..StoreConfig::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(err.contains("store.url"), "{err}");
        assert!(!err.contains("topsecret"), "{err}");
        let err = StoreConfig {
            pool_size: 0,
            ..StoreConfig::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(err.contains("store.pool_size"), "{err}");
    }
}
