//! The safety stage: signed approvals, blocked decisions, audit, determinism,
//! and the full runtime path (dead-lettering with notify).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{FailingScreen, PanickingScreen, RejectingScreen, SleepingScreen, variant};
use cpo_safety::{OnScreenError, SafetyConfig, SafetyScreen, SafetyStage};
use cpo_shared::audit::{AuditError, AuditSink, MemoryAuditLog};
use cpo_shared::dead_letter::{DeadLetter, DeadLetterKind};
use cpo_shared::model::{Decision, LedgerEntry, Variant, VariantDecision};
use cpo_shared::runtime::{Runtime, RuntimeConfig};
use cpo_shared::signing::{Signer, content_hash};
use cpo_shared::transport::{MemoryTransport, Publish, Transport};
use cpo_shared::{Emitter, Envelope, Outgoing, Stage, StageError, queues};
use tokio_util::sync::CancellationToken;

const KEY: &[u8] = b"test-signing-key";

fn approved_variant() -> Variant {
    variant(
        "{{first_name}}, double points are back",
        "Earn double points in March [doc-1]. Free returns [doc-2].",
    )
}

fn blocked_variant() -> Variant {
    let mut v = variant("Last chance", "We will k1ll you if you miss it [doc-1]");
    v.variant_id = "v-urgent-1".into();
    v.arm = "urgent".into();
    v
}

fn stage_with(audit: Arc<dyn AuditSink>) -> SafetyStage {
    SafetyStage::embedded(Signer::new(KEY.to_vec()), audit, SafetyConfig::default()).unwrap()
}

fn emitter() -> Emitter {
    Emitter::new(
        Arc::new(MemoryTransport::new(16)),
        "safety",
        queues::VARIANTS,
    )
}

fn envelope(v: Variant) -> Envelope<Variant> {
    Envelope::new(
        format!("variant-{}", v.variant_id),
        v.campaign_id.clone(),
        v,
    )
}

fn decode<T: serde::de::DeserializeOwned>(out: &Outgoing) -> Envelope<T> {
    serde_json::from_slice(&out.body).unwrap()
}

#[tokio::test]
async fn an_approved_variant_is_signed_and_published_with_its_ledger_entry() {
    let stage = stage_with(Arc::new(MemoryAuditLog::default()));
    let outputs = stage
        .handle(envelope(approved_variant()), &emitter())
        .await
        .unwrap();
    assert_eq!(
        outputs.iter().map(|o| o.queue).collect::<Vec<_>>(),
        [queues::DECISIONS, queues::LEDGER]
    );

    let decision: Envelope<VariantDecision> = decode(&outputs[0]);
    assert_eq!(decision.campaign_id, "camp-1");
    let d = decision.payload;
    assert_eq!(d.verdict.decision, Decision::Approved);
    assert_eq!(d.verdict.screened_by, "embedded");
    let approval = d.approval.expect("approved variants carry an approval");
    let v = &d.variant;
    let hash = content_hash(&v.variant_id, &v.subject, &v.body, &v.citations);
    assert_eq!(approval.content_hash, hash);
    assert_eq!(d.verdict.content_hash, hash);
    let signer = Signer::new(KEY.to_vec());
    assert!(signer.verify(&hash, &approval.signature));
    // Altered content, or another key, no longer verifies.
    let altered = content_hash(
        &v.variant_id,
        &v.subject,
        &format!("{} Buy now!", v.body),
        &v.citations,
    );
    assert!(!signer.verify(&altered, &approval.signature));
    assert!(!Signer::new(b"other".to_vec()).verify(&hash, &approval.signature));

    let ledger: Envelope<LedgerEntry> = decode(&outputs[1]);
    match ledger.payload {
        LedgerEntry::Verdict {
            verdict,
            segment,
            arm,
        } => {
            assert_eq!((segment.as_str(), arm.as_str()), ("loyal", "friendly"));
            assert_eq!(verdict, d.verdict);
        }
        other => panic!("unexpected ledger entry {other:?}"),
    }
}

