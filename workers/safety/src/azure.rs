//! Azure AI Content Safety text analysis as a `SafetyScreen`.
//!
//! `POST {endpoint}/contentsafety/text:analyze?api-version=...` with the key in
//! `Ocp-Apim-Subscription-Key` returns severities 0-7 (`EightSeverityLevels`)
//! for hate, self-harm, sexual content and violence, and the matches of the
//! configured custom blocklists. The brand-policy checks (profanity, personal
//! data, prompt injection, claims, template expressions) are not Azure's job:
//! the embedded screen runs beside it and the report combines both, the higher
//! severity per category winning. Like every screen, this one only reports;
//! `verdict::evaluate` decides.
//!
//! Text longer than the service's limit (10,000 characters) is cut into
//! overlapping pieces, each analysed on its own; the report keeps the highest
//! severity per category over all pieces and every blocklist match.
//!
//! Redirects are never followed: a redirected request would carry the key to
//! wherever the `Location` points (reqwest strips only `Authorization` and
//! cookies on a cross-host redirect, not `Ocp-Apim-Subscription-Key`). A 3xx
//! answer is a permanent `Rejected` screen error naming the status.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use serde::Serialize;
use serde_json::Value;
use tracing::debug;

use crate::config::{ApiKey, SafetyConfig};
use crate::error::{SafetyError, ScreenError};
use crate::screen::{
    EmbeddedScreen, FindingKind, HarmCategory, SafetyScreen, ScreenReport, ScreenRequest,
};

mod split;

pub use split::chunks;

/// The service's limit per request, in characters. Counted here in UTF-16
/// code units, which is never fewer than characters, so a piece always fits.
pub const MAX_TEXT_UNITS: usize = 10_000;
/// How much consecutive pieces share, so a phrase cut at a boundary is still
/// seen whole in one of them.
pub const OVERLAP_UNITS: usize = 500;

// `chunks` needs the overlap below half the limit; checked when compiling.
const _: () = assert!(
    OVERLAP_UNITS < MAX_TEXT_UNITS / 2,
    "OVERLAP_UNITS must be below half of MAX_TEXT_UNITS"
);

/// How many characters of an error answer end up in a screen error.
const DETAIL_CHARS: usize = 300;

/// How a severity reported by Azure is named in the block reason.
const EVIDENCE: &str = "azure content safety";

/// Azure's name of each category, in the order the request lists them.
const CATEGORIES: [(&str, HarmCategory); 4] = [
    ("Hate", HarmCategory::Hate),
    ("SelfHarm", HarmCategory::SelfHarm),
    ("Sexual", HarmCategory::Sexual),
    ("Violence", HarmCategory::Violence),
];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AnalyzeRequest<'a> {
    text: &'a str,
    categories: [&'static str; 4],
    output_type: &'static str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    blocklist_names: &'a [String],
    halt_on_blocklist_hit: bool,
}

pub struct AzureScreen {
    client: reqwest::Client,
    url: String,
    key: HeaderValue,
    /// Never shown; kept to scrub it from anything the service echoes back.
    secret: ApiKey,
    blocklists: Vec<String>,
    timeout: Duration,
    /// The brand-policy checks run beside Azure; `None` in an ensemble that
    /// lists `embedded` itself, so this member answers for Azure alone.
    policy: Option<EmbeddedScreen>,
}

