//! Mailgun `POST /v3/{domain}/messages` (multipart/form-data, basic auth
//! `api:KEY`): one call per up to 1000 emails of the same sender, each
//! address once per call (recipient-variables are keyed by address). Fields
//! every email of the call shares go in as they are; fields that differ
//! (subject, text, html, List-Unsubscribe, ...) become `%recipient.KEY%`
//! with each recipient's value in `recipient-variables`, which also makes
//! Mailgun send each recipient a message of their own. `v:message_id`
//! carries our id into Mailgun's events (`user-variables.message_id`).
//!
//! 200 answers one `id` for the call: the provider id of each email is
//! `{id}/{message_id}`. A 400 for a call of several emails is sent again
//! in halves until the refused recipient is alone, so one bad address fails
//! only itself (at most `MAX_SPLITS` splits per send, then the rest fails).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Map, Value};
use tracing::debug;

use super::{EspError, batch, http};
use crate::sink::{MailSink, OutgoingEmail, SendOutcome};

const KEY: &str = "delivery.esp.mailgun";
/// Mailgun's limit of recipients per batch call.
const API_MAX_BATCH: usize = 1000;
/// Calls split in halves per `send` after a 400: enough to single out a few
/// bad addresses among 1000 (10 splits each), bounded for a 400 that every
/// call gets (a bad sender).
const MAX_SPLITS: usize = 32;

/// `delivery.esp.mailgun`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailgunConfig {
    /// API base URL (`https://api.eu.mailgun.net` for the EU region).
    pub endpoint: String,
    /// The sending domain as configured in Mailgun (`mg.example.com`).
    pub domain: String,
    /// A file holding the API key; else `api_key_env`.
    pub api_key_file: Option<PathBuf>,
    pub api_key_env: String,
    /// Emails per call, at most 1000.
    pub max_batch: usize,
    pub timeout_ms: u64,
    pub allow_insecure_http: bool,
}

impl Default for MailgunConfig {
    fn default() -> Self {
        Self {
            endpoint: "https://api.mailgun.net".into(),
            domain: String::new(),
            api_key_file: None,
            api_key_env: "MAILGUN_API_KEY".into(),
            max_batch: API_MAX_BATCH,
            timeout_ms: 30_000,
            allow_insecure_http: false,
        }
    }
}

pub struct MailgunSink {
    client: reqwest::Client,
    url: String,
    api_key: String,
    max_batch: usize,
}

impl MailgunSink {
    pub fn from_config(config: &MailgunConfig) -> Result<Self, EspError> {
        let endpoint = http::check_endpoint(
            &format!("{KEY}.endpoint"),
            &config.endpoint,
            config.allow_insecure_http,
        )?;
        let domain = config.domain.trim();
        let valid = !domain.is_empty()
            && domain.len() <= 253
            && domain.contains('.')
            && domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !valid {
            return Err(EspError::new(
                format!("{KEY}.domain"),
                format!("`{domain}` is not a sending domain (like mg.example.com)"),
            ));
        }
        if !(1..=API_MAX_BATCH).contains(&config.max_batch) {
            return Err(EspError::new(
                format!("{KEY}.max_batch"),
                format!("must be 1..={API_MAX_BATCH}, not {}", config.max_batch),
            ));
        }
        let api_key = http::secret(
            &format!("{KEY}.api_key_file"),
            config.api_key_file.as_deref(),
            &config.api_key_env,
            "Mailgun API key",
        )?;
        Ok(Self {
            client: http::client(KEY, config.timeout_ms)?,
            url: format!(
                "{}/v3/{domain}/messages",
                endpoint.as_str().trim_end_matches('/')
            ),
            api_key,
            max_batch: config.max_batch,
        })
    }

