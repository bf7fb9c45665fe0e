//! Layered configuration: defaults (each section's `Default`), then a YAML file,
//! then `CPO__SECTION__KEY` environment variables (the `config` crate).
//!
//! Each crate owns its section type; `Settings::section` deserializes it and
//! names the offending key when a value is wrong. Secrets come only from the
//! environment or files and are never logged.

use std::path::Path;

use serde::de::DeserializeOwned;

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
        let raw = builder.build().map_err(|e| ConfigError::File {
            path: file
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "<environment>".into()),
            message: e.to_string(),
        })?;
        Ok(Self { raw })
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
        // serde_path_to_error names the exact key (`runtime.max_attempts`), not just the section.
        serde_path_to_error::deserialize(value).map_err(|e| ConfigError::Section {
            section: name.to_string(),
            message: format!("key `{name}.{}`: {}", e.path(), e.inner()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::RuntimeConfig;

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