impl fmt::Debug for AzureScreen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureScreen")
            .field("url", &self.url)
            .field("key", &"<redacted>")
            .field("blocklists", &self.blocklists)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl AzureScreen {
    /// Build from `safety.azure` (validated) and `safety.timeout_ms`, which
    /// bounds every request. Reads `api_key_file` if set.
    pub fn new(config: &SafetyConfig) -> Result<Self, SafetyError> {
        let mut screen = Self::remote_only(config)?;
        screen.policy = Some(EmbeddedScreen::new(config)?);
        Ok(screen)
    }

    /// Azure's answer alone, without the embedded checks beside it (an
    /// ensemble member next to the embedded screen).
    pub fn remote_only(config: &SafetyConfig) -> Result<Self, SafetyError> {
        config.validate()?;
        let azure = &config.azure;
        // `validate` checks `safety.azure` only when the backend is azure; a
        // config built by hand with another backend gets the same checks
        // (an https endpoint, one key) here.
        azure.validate()?;
        // Set after `validate`; taken without an unwrap.
        let endpoint = azure
            .endpoint
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .ok_or_else(|| SafetyError::Config {
                key: "safety.azure.endpoint".into(),
                message: "not set".into(),
            })?;
        let secret = azure.resolve_key()?;
        let mut key = HeaderValue::from_str(secret.expose()).map_err(|_| SafetyError::Config {
            key: "safety.azure.api_key".into(),
            message: "contains characters an HTTP header cannot carry".into(),
        })?;
        key.set_sensitive(true);
        let client = reqwest::Client::builder()
            .timeout(config.timeout())
            // Following a redirect would send the key to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SafetyError::Config {
                key: "safety.azure".into(),
                message: format!("http client: {e}"),
            })?;
        Ok(Self {
            client,
            url: format!(
                "{}/contentsafety/text:analyze?api-version={}",
                endpoint.trim_end_matches('/'),
                azure.api_version
            ),
            key,
            secret,
            blocklists: azure.blocklists.clone(),
            timeout: config.timeout(),
            policy: None,
        })
    }

    /// One request: severities and blocklist matches of `text`.
    async fn analyze(&self, text: &str) -> Result<ScreenReport, ScreenError> {
        let request = AnalyzeRequest {
            text,
            categories: CATEGORIES.map(|(name, _)| name),
            output_type: "EightSeverityLevels",
            blocklist_names: &self.blocklists,
            halt_on_blocklist_hit: false,
        };
        let response = self
            .client
            .post(&self.url)
            .header("Ocp-Apim-Subscription-Key", self.key.clone())
            .json(&request)
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        if status.is_redirection() {
            return Err(self.redirect_error(status, response.headers()));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&e))?;
        debug!(
            status = status.as_u16(),
            bytes = body.len(),
            chars = text.len(),
            "content safety answered"
        );
        if !status.is_success() {
            return Err(self.status_error(status, &body));
        }
        parse_response(&body)
    }

    /// No usable answer at all: a timeout, or the connection failed.
    fn transport_error(&self, error: &reqwest::Error) -> ScreenError {
        if error.is_timeout() {
            return ScreenError::Timeout(self.timeout);
        }
        let mut message = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = cause.source();
        }
        let message = self.scrub(&message);
        if error.is_builder() {
            ScreenError::Rejected(message)
        } else {
            ScreenError::Backend(message)
        }
    }

    /// An HTTP error answer: worth retrying (408, 429, 5xx) or not (the rest).
    fn status_error(&self, status: StatusCode, body: &[u8]) -> ScreenError {
        let detail = error_detail(body, |text| self.scrub(text));
        let message = self.scrub(&format!("HTTP {status}{detail}"));
        if status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error()
        {
            ScreenError::Backend(message)
        } else {
            ScreenError::Rejected(message)
        }
    }

    /// A 3xx answer, not followed: the endpoint is wrong (or something between
    /// is trying to take the request, and the key, elsewhere). Permanent.
    fn redirect_error(
        &self,
        status: StatusCode,
        headers: &reqwest::header::HeaderMap,
    ) -> ScreenError {
        let location = headers
            .get(reqwest::header::LOCATION)
            .map(|l| bounded_line(&self.scrub(&String::from_utf8_lossy(l.as_bytes()))))
            .filter(|l| !l.is_empty())
            .map(|l| format!(" to {l}"))
            .unwrap_or_default();
        ScreenError::Rejected(self.scrub(&format!(
            "HTTP {status}: redirect{location} not followed (set safety.azure.endpoint to the resource's own https URL)"
        )))
    }

    /// Remove the key from text that may have come from the service.
    fn scrub(&self, text: &str) -> String {
        let key = self.secret.expose();
        if key.is_empty() {
            text.to_string()
        } else {
            text.replace(key, "<redacted>")
        }
    }
}

/// `: code: message` from Azure's `{"error": {"code", "message"}}`, or the
/// start of the body; one line, bounded. `scrub` runs over the whole text
/// before it is cut, so a key echoed across the cut cannot half survive.
fn error_detail(body: &[u8], scrub: impl Fn(&str) -> String) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let text = match error {
        Some(error) => {
            let field = |name: &str| error.get(name).and_then(Value::as_str).unwrap_or("");
            [field("code"), field("message")]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(": ")
        }
        None => String::from_utf8_lossy(body).into_owned(),
    };
    let text = bounded_line(&scrub(&text));
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// `text` on one line (whitespace runs become one space), at most
/// `DETAIL_CHARS` characters. Scrub before calling, never after.
fn bounded_line(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(DETAIL_CHARS)
        .collect()
}

