//! Fail-closed safety through the whole embedded pipeline: a blocked variant
//! never reaches the outbox (its customers fall back to control), and a safety
//! backend that errors blocks everything rather than letting anything through
//! (the embedded mode's default `safety.on_screen_error: block`), or, with
//! `hold` set explicitly, decides nothing and sends nothing. An OpenAI-compatible
//! generator whose answer states what its cited snippet does not is blocked as
//! an unsupported claim and mails nobody.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use cpo::embedded::{Options, RunReport, run};
use cpo::wiring;
use cpo_generation::{Draft, GenerationError, Generator, GroundingLimits, OfflineComposer, Voice};
use cpo_safety::{OnScreenError, SafetyScreen, ScreenError};
use cpo_shared::config::Settings;
use cpo_shared::model::Brief;
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The offline composer, except that the urgent tone makes a claim safety must block.
struct OverclaimingUrgent(OfflineComposer);

#[async_trait]
impl Generator for OverclaimingUrgent {
    fn name(&self) -> &str {
        "overclaiming-urgent"
    }

    async fn draft(&self, brief: &Brief, voice: Voice<'_>) -> Result<Draft, GenerationError> {
        let mut draft = self.0.compose(brief, voice);
        if voice.arm() == "urgent" {
            draft
                .body
                .push_str("\nOur jackets are a guaranteed cure for winter colds.");
        }
        Ok(draft)
    }
}

/// A safety backend that is down.
struct BrokenScreen;

#[async_trait]
impl SafetyScreen for BrokenScreen {
    fn name(&self) -> &str {
        "broken"
    }

    async fn screen(
        &self,
        _request: &cpo_safety::ScreenRequest<'_>,
    ) -> Result<cpo_safety::ScreenReport, ScreenError> {
        Err(ScreenError::Backend("connection refused".into()))
    }
}

fn options(out: &Path) -> Options {
    Options {
        settings: Settings::from_yaml("generation:\n  brand: Northwind Outfitters\n").unwrap(),
        content_dir: Some(repo().join("data/content")),
        out_dir: out.to_path_buf(),
        progress: false,
        generator: None,
        screen: None,
    }
}

fn campaign() -> cpo_shared::model::CampaignRequest {
    let path = repo().join("data/customers.csv");
    cpo::commands::run::load_campaign(&repo().join("data/campaign.yaml"), Some(&path)).unwrap()
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn accounted(report: &RunReport) {
    assert_eq!(report.unaccounted(), 0, "{:?}", report.summary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_variant_never_reaches_the_outbox_and_its_customers_fall_back_to_control() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = options(tmp.path());
    opts.generator = Some(Arc::new(OverclaimingUrgent(OfflineComposer::new(
        GroundingLimits::default(),
        Some("Northwind Outfitters".into()),
    ))));
    let report = run(campaign(), opts).await.unwrap();
    accounted(&report);
    let s = &report.summary;
    assert_eq!(
        s.variants_blocked, s.segments,
        "one urgent variant per segment blocked"
    );

    let variants: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("variants.json")).unwrap())
            .unwrap();
    let blocked: HashSet<&str> = variants
        .iter()
        .filter(|v| v["verdict"]["decision"] == "blocked")
        .map(|v| v["variant_id"].as_str().unwrap())
        .collect();
    assert_eq!(blocked.len() as u64, s.segments);
    assert!(
        variants
            .iter()
            .filter(|v| v["arm"] == "urgent")
            .all(|v| v["verdict"]["decision"] == "blocked")
    );

    let outbox = jsonl(&tmp.path().join("outbox.jsonl"));
    assert!(!outbox.is_empty());
    for message in &outbox {
        assert!(
            !blocked.contains(message["variant_id"].as_str().unwrap()),
            "blocked variant sent: {message}"
        );
        assert!(
            !message["body"]
                .as_str()
                .unwrap()
                .contains("guaranteed cure")
        );
    }
    let fallbacks: Vec<&Value> = outbox.iter().filter(|m| m["arm"] == "urgent").collect();
    assert!(
        !fallbacks.is_empty(),
        "urgent customers are still messaged, with the control copy"
    );
    assert!(
        fallbacks
            .iter()
            .all(|m| m["fallback"].as_str().is_some_and(|f| f.contains("urgent")))
    );
    assert_eq!(s.fallbacks, fallbacks.len() as u64);

    let dead = jsonl(&tmp.path().join("dead_letters.jsonl"));
    let blocked_letters: Vec<&Value> = dead.iter().filter(|d| d["kind"] == "blocked").collect();
    assert_eq!(blocked_letters.len() as u64, s.segments);
    assert!(
        blocked_letters
            .iter()
            .all(|d| d["stage"] == "safety" && d["reason"].as_str().unwrap().contains("cure"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_safety_backend_blocks_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = options(tmp.path());
    opts.screen = Some(Arc::new(BrokenScreen));
    let report = run(campaign(), opts).await.unwrap();
    accounted(&report);
    let s = &report.summary;
    assert_eq!(s.variants_approved, 0);
    assert_eq!(s.variants_blocked, s.variants_generated);
    assert_eq!(s.customers_assigned, 0);
    assert_eq!(s.messages, 0);
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("outbox.jsonl")).unwrap_or_default(),
        ""
    );
    assert!(
        s.excluded_by_reason
            .get("no_approved_message")
            .copied()
            .unwrap_or(0)
            > 200,
        "{s:?}"
    );
    let dead = jsonl(&tmp.path().join("dead_letters.jsonl"));
    assert!(
        dead.iter()
            .all(|d| d["kind"] == "blocked"
                && d["reason"].as_str().unwrap().contains("screen error"))
    );
}

fn backends(settings: &Settings) -> wiring::Backends<'_> {
    wiring::Backends {
        settings,
        cache: Arc::new(cpo_shared::cache::MemoryCache::new()),
        store: None,
        send_records: None,
        address_hasher: None,
        redis: None,
        audit: Arc::new(cpo_shared::audit::MemoryAuditLog::default()),
        signer: cpo_shared::signing::Signer::new(b"k".to_vec()),
        batch_signer: None,
        pseudonymizer: cpo_shared::privacy::Pseudonymizer::new(b"p".to_vec()),
        content_dir: None,
        outbox: PathBuf::from("unused-outbox.jsonl"),
        generator: None,
        screen: None,
    }
}

