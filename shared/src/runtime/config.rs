//! The `runtime` config section: attempts, backoff, join and outage timeouts.

use std::time::Duration;

use backoff::ExponentialBackoff;
use backoff::backoff::Backoff;
use serde::Deserialize;

/// Retry and flow settings of the runtime (config section `runtime`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Handling attempts before a transiently failing message is dead-lettered.
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    pub backoff_multiplier: f64,
    /// Messages handled concurrently per input queue (also the prefetch).
    pub concurrency: u16,
    /// How long a message may wait for a join before it is dead-lettered.
    pub defer_timeout_ms: u64,
    /// Larger messages are dead-lettered unread.
    pub max_message_bytes: usize,
    /// While a dependency is down, the first delay before a waiting message is
    /// tried again; the delay grows with the outage up to `outage_max_retry_ms`.
    pub outage_retry_ms: u64,
    pub outage_max_retry_ms: u64,
    /// How long in all a message may wait out dependency outages before it is
    /// dead-lettered (replayable with `cpo dlq replay`).
    pub outage_timeout_ms: u64,
    /// How long a campaign's progress counters are kept after its last update.
    pub progress_ttl_s: u64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff_ms: 100,
            max_backoff_ms: 10_000,
            backoff_multiplier: 2.0,
            concurrency: 1,
            defer_timeout_ms: 120_000,
            max_message_bytes: 16 * 1024 * 1024,
            outage_retry_ms: 1_000,
            outage_max_retry_ms: 30_000,
            outage_timeout_ms: 30 * 60 * 1_000,
            progress_ttl_s: 7 * 24 * 3_600,
        }
    }
}

impl RuntimeConfig {
    /// Delay before a message that has waited `paused_ms` for a dependency is
    /// tried again: half the wait so far, between `outage_retry_ms` and
    /// `outage_max_retry_ms`, so a long outage costs few redeliveries.
    pub fn outage_delay(&self, paused_ms: u64) -> Duration {
        let floor = self.outage_retry_ms.max(1);
        let ceiling = self.outage_max_retry_ms.max(floor);
        Duration::from_millis((paused_ms / 2).clamp(floor, ceiling))
    }

    /// Delay before attempt `attempt` (1-based retry number), from the backoff crate's
    /// exponential policy with jitter so retries of a batch do not arrive together.
    pub fn retry_delay(&self, attempt: u32) -> Duration {
        let mut policy = ExponentialBackoff {
            current_interval: Duration::from_millis(self.initial_backoff_ms),
            initial_interval: Duration::from_millis(self.initial_backoff_ms),
            max_interval: Duration::from_millis(self.max_backoff_ms),
            multiplier: self.backoff_multiplier,
            randomization_factor: 0.2,
            max_elapsed_time: None,
            ..ExponentialBackoff::default()
        };
        let mut delay = policy.initial_interval;
        for _ in 0..attempt.max(1) {
            delay = policy.next_backoff().unwrap_or(policy.max_interval);
        }
        delay
    }
}
