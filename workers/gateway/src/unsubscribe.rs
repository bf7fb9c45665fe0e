//! One-click unsubscribes (RFC 8058): `GET /u/{token}` shows a confirmation
//! page, `POST /u/{token}` (`List-Unsubscribe=One-Click` from a mail client, or
//! the page's form) suppresses the customer the token names. The suppression
//! is committed to the store before the 200, and doing it twice is harmless
//! (the store keeps the first suppression of a key).

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cpo_shared::envelope::now_ms;
use cpo_shared::store::{Suppression, SuppressionKey};

use crate::metrics::metrics;
use crate::server::Gateway;
use crate::server::reply::{Refusal, media_type, read_body};

/// Bodies of the form are a few dozen bytes.
const MAX_FORM_BYTES: usize = 4096;

/// Text for HTML: every character that could open markup or an attribute is escaped.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn html_page(status: StatusCode, title: &str, body_html: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;line-height:1.5}}\
         button{{font-size:1rem;padding:.5rem 1.25rem}}</style></head>\
         <body><h1>{title}</h1>{body_html}</body></html>\n",
        title = escape_html(title)
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // No scripts, no external anything, no framing; the token stays out of Referer.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn refused(refusal: &Refusal) -> Response {
    let m = metrics();
    let (status, outcome, text) = match refusal {
        Refusal::NotFound => (StatusCode::NOT_FOUND, "not_found", "Not found."),
        Refusal::Unauthorized(_) => (
            StatusCode::BAD_REQUEST,
            "bad_request",
            "This unsubscribe link is not valid. Please use the link from the email you received.",
        ),
        Refusal::Unavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "We could not record your request right now. Please try again in a few minutes.",
        ),
        Refusal::UnsupportedMediaType(_) => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported request.",
        ),
        Refusal::TooLarge(_) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "Request too large.",
        ),
        Refusal::BadRequest { .. } | Refusal::Unprocessable { .. } => (
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Unsupported request.",
        ),
    };
    m.requests
        .with_label_values(&["unsubscribe", outcome])
        .inc();
    match refusal {
        Refusal::Unauthorized(e) => {
            m.rejected
                .with_label_values(&["unsubscribe", e.reason()])
                .inc();
        }
        Refusal::Unavailable(reason) => tracing::warn!(%reason, "unsubscribe answered 503"),
        _ => {}
    }
    html_page(
        status,
        "Unsubscribe",
        &format!("<p>{}</p>", escape_html(text)),
    )
}

impl Gateway {
    fn recipient(&self, token: &str) -> Result<(String, String), Refusal> {
        let tokens = self.inner.unsubscribe.as_ref().ok_or(Refusal::NotFound)?;
        tokens
            .verify(token)
            .map_err(|_| Refusal::Unauthorized(crate::verify::VerifyError::BadSignature))
    }

    async fn unsubscribe(
        &self,
        token: &str,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<String, Refusal> {
        let (campaign_id, customer_id) = self.recipient(token)?;
        if media_type(headers) != "application/x-www-form-urlencoded" {
            return Err(Refusal::UnsupportedMediaType(media_type(headers)));
        }
        let bytes = read_body(headers, body, MAX_FORM_BYTES).await?;
        let fields: Vec<(String, String)> = form_urlencoded::parse(&bytes).into_owned().collect();
        let one_click = fields
            .iter()
            .any(|(k, v)| k == "List-Unsubscribe" && v == "One-Click");
        let from_page = fields.iter().any(|(k, v)| k == "confirm" && v == "yes");
        if !one_click && !from_page {
            return Err(Refusal::bad(
                "malformed_event",
                "expected List-Unsubscribe=One-Click",
            ));
        }
        let store = self
            .inner
            .store
            .as_ref()
            .ok_or(Refusal::NotFound)?
            .get()
            .await
            .map_err(|e| Refusal::Unavailable(e.to_string()))?;
        let suppression = Suppression {
            key: SuppressionKey::Customer(customer_id),
            reason: "unsubscribed".into(),
            source: "one-click".into(),
            created_at_ms: now_ms() as i64,
        };
        store
            .suppress(std::slice::from_ref(&suppression))
            .await
            .map_err(|e| Refusal::Unavailable(e.to_string()))?;
        Ok(campaign_id)
    }
}

pub async fn page_handler(gateway: &Gateway, token: &str) -> Response {
    match gateway.recipient(token) {
        Ok(_) => {
            metrics()
                .requests
                .with_label_values(&["unsubscribe", "ok"])
                .inc();
            html_page(
                StatusCode::OK,
                "Unsubscribe",
                "<p>Do you want to stop receiving these emails?</p>\
                 <form method=\"post\"><input type=\"hidden\" name=\"confirm\" value=\"yes\">\
                 <button type=\"submit\">Unsubscribe</button></form>",
            )
        }
        Err(refusal) => refused(&refusal),
    }
}

pub async fn page(State(gateway): State<Gateway>, Path(token): Path<String>) -> Response {
    let started = Instant::now();
    let response = page_handler(&gateway, &token).await;
    metrics()
        .seconds
        .with_label_values(&["unsubscribe"])
        .observe(started.elapsed().as_secs_f64());
    response
}

pub async fn confirm(
    State(gateway): State<Gateway>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let response = match gateway.unsubscribe(&token, &headers, body).await {
        Ok(_campaign) => {
            metrics()
                .requests
                .with_label_values(&["unsubscribe", "ok"])
                .inc();
            html_page(
                StatusCode::OK,
                "You are unsubscribed",
                "<p>You will not receive these emails any more.</p>",
            )
        }
        Err(refusal) => refused(&refusal),
    };
    metrics()
        .seconds
        .with_label_values(&["unsubscribe"])
        .observe(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html("<script>\"x\" & 'y'</script>"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }
}