#[test]
fn wiring_blocks_on_screen_errors_unless_told_otherwise() {
    let unset = Settings::from_yaml("safety:\n  timeout_ms: 100\n").unwrap();
    let b = backends(&unset);
    // The embedded mode (`spawn_all` -> `safety`) blocks; a fleet worker asks for hold.
    assert_eq!(
        wiring::safety(&b).unwrap().on_screen_error(),
        OnScreenError::Block
    );
    assert_eq!(
        wiring::safety_with_default(&b, OnScreenError::Hold)
            .unwrap()
            .on_screen_error(),
        OnScreenError::Hold
    );
    // A set key wins over either default.
    let hold = Settings::from_yaml("safety:\n  on_screen_error: hold\n").unwrap();
    assert_eq!(
        wiring::safety(&backends(&hold)).unwrap().on_screen_error(),
        OnScreenError::Hold
    );
    let block = Settings::from_yaml("safety:\n  on_screen_error: block\n").unwrap();
    assert_eq!(
        wiring::safety_with_default(&backends(&block), OnScreenError::Hold)
            .unwrap()
            .on_screen_error(),
        OnScreenError::Block
    );
    // The configured backend is built, and a missing key is named.
    let azure = Settings::from_yaml("safety:\n  backend: azure\n").unwrap();
    let err = wiring::safety(&backends(&azure)).err().unwrap().to_string();
    assert!(err.contains("safety.azure.endpoint"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_hold_set_a_failing_safety_backend_decides_nothing_and_sends_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = options(tmp.path());
    opts.settings = Settings::from_yaml(
        "generation:\n  brand: Northwind Outfitters\n\
         safety:\n  on_screen_error: hold\n\
         runtime:\n  max_attempts: 2\n  initial_backoff_ms: 10\n  max_backoff_ms: 20\n  defer_timeout_ms: 1500\n  \
         outage_retry_ms: 20\n  outage_max_retry_ms: 50\n  outage_timeout_ms: 300\n",
    )
    .unwrap();
    opts.screen = Some(Arc::new(BrokenScreen));
    let report = run(campaign(), opts).await.unwrap();
    let s = &report.summary;
    assert!(s.variants_generated > 0);
    assert_eq!(s.variants_approved, 0);
    assert_eq!(s.customers_assigned, 0);
    assert_eq!(s.messages, 0);
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("outbox.jsonl")).unwrap_or_default(),
        ""
    );
    // No verdict at all: the segments stayed undecided.
    let variants: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("variants.json")).unwrap())
            .unwrap();
    assert!(
        variants.iter().all(|v| v["verdict"].is_null()),
        "{variants:?}"
    );
    let dead = jsonl(&tmp.path().join("dead_letters.jsonl"));
    let held: Vec<&Value> = dead.iter().filter(|d| d["stage"] == "safety").collect();
    assert_eq!(held.len() as u64, s.variants_generated);
    assert!(held.iter().all(|d| {
        d["kind"] == "exhausted"
            && d["reason"]
                .as_str()
                .unwrap()
                .contains("screen error: backend: connection refused")
    }));
    assert!(dead.iter().all(|d| d["kind"] != "blocked"));
    // The waiting customer batches gave up at the join timeout, to be replayed.
    assert!(
        dead.iter()
            .any(|d| d["stage"] == "experimentation" && d["kind"] == "timeout"),
        "{dead:?}"
    );
    // The audit trail shows every held attempt and no decision.
    let audit = jsonl(&tmp.path().join("audit.jsonl"));
    assert!(
        audit
            .iter()
            .all(|e| e["event"]["event"] != "safety_decision")
    );
    // Each variant was tried again while it waited out the outage.
    let errors = audit
        .iter()
        .filter(|e| e["event"]["event"] == "safety_screen_error")
        .count() as u64;
    assert!(
        errors >= 2 * s.variants_generated,
        "{errors} screen errors audited"
    );
}