    /// One call; `Err(outcome)` is a 400 for several emails, which a
    /// smaller call may avoid (`outcome` is what they get if not tried again).
    async fn call(
        &self,
        emails: &[OutgoingEmail],
        indices: &[usize],
        outcomes: &mut [Option<SendOutcome>],
    ) -> Result<(), SendOutcome> {
        let (content_type, body) = multipart(&form(emails, indices));
        let response = match self
            .client
            .post(&self.url)
            .basic_auth("api", Some(&self.api_key))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
        {
            Ok(response) => response,
            Err(e) => {
                fill(outcomes, indices, &http::transport("mailgun", e));
                return Ok(());
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap_or_default();
        if status.is_success() {
            let id = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string))
                .map(|id| id.trim_start_matches('<').trim_end_matches('>').to_string());
            debug!(
                status = status.as_u16(),
                emails = indices.len(),
                "mailgun accepted"
            );
            for &i in indices {
                let ours = &emails[i].message_id;
                outcomes[i] = Some(SendOutcome::Sent {
                    provider_message_id: match &id {
                        Some(id) => format!("{id}/{ours}"),
                        None => ours.clone(),
                    },
                });
            }
            return Ok(());
        }
        let reason = http::scrubbed(&http::reason_of(&body), &self.api_key);
        let outcome = http::refused("mailgun", status, &headers, &reason, None);
        if status == reqwest::StatusCode::BAD_REQUEST && indices.len() > 1 {
            return Err(outcome);
        }
        fill(outcomes, indices, &outcome);
        Ok(())
    }
}

fn fill(outcomes: &mut [Option<SendOutcome>], indices: &[usize], outcome: &SendOutcome) {
    for &i in indices {
        outcomes[i] = Some(outcome.clone());
    }
}

/// The form fields of one call, in order (`to` repeats).
fn form(emails: &[OutgoingEmail], indices: &[usize]) -> Vec<(String, String)> {
    let first = &emails[indices[0]];
    let mut fields = vec![(
        "from".to_string(),
        http::display_address(first.from.name.as_deref(), &first.from.address),
    )];
    for &i in indices {
        let to = &emails[i].to;
        fields.push((
            "to".into(),
            http::display_address(to.name.as_deref(), &to.address),
        ));
    }
    let mut variables: Vec<Map<String, Value>> = vec![Map::new(); indices.len()];
    // A field that every email shares is sent as is, else per recipient.
    let mut field =
        |fields: &mut Vec<(String, String)>, name: String, var: &str, values: Vec<String>| {
            match batch::shared(values.iter().map(String::as_str)) {
                Some(value) => fields.push((name, value.to_string())),
                None => {
                    fields.push((name, format!("%recipient.{var}%")));
                    for (vars, value) in variables.iter_mut().zip(values) {
                        vars.insert(var.to_string(), Value::String(value));
                    }
                }
            }
        };
    let each = |get: &dyn Fn(&OutgoingEmail) -> String| -> Vec<String> {
        indices.iter().map(|&i| get(&emails[i])).collect()
    };
    field(
        &mut fields,
        "subject".into(),
        "subject",
        each(&|e| e.subject.clone()),
    );
    field(
        &mut fields,
        "text".into(),
        "text",
        each(&|e| e.text.clone()),
    );
    field(
        &mut fields,
        "html".into(),
        "html",
        each(&|e| e.html.clone()),
    );
    if let Some(reply_to) = &first.reply_to {
        fields.push((
            "h:Reply-To".into(),
            http::display_address(reply_to.name.as_deref(), &reply_to.address),
        ));
    }
    for (k, (name, _)) in first.headers.iter().enumerate() {
        let values = each(&|e| e.headers.get(k).map(|(_, v)| v.clone()).unwrap_or_default());
        field(
            &mut fields,
            format!("h:{name}"),
            &format!("header_{k}"),
            values,
        );
    }
    field(
        &mut fields,
        "h:Message-Id".into(),
        "rfc_message_id",
        each(&|e| format!("<{}>", e.rfc_message_id)),
    );
    field(
        &mut fields,
        "v:message_id".into(),
        "message_id",
        each(&|e| e.message_id.clone()),
    );
    field(
        &mut fields,
        "v:campaign_id".into(),
        "campaign_id",
        each(&|e| e.campaign_id.clone()),
    );
    let mut recipients = Map::new();
    for (&i, vars) in indices.iter().zip(variables) {
        recipients.insert(emails[i].to.address.clone(), Value::Object(vars));
    }
    fields.push((
        "recipient-variables".into(),
        Value::Object(recipients).to_string(),
    ));
    fields
}

