//! Layered configuration: defaults (each section's `Default`), then a YAML file,
//! then `CPO__SECTION__KEY` environment variables (the `config` crate).
//!
//! Each crate owns its section type; `Settings::section` deserializes it and
//! names the offending key when a value is wrong. Secrets come only from the
//! environment or files and are never logged.

use std::path::Path;

use serde::de::DeserializeOwned;

/// Every config section some part of cpo reads. A crate that gains a section
/// adds its name here; `Settings::load` refuses any other top-level key.
pub const SECTIONS: &[&str] = &[
    "amqp",
    "delivery",
    "embedded",
    "events",
    "experimentation",
    "gateway",
    "generation",
    "policy",
    "redis",
    "retrieval",
    "runtime",
    "safety",
    "security",
    "segmentation",
    "store",
    "worker",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    File { path: String, message: String },
    #[error("config section `{section}`: {message}")]
    Section { section: String, message: String },
}

/// The merged configuration of a process.
#[derive(Clone)]
pub struct Settings {
    raw: config::Config,
}

// By hand: the merged values hold secrets (keys, URLs with passwords), so
// Debug shows only which sections are present.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sections: Vec<String> = self
            .raw
            .clone()
            .try_deserialize::<std::collections::BTreeMap<String, serde::de::IgnoredAny>>()
            .map(|map| map.into_keys().collect())
            .unwrap_or_default();
        f.debug_struct("Settings")
            .field("sections", &sections)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Defaults, then `file` (YAML) if given, then `CPO__*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::File {
                    path: path.display().to_string(),
                    message: "not found".into(),
                });
            }
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Yaml));
        }
        builder = builder.add_source(
            config::Environment::with_prefix("CPO")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        );
        let origin = || {
            file.map(|p| p.display().to_string())
                .unwrap_or_else(|| "<environment>".into())
        };
        let raw = builder.build().map_err(|e| ConfigError::File {
            path: origin(),
            message: e.to_string(),
        })?;
        let settings = Self { raw };
        settings
            .check_sections()
            .map_err(|message| ConfigError::File {
                path: format!("{} (or a CPO__ variable)", origin()),
                message,
            })?;
        Ok(settings)
    }

    /// Every top-level key must be a known section: a section only some
    /// command reads would otherwise go unnoticed when misspelt.
    fn check_sections(&self) -> Result<(), String> {
        let present = self
            .raw
            .clone()
            .try_deserialize::<std::collections::BTreeMap<String, serde::de::IgnoredAny>>()
            .map_err(|e| e.to_string())?;
        match present.keys().find(|k| !SECTIONS.contains(&k.as_str())) {
            None => Ok(()),
            Some(unknown) => Err(match crate::keys::closest(unknown, SECTIONS) {
                Some(best) => format!("unknown section `{unknown}` (did you mean `{best}`?)"),
                None => format!(
                    "unknown section `{unknown}` (known sections: {})",
                    SECTIONS.join(", ")
                ),
            }),
        }
    }

    /// Settings from a YAML string only (tests).
    pub fn from_yaml(yaml: &str) -> Result<Self, ConfigError> {
        let raw = config::Config::builder()
            .add_source(config::File::from_str(yaml, config::FileFormat::Yaml))
            .build()
            .map_err(|e| ConfigError::File {
                path: "<inline>".into(),
                message: e.to_string(),
            })?;
        Ok(Self { raw })
    }

    /// Whether `key` (`section.key`) is set at all.
    pub fn is_set(&self, key: &str) -> bool {
        self.raw.get::<serde_json::Value>(key).is_ok()
    }

    /// These settings with `key` replaced by the string `value` (`cpo preview` keeps its
    /// pipeline off the configured store and sink this way).
    pub fn with_override(&self, key: &str, value: &str) -> Result<Self, ConfigError> {
        let raw = config::Config::builder()
            .add_source(self.raw.clone())
            .set_override(key, value)
            .and_then(|b| b.build())
            .map_err(|e| ConfigError::Section {
                section: key.split('.').next().unwrap_or(key).to_string(),
                message: e.to_string(),
            })?;
        Ok(Self { raw })
    }

    /// One section, with the type's defaults for everything not set.
    pub fn section<T: DeserializeOwned + Default>(&self, name: &str) -> Result<T, ConfigError> {
        let value = match self.raw.get::<serde_json::Value>(name) {
            Ok(value) => value,
            Err(config::ConfigError::NotFound(_)) => return Ok(T::default()),
            Err(e) => {
                return Err(ConfigError::Section {
                    section: name.to_string(),
                    message: e.to_string(),
                });
            }
        };
        // serde_path_to_error names the exact key (`runtime.max_attempts`), not
        // just the section; an unknown key also gets the closest known one.
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let path = match path.as_str() {
                "." | "" => name.to_string(),
                inner => format!("{name}.{inner}"),
            };
            ConfigError::Section {
                section: name.to_string(),
                message: crate::keys::explain(&path, &e.inner().to_string()),
            }
        })
    }
}

/// The content of a secret file (a mounted Kubernetes secret, say), without
/// its trailing newline. Errors name the key and the path, never the content.
pub fn read_secret_file(key: &str, path: &Path) -> Result<String, ConfigError> {
    let section = key.split('.').next().unwrap_or(key).to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Section {
        section: section.clone(),
        message: format!("key `{key}`: cannot read {}: {e}", path.display()),
    })?;
    let text = text.trim_end_matches(['\r', '\n']).to_string();
    if text.is_empty() {
        return Err(ConfigError::Section {
            section,
            message: format!("key `{key}`: {} is empty", path.display()),
        });
    }
    Ok(text)
}

/// A connection URL with its credentials resolved: `url_file` (the whole
/// URL in a file) replaces `url`, then `password_file` puts its content in
/// as the URL's password. `section` names the keys in errors.
pub fn resolve_url(
    section: &str,
    url: &str,
    url_file: Option<&Path>,
    password_file: Option<&Path>,
) -> Result<String, ConfigError> {
    let mut url = match url_file {
        Some(path) => read_secret_file(&format!("{section}.url_file"), path)?,
        None => url.to_string(),
    };
    if let Some(path) = password_file {
        let key = format!("{section}.password_file");
        let password = read_secret_file(&key, path)?;
        url = crate::privacy::with_password(&url, &password).map_err(|message| {
            ConfigError::Section {
                section: section.to_string(),
                message: format!("key `{key}`: {message}"),
            }
        })?;
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::RuntimeConfig;

    #[test]
    fn urls_take_their_credentials_from_files_without_showing_them() {
        let dir = tempfile::tempdir().unwrap();
        let url_file = dir.path().join("url");
        std::fs::write(&url_file, "amqps://svc:from-file@broker/prod\n").unwrap();
        let password_file = dir.path().join("password");
        std::fs::write(&password_file, "p@ss\n").unwrap();
        let plain = resolve_url("amqp", "amqp://u@h/%2f", None, None).unwrap();
        assert_eq!(plain, "amqp://u@h/%2f");
        let from_file = resolve_url("amqp", "ignored", Some(&url_file), None).unwrap();
        assert_eq!(from_file, "amqps://svc:from-file@broker/prod");
        let with_password =
            resolve_url("amqp", "amqp://u@h/%2f", None, Some(&password_file)).unwrap();
        assert_eq!(with_password, "amqp://u:p%40ss@h/%2f");
        let missing = dir.path().join("absent");
        let err = resolve_url("redis", "redis://h/", None, Some(&missing))
            .unwrap_err()
            .to_string();
        assert!(err.contains("redis.password_file"), "{err}");
        std::fs::write(&missing, "\n").unwrap();
        let err = resolve_url("redis", "redis://h/", Some(&missing), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("redis.url_file") && err.contains("empty"),
            "{err}"
        );
    }

    #[test]
    fn an_override_replaces_one_key_and_keeps_the_rest() {
        use crate::store::StoreConfig;
        let settings =
            Settings::from_yaml("store:\n  url: postgres://db/prod\n  pool_size: 3\n").unwrap();
        assert!(settings.is_set("store.url"));
        assert!(!settings.is_set("delivery.sink"));
        let changed = settings
            .with_override("store.url", "sqlite:///tmp/x.sqlite")
            .unwrap();
        let store: StoreConfig = changed.section("store").unwrap();
        assert_eq!(
            (store.url.as_str(), store.pool_size),
            ("sqlite:///tmp/x.sqlite", 3)
        );
        let before: StoreConfig = settings.section("store").unwrap();
        assert_eq!(before.url, "postgres://db/prod");
    }

    #[test]
    fn debug_names_the_sections_and_hides_the_values() {
        let settings = Settings::from_yaml(
            "security:\n  signing_key: s3cr3t-signing\nredis:\n  url: redis://:pw@h/\n",
        )
        .unwrap();
        let shown = format!("{settings:?}");
        assert!(
            shown.contains("redis") && shown.contains("security"),
            "{shown}"
        );
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("pw@"),
            "{shown}"
        );
    }

    #[test]
    fn file_values_override_defaults_and_bad_values_name_the_key() {
        let s = Settings::from_yaml("runtime:\n  max_attempts: 9\n").unwrap();
        let rt: RuntimeConfig = s.section("runtime").unwrap();
        assert_eq!(rt.max_attempts, 9);
        assert_eq!(
            rt.initial_backoff_ms,
            RuntimeConfig::default().initial_backoff_ms
        );
        let missing: RuntimeConfig = s.section("nowhere").unwrap();
        assert_eq!(missing.max_attempts, RuntimeConfig::default().max_attempts);

        let bad = Settings::from_yaml("runtime:\n  max_attempts: lots\n").unwrap();
        let err = bad
            .section::<RuntimeConfig>("runtime")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_attempts"), "{err}");
    }
}
