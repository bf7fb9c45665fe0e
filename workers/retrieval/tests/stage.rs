//! The stage: one brief per segment task, deterministic id, empty results are not errors.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cpo_retrieval::{RetrievalConfig, RetrievalError, RetrievalQuery, RetrievalStage, Retriever};
use cpo_shared::cache::MemoryCache;
use cpo_shared::envelope::derive_id;
use cpo_shared::model::{Brief, SegmentTask, Snippet};
use cpo_shared::runtime::{Runtime, RuntimeConfig};
use cpo_shared::transport::{MemoryTransport, Publish, Transport};
use cpo_shared::{Emitter, Envelope, Stage, StageError, queues};
use tokio_util::sync::CancellationToken;

use common::{BUNDLED_OBJECTIVE, campaign, typical_segments};

fn config() -> RetrievalConfig {
    RetrievalConfig {
        corpus_dir: common::content_dir().display().to_string(),
        as_of: Some(common::run_date().to_string()),
        ..RetrievalConfig::default()
    }
}

fn stage(config: &RetrievalConfig) -> RetrievalStage {
    RetrievalStage::embedded(config, Arc::new(MemoryCache::new())).unwrap()
}

fn task(objective: &str, segment: usize) -> Envelope<SegmentTask> {
    let campaign = campaign(objective);
    let payload = SegmentTask {
        segment: typical_segments()[segment].clone(),
        segments_total: 4,
        campaign: campaign.clone(),
    };
    Envelope::new(
        derive_id(&[&campaign.campaign_id, "segment", &payload.segment.name]),
        campaign.campaign_id,
        payload,
    )
}

fn emitter() -> Emitter {
    Emitter::new(
        Arc::new(MemoryTransport::new(16)),
        "retrieval",
        queues::SEGMENTS,
    )
}

fn decode(body: &[u8]) -> Envelope<Brief> {
    serde_json::from_slice(body).unwrap()
}

#[tokio::test]
async fn one_brief_per_segment_with_a_deterministic_id() {
    let stage = stage(&config());
    assert_eq!(stage.inputs(), [queues::SEGMENTS]);
    let input = task(BUNDLED_OBJECTIVE, 0);
    let out = stage.handle(input.clone(), &emitter()).await.unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].queue, queues::BRIEFS);
    assert_eq!(
        out[0].id,
        derive_id(&["cmp-autumn-2026", "brief", "High-Value Recent"])
    );
    let brief = decode(&out[0].body);
    assert_eq!(brief.id, out[0].id);
    assert_eq!(brief.campaign_id, "cmp-autumn-2026");
    assert_eq!(brief.payload.segment, input.payload.segment);
    assert_eq!(brief.payload.segments_total, 4);
    assert!(brief.payload.query.starts_with(BUNDLED_OBJECTIVE));
    assert!((3..=5).contains(&brief.payload.snippets.len()));

    // Redelivery produces the same message: same id, same payload.
    let again = stage.handle(input, &emitter()).await.unwrap();
    assert_eq!(again[0].id, out[0].id);
    assert_eq!(decode(&again[0].body).payload, brief.payload);
}

#[tokio::test]
async fn nothing_relevant_gives_a_brief_with_no_snippets() {
    let strict = RetrievalConfig {
        min_relevance: 1.0,
        ..config()
    };
    let out = stage(&strict)
        .handle(task(BUNDLED_OBJECTIVE, 1), &emitter())
        .await
        .unwrap();
    assert!(decode(&out[0].body).payload.snippets.is_empty());

    let out = stage(&config())
        .handle(task("quantum computing consultancy", 1), &emitter())
        .await
        .unwrap();
    assert!(decode(&out[0].body).payload.snippets.is_empty());
}

struct FailingRetriever(fn() -> RetrievalError);

#[async_trait]
impl Retriever for FailingRetriever {
    fn fingerprint(&self) -> &str {
        "failing"
    }
    async fn retrieve(&self, _: &RetrievalQuery) -> Result<Vec<Snippet>, RetrievalError> {
        Err((self.0)())
    }
}

#[tokio::test]
async fn backend_outages_are_transient_and_search_failures_permanent() {
    let unavailable = RetrievalStage::new(
        Arc::new(FailingRetriever(|| {
            RetrievalError::Unavailable("timeout".into())
        })),
        &config(),
    )
    .unwrap();
    let err = unavailable
        .handle(task("x", 0), &emitter())
        .await
        .unwrap_err();
    assert!(matches!(err, StageError::Transient(_)), "{err}");

    let broken = RetrievalStage::new(
        Arc::new(FailingRetriever(|| {
            RetrievalError::Search("corrupt".into())
        })),
        &config(),
    )
    .unwrap();
    let err = broken.handle(task("x", 0), &emitter()).await.unwrap_err();
    assert!(matches!(err, StageError::Permanent(_)), "{err}");
}

#[test]
fn bad_setup_is_refused_with_the_key_or_directory_named() {
    let cache = || Arc::new(MemoryCache::new());
    let missing = RetrievalConfig {
        corpus_dir: "no/such/content".into(),
        ..config()
    };
    let err = RetrievalStage::embedded(&missing, cache()).err().unwrap();
    assert!(err.to_string().contains("no/such/content"), "{err}");

    let zero_k = RetrievalConfig {
        top_k: 0,
        ..config()
    };
    let err = RetrievalStage::embedded(&zero_k, cache()).err().unwrap();
    assert!(err.to_string().contains("retrieval.top_k"), "{err}");
}

#[tokio::test]
async fn runs_under_the_runtime_from_segments_to_briefs() {
    let transport = MemoryTransport::new(16);
    let shutdown = CancellationToken::new();
    let runtime = Runtime::new(
        Arc::new(transport.clone()),
        RuntimeConfig::default(),
        shutdown.clone(),
    );
    let worker = tokio::spawn({
        let stage = Arc::new(stage(&config()));
        async move { runtime.run(stage).await }
    });
    for segment in 0..4 {
        let input = task(BUNDLED_OBJECTIVE, segment);
        transport
            .publish(
                queues::SEGMENTS,
                Publish {
                    id: input.id.clone(),
                    body: serde_json::to_vec(&input).unwrap(),
                    delay: None,
                },
            )
            .await
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while transport.peek(queues::BRIEFS).len() < 4 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    worker.await.unwrap().unwrap();

    let briefs: Vec<Envelope<Brief>> = transport
        .peek(queues::BRIEFS)
        .iter()
        .map(|b| decode(b))
        .collect();
    assert_eq!(briefs.len(), 4);
    assert!(transport.peek(queues::DEAD_LETTER).is_empty());
    for brief in &briefs {
        assert!(
            (3..=5).contains(&brief.payload.snippets.len()),
            "{}",
            brief.payload.segment.name
        );
    }
}
