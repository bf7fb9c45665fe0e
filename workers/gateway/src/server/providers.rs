//! The webhook routes: size and media type, signature, parse, publish.
//! Every item of a body is parsed before anything is published, so a request
//! is taken whole or refused whole.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use cpo_analysis::events::{InputFormat, parse_object};
use serde_json::{Value, json};

use super::Gateway;
use super::events::{Item, item};
use super::reply::{Refusal, finish, read_body, require_media_type};
use crate::metrics::metrics;
use crate::verify::{self, VerifyError, sendgrid as sg};

const JSON: &[&str] = &["application/json"];

fn observe(route: &'static str, started: Instant) {
    metrics()
        .seconds
        .with_label_values(&[route])
        .observe(started.elapsed().as_secs_f64());
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn json_body(bytes: &[u8]) -> Result<Value, Refusal> {
    serde_json::from_slice(bytes)
        .map_err(|e| Refusal::bad("malformed_json", format!("not JSON: {e}")))
}

macro_rules! route {
    ($name:ident, $route:literal, $method:ident) => {
        pub async fn $name(State(g): State<Gateway>, headers: HeaderMap, body: Body) -> Response {
            let started = Instant::now();
            let result = g.$method(&headers, body).await;
            observe($route, started);
            finish($route, $route, result)
        }
    };
}

route!(sendgrid, "sendgrid", sendgrid_webhook);
route!(ses, "ses", ses_webhook);
route!(mailgun, "mailgun", mailgun_webhook);
route!(own, "cpo", own_webhook);

impl Gateway {
    async fn sendgrid_webhook(&self, headers: &HeaderMap, body: Body) -> Result<Value, Refusal> {
        let verifier = self.inner.sendgrid.as_ref().ok_or(Refusal::NotFound)?;
        require_media_type(headers, JSON)?;
        let bytes = read_body(headers, body, self.inner.config.max_body_bytes).await?;
        verifier
            .verify(
                header_str(headers, sg::SIGNATURE_HEADER),
                header_str(headers, sg::TIMESTAMP_HEADER),
                &bytes,
                verify::now_s(),
            )
            .map_err(Refusal::Unauthorized)?;
        let Value::Array(events) = json_body(&bytes)? else {
            return Err(Refusal::bad(
                "malformed_json",
                "expected a JSON array of events",
            ));
        };
        let items = events
            .iter()
            .enumerate()
            .map(|(i, raw)| {
                item(
                    "sendgrid",
                    parse_object(raw, InputFormat::Sendgrid),
                    raw,
                    Some(i + 1),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.publish_items("sendgrid", items).await
    }

    async fn ses_webhook(&self, headers: &HeaderMap, body: Body) -> Result<Value, Refusal> {
        let verifier = self.inner.ses.as_ref().ok_or(Refusal::NotFound)?;
        // SNS posts JSON as text/plain.
        require_media_type(headers, &["text/plain", "application/json"])?;
        let bytes = read_body(headers, body, self.inner.config.max_body_bytes).await?;
        let envelope = json_body(&bytes)?;
        if !envelope.is_object() {
            return Err(Refusal::bad(
                "malformed_json",
                "expected an SNS message object",
            ));
        }
        verifier
            .verify(&envelope, verify::now_s())
            .await
            .map_err(|e| match e {
                VerifyError::CertUnavailable(m) => {
                    Refusal::Unavailable(format!("signing certificate: {m}"))
                }
                other => Refusal::Unauthorized(other),
            })?;
        match envelope.get("Type").and_then(Value::as_str) {
            Some("SubscriptionConfirmation") => self.confirm_subscription(&envelope).await,
            Some("UnsubscribeConfirmation") => Ok(json!({"ignored": 1})),
            _ => {
                let parsed = item(
                    "ses",
                    parse_object(&envelope, InputFormat::Ses),
                    &envelope,
                    None,
                )?;
                self.publish_items("ses", vec![parsed]).await
            }
        }
    }

    /// GETs the SubscribeURL, only on an allow-listed SNS host.
    async fn confirm_subscription(&self, envelope: &Value) -> Result<Value, Refusal> {
        let Some(ses) = self.inner.ses.as_ref() else {
            return Err(Refusal::NotFound);
        };
        let url = envelope
            .get("SubscribeURL")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Refusal::bad(
                    "malformed_event",
                    "SubscriptionConfirmation without SubscribeURL",
                )
            })?;
        let url = crate::verify::sns::allowed_sns_url(url, &ses.config().regions)
            .map_err(Refusal::Unauthorized)?;
        ses.client()
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| {
                Refusal::Unavailable(format!("confirming the subscription: {}", e.without_url()))
            })?;
        tracing::info!("sns subscription confirmed");
        Ok(json!({"confirmed": true}))
    }

    async fn mailgun_webhook(&self, headers: &HeaderMap, body: Body) -> Result<Value, Refusal> {
        let verifier = self.inner.mailgun.as_ref().ok_or(Refusal::NotFound)?;
        require_media_type(headers, JSON)?;
        let bytes = read_body(headers, body, self.inner.config.max_body_bytes).await?;
        let value = json_body(&bytes)?;
        let token = verifier
            .verify(&value, verify::now_s())
            .map_err(Refusal::Unauthorized)?;
        let replay_key = format!("gateway:mailgun-token:{token}");
        let seen = self
            .inner
            .cache
            .get(&replay_key)
            .await
            .map_err(|e| Refusal::Unavailable(e.to_string()))?;
        if seen.is_some() {
            return Err(Refusal::Unauthorized(VerifyError::Replay));
        }
        let parsed = item(
            "mailgun",
            parse_object(&value, InputFormat::Mailgun),
            &value,
            None,
        )?;
        let answer = self.publish_items("mailgun", vec![parsed]).await?;
        // Marked only once handled: a request answered 503 may be retried with its token.
        let ttl = self
            .inner
            .config
            .mailgun
            .as_ref()
            .map_or(86_400, |c| c.replay_ttl());
        let claimed = self
            .inner
            .cache
            .set_if_absent(&replay_key, b"1", Some(std::time::Duration::from_secs(ttl)))
            .await
            .map_err(|e| Refusal::Unavailable(e.to_string()))?;
        if !claimed {
            // A concurrent replay got here first; its event was deduplicated above.
            return Err(Refusal::Unauthorized(VerifyError::Replay));
        }
        Ok(answer)
    }

    async fn own_webhook(&self, headers: &HeaderMap, body: Body) -> Result<Value, Refusal> {
        let expected = self.inner.cpo_token.as_ref().ok_or(Refusal::NotFound)?;
        verify::bearer(
            header_str(headers, header::AUTHORIZATION.as_str()),
            expected,
        )
        .map_err(Refusal::Unauthorized)?;
        require_media_type(headers, JSON)?;
        let bytes = read_body(headers, body, self.inner.config.max_body_bytes).await?;
        let value = json_body(&bytes)?;
        let items = match &value {
            Value::Array(events) => events
                .iter()
                .enumerate()
                .map(|(i, raw)| item("cpo", parse_object(raw, InputFormat::Own), raw, Some(i + 1)))
                .collect::<Result<Vec<_>, _>>()?,
            other => vec![item(
                "cpo",
                parse_object(other, InputFormat::Own),
                other,
                None,
            )?],
        };
        if items.iter().any(|i| matches!(i, Item::Ignored)) {
            return Err(Refusal::bad("malformed_event", "unexpected event"));
        }
        self.publish_items("cpo", items).await
    }
}