/// The four severities (each required, 0-7) and the blocklist matches.
pub fn parse_response(body: &[u8]) -> Result<ScreenReport, ScreenError> {
    let malformed = |m: String| ScreenError::Malformed(format!("azure: {m}"));
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| malformed(format!("response is not JSON: {e}")))?;
    let analysis = value
        .get("categoriesAnalysis")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("response has no categoriesAnalysis list".into()))?;
    let mut severities: [Option<u8>; 4] = [None; 4];
    for entry in analysis {
        let name = entry
            .get("category")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("a categoriesAnalysis entry has no category".into()))?;
        // A category that was not asked for is ignored.
        let Some(index) = CATEGORIES.iter().position(|(n, _)| *n == name) else {
            continue;
        };
        let severity = match entry.get("severity") {
            Some(Value::Number(n)) => n.as_i64(),
            _ => None,
        }
        .ok_or_else(|| malformed(format!("{name} severity is missing or not an integer")))?;
        let severity = u8::try_from(severity)
            .ok()
            .filter(|s| *s <= 7)
            .ok_or_else(|| malformed(format!("{name} severity {severity} is outside 0-7")))?;
        severities[index] = Some(severities[index].map_or(severity, |s| s.max(severity)));
    }
    let mut report = ScreenReport::default();
    for ((name, category), severity) in CATEGORIES.iter().zip(severities) {
        let severity = severity.ok_or_else(|| malformed(format!("category {name} is missing")))?;
        report.raise(*category, severity, EVIDENCE, None);
    }
    match value.get("blocklistsMatch") {
        None | Some(Value::Null) => {}
        Some(Value::Array(matches)) => {
            for m in matches {
                let field = |name: &str| {
                    m.get(name)
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .unwrap_or("?")
                };
                // The item id, not its text: a blocklist may hold names or addresses.
                report.find(
                    FindingKind::Blocklist,
                    format!(
                        "blocklist '{}' item {}",
                        field("blocklistName"),
                        field("blocklistItemId")
                    ),
                );
            }
        }
        Some(_) => return Err(malformed("blocklistsMatch is not a list".into())),
    }
    Ok(report)
}

#[async_trait]
impl SafetyScreen for AzureScreen {
    fn name(&self) -> &str {
        "azure"
    }

    async fn screen(&self, request: &ScreenRequest<'_>) -> Result<ScreenReport, ScreenError> {
        // Brand policy (and the lexicon's severities) first: microseconds, offline.
        let mut report = self
            .policy
            .as_ref()
            .map(|p| p.screen_text(request))
            .unwrap_or_default();
        let text = format!("{}\n\n{}", request.subject, request.body);
        if text.trim().is_empty() {
            return Ok(report);
        }
        for piece in chunks(&text, MAX_TEXT_UNITS, OVERLAP_UNITS)? {
            report.merge(self.analyze(piece).await?);
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(s: &str) -> usize {
        s.encode_utf16().count()
    }

    #[test]
    fn short_text_is_one_piece() {
        assert_eq!(chunks("hello world", 10_000, 500).unwrap(), ["hello world"]);
        let exact = "a".repeat(10_000);
        assert_eq!(chunks(&exact, 10_000, 500).unwrap().len(), 1);
    }

    #[test]
    fn long_text_is_cut_into_overlapping_pieces_within_the_limit() {
        let words: Vec<String> = (0..6_000).map(|i| format!("w{i}")).collect();
        let text = words.join(" ");
        let pieces = chunks(&text, 1_000, 100).unwrap();
        assert!(pieces.len() > 1);
        for piece in &pieces {
            assert!(units(piece) <= 1_000, "{}", units(piece));
        }
        // Every word is whole in some piece, and consecutive pieces overlap.
        for word in &words {
            assert!(
                pieces
                    .iter()
                    .any(|p| p.split_whitespace().any(|w| w == word)),
                "{word} lost"
            );
        }
        for pair in pieces.windows(2) {
            let tail = &pair[0][pair[0].len() - 50..];
            assert!(pair[1].contains(tail.trim()), "no overlap");
        }
        assert!(pieces[0].starts_with("w0 ") && pieces.last().unwrap().ends_with("w5999"));
    }

    #[test]
    fn text_without_spaces_and_with_wide_characters_is_cut_on_char_boundaries() {
        let text = "😀".repeat(3_000) + &"é".repeat(3_000);
        let pieces = chunks(&text, 1_001, 10).unwrap();
        for piece in &pieces {
            assert!(units(piece) <= 1_001);
        }
        let covered: usize = pieces.iter().map(|p| p.chars().count()).sum();
        assert!(covered >= 6_000);
    }

    #[test]
    fn an_overlap_of_half_the_limit_or_more_is_an_error_not_a_panic() {
        for (limit, overlap) in [(1_000, 500), (1_000, 1_000), (1, 0), (0, 0)] {
            let err = chunks("some text", limit, overlap).unwrap_err();
            assert_eq!(err.kind(), crate::error::ScreenErrorKind::Permanent);
            assert!(err.to_string().contains("below half the limit"), "{err}");
        }
        // The smallest valid limit still fits every character (2 units at most).
        let pieces = chunks("a😀b😀", 2, 0).unwrap();
        assert_eq!(pieces.concat(), "a😀b😀");
    }

    #[test]
    fn responses_map_onto_the_four_categories() {
        let report = parse_response(
            br#"{"categoriesAnalysis":[{"category":"Hate","severity":2},{"category":"SelfHarm","severity":0},
            {"category":"Sexual","severity":5},{"category":"Violence","severity":7},{"category":"Other","severity":99}],
            "blocklistsMatch":[{"blocklistName":"brand","blocklistItemId":"id-1","blocklistItemText":"rival"}]}"#,
        )
        .unwrap();
        assert_eq!(
            (
                report.categories.hate,
                report.categories.self_harm,
                report.categories.sexual,
                report.categories.violence
            ),
            (2, 0, 5, 7)
        );
        assert_eq!(report.findings.len(), 1);
        assert_eq!(report.findings[0].kind, FindingKind::Blocklist);
        assert_eq!(report.findings[0].detail, "blocklist 'brand' item id-1");
    }

