//! Redis-backed cache and dedupe store: the fleet's `Cache`.
//!
//! One multiplexed connection behind redis' `ConnectionManager`, which reconnects by
//! itself after a failure (the request that met the failure gets the error; the next
//! ones use the new connection). Every Redis error is `CacheError::Unavailable`: the
//! caller decides what that means (retrieval goes on uncached, delivery pauses and
//! retries), and each one is counted on `cache_requests_total{cache="redis",result="error"}`.
//! Hit and miss are counted by the callers, which know what they were looking up.
//!
//! Differences from `MemoryCache`, none of which cpo relies on: Redis answers a
//! string command on a hash key (or the reverse) with a WRONGTYPE error instead of
//! treating the key as absent.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

mod audit_head;
pub mod rate_limit;

pub use audit_head::RedisAuditHead;
pub use rate_limit::RedisRateLimiter;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Deserialize;
use tracing::warn;

use crate::cache::{Cache, CacheError, HashUpdate};
use crate::config::resolve_url;
use crate::metrics::metrics;
use crate::privacy::redact_url;

/// Label of this backend on `cache_requests_total`.
pub const CACHE_LABEL: &str = "redis";

/// Keys per MGET or pipeline in the batch operations.
const BATCH: usize = 1000;

/// Settings of the Redis cache (config section `redis`; `CPO__REDIS__URL` overrides the URL).
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[:password@]host:port/db`, or `rediss://` for TLS. The password is never logged.
    pub url: String,
    /// A file holding the whole URL (a mounted secret); replaces `url`.
    pub url_file: Option<PathBuf>,
    /// A file holding the password, put into the URL at connect time.
    pub password_file: Option<PathBuf>,
    /// Prepended to every key, so deployments or parallel tests can share one Redis.
    pub key_prefix: String,
    /// Bound on opening a connection: a cache that is down must fail fast, not stall.
    pub connect_timeout_ms: u64,
    /// Bound on one command's reply.
    pub response_timeout_ms: u64,
    /// Connection attempts the manager retries (with backoff) before a request fails.
    pub reconnect_retries: usize,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379/".into(),
            url_file: None,
            password_file: None,
            key_prefix: String::new(),
            connect_timeout_ms: 1_000,
            response_timeout_ms: 2_000,
            reconnect_retries: 2,
        }
    }
}

// By hand: a derived Debug would print the password inside the URL.
impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field("url_file", &self.url_file)
            .field("password_file", &self.password_file)
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("response_timeout_ms", &self.response_timeout_ms)
            .field("reconnect_retries", &self.reconnect_retries)
            .finish()
    }
}

/// The `Cache` on Redis. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct RedisCache {
    connection: ConnectionManager,
    key_prefix: String,
    redacted_url: String,
}

fn unavailable(error: impl fmt::Display) -> CacheError {
    metrics()
        .cache_requests
        .with_label_values(&[CACHE_LABEL, "error"])
        .inc();
    CacheError::Unavailable(error.to_string())
}

