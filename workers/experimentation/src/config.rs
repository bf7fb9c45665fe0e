//! Config section `experimentation`.

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExperimentationConfig {
    /// How long a batch waits before it is redelivered while its segments are
    /// still waiting for safety decisions. The runtime's `defer_timeout_ms`
    /// bounds the total wait.
    pub defer_ms: u64,
    /// How long a campaign's join state (the decisions per segment) is kept
    /// after its last decision: long enough for a dead-letter replay days later.
    pub join_ttl_s: u64,
}

impl Default for ExperimentationConfig {
    fn default() -> Self {
        Self {
            defer_ms: 50,
            join_ttl_s: 7 * 24 * 3_600,
        }
    }
}

impl ExperimentationConfig {
    pub fn join_ttl(&self) -> Duration {
        Duration::from_secs(self.join_ttl_s.max(1))
    }

    pub fn defer(&self) -> Duration {
        Duration::from_millis(self.defer_ms.max(1))
    }
}

#[cfg(test)]
mod tests {
    use cpo_shared::config::Settings;

    use super::*;

    #[test]
    fn section_overrides_defaults_and_rejects_unknown_keys() {
        let settings = Settings::from_yaml("experimentation:\n  defer_ms: 200\n").unwrap();
        let config: ExperimentationConfig = settings.section("experimentation").unwrap();
        assert_eq!(config.defer(), Duration::from_millis(200));
        let empty = Settings::from_yaml("other: 1\n").unwrap();
        assert_eq!(
            empty
                .section::<ExperimentationConfig>("experimentation")
                .unwrap(),
            ExperimentationConfig::default()
        );
        let typo = Settings::from_yaml("experimentation:\n  defer: 1\n").unwrap();
        let err = typo
            .section::<ExperimentationConfig>("experimentation")
            .unwrap_err();
        assert!(err.to_string().contains("defer"), "{err}");
    }
}
