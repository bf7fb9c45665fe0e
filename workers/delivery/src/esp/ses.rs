//! Amazon SES v2 `SendEmail` (`POST /v2/email/outbound-emails`), one call
//! per email (a few in flight at once), the message as `Content.Raw`
//! (`OutgoingEmail::to_mime`, so SES sends exactly our headers and parts),
//! signed with SigV4 (service `ses`). `EmailTags` carry our `message_id`
//! (and the campaign) so SES's event notifications (`mail.tags`) map back;
//! the answer's `MessageId` is the provider id, the same id those events
//! carry as `mail.messageId`.
//!
//! Credentials: `credentials_file` (AWS's shared credentials format, the
//! `profile` section) or else `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`
//! and `AWS_SESSION_TOKEN`. `endpoint` defaults to the region's
//! (`https://email.{region}.amazonaws.com`); tests point it at moto.

use std::path::PathBuf;
use std::time::SystemTime;

use async_trait::async_trait;
use base64::Engine;
use futures_util::StreamExt;
use futures_util::future::{BoxFuture, FutureExt};
use serde::Deserialize;
use serde_json::{Value, json};

use super::aws_credentials;
use super::sigv4::{self, Credentials};
use super::{EspError, http};
use crate::sink::{MailSink, OutgoingEmail, SendOutcome};

const KEY: &str = "delivery.esp.ses";
const PATH: &str = "/v2/email/outbound-emails";

/// `delivery.esp.ses`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SesConfig {
    /// `eu-west-1`, ...; else `AWS_REGION` or `AWS_DEFAULT_REGION`.
    pub region: Option<String>,
    /// Default `https://email.{region}.amazonaws.com`.
    pub endpoint: Option<String>,
    /// AWS shared credentials file; else the `AWS_*` environment variables.
    pub credentials_file: Option<PathBuf>,
    /// Section of `credentials_file`.
    pub profile: String,
    /// SES configuration set (event destinations for bounces, opens, ...).
    pub configuration_set: Option<String>,
    /// SendEmail calls in flight at once per `send`.
    pub concurrency: usize,
    /// Emails per `send`.
    pub max_batch: usize,
    pub timeout_ms: u64,
    pub allow_insecure_http: bool,
}

impl Default for SesConfig {
    fn default() -> Self {
        Self {
            region: None,
            endpoint: None,
            credentials_file: None,
            profile: "default".into(),
            configuration_set: None,
            concurrency: 8,
            max_batch: 50,
            timeout_ms: 30_000,
            allow_insecure_http: false,
        }
    }
}

pub struct SesSink {
    client: reqwest::Client,
    url: String,
    host: String,
    region: String,
    credentials: Credentials,
    configuration_set: Option<String>,
    concurrency: usize,
    max_batch: usize,
}

impl SesSink {
    pub fn from_config(config: &SesConfig) -> Result<Self, EspError> {
        let region = config
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
            .ok_or_else(|| {
                EspError::new(
                    format!("{KEY}.region"),
                    "no region: set it or AWS_REGION / AWS_DEFAULT_REGION",
                )
            })?;
        if !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(EspError::new(
                format!("{KEY}.region"),
                format!("`{region}` is not an AWS region (like eu-west-1)"),
            ));
        }
        let endpoint = config
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://email.{region}.amazonaws.com"));
        let endpoint = http::check_endpoint(
            &format!("{KEY}.endpoint"),
            &endpoint,
            config.allow_insecure_http,
        )?;
        let host = match (endpoint.host_str(), endpoint.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_string(),
            (None, _) => return Err(EspError::new(format!("{KEY}.endpoint"), "has no host")),
        };
        for (key, value) in [
            ("concurrency", config.concurrency),
            ("max_batch", config.max_batch),
        ] {
            if value == 0 {
                return Err(EspError::new(format!("{KEY}.{key}"), "must be at least 1"));
            }
        }
        let credentials = match &config.credentials_file {
            Some(path) => aws_credentials::from_file(path, &config.profile)?,
            None => aws_credentials::from_env()?,
        };
        Ok(Self {
            client: http::client(KEY, config.timeout_ms)?,
            url: format!("{}{PATH}", endpoint.as_str().trim_end_matches('/')),
            host,
            region,
            credentials,
            configuration_set: config.configuration_set.clone(),
            concurrency: config.concurrency,
            max_batch: config.max_batch,
        })
    }

    async fn send_one(&self, email: &OutgoingEmail) -> SendOutcome {
        let body = match request_body(email, self.configuration_set.as_deref(), SystemTime::now()) {
            Ok(body) => body,
            Err(reason) => return SendOutcome::Failed { reason },
        };
        let signed = sigv4::sign(
            &sigv4::Request {
                method: "POST",
                path: PATH,
                query: &[],
                headers: &[("host", &self.host), ("content-type", "application/json")],
                body: &body,
            },
            &self.credentials,
            &self.region,
            "ses",
            SystemTime::now(),
        );
        let mut builder = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in signed {
            builder = builder.header(name, value);
        }
        let response = match builder.body(body).send().await {
            Ok(response) => response,
            Err(e) => return http::transport("ses", e),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap_or_default();
        let json = serde_json::from_slice::<Value>(&body).ok();
        if status.is_success() {
            return match json
                .as_ref()
                .and_then(|j| j.get("MessageId"))
                .and_then(Value::as_str)
            {
                Some(id) => SendOutcome::Sent {
                    provider_message_id: id.to_string(),
                },
                // Accepted without an id: sent, but unmappable; keep ours.
                None => SendOutcome::Sent {
                    provider_message_id: email.message_id.clone(),
                },
            };
        }
        let error_type = headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(|t| t.split(':').next().unwrap_or(t).to_string())
            .or_else(|| {
                json.as_ref()
                    .and_then(|j| j.get("__type"))
                    .and_then(Value::as_str)
                    .map(|t| t.rsplit('#').next().unwrap_or(t).to_string())
            })
            .unwrap_or_default();
        let secret = &self.credentials.secret_access_key;
        let detail = http::scrubbed(&http::reason_of(&body), secret);
        let reason = if error_type.is_empty() {
            detail
        } else {
            format!("{error_type}: {detail}")
        };
        // SES reports throttling (the sending rate, the daily quota) as a 400 too.
        let throttled = matches!(
            error_type.as_str(),
            "Throttling" | "ThrottlingException" | "TooManyRequestsException"
        );
        if throttled && status != reqwest::StatusCode::TOO_MANY_REQUESTS {
            return SendOutcome::Retry {
                after: http::retry_after(&headers, SystemTime::now()),
                reason: format!("ses http {}: {reason}", status.as_u16()),
            };
        }
        http::refused("ses", status, &headers, &reason, None)
    }
}

