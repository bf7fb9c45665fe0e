//! The `segmentation` config section.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::rules::{RuleSet, RulesError};

/// Loaded by the binary with `Settings::section::<SegmentationConfig>("segmentation")`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SegmentationConfig {
    /// Customers per `CustomerBatch` on the audience queue.
    pub batch_size: usize,
    /// Base of relative paths (audience CSVs, `rules_file`); unset: the working directory.
    pub data_dir: Option<PathBuf>,
    /// A YAML rule set; unset: the bundled rules (`data/segments.yaml`, embedded).
    pub rules_file: Option<PathBuf>,
}

impl Default for SegmentationConfig {
    fn default() -> Self {
        Self {
            // Hundreds of customers per message keep the broker in its
            // bytes-per-second regime, not its messages-per-second one.
            batch_size: 1000,
            data_dir: None,
            rules_file: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SegmentationError {
    #[error("config key `segmentation.{key}`: {message}")]
    Config { key: &'static str, message: String },
    #[error(transparent)]
    Rules(#[from] RulesError),
}

impl SegmentationConfig {
    pub fn validate(&self) -> Result<(), SegmentationError> {
        if self.batch_size == 0 {
            return Err(SegmentationError::Config {
                key: "batch_size",
                message: "must be at least 1".into(),
            });
        }
        Ok(())
    }

    /// Check values and load the rule set they name.
    pub fn load_rules(&self) -> Result<RuleSet, SegmentationError> {
        self.validate()?;
        match &self.rules_file {
            Some(path) => Ok(RuleSet::load(&self.resolve(path))?),
            None => Ok(RuleSet::bundled()?),
        }
    }

    /// A relative path is taken from `data_dir` when set, else from the working directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        match &self.data_dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpo_shared::config::Settings;

    #[test]
    fn section_defaults_and_overrides() {
        let settings = Settings::from_yaml("segmentation:\n  batch_size: 50\n").unwrap();
        let config: SegmentationConfig = settings.section("segmentation").unwrap();
        assert_eq!(config.batch_size, 50);
        assert_eq!(config.data_dir, None);
        let none: SegmentationConfig = settings.section("absent").unwrap();
        assert_eq!(none.batch_size, 1000);
        let typo = Settings::from_yaml("segmentation:\n  batchsize: 5\n").unwrap();
        let err = typo
            .section::<SegmentationConfig>("segmentation")
            .unwrap_err();
        assert!(err.to_string().contains("batchsize"), "{err}");
    }

    #[test]
    fn zero_batch_size_and_missing_rules_file_are_errors() {
        let zero = SegmentationConfig {
            batch_size: 0,
            ..Default::default()
        };
        assert!(
            zero.load_rules()
                .unwrap_err()
                .to_string()
                .contains("segmentation.batch_size")
        );
        let missing = SegmentationConfig {
            rules_file: Some("nowhere/rules.yaml".into()),
            data_dir: Some("base".into()),
            ..Default::default()
        };
        let err = missing.load_rules().unwrap_err().to_string();
        assert!(err.contains("base/nowhere/rules.yaml"), "{err}");
    }

    #[test]
    fn relative_paths_resolve_against_data_dir() {
        let config = SegmentationConfig {
            data_dir: Some("data".into()),
            ..Default::default()
        };
        assert_eq!(
            config.resolve(Path::new("c.csv")),
            PathBuf::from("data/c.csv")
        );
        assert_eq!(
            config.resolve(Path::new("/abs/c.csv")),
            PathBuf::from("/abs/c.csv")
        );
        let plain = SegmentationConfig::default();
        assert_eq!(plain.resolve(Path::new("c.csv")), PathBuf::from("c.csv"));
    }
}