/// `PX` takes whole milliseconds, at least 1 (0 is an error in Redis; the in-memory cache
/// treats a zero TTL as "expires at once", which 1 ms approximates).
fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisCache {
    /// A cache that connects on first use, so a worker starts (and degrades) while Redis
    /// is down. Fails only on a malformed URL or outside a Tokio runtime.
    pub fn new(config: &RedisConfig) -> Result<Self, CacheError> {
        let url = resolve_url(
            "redis",
            &config.url,
            config.url_file.as_deref(),
            config.password_file.as_deref(),
        )
        .map_err(|e| CacheError::Unavailable(e.to_string()))?;
        let redacted_url = redact_url(&url);
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(CacheError::Unavailable(
                "the redis cache must be created inside a tokio runtime".into(),
            ));
        }
        let client = redis::Client::open(url.as_str())
            .map_err(|e| CacheError::Unavailable(format!("redis url {redacted_url}: {e}")))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(config.connect_timeout_ms)))
            .set_response_timeout(Some(Duration::from_millis(config.response_timeout_ms)))
            .set_number_of_retries(config.reconnect_retries)
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(|e| CacheError::Unavailable(format!("redis {redacted_url}: {e}")))?;
        // Errors are the only result this backend counts (callers count hits and misses).
        metrics().preset_cache(CACHE_LABEL, &["error"]);
        Ok(Self {
            connection,
            key_prefix: config.key_prefix.clone(),
            redacted_url,
        })
    }

    /// Round trip to the server (readiness probes, fail-fast at startup if wanted).
    pub async fn ping(&self) -> Result<(), CacheError> {
        let _: String = self.query(&redis::cmd("PING")).await?;
        Ok(())
    }

    /// Delete every key under this cache's prefix (teardown of tests and throwaway
    /// deployments). Refused without a prefix: it would empty the whole database.
    pub async fn delete_prefixed(&self) -> Result<u64, CacheError> {
        if self.key_prefix.is_empty() {
            return Err(CacheError::Unavailable(
                "refusing to delete every key: the cache has no key prefix".into(),
            ));
        }
        let pattern = format!("{}*", glob_escape(&self.key_prefix));
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            // SCAN, not KEYS: it does not block the server on a large keyspace.
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500);
            let (next, keys): (u64, Vec<String>) = self.query(&scan).await?;
            if !keys.is_empty() {
                let mut del = redis::cmd("DEL");
                del.arg(&keys);
                let removed: u64 = self.query(&del).await?;
                deleted += removed;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    fn key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.key_prefix.len() + key.len());
        full.push_str(&self.key_prefix);
        full.push_str(key);
        full
    }

    async fn run_pipeline(&self, pipeline: &redis::Pipeline) -> Result<(), CacheError> {
        let mut connection = self.connection.clone();
        pipeline
            .query_async::<()>(&mut connection)
            .await
            .map_err(|e| {
                warn!(cache = CACHE_LABEL, url = %self.redacted_url, error = %e, "redis pipeline failed");
                unavailable(format!("redis: {e}"))
            })
    }

    async fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> Result<T, CacheError> {
        // ConnectionManager is a cheap handle onto the shared multiplexed connection.
        let mut connection = self.connection.clone();
        command.query_async(&mut connection).await.map_err(|e| {
            warn!(cache = CACHE_LABEL, url = %self.redacted_url, error = %e, "redis request failed");
            unavailable(format!("redis: {e}"))
        })
    }
}

/// `hash_add_once` in one atomic step. KEYS: the hash, the marker. ARGV: TTL
/// in ms, the number of `add` pairs, the number of `max` pairs, then the `add`,
/// `max` and `min` pairs.
/// (In a Redis Cluster both keys would need one hash slot; cpo runs one Redis.)
const ADD_ONCE: &str = r#"
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then
  return 0
end
local adds = tonumber(ARGV[2])
local maxes = tonumber(ARGV[3])
local i = 4
for _ = 1, adds do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
  i = i + 2
end
local last_max = i + 2 * maxes
while i < #ARGV do
  local current = tonumber(redis.call('HGET', KEYS[1], ARGV[i]))
  local candidate = tonumber(ARGV[i + 1])
  local better
  if i < last_max then better = current == nil or candidate > current
  else better = current == nil or candidate < current end
  if better then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
  i = i + 2
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"#;

