//! A generator backed by any OpenAI-compatible chat completions API, Azure
//! OpenAI included. The model is asked for `{subject, body, citations}` grounded
//! only in the brief's snippets; its answer must then pass the same contract as
//! the offline composer's (`check::check_draft`), and a violation is permanent.
//!
//! The key travels only to the configured endpoint: it must be https (plain
//! http only on a loopback host, for tests and local model servers), and
//! redirects are never followed (reqwest would carry Azure's `api-key` header,
//! and the request body, to wherever `Location` points): a 3xx is `Rejected`.

mod wire;

use std::time::Duration;

use async_trait::async_trait;
use cpo_shared::envelope::derive_id;
use cpo_shared::model::Brief;
use reqwest::StatusCode;
use tracing::debug;

pub use wire::{parse_response, user_prompt};

use crate::check::check_draft;
use crate::config::OpenAiConfig;
use crate::generator::{Draft, GenerationError, Generator, Voice};
use wire::{ChatMessage, ChatRequest, ResponseFormat};

/// Where requests go and how they authenticate.
#[derive(Clone)]
enum Endpoint {
    /// `{base_url}/chat/completions` with `Authorization: Bearer`.
    OpenAi { url: String, model: String },
    /// `{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=...`
    /// with an `api-key` header.
    Azure { url: String },
}

pub struct OpenAiGenerator {
    client: reqwest::Client,
    endpoint: Endpoint,
    api_key: String,
    name: String,
    temperature: f32,
    max_tokens: u32,
}

impl OpenAiGenerator {
    /// Build from config, taking the key from the config or else the environment
    /// (`AZURE_OPENAI_API_KEY` for Azure, `OPENAI_API_KEY` otherwise).
    pub fn from_config(config: &OpenAiConfig) -> Result<Self, GenerationError> {
        let azure = config.azure_endpoint.is_some() || config.azure_deployment.is_some();
        match (&config.azure_endpoint, azure) {
            (Some(endpoint), true) => check_endpoint(
                "generation.openai.azure_endpoint",
                endpoint,
                config.allow_insecure_http,
            )?,
            (None, true) => {} // reported below with the deployment
            (_, false) => check_endpoint(
                "generation.openai.base_url",
                &config.base_url,
                config.allow_insecure_http,
            )?,
        }
        let env_key = if azure {
            "AZURE_OPENAI_API_KEY"
        } else {
            "OPENAI_API_KEY"
        };
        let api_key = config
            .api_key
            .clone()
            .filter(|k| !k.trim().is_empty())
            .or_else(|| std::env::var(env_key).ok().filter(|k| !k.trim().is_empty()))
            .ok_or_else(|| {
                GenerationError::Config(format!(
                    "no API key: set `generation.openai.api_key` (CPO__GENERATION__OPENAI__API_KEY) or {env_key}"
                ))
            })?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms.max(1)))
            // Following a redirect would send the key to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| GenerationError::Config(format!("http client: {e}")))?;
        let (endpoint, name) = if azure {
            let (Some(base), Some(deployment)) = (&config.azure_endpoint, &config.azure_deployment)
            else {
                return Err(GenerationError::Config(
                    "Azure OpenAI needs both `generation.openai.azure_endpoint` and `generation.openai.azure_deployment`".into(),
                ));
            };
            let url = format!(
                "{}/openai/deployments/{deployment}/chat/completions?api-version={}",
                base.trim_end_matches('/'),
                config.azure_api_version
            );
            (
                Endpoint::Azure { url },
                format!("azure-openai:{deployment}"),
            )
        } else {
            let url = format!("{}/chat/completions", config.base_url.trim_end_matches('/'));
            let endpoint = Endpoint::OpenAi {
                url,
                model: config.model.clone(),
            };
            (endpoint, format!("openai:{}", config.model))
        };
        Ok(Self {
            client,
            endpoint,
            api_key,
            name,
            temperature: config.temperature,
            max_tokens: config.max_tokens,
        })
    }

    async fn complete(&self, brief: &Brief, voice: Voice<'_>) -> Result<Vec<u8>, GenerationError> {
        let campaign_id = &brief.campaign.campaign_id;
        let seed_id = derive_id(&["generation", campaign_id, &brief.segment.name, voice.arm()]);
        let request = ChatRequest {
            model: match &self.endpoint {
                Endpoint::OpenAi { model, .. } => Some(model),
                Endpoint::Azure { .. } => None,
            },
            messages: [
                ChatMessage {
                    role: "system",
                    content: wire::SYSTEM.to_string(),
                },
                ChatMessage {
                    role: "user",
                    content: user_prompt(brief, voice),
                },
            ],
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            response_format: ResponseFormat {
                kind: "json_object",
            },
            seed: u64::from_str_radix(seed_id.get(..12).unwrap_or("0"), 16).unwrap_or(0),
        };
        let builder = match &self.endpoint {
            Endpoint::OpenAi { url, .. } => self.client.post(url).bearer_auth(&self.api_key),
            Endpoint::Azure { url } => self.client.post(url).header("api-key", &self.api_key),
        };
        let response = builder
            .json(&request)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .map(|l| bounded(&self.scrub(&String::from_utf8_lossy(l.as_bytes()))))
                .filter(|l| !l.is_empty())
                .map(|l| format!(" to {l}"))
                .unwrap_or_default();
            return Err(GenerationError::Rejected(format!(
                "http {status}: redirect{location} not followed (configure the endpoint's final https URL)"
            )));
        }
        let body = response.bytes().await.map_err(transport_error)?;
        debug!(
            status = status.as_u16(),
            bytes = body.len(),
            arm = voice.arm(),
            "chat completion answered"
        );
        if !status.is_success() {
            // Scrubbed whole, then cut: a key echoed across the cut cannot half survive.
            let detail = bounded(&self.scrub(&String::from_utf8_lossy(&body)));
            let message = format!("http {status}: {detail}");
            return Err(if retryable(status) {
                GenerationError::Unavailable(message)
            } else {
                GenerationError::Rejected(message)
            });
        }
        Ok(body.to_vec())
    }

    /// Remove the key from text that came from the backend (error answers
    /// end up in dead letters and logs).
    fn scrub(&self, text: &str) -> String {
        if self.api_key.is_empty() {
            text.to_string()
        } else {
            text.replace(&self.api_key, "<redacted>")
        }
    }
}

