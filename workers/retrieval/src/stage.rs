//! The retrieval stage: one `SegmentTask` in, one `Brief` out.

use std::sync::Arc;
use std::time::Duration;

use cpo_shared::cache::Cache;
use cpo_shared::envelope::derive_id;
use cpo_shared::model::{Brief, SegmentTask};
use cpo_shared::{Emitter, Envelope, Outgoing, Stage, StageError, StageResult, queues};
use tracing::{info, warn};

use crate::cache::CachedRetriever;
use crate::config::RetrievalConfig;
use crate::corpus::Corpus;
use crate::date::Date;
use crate::index::TantivyRetriever;
use crate::retriever::{RetrievalError, RetrievalQuery, Retriever};

pub const STAGE_NAME: &str = "retrieval";

pub struct RetrievalStage {
    retriever: Arc<dyn Retriever>,
    top_k: usize,
    min_relevance: f64,
    /// Pinned run date; `None` means today at the time each segment is handled.
    as_of: Option<Date>,
}

impl RetrievalStage {
    /// A stage over any retriever (embedded index, remote search, cached or not).
    pub fn new(
        retriever: Arc<dyn Retriever>,
        config: &RetrievalConfig,
    ) -> Result<Self, RetrievalError> {
        config.validate()?;
        Ok(Self {
            retriever,
            top_k: config.top_k,
            min_relevance: config.min_relevance,
            as_of: config.as_of_date()?,
        })
    }

    /// The embedded setup: load `config.corpus_dir`, index it in RAM, and put
    /// `cache` in front of it.
    pub fn embedded(
        config: &RetrievalConfig,
        cache: Arc<dyn Cache>,
    ) -> Result<Self, RetrievalError> {
        config.validate()?;
        let corpus = Corpus::load(&config.corpus_dir)?;
        let index = TantivyRetriever::new(corpus, config)?;
        let cached = CachedRetriever::new(
            Arc::new(index),
            cache,
            Duration::from_secs(config.cache_ttl_secs),
        );
        Self::new(Arc::new(cached), config)
    }

    /// The brief for one segment (the stage's whole job, without the envelope).
    pub async fn brief(&self, task: &SegmentTask) -> Result<Brief, RetrievalError> {
        let as_of = self.as_of.unwrap_or_else(Date::today);
        let query = RetrievalQuery::for_segment(
            &task.campaign,
            &task.segment,
            as_of,
            self.top_k,
            self.min_relevance,
        );
        let snippets = self.retriever.retrieve(&query).await?;
        Ok(Brief {
            campaign: task.campaign.clone(),
            segment: task.segment.clone(),
            segments_total: task.segments_total,
            query: query.text,
            snippets,
        })
    }
}

impl Stage for RetrievalStage {
    type Input = SegmentTask;

    fn name(&self) -> &'static str {
        STAGE_NAME
    }

    fn inputs(&self) -> &'static [&'static str] {
        &[queues::SEGMENTS]
    }

    async fn handle(&self, message: Envelope<SegmentTask>, emit: &Emitter) -> StageResult {
        let task = &message.payload;
        let brief = self.brief(task).await.map_err(|e| {
            if e.is_transient() {
                StageError::Transient(e.to_string())
            } else {
                StageError::Permanent(e.to_string())
            }
        })?;
        let segment = brief.segment.name.as_str();
        if brief.snippets.is_empty() {
            // Not an error: generation and safety fail closed on a brief with nothing to cite.
            warn!(
                campaign_id = %brief.campaign.campaign_id,
                segment,
                "no approved content above the relevance threshold"
            );
        } else {
            info!(
                campaign_id = %brief.campaign.campaign_id,
                segment,
                snippets = brief.snippets.len(),
                "brief ready"
            );
        }
        emit.count(cpo_shared::progress::SEGMENTS_RETRIEVED, 1);
        let id = derive_id(&[&brief.campaign.campaign_id, "brief", segment]);
        let out = Outgoing::new(queues::BRIEFS, &message.derive(id, brief))?;
        Ok(vec![out])
    }
}
