//! The OpenAI-compatible backend against a local server on 127.0.0.1 that
//! speaks the chat-completions wire format (plain and Azure URL forms).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::sample_brief;
use cpo_generation::{
    GenerationConfig, GenerationError, GenerationStage, Generator, OpenAiConfig, OpenAiGenerator,
    Voice,
};
use cpo_shared::transport::MemoryTransport;
use cpo_shared::{Emitter, Envelope, Stage, StageError, queues};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// One canned answer: status, body, how long to wait before sending it, and
/// where it redirects to (a `Location` header).
#[derive(Clone)]
struct Canned {
    status: u16,
    body: String,
    delay: Duration,
    location: Option<String>,
}

fn canned(status: u16, body: impl Into<String>) -> Canned {
    Canned {
        status,
        body: body.into(),
        delay: Duration::ZERO,
        location: None,
    }
}

/// What the server saw of a request.
#[derive(Debug)]
struct Seen {
    target: String,
    headers: Vec<(String, String)>,
    json: serde_json::Value,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Serve the canned answers in order, one connection each, then stop.
async fn serve(answers: Vec<Canned>) -> (String, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("addr: {e}"));
    let (seen_tx, seen_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for answer in answers {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let header_end = loop {
                if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break pos + 4;
                }
                match socket.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
            let mut lines = head.split("\r\n");
            let target = lines
                .next()
                .and_then(|l| l.split(' ').nth(1))
                .unwrap_or_default()
                .to_string();
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect();
            let length: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < header_end + length {
                match socket.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let json = serde_json::from_slice(&buf[header_end..header_end + length])
                .unwrap_or(serde_json::Value::Null);
            let _ = seen_tx.send(Seen {
                target,
                headers,
                json,
            });
            tokio::time::sleep(answer.delay).await;
            let location = answer
                .location
                .map(|l| format!("Location: {l}\r\n"))
                .unwrap_or_default();
            let response = format!(
                "HTTP/1.1 {} Canned\r\n{location}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                answer.status,
                answer.body.len(),
                answer.body
            );
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
    });
    (format!("http://{addr}"), seen_rx)
}

fn completion(content: serde_json::Value) -> String {
    serde_json::json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "test-model",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content.to_string()}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
    })
    .to_string()
}

fn good_draft() -> serde_json::Value {
    serde_json::json!({
        "subject": "Spring Refresh: a first look",
        "body": "Hi {{first_name}},\n\nAs one of our most valued customers, we wanted this to reach you without delay.\n\nOur Spring Collection brings lightweight jackets, linen shirts and breathable trainers. [doc-spring-collection] Rewards members earn 2 points for every $1 spent. [doc-rewards]\n\nSee it for yourself today: {{cta_url}}\n\nSee you soon,\nThe Spring Refresh team",
        "citations": ["doc-spring-collection", "doc-rewards"]
    })
}

fn openai_config(base_url: &str) -> OpenAiConfig {
    OpenAiConfig {
        base_url: format!("{base_url}/v1"),
        model: "test-model".into(),
        api_key: Some("test-key".into()),
        timeout_ms: 2_000,
        ..Default::default()
    }
}

