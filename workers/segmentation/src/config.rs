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
    /// Only read audience CSVs that lie inside `data_dir` once `..` and
    /// symlinks are resolved. On in the fleet, where campaigns come from
    /// another system and must not name arbitrary files on the worker.
    pub confine_audience: bool,
    /// How audience CSVs are split into rows.
    pub csv: CsvConfig,
}

/// `segmentation.csv`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CsvConfig {
    /// Let a quoted field span lines. Off: one row per physical line, so a
    /// stray quote breaks one row instead of swallowing the rows after it.
    pub multiline_fields: bool,
}

impl Default for SegmentationConfig {
    fn default() -> Self {
        Self {
            // Hundreds of customers per message keep the broker in its
            // bytes-per-second regime, not its messages-per-second one.
            batch_size: 1000,
            data_dir: None,
            rules_file: None,
            confine_audience: false,
            csv: CsvConfig::default(),
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
        if self.confine_audience && self.data_dir.is_none() {
            return Err(SegmentationError::Config {
                key: "confine_audience",
                message: "needs `segmentation.data_dir`, the directory audiences must lie in"
                    .into(),
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

    /// The file an audience path names, checked against `confine_audience`:
    /// first by its name alone (`..` resolved without touching the file
    /// system, so nothing outside is even looked at), then by where it really
    /// is (a symlink must not lead out). Both refusals read the same.
    pub fn audience_file(&self, path: &Path) -> Result<PathBuf, String> {
        let resolved = self.resolve(path);
        let (true, Some(dir)) = (self.confine_audience, &self.data_dir) else {
            return Ok(resolved);
        };
        let refused = || {
            format!(
                "audience csv {} is not inside segmentation.data_dir ({}): refused",
                path.display(),
                dir.display()
            )
        };
        let absolute = |p: &Path| std::path::absolute(p).map(|p| lexical(&p));
        let root = absolute(dir).map_err(|e| format!("segmentation.data_dir: {e}"))?;
        if !absolute(&resolved).is_ok_and(|p| p.starts_with(&root)) {
            return Err(refused());
        }
        let real_root = dir
            .canonicalize()
            .map_err(|e| format!("segmentation.data_dir {}: {e}", dir.display()))?;
        let real = resolved
            .canonicalize()
            .map_err(|e| format!("cannot read audience csv {}: {e}", path.display()))?;
        if real.starts_with(&real_root) {
            Ok(real)
        } else {
            Err(refused())
        }
    }
}

/// `path` with `.` and `..` resolved by name (an absolute path never rises above `/`).
fn lexical(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpo_shared::config::Settings;

    #[test]
    fn a_confined_audience_must_lie_inside_the_data_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("audiences");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("ok.csv"), "customer_id\n").unwrap();
        std::fs::write(tmp.path().join("secret.csv"), "x\n").unwrap();
        let config = SegmentationConfig {
            data_dir: Some(data.clone()),
            confine_audience: true,
            ..SegmentationConfig::default()
        };
        config.validate().unwrap();
        assert!(config.audience_file(Path::new("ok.csv")).is_ok());
        assert!(config.audience_file(&data.join("ok.csv")).is_ok());
        std::fs::create_dir_all(data.join("sub")).unwrap();
        assert!(config.audience_file(Path::new("sub/../ok.csv")).is_ok());
        // missing outside reads exactly like present outside: nothing is revealed
        assert_eq!(
            config
                .audience_file(Path::new("../absent.csv"))
                .unwrap_err(),
            config
                .audience_file(Path::new("../secret.csv"))
                .unwrap_err()
                .replace("secret", "absent")
        );
        for outside in [
            tmp.path().join("secret.csv"),
            PathBuf::from("../secret.csv"),
            PathBuf::from("/etc/hostname"),
        ] {
            let err = config.audience_file(&outside).unwrap_err();
            assert!(err.contains("not inside segmentation.data_dir"), "{err}");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(tmp.path().join("secret.csv"), data.join("link.csv"))
                .unwrap();
            let err = config.audience_file(Path::new("link.csv")).unwrap_err();
            assert!(
                err.contains("not inside"),
                "a symlink cannot leave the directory: {err}"
            );
        }
        // unconfined, any path goes (the embedded `cpo run` reads what its user names)
        let open = SegmentationConfig::default();
        assert!(open.audience_file(&tmp.path().join("secret.csv")).is_ok());
        let bad = SegmentationConfig {
            confine_audience: true,
            ..SegmentationConfig::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("data_dir"));
    }

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
