//! A generator backed by any OpenAI-compatible chat completions API, Azure
//! OpenAI included. The model is asked for `{subject, body, citations}` grounded
//! only in the brief's snippets; its answer must then pass the same contract as
//! the offline composer's (`check::check_draft`), and a violation is permanent.

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
        let body = response.bytes().await.map_err(transport_error)?;
        debug!(
            status = status.as_u16(),
            bytes = body.len(),
            arm = voice.arm(),
            "chat completion answered"
        );
        if !status.is_success() {
            let detail = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            let message = format!("http {status}: {detail}");
            return Err(if retryable(status) {
                GenerationError::Unavailable(message)
            } else {
                GenerationError::Rejected(message)
            });
        }
        Ok(body.to_vec())
    }
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
