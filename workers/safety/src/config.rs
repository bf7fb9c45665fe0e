//! Config section `safety`.
//!
//! ```yaml
//! safety:
//!   backend: embedded          # or azure, openai_moderation, llm_guard
//!   # backends: [embedded, azure] # an ensemble instead: every one must approve
//!   on_screen_error: hold      # or block; unset: hold in the fleet, block in `cpo run`
//!   timeout_ms: 2000           # per screen call (each Azure request too)
//!   thresholds: { hate: 4, violence: 4, self_harm: 4, sexual: 4 }
//!   azure:
//!     endpoint: https://my-resource.cognitiveservices.azure.com
//!     api_version: 2024-09-01
//!     blocklists: [brand-terms]
//!     # api_key_file: /run/secrets/content-safety-key
//!   openai_moderation: { endpoint: https://api.openai.com, model: omni-moderation-latest }
//!   llm_guard: { endpoint: https://guard.internal, model: meta-llama/Llama-Guard-3-8B }
//! ```
//!
//! The Azure key comes from `CPO__SAFETY__AZURE__API_KEY` or
//! `safety.azure.api_key_file`; it is never logged (`Debug` redacts it).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::azure::AzureScreen;
use crate::ensemble::EnsembleScreen;
use crate::guard::LlmGuardScreen;
use crate::openai::OpenAiModerationScreen;

mod azure;
mod remote;

use crate::error::SafetyError;
use crate::screen::{EmbeddedScreen, SafetyScreen};
pub use azure::{ApiKey, AzureConfig};
pub use remote::{LlmGuardConfig, OpenAiModerationConfig};

/// Harm categories at or above their threshold block (`>=`, not `>`: the
/// prototype's `> 4` let severity-4 content through).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    pub hate: u8,
    pub violence: u8,
    pub self_harm: u8,
    pub sexual: u8,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            hate: 4,
            violence: 4,
            self_harm: 4,
            sexual: 4,
        }
    }
}

/// Which screen reports harm severities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScreenBackend {
    /// Lexicons over normalized text, offline and deterministic.
    #[default]
    Embedded,
    /// Azure AI Content Safety text analysis for the harm categories, plus the
    /// embedded brand-policy checks (and its lexicon severities: the higher wins).
    Azure,
    /// OpenAI's Moderation API (`safety.openai_moderation`), plus the embedded checks.
    OpenaiModeration,
    /// A Llama Guard 3 model behind an OpenAI-compatible chat API
    /// (`safety.llm_guard`), plus the embedded checks.
    LlmGuard,
}

impl ScreenBackend {
    pub fn name(self) -> &'static str {
        match self {
            ScreenBackend::Embedded => "embedded",
            ScreenBackend::Azure => "azure",
            ScreenBackend::OpenaiModeration => "openai_moderation",
            ScreenBackend::LlmGuard => "llm_guard",
        }
    }
}

/// A list, or one comma-separated string (environment variables carry no lists).
fn backend_list<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<ScreenBackend>>, D::Error> {
    use serde::de::{Error, IntoDeserializer};
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Names {
        List(Vec<ScreenBackend>),
        Joined(String),
    }
    Ok(Some(match Names::deserialize(deserializer)? {
        Names::List(list) => list,
        Names::Joined(joined) => joined
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| {
                ScreenBackend::deserialize(n.into_deserializer())
                    .map_err(|e: serde::de::value::Error| D::Error::custom(e))
            })
            .collect::<Result<_, _>>()?,
    }))
}

/// What the safety stage does when the screen fails (error, timeout, panic,
/// malformed report). A content block is never affected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnScreenError {
    /// Publish no decision: a transient error (timeout, connection error,
    /// 408, 429, 5xx) leaves the variant waiting like any dependency outage
    /// (`StageError::Unavailable`: tried again with a growing delay, without
    /// using up attempts, then dead-lettered as `exhausted` after
    /// `runtime.outage_timeout_ms`); a permanent one is dead-lettered at once.
    /// The segment stays undecided at experimentation until the variant is
    /// screened or replayed (`cpo dlq replay`); nothing is sent meanwhile.
    #[default]
    Hold,
    /// Publish a blocked decision (`screen error: ...`): the arm falls back to
    /// control, and the variant is dead-lettered as blocked.
    Block,
}