#[tokio::test]
async fn a_blocked_variant_is_an_unsigned_decision_in_notify() {
    let stage = stage_with(Arc::new(MemoryAuditLog::default()));
    let err = stage
        .handle(envelope(blocked_variant()), &emitter())
        .await
        .unwrap_err();
    let StageError::Blocked { reasons, notify } = err else {
        panic!("expected a block, got {err:?}");
    };
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("violence severity 7 >= threshold 4")),
        "{reasons:?}"
    );
    assert_eq!(
        notify.iter().map(|o| o.queue).collect::<Vec<_>>(),
        [queues::DECISIONS, queues::LEDGER]
    );
    let decision: Envelope<VariantDecision> = decode(&notify[0]);
    assert_eq!(decision.payload.verdict.decision, Decision::Blocked);
    assert_eq!(decision.payload.verdict.reasons, reasons);
    assert!(decision.payload.approval.is_none());
}

#[tokio::test]
async fn a_claim_its_citation_does_not_support_is_blocked_even_with_a_real_id() {
    let stage = stage_with(Arc::new(MemoryAuditLog::default()));
    // The id resolves and the citations field agrees: only the text is wrong.
    let v = variant(
        "Double points",
        "Members earn double points in March. [doc-1] Every jacket is 90 percent off \
         today only and ships free forever. [doc-1] Everything else is half price.",
    );
    let err = stage.handle(envelope(v), &emitter()).await.unwrap_err();
    let StageError::Blocked { reasons, notify } = err else {
        panic!("expected a block, got {err:?}");
    };
    assert_eq!(
        reasons,
        [
            "unsupported_claim: sentence \"Every jacket is 90 percent off today only and ships free forever.\" \
             states what [doc-1] does not: 90 percent, today, free, forever",
            "unsupported_claim: sentence \"Everything else is half price.\" cites no snippet and is not tone phrasing",
        ]
    );
    let decision: Envelope<VariantDecision> = decode(&notify[0]);
    assert_eq!(decision.payload.verdict.decision, Decision::Blocked);
    assert!(decision.payload.approval.is_none());

    // The grounded sentence alone is approved.
    let v = variant(
        "Double points",
        "Members earn double points in March. [doc-1]",
    );
    let outputs = stage.handle(envelope(v), &emitter()).await.unwrap();
    let decision: Envelope<VariantDecision> = decode(&outputs[0]);
    assert!(decision.payload.approval.is_some());
}

#[tokio::test]
async fn every_decision_is_audited_once_without_customer_data() {
    let audit = Arc::new(MemoryAuditLog::default());
    let stage = stage_with(audit.clone());
    stage
        .handle(envelope(approved_variant()), &emitter())
        .await
        .unwrap();
    let _ = stage
        .handle(envelope(blocked_variant()), &emitter())
        .await
        .unwrap_err();

    let events = audit.events.lock().unwrap().clone();
    assert_eq!(events.len(), 2);
    let approved = &events[0];
    let keys: Vec<&str> = approved
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "arm",
            "campaign_id",
            "categories",
            "content_hash",
            "decision",
            "event",
            "reasons",
            "screened_by",
            "segment",
            "variant_id"
        ]
    );
    assert_eq!(approved["event"], "safety_decision");
    assert_eq!(approved["decision"], "approved");
    assert_eq!(approved["variant_id"], "v-friendly-1");
    assert_eq!(approved["categories"]["violence"], 0);
    let blocked = &events[1];
    assert_eq!(blocked["decision"], "blocked");
    assert_eq!(blocked["arm"], "urgent");
    assert!(blocked["reasons"].as_array().is_some_and(|r| !r.is_empty()));
}

struct BrokenAudit;

impl AuditSink for BrokenAudit {
    fn append(&self, _: &serde_json::Value) -> Result<(), AuditError> {
        Err(AuditError::Io(std::io::Error::other("disk full")))
    }
}

