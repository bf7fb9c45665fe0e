//! The stage: what it publishes for a brief, and how backend failures map to
//! retries and dead letters.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use common::{brief_for, sample_brief};
use cpo_generation::{
    Draft, GenerationConfig, GenerationError, GenerationStage, Generator, OfflineComposer, Voice,
};
use cpo_shared::envelope::derive_id;
use cpo_shared::model::{Brief, CONTROL_ARM, LedgerEntry, Variant};
use cpo_shared::transport::{MemoryTransport, Publish, Transport};
use cpo_shared::{Emitter, Envelope, Outgoing, Stage, StageError, queues};

fn stage_with(generator: Arc<dyn Generator>) -> GenerationStage {
    GenerationStage::new(generator, &GenerationConfig::default())
}

fn offline_stage() -> GenerationStage {
    stage_with(Arc::new(OfflineComposer::default()))
}

async fn run(stage: &GenerationStage, brief: Brief) -> Result<Vec<Outgoing>, StageError> {
    let transport = MemoryTransport::new(64);
    let emitter = Emitter::new(Arc::new(transport), "generation", queues::BRIEFS);
    let envelope = Envelope::new("brief-1", brief.campaign.campaign_id.clone(), brief);
    stage.handle(envelope, &emitter).await
}

fn payloads<T: serde::de::DeserializeOwned>(out: &[Outgoing], queue: &str) -> Vec<T> {
    out.iter()
        .filter(|o| o.queue == queue)
        .map(|o| {
            let envelope: Envelope<T> =
                serde_json::from_slice(&o.body).unwrap_or_else(|e| panic!("decode: {e}"));
            envelope.payload
        })
        .collect()
}

#[tokio::test]
async fn publishes_one_variant_per_tone_plus_control_and_one_ledger_entry() {
    let brief = sample_brief("High-Value Recent");
    let out = run(&offline_stage(), brief.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let variants: Vec<Variant> = payloads(&out, queues::VARIANTS);
    let arms: Vec<&str> = variants.iter().map(|v| v.arm.as_str()).collect();
    assert_eq!(
        arms,
        vec!["urgent", "informational", "friendly", CONTROL_ARM]
    );
    for (variant, outgoing) in variants.iter().zip(out.iter()) {
        assert_eq!(
            variant.variant_id,
            derive_id(&["spring-2025", "High-Value Recent", &variant.arm])
        );
        assert_eq!(
            outgoing.id, variant.variant_id,
            "envelope id is the variant id"
        );
        assert_eq!(variant.variants_in_segment, 4);
        assert_eq!(variant.segments_total, 4);
        assert_eq!(variant.segment, "High-Value Recent");
        assert_eq!(variant.generator, "offline");
        assert_eq!(variant.snippets, brief.snippets);
        assert!(!variant.citations.is_empty());
    }
    let ledger: Vec<LedgerEntry> = payloads(&out, queues::LEDGER);
    assert_eq!(ledger.len(), 1);
    let LedgerEntry::Variants {
        segment,
        variants: listed,
    } = &ledger[0]
    else {
        panic!("not a variants entry: {:?}", ledger[0]);
    };
    assert_eq!(segment, "High-Value Recent");
    assert_eq!(listed, &variants);
}

#[tokio::test]
async fn two_runs_publish_identical_payloads_and_ids() {
    let brief = sample_brief("At-Risk");
    let first = run(&offline_stage(), brief.clone())
        .await
        .unwrap_or_default();
    let second = run(&offline_stage(), brief).await.unwrap_or_default();
    assert_eq!(first.len(), 5);
    let ids = |out: &[Outgoing]| out.iter().map(|o| o.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&first), ids(&second));
    assert_eq!(
        payloads::<serde_json::Value>(&first, queues::VARIANTS),
        payloads::<serde_json::Value>(&second, queues::VARIANTS)
    );
    assert_eq!(
        payloads::<serde_json::Value>(&first, queues::LEDGER),
        payloads::<serde_json::Value>(&second, queues::LEDGER)
    );
}