/// Escape Redis glob metacharacters so a prefix matches only itself.
fn glob_escape(prefix: &str) -> String {
    let mut escaped = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        self.query(redis::cmd("GET").arg(self.key(key))).await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), CacheError> {
        let mut command = redis::cmd("SET");
        command.arg(self.key(key)).arg(value);
        if let Some(ttl) = ttl {
            command.arg("PX").arg(ttl_ms(ttl));
        }
        let _: redis::Value = self.query(&command).await?;
        Ok(())
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, CacheError> {
        // One atomic command: of concurrent claimers exactly one gets "OK", the rest nil.
        let mut command = redis::cmd("SET");
        command.arg(self.key(key)).arg(value).arg("NX");
        if let Some(ttl) = ttl {
            command.arg("PX").arg(ttl_ms(ttl));
        }
        let reply: redis::Value = self.query(&command).await?;
        Ok(!matches!(reply, redis::Value::Nil))
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        let _: u64 = self.query(redis::cmd("DEL").arg(self.key(key))).await?;
        Ok(())
    }

    async fn hash_set(
        &self,
        key: &str,
        field: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        let key = self.key(key);
        let Some(ttl) = ttl else {
            let _: u64 = self
                .query(redis::cmd("HSET").arg(&key).arg(field).arg(value))
                .await?;
            return Ok(());
        };
        // HSET and PEXPIRE in one MULTI: a hash must not outlive its TTL because
        // the connection failed between the two.
        let mut transaction = redis::pipe();
        transaction
            .atomic()
            .cmd("HSET")
            .arg(&key)
            .arg(field)
            .arg(value)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(ttl_ms(ttl))
            .ignore();
        self.run_pipeline(&transaction).await
    }

    async fn hash_add_once(
        &self,
        key: &str,
        marker: &str,
        update: &HashUpdate,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let mut command = redis::cmd("EVAL");
        command
            .arg(ADD_ONCE)
            .arg(2)
            .arg(self.key(key))
            .arg(self.key(marker))
            .arg(ttl_ms(ttl))
            .arg(update.add.len())
            .arg(update.max.len());
        for (field, value) in update.add.iter().chain(&update.max).chain(&update.min) {
            command.arg(field).arg(*value);
        }
        let applied: i64 = self.query(&command).await?;
        Ok(applied == 1)
    }

    async fn hash_get_all(&self, key: &str) -> Result<Vec<(String, Vec<u8>)>, CacheError> {
        // Sorted by field, like the in-memory cache, so callers see a deterministic order.
        let all: BTreeMap<String, Vec<u8>> =
            self.query(redis::cmd("HGETALL").arg(self.key(key))).await?;
        Ok(all.into_iter().collect())
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        let mut values = Vec::with_capacity(keys.len());
        // One MGET per chunk: a batch of customers costs a round trip, not one per key,
        // and no single command grows without bound.
        for chunk in keys.chunks(BATCH) {
            let mut command = redis::cmd("MGET");
            for key in chunk {
                command.arg(self.key(key));
            }
            let chunk_values: Vec<Option<Vec<u8>>> = self.query(&command).await?;
            values.extend(chunk_values);
        }
        Ok(values)
    }

    async fn set_many(
        &self,
        entries: &[(String, Vec<u8>)],
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        // Pipelined SETs (MSET takes no TTL): one round trip per chunk.
        for chunk in entries.chunks(BATCH) {
            let mut pipeline = redis::pipe();
            for (key, value) in chunk {
                let command = pipeline.cmd("SET").arg(self.key(key)).arg(value.as_slice());
                if let Some(ttl) = ttl {
                    command.arg("PX").arg(ttl_ms(ttl));
                }
                command.ignore();
            }
            self.run_pipeline(&pipeline).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn ttls_are_whole_positive_milliseconds() {
        assert_eq!(ttl_ms(Duration::ZERO), 1);
        assert_eq!(ttl_ms(Duration::from_micros(1500)), 1);
        assert_eq!(ttl_ms(Duration::from_secs(2)), 2000);
    }

    #[test]
    fn glob_metacharacters_in_the_prefix_are_escaped() {
        assert_eq!(glob_escape("t:[a]*?"), "t:\\[a\\]\\*\\?");
        assert_eq!(glob_escape("cpo:test:"), "cpo:test:");
    }

    #[test]
    fn config_section_and_debug_hide_the_password() {
        let settings = Settings::from_yaml(
            "redis:\n  url: \"redis://:s3cret@cache:6379/1\"\n  key_prefix: \"t:\"\n",
        )
        .unwrap();
        let config: RedisConfig = settings.section("redis").unwrap();
        assert_eq!(config.key_prefix, "t:");
        assert_eq!(
            config.connect_timeout_ms,
            RedisConfig::default().connect_timeout_ms
        );
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn outside_a_runtime_creation_is_an_error_not_a_panic() {
        let err = RedisCache::new(&RedisConfig::default()).err().unwrap();
        assert!(err.to_string().contains("tokio runtime"), "{err}");
    }

    #[tokio::test]
    async fn a_malformed_url_is_rejected_without_showing_the_password() {
        let config = RedisConfig {
            url: "http://:pw123456@host/".into(),
            ..RedisConfig::default()
        };
        let err = RedisCache::new(&config).err().unwrap().to_string();
        assert!(!err.contains("pw123456"), "{err}");
    }
}
