//! What the three ESP sinks share: the HTTP client (timeouts, no redirects),
//! endpoint and secret checks at construction, and the reading of an answer
//! into a `SendOutcome` (429 waits for Retry-After, 408/5xx and transport
//! errors are retried, other 4xx fail with the provider's reason).

use std::path::Path;
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::EspError;
use crate::sink::SendOutcome;

/// The client of one sink. Redirects are never followed: reqwest would carry
/// the credentials and the mail to wherever `Location` points.
pub(crate) fn client(key: &str, timeout_ms: u64) -> Result<reqwest::Client, EspError> {
    if timeout_ms == 0 {
        return Err(EspError::new(
            format!("{key}.timeout_ms"),
            "must be at least 1",
        ));
    }
    reqwest::Client::builder()
        .timeout(Duration::from_millis(timeout_ms))
        .connect_timeout(Duration::from_millis(timeout_ms.min(10_000)))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| EspError::new(key, format!("http client: {e}")))
}

/// `endpoint` must be an https URL with a host; plain http only to a
/// loopback host (tests, local fakes) or with `allow_insecure_http`.
pub(crate) fn check_endpoint(
    key: &str,
    endpoint: &str,
    allow_insecure_http: bool,
) -> Result<reqwest::Url, EspError> {
    let trimmed = endpoint.trim().trim_end_matches('/');
    let url = reqwest::Url::parse(trimmed)
        .map_err(|e| EspError::new(key, format!("`{trimmed}` is not a URL: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(EspError::new(
            key,
            "must not carry credentials (use the key's file or environment variable)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(EspError::new(
            key,
            format!("`{trimmed}` must not have a query or fragment"),
        ));
    }
    match (url.scheme(), url.host_str()) {
        ("https", Some(_)) => Ok(url),
        ("http", Some(host)) if allow_insecure_http || is_loopback(host) => Ok(url),
        _ => Err(EspError::new(
            key,
            format!(
                "`{trimmed}` must be an https:// URL (plain http only to a loopback host, or with allow_insecure_http)"
            ),
        )),
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A secret from `file` (named by `file_key`) or else the environment
/// variable `env`; the error names both. Never logged.
pub(crate) fn secret(
    file_key: &str,
    file: Option<&Path>,
    env: &str,
    what: &str,
) -> Result<String, EspError> {
    if let Some(path) = file {
        return cpo_shared::config::read_secret_file(file_key, path)
            .map_err(|e| EspError::new(file_key, e.to_string()));
    }
    std::env::var(env)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            EspError::new(
                file_key,
                format!("no {what}: set the environment variable {env} or `{file_key}`"),
            )
        })
}

/// The longest wait a provider's answer can ask for: a Retry-After of days
/// (a broken or hostile answer) must not park a campaign; the stage asks again
/// after an hour and gets a fresh answer.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(3600);

/// Retry-After as delay-seconds or an HTTP-date (RFC 9110 10.2.3), at most
/// `MAX_WAIT`.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_WAIT))
}

/// How a non-2xx answer is sorted: 429 waits for Retry-After (or the
/// provider's reset header, `fallback_wait`), 408 and 5xx are retried, any
/// other status fails with `reason`.
pub(crate) fn refused(
    provider: &str,
    status: StatusCode,
    headers: &HeaderMap,
    reason: &str,
    fallback_wait: Option<Duration>,
) -> SendOutcome {
    let reason = format!("{provider} http {}: {reason}", status.as_u16());
    if status == StatusCode::TOO_MANY_REQUESTS {
        SendOutcome::Retry {
            after: retry_after(headers, SystemTime::now()).or(fallback_wait),
            reason,
        }
    } else if status == StatusCode::REQUEST_TIMEOUT || status.is_server_error() {
        SendOutcome::Retry {
            after: retry_after(headers, SystemTime::now()),
            reason,
        }
    } else {
        SendOutcome::Failed { reason }
    }
}

/// No answer (connect refused, reset, timeout): worth another try.
pub(crate) fn transport(provider: &str, error: reqwest::Error) -> SendOutcome {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    SendOutcome::Retry {
        after: None,
        reason: format!("{provider} {kind}: {}", error.without_url()),
    }
}