#[tokio::test]
async fn zero_snippets_still_give_every_variant_without_citations() {
    let out = run(&offline_stage(), brief_for("Standard", vec![]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let variants: Vec<Variant> = payloads(&out, queues::VARIANTS);
    assert_eq!(variants.len(), 4);
    assert!(variants.iter().all(|v| v.citations.is_empty()));
}

#[tokio::test]
async fn campaign_arms_follow_the_shared_rule() {
    let mut brief = sample_brief("Standard");
    brief.campaign.tones = vec!["urgent".into(), "playful".into()];
    let out = run(&offline_stage(), brief.clone())
        .await
        .unwrap_or_default();
    let arms: Vec<String> = payloads::<Variant>(&out, queues::VARIANTS)
        .into_iter()
        .map(|v| v.arm)
        .collect();
    assert_eq!(arms, vec!["urgent", "playful", CONTROL_ARM]);
    // `tones: []` once gave the configured default tones here while
    // experimentation ran a control-only experiment: now it is refused by both.
    for (tones, expected) in [
        (vec![], "tones is empty"),
        (vec![" urgent".into()], "leading or trailing spaces"),
        (vec!["urgent".into(), "Urgent".into()], "listed twice"),
    ] {
        brief.campaign.tones = tones;
        let err = run(&offline_stage(), brief.clone()).await.err();
        assert!(
            matches!(err, Some(StageError::Permanent(ref m)) if m.contains(expected)),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn a_tone_named_control_is_a_permanent_error() {
    let mut brief = sample_brief("Standard");
    brief.campaign.tones = vec!["urgent".into(), "Control".into()];
    let err = run(&offline_stage(), brief).await.err();
    assert!(
        matches!(err, Some(StageError::Permanent(ref m)) if m.contains("control")),
        "{err:?}"
    );
}

type Behaviour = fn() -> Result<Draft, GenerationError>;

/// A backend that always fails the same way, or writes a draft breaking the contract.
struct Broken(Behaviour);

#[async_trait]
impl Generator for Broken {
    fn name(&self) -> &str {
        "broken"
    }
    async fn draft(&self, _brief: &Brief, _voice: Voice<'_>) -> Result<Draft, GenerationError> {
        (self.0)()
    }
}

#[tokio::test]
async fn backend_errors_are_transient_only_when_the_backend_said_so() {
    let cases: [(Behaviour, &str); 4] = [
        (
            || Err(GenerationError::Unavailable("http 503".into())),
            "transient",
        ),
        (
            || Err(GenerationError::Rejected("http 401".into())),
            "permanent",
        ),
        (
            || Err(GenerationError::Malformed("not json".into())),
            "permanent",
        ),
        (
            || {
                Ok(Draft {
                    subject: "s".repeat(61),
                    body: "Hello".into(),
                    citations: vec![],
                })
            },
            "permanent",
        ),
    ];
    for (behaviour, kind) in cases {
        let err = run(
            &stage_with(Arc::new(Broken(behaviour))),
            sample_brief("Standard"),
        )
        .await
        .err()
        .unwrap_or_else(|| panic!("expected an error"));
        assert_eq!(err.kind(), kind, "{err}");
    }
}

#[tokio::test]
async fn a_draft_citing_an_unknown_snippet_is_never_published() {
    let fake = Broken(|| {
        Ok(Draft {
            subject: "Hello".into(),
            body: "Jackets are free. [doc-invented]".into(),
            citations: vec!["doc-invented".into()],
        })
    });
    let err = run(&stage_with(Arc::new(fake)), sample_brief("Standard"))
        .await
        .err();
    assert!(
        matches!(err, Some(StageError::Permanent(ref m)) if m.contains("doc-invented")),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_runtime_consumes_briefs_and_fills_the_variant_and_ledger_queues() {
    use cpo_shared::runtime::{Runtime, RuntimeConfig};
    use tokio_util::sync::CancellationToken;

    let transport = MemoryTransport::new(64);
    let brief = sample_brief("New Customer");
    let body = serde_json::to_vec(&Envelope::new("b1", "spring-2025", brief)).unwrap_or_default();
    transport
        .publish(
            queues::BRIEFS,
            Publish {
                id: "b1".into(),
                body,
                delay: None,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let shutdown = CancellationToken::new();
    let runtime = Runtime::new(
        Arc::new(transport.clone()),
        RuntimeConfig::default(),
        shutdown.clone(),
    );
    let running = tokio::spawn(async move { runtime.run(Arc::new(offline_stage())).await });
    // Nobody consumes `variants` here, so the transport never goes idle: wait for the ledger.
    let ledger_written = async {
        while transport.peek(queues::LEDGER).is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), ledger_written)
        .await
        .unwrap_or_else(|_| panic!("stage did not finish"));
    shutdown.cancel();
    let _ = running.await;
    assert_eq!(transport.peek(queues::VARIANTS).len(), 4);
    assert_eq!(transport.peek(queues::LEDGER).len(), 1);
    assert!(transport.peek(queues::DEAD_LETTER).is_empty());
}
