//! MailgunSink against a local server that checks each request against
//! Mailgun's documented messages API (basic auth `api:KEY`, the domain in
//! the path, multipart/form-data fields, at most 1000 recipients, batch
//! sending only with recipient-variables), renders `%recipient.x%` for each
//! recipient, and answers 200 / 429 / 5xx / 4xx.

mod esp_support;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use cpo_delivery::esp::{MailgunConfig, MailgunSink};
use cpo_delivery::{MailSink, SendOutcome};
use esp_support::*;
use serde_json::{Value, json};

const KEY: &str = "key-mailgun-test-0123456789";
const DOMAIN: &str = "mg.brand.example";

/// What one recipient of a call would receive: every field, rendered.
#[derive(Debug)]
struct Rendered {
    to: String,
    fields: HashMap<String, String>,
}

struct Call {
    at: Instant,
    rendered: Vec<Rendered>,
}

/// A scripted answer: status, extra headers, body.
type Scripted = (u16, Vec<(&'static str, String)>, String);

#[derive(Default)]
struct Fake {
    calls: Mutex<Vec<Call>>,
    script: Mutex<VecDeque<Scripted>>,
    bad_addresses: Mutex<HashSet<String>>,
}

impl Fake {
    fn sizes(&self) -> Vec<usize> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.rendered.len())
            .collect()
    }
}

fn message(status: u16, text: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        json!({"message": text}).to_string(),
    )
        .into_response()
}

/// RFC 7578 multipart/form-data, strictly: CRLF lines, a boundary from
/// the content type, `Content-Disposition: form-data; name="..."`.
fn parse_form(content_type: &str, body: &[u8]) -> Result<Vec<(String, String)>, String> {
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

fn bare(address: &str) -> String {
    match address.rsplit_once('<') {
        Some((_, rest)) => rest.trim_end_matches('>').to_string(),
        None => address.to_string(),
    }
}

async fn messages(
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
    if get("from").is_none() {
        return message(400, "'from' parameter is missing");
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

async fn start() -> (Arc<Fake>, MailgunSink, tempfile::TempDir) {
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

#[tokio::test]
async fn batches_with_recipient_variables_and_our_message_id() {
    let (fake, sink, _dir) = start().await;
    let emails = emails(1_500);
    let outcomes = sink.send(&emails).await;
    assert_eq!(fake.sizes(), vec![1000, 500]);
    {
        let calls = fake.calls.lock().unwrap();
        for (call_no, call) in calls.iter().enumerate() {
            for r in &call.rendered {
                let i: usize =
                    r.to.trim_start_matches('c')
                        .trim_end_matches("@example.com")
                        .parse()
                        .unwrap();
                let e = &emails[i];
                let f = |name: &str| {
                    r.fields
                        .get(name)
                        .map(String::as_str)
                        .unwrap_or("(missing)")
                };
                assert_eq!(f("subject"), e.subject);
                assert_eq!(f("text"), e.text);
                assert_eq!(f("html"), e.html);
                assert_eq!(f("v:message_id"), e.message_id);
                assert_eq!(f("v:campaign_id"), "camp-autumn");
                assert_eq!(f("h:List-Unsubscribe"), e.headers[0].1);
                assert_eq!(f("h:List-Unsubscribe-Post"), "List-Unsubscribe=One-Click");
                assert_eq!(f("h:Message-Id"), format!("<{}>", e.rfc_message_id));
                assert_eq!(f("h:Reply-To"), "help@brand.example");
                assert_eq!(f("from"), "\"Brand Café\" <news@brand.example>");
                assert_eq!(
                    sent_id(&outcomes[i]),
                    format!("20261206.{}.cpo@{DOMAIN}/{}", call_no + 1, e.message_id)
                );
            }
        }
    }

    // An address twice: recipient-variables are keyed by address, so the
    // second goes in a call of its own.
    let mut twice = esp_support::emails(3);
    twice[2].to.address = twice[0].to.address.clone();
    let outcomes = sink.send(&twice).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, SendOutcome::Sent { .. }))
    );
    assert_eq!(&fake.sizes()[2..], &[2, 1]);
    let calls = fake.calls.lock().unwrap();
    assert_eq!(
        calls[3].rendered[0].fields["v:message_id"],
        twice[2].message_id
    );
    assert_eq!(calls[3].rendered[0].fields["subject"], twice[2].subject);
}

#[tokio::test]
async fn too_many_requests_and_server_errors_wait_and_retry() {
    let (fake, sink, _dir) = start().await;
    fake.script.lock().unwrap().push_back((
        429,
        vec![("retry-after", "1".into())],
        "{\"message\":\"slow down\"}".into(),
    ));
    let first = sink.send(&emails(2)).await;
    assert!(
        first.iter().all(|o| matches!(o, SendOutcome::Retry { after: Some(d), reason } if *d == Duration::from_secs(1) && reason.contains("slow down"))),
        "{first:?}"
    );
    fake.script
        .lock()
        .unwrap()
        .push_back((429, vec![("retry-after", "1".into())], String::new()));
    fake.script
        .lock()
        .unwrap()
        .push_back((502, vec![], "bad gateway".into()));
    let (outcomes, _) = send_until_settled(&sink, &emails(2), 5).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, SendOutcome::Sent { .. })),
        "{outcomes:?}"
    );
    let calls = fake.calls.lock().unwrap();
    assert_eq!(calls.len(), 4);
    let gap = calls[2].at - calls[1].at;
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
}

