//! The OpenAI Moderation and guard-model backends, and ensembles of backends,
//! against in-process HTTP servers on 127.0.0.1 that speak the
//! `/v1/moderations` and `/v1/chat/completions` wire formats.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::http::{Answer, answer, serve};
use common::variant;
use cpo_safety::metrics::safety_metrics;
use cpo_safety::{
    ApiKey, BlockCause, Content, FindingKind, HarmCategory, OnScreenError, SafetyConfig,
    SafetyStage, ScreenBackend, ScreenError, ScreenErrorKind, evaluate,
};
use cpo_shared::audit::MemoryAuditLog;
use cpo_shared::model::Decision;
use cpo_shared::signing::Signer;
use cpo_shared::transport::MemoryTransport;
use cpo_shared::{Emitter, Envelope, Stage, StageError, queues};
use serde_json::{Value, json};

const KEY: &str = "s3cret-openai-key-0123456789abcdef";
const BODY: &str = "Earn double points in March [doc-1].";

/// A moderation answer: every category clean except `flagged` at `score`.
fn moderation(flagged: &[(&str, f64)]) -> Value {
    let names = [
        "hate",
        "hate/threatening",
        "harassment",
        "harassment/threatening",
        "self-harm",
        "self-harm/intent",
        "self-harm/instructions",
        "sexual",
        "sexual/minors",
        "violence",
        "violence/graphic",
        "illicit",
        "illicit/violent",
    ];
    let mut categories = serde_json::Map::new();
    let mut scores = serde_json::Map::new();
    for name in names {
        let score = flagged
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| *s)
            .unwrap_or(0.0001);
        categories.insert(name.into(), json!(score >= 0.5));
        scores.insert(name.into(), json!(score));
    }
    json!({"id": "modr-1", "model": "omni-moderation-latest",
        "results": [{"flagged": !flagged.is_empty(), "categories": categories, "category_scores": scores}]})
}

fn chat(content: &str) -> Answer {
    answer(
        200,
        json!({"id": "c-1", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]})
        .to_string(),
    )
}

fn config(backends: &[ScreenBackend], openai: &str, guard: &str) -> SafetyConfig {
    let mut config = SafetyConfig {
        timeout_ms: 2_000,
        ..SafetyConfig::default()
    };
    match backends {
        [one] => config.backend = Some(*one),
        many => config.backends = Some(many.to_vec()),
    }
    config.openai_moderation.endpoint = openai.to_string();
    config.openai_moderation.api_key = Some(ApiKey::new(KEY));
    config.llm_guard.endpoint = Some(guard.to_string());
    config.llm_guard.model = Some("meta-llama/Llama-Guard-3-8B".into());
    config
}

async fn decide(config: &SafetyConfig, body: &str) -> cpo_safety::Assessment {
    let screen = config.screen().unwrap();
    let v = variant("Double points", body);
    evaluate(&*screen, &Content::from_variant(&v), config).await
}

const OPENAI: &[ScreenBackend] = &[ScreenBackend::OpenaiModeration];
const GUARD: &[ScreenBackend] = &[ScreenBackend::LlmGuard];
const DEAD: &str = "http://127.0.0.1:9";

#[tokio::test]
async fn the_moderation_request_has_the_documented_shape() {
    let fake = serve(|_| answer(200, moderation(&[]).to_string())).await;
    let assessment = decide(&config(OPENAI, &fake.endpoint, DEAD), BODY).await;
    assert_eq!(assessment.decision, Decision::Approved, "{assessment:?}");
    let seen = fake.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, "/v1/moderations");
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(seen[0].json["model"], "omni-moderation-latest");
    let input = seen[0].json["input"].as_str().unwrap();
    assert!(
        input.contains("Double points") && input.contains(BODY),
        "{input}"
    );
}

