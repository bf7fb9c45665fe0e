//! What a request ends in: an answer (counted by route and outcome) or a refusal
//! with its reason (counted by provider and reason as well).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::metrics::metrics;
use crate::verify::VerifyError;

/// A refusal; the body names the reason, never a secret.
#[derive(Debug)]
pub enum Refusal {
    /// The source is not configured on this gateway.
    NotFound,
    /// Signature, token or replay: nothing is kept.
    Unauthorized(VerifyError),
    /// Unreadable input; `reason` is the bounded metric label.
    BadRequest {
        reason: &'static str,
        message: String,
    },
    /// Understood, but not something we take (unknown event types, simulated events).
    Unprocessable {
        reason: &'static str,
        message: String,
    },
    UnsupportedMediaType(String),
    TooLarge(usize),
    /// Broker, Redis or store down: the sender should retry.
    Unavailable(String),
}

impl Refusal {
    pub fn bad(reason: &'static str, message: impl Into<String>) -> Self {
        Refusal::BadRequest {
            reason,
            message: message.into(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Refusal::NotFound => StatusCode::NOT_FOUND,
            Refusal::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Refusal::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Refusal::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Refusal::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Refusal::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn outcome(&self) -> &'static str {
        match self {
            Refusal::NotFound => "not_found",
            Refusal::Unauthorized(_) => "unauthorized",
            Refusal::BadRequest { .. } => "bad_request",
            Refusal::Unprocessable { .. } => "unprocessable",
            Refusal::UnsupportedMediaType(_) => "unsupported_media_type",
            Refusal::TooLarge(_) => "too_large",
            Refusal::Unavailable(_) => "unavailable",
        }
    }

    /// The rejection label, for the ones counted as rejected webhooks.
    fn reason(&self) -> Option<&'static str> {
        match self {
            Refusal::Unauthorized(e) => Some(e.reason()),
            Refusal::BadRequest { reason, .. } | Refusal::Unprocessable { reason, .. } => {
                Some(reason)
            }
            Refusal::UnsupportedMediaType(_) => Some("content_type"),
            Refusal::TooLarge(_) => Some("too_large"),
            Refusal::NotFound | Refusal::Unavailable(_) => None,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::NotFound => "not found".into(),
            Refusal::Unauthorized(e) => e.to_string(),
            Refusal::BadRequest { message, .. } | Refusal::Unprocessable { message, .. } => {
                message.clone()
            }
            Refusal::UnsupportedMediaType(m) => format!("unsupported content type: {m}"),
            Refusal::TooLarge(limit) => format!("body larger than {limit} bytes"),
            Refusal::Unavailable(m) => format!("unavailable, retry later: {m}"),
        }
    }
}

/// Counts and answers. `provider` labels the rejection counter.
pub fn finish(
    route: &'static str,
    provider: &'static str,
    result: Result<Value, Refusal>,
) -> Response {
    let m = metrics();
    match result {
        Ok(body) => {
            m.requests.with_label_values(&[route, "ok"]).inc();
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Err(refusal) => {
            m.requests
                .with_label_values(&[route, refusal.outcome()])
                .inc();
            if let Some(reason) = refusal.reason() {
                m.rejected.with_label_values(&[provider, reason]).inc();
            }
            if let Refusal::Unavailable(m) = &refusal {
                tracing::warn!(route, reason = %m, "answering 503");
            }
            let mut response = (
                refusal.status(),
                axum::Json(json!({"error": refusal.message()})),
            )
                .into_response();
            if matches!(refusal, Refusal::Unavailable(_)) {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            response
        }
    }
}

/// The media type of a request, lowercased, without parameters.
pub fn media_type(headers: &axum::http::HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

pub fn require_media_type(
    headers: &axum::http::HeaderMap,
    allowed: &[&str],
) -> Result<(), Refusal> {
    let given = media_type(headers);
    if allowed.contains(&given.as_str()) {
        Ok(())
    } else {
        Err(Refusal::UnsupportedMediaType(format!(
            "`{given}` (expected {})",
            allowed.join(" or ")
        )))
    }
}

/// Reads a body up to `limit` bytes; larger ones are refused unread.
pub async fn read_body(
    headers: &axum::http::HeaderMap,
    body: axum::body::Body,
    limit: usize,
) -> Result<axum::body::Bytes, Refusal> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(Refusal::TooLarge(limit));
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| Refusal::TooLarge(limit))
}
