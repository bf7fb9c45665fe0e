//! The cache and dedupe store behind one trait: in-memory in the embedded mode,
//! Redis in the fleet. Stages hold an `Arc<dyn Cache>` and never see Redis.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

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
    async fn hash_set(&self, key: &str, field: &str, value: &[u8]) -> Result<(), CacheError>;
    async fn hash_get_all(&self, key: &str) -> Result<Vec<(String, Vec<u8>)>, CacheError>;
}

enum Entry {
    Value {
        value: Vec<u8>,
        expires: Option<Instant>,
    },
    Hash(HashMap<String, Vec<u8>>),
}

/// Process-local cache for the embedded mode and unit tests.
#[derive(Default)]
pub struct MemoryCache {
    entries: Mutex<HashMap<String, Entry>>,
}

impl MemoryCache {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Entry>) -> R) -> R {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut entries)
    }
}

fn live(entry: &Entry) -> bool {
    match entry {
        Entry::Value {
            expires: Some(at), ..
        } => Instant::now() < *at,
        _ => true,
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        Ok(self.with(|m| match m.get(key) {
            Some(e @ Entry::Value { value, .. }) if live(e) => Some(value.clone()),
            _ => None,
        }))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), CacheError> {
        let expires = ttl.map(|t| Instant::now() + t);
        self.with(|m| {
            m.insert(
                key.to_string(),
                Entry::Value {
                    value: value.to_vec(),
                    expires,
                },
            )
        });
        Ok(())
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, CacheError> {
        let expires = ttl.map(|t| Instant::now() + t);
        Ok(self.with(|m| {
            if m.get(key).is_some_and(live) {
                return false;
            }
            m.insert(
                key.to_string(),
                Entry::Value {
                    value: value.to_vec(),
                    expires,
                },
            );
            true
        }))
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.with(|m| m.remove(key));
        Ok(())
    }

    async fn hash_set(&self, key: &str, field: &str, value: &[u8]) -> Result<(), CacheError> {
        self.with(|m| {
            let entry = m
                .entry(key.to_string())
                .or_insert_with(|| Entry::Hash(HashMap::new()));
            if !matches!(entry, Entry::Hash(_)) {
                *entry = Entry::Hash(HashMap::new());
            }
            if let Entry::Hash(h) = entry {
                h.insert(field.to_string(), value.to_vec());
            }
        });
        Ok(())
    }

    async fn hash_get_all(&self, key: &str) -> Result<Vec<(String, Vec<u8>)>, CacheError> {
        Ok(self.with(|m| match m.get(key) {
            Some(Entry::Hash(h)) => {
                let mut all: Vec<_> = h.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                all.sort_by(|a, b| a.0.cmp(&b.0));
                all
            }
            _ => Vec::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn set_if_absent_claims_once_and_ttl_expires() {
        let c = MemoryCache::new();
        assert!(c.set_if_absent("k", b"1", None).await.unwrap());
        assert!(!c.set_if_absent("k", b"2", None).await.unwrap());
        assert_eq!(c.get("k").await.unwrap().as_deref(), Some(&b"1"[..]));
        c.set("t", b"x", Some(Duration::from_millis(1)))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(c.get("t").await.unwrap(), None);
        c.hash_set("h", "b", b"2").await.unwrap();
        c.hash_set("h", "a", b"1").await.unwrap();
        let all = c.hash_get_all("h").await.unwrap();
        assert_eq!(
            all.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
    }
}
