//! SendGrid v3 `POST /v3/mail/send`: one call per up to 1000 emails of the
//! same sender, one personalization per email (its `to`, `subject`,
//! `headers` with List-Unsubscribe and the Message-ID, and `custom_args`
//! with our `message_id`, which SendGrid's event webhook echoes). Text and
//! HTML shared by every email of a call go in `content` as they are; parts
//! that differ go in as substitution tags with each personalization's
//! `substitutions` carrying its own part. An email too large for the
//! 10,000-byte substitution limit goes in a call of its own.
//!
//! 202 answers `X-Message-Id`, the same for the whole call: the provider id
//! of each email is `{X-Message-Id}/{message_id}` (SendGrid's
//! `sg_message_id` in events starts with the part before the slash). A 400
//! whose errors name personalizations fails those emails only, and the rest
//! of the call is sent again without them.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tracing::debug;

use super::{EspError, batch, http};
use crate::sink::{MailSink, Mailbox, OutgoingEmail, SendOutcome};

const KEY: &str = "delivery.esp.sendgrid";
/// The API's limit of personalizations per request.
const API_MAX_BATCH: usize = 1000;
/// SendGrid's limit on one personalization's substitutions, with room for the tags.
const SUBSTITUTION_BUDGET: usize = 9_900;
const TEXT_TAG: &str = "%cpo_text_part%";
const HTML_TAG: &str = "%cpo_html_part%";
/// Rounds of "send the rest again without the refused personalizations".
const MAX_ROUNDS: usize = 8;

/// `delivery.esp.sendgrid`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SendGridConfig {
    /// API base URL (`https://api.eu.sendgrid.com` for EU data residency).
    pub endpoint: String,
    /// A file holding the API key (a mounted secret); else `api_key_env`.
    pub api_key_file: Option<PathBuf>,
    /// The environment variable holding the API key.
    pub api_key_env: String,
    /// Emails per call, at most 1000.
    pub max_batch: usize,
    pub timeout_ms: u64,
    /// Plain http to a host other than loopback (never in production).
    pub allow_insecure_http: bool,
}

impl Default for SendGridConfig {
    fn default() -> Self {
        Self {
            endpoint: "https://api.sendgrid.com".into(),
            api_key_file: None,
            api_key_env: "SENDGRID_API_KEY".into(),
            max_batch: API_MAX_BATCH,
            timeout_ms: 30_000,
            allow_insecure_http: false,
        }
    }
}

pub struct SendGridSink {
    client: reqwest::Client,
    url: String,
    api_key: String,
    max_batch: usize,
}

impl SendGridSink {
    pub fn from_config(config: &SendGridConfig) -> Result<Self, EspError> {
        let endpoint = http::check_endpoint(
            &format!("{KEY}.endpoint"),
            &config.endpoint,
            config.allow_insecure_http,
        )?;
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
            "SendGrid API key",
        )?;
        Ok(Self {
            client: http::client(KEY, config.timeout_ms)?,
            url: format!("{}/v3/mail/send", endpoint.as_str().trim_end_matches('/')),
            api_key,
            max_batch: config.max_batch,
        })
    }

    /// Sends `indices` of `emails` as one call (then again without the
    /// personalizations a 400 named) and writes their outcomes.
    async fn send_call(
        &self,
        emails: &[OutgoingEmail],
        mut indices: Vec<usize>,
        outcomes: &mut [Option<SendOutcome>],
    ) {
        for _ in 0..MAX_ROUNDS {
            let body = request(emails, &indices);
            let response = match self
                .client
                .post(&self.url)
                .bearer_auth(&self.api_key)
                .json(&body)
                .send()
                .await
            {
                Ok(response) => response,
                Err(e) => return fill(outcomes, &indices, &http::transport("sendgrid", e)),
            };
            let status = response.status();
            let headers = response.headers().clone();
            if status.is_success() {
                let batch_id = headers
                    .get("x-message-id")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                debug!(
                    status = status.as_u16(),
                    emails = indices.len(),
                    "sendgrid accepted"
                );
                for &i in &indices {
                    let id = &emails[i].message_id;
                    outcomes[i] = Some(SendOutcome::Sent {
                        provider_message_id: match &batch_id {
                            Some(batch_id) => format!("{batch_id}/{id}"),
                            None => id.clone(),
                        },
                    });
                }
                return;
            }
            let body = response.bytes().await.unwrap_or_default();
            if status == reqwest::StatusCode::BAD_REQUEST && indices.len() > 1 {
                let refused = refused_personalizations(&body, indices.len());
                if !refused.is_empty() {
                    let mut rest = Vec::new();
                    for (position, &i) in indices.iter().enumerate() {
                        match refused.iter().find(|(p, _)| *p == position) {
                            Some((_, reason)) => {
                                outcomes[i] = Some(SendOutcome::Failed {
                                    reason: format!(
                                        "sendgrid http 400: {}",
                                        http::scrubbed(reason, &self.api_key)
                                    ),
                                });
                            }
                            None => rest.push(i),
                        }
                    }
                    indices = rest;
                    if indices.is_empty() {
                        return;
                    }
                    continue;
                }
            }
            let reason = http::scrubbed(&http::reason_of(&body), &self.api_key);
            let outcome =
                http::refused("sendgrid", status, &headers, &reason, rate_reset(&headers));
            return fill(outcomes, &indices, &outcome);
        }
        let outcome = SendOutcome::Retry {
            after: None,
            reason: "sendgrid: refused for other recipients of the same call".into(),
        };
        fill(outcomes, &indices, &outcome);
    }
}

