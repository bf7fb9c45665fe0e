//! The fleet's rate limiter: `crate::rate_limit`'s algorithm as one Lua script,
//! so every delivery replica draws from one budget. The script reads Redis'
//! own clock (`TIME`), so replicas whose clocks differ still agree, and it
//! decides and records in one atomic step: two replicas cannot both take the
//! last send of a window.
//!
//! Keys, under the configured `key_prefix`: `ratelimit:<key>:g0`, `:g1` (the
//! GCRA arrival times, expiring once idle) and `ratelimit:<key>:d:<day>` (the
//! day's count, kept two days). The day key is built inside the script from
//! `TIME`, which a Redis Cluster would refuse; cpo uses one Redis.

use async_trait::async_trait;
use redis::aio::ConnectionManager;

use crate::rate_limit::{GcraLimit, LimitError, Permit, RateConfig, RateLimiter};

use super::{RedisCache, RedisConfig};

/// ARGV: n, per_day (0: none), then interval and tolerance (µs) per KEYS entry.
/// KEYS: one GCRA key per limit, then the day key's base.
/// Returns {1, now_us} granted, {0, wait_us} throttled, {2, until_ms} quota spent.
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = tonumber(ARGV[1])
local per_day = tonumber(ARGV[2])
local limits = #KEYS - 1
local wait = 0
local tats = {}
for i = 1, limits do
  local interval = tonumber(ARGV[1 + 2 * i])
  local tolerance = tonumber(ARGV[2 + 2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval * n
  local allow_at = new_tat - tolerance
  if allow_at - now > wait then wait = allow_at - now end
  tats[i] = new_tat
end
if wait > 0 then return {0, wait} end
if per_day > 0 then
  local day = math.floor(now / 86400000000)
  local day_key = KEYS[#KEYS] .. day
  local used = tonumber(redis.call('GET', day_key) or 0)
  if used + n > per_day then return {2, (day + 1) * 86400000} end
  redis.call('INCRBY', day_key, n)
  redis.call('PEXPIRE', day_key, 172800000)
end
for i = 1, limits do
  redis.call('SET', KEYS[i], string.format('%d', tats[i]), 'PX', math.floor((tats[i] - now) / 1000) + 1000)
end
return {1, now}
"#;

/// The shared limiter. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct RedisRateLimiter {
    connection: ConnectionManager,
    key_prefix: String,
    limits: Vec<GcraLimit>,
    per_day: Option<u32>,
    max_take: u32,
    script: redis::Script,
}

impl RedisRateLimiter {
    /// Connects lazily, like the cache (a worker starts while Redis is down;
    /// sends pause until it is back).
    pub fn new(config: &RedisConfig, rate: &RateConfig) -> Result<Self, LimitError> {
        rate.validate().map_err(LimitError::Invalid)?;
        let cache = RedisCache::new(config).map_err(|e| LimitError::Unavailable(e.to_string()))?;
        Ok(Self {
            connection: cache.connection.clone(),
            key_prefix: config.key_prefix.clone(),
            limits: rate.gcra_limits(),
            per_day: rate.per_day,
            max_take: rate.max_take().min(rate.per_day.unwrap_or(u32::MAX)),
            script: redis::Script::new(SCRIPT),
        })
    }
}

impl RedisRateLimiter {
    /// `acquire`, with the Redis time (µs since the epoch) of a grant: the
    /// instant the budget was spent, whatever the client's clock or delays.
    pub async fn acquire_timed(
        &self,
        key: &str,
        n: u32,
    ) -> Result<(Permit, Option<u64>), LimitError> {
        if n == 0 || n > self.max_take {
            return Err(LimitError::Invalid(format!(
                "asked for {n} sends at once; 1 to {} allowed",
                self.max_take
            )));
        }
        let base = format!("{}ratelimit:{key}:", self.key_prefix);
        let mut invocation = self.script.prepare_invoke();
        for index in 0..self.limits.len() {
            invocation.key(format!("{base}g{index}"));
        }
        invocation.key(format!("{base}d:"));
        invocation.arg(n).arg(self.per_day.unwrap_or(0));
        for limit in &self.limits {
            invocation.arg(limit.interval_us).arg(limit.tolerance_us());
        }
        let mut connection = self.connection.clone();
        let (code, value): (i64, i64) = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(|e| LimitError::Unavailable(format!("redis: {e}")))?;
        let value = u64::try_from(value).unwrap_or(0);
        Ok(match code {
            1 => (Permit::Granted, Some(value)),
            0 => (Permit::Wait(std::time::Duration::from_micros(value)), None),
            _ => (Permit::QuotaSpent { until_ms: value }, None),
        })
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn acquire(&self, key: &str, n: u32) -> Result<Permit, LimitError> {
        Ok(self.acquire_timed(key, n).await?.0)
    }

    fn max_take(&self) -> u32 {
        self.max_take
    }
}