    #[test]
    fn malformed_responses_are_named() {
        let all = |hate: &str| {
            format!(
                r#"{{"categoriesAnalysis":[{{"category":"Hate","severity":{hate}}},{{"category":"SelfHarm","severity":0}},{{"category":"Sexual","severity":0}},{{"category":"Violence","severity":0}}]}}"#
            )
        };
        for (body, expected) in [
            (all("8"), "Hate severity 8 is outside 0-7"),
            (all("-1"), "Hate severity -1 is outside 0-7"),
            (all("null"), "Hate severity is missing or not an integer"),
            (all("2.5"), "Hate severity is missing or not an integer"),
            (
                r#"{"categoriesAnalysis":[{"category":"Hate","severity":0}]}"#.into(),
                "category SelfHarm is missing",
            ),
            ("{}".into(), "no categoriesAnalysis"),
            ("<html>".into(), "not JSON"),
            (
                all("0").trim_end_matches('}').to_string() + r#","blocklistsMatch":7}"#,
                "blocklistsMatch is not a list",
            ),
        ] {
            let err = parse_response(body.as_bytes()).unwrap_err();
            assert!(
                matches!(&err, ScreenError::Malformed(m) if m.contains(expected)),
                "{body}: {err}"
            );
        }
    }

    fn keep(text: &str) -> String {
        text.to_string()
    }

    #[test]
    fn error_details_are_one_bounded_line() {
        assert_eq!(
            error_detail(
                br#"{"error":{"code":"InvalidRequestBody","message":"The text\nis empty."}}"#,
                keep
            ),
            ": InvalidRequestBody: The text is empty."
        );
        assert_eq!(error_detail(b"", keep), "");
        assert_eq!(error_detail(&[b'x'; 1000], keep).len(), 302);
    }

    #[test]
    fn a_key_straddling_the_cut_is_scrubbed_before_cutting() {
        const KEY: &str = "k3y-0123456789abcdef0123456789abcdef";
        let scrub = |text: &str| text.replace(KEY, "<redacted>");
        // The key starts 10 characters before the cut at 300, in a plain body
        // and in Azure's error message alike.
        let plain = format!("{}{KEY} and more", "x".repeat(290));
        let message = format!("{}{KEY}", "y".repeat(287)); // after "C: "
        let json = serde_json::json!({"error": {"code": "C", "message": message}}).to_string();
        for body in [&plain, &json] {
            let detail = error_detail(body.as_bytes(), scrub);
            assert!(detail.contains("<redacted>"), "{detail}");
            assert!(
                !detail.contains(&KEY[..4]),
                "part of the key survived: {detail}"
            );
            assert!(detail.chars().count() <= 302, "{detail}");
        }
        // Cutting first would have left the key's first 10 characters.
        let cut_first: String = plain.chars().take(300).collect();
        assert!(scrub(&cut_first).ends_with(&KEY[..10]));
    }
}
