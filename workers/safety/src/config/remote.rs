//! The `safety.openai_moderation` and `safety.llm_guard` sections: an
//! endpoint (https, or plain http to this machine only), a key from the
//! environment or a file (never shown), and a model.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use super::azure::{ApiKey, is_loopback};
use crate::error::SafetyError;

/// Settings of the OpenAI Moderation backend (`safety.openai_moderation`).
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenAiModerationConfig {
    /// Requests go to `{endpoint}/v1/moderations`.
    pub endpoint: String,
    /// Prefer `CPO__SAFETY__OPENAI_MODERATION__API_KEY` or `api_key_file`.
    pub api_key: Option<ApiKey>,
    pub api_key_file: Option<PathBuf>,
    pub model: String,
}

impl Default for OpenAiModerationConfig {
    fn default() -> Self {
        Self {
            endpoint: "https://api.openai.com".into(),
            api_key: None,
            api_key_file: None,
            model: "omni-moderation-latest".into(),
        }
    }
}

/// Settings of the guard-model backend (`safety.llm_guard`): any
/// OpenAI-compatible chat API serving Llama Guard 3 (vLLM, TGI, a hosted API).
#[derive(Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmGuardConfig {
    /// Requests go to `{endpoint}/v1/chat/completions`.
    pub endpoint: Option<String>,
    /// Optional: a self-hosted server may need none.
    /// `CPO__SAFETY__LLM_GUARD__API_KEY` or `api_key_file`.
    pub api_key: Option<ApiKey>,
    pub api_key_file: Option<PathBuf>,
    /// The served model name, e.g. `meta-llama/Llama-Guard-3-8B`.
    pub model: Option<String>,
}

fn redacted(key: &Option<ApiKey>) -> Option<&'static str> {
    key.as_ref().map(|_| "<redacted>")
}

impl fmt::Debug for OpenAiModerationConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiModerationConfig")
            .field("endpoint", &self.endpoint)
            .field("api_key", &redacted(&self.api_key))
            .field("api_key_file", &self.api_key_file)
            .field("model", &self.model)
            .finish()
    }
}

impl fmt::Debug for LlmGuardConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmGuardConfig")
            .field("endpoint", &self.endpoint)
            .field("api_key", &redacted(&self.api_key))
            .field("api_key_file", &self.api_key_file)
            .field("model", &self.model)
            .finish()
    }
}

impl OpenAiModerationConfig {
    pub(crate) const SECTION: &'static str = "safety.openai_moderation";

    pub(crate) fn validate(&self) -> Result<(), SafetyError> {
        check_endpoint(Self::SECTION, &self.endpoint)?;
        check_model(Self::SECTION, &self.model)?;
        check_key_source(Self::SECTION, &self.api_key, &self.api_key_file, true)
    }

    pub fn resolve_key(&self) -> Result<ApiKey, SafetyError> {
        resolve_key(Self::SECTION, &self.api_key, &self.api_key_file)?
            .ok_or_else(|| missing_key(Self::SECTION))
    }
}

impl LlmGuardConfig {
    pub(crate) const SECTION: &'static str = "safety.llm_guard";

    pub(crate) fn validate(&self) -> Result<(), SafetyError> {
        check_endpoint(Self::SECTION, self.endpoint.as_deref().unwrap_or_default())?;
        check_model(Self::SECTION, self.model.as_deref().unwrap_or_default())?;
        check_key_source(Self::SECTION, &self.api_key, &self.api_key_file, false)
    }

    /// `None` when no key is configured (the server needs none).
    pub fn resolve_key(&self) -> Result<Option<ApiKey>, SafetyError> {
        resolve_key(Self::SECTION, &self.api_key, &self.api_key_file)
    }
}

fn config_error(section: &str, key: &str, message: String) -> SafetyError {
    SafetyError::Config {
        key: format!("{section}.{key}"),
        message,
    }
}

fn env_name(section: &str) -> String {
    format!(
        "CPO__{}__API_KEY",
        section.to_ascii_uppercase().replace('.', "__")
    )
}

fn missing_key(section: &str) -> SafetyError {
    config_error(
        section,
        "api_key",
        format!(
            "not set: use {} or {section}.api_key_file",
            env_name(section)
        ),
    )
}

/// An https URL with a host, or plain http to a loopback host (the key would
/// otherwise cross the network in the clear).
pub(crate) fn check_endpoint(section: &str, endpoint: &str) -> Result<(), SafetyError> {
    let endpoint = endpoint.trim();
    if endpoint.is_empty() {
        return Err(config_error(section, "endpoint", "not set".into()));
    }
    match reqwest::Url::parse(endpoint) {
        Ok(url) if url.scheme() == "https" && url.host_str().is_some() => Ok(()),
        Ok(url) if url.scheme() == "http" && url.host_str().is_some_and(is_loopback) => Ok(()),
        Ok(_) => Err(config_error(
            section,
            "endpoint",
            format!(
                "`{endpoint}` must be an https:// URL (plain http only for a loopback host: 127.0.0.1, ::1, localhost)"
            ),
        )),
        Err(e) => Err(config_error(
            section,
            "endpoint",
            format!("`{endpoint}` is not a URL: {e}"),
        )),
    }
}

fn check_model(section: &str, model: &str) -> Result<(), SafetyError> {
    let ok = !model.is_empty()
        && model.len() <= 200
        && model
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':'));
    if ok {
        Ok(())
    } else {
        Err(config_error(
            section,
            "model",
            format!("`{model}` is not a model name (letters, digits, - _ . / :)"),
        ))
    }
}

fn check_key_source(
    section: &str,
    key: &Option<ApiKey>,
    file: &Option<PathBuf>,
    required: bool,
) -> Result<(), SafetyError> {
    let key_set = key.as_ref().is_some_and(|k| !k.0.trim().is_empty());
    match (key_set, file) {
        (true, Some(_)) => Err(config_error(
            section,
            "api_key",
            "set either api_key or api_key_file, not both".into(),
        )),
        (false, None) if required => Err(missing_key(section)),
        _ => Ok(()),
    }
}

fn resolve_key(
    section: &str,
    key: &Option<ApiKey>,
    file: &Option<PathBuf>,
) -> Result<Option<ApiKey>, SafetyError> {
    if let Some(path) = file {
        let bytes = std::fs::read(path).map_err(|e| {
            config_error(
                section,
                "api_key_file",
                format!("cannot read {}: {}", path.display(), e.kind()),
            )
        })?;
        let key = String::from_utf8_lossy(&bytes).trim().to_string();
        if key.is_empty() {
            return Err(config_error(
                section,
                "api_key_file",
                format!("{} is empty", path.display()),
            ));
        }
        return Ok(Some(ApiKey(key)));
    }
    Ok(key
        .as_ref()
        .map(|k| k.0.trim().to_string())
        .filter(|k| !k.is_empty())
        .map(ApiKey))
}
