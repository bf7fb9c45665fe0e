//! One rate limit for every delivery replica: `delivery.rate` as a GCRA per
//! second and per minute, plus a daily quota per UTC day.
//!
//! `RateLimiter::acquire` is taken right before each send (never when a batch
//! is queued): it either grants `n` sends now, says how long to wait before
//! asking again, or says the day's quota is spent and when the next day starts.
//! `MemoryRateLimiter` serves `cpo run` (one process); `RedisRateLimiter`
//! (`redis_cache::rate_limit`) runs the same algorithm as one Lua script, so
//! every replica draws from one budget, on Redis' clock.
//!
//! GCRA: each limit of `r` per `T` has an emission interval `I = T / r` and a
//! theoretical arrival time `tat`. `n` sends are allowed at `now` when
//! `max(tat, now) + n*I - now <= burst*I`; then `tat` advances by `n*I`. Any
//! window of length `T` then holds at most `r + burst` sends; `burst` is
//! `max(1, r / 25)`, so that is the configured rate plus at most 4 %.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

/// `delivery.rate`: limits of the configured sink; any unset limit is off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateConfig {
    pub per_second: Option<u32>,
    pub per_minute: Option<u32>,
    pub per_day: Option<u32>,
    /// One budget per sending domain (the From address' domain) instead of
    /// one for the whole sink.
    pub per_domain: bool,
}

impl RateConfig {
    /// Rejects zero limits (a limit of 0 would never send), naming the key.
    pub fn validate(&self) -> Result<(), String> {
        for (key, value) in [
            ("per_second", self.per_second),
            ("per_minute", self.per_minute),
            ("per_day", self.per_day),
        ] {
            if value == Some(0) {
                return Err(format!(
                    "delivery.rate.{key}: must be at least 1 (leave it out for no limit)"
                ));
            }
        }
        Ok(())
    }

    pub fn is_unlimited(&self) -> bool {
        self.per_second.is_none() && self.per_minute.is_none() && self.per_day.is_none()
    }

    /// The GCRA limits as (emission interval, tolerance) in microseconds.
    pub fn gcra_limits(&self) -> Vec<GcraLimit> {
        [
            (self.per_second, 1_000_000u64),
            (self.per_minute, 60_000_000),
        ]
        .into_iter()
        .filter_map(|(rate, period_us)| rate.map(|r| GcraLimit::new(r, period_us)))
        .collect()
    }

    /// Most sends one `acquire` may ask for: the smallest burst of the limits.
    pub fn max_take(&self) -> u32 {
        self.gcra_limits()
            .iter()
            .map(|l| l.burst)
            .min()
            .unwrap_or(u32::MAX)
    }
}

/// One GCRA limit: `burst` sends at once, then one per `interval_us`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcraLimit {
    pub interval_us: u64,
    pub burst: u32,
}

impl GcraLimit {
    pub fn new(rate: u32, period_us: u64) -> Self {
        let rate = rate.max(1);
        Self {
            interval_us: (period_us / u64::from(rate)).max(1),
            burst: (rate / 25).max(1),
        }
    }

    /// The tolerance `burst * interval`.
    pub fn tolerance_us(&self) -> u64 {
        self.interval_us * u64::from(self.burst)
    }
}

/// The answer of `acquire`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Send now.
    Granted,
    /// Throttled: ask again after this long.
    Wait(Duration),
    /// The daily quota is spent; it renews at `until_ms` (Unix ms, next UTC midnight).
    QuotaSpent { until_ms: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    /// The shared limiter (Redis) is unreachable: sending pauses.
    #[error("rate limiter unavailable: {0}")]
    Unavailable(String),
    #[error("rate limiter: {0}")]
    Invalid(String),
}

/// A rate limit shared by every sender of one `key` (a sink, or a sink and domain).
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Take `n` sends (at most `max_take`) for `key`, or say how long to wait.
    async fn acquire(&self, key: &str, n: u32) -> Result<Permit, LimitError>;
    /// Most sends one `acquire` may take.
    fn max_take(&self) -> u32;
}

pub const DAY_US: u64 = 86_400_000_000;

/// State of one key: the GCRA arrival times and the day's count.
#[derive(Debug, Default, Clone)]
struct KeyState {
    tats_us: Vec<u64>,
    day: u64,
    used_today: u64,
}

