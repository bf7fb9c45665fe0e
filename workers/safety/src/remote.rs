//! One JSON request to a remote screen (OpenAI moderation, a guard model):
//! the transport rules every HTTP backend shares with the Azure one. The key
//! goes in `Authorization: Bearer`, marked sensitive; redirects are never
//! followed (the key would go wherever `Location` points); every message is
//! scrubbed of the key before it is cut; a timeout, a connection failure,
//! 408, 429 and 5xx are transient, any other error answer (and a 3xx) is
//! permanent.

use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use serde::Serialize;
use serde_json::Value;
use tracing::debug;

use crate::config::ApiKey;
use crate::error::{SafetyError, ScreenError};

/// How many characters of an error answer end up in a screen error.
const DETAIL_CHARS: usize = 300;

pub(crate) struct Remote {
    client: reqwest::Client,
    url: String,
    key: Option<HeaderValue>,
    /// Never shown; kept to scrub it from anything the service echoes back.
    secret: Option<ApiKey>,
    timeout: Duration,
    /// The backend's name in messages, e.g. `openai moderation`.
    name: &'static str,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Remote {
    /// `section` names the config key in errors (`safety.openai_moderation`).
    pub(crate) fn new(
        name: &'static str,
        section: &str,
        url: String,
        secret: Option<ApiKey>,
        timeout: Duration,
    ) -> Result<Self, SafetyError> {
        let key = match &secret {
            Some(secret) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", secret.expose()))
                    .map_err(|_| SafetyError::Config {
                        key: format!("{section}.api_key"),
                        message: "contains characters an HTTP header cannot carry".into(),
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let client = reqwest::Client::builder()
            .timeout(timeout)
            // Following a redirect would send the key to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SafetyError::Config {
                key: section.to_string(),
                message: format!("http client: {e}"),
            })?;
        Ok(Self {
            client,
            url,
            key,
            secret,
            timeout,
            name,
        })
    }

    /// POST `body` as JSON; the parsed JSON answer of a 2xx, or the screen error.
    pub(crate) async fn post(&self, body: &impl Serialize) -> Result<Value, ScreenError> {
        let mut request = self.client.post(&self.url).json(body);
        if let Some(key) = &self.key {
            request = request.header(reqwest::header::AUTHORIZATION, key.clone());
        }
        let response = request.send().await.map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        if status.is_redirection() {
            return Err(ScreenError::Rejected(self.scrub(&format!(
                "{}: HTTP {status}: redirect not followed (set the endpoint to the service's own https URL)",
                self.name
            ))));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&e))?;
        debug!(
            backend = self.name,
            status = status.as_u16(),
            bytes = bytes.len(),
            "remote screen answered"
        );
        if !status.is_success() {
            return Err(self.status_error(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            ScreenError::Malformed(format!("{}: response is not JSON: {e}", self.name))
        })
    }

    fn transport_error(&self, error: &reqwest::Error) -> ScreenError {
        if error.is_timeout() {
            return ScreenError::Timeout(self.timeout);
        }
        let mut message = format!("{}: {error}", self.name);
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

    fn status_error(&self, status: StatusCode, body: &[u8]) -> ScreenError {
        // OpenAI-style `{"error": {"message", "code"}}`, else the body's start.
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let text = match parsed.as_ref().and_then(|v| v.get("error")) {
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
        // Scrub the whole text before cutting it, so no part of a key survives.
        let detail: String = self
            .scrub(&text)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(DETAIL_CHARS)
            .collect();
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!(": {detail}")
        };
        let message = format!("{}: HTTP {status}{detail}", self.name);
        if status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error()
        {
            ScreenError::Backend(message)
        } else {
            ScreenError::Rejected(message)
        }
    }

    fn scrub(&self, text: &str) -> String {
        match &self.secret {
            Some(key) if !key.expose().is_empty() => text.replace(key.expose(), "<redacted>"),
            _ => text.to_string(),
        }
    }
}