/// multipart/form-data (RFC 7578): the content type with its boundary, and
/// the body. The boundary is chosen so that no value contains it.
fn multipart(fields: &[(String, String)]) -> (String, Vec<u8>) {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut seed = nanos ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(32);
    let boundary = loop {
        let candidate = format!("cpo-form-{seed:016x}");
        if !fields.iter().any(|(_, v)| v.contains(&candidate)) {
            break candidate;
        }
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    };
    let mut body = Vec::new();
    for (name, value) in fields {
        // Field names are quoted; a quote or line break in one is escaped
        // the way browsers do (%22, %0D, %0A).
        let name = name
            .replace('"', "%22")
            .replace('\r', "%0D")
            .replace('\n', "%0A");
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(value.as_bytes());
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[async_trait]
impl MailSink for MailgunSink {
    fn name(&self) -> &'static str {
        "mailgun"
    }

    fn max_batch(&self) -> usize {
        self.max_batch
    }

    async fn send(&self, emails: &[OutgoingEmail]) -> Vec<SendOutcome> {
        let mut outcomes: Vec<Option<SendOutcome>> = vec![None; emails.len()];
        let mut pending = batch::calls(emails, self.max_batch, true);
        pending.reverse();
        let mut splits = MAX_SPLITS;
        while let Some(call) = pending.pop() {
            if let Err(refused) = self.call(emails, &call, &mut outcomes).await {
                if splits == 0 {
                    // Refused whatever the size (a bad sender, say): stop
                    // splitting, these fail with Mailgun's reason.
                    fill(&mut outcomes, &call, &refused);
                    continue;
                }
                // Refused as a whole: halves, until the refused one is alone.
                splits -= 1;
                let (left, right) = call.split_at(call.len() / 2);
                pending.push(right.to_vec());
                pending.push(left.to_vec());
            }
        }
        outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or(SendOutcome::Retry {
                    after: None,
                    reason: "mailgun: not sent".into(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boundary_never_occurs_in_a_value() {
        let fields = vec![("text".to_string(), "a\r\nb".to_string())];
        let (content_type, body) = multipart(&fields);
        let boundary = content_type.rsplit_once("boundary=").unwrap().1;
        let body = String::from_utf8(body).unwrap();
        assert!(body.starts_with(&format!("--{boundary}\r\n")));
        assert!(body.ends_with(&format!("--{boundary}--\r\n")));
        assert!(body.contains("name=\"text\"\r\n\r\na\r\nb\r\n"));
    }

    proptest::proptest! {
        /// Whatever the values, the form splits back into exactly them.
        #[test]
        fn every_value_comes_back(values in proptest::collection::vec("\\PC*|cpo-form-[0-9a-f]{16}", 1..6)) {
            let fields: Vec<(String, String)> =
                values.iter().enumerate().map(|(i, v)| (format!("f{i}"), v.clone())).collect();
            let (content_type, body) = multipart(&fields);
            let boundary = content_type.rsplit_once("boundary=").unwrap().1.to_string();
            let body = String::from_utf8(body).unwrap();
            let inner = body
                .strip_prefix(&format!("--{boundary}\r\n"))
                .and_then(|b| b.strip_suffix(&format!("\r\n--{boundary}--\r\n")))
                .unwrap();
            let parts: Vec<&str> = inner.split(&format!("\r\n--{boundary}\r\n")).collect();
            proptest::prop_assert_eq!(parts.len(), fields.len());
            for (part, (name, value)) in parts.iter().zip(&fields) {
                let expected = format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}");
                proptest::prop_assert_eq!(*part, expected.as_str());
            }
        }
    }
}