#[tokio::test]
async fn an_unaudited_decision_is_retried_not_published() {
    let stage = stage_with(Arc::new(BrokenAudit));
    for v in [approved_variant(), blocked_variant()] {
        let err = stage.handle(envelope(v), &emitter()).await.unwrap_err();
        assert!(
            matches!(&err, StageError::Transient(reason) if reason.contains("disk full")),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn redelivery_yields_the_same_message_ids_and_content() {
    let stage = stage_with(Arc::new(MemoryAuditLog::default()));
    let first = stage
        .handle(envelope(approved_variant()), &emitter())
        .await
        .unwrap();
    let second = stage
        .handle(envelope(approved_variant()), &emitter())
        .await
        .unwrap();
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(a.id, b.id);
        let (a, b): (Envelope<serde_json::Value>, Envelope<serde_json::Value>) =
            (decode(a), decode(b));
        assert_eq!(a.payload, b.payload);
    }
    assert_ne!(first[0].id, first[1].id);
}

#[tokio::test]
async fn an_invalid_config_is_refused_with_its_key() {
    let mut config = SafetyConfig::default();
    config.thresholds.hate = 0;
    let err = SafetyStage::embedded(
        Signer::new(KEY.to_vec()),
        Arc::new(MemoryAuditLog::default()),
        config,
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("safety.thresholds.hate"));
}

#[tokio::test]
async fn through_the_runtime_blocked_variants_are_dead_lettered_and_still_announced() {
    let transport = MemoryTransport::new(64);
    let shutdown = CancellationToken::new();
    let runtime = Runtime::new(
        Arc::new(transport.clone()),
        RuntimeConfig::default(),
        shutdown.clone(),
    );
    let stage = Arc::new(stage_with(Arc::new(MemoryAuditLog::default())));
    let running = tokio::spawn(async move { runtime.run(stage).await });

    for v in [approved_variant(), blocked_variant()] {
        let env = envelope(v);
        let body = serde_json::to_vec(&env).unwrap();
        transport
            .publish(
                queues::VARIANTS,
                Publish {
                    id: env.id.clone(),
                    body,
                    delay: None,
                },
            )
            .await
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while transport.peek(queues::DEAD_LETTER).is_empty() || transport.peek(queues::LEDGER).len() < 2
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "stage did not finish"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    running.await.unwrap().unwrap();

    let decisions: Vec<Envelope<VariantDecision>> = transport
        .peek(queues::DECISIONS)
        .iter()
        .map(|b| serde_json::from_slice(b).unwrap())
        .collect();
    let approved: Vec<_> = decisions
        .iter()
        .filter(|d| d.payload.approval.is_some())
        .collect();
    assert_eq!(decisions.len(), 2);
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0].payload.variant.variant_id, "v-friendly-1");

    let letters: Vec<DeadLetter> = transport
        .peek(queues::DEAD_LETTER)
        .iter()
        .map(|b| serde_json::from_slice(b).unwrap())
        .collect();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].kind, DeadLetterKind::Blocked);
    assert_eq!(
        letters[0].message.as_ref().unwrap()["payload"]["variant_id"],
        "v-urgent-1"
    );
    assert!(!letters[0].reasons.is_empty());
    // Nothing blocked reached the send queue (nobody but experimentation may publish there).
    assert!(transport.peek(queues::SEND).is_empty());
}

fn stage_on_error(
    screen: Arc<dyn SafetyScreen>,
    policy: Option<OnScreenError>,
    audit: Arc<dyn AuditSink>,
) -> SafetyStage {
    let config = SafetyConfig {
        on_screen_error: policy,
        timeout_ms: 100,
        ..SafetyConfig::default()
    };
    SafetyStage::new(screen, Signer::new(KEY.to_vec()), audit, config).unwrap()
}

#[tokio::test]
async fn hold_is_the_stage_default_and_a_set_key_wins() {
    let audit: Arc<dyn AuditSink> = Arc::new(MemoryAuditLog::default());
    let held = stage_on_error(Arc::new(FailingScreen), None, audit.clone());
    assert_eq!(held.on_screen_error(), OnScreenError::Hold);
    let blocking = stage_on_error(Arc::new(FailingScreen), Some(OnScreenError::Block), audit);
    assert_eq!(blocking.on_screen_error(), OnScreenError::Block);
}

