//! SendGridSink against a local server that checks each request against
//! SendGrid's documented v3 mail/send format (bearer key, JSON shape,
//! personalization limits, reserved headers, substitution limits), renders
//! what each recipient would receive, and answers 202 / 429 / 5xx / 400.

mod esp_support;

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use cpo_delivery::SendOutcome;
use cpo_delivery::esp::{SendGridConfig, SendGridSink};
use esp_support::*;
use serde_json::{Value, json};

const KEY: &str = "SG.test-key-1234567890";

/// What one recipient of a call would receive.
#[derive(Debug)]
struct Rendered {
    to: String,
    name: Option<String>,
    subject: String,
    text: String,
    html: String,
    headers: serde_json::Map<String, Value>,
    message_id: String,
    reply_to: Option<String>,
}

struct Call {
    at: Instant,
    body: Value,
    rendered: Vec<Rendered>,
}

enum Answer {
    Status(u16, Vec<(&'static str, String)>, String),
    Slow(Duration),
}

#[derive(Default)]
struct Fake {
    calls: Mutex<Vec<Call>>,
    script: Mutex<VecDeque<Answer>>,
    bad_addresses: Mutex<HashSet<String>>,
}

impl Fake {
    fn script(&self, answer: Answer) {
        self.script.lock().unwrap().push_back(answer);
    }
    fn sizes(&self) -> Vec<usize> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.rendered.len())
            .collect()
    }
}

fn error(status: u16, field: &str, message: &str) -> Response {
    let body = json!({"errors": [{"field": field, "message": message}]}).to_string();
    (StatusCode::from_u16(status).unwrap(), body).into_response()
}

/// The documented constraints of POST /v3/mail/send, and what each
/// personalization renders to. Err is SendGrid's 400 error (field, message).
fn check(body: &Value) -> Result<Vec<Rendered>, (String, String)> {
    let fail = |field: &str, message: &str| Err((field.to_string(), message.to_string()));
    let Some(personalizations) = body["personalizations"].as_array() else {
        return fail("personalizations", "is required");
    };
    if personalizations.is_empty() || personalizations.len() > 1000 {
        return fail("personalizations", "must have 1 to 1000 items");
    }
    let Some(from) = body["from"]["email"].as_str().filter(|e| e.contains('@')) else {
        return fail("from.email", "is required");
    };
    let _ = from;
    let reply_to = match &body["reply_to"] {
        Value::Null => None,
        r => match r["email"].as_str() {
            Some(email) => Some(email.to_string()),
            None => return fail("reply_to.email", "is required"),
        },
    };
    let Some(content) = body["content"].as_array().filter(|c| !c.is_empty()) else {
        return fail("content", "is required");
    };
    let mut types = Vec::new();
    for part in content {
        match (part["type"].as_str(), part["value"].as_str()) {
            (Some(t), Some(_)) => types.push(t.to_string()),
            _ => return fail("content", "each part needs a type and a value"),
        }
    }
    if types != ["text/plain", "text/html"] {
        return fail(
            "content",
            "text/plain must come first, then text/html (test expects both)",
        );
    }
    const RESERVED: [&str; 12] = [
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "content-type",
        "content-transfer-encoding",
        "to",
        "from",
        "subject",
        "reply-to",
        "cc",
        "bcc",
    ];
    let mut rendered = Vec::new();
    for (i, p) in personalizations.iter().enumerate() {
        let field = |rest: &str| format!("personalizations.{i}.{rest}");
        let Some(to) = p["to"].as_array().filter(|t| t.len() == 1) else {
            return fail(
                &field("to"),
                "the test expects one recipient per personalization",
            );
        };
        let Some(address) = to[0]["email"].as_str().filter(|e| e.contains('@')) else {
            return fail(&field("to.0.email"), "Does not contain a valid address.");
        };
        let subject = p["subject"].as_str().or(body["subject"].as_str());
        let Some(subject) = subject else {
            return fail(&field("subject"), "a subject is required");
        };
        let headers = p["headers"].as_object().cloned().unwrap_or_default();
        for (name, value) in &headers {
            if RESERVED.contains(&name.to_ascii_lowercase().as_str()) || !value.is_string() {
                return fail(&field("headers"), "reserved header or non-string value");
            }
        }
        let args = p["custom_args"].as_object().cloned().unwrap_or_default();
        if args.values().any(|v| !v.is_string()) {
            return fail(&field("custom_args"), "values must be strings");
        }
        let subs = p["substitutions"].as_object().cloned().unwrap_or_default();
        let size: usize = subs
            .iter()
            .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
            .sum();
        if size > 10_000 || subs.values().any(|v| !v.is_string()) {
            return fail(&field("substitutions"), "too large or not strings");
        }
        let render = |value: &str| {
            subs.iter().fold(value.to_string(), |acc, (k, v)| {
                acc.replace(k, v.as_str().unwrap())
            })
        };
        rendered.push(Rendered {
            to: address.to_string(),
            name: to[0]["name"].as_str().map(str::to_string),
            subject: subject.to_string(),
            text: render(content[0]["value"].as_str().unwrap()),
            html: render(content[1]["value"].as_str().unwrap()),
            headers,
            message_id: args
                .get("message_id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            reply_to: reply_to.clone(),
        });
    }
    Ok(rendered)
}

async fn mail_send(State(fake): State<Arc<Fake>>, headers: HeaderMap, body: Bytes) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {KEY}"))
    {
        return error(
            401,
            "",
            "The provided authorization grant is invalid, expired, or revoked",
        );
    }
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json") {
        return error(415, "", "Content-Type should be application/json.");
    }
    let Ok(json) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "", "Bad Request");
    };
    let rendered = match check(&json) {
        Ok(rendered) => rendered,
        Err((field, message)) => return error(400, &field, &message),
    };
    let bad: Vec<usize> = {
        let bad = fake.bad_addresses.lock().unwrap();
        rendered
            .iter()
            .enumerate()
            .filter(|(_, r)| bad.contains(&r.to))
            .map(|(i, _)| i)
            .collect()
    };
    let n = {
        let mut calls = fake.calls.lock().unwrap();
        calls.push(Call {
            at: Instant::now(),
            body: json,
            rendered,
        });
        calls.len()
    };
    if !bad.is_empty() {
        let errors: Vec<Value> = bad
            .iter()
            .map(|i| json!({"field": format!("personalizations.{i}.to.0.email"), "message": "Does not contain a valid address."}))
            .collect();
        return (
            StatusCode::BAD_REQUEST,
            json!({"errors": errors}).to_string(),
        )
            .into_response();
    }
    let answer = fake.script.lock().unwrap().pop_front();
    match answer {
        Some(Answer::Status(code, extra, body)) => {
            let mut response = (StatusCode::from_u16(code).unwrap(), body).into_response();
            for (name, value) in extra {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            response
        }
        Some(Answer::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            StatusCode::ACCEPTED.into_response()
        }
        None => {
            let mut response = StatusCode::ACCEPTED.into_response();
            response
                .headers_mut()
                .insert("x-message-id", format!("sgid{n}").parse().unwrap());
            response
        }
    }
}