/// The SendEmail request: the raw MIME message, the envelope addresses and
/// the tags that map SES's events back to our message. An email that cannot
/// be formatted (a bad address) is an error, permanent.
fn request_body(
    email: &OutgoingEmail,
    configuration_set: Option<&str>,
    date: SystemTime,
) -> Result<Vec<u8>, String> {
    let mime = email.to_mime(date)?;
    let mut tags = vec![json!({"Name": "message_id", "Value": tag_value(&email.message_id)})];
    if !email.campaign_id.is_empty() {
        tags.push(json!({"Name": "campaign_id", "Value": tag_value(&email.campaign_id)}));
    }
    let mut request = json!({
        "FromEmailAddress": email.from.address,
        "Destination": {"ToAddresses": [email.to.address]},
        "Content": {"Raw": {"Data": base64::engine::general_purpose::STANDARD.encode(mime)}},
        "EmailTags": tags,
    });
    if let Some(set) = configuration_set {
        request["ConfigurationSetName"] = Value::String(set.to_string());
    }
    Ok(request.to_string().into_bytes())
}

/// Tag values allow ASCII letters, digits, `_` and `-` only (256 at most).
fn tag_value(value: &str) -> String {
    value
        .chars()
        .take(256)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[async_trait]
impl MailSink for SesSink {
    fn name(&self) -> &'static str {
        "ses"
    }

    fn max_batch(&self) -> usize {
        self.max_batch
    }

    async fn send(&self, emails: &[OutgoingEmail]) -> Vec<SendOutcome> {
        // Boxed first: a closure returning the future trips the
        // higher-ranked lifetime check of `async_trait`'s Send bound.
        let calls: Vec<BoxFuture<'_, SendOutcome>> = emails
            .iter()
            .map(|email| self.send_one(email).boxed())
            .collect();
        // `buffered` keeps the outcomes in the order of the emails.
        futures_util::stream::iter(calls)
            .buffered(self.concurrency)
            .collect()
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_carries_raw_mime_and_our_ids_as_tags() {
        let email = crate::OutgoingEmail {
            message_id: "msg-abc".into(),
            campaign_id: "autumn 2026".into(),
            customer_id: "C1".into(),
            from: crate::Mailbox {
                name: None,
                address: "news@brand.example".into(),
            },
            reply_to: None,
            to: crate::Mailbox {
                name: None,
                address: "ada@example.com".into(),
            },
            subject: "Hi".into(),
            text: "t".into(),
            html: "<p>h</p>".into(),
            rfc_message_id: "msg-abc@brand.example".into(),
            headers: vec![],
        };
        let body = request_body(&email, Some("cpo-events"), SystemTime::UNIX_EPOCH).unwrap();
        let json: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            json["EmailTags"],
            json!([{"Name": "message_id", "Value": "msg-abc"}, {"Name": "campaign_id", "Value": "autumn_2026"}])
        );
        assert_eq!(json["ConfigurationSetName"], "cpo-events");
        assert_eq!(
            json["Destination"]["ToAddresses"],
            json!(["ada@example.com"])
        );
        let raw = base64::engine::general_purpose::STANDARD
            .decode(json["Content"]["Raw"]["Data"].as_str().unwrap())
            .unwrap();
        assert!(
            String::from_utf8(raw)
                .unwrap()
                .contains("Message-ID: <msg-abc@brand.example>")
        );
        let mut bad = email.clone();
        bad.to.address = "not an address".into();
        assert!(
            request_body(&bad, None, SystemTime::UNIX_EPOCH)
                .unwrap_err()
                .contains("To")
        );
    }

    #[test]
    fn tag_values_keep_only_allowed_characters() {
        assert_eq!(tag_value("msg-0a1B_c"), "msg-0a1B_c");
        assert_eq!(tag_value("autumn 2026/été"), "autumn_2026__t_");
    }
}