/// At most 300 characters of `text` (already scrubbed).
fn bounded(text: &str) -> String {
    text.chars().take(300).collect()
}

/// The endpoint of `key` must be an https URL; plain http only for a loopback
/// host (127.0.0.0/8, ::1, localhost: tests and local model servers), or
/// anywhere with `allow_insecure_http`.
fn check_endpoint(key: &str, endpoint: &str, allow_http: bool) -> Result<(), GenerationError> {
    let endpoint = endpoint.trim();
    let url = reqwest::Url::parse(endpoint)
        .map_err(|e| GenerationError::Config(format!("`{key}`: `{endpoint}` is not a URL: {e}")))?;
    match (url.scheme(), url.host_str()) {
        ("https", Some(_)) => Ok(()),
        ("http", Some(host)) if allow_http || is_loopback(host) => Ok(()),
        _ => Err(GenerationError::Config(format!(
            "`{key}`: `{endpoint}` must be an https:// URL (plain http only for a loopback host: 127.0.0.1, ::1, localhost, or with generation.openai.allow_insecure_http)"
        ))),
    }
}

/// `localhost`, 127.0.0.0/8 or `::1`, as `Url::host_str` gives them.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Worth a retry: the backend is overloaded, rate limiting, or failed on its side.
fn retryable(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// No answer at all (connect, timeout, reset): the same request may succeed later.
fn transport_error(error: reqwest::Error) -> GenerationError {
    if error.is_builder() {
        GenerationError::Config(format!("request: {error}"))
    } else {
        GenerationError::Unavailable(format!("request failed: {error}"))
    }
}

#[async_trait]
impl Generator for OpenAiGenerator {
    fn name(&self) -> &str {
        &self.name
    }

    async fn draft(&self, brief: &Brief, voice: Voice<'_>) -> Result<Draft, GenerationError> {
        let raw = self.complete(brief, voice).await?;
        let draft = parse_response(&raw)?;
        check_draft(&draft, brief)?;
        Ok(draft)
    }
}