fn generator(config: &OpenAiConfig) -> OpenAiGenerator {
    OpenAiGenerator::from_config(config).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn sends_a_grounded_prompt_and_returns_the_checked_draft() {
    let (url, mut seen) = serve(vec![canned(200, completion(good_draft()))]).await;
    let generator = generator(&openai_config(&url));
    let brief = sample_brief("High-Value Recent");
    let draft = generator
        .draft(&brief, Voice::Tone("urgent"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(draft.subject, "Spring Refresh: a first look");
    assert_eq!(
        draft.citations,
        vec!["doc-spring-collection", "doc-rewards"]
    );
    assert_eq!(generator.name(), "openai:test-model");

    let request = seen
        .recv()
        .await
        .unwrap_or_else(|| panic!("no request seen"));
    assert_eq!(request.target, "/v1/chat/completions");
    assert_eq!(request.header("authorization"), Some("Bearer test-key"));
    assert_eq!(request.json["model"], "test-model");
    assert_eq!(request.json["response_format"]["type"], "json_object");
    let prompt = request.json["messages"][1]["content"]
        .as_str()
        .unwrap_or_default();
    for snippet in &brief.snippets {
        assert!(
            prompt.contains(&format!("[{}]", snippet.id)),
            "prompt lacks {}",
            snippet.id
        );
    }
    assert!(prompt.contains("Tone: urgent") && prompt.contains("High-Value Recent"));
    // The fixed lines safety accepts without a citation are spelt out.
    assert!(
        prompt.contains("\"See it for yourself today: {{cta_url}}\""),
        "{prompt}"
    );
    assert!(
        prompt.contains("- signature: \"The Spring Refresh team\""),
        "{prompt}"
    );
}

#[tokio::test]
async fn azure_form_uses_the_deployment_url_and_api_key_header() {
    let (url, mut seen) = serve(vec![canned(200, completion(good_draft()))]).await;
    let config = OpenAiConfig {
        azure_endpoint: Some(format!("{url}/")),
        azure_deployment: Some("gpt-4o-mini-prod".into()),
        azure_api_version: "2024-10-21".into(),
        api_key: Some("azure-key".into()),
        timeout_ms: 2_000,
        ..Default::default()
    };
    let generator = generator(&config);
    let brief = sample_brief("Standard");
    let result = generator.draft(&brief, Voice::Control).await;
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(generator.name(), "azure-openai:gpt-4o-mini-prod");
    let request = seen
        .recv()
        .await
        .unwrap_or_else(|| panic!("no request seen"));
    assert_eq!(
        request.target,
        "/openai/deployments/gpt-4o-mini-prod/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(request.header("api-key"), Some("azure-key"));
    assert_eq!(request.header("authorization"), None);
    assert!(request.json.get("model").is_none());
    let prompt = request.json["messages"][1]["content"]
        .as_str()
        .unwrap_or_default();
    assert!(prompt.contains("control message"));
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_transient_client_errors_are_not() {
    for (status, transient) in [
        (500, true),
        (503, true),
        (429, true),
        (401, false),
        (400, false),
    ] {
        let (url, _seen) = serve(vec![canned(status, r#"{"error":{"message":"nope"}}"#)]).await;
        let err = generator(&openai_config(&url))
            .draft(&sample_brief("Standard"), Voice::Tone("friendly"))
            .await
            .err()
            .unwrap_or_else(|| panic!("http {status} should fail"));
        assert_eq!(err.is_transient(), transient, "http {status}: {err}");
    }
}

#[tokio::test]
async fn a_timeout_is_transient() {
    let slow = Canned {
        delay: Duration::from_secs(3),
        ..canned(200, completion(good_draft()))
    };
    let (url, _seen) = serve(vec![slow]).await;
    let config = OpenAiConfig {
        timeout_ms: 200,
        ..openai_config(&url)
    };
    let err = generator(&config)
        .draft(&sample_brief("Standard"), Voice::Tone("urgent"))
        .await
        .err();
    assert!(
        matches!(err, Some(GenerationError::Unavailable(_))),
        "{err:?}"
    );
}

#[tokio::test]
async fn malformed_answers_are_permanent() {
    let bodies = [
        "this is not json".to_string(),
        r#"{"choices": []}"#.to_string(),
        completion(serde_json::json!(
            "Dear customer, here is some prose instead of JSON."
        )),
        completion(serde_json::json!({"subject": "no body"})),
    ];
    for body in bodies {
        let (url, _seen) = serve(vec![canned(200, body.clone())]).await;
        let err = generator(&openai_config(&url))
            .draft(&sample_brief("Standard"), Voice::Tone("urgent"))
            .await
            .err();
        assert!(
            matches!(err, Some(GenerationError::Malformed(_))),
            "{body}: {err:?}"
        );
    }
}

#[tokio::test]
async fn drafts_breaking_the_contract_are_permanent_violations() {
    let mut long_subject = good_draft();
    long_subject["subject"] =
        serde_json::json!("A subject line that goes on and on well past sixty characters");
    let mut invented = good_draft();
    invented["body"] = serde_json::json!("Hi,\n\nEverything is half price. [doc-made-up]\n\nBye");
    invented["citations"] = serde_json::json!(["doc-made-up"]);
    let mut unknown_field = good_draft();
    unknown_field["body"] = serde_json::json!("Hi {{email}}, see [doc-rewards]");
    unknown_field["citations"] = serde_json::json!(["doc-rewards"]);
    for draft in [long_subject, invented, unknown_field] {
        let (url, _seen) = serve(vec![canned(200, completion(draft.clone()))]).await;
        let err = generator(&openai_config(&url))
            .draft(&sample_brief("Standard"), Voice::Tone("urgent"))
            .await
            .err();
        assert!(
            matches!(err, Some(GenerationError::Violation(_))),
            "{draft}: {err:?}"
        );
        assert!(!err.is_some_and(|e| e.is_transient()));
    }
}

#[tokio::test]
async fn through_the_stage_a_500_is_retried_and_garbage_is_dead_lettered() {
    let config = GenerationConfig::default();
    for (answer, kind) in [
        (canned(500, "{}"), "transient"),
        (canned(200, "<html>oops</html>"), "permanent"),
    ] {
        let (url, _seen) = serve(vec![answer]).await;
        let stage = GenerationStage::new(Arc::new(generator(&openai_config(&url))), &config);
        let emitter = Emitter::new(
            Arc::new(MemoryTransport::new(8)),
            "generation",
            queues::BRIEFS,
        );
        let brief = sample_brief("Standard");
        let result = stage
            .handle(Envelope::new("b", "spring-2025", brief), &emitter)
            .await;
        let err: Option<StageError> = result.err();
        assert_eq!(err.map(|e| e.kind()), Some(kind));
    }
}

#[tokio::test]
async fn a_missing_api_key_is_a_configuration_error() {
    if std::env::var("OPENAI_API_KEY").is_ok() {
        return; // the environment supplies one; nothing to check here
    }
    let config = OpenAiConfig {
        api_key: None,
        ..Default::default()
    };
    let err = OpenAiGenerator::from_config(&config).err();
    assert!(
        matches!(err, Some(GenerationError::Config(ref m)) if m.contains("OPENAI_API_KEY")),
        "{:?}",
        err.map(|e| e.to_string())
    );
}

#[tokio::test]
async fn a_redirect_is_not_followed_so_the_key_never_leaves_the_endpoint() {
    let azure = |url: &str| OpenAiConfig {
        azure_endpoint: Some(url.to_string()),
        azure_deployment: Some("gpt-4o-mini-prod".into()),
        api_key: Some("azure-key".into()),
        timeout_ms: 2_000,
        ..Default::default()
    };
    for (status, form) in [
        (307, "azure"),
        (308, "azure"),
        (302, "azure"),
        (307, "openai"),
    ] {
        // Another port is another origin: it must never see the request.
        let (elsewhere, mut elsewhere_seen) =
            serve(vec![canned(200, completion(good_draft()))]).await;
        let target = format!("{elsewhere}/somewhere/else");
        let (url, mut seen) = serve(vec![Canned {
            location: Some(target.clone()),
            ..canned(status, "")
        }])
        .await;
        let config = match form {
            "azure" => azure(&url),
            _ => openai_config(&url),
        };
        let err = generator(&config)
            .draft(&sample_brief("Standard"), Voice::Tone("urgent"))
            .await
            .err();
        let Some(GenerationError::Rejected(message)) = &err else {
            panic!("{status} {form}: expected rejected, got {err:?}");
        };
        assert!(
            message.contains(&format!("http {status}"))
                && message.contains("not followed")
                && message.contains(&target),
            "{message}"
        );
        assert!(!message.contains("azure-key") && !message.contains("test-key"));
        // The endpoint was asked, with the key; the other host never was.
        let first = seen.recv().await.unwrap_or_else(|| panic!("not asked"));
        assert!(first.header("api-key").is_some() || first.header("authorization").is_some());
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Ok(request) = elsewhere_seen.try_recv() {
            panic!(
                "{status} {form}: followed; key forwarded: {:?} {:?}",
                request.header("api-key"),
                request.header("authorization")
            );
        }
    }

    // Through the stage: permanent, not retried.
    let (elsewhere, _elsewhere_seen) = serve(vec![canned(200, completion(good_draft()))]).await;
    let (url, _seen) = serve(vec![Canned {
        location: Some(elsewhere),
        ..canned(307, "")
    }])
    .await;
    let stage = GenerationStage::new(
        Arc::new(generator(&azure(&url))),
        &GenerationConfig::default(),
    );
    let emitter = Emitter::new(
        Arc::new(MemoryTransport::new(8)),
        "generation",
        queues::BRIEFS,
    );
    let err = stage
        .handle(
            Envelope::new("b", "spring-2025", sample_brief("Standard")),
            &emitter,
        )
        .await
        .err();
    assert_eq!(err.map(|e| e.kind()), Some("permanent"));
}

#[test]
fn endpoints_must_be_https_except_on_this_machine() {
    for base_url in [
        "http://api.example.com/v1",
        "http://10.1.2.3:8000/v1",
        "ftp://api.example.com/v1",
        "not a url",
    ] {
        let config = OpenAiConfig {
            base_url: base_url.into(),
            api_key: Some("k".into()),
            ..Default::default()
        };
        let err = OpenAiGenerator::from_config(&config).err();
        assert!(
            matches!(&err, Some(GenerationError::Config(m)) if m.contains("generation.openai.base_url")),
            "{base_url}: {err:?}"
        );
        let config = OpenAiConfig {
            azure_endpoint: Some(base_url.into()),
            azure_deployment: Some("d".into()),
            api_key: Some("k".into()),
            ..Default::default()
        };
        let err = OpenAiGenerator::from_config(&config).err();
        assert!(
            matches!(&err, Some(GenerationError::Config(m)) if m.contains("generation.openai.azure_endpoint")),
            "{base_url}: {err:?}"
        );
    }
    for base_url in [
        "https://api.openai.com/v1",
        "http://localhost:11434/v1",
        "http://127.0.0.1:8000/v1",
        "http://[::1]:8000/v1",
    ] {
        let config = OpenAiConfig {
            base_url: base_url.into(),
            api_key: Some("k".into()),
            ..Default::default()
        };
        assert!(OpenAiGenerator::from_config(&config).is_ok(), "{base_url}");
    }
    // A model server inside a private network, by explicit choice only.
    let config = OpenAiConfig {
        base_url: "http://10.1.2.3:8000/v1".into(),
        api_key: Some("k".into()),
        allow_insecure_http: true,
        ..Default::default()
    };
    assert!(OpenAiGenerator::from_config(&config).is_ok());
}

#[tokio::test]
async fn a_key_echoed_in_an_error_answer_is_redacted_even_across_the_cut() {
    // The key starts at character 296 of the answer, which is cut at 300.
    let body = format!("{}test-key and more", "x".repeat(296));
    let (url, _seen) = serve(vec![canned(401, body)]).await;
    let err = generator(&openai_config(&url))
        .draft(&sample_brief("Standard"), Voice::Tone("urgent"))
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    // Scrubbed first, so the cut falls inside the marker, not inside the key.
    assert!(err.ends_with("x<red"), "{err}");
    assert!(!err.contains("test"), "part of the key leaked: {err}");
}

const WIN_BACK: &str = "It has been a while since your last visit, and we would love to see you back on the trail with Northwind Outfitters. \
Returning customers can take 20 percent off one order of $100 or more with the code TRAILBACK20. \
The TRAILBACK20 code works on the new Autumn 2026 Collection and is valid through February 28, 2027.";

/// What the stage publishes for `answer`, screened by the embedded safety stage.
async fn generated_then_screened(answer: serde_json::Value) -> Vec<Result<(), Vec<String>>> {
    let mut brief = common::brief_for(
        "At-Risk",
        vec![common::snippet(
            "promo-win-back-20",
            "promotion",
            0.9,
            "Come Back to the Trail Offer",
            WIN_BACK,
        )],
    );
    brief.campaign.campaign_id = "autumn-2026".into();
    let arms = brief.campaign.tones.len() + 1;
    let (url, _seen) = serve(vec![canned(200, completion(answer)); arms]).await;
    let stage = GenerationStage::new(
        Arc::new(generator(&openai_config(&url))),
        &GenerationConfig::default(),
    );
    let emitter = Emitter::new(
        Arc::new(MemoryTransport::new(8)),
        "generation",
        queues::BRIEFS,
    );
    let outputs = stage
        .handle(Envelope::new("b", "autumn-2026", brief), &emitter)
        .await
        .unwrap_or_else(|e| panic!("generation refused the draft: {e:?}"));
    let safety = cpo_safety::SafetyStage::embedded(
        cpo_shared::signing::Signer::new(b"k".to_vec()),
        Arc::new(cpo_shared::audit::MemoryAuditLog::default()),
        cpo_safety::SafetyConfig::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let safety_emitter = Emitter::new(
        Arc::new(MemoryTransport::new(8)),
        "safety",
        queues::VARIANTS,
    );
    let mut verdicts = Vec::new();
    for out in outputs.iter().filter(|o| o.queue == queues::VARIANTS) {
        let variant: Envelope<cpo_shared::model::Variant> =
            serde_json::from_slice(&out.body).unwrap_or_else(|e| panic!("{e}"));
        verdicts.push(match safety.handle(variant, &safety_emitter).await {
            Ok(_) => Ok(()),
            Err(StageError::Blocked { reasons, .. }) => Err(reasons),
            Err(other) => panic!("safety failed: {other:?}"),
        });
    }
    assert_eq!(verdicts.len(), arms);
    verdicts
}

#[tokio::test]
async fn an_answer_its_citation_does_not_support_passes_generation_and_is_blocked_by_safety() {
    let overclaiming = serde_json::json!({
        "subject": "We miss you",
        "body": "Every jacket is 90 percent off today only and ships free forever. [promo-win-back-20]",
        "citations": ["promo-win-back-20"]
    });
    for verdict in generated_then_screened(overclaiming).await {
        assert_eq!(
            verdict,
            Err(vec![
                "unsupported_claim: sentence \"Every jacket is 90 percent off today only and ships free forever.\" \
                 states what [promo-win-back-20] does not: 90 percent, today, free, forever"
                    .to_string()
            ])
        );
    }
    // The same offer, stated as the snippet states it, with the fixed lines.
    let grounded = serde_json::json!({
        "subject": "We miss you",
        "body": "Hello,\n\nHere is an update on what's new.\n\nReturning customers can take 20% off one order of $100.00 or more with the code TRAILBACK20. [promo-win-back-20]\n\nLearn more at {{cta_url}}\n\nRegards,\nThe Northwind Outfitters team",
        "citations": ["promo-win-back-20"]
    });
    for verdict in generated_then_screened(grounded).await {
        assert_eq!(verdict, Ok(()));
    }
}