#[tokio::test]
async fn one_bad_address_fails_alone() {
    let (fake, sink, _dir) = start().await;
    fake.bad_addresses
        .lock()
        .unwrap()
        .insert("c5@example.com".into());
    let outcomes = sink.send(&emails(8)).await;
    for (i, o) in outcomes.iter().enumerate() {
        if i == 5 {
            assert!(
                matches!(o, SendOutcome::Failed { reason } if reason.contains("400") && reason.contains("not a valid address")),
                "{o:?}"
            );
        } else {
            assert!(matches!(o, SendOutcome::Sent { .. }), "{i}: {o:?}");
        }
    }
    // Halves until the refused one is alone.
    assert_eq!(fake.sizes(), vec![8, 4, 4, 2, 1, 1, 2]);
}

#[tokio::test]
async fn other_client_errors_fail_and_config_is_checked_at_start() {
    let fake = Arc::new(Fake::default());
    let router = axum::Router::new()
        .route("/v3/{domain}/messages", post(messages))
        .with_state(fake.clone());
    let addr = serve(router).await;
    let (_dir, key_file) = secret_file(KEY);
    let wrong_domain = MailgunSink::from_config(&MailgunConfig {
        endpoint: format!("http://{addr}"),
        domain: "other.example".into(),
        api_key_file: Some(key_file.clone()),
        ..MailgunConfig::default()
    })
    .unwrap();
    let outcomes = wrong_domain.send(&emails(2)).await;
    assert!(
        outcomes.iter().all(|o| matches!(o, SendOutcome::Failed { reason } if reason.contains("404") && reason.contains("Domain not found"))),
        "{outcomes:?}"
    );
    let (_wrong_dir, wrong_key) = secret_file("key-wrong");
    let unauthorized = MailgunSink::from_config(&MailgunConfig {
        endpoint: format!("http://{addr}"),
        domain: DOMAIN.into(),
        api_key_file: Some(wrong_key),
        ..MailgunConfig::default()
    })
    .unwrap();
    assert!(
        matches!(&unauthorized.send(&emails(1)).await[0], SendOutcome::Failed { reason } if reason.contains("401"))
    );
    let dead = MailgunSink::from_config(&MailgunConfig {
        endpoint: format!("http://127.0.0.1:{}", closed_port()),
        domain: DOMAIN.into(),
        api_key_file: Some(key_file.clone()),
        ..MailgunConfig::default()
    })
    .unwrap();
    assert!(matches!(
        &dead.send(&emails(1)).await[0],
        SendOutcome::Retry { .. }
    ));

    let refused = |edit: &dyn Fn(&mut MailgunConfig)| {
        let mut c = MailgunConfig {
            domain: DOMAIN.into(),
            api_key_env: "CPO_TEST_NO_SUCH_MAILGUN_KEY".into(),
            ..MailgunConfig::default()
        };
        edit(&mut c);
        MailgunSink::from_config(&c).err().expect("refused")
    };
    let missing = refused(&|_| {});
    assert_eq!(missing.key, "delivery.esp.mailgun.api_key_file");
    assert!(
        missing.message.contains("CPO_TEST_NO_SUCH_MAILGUN_KEY"),
        "{missing}"
    );
    assert_eq!(
        refused(&|c| c.domain = String::new()).key,
        "delivery.esp.mailgun.domain"
    );
    assert_eq!(
        refused(&|c| c.domain = "mg.example.com/../x".into()).key,
        "delivery.esp.mailgun.domain"
    );
    assert_eq!(
        refused(&|c| c.endpoint = "ftp://api.mailgun.net".into()).key,
        "delivery.esp.mailgun.endpoint"
    );
    assert_eq!(
        refused(&|c| c.max_batch = 0).key,
        "delivery.esp.mailgun.max_batch"
    );
}