#[tokio::test]
async fn with_hold_a_screen_error_publishes_nothing_and_says_whether_to_wait() {
    let cases: [(Arc<dyn SafetyScreen>, bool, &str); 4] = [
        (
            Arc::new(FailingScreen),
            true,
            "screen error: backend: connection refused",
        ),
        (
            Arc::new(SleepingScreen(Duration::from_secs(30))),
            true,
            "screen error: timed out after 100 ms",
        ),
        (
            Arc::new(RejectingScreen),
            false,
            "screen error: backend rejected the request: HTTP 401 Unauthorized",
        ),
        (
            Arc::new(PanickingScreen),
            false,
            "screen error: backend panicked",
        ),
    ];
    for (screen, transient, expected) in cases {
        let audit = Arc::new(MemoryAuditLog::default());
        let stage = stage_on_error(screen, Some(OnScreenError::Hold), audit.clone());
        let mut env = envelope(approved_variant());
        env.attempt = 2;
        // An error, not `Ok(outputs)` or `Blocked { notify }`: nothing is published.
        // A transient one is an outage (`Unavailable`: the variant waits without
        // using up attempts), never `Transient`.
        let err = stage.handle(env, &emitter()).await.unwrap_err();
        match (&err, transient) {
            (StageError::Unavailable(reason), true) | (StageError::Permanent(reason), false) => {
                assert_eq!(reason, expected)
            }
            _ => panic!("{expected}: unexpected {err:?}"),
        }
        // Audited, as a screen error and not as a decision.
        let events = audit.events.lock().unwrap().clone();
        assert_eq!(events.len(), 1, "{expected}");
        let e = &events[0];
        assert_eq!(e["event"], "safety_screen_error");
        assert_eq!(e["action"], "held");
        assert_eq!(e["error"], expected);
        assert_eq!(e["kind"], if transient { "transient" } else { "permanent" });
        assert_eq!(e["attempt"], 2);
        assert_eq!(e["variant_id"], "v-friendly-1");
        let v = approved_variant();
        assert_eq!(
            e["content_hash"],
            content_hash(&v.variant_id, &v.subject, &v.body, &v.citations)
        );
    }
}

#[tokio::test]
async fn with_block_a_screen_error_is_a_published_blocked_decision() {
    let audit = Arc::new(MemoryAuditLog::default());
    let stage = stage_on_error(
        Arc::new(RejectingScreen),
        Some(OnScreenError::Block),
        audit.clone(),
    );
    let err = stage
        .handle(envelope(approved_variant()), &emitter())
        .await
        .unwrap_err();
    let StageError::Blocked { reasons, notify } = err else {
        panic!("expected a block, got {err:?}");
    };
    assert_eq!(
        reasons,
        ["screen error: backend rejected the request: HTTP 401 Unauthorized"]
    );
    let decision: Envelope<VariantDecision> = decode(&notify[0]);
    assert_eq!(decision.payload.verdict.decision, Decision::Blocked);
    assert!(decision.payload.approval.is_none());
    assert_eq!(decision.payload.verdict.screened_by, "rejecting");
    let events = audit.events.lock().unwrap().clone();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event"], "safety_decision");
    assert_eq!(events[0]["decision"], "blocked");
}

#[tokio::test]
async fn with_hold_a_content_block_is_still_published() {
    // The citations fail whatever the screen would say: holding cannot change the decision.
    let audit = Arc::new(MemoryAuditLog::default());
    let stage = stage_on_error(
        Arc::new(FailingScreen),
        Some(OnScreenError::Hold),
        audit.clone(),
    );
    let mut v = approved_variant();
    v.body = "Earn double points in March [made-up].".into();
    v.citations = vec!["made-up".into()];
    let err = stage.handle(envelope(v), &emitter()).await.unwrap_err();
    let StageError::Blocked { reasons, notify } = err else {
        panic!("expected a block, got {err:?}");
    };
    assert!(reasons.iter().any(|r| r.contains("made-up")), "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.starts_with("screen error")),
        "{reasons:?}"
    );
    assert_eq!(notify.len(), 2);

    // And the embedded screen's own blocks do not depend on the policy.
    let stage = SafetyStage::embedded(
        Signer::new(KEY.to_vec()),
        Arc::new(MemoryAuditLog::default()),
        SafetyConfig {
            on_screen_error: Some(OnScreenError::Hold),
            ..SafetyConfig::default()
        },
    )
    .unwrap();
    let err = stage
        .handle(envelope(blocked_variant()), &emitter())
        .await
        .unwrap_err();
    assert!(matches!(err, StageError::Blocked { .. }), "{err:?}");
}

