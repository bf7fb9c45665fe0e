//! Config section `events`.

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Most events per store write. The events worker consumes with a
    /// prefetch of twice this (`runtime.concurrency` if that is larger), so
    /// the next batch fills while one is written.
    pub max_batch: usize,
    /// How long the first event of a batch waits for others before the batch
    /// is written anyway.
    pub flush_interval_ms: u64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            max_batch: 256,
            flush_interval_ms: 20,
        }
    }
}

impl EventsConfig {
    /// Bounds that keep a batch within one store statement and one prefetch window.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=5_000).contains(&self.max_batch) {
            return Err(format!(
                "events.max_batch: {} is outside 1..=5000",
                self.max_batch
            ));
        }
        if !(1..=10_000).contains(&self.flush_interval_ms) {
            return Err(format!(
                "events.flush_interval_ms: {} is outside 1..=10000",
                self.flush_interval_ms
            ));
        }
        Ok(())
    }

    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }

    /// The prefetch the events worker consumes with: two batches, one being
    /// written and one filling (every message of both is unacked until its
    /// batch committed).
    pub fn prefetch(&self, concurrency: u16) -> u16 {
        concurrency.max(u16::try_from(self.max_batch * 2).unwrap_or(u16::MAX))
    }
}

#[cfg(test)]
mod tests {
    use cpo_shared::config::Settings;

    use super::*;

    #[test]
    fn section_overrides_defaults_and_bad_values_name_the_key() {
        let settings = Settings::from_yaml("events:\n  max_batch: 64\n").unwrap();
        let config: EventsConfig = settings.section("events").unwrap();
        assert_eq!(config.max_batch, 64);
        assert_eq!(config.flush_interval_ms, 20);
        assert!(config.validate().is_ok());
        assert_eq!(config.prefetch(1), 128);
        assert_eq!(config.prefetch(1000), 1000);

        let unknown = Settings::from_yaml("events:\n  max_bach: 64\n").unwrap();
        let err = unknown.section::<EventsConfig>("events").unwrap_err();
        assert!(err.to_string().contains("max_bach"), "{err}");
        let zero = EventsConfig {
            max_batch: 0,
            ..EventsConfig::default()
        };
        assert!(zero.validate().unwrap_err().contains("events.max_batch"));
        let slow = EventsConfig {
            flush_interval_ms: 0,
            ..EventsConfig::default()
        };
        assert!(
            slow.validate()
                .unwrap_err()
                .contains("events.flush_interval_ms")
        );
    }
}
