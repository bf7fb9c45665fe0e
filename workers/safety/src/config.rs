//! Config section `safety`.

use std::time::Duration;

use serde::Deserialize;

use crate::error::SafetyError;

/// Harm categories at or above their threshold block (`>=`, not `>`: the
/// prototype's `> 4` let severity-4 content through).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    pub hate: u8,
    pub violence: u8,
    pub self_harm: u8,
    pub sexual: u8,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            hate: 4,
            violence: 4,
            self_harm: 4,
            sexual: 4,
        }
    }
}

/// Settings of the safety stage and of `cpo screen`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SafetyConfig {
    pub thresholds: Thresholds,
    /// Longest the screen may take for one variant before it counts as an error (and blocks).
    pub timeout_ms: u64,
    /// Also block mild profanity ("damn", "crap", "hell"); strong profanity always blocks.
    pub block_mild_profanity: bool,
    /// The brand's own contact addresses and numbers, which copy may contain.
    /// Compared case-insensitively for emails and digit-by-digit for phone numbers.
    pub allowed_contacts: Vec<String>,
}

impl Default for SafetyConfig {
    fn default() -> Self {
        Self {
            thresholds: Thresholds::default(),
            timeout_ms: 2_000,
            block_mild_profanity: false,
            allowed_contacts: Vec::new(),
        }
    }
}

impl SafetyConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Reject values that would silently disable screening.
    pub fn validate(&self) -> Result<(), SafetyError> {
        let t = &self.thresholds;
        for (name, value) in [
            ("hate", t.hate),
            ("violence", t.violence),
            ("self_harm", t.self_harm),
            ("sexual", t.sexual),
        ] {
            // 0 would block everything; above 7 would never block.
            if !(1..=7).contains(&value) {
                return Err(SafetyError::Config {
                    key: format!("safety.thresholds.{name}"),
                    message: format!("must be between 1 and 7, got {value}"),
                });
            }
        }
        if !(1..=60_000).contains(&self.timeout_ms) {
            return Err(SafetyError::Config {
                key: "safety.timeout_ms".into(),
                message: format!("must be between 1 and 60000, got {}", self.timeout_ms),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpo_shared::config::Settings;

    #[test]
    fn yaml_overrides_one_threshold_and_keeps_the_other_defaults() {
        let settings =
            Settings::from_yaml("safety:\n  thresholds:\n    violence: 6\n  timeout_ms: 50\n")
                .unwrap();
        let config: SafetyConfig = settings.section("safety").unwrap();
        assert_eq!(config.thresholds.violence, 6);
        assert_eq!(config.thresholds.hate, 4);
        assert_eq!(config.timeout(), Duration::from_millis(50));
        assert!(config.validate().is_ok());
    }

    #[test]
    fn typos_and_out_of_range_values_name_the_key() {
        let settings = Settings::from_yaml("safety:\n  treshold: 3\n").unwrap();
        let err = settings.section::<SafetyConfig>("safety").unwrap_err();
        assert!(err.to_string().contains("treshold"), "{err}");

        let mut config = SafetyConfig::default();
        config.thresholds.sexual = 8;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("safety.thresholds.sexual"), "{err}");
        config.thresholds.sexual = 0;
        assert!(config.validate().is_err());

        let config = SafetyConfig {
            timeout_ms: 0,
            ..SafetyConfig::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("timeout_ms")
        );
    }
}