async fn start() -> (Arc<Fake>, SendGridSink, tempfile::TempDir) {
    let (fake, sink, dir, _) = start_at().await;
    (fake, sink, dir)
}

async fn start_at() -> (
    Arc<Fake>,
    SendGridSink,
    tempfile::TempDir,
    std::net::SocketAddr,
) {
    let fake = Arc::new(Fake::default());
    let router = axum::Router::new()
        .route("/v3/mail/send", post(mail_send))
        .with_state(fake.clone());
    let addr = serve(router).await;
    let (dir, key_file) = secret_file(KEY);
    let sink = SendGridSink::from_config(&SendGridConfig {
        endpoint: format!("http://{addr}"),
        api_key_file: Some(key_file),
        timeout_ms: 2_000,
        ..SendGridConfig::default()
    })
    .expect("sink builds");
    (fake, sink, dir, addr)
}

#[tokio::test]
async fn batches_personalizations_and_records_provider_ids() {
    let (fake, sink, _dir) = start().await;
    let mut emails = emails(2_100);
    // Over the substitution limit: it must go in a call of its own.
    emails[5].html = format!("<p>{}</p>", "x".repeat(12_000));
    let outcomes = cpo_delivery::MailSink::send(&sink, &emails).await;
    assert_eq!(fake.sizes(), vec![999, 1, 1000, 100]);
    {
        let calls = fake.calls.lock().unwrap();
        for (call_no, call) in calls.iter().enumerate() {
            assert!(
                call.body["personalizations"][0]["substitutions"].is_object()
                    || call.rendered.len() == 1
            );
            for r in &call.rendered {
                let i: usize =
                    r.to.trim_start_matches('c')
                        .trim_end_matches("@example.com")
                        .parse()
                        .unwrap();
                let e = &emails[i];
                assert_eq!(
                    (r.subject.as_str(), r.text.as_str(), r.html.as_str()),
                    (e.subject.as_str(), e.text.as_str(), e.html.as_str())
                );
                assert_eq!(r.name.as_deref(), Some(format!("Ada {i}").as_str()));
                assert_eq!(r.message_id, e.message_id);
                assert_eq!(r.headers["List-Unsubscribe"], e.headers[0].1.as_str());
                assert_eq!(
                    r.headers["List-Unsubscribe-Post"],
                    "List-Unsubscribe=One-Click"
                );
                assert_eq!(
                    r.headers["Message-ID"],
                    format!("<{}>", e.rfc_message_id).as_str()
                );
                assert_eq!(r.reply_to.as_deref(), Some("help@brand.example"));
                assert_eq!(
                    sent_id(&outcomes[i]),
                    format!("sgid{}/{}", call_no + 1, e.message_id)
                );
            }
        }
        assert_eq!(
            calls[0].body["from"],
            json!({"email": "news@brand.example", "name": "Brand Café"})
        );
        // The large one went with its parts as they are.
        assert_eq!(calls[1].rendered[0].to, "c5@example.com");
        assert!(
            calls[1].body["personalizations"][0]
                .get("substitutions")
                .is_none()
        );
    }

    // Parts every email shares are sent as they are, without substitutions.
    let mut same = esp_support::emails(2);
    same[1].text = same[0].text.clone();
    same[1].html = same[0].html.clone();
    let outcomes = cpo_delivery::MailSink::send(&sink, &same).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, SendOutcome::Sent { .. }))
    );
    let calls = fake.calls.lock().unwrap();
    let last = calls.last().unwrap();
    assert_eq!(last.body["content"][0]["value"], same[0].text.as_str());
    assert!(
        last.body["personalizations"][1]
            .get("substitutions")
            .is_none()
    );
}