/// At most 300 characters of the provider's text, with `secret` removed
/// (an echoed key must not reach the send record or a log) and every word
/// holding an `@` replaced by `<address>`: reasons never carry an address.
pub(crate) fn scrubbed(text: &str, secret: &str) -> String {
    let text = if secret.is_empty() {
        text.to_string()
    } else {
        text.replace(secret, "<redacted>")
    };
    let text = text
        .split_whitespace()
        .map(|word| {
            if word.contains('@') {
                "<address>"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    text.chars().take(300).collect()
}

/// The readable reason in an error body: the `message` fields of JSON
/// (`{"message": ..}`, `{"errors": [{"message": .., "field": ..}]}`), else
/// the text itself.
pub(crate) fn reason_of(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    // AWS's XML errors (`<Code>..</Code><Message>..</Message>`), as SES's
    // front end answers an authentication failure.
    if let Some(message) = xml_element(&text, "Message") {
        return match xml_element(&text, "Code") {
            Some(code) => format!("{code}: {message}"),
            None => message.to_string(),
        };
    }
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return if text.trim().is_empty() {
            "(empty answer)".into()
        } else {
            text.into_owned()
        };
    };
    let mut parts = Vec::new();
    if let Some(errors) = json.get("errors").and_then(|e| e.as_array()) {
        for error in errors {
            let message = error.get("message").and_then(|m| m.as_str()).unwrap_or("");
            match error.get("field").and_then(|f| f.as_str()) {
                Some(field) if !field.is_empty() => parts.push(format!("{field}: {message}")),
                _ => parts.push(message.to_string()),
            }
        }
    }
    for key in ["message", "Message"] {
        if let Some(message) = json.get(key).and_then(|m| m.as_str()) {
            parts.push(message.to_string());
        }
    }
    if parts.is_empty() {
        text.into_owned()
    } else {
        parts.join("; ")
    }
}

fn xml_element<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let start = text.find(&format!("<{name}>"))? + name.len() + 2;
    let len = text[start..].find(&format!("</{name}>"))?;
    Some(text[start..start + len].trim())
}

/// `"Name" <address>` for form fields, the name quoted where needed.
pub(crate) fn display_address(name: Option<&str>, address: &str) -> String {
    match name.filter(|n| !n.trim().is_empty()) {
        None => address.to_string(),
        Some(name) => {
            let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
            format!("\"{escaped}\" <{address}>")
        }
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(retry_after(&headers, now), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(30)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("99999999999"));
        assert_eq!(retry_after(&headers, now), Some(MAX_WAIT));
    }

    proptest::proptest! {
        #[test]
        fn answers_never_panic_and_never_keep_the_key(
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..400),
            header in "\\PC{0,40}",
            secret in "[A-Za-z0-9.]{6,20}",
        ) {
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_str(&header) {
                headers.insert(RETRY_AFTER, value);
            }
            let wait = retry_after(&headers, SystemTime::now());
            proptest::prop_assert!(wait.is_none_or(|w| w <= MAX_WAIT));
            let mut echoed = body.clone();
            echoed.extend_from_slice(secret.as_bytes());
            let reason = scrubbed(&reason_of(&echoed), &secret);
            proptest::prop_assert!(!reason.contains(&secret));
            proptest::prop_assert!(reason.chars().count() <= 300);
        }
    }

    #[test]
    fn statuses_are_sorted() {
        let headers = HeaderMap::new();
        let wait = Some(Duration::from_secs(3));
        let sorted = |code: u16| {
            refused(
                "sendgrid",
                StatusCode::from_u16(code).unwrap(),
                &headers,
                "why",
                wait,
            )
        };
        assert!(matches!(sorted(429), SendOutcome::Retry { after, .. } if after == wait));
        assert!(matches!(
            sorted(503),
            SendOutcome::Retry { after: None, .. }
        ));
        assert!(matches!(sorted(408), SendOutcome::Retry { .. }));
        assert_eq!(
            sorted(400),
            SendOutcome::Failed {
                reason: "sendgrid http 400: why".into()
            }
        );
    }

    #[test]
    fn endpoints_must_be_https_or_loopback() {
        assert!(check_endpoint("k", "https://api.sendgrid.com/", false).is_ok());
        assert!(check_endpoint("k", "http://127.0.0.1:9/", false).is_ok());
        let err = check_endpoint(
            "delivery.esp.sendgrid.endpoint",
            "http://example.com",
            false,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("delivery.esp.sendgrid.endpoint"),
            "{err}"
        );
        assert!(check_endpoint("k", "http://example.com", true).is_ok());
        assert!(check_endpoint("k", "not a url", false).is_err());
        assert!(check_endpoint("k", "https://user:pw@api.example.com", false).is_err());
    }

    #[test]
    fn reasons_come_from_the_body_and_never_carry_the_key() {
        let body =
            br#"{"errors":[{"message":"Invalid email","field":"personalizations.0.to.0.email"}]}"#;
        assert_eq!(
            reason_of(body),
            "personalizations.0.to.0.email: Invalid email"
        );
        assert_eq!(
            reason_of(br#"{"message":"'to' is invalid"}"#),
            "'to' is invalid"
        );
        assert_eq!(reason_of(b"plain words"), "plain words");
        let xml = b"<ErrorResponse><Errors><Error><Code>InvalidClientTokenId</Code><Message>The security token is invalid.</Message></Error></Errors></ErrorResponse>";
        assert_eq!(
            reason_of(xml),
            "InvalidClientTokenId: The security token is invalid."
        );
        assert_eq!(
            scrubbed("key SG.secret leaked", "SG.secret"),
            "key <redacted> leaked"
        );
        assert_eq!(scrubbed(&"x".repeat(1000), "").len(), 300);
        assert_eq!(
            scrubbed(
                "identities failed: news@brand.example, <ada@example.com>.",
                ""
            ),
            "identities failed: <address> <address>"
        );
        assert_eq!(
            display_address(Some("Brand \"Co\""), "a@b.c"),
            "\"Brand \\\"Co\\\"\" <a@b.c>"
        );
        assert_eq!(display_address(None, "a@b.c"), "a@b.c");
    }
}
