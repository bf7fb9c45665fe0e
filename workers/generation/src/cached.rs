//! Replays a remote backend's drafts: a model does not answer the same twice,
//! so a redelivered brief or a re-run would otherwise get new copy under the
//! same variant id. The first draft for a given brief and arm is kept in the
//! cache and served again.
//!
//! The key covers the whole brief, the arm and the backend's name, so a changed
//! brief (new snippets, a new objective) or another model gets fresh copy. The
//! cache is an optimisation of determinism, not a dependency: when it is down
//! the backend is asked as if there were no cache.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cpo_shared::cache::Cache;
use cpo_shared::envelope::derive_id;
use cpo_shared::model::Brief;
use tracing::warn;

use crate::generator::{Draft, GenerationError, Generator, Voice};

pub struct CachedGenerator {
    inner: Arc<dyn Generator>,
    cache: Arc<dyn Cache>,
    ttl: Option<Duration>,
}

impl CachedGenerator {
    pub fn new(inner: Arc<dyn Generator>, cache: Arc<dyn Cache>, ttl: Option<Duration>) -> Self {
        Self { inner, cache, ttl }
    }

    fn key(&self, brief: &Brief, voice: Voice<'_>) -> String {
        // Serializing a Brief cannot fail (plain strings, numbers, maps with string keys).
        let brief_json = serde_json::to_string(brief).unwrap_or_default();
        let digest = derive_id(&[self.inner.name(), voice.arm(), &brief_json]);
        format!("generation:draft:{digest}")
    }
}

#[async_trait]
impl Generator for CachedGenerator {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn draft(&self, brief: &Brief, voice: Voice<'_>) -> Result<Draft, GenerationError> {
        let key = self.key(brief, voice);
        match self.cache.get(&key).await {
            Ok(Some(bytes)) => match serde_json::from_slice::<Draft>(&bytes) {
                Ok(stored) => return Ok(stored),
                Err(e) => warn!(error = %e, "cached draft unreadable; asking the backend"),
            },
            Ok(None) => {}
            Err(e) => warn!(error = %e, "draft cache unavailable; asking the backend"),
        }
        let draft = self.inner.draft(brief, voice).await?;
        if let Ok(bytes) = serde_json::to_vec(&draft) {
            // First writer wins: two workers racing on one brief then agree on its copy.
            match self.cache.set_if_absent(&key, &bytes, self.ttl).await {
                Ok(true) => {}
                Ok(false) => return self.stored_or(key, draft).await,
                Err(e) => warn!(error = %e, "draft cache unavailable; draft not kept"),
            }
        }
        Ok(draft)
    }
}

impl CachedGenerator {
    /// Another worker stored a draft first: serve that one, or ours if it cannot be read.
    async fn stored_or(&self, key: String, ours: Draft) -> Result<Draft, GenerationError> {
        let stored = self.cache.get(&key).await.ok().flatten();
        Ok(stored
            .and_then(|bytes| serde_json::from_slice::<Draft>(&bytes).ok())
            .unwrap_or(ours))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpo_shared::cache::MemoryCache;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A backend that writes different copy on every call, like a sampled model.
    #[derive(Default)]
    struct Fickle {
        calls: AtomicU32,
    }

    #[async_trait]
    impl Generator for Fickle {
        fn name(&self) -> &str {
            "fickle"
        }
        async fn draft(&self, _brief: &Brief, _voice: Voice<'_>) -> Result<Draft, GenerationError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(Draft {
                subject: format!("take {n}"),
                body: "b".into(),
                citations: vec![],
            })
        }
    }

    fn brief(objective: &str) -> Brief {
        serde_json::from_value(serde_json::json!({
            "campaign": {"campaign_id": "c", "name": "n", "objective": objective,
                         "tones": [], "arm_weights": {}},
            "segment": {"name": "s", "description": "", "traits": [], "size": 1,
                        "mean_avg_order_value": 0.0, "mean_purchase_frequency": 0.0,
                        "mean_last_engagement_days": 0.0, "mean_engagement": 0.0},
            "segments_total": 1, "query": "", "snippets": []
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn the_same_brief_and_arm_get_the_same_draft_again() {
        let cached = CachedGenerator::new(
            Arc::new(Fickle::default()),
            Arc::new(MemoryCache::new()),
            None,
        );
        let b = brief("o");
        let first = cached.draft(&b, Voice::Tone("urgent")).await.ok();
        let again = cached.draft(&b, Voice::Tone("urgent")).await.ok();
        assert_eq!(first, again);
        let other_arm = cached.draft(&b, Voice::Control).await.ok();
        assert_ne!(first, other_arm);
        let changed = cached
            .draft(&brief("new objective"), Voice::Tone("urgent"))
            .await
            .ok();
        assert_ne!(first, changed);
    }
}
