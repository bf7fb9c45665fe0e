//! Config section `generation`.
//!
//! ```yaml
//! generation:
//!   backend: offline          # or openai
//!   brand: Acme               # signs every message; the campaign name when unset
//!   max_snippets: 3
//!   max_facts: 3
//!   openai:
//!     base_url: https://api.openai.com/v1
//!     model: gpt-4o-mini
//!     # Azure OpenAI instead: endpoint + deployment (+ api_version)
//!     # azure_endpoint: https://my-resource.openai.azure.com
//!     # azure_deployment: gpt-4o-mini
//! ```
//!
//! The API key comes from `CPO__GENERATION__OPENAI__API_KEY`, or else
//! `AZURE_OPENAI_API_KEY` (Azure) / `OPENAI_API_KEY`; it is never logged.

use std::fmt;
use std::sync::Arc;

use serde::Deserialize;

use crate::composer::OfflineComposer;
use crate::generator::{GenerationError, Generator};
use crate::grounding::GroundingLimits;
use crate::openai::OpenAiGenerator;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// The grounded composer: no network, deterministic.
    #[default]
    Offline,
    /// Any OpenAI-compatible chat completions API, Azure OpenAI included.
    Openai,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerationConfig {
    pub backend: Backend,
    /// Brand that signs every message; the campaign name when unset.
    pub brand: Option<String>,
    /// Snippets cited per draft at most.
    pub max_snippets: usize,
    /// Factual sentences per draft at most (1-4).
    pub max_facts: usize,
    /// Cite a snippet only if its relevance is at least this share of the best one's.
    pub min_relative_relevance: f64,
    pub openai: OpenAiConfig,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        let limits = GroundingLimits::default();
        Self {
            backend: Backend::Offline,
            brand: None,
            max_snippets: limits.max_snippets,
            max_facts: limits.max_facts,
            min_relative_relevance: limits.min_relative_relevance,
            openai: OpenAiConfig::default(),
        }
    }
}

impl GenerationConfig {
    pub fn limits(&self) -> GroundingLimits {
        GroundingLimits {
            max_snippets: self.max_snippets,
            max_facts: self.max_facts,
            min_relative_relevance: self.min_relative_relevance,
        }
    }

    /// The configured backend, ready to share. Fails (naming the key) when the
    /// configuration cannot work, so a bad deployment stops at startup.
    pub fn generator(&self) -> Result<Arc<dyn Generator>, GenerationError> {
        if self.max_snippets == 0 || !(1..=4).contains(&self.max_facts) {
            return Err(GenerationError::Config(
                "`generation.max_snippets` must be at least 1 and `generation.max_facts` 1 to 4"
                    .into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.min_relative_relevance) {
            return Err(GenerationError::Config(
                "`generation.min_relative_relevance` must be within 0 and 1".into(),
            ));
        }
        Ok(match self.backend {
            Backend::Offline => Arc::new(OfflineComposer::new(self.limits(), self.brand.clone())),
            Backend::Openai => Arc::new(OpenAiGenerator::from_config(&self.openai)?),
        })
    }
}

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenAiConfig {
    /// Base URL of an OpenAI-compatible API; requests go to `{base_url}/chat/completions`.
    pub base_url: String,
    pub model: String,
    /// Prefer the environment over a file for this one.
    pub api_key: Option<String>,
    /// Azure OpenAI resource endpoint; with `azure_deployment`, selects the Azure URL form.
    pub azure_endpoint: Option<String>,
    pub azure_deployment: Option<String>,
    pub azure_api_version: String,
    /// Whole-request timeout; a timeout is retried with backoff by the runtime.
    pub timeout_ms: u64,
    pub temperature: f32,
    pub max_tokens: u32,
    /// Allow a plain `http://` endpoint on a host other than this machine (a
    /// model server inside a private network). The API key then travels
    /// unencrypted; off by default, when only loopback may use http.
    pub allow_insecure_http: bool,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com/v1".into(),
            model: "gpt-4o-mini".into(),
            api_key: None,
            azure_endpoint: None,
            azure_deployment: None,
            azure_api_version: "2024-10-21".into(),
            timeout_ms: 30_000,
            temperature: 0.2,
            max_tokens: 700,
            allow_insecure_http: false,
        }
    }
}

impl fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("azure_endpoint", &self.azure_endpoint)
            .field("azure_deployment", &self.azure_deployment)
            .field("azure_api_version", &self.azure_api_version)
            .field("timeout_ms", &self.timeout_ms)
            .field("temperature", &self.temperature)
            .field("max_tokens", &self.max_tokens)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpo_shared::config::Settings;

    #[test]
    fn defaults_fill_what_the_file_leaves_out() {
        let settings = Settings::from_yaml("generation:\n  brand: Acme\n  max_facts: 2\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let config: GenerationConfig = settings
            .section("generation")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.brand.as_deref(), Some("Acme"));
        assert_eq!(config.max_facts, 2);
        assert_eq!(config.backend, Backend::Offline);
        assert_eq!(config.openai.model, "gpt-4o-mini");
    }

    #[test]
    fn a_misspelt_key_is_named() {
        let settings =
            Settings::from_yaml("generation:\n  max_fact: 2\n").unwrap_or_else(|e| panic!("{e}"));
        let err = settings
            .section::<GenerationConfig>("generation")
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("max_fact")));
    }

    #[test]
    fn impossible_limits_fail_at_startup() {
        let config = GenerationConfig {
            max_facts: 9,
            ..Default::default()
        };
        assert!(matches!(
            config.generator(),
            Err(GenerationError::Config(_))
        ));
        assert!(
            GenerationConfig::default()
                .generator()
                .is_ok_and(|g| g.name() == "offline")
        );
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        let config = OpenAiConfig {
            api_key: Some("sk-secret".into()),
            ..Default::default()
        };
        assert!(!format!("{config:?}").contains("sk-secret"));
    }
}
