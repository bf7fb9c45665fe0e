//! Cache-aside behaviour: hits return the same snippets and are counted; a failing
//! cache degrades to uncached retrieval.
//!
//! The metrics are process-wide and tests run in parallel, so each counter is
//! moved by one test function only: `hit`/`miss` by the first, `error` by the second.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use cpo_retrieval::cache::CACHE_LABEL;
use cpo_retrieval::{CachedRetriever, Retriever};
use cpo_shared::cache::{Cache, CacheError, HashUpdate, MemoryCache};
use cpo_shared::metrics::metrics;

use common::{BUNDLED_OBJECTIVE, query, retriever, run_date, typical_segments};

fn counted(result: &str) -> u64 {
    metrics()
        .cache_requests
        .with_label_values(&[CACHE_LABEL, result])
        .get()
}

/// A cache whose every call fails, as a Redis outage looks to the stage.
struct BrokenCache {
    calls: AtomicUsize,
}

#[async_trait]
impl Cache for BrokenCache {
    async fn get(&self, _: &str) -> Result<Option<Vec<u8>>, CacheError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(CacheError::Unavailable("connection refused".into()))
    }
    async fn set(&self, _: &str, _: &[u8], _: Option<Duration>) -> Result<(), CacheError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(CacheError::Unavailable("connection refused".into()))
    }
    async fn set_if_absent(
        &self,
        _: &str,
        _: &[u8],
        _: Option<Duration>,
    ) -> Result<bool, CacheError> {
        Err(CacheError::Unavailable("connection refused".into()))
    }
    async fn delete(&self, _: &str) -> Result<(), CacheError> {
        Err(CacheError::Unavailable("connection refused".into()))
    }
    async fn hash_set(
        &self,
        _: &str,
        _: &str,
        _: &[u8],
        _: Option<Duration>,
    ) -> Result<(), CacheError> {
        Err(CacheError::Unavailable("connection refused".into()))
    }
    async fn hash_add_once(
        &self,
        _: &str,
        _: &str,
        _: &HashUpdate,
        _: Duration,
    ) -> Result<bool, CacheError> {
        Err(CacheError::Unavailable("connection refused".into()))
    }
    async fn hash_get_all(&self, _: &str) -> Result<Vec<(String, Vec<u8>)>, CacheError> {
        Err(CacheError::Unavailable("connection refused".into()))
    }
}

#[tokio::test]
async fn a_hit_returns_identical_snippets_and_is_counted() {
    let inner: Arc<dyn Retriever> = Arc::new(retriever());
    let cache = Arc::new(MemoryCache::new());
    let cached = CachedRetriever::new(inner.clone(), cache.clone(), Duration::from_secs(60));
    let q = query(BUNDLED_OBJECTIVE, &typical_segments()[0], run_date());

    let key = cached.key(&q);
    assert!(
        key.starts_with(&format!("cpo:v1:retrieval:{}:", inner.fingerprint())),
        "{key}"
    );
    assert_eq!(cache.get(&key).await.unwrap(), None);

    let (hits, misses) = (counted("hit"), counted("miss"));
    let first = cached.retrieve(&q).await.unwrap();
    assert_eq!(counted("miss"), misses + 1);
    assert_eq!(counted("hit"), hits);
    assert!(
        cache.get(&key).await.unwrap().is_some(),
        "the miss filled the cache"
    );

    let second = cached.retrieve(&q).await.unwrap();
    assert_eq!(counted("hit"), hits + 1);
    assert_eq!(counted("miss"), misses + 1);
    assert!(!first.is_empty());
    assert_eq!(second, first);
    assert_eq!(
        serde_json::to_vec(&second).unwrap(),
        serde_json::to_vec(&inner.retrieve(&q).await.unwrap()).unwrap(),
        "cached snippets are byte-identical to fresh ones"
    );

    // The hit really came from the cache: a planted value is what comes back.
    cache.set(&key, b"[]", None).await.unwrap();
    assert!(cached.retrieve(&q).await.unwrap().is_empty());

    // A different query is a different key.
    let other = query(BUNDLED_OBJECTIVE, &typical_segments()[1], run_date());
    assert_ne!(cached.key(&other), key);
}

#[tokio::test]
async fn a_failing_cache_still_returns_results() {
    let inner: Arc<dyn Retriever> = Arc::new(retriever());
    let broken = Arc::new(BrokenCache {
        calls: AtomicUsize::new(0),
    });
    let cached = CachedRetriever::new(inner.clone(), broken.clone(), Duration::from_secs(60));
    let q = query(BUNDLED_OBJECTIVE, &typical_segments()[3], run_date());

    let errors = counted("error");
    let snippets = cached.retrieve(&q).await.unwrap();
    assert_eq!(snippets, inner.retrieve(&q).await.unwrap());
    assert!(!snippets.is_empty());
    assert_eq!(counted("error"), errors + 1);
    assert_eq!(
        broken.calls.load(Ordering::SeqCst),
        1,
        "after a failed read the write is skipped"
    );

    // A corrupt entry counts as an error too, and is replaced by a fresh answer.
    let cache = Arc::new(MemoryCache::new());
    let cached = CachedRetriever::new(inner.clone(), cache.clone(), Duration::from_secs(60));
    let q = query(BUNDLED_OBJECTIVE, &typical_segments()[2], run_date());
    cache.set(&cached.key(&q), b"not json", None).await.unwrap();
    let snippets = cached.retrieve(&q).await.unwrap();
    assert_eq!(snippets, inner.retrieve(&q).await.unwrap());
    assert_eq!(counted("error"), errors + 2);
    let stored = cache.get(&cached.key(&q)).await.unwrap().unwrap();
    assert_eq!(stored, serde_json::to_vec(&snippets).unwrap());
}