/// Settings of the safety stage and of `cpo screen`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SafetyConfig {
    pub thresholds: Thresholds,
    /// Longest one screen call may take for one variant (each Azure request
    /// as well) before it counts as a screen error.
    pub timeout_ms: u64,
    /// Also block mild profanity ("damn", "crap", "hell", and an expletive
    /// written plainly and aimed at a thing: "these fucking sirens"); strong
    /// profanity (bare, disguised or aimed at anyone) always blocks.
    pub block_mild_profanity: bool,
    /// The brand's own contact addresses and numbers, which copy may contain.
    /// Compared case-insensitively for emails and digit-by-digit for phone numbers.
    pub allowed_contacts: Vec<String>,
    /// One backend; `None` with `backends` unset means embedded.
    pub backend: Option<ScreenBackend>,
    /// An ensemble: every listed backend screens, each must approve. Not
    /// together with `backend`.
    #[serde(deserialize_with = "backend_list")]
    pub backends: Option<Vec<ScreenBackend>>,
    pub azure: AzureConfig,
    pub openai_moderation: OpenAiModerationConfig,
    pub llm_guard: LlmGuardConfig,
    /// `None` when not configured: whoever builds the stage picks the default
    /// (`hold` for a fleet worker, `block` for the embedded mode).
    pub on_screen_error: Option<OnScreenError>,
}

impl Default for SafetyConfig {
    fn default() -> Self {
        Self {
            thresholds: Thresholds::default(),
            timeout_ms: 2_000,
            block_mild_profanity: false,
            allowed_contacts: Vec::new(),
            backend: None,
            backends: None,
            azure: AzureConfig::default(),
            openai_moderation: OpenAiModerationConfig::default(),
            llm_guard: LlmGuardConfig::default(),
            on_screen_error: None,
        }
    }
}

