//! A local Mailgun messages API server that checks the documented form fields.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use cpo_delivery::esp::{MailgunConfig, MailgunSink};
use serde_json::{Value, json};

use super::esp_support::*;

pub const KEY: &str = "key-mailgun-test-0123456789";
pub const DOMAIN: &str = "mg.brand.example";

/// What one recipient of a call would receive: every field, rendered.
#[derive(Debug)]
pub struct Rendered {
    pub to: String,
    pub fields: HashMap<String, String>,
}

pub struct Call {
    pub at: Instant,
    pub rendered: Vec<Rendered>,
}

/// A scripted answer: status, extra headers, body.
pub type Scripted = (u16, Vec<(&'static str, String)>, String);

#[derive(Default)]
pub struct Fake {
    pub calls: Mutex<Vec<Call>>,
    pub script: Mutex<VecDeque<Scripted>>,
    pub bad_addresses: Mutex<HashSet<String>>,
}

impl Fake {
    pub fn sizes(&self) -> Vec<usize> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.rendered.len())
            .collect()
    }
}

pub fn message(status: u16, text: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        json!({"message": text}).to_string(),
    )
        .into_response()
}

/// RFC 7578 multipart/form-data, strictly: CRLF lines, a boundary from
/// the content type, `Content-Disposition: form-data; name="..."`.
pub fn parse_form(content_type: &str, body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .ok_or("content type must be multipart/form-data with a boundary")?;
    let body = std::str::from_utf8(body).map_err(|_| "body must be UTF-8")?;
    let delimiter = format!("--{boundary}");
    let rest = body
        .strip_prefix(&format!("{delimiter}\r\n"))
        .ok_or("body must start with the boundary")?;
    let rest = rest
        .strip_suffix(&format!("{delimiter}--\r\n"))
        .ok_or("body must end with the closing boundary")?;
    let mut fields = Vec::new();
    for part in rest.split(&format!("\r\n{delimiter}\r\n")) {
        let part = part.strip_suffix("\r\n").unwrap_or(part);
        let (head, value) = part
            .split_once("\r\n\r\n")
            .ok_or("a part needs headers and a value")?;
        let name = head
            .strip_prefix("Content-Disposition: form-data; name=\"")
            .and_then(|h| h.strip_suffix('"'))
            .ok_or_else(|| format!("bad part header `{head}`"))?;
        fields.push((name.to_string(), value.to_string()));
    }
    Ok(fields)
}

pub fn bare(address: &str) -> String {
    match address.rsplit_once('<') {
        Some((_, rest)) => rest.trim_end_matches('>').to_string(),
        None => address.to_string(),
    }
}

pub async fn messages(
    State(fake): State<Arc<Fake>>,
    Path(domain): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("api:{KEY}"))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(basic.as_str()) {
        return (StatusCode::UNAUTHORIZED, "Forbidden").into_response();
    }
    if domain != DOMAIN {
        return message(404, "Domain not found");
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let fields = match parse_form(content_type, &body) {
        Ok(fields) => fields,
        Err(e) => return message(400, &e),
    };
    let get = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let to: Vec<String> = fields
        .iter()
        .filter(|(n, _)| n == "to")
        .map(|(_, v)| bare(v))
        .collect();
    match get("from") {
        None => return message(400, "'from' parameter is missing"),
        Some(from) if from.contains(".invalid") => {
            fake.calls.lock().unwrap().push(Call {
                at: Instant::now(),
                rendered: Vec::new(),
            });
            return message(
                400,
                "'from' parameter is not a valid address. please check documentation",
            );
        }
        Some(_) => {}
    }
    if to.is_empty() || to.len() > 1000 {
        return message(400, "'to' parameter must hold 1 to 1000 recipients");
    }
    if get("text").is_none() && get("html").is_none() {
        return message(
            400,
            "Need at least one of 'text' or 'html' parameters specified",
        );
    }
    let Some(variables) =
        get("recipient-variables").and_then(|v| serde_json::from_str::<Value>(&v).ok())
    else {
        return message(
            400,
            "batch sending needs recipient-variables (else every recipient sees all others)",
        );
    };
    let mut rendered = Vec::new();
    for address in &to {
        let Some(vars) = variables.get(address).and_then(Value::as_object) else {
            return message(400, &format!("recipient-variables lack {address}"));
        };
        let render = |value: &str| {
            vars.iter().fold(value.to_string(), |acc, (k, v)| {
                acc.replace(&format!("%recipient.{k}%"), v.as_str().unwrap_or(""))
            })
        };
        let mut mine = HashMap::new();
        for (name, value) in &fields {
            if name != "to" && name != "recipient-variables" {
                mine.insert(name.clone(), render(value));
            }
        }
        rendered.push(Rendered {
            to: address.clone(),
            fields: mine,
        });
    }
    let refused = {
        let bad = fake.bad_addresses.lock().unwrap();
        to.iter().any(|a| bad.contains(a))
    };
    let n = {
        let mut calls = fake.calls.lock().unwrap();
        calls.push(Call {
            at: Instant::now(),
            rendered,
        });
        calls.len()
    };
    if refused {
        return message(
            400,
            "'to' parameter is not a valid address. please check documentation",
        );
    }
    if let Some((code, extra, body)) = fake.script.lock().unwrap().pop_front() {
        let mut response = (StatusCode::from_u16(code).unwrap(), body).into_response();
        for (name, value) in extra {
            response.headers_mut().insert(name, value.parse().unwrap());
        }
        return response;
    }
    let id = format!("<20261206.{n}.cpo@{DOMAIN}>");
    (
        StatusCode::OK,
        json!({"id": id, "message": "Queued. Thank you."}).to_string(),
    )
        .into_response()
}

pub async fn start() -> (Arc<Fake>, MailgunSink, tempfile::TempDir) {
    let fake = Arc::new(Fake::default());
    let router = axum::Router::new()
        .route("/v3/{domain}/messages", post(messages))
        .with_state(fake.clone());
    let addr = serve(router).await;
    let (dir, key_file) = secret_file(KEY);
    let sink = MailgunSink::from_config(&MailgunConfig {
        endpoint: format!("http://{addr}"),
        domain: DOMAIN.into(),
        api_key_file: Some(key_file),
        timeout_ms: 2_000,
        ..MailgunConfig::default()
    })
    .expect("sink builds");
    (fake, sink, dir)
}