#[tokio::test]
async fn a_smaller_max_batch_is_kept() {
    let fake = Arc::new(Fake::default());
    let router = axum::Router::new()
        .route("/v3/mail/send", post(mail_send))
        .with_state(fake.clone());
    let addr = serve(router).await;
    let (_dir, key_file) = secret_file(KEY);
    let sink = SendGridSink::from_config(&SendGridConfig {
        endpoint: format!("http://{addr}/"),
        api_key_file: Some(key_file),
        max_batch: 10,
        ..SendGridConfig::default()
    })
    .unwrap();
    assert_eq!(cpo_delivery::MailSink::max_batch(&sink), 10);
    cpo_delivery::MailSink::send(&sink, &emails(25)).await;
    assert_eq!(fake.sizes(), vec![10, 10, 5]);
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after() {
    let (fake, sink, _dir) = start().await;
    fake.script(Answer::Status(
        429,
        vec![("retry-after", "1".into())],
        r#"{"errors":[{"message":"too many requests"}]}"#.into(),
    ));
    let first = cpo_delivery::MailSink::send(&sink, &emails(3)).await;
    assert!(
        first.iter().all(|o| matches!(o, SendOutcome::Retry { after: Some(d), .. } if *d == Duration::from_secs(1))),
        "{first:?}"
    );
    // Without Retry-After, SendGrid's X-RateLimit-Reset tells when.
    let reset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2;
    fake.script(Answer::Status(
        429,
        vec![("x-ratelimit-reset", reset.to_string())],
        String::new(),
    ));
    let second = cpo_delivery::MailSink::send(&sink, &emails(1)).await;
    assert!(
        matches!(&second[0], SendOutcome::Retry { after: Some(d), .. } if *d >= Duration::from_secs(1) && *d <= Duration::from_secs(2)),
        "{second:?}"
    );

    // Waiting as the stage does: the next call comes no sooner than asked.
    fake.script(Answer::Status(
        429,
        vec![("retry-after", "1".into())],
        String::new(),
    ));
    let (outcomes, _) = send_until_settled(&sink, &emails(3), 5).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, SendOutcome::Sent { .. })),
        "{outcomes:?}"
    );
    let calls = fake.calls.lock().unwrap();
    let gap = calls[3].at - calls[2].at;
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
}

#[tokio::test]
async fn server_errors_are_retried_and_client_errors_fail_with_the_reason() {
    let (fake, sink, _dir) = start().await;
    fake.script(Answer::Status(503, vec![], "upstream unavailable".into()));
    let outcomes = cpo_delivery::MailSink::send(&sink, &emails(2)).await;
    for o in &outcomes {
        assert!(
            matches!(o, SendOutcome::Retry { reason, .. } if reason.contains("503")),
            "{o:?}"
        );
    }
    let (outcomes, _) = {
        fake.script(Answer::Status(500, vec![], String::new()));
        send_until_settled(&sink, &emails(2), 3).await
    };
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, SendOutcome::Sent { .. }))
    );

    let refusal = json!({"errors": [{"field": "from", "message": "The from address does not match a verified Sender Identity."}]});
    fake.script(Answer::Status(403, vec![], refusal.to_string()));
    let outcomes = cpo_delivery::MailSink::send(&sink, &emails(2)).await;
    for o in &outcomes {
        assert!(
            matches!(o, SendOutcome::Failed { reason } if reason.contains("403") && reason.contains("verified Sender Identity")),
            "{o:?}"
        );
    }
}