/// One decision of the algorithm, the same in memory and in the Lua script.
fn decide(
    state: &mut KeyState,
    limits: &[GcraLimit],
    per_day: Option<u32>,
    now_us: u64,
    n: u32,
) -> Permit {
    state.tats_us.resize(limits.len(), 0);
    let mut wait_us = 0u64;
    let mut next = Vec::with_capacity(limits.len());
    for (limit, tat) in limits.iter().zip(&state.tats_us) {
        let new_tat = (*tat).max(now_us) + limit.interval_us * u64::from(n);
        let allow_at = new_tat.saturating_sub(limit.tolerance_us());
        wait_us = wait_us.max(allow_at.saturating_sub(now_us));
        next.push(new_tat);
    }
    if wait_us > 0 {
        return Permit::Wait(Duration::from_micros(wait_us));
    }
    let day = now_us / DAY_US;
    if state.day != day {
        state.day = day;
        state.used_today = 0;
    }
    if let Some(quota) = per_day
        && state.used_today + u64::from(n) > u64::from(quota)
    {
        return Permit::QuotaSpent {
            until_ms: (day + 1) * DAY_US / 1_000,
        };
    }
    state.used_today += u64::from(n);
    state.tats_us = next;
    Permit::Granted
}

/// The limiter of the embedded mode: the same algorithm, in this process.
pub struct MemoryRateLimiter {
    limits: Vec<GcraLimit>,
    per_day: Option<u32>,
    max_take: u32,
    keys: Mutex<HashMap<String, KeyState>>,
    clock: fn() -> u64,
}

fn system_now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

impl MemoryRateLimiter {
    pub fn new(config: &RateConfig) -> Self {
        Self::with_clock(config, system_now_us)
    }

    /// With a clock of its own (microseconds since the epoch), for tests.
    pub fn with_clock(config: &RateConfig, clock: fn() -> u64) -> Self {
        Self {
            limits: config.gcra_limits(),
            per_day: config.per_day,
            max_take: config.max_take().min(config.per_day.unwrap_or(u32::MAX)),
            keys: Mutex::default(),
            clock,
        }
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn acquire(&self, key: &str, n: u32) -> Result<Permit, LimitError> {
        if n == 0 || n > self.max_take {
            return Err(LimitError::Invalid(format!(
                "asked for {n} sends at once; 1 to {} allowed",
                self.max_take
            )));
        }
        let now = (self.clock)();
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let state = keys.entry(key.to_string()).or_default();
        Ok(decide(state, &self.limits, self.per_day, now, n))
    }

    fn max_take(&self) -> u32 {
        self.max_take
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(per_second: Option<u32>, per_day: Option<u32>) -> RateConfig {
        RateConfig {
            per_second,
            per_day,
            ..RateConfig::default()
        }
    }

    #[test]
    fn a_second_at_full_speed_grants_the_rate_plus_the_burst_only() {
        let limits = rate(Some(200), None).gcra_limits();
        assert_eq!(
            limits[0],
            GcraLimit {
                interval_us: 5_000,
                burst: 8
            }
        );
        let mut state = KeyState::default();
        let start = 10 * DAY_US + 1;
        let mut granted = 0;
        // Ask every 100 µs for one second.
        for step in 0..10_000u64 {
            if decide(&mut state, &limits, None, start + step * 100, 1) == Permit::Granted {
                granted += 1;
            }
        }
        assert!((200..=209).contains(&granted), "{granted}");
    }

    #[test]
    fn throttled_sends_are_told_how_long_to_wait() {
        let limits = rate(Some(10), None).gcra_limits();
        let mut state = KeyState::default();
        let now = DAY_US;
        assert_eq!(decide(&mut state, &limits, None, now, 1), Permit::Granted);
        match decide(&mut state, &limits, None, now, 1) {
            Permit::Wait(d) => assert_eq!(d, Duration::from_millis(100)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_daily_quota_pauses_until_the_next_utc_day() {
        let mut state = KeyState::default();
        let day = 20_000 * DAY_US;
        for i in 0..3 {
            assert_eq!(
                decide(&mut state, &[], Some(3), day + i, 1),
                Permit::Granted
            );
        }
        assert_eq!(
            decide(&mut state, &[], Some(3), day + 10, 1),
            Permit::QuotaSpent {
                until_ms: 20_001 * DAY_US / 1_000
            }
        );
        assert_eq!(
            decide(&mut state, &[], Some(3), day + DAY_US, 1),
            Permit::Granted
        );
    }

    #[test]
    fn zero_limits_are_named() {
        let err = rate(Some(0), None).validate().unwrap_err();
        assert!(err.contains("delivery.rate.per_second"), "{err}");
    }

    #[tokio::test]
    async fn the_memory_limiter_refuses_more_than_one_burst_at_once() {
        let limiter = MemoryRateLimiter::new(&rate(Some(100), None));
        assert_eq!(limiter.max_take(), 4);
        assert!(limiter.acquire("smtp", 5).await.is_err());
        assert_eq!(limiter.acquire("smtp", 4).await.unwrap(), Permit::Granted);
        assert!(matches!(
            limiter.acquire("smtp", 1).await.unwrap(),
            Permit::Wait(_)
        ));
        // Keys have budgets of their own.
        assert_eq!(limiter.acquire("other", 1).await.unwrap(), Permit::Granted);
    }
}