#[tokio::test]
async fn through_the_runtime_a_held_variant_waits_out_the_outage_then_is_dead_lettered_without_a_decision()
 {
    let transport = MemoryTransport::new(64);
    // Few attempts, a short outage timeout: the variant must outlast the
    // attempts (waiting does not use them up) and go at the outage timeout.
    let runtime_config = RuntimeConfig {
        max_attempts: 2,
        initial_backoff_ms: 5,
        max_backoff_ms: 20,
        outage_retry_ms: 5,
        outage_max_retry_ms: 20,
        outage_timeout_ms: 150,
        ..RuntimeConfig::default()
    };
    let audit = Arc::new(MemoryAuditLog::default());
    let stage = stage_on_error(
        Arc::new(FailingScreen),
        Some(OnScreenError::Hold),
        audit.clone(),
    );
    let letters = run_until_dead_lettered(&transport, runtime_config, stage).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].kind, DeadLetterKind::Exhausted);
    // Still on its first attempt: the outage used none up.
    assert_eq!(letters[0].attempts, 1);
    let reason = &letters[0].reason;
    assert!(
        reason.ends_with("screen error: backend: connection refused")
            && reason.contains("outage timeout"),
        "{reason}"
    );
    // No decision, no ledger verdict, nothing to send; one audited error per try.
    assert!(transport.peek(queues::DECISIONS).is_empty());
    assert!(transport.peek(queues::LEDGER).is_empty());
    assert!(transport.peek(queues::SEND).is_empty());
    let events = audit.events.lock().unwrap().clone();
    assert!(
        events.len() > 2,
        "tried only {} times: more than max_attempts while waiting",
        events.len()
    );
    assert!(events.iter().all(|e| e["event"] == "safety_screen_error"
        && e["kind"] == "transient"
        && e["attempt"] == 0));
}

#[tokio::test]
async fn through_the_runtime_a_permanent_screen_error_is_dead_lettered_at_once() {
    let transport = MemoryTransport::new(64);
    let audit = Arc::new(MemoryAuditLog::default());
    let stage = stage_on_error(
        Arc::new(RejectingScreen),
        Some(OnScreenError::Hold),
        audit.clone(),
    );
    let letters = run_until_dead_lettered(&transport, RuntimeConfig::default(), stage).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].kind, DeadLetterKind::Permanent);
    assert_eq!(
        letters[0].reason,
        "screen error: backend rejected the request: HTTP 401 Unauthorized"
    );
    assert_eq!(audit.events.lock().unwrap().len(), 1);
    assert!(transport.peek(queues::DECISIONS).is_empty());
}

/// Run `stage` on `transport` with one approved-looking variant until it is
/// dead-lettered; the dead letters then.
async fn run_until_dead_lettered(
    transport: &MemoryTransport,
    config: RuntimeConfig,
    stage: SafetyStage,
) -> Vec<DeadLetter> {
    let shutdown = CancellationToken::new();
    let runtime = Runtime::new(Arc::new(transport.clone()), config, shutdown.clone());
    let stage = Arc::new(stage);
    let running = tokio::spawn(async move { runtime.run(stage).await });
    let env = envelope(approved_variant());
    transport
        .publish(
            queues::VARIANTS,
            Publish {
                id: env.id.clone(),
                body: serde_json::to_vec(&env).unwrap(),
                delay: None,
            },
        )
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while transport.peek(queues::DEAD_LETTER).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "not dead-lettered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    running.await.unwrap().unwrap();
    transport
        .peek(queues::DEAD_LETTER)
        .iter()
        .map(|b| serde_json::from_slice(b).unwrap())
        .collect()
}