impl SafetyConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Reject values that would silently disable screening, or a backend that cannot work.
    pub fn validate(&self) -> Result<(), SafetyError> {
        let t = &self.thresholds;
        for (name, value) in [
            ("hate", t.hate),
            ("violence", t.violence),
            ("self_harm", t.self_harm),
            ("sexual", t.sexual),
        ] {
            // 0 would block everything; above 7 would never block.
            if !(1..=7).contains(&value) {
                return Err(SafetyError::Config {
                    key: format!("safety.thresholds.{name}"),
                    message: format!("must be between 1 and 7, got {value}"),
                });
            }
        }
        if !(1..=60_000).contains(&self.timeout_ms) {
            return Err(SafetyError::Config {
                key: "safety.timeout_ms".into(),
                message: format!("must be between 1 and 60000, got {}", self.timeout_ms),
            });
        }
        for backend in self.backend_list()? {
            match backend {
                ScreenBackend::Embedded => {}
                ScreenBackend::Azure => self.azure.validate()?,
                ScreenBackend::OpenaiModeration => self.openai_moderation.validate()?,
                ScreenBackend::LlmGuard => self.llm_guard.validate()?,
            }
        }
        Ok(())
    }

    /// The configured backends in order: `backends`, or `[backend]`, or `[embedded]`.
    pub fn backend_list(&self) -> Result<Vec<ScreenBackend>, SafetyError> {
        let error = |message: String| SafetyError::Config {
            key: "safety.backends".into(),
            message,
        };
        match (&self.backends, self.backend) {
            (Some(_), Some(_)) => Err(error(
                "set either safety.backend or safety.backends, not both".into(),
            )),
            (Some(list), None) => {
                if list.is_empty() {
                    return Err(error("is empty: list at least one backend".into()));
                }
                for (i, backend) in list.iter().enumerate() {
                    if list[..i].contains(backend) {
                        return Err(error(format!("lists {} twice", backend.name())));
                    }
                }
                Ok(list.clone())
            }
            (None, backend) => Ok(vec![backend.unwrap_or_default()]),
        }
    }

    /// The configured screen, ready to share. Fails (naming the key) when the
    /// configuration cannot work, so a bad deployment stops at startup.
    pub fn screen(&self) -> Result<Arc<dyn SafetyScreen>, SafetyError> {
        self.validate()?;
        let list = self.backend_list()?;
        // With `embedded` listed, the remote members answer for themselves
        // alone, so a disagreement shows what each one saw; otherwise each
        // runs the embedded brand-policy checks beside it, as on its own.
        let alone = list.len() > 1 && list.contains(&ScreenBackend::Embedded);
        let mut members: Vec<Arc<dyn SafetyScreen>> = Vec::with_capacity(list.len());
        for backend in &list {
            members.push(match (backend, alone) {
                (ScreenBackend::Embedded, _) => Arc::new(EmbeddedScreen::new(self)?),
                (ScreenBackend::Azure, false) => Arc::new(AzureScreen::new(self)?),
                (ScreenBackend::Azure, true) => Arc::new(AzureScreen::remote_only(self)?),
                (ScreenBackend::OpenaiModeration, false) => {
                    Arc::new(OpenAiModerationScreen::new(self)?)
                }
                (ScreenBackend::OpenaiModeration, true) => {
                    Arc::new(OpenAiModerationScreen::remote_only(self)?)
                }
                (ScreenBackend::LlmGuard, false) => Arc::new(LlmGuardScreen::new(self)?),
                (ScreenBackend::LlmGuard, true) => Arc::new(LlmGuardScreen::remote_only(self)?),
            });
        }
        Ok(match members.len() {
            1 => members.remove(0),
            _ => Arc::new(EnsembleScreen::new(members, self.clone())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpo_shared::config::Settings;

    #[test]
    fn yaml_overrides_one_threshold_and_keeps_the_other_defaults() {
        let settings =
            Settings::from_yaml("safety:\n  thresholds:\n    violence: 6\n  timeout_ms: 50\n")
                .unwrap();
        let config: SafetyConfig = settings.section("safety").unwrap();
        assert_eq!(config.thresholds.violence, 6);
        assert_eq!(config.thresholds.hate, 4);
        assert_eq!(config.timeout(), Duration::from_millis(50));
        assert!(config.validate().is_ok());
    }

    #[test]
    fn typos_and_out_of_range_values_name_the_key() {
        let settings = Settings::from_yaml("safety:\n  treshold: 3\n").unwrap();
        let err = settings.section::<SafetyConfig>("safety").unwrap_err();
        assert!(err.to_string().contains("treshold"), "{err}");

        let mut config = SafetyConfig::default();
        config.thresholds.sexual = 8;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("safety.thresholds.sexual"), "{err}");
        config.thresholds.sexual = 0;
        assert!(config.validate().is_err());

        let config = SafetyConfig {
            timeout_ms: 0,
            ..SafetyConfig::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("timeout_ms")
        );
    }

    #[test]
    fn the_azure_endpoint_must_be_https_except_on_this_machine() {
        let with = |endpoint: &str| {
            let mut config = SafetyConfig {
                backend: Some(ScreenBackend::Azure),
                ..SafetyConfig::default()
            };
            config.azure.endpoint = Some(endpoint.into());
            config.azure.api_key = Some(ApiKey::new("k"));
            config.validate()
        };
        for ok in [
            "https://x.cognitiveservices.azure.com",
            "https://x.cognitiveservices.azure.com/",
            "http://127.0.0.1:8080",
            "http://127.1.2.3",
            "http://[::1]:8080/",
            "http://localhost:5000",
            "http://LOCALHOST",
        ] {
            assert!(with(ok).is_ok(), "{ok}: {:?}", with(ok));
        }
        for bad in [
            "http://x.cognitiveservices.azure.com",
            "http://10.0.0.5:8080",
            "http://[::2]",
            "http://localhost.example.com",
            "http://127.0.0.1.nip.io",
            "ftp://x.cognitiveservices.azure.com",
            "file:///etc/passwd",
        ] {
            let err = with(bad).unwrap_err().to_string();
            assert!(err.contains("safety.azure.endpoint"), "{bad}: {err}");
            assert!(err.contains("https://"), "{bad}: {err}");
        }
    }
}