#[tokio::test]
async fn moderation_scores_map_onto_our_categories_and_severities() {
    for (flags, category, severity) in [
        (vec![("violence/graphic", 0.9)], HarmCategory::Violence, 7),
        (vec![("hate/threatening", 0.55)], HarmCategory::Hate, 4),
        (vec![("harassment", 0.7)], HarmCategory::Hate, 5),
        (vec![("self-harm/intent", 0.8)], HarmCategory::SelfHarm, 6),
        (vec![("sexual/minors", 0.6)], HarmCategory::Sexual, 7),
        (vec![("illicit/violent", 0.99)], HarmCategory::Violence, 7),
    ] {
        let body = moderation(&flags).to_string();
        let fake = serve(move |_| answer(200, body.clone())).await;
        let assessment = decide(&config(OPENAI, &fake.endpoint, DEAD), BODY).await;
        assert_eq!(assessment.decision, Decision::Blocked, "{flags:?}");
        assert_eq!(category.get(&assessment.categories), severity, "{flags:?}");
        assert_eq!(assessment.causes, [BlockCause::Harm(category)], "{flags:?}");
    }
    // Below the default threshold, unflagged: approved, severity kept.
    let body = moderation(&[("violence", 0.4)]).to_string();
    let fake = serve(move |_| answer(200, body.clone())).await;
    let assessment = decide(&config(OPENAI, &fake.endpoint, DEAD), BODY).await;
    assert_eq!(assessment.decision, Decision::Approved);
    assert_eq!(assessment.categories.violence, 3);
    // `illicit` is none of our four: a flag is a blocking policy finding.
    let body = moderation(&[("illicit", 0.8)]).to_string();
    let fake = serve(move |_| answer(200, body.clone())).await;
    let assessment = decide(&config(OPENAI, &fake.endpoint, DEAD), BODY).await;
    assert_eq!(
        assessment.causes,
        [BlockCause::Policy(FindingKind::ExternalPolicy)]
    );
    assert!(assessment.reasons[0].contains("openai moderation: illicit"));
}

/// The error of one screening against a server answering `reply`.
async fn error_of(
    backends: &[ScreenBackend],
    reply: impl Fn() -> Answer + Send + Sync + 'static,
) -> ScreenError {
    let fake = serve(move |_| reply()).await;
    let mut cfg = config(backends, &fake.endpoint, &fake.endpoint);
    cfg.timeout_ms = 300;
    let assessment = decide(&cfg, BODY).await;
    assert_eq!(assessment.decision, Decision::Blocked);
    assert!(assessment.undecided(), "{assessment:?}");
    let error = assessment.screen_error.unwrap();
    assert!(!error.to_string().contains(KEY), "the key leaked: {error}");
    error
}

