//! A local SendGrid v3 mail/send server that checks the documented wire format.
#![allow(dead_code)]

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use cpo_delivery::esp::{SendGridConfig, SendGridSink};
use serde_json::{Value, json};

use super::esp_support::*;

pub const KEY: &str = "SG.test-key-1234567890";

/// What one recipient of a call would receive.
#[derive(Debug)]
pub struct Rendered {
    pub to: String,
    pub name: Option<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub headers: serde_json::Map<String, Value>,
    pub message_id: String,
    pub reply_to: Option<String>,
}

pub struct Call {
    pub at: Instant,
    pub body: Value,
    pub rendered: Vec<Rendered>,
}

pub enum Answer {
    Status(u16, Vec<(&'static str, String)>, String),
    Slow(Duration),
}

#[derive(Default)]
pub struct Fake {
    pub calls: Mutex<Vec<Call>>,
    pub script: Mutex<VecDeque<Answer>>,
    pub bad_addresses: Mutex<HashSet<String>>,
}

impl Fake {
    pub fn script(&self, answer: Answer) {
        self.script.lock().unwrap().push_back(answer);
    }
    pub fn sizes(&self) -> Vec<usize> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.rendered.len())
            .collect()
    }
}

pub fn error(status: u16, field: &str, message: &str) -> Response {
    let body = json!({"errors": [{"field": field, "message": message}]}).to_string();
    (StatusCode::from_u16(status).unwrap(), body).into_response()
}

/// The documented constraints of POST /v3/mail/send, and what each
/// personalization renders to. Err is SendGrid's 400 error (field, message).
pub fn check(body: &Value) -> Result<Vec<Rendered>, (String, String)> {
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

pub async fn mail_send(State(fake): State<Arc<Fake>>, headers: HeaderMap, body: Bytes) -> Response {
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

pub async fn start() -> (Arc<Fake>, SendGridSink, tempfile::TempDir) {
    let (fake, sink, dir, _) = start_at().await;
    (fake, sink, dir)
}

pub async fn start_at() -> (
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
