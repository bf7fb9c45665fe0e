//! Cache-aside in front of any retriever.
//!
//! Keys are versioned and content-addressed,
//! `cpo:v1:retrieval:<retriever fingerprint>:<query digest>`, so a corpus or
//! scoring change never serves stale snippets and needs no invalidation. The
//! cache is an optimisation only: when it fails, retrieval goes on uncached.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cpo_shared::cache::Cache;
use cpo_shared::metrics::metrics;
use cpo_shared::model::Snippet;
use tracing::warn;

use crate::retriever::{RetrievalError, RetrievalQuery, Retriever};

/// Label of this cache on `cache_requests_total`.
pub const CACHE_LABEL: &str = "retrieval";
/// Bump when the cached value's format changes.
const KEY_PREFIX: &str = "cpo:v1:retrieval";

pub struct CachedRetriever {
    inner: Arc<dyn Retriever>,
    cache: Arc<dyn Cache>,
    ttl: Option<Duration>,
}

enum Lookup {
    Hit(Vec<Snippet>),
    Miss,
    /// The cache failed; do not try to write to it either.
    Failed,
}

fn count(result: &str) {
    metrics()
        .cache_requests
        .with_label_values(&[CACHE_LABEL, result])
        .inc();
}

impl CachedRetriever {
    /// `ttl` of zero stores without expiry.
    pub fn new(inner: Arc<dyn Retriever>, cache: Arc<dyn Cache>, ttl: Duration) -> Self {
        metrics().preset_cache(CACHE_LABEL, &["hit", "miss", "error"]);
        Self {
            inner,
            cache,
            ttl: (!ttl.is_zero()).then_some(ttl),
        }
    }

    pub fn key(&self, query: &RetrievalQuery) -> String {
        format!(
            "{KEY_PREFIX}:{}:{}",
            self.inner.fingerprint(),
            query.digest()
        )
    }

    async fn lookup(&self, key: &str) -> Lookup {
        match self.cache.get(key).await {
            Ok(Some(bytes)) => match serde_json::from_slice::<Vec<Snippet>>(&bytes) {
                Ok(snippets) => {
                    count("hit");
                    Lookup::Hit(snippets)
                }
                Err(e) => {
                    // Overwritten below with a fresh answer.
                    count("error");
                    warn!(cache = CACHE_LABEL, error = %e, "undecodable cached snippets, retrieving afresh");
                    Lookup::Miss
                }
            },
            Ok(None) => {
                count("miss");
                Lookup::Miss
            }
            Err(e) => {
                count("error");
                warn!(cache = CACHE_LABEL, error = %e, "cache read failed, retrieving uncached");
                Lookup::Failed
            }
        }
    }
}

#[async_trait]
impl Retriever for CachedRetriever {
    fn fingerprint(&self) -> &str {
        self.inner.fingerprint()
    }

    async fn retrieve(&self, query: &RetrievalQuery) -> Result<Vec<Snippet>, RetrievalError> {
        let key = self.key(query);
        let lookup = self.lookup(&key).await;
        if let Lookup::Hit(snippets) = lookup {
            return Ok(snippets);
        }
        let snippets = self.inner.retrieve(query).await?;
        if matches!(lookup, Lookup::Miss) {
            match serde_json::to_vec(&snippets) {
                Ok(bytes) => {
                    if let Err(e) = self.cache.set(&key, &bytes, self.ttl).await {
                        count("error");
                        warn!(cache = CACHE_LABEL, error = %e, "cache write failed");
                    }
                }
                Err(e) => {
                    warn!(cache = CACHE_LABEL, error = %e, "cannot encode snippets for the cache")
                }
            }
        }
        Ok(snippets)
    }
}
