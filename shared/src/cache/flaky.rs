//! A cache that fails on demand (feature `test-util`): outages in the tests
//! of the stages that depend on the cache.

use std::time::Duration;

use async_trait::async_trait;

use super::{Cache, CacheError, HashUpdate, MemoryCache};

#[derive(Default)]
pub struct FlakyCache {
    pub inner: MemoryCache,
    pub down: std::sync::atomic::AtomicBool,
    pub hash_reads: std::sync::atomic::AtomicUsize,
}

impl FlakyCache {
    fn check(&self) -> Result<(), CacheError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            Err(CacheError::Unavailable("connection refused".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Cache for FlakyCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        self.check()?;
        self.inner.get(key).await
    }
    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), CacheError> {
        self.check()?;
        self.inner.set(key, value, ttl).await
    }
    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, CacheError> {
        self.check()?;
        self.inner.set_if_absent(key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.check()?;
        self.inner.delete(key).await
    }
    async fn hash_set(
        &self,
        key: &str,
        field: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        self.check()?;
        self.inner.hash_set(key, field, value, ttl).await
    }
    async fn hash_add_once(
        &self,
        key: &str,
        marker: &str,
        update: &HashUpdate,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        self.check()?;
        self.inner.hash_add_once(key, marker, update, ttl).await
    }
    async fn hash_get_all(&self, key: &str) -> Result<Vec<(String, Vec<u8>)>, CacheError> {
        self.check()?;
        self.hash_reads
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.hash_get_all(key).await
    }
}