/// An OpenAI-compatible chat-completions server on 127.0.0.1 that answers
/// every request with `sentence` cited as `[promo-win-back-20]` when the
/// prompt lists that snippet, else as the first snippet it lists (so the
/// citation resolves and only the claim is wrong). Returns the base URL and a
/// count of requests.
async fn overclaiming_chat_server(sentence: &'static str) -> (String, Arc<AtomicUsize>) {
    use axum::http::header::CONTENT_TYPE;
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |request: String| {
            counter.fetch_add(1, Ordering::SeqCst);
            let request: Value = serde_json::from_str(&request).unwrap_or_default();
            let prompt = request["messages"][1]["content"]
                .as_str()
                .unwrap_or_default();
            let listed: Vec<&str> = prompt
                .lines()
                .filter_map(|l| l.strip_prefix('[')?.split_once(']').map(|(id, _)| id))
                .collect();
            let id = if listed.contains(&"promo-win-back-20") {
                "promo-win-back-20"
            } else {
                listed.first().copied().unwrap_or("none")
            };
            let answer = serde_json::json!({
                "subject": "We miss you",
                "body": format!("{sentence} [{id}]"),
                "citations": [id]
            });
            let body = serde_json::json!({
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": "test-model",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": answer.to_string()}}]
            })
            .to_string();
            async move { ([(CONTENT_TYPE, "application/json")], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openai_answer_its_citation_does_not_support_is_blocked_and_never_delivered() {
    let sentence = "Every jacket is 90 percent off today only and ships free forever.";
    let (base_url, requests) = overclaiming_chat_server(sentence).await;
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = options(tmp.path());
    opts.settings = Settings::from_yaml(&format!(
        "generation:\n  backend: openai\n  brand: Northwind Outfitters\n  openai:\n    \
         base_url: {base_url}\n    model: test-model\n    api_key: test-key\n    timeout_ms: 5000\n"
    ))
    .unwrap();
    let report = run(campaign(), opts).await.unwrap();
    accounted(&report);
    let s = &report.summary;
    assert_eq!(requests.load(Ordering::SeqCst) as u64, s.variants_generated);
    assert!(s.variants_generated > 0);
    assert_eq!(s.variants_approved, 0, "{s:?}");
    assert_eq!(s.variants_blocked, s.variants_generated);
    assert_eq!(s.messages, 0);
    let outbox = std::fs::read_to_string(tmp.path().join("outbox.jsonl")).unwrap_or_default();
    assert!(!outbox.contains("90 percent"), "delivered: {outbox}");
    assert_eq!(outbox, "");

    let variants: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("variants.json")).unwrap())
            .unwrap();
    // Every variant is blocked for the claim and for nothing else: its
    // citation resolves.
    let claim = format!("unsupported_claim: sentence \"{sentence}\" states what [");
    assert_eq!(variants.len() as u64, s.variants_generated);
    for v in &variants {
        let reasons = v["verdict"]["reasons"].as_array().unwrap();
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(
            reasons[0].as_str().unwrap().starts_with(&claim),
            "{reasons:?}"
        );
    }
    assert!(
        variants
            .iter()
            .any(|v| v["citations"][0] == "promo-win-back-20"),
        "no segment retrieved promo-win-back-20"
    );
    // Nobody was mailed: every eligible customer is listed as having no
    // approved message.
    assert_eq!(s.customers_assigned, 0);
    let other_exclusions: u64 = s
        .excluded_by_reason
        .iter()
        .filter(|(reason, _)| *reason != "no_approved_message")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        s.excluded_by_reason.get("no_approved_message").copied(),
        Some(s.customers_total - other_exclusions),
        "{s:?}"
    );
    let dead = jsonl(&tmp.path().join("dead_letters.jsonl"));
    assert!(dead.iter().all(|d| d["kind"] == "blocked"));
    assert!(
        dead.iter()
            .any(|d| d["reason"].as_str().unwrap().contains("unsupported_claim"))
    );
}
