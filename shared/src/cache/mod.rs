//! The cache and dedupe store behind one trait: in-memory in the embedded mode,
//! Redis in the fleet. Stages hold an `Arc<dyn Cache>` and never see Redis.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;

#[cfg(any(test, feature = "test-util"))]
mod flaky;
mod memory;

#[cfg(any(test, feature = "test-util"))]
pub use flaky::FlakyCache;
pub use memory::MemoryCache;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Cache: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError>;
    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), CacheError>;
    /// Store only if the key is absent; true when this call stored it (dedupe claims).
    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, CacheError>;
    async fn delete(&self, key: &str) -> Result<(), CacheError>;
    /// Set one field of a hash (join state: one field per decided variant).
    /// With a TTL the whole hash expires that long after this write.
    async fn hash_set(
        &self,
        key: &str,
        field: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), CacheError>;
    async fn hash_get_all(&self, key: &str) -> Result<Vec<(String, Vec<u8>)>, CacheError>;

    /// Apply `update` to the integer fields of hash `key` once per `marker`:
    /// the first call with a marker applies it and returns true; later calls
    /// with the same marker (a redelivered message) change nothing and return
    /// false. Claim and update are one atomic step, so a crash cannot leave
    /// one without the other. Both keys expire `ttl` after the last update.
    async fn hash_add_once(
        &self,
        key: &str,
        marker: &str,
        update: &HashUpdate,
        ttl: Duration,
    ) -> Result<bool, CacheError>;

    /// The values of `keys`, in the same order. Backends with round trips
    /// should answer in one (`MGET`); the default asks key by key.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.get(key).await?);
        }
        Ok(values)
    }

    /// Store every (key, value) with the same TTL. Backends with round trips
    /// should send them together (a pipeline); the default sets one by one.
    async fn set_many(
        &self,
        entries: &[(String, Vec<u8>)],
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        for (key, value) in entries {
            self.set(key, value, ttl).await?;
        }
        Ok(())
    }
}

/// Changes to the integer fields of a hash (progress counters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HashUpdate {
    /// Added to the field (a missing field counts as 0).
    pub add: Vec<(String, i64)>,
    /// The field becomes the larger of its value and this one (timestamps).
    pub max: Vec<(String, i64)>,
    /// The field becomes the smaller of its value and this one.
    pub min: Vec<(String, i64)>,
}

impl HashUpdate {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.max.is_empty() && self.min.is_empty()
    }

    /// Apply to fields that hold decimal text, as Redis keeps them.
    pub(crate) fn apply(&self, fields: &mut HashMap<String, Vec<u8>>) {
        let read = |fields: &HashMap<String, Vec<u8>>, name: &str| -> Option<i64> {
            fields
                .get(name)
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.parse().ok())
        };
        for (name, delta) in &self.add {
            let value = read(fields, name).unwrap_or(0).saturating_add(*delta);
            fields.insert(name.clone(), value.to_string().into_bytes());
        }
        for (name, candidate) in &self.max {
            if read(fields, name).is_none_or(|current| *candidate > current) {
                fields.insert(name.clone(), candidate.to_string().into_bytes());
            }
        }
        for (name, candidate) in &self.min {
            if read(fields, name).is_none_or(|current| *candidate < current) {
                fields.insert(name.clone(), candidate.to_string().into_bytes());
            }
        }
    }
}