fn fill(outcomes: &mut [Option<SendOutcome>], indices: &[usize], outcome: &SendOutcome) {
    for &i in indices {
        outcomes[i] = Some(outcome.clone());
    }
}

/// The request body for `indices` of `emails` (same sender, see `batch::calls`).
fn request(emails: &[OutgoingEmail], indices: &[usize]) -> Value {
    let first = &emails[indices[0]];
    let text = batch::shared(indices.iter().map(|&i| emails[i].text.as_str()));
    let html = batch::shared(indices.iter().map(|&i| emails[i].html.as_str()));
    let personalizations: Vec<Value> = indices
        .iter()
        .map(|&i| {
            let email = &emails[i];
            let mut headers = Map::new();
            for (name, value) in &email.headers {
                headers.insert(name.clone(), Value::String(value.clone()));
            }
            headers.insert(
                "Message-ID".into(),
                Value::String(format!("<{}>", email.rfc_message_id)),
            );
            let mut personalization = json!({
                "to": [address(&email.to)],
                "subject": email.subject,
                "headers": headers,
                "custom_args": {
                    "message_id": email.message_id,
                    "campaign_id": email.campaign_id,
                },
            });
            let mut substitutions = Map::new();
            if text.is_none() {
                substitutions.insert(TEXT_TAG.into(), Value::String(email.text.clone()));
            }
            if html.is_none() {
                substitutions.insert(HTML_TAG.into(), Value::String(email.html.clone()));
            }
            if !substitutions.is_empty() {
                personalization["substitutions"] = Value::Object(substitutions);
            }
            personalization
        })
        .collect();
    let mut body = json!({
        "personalizations": personalizations,
        "from": address(&first.from),
        "content": [
            {"type": "text/plain", "value": text.unwrap_or(TEXT_TAG)},
            {"type": "text/html", "value": html.unwrap_or(HTML_TAG)},
        ],
    });
    if let Some(reply_to) = &first.reply_to {
        body["reply_to"] = address(reply_to);
    }
    body
}

fn address(mailbox: &Mailbox) -> Value {
    match mailbox.name.as_deref().filter(|n| !n.trim().is_empty()) {
        Some(name) => json!({"email": mailbox.address, "name": name}),
        None => json!({"email": mailbox.address}),
    }
}

/// `(position, message)` of each error whose `field` names a
/// personalization (`personalizations.3.to.0.email`); empty when any error
/// concerns the whole request (then the whole call fails).
fn refused_personalizations(body: &[u8], count: usize) -> Vec<(usize, String)> {
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let Some(errors) = json.get("errors").and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut refused = Vec::new();
    for error in errors {
        let field = error.get("field").and_then(Value::as_str).unwrap_or("");
        let position = field
            .strip_prefix("personalizations.")
            .and_then(|rest| rest.split('.').next())
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&p| p < count);
        let Some(position) = position else {
            return Vec::new();
        };
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("refused");
        refused.push((position, format!("{field}: {message}")));
    }
    refused
}

/// SendGrid's `X-RateLimit-Reset` (Unix seconds), when a 429 has no Retry-After.
fn rate_reset(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let reset: u64 = headers
        .get("x-ratelimit-reset")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(reset.saturating_sub(now)).min(http::MAX_WAIT))
}

#[async_trait]
impl MailSink for SendGridSink {
    fn name(&self) -> &'static str {
        "sendgrid"
    }

    fn max_batch(&self) -> usize {
        self.max_batch
    }

    async fn send(&self, emails: &[OutgoingEmail]) -> Vec<SendOutcome> {
        let mut outcomes: Vec<Option<SendOutcome>> = vec![None; emails.len()];
        for call in batch::calls(emails, self.max_batch, false) {
            let (alone, together): (Vec<usize>, Vec<usize>) = call
                .into_iter()
                .partition(|&i| emails[i].text.len() + emails[i].html.len() > SUBSTITUTION_BUDGET);
            if !together.is_empty() {
                self.send_call(emails, together, &mut outcomes).await;
            }
            for i in alone {
                self.send_call(emails, vec![i], &mut outcomes).await;
            }
        }
        outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or(SendOutcome::Retry {
                    after: None,
                    reason: "sendgrid: not sent".into(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_naming_personalizations_refuse_only_those() {
        let body = br#"{"errors":[{"message":"Does not contain a valid address.","field":"personalizations.1.to.0.email"}]}"#;
        assert_eq!(
            refused_personalizations(body, 3),
            vec![(
                1,
                "personalizations.1.to.0.email: Does not contain a valid address.".to_string()
            )]
        );
        let whole = br#"{"errors":[{"message":"bad from","field":"from.email"}]}"#;
        assert!(refused_personalizations(whole, 3).is_empty());
        let beyond = br#"{"errors":[{"message":"x","field":"personalizations.9.to"}]}"#;
        assert!(refused_personalizations(beyond, 3).is_empty());
    }
}