#[tokio::test]
async fn moderation_malformed_answers_5xx_and_timeouts_are_screen_errors() {
    let mut bad = moderation(&[]);
    bad["results"][0]["category_scores"]["hate"] = json!(1.5);
    let mut missing = moderation(&[]);
    missing["results"][0]["categories"]
        .as_object_mut()
        .unwrap()
        .remove("sexual");
    for (body, expected) in [
        (bad.to_string(), "score of hate is missing or outside 0-1"),
        (missing.to_string(), "category sexual is missing"),
        ("{}".to_string(), "no results"),
        ("<html>".to_string(), "not JSON"),
    ] {
        let error = error_of(OPENAI, move || answer(200, body.clone())).await;
        assert!(
            matches!(&error, ScreenError::Malformed(m) if m.contains(expected)),
            "{error}"
        );
    }
    let error = error_of(OPENAI, || {
        answer(503, r#"{"error":{"message":"overloaded"}}"#)
    })
    .await;
    assert_eq!(error.kind(), ScreenErrorKind::Transient, "{error}");
    assert!(error.to_string().contains("HTTP 503"), "{error}");
    let error = error_of(OPENAI, || {
        answer(
            401,
            format!(r#"{{"error":{{"message":"Incorrect API key provided: {KEY}"}}}}"#),
        )
    })
    .await;
    assert_eq!(error.kind(), ScreenErrorKind::Permanent, "{error}");
    assert!(error.to_string().contains("<redacted>"), "{error}");
    let error = error_of(OPENAI, || Answer {
        delay: Duration::from_millis(1_500),
        ..answer(200, moderation(&[]).to_string())
    })
    .await;
    assert!(matches!(error, ScreenError::Timeout(_)), "{error}");
    // A redirect is not followed (the key would go along): permanent.
    let error = error_of(OPENAI, || Answer {
        location: Some("https://elsewhere.example.com/v1/moderations".into()),
        ..answer(307, "")
    })
    .await;
    assert!(
        matches!(&error, ScreenError::Rejected(m) if m.contains("redirect not followed")),
        "{error}"
    );
}

#[tokio::test]
async fn the_guard_request_wraps_the_copy_in_llama_guards_template() {
    let fake = serve(|_| chat("safe")).await;
    let mut cfg = config(GUARD, DEAD, &fake.endpoint);
    let assessment = decide(&cfg, BODY).await;
    assert_eq!(assessment.decision, Decision::Approved, "{assessment:?}");
    cfg.llm_guard.api_key = Some(ApiKey::new(KEY));
    decide(&cfg, BODY).await;
    let seen = fake.requests();
    assert_eq!(seen[0].target, "/v1/chat/completions");
    assert_eq!(seen[0].header("authorization"), None);
    assert_eq!(
        seen[1].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(seen[0].json["model"], "meta-llama/Llama-Guard-3-8B");
    assert_eq!(seen[0].json["temperature"], 0.0);
    let messages = seen[0].json["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["role"], "user");
    let prompt = messages[0]["content"].as_str().unwrap();
    assert!(prompt.contains("<BEGIN UNSAFE CONTENT CATEGORIES>\nS1: Violent Crimes."));
    assert!(prompt.contains("S14: Code Interpreter Abuse."));
    assert!(prompt.contains(&format!("Agent: Subject: Double points\n\n{BODY}")));
}

#[tokio::test]
async fn guard_codes_map_onto_our_categories_or_a_policy_finding() {
    for (content, cause, category) in [
        (
            "unsafe\nS1",
            BlockCause::Harm(HarmCategory::Violence),
            Some(HarmCategory::Violence),
        ),
        (
            "unsafe\nS10",
            BlockCause::Harm(HarmCategory::Hate),
            Some(HarmCategory::Hate),
        ),
        (
            "unsafe\nS11",
            BlockCause::Harm(HarmCategory::SelfHarm),
            Some(HarmCategory::SelfHarm),
        ),
        (
            "unsafe\nS4",
            BlockCause::Harm(HarmCategory::Sexual),
            Some(HarmCategory::Sexual),
        ),
        (
            "unsafe\nS7",
            BlockCause::Policy(FindingKind::ExternalPolicy),
            None,
        ),
    ] {
        let fake = serve(move |_| chat(content)).await;
        let assessment = decide(&config(GUARD, DEAD, &fake.endpoint), BODY).await;
        assert_eq!(assessment.decision, Decision::Blocked, "{content}");
        assert_eq!(assessment.causes, [cause], "{content}");
        if let Some(category) = category {
            assert_eq!(category.get(&assessment.categories), 7, "{content}");
        }
    }
}

#[tokio::test]
async fn guard_malformed_answers_5xx_and_timeouts_are_screen_errors() {
    for content in ["Looks fine to me!", "unsafe", "unsafe\nS99"] {
        let error = error_of(GUARD, move || chat(content)).await;
        assert!(
            matches!(error, ScreenError::Malformed(_)),
            "{content}: {error}"
        );
    }
    let error = error_of(GUARD, || answer(200, r#"{"choices":[]}"#)).await;
    assert!(
        error.to_string().contains("no choices[0].message.content"),
        "{error}"
    );
    let error = error_of(GUARD, || answer(502, "bad gateway")).await;
    assert_eq!(error.kind(), ScreenErrorKind::Transient, "{error}");
    let error = error_of(GUARD, || Answer {
        delay: Duration::from_millis(1_500),
        ..chat("safe")
    })
    .await;
    assert!(matches!(error, ScreenError::Timeout(_)), "{error}");
}

/// A server answering moderation and chat requests alike, by path.
async fn both(moderation_body: Value, guard: &'static str) -> common::http::FakeServer {
    let body = moderation_body.to_string();
    serve(move |seen| {
        if seen.target == "/v1/moderations" {
            answer(200, body.clone())
        } else {
            chat(guard)
        }
    })
    .await
}

fn disagreements(a: &str, b: &str) -> u64 {
    safety_metrics()
        .backend_disagreements
        .with_label_values(&[a, b])
        .get()
}

#[tokio::test]
async fn in_an_ensemble_one_backend_blocking_blocks_and_each_answer_is_audited() {
    use ScreenBackend::{Embedded, LlmGuard, OpenaiModeration};
    let fake = both(moderation(&[]), "unsafe\nS10").await;
    let cfg = config(
        &[Embedded, OpenaiModeration, LlmGuard],
        &fake.endpoint,
        &fake.endpoint,
    );
    let audit = Arc::new(MemoryAuditLog::default());
    let stage = SafetyStage::from_config(Signer::new(b"k".to_vec()), audit.clone(), cfg).unwrap();
    let emitter = Emitter::new(
        Arc::new(MemoryTransport::new(8)),
        "safety",
        queues::VARIANTS,
    );
    let v = variant("Double points", BODY);
    let err = stage
        .handle(Envelope::new("variant-1", "camp-1", v), &emitter)
        .await
        .unwrap_err();
    let StageError::Blocked { reasons, .. } = err else {
        panic!("expected a block, got {err:?}");
    };
    assert!(reasons[0].starts_with("hate severity 7"), "{reasons:?}");
    let events = audit.events.lock().unwrap().clone();
    assert_eq!(
        events[0]["screened_by"],
        "embedded+openai_moderation+llm_guard"
    );
    let backends = events[0]["backends"].as_array().unwrap();
    let decisions: Vec<(&str, &str)> = backends
        .iter()
        .map(|b| {
            (
                b["backend"].as_str().unwrap(),
                b["decision"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        decisions,
        [
            ("embedded", "approved"),
            ("openai_moderation", "approved"),
            ("llm_guard", "blocked")
        ]
    );
    assert_eq!(backends[2]["categories"]["hate"], 7);
    // All clean: approved.
    let fake = both(moderation(&[]), "safe").await;
    let cfg = config(
        &[Embedded, OpenaiModeration, LlmGuard],
        &fake.endpoint,
        &fake.endpoint,
    );
    assert_eq!(decide(&cfg, BODY).await.decision, Decision::Approved);
}

#[tokio::test]
async fn in_an_ensemble_one_backend_down_holds_or_blocks_as_configured() {
    use ScreenBackend::{Embedded, LlmGuard};
    let fake = serve(|_| answer(503, "unavailable")).await;
    let emitter = Emitter::new(
        Arc::new(MemoryTransport::new(8)),
        "safety",
        queues::VARIANTS,
    );
    let v = variant("Double points", BODY);
    let mut cfg = config(&[Embedded, LlmGuard], DEAD, &fake.endpoint);
    // Unset: the fleet's default is hold.
    let audit = Arc::new(MemoryAuditLog::default());
    let stage =
        SafetyStage::from_config(Signer::new(b"k".to_vec()), audit.clone(), cfg.clone()).unwrap();
    assert_eq!(stage.on_screen_error(), OnScreenError::Hold);
    let err = stage
        .handle(Envelope::new("variant-1", "camp-1", v.clone()), &emitter)
        .await
        .unwrap_err();
    let StageError::Unavailable(reason) = &err else {
        panic!("expected unavailable, got {err:?}");
    };
    assert!(
        reason.contains("llm_guard: llm guard: HTTP 503"),
        "{reason}"
    );
    // Block, as `cpo run` sets it.
    cfg.on_screen_error = Some(OnScreenError::Block);
    let stage = SafetyStage::from_config(Signer::new(b"k".to_vec()), audit, cfg).unwrap();
    let err = stage
        .handle(Envelope::new("variant-1", "camp-1", v), &emitter)
        .await
        .unwrap_err();
    let StageError::Blocked { reasons, .. } = err else {
        panic!("expected a block, got {err:?}");
    };
    assert!(
        reasons[0].starts_with("screen error: backend: llm_guard"),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn the_disagreement_counter_moves_only_when_backends_disagree() {
    use ScreenBackend::{LlmGuard, OpenaiModeration};
    // This pair's order is used by no other test, so parallel tests do not move it.
    let fake = both(moderation(&[("violence", 0.9)]), "safe").await;
    let cfg = config(
        &[LlmGuard, OpenaiModeration],
        &fake.endpoint,
        &fake.endpoint,
    );
    let screen = cfg.screen().unwrap();
    // Preset at 0 when the ensemble is built.
    let exposed = cpo_shared::metrics::metrics().registry.gather();
    let family = exposed
        .iter()
        .find(|f| {
            f.name() == "cpo_safety_backend_disagreements_total"
                || f.name() == "safety_backend_disagreements_total"
        })
        .expect("the disagreement counter is registered");
    assert!(family.get_metric().iter().any(|m| {
        let labels: Vec<_> = m.get_label().iter().map(|l| l.value()).collect();
        labels == ["llm_guard", "openai_moderation"]
    }));
    let before = disagreements("llm_guard", "openai_moderation");
    let v = variant("Double points", BODY);
    let assessment = evaluate(&*screen, &Content::from_variant(&v), &cfg).await;
    assert_eq!(assessment.decision, Decision::Blocked);
    assert_eq!(disagreements("llm_guard", "openai_moderation"), before + 1);
    // Both clean: no move.
    let fake = both(moderation(&[]), "safe").await;
    let cfg = config(
        &[LlmGuard, OpenaiModeration],
        &fake.endpoint,
        &fake.endpoint,
    );
    assert_eq!(decide(&cfg, BODY).await.decision, Decision::Approved);
    assert_eq!(disagreements("llm_guard", "openai_moderation"), before + 1);
}

#[test]
fn backend_and_backends_together_or_a_bad_list_name_the_key() {
    let mut cfg = config(&[ScreenBackend::Embedded], DEAD, DEAD);
    cfg.backends = Some(vec![ScreenBackend::Embedded, ScreenBackend::LlmGuard]);
    let err = cfg.validate().unwrap_err().to_string();
    assert!(
        err.contains("safety.backends") && err.contains("not both"),
        "{err}"
    );
    cfg.backend = None;
    cfg.backends = Some(vec![]);
    assert!(cfg.validate().unwrap_err().to_string().contains("is empty"));
    cfg.backends = Some(vec![ScreenBackend::LlmGuard, ScreenBackend::LlmGuard]);
    assert!(cfg.validate().unwrap_err().to_string().contains("twice"));
    // The list comes from YAML or, comma-separated, from the environment.
    let settings = cpo_shared::config::Settings::from_yaml(
        "safety:\n  backends: embedded, llm_guard\n  llm_guard:\n    endpoint: http://127.0.0.1:1\n    model: guard\n",
    )
    .unwrap();
    let parsed: SafetyConfig = settings.section("safety").unwrap();
    assert_eq!(
        parsed.backend_list().unwrap(),
        [ScreenBackend::Embedded, ScreenBackend::LlmGuard]
    );
    let settings =
        cpo_shared::config::Settings::from_yaml("safety:\n  backends: [embedded, nope]\n").unwrap();
    assert!(settings.section::<SafetyConfig>("safety").is_err());
    // The remote sections' checks: https off this machine, a key for OpenAI.
    let mut cfg = config(
        &[ScreenBackend::OpenaiModeration],
        "http://api.example.com",
        DEAD,
    );
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("safety.openai_moderation.endpoint"), "{err}");
    cfg.openai_moderation.endpoint = "https://api.openai.com".into();
    cfg.openai_moderation.api_key = None;
    let err = cfg.validate().unwrap_err().to_string();
    assert!(
        err.contains("CPO__SAFETY__OPENAI_MODERATION__API_KEY"),
        "{err}"
    );
    assert!(!format!("{cfg:?}").contains(KEY));
}