#[tokio::test]
async fn a_refused_recipient_fails_alone_and_the_rest_is_sent() {
    let (fake, sink, _dir) = start().await;
    fake.bad_addresses
        .lock()
        .unwrap()
        .insert("c1@example.com".into());
    let outcomes = cpo_delivery::MailSink::send(&sink, &emails(3)).await;
    assert!(
        matches!(&outcomes[1], SendOutcome::Failed { reason } if reason.contains("personalizations.1.to.0.email") && reason.contains("valid address")),
        "{outcomes:?}"
    );
    assert_eq!(sent_id(&outcomes[0]), "sgid2/msg-000000");
    assert_eq!(sent_id(&outcomes[2]), "sgid2/msg-000002");
    assert_eq!(fake.sizes(), vec![3, 2]);
}

#[tokio::test]
async fn timeouts_and_dead_servers_are_retried() {
    let (fake, _, dir, addr) = start_at().await;
    // A sink with a short timeout against a server that answers late.
    fake.script(Answer::Slow(Duration::from_secs(3)));
    let sink = SendGridSink::from_config(&SendGridConfig {
        endpoint: format!("http://{addr}"),
        api_key_file: Some(dir.path().join("secret")),
        timeout_ms: 300,
        ..SendGridConfig::default()
    })
    .unwrap();
    let started = Instant::now();
    let outcomes = cpo_delivery::MailSink::send(&sink, &emails(1)).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(&outcomes[0], SendOutcome::Retry { reason, .. } if reason.contains("timed out")),
        "{outcomes:?}"
    );

    let dead = SendGridSink::from_config(&SendGridConfig {
        endpoint: format!("http://127.0.0.1:{}", closed_port()),
        api_key_file: Some(dir.path().join("secret")),
        ..SendGridConfig::default()
    })
    .unwrap();
    let outcomes = cpo_delivery::MailSink::send(&dead, &emails(2)).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, SendOutcome::Retry { .. })),
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn the_key_is_checked_at_start_and_never_echoed() {
    let (fake, sink, _dir) = start().await;
    fake.script(Answer::Status(
        400,
        vec![],
        format!(r#"{{"errors":[{{"message":"key {KEY} is odd"}}]}}"#),
    ));
    let outcomes = cpo_delivery::MailSink::send(&sink, &emails(1)).await;
    let SendOutcome::Failed { reason } = &outcomes[0] else {
        panic!("{outcomes:?}")
    };
    assert!(
        !reason.contains(KEY) && reason.contains("<redacted>"),
        "{reason}"
    );

    let (_wrong_dir, wrong) = secret_file("SG.wrong");
    let addr = serve(
        axum::Router::new()
            .route("/v3/mail/send", post(mail_send))
            .with_state(fake.clone()),
    )
    .await;
    let unauthorized = SendGridSink::from_config(&SendGridConfig {
        endpoint: format!("http://{addr}"),
        api_key_file: Some(wrong),
        ..SendGridConfig::default()
    })
    .unwrap();
    let outcomes = cpo_delivery::MailSink::send(&unauthorized, &emails(1)).await;
    assert!(
        matches!(&outcomes[0], SendOutcome::Failed { reason } if reason.contains("401")),
        "{outcomes:?}"
    );

    let config = |edit: &dyn Fn(&mut SendGridConfig)| {
        let mut c = SendGridConfig {
            api_key_env: "CPO_TEST_NO_SUCH_SENDGRID_KEY".into(),
            ..SendGridConfig::default()
        };
        edit(&mut c);
        SendGridSink::from_config(&c).err().expect("refused")
    };
    let missing = config(&|_| {});
    assert_eq!(missing.key, "delivery.esp.sendgrid.api_key_file");
    assert!(
        missing.message.contains("CPO_TEST_NO_SUCH_SENDGRID_KEY"),
        "{missing}"
    );
    let unreadable = config(&|c| c.api_key_file = Some("/nonexistent/sendgrid.key".into()));
    assert!(
        unreadable
            .to_string()
            .contains("delivery.esp.sendgrid.api_key_file"),
        "{unreadable}"
    );
    let plain = config(&|c| c.endpoint = "http://api.sendgrid.com".into());
    assert_eq!(plain.key, "delivery.esp.sendgrid.endpoint");
    let batch = config(&|c| c.max_batch = 1001);
    assert_eq!(batch.key, "delivery.esp.sendgrid.max_batch");
}
