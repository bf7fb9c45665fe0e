//! The seam between the stage and a copywriting backend.
//!
//! The stage holds an `Arc<dyn Generator>`; the offline composer is the default
//! and the OpenAI-compatible client the remote option. Every backend returns a
//! `Draft`, and the stage checks every draft against the same contract
//! (`check::check_draft`) whichever backend wrote it.

use async_trait::async_trait;
use cpo_shared::model::{Brief, CONTROL_ARM};
use serde::{Deserialize, Serialize};

use crate::check::DraftViolation;

/// What a draft is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Voice<'a> {
    /// A treatment arm: copy personalized for the brief's segment, in this tone.
    Tone(&'a str),
    /// The control arm: the generic, non-personalized "business as usual" message.
    Control,
}

impl Voice<'_> {
    /// The experiment arm this voice serves.
    pub fn arm(&self) -> &str {
        match self {
            Voice::Tone(tone) => tone,
            Voice::Control => CONTROL_ARM,
        }
    }
}

/// A drafted message, still a template: merge fields such as `{{first_name}}`
/// are left for delivery to render.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draft {
    pub subject: String,
    pub body: String,
    /// Snippet ids cited in the body, in order of first use.
    pub citations: Vec<String>,
}

/// Why a backend produced no usable draft. Only `Unavailable` is worth a retry.
#[derive(Debug, thiserror::Error)]
pub enum GenerationError {
    /// Timeout, connection failure, 429 or 5xx: the same request may succeed later.
    #[error("generator backend unavailable: {0}")]
    Unavailable(String),
    /// Authentication, a bad request or a content filter: asking again gets the same answer.
    #[error("generator backend rejected the request: {0}")]
    Rejected(String),
    /// The backend answered, but not in the agreed shape.
    #[error("malformed generator response: {0}")]
    Malformed(String),
    /// The draft breaks the generation contract (subject length, citations, merge fields).
    #[error("draft violates the generation contract: {0}")]
    Violation(#[from] DraftViolation),
    /// The backend cannot be built from its configuration.
    #[error("generator configuration: {0}")]
    Config(String),
}

impl GenerationError {
    /// True when retrying the same brief can help.
    pub fn is_transient(&self) -> bool {
        matches!(self, GenerationError::Unavailable(_))
    }
}

/// A copywriting backend. Object safe, so the stage can hold `Arc<dyn Generator>`.
#[async_trait]
pub trait Generator: Send + Sync + 'static {
    /// Label recorded on every variant it writes (`offline`, `openai:gpt-4o-mini`).
    fn name(&self) -> &str;

    /// Write one draft for the brief's segment in the given voice, grounded only
    /// in the brief's snippets.
    async fn draft(&self, brief: &Brief, voice: Voice<'_>) -> Result<Draft, GenerationError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unavailable_is_transient() {
        assert!(GenerationError::Unavailable("503".into()).is_transient());
        assert!(!GenerationError::Rejected("401".into()).is_transient());
        assert!(!GenerationError::Malformed("not json".into()).is_transient());
        assert!(!GenerationError::Config("no key".into()).is_transient());
    }

    #[test]
    fn control_voice_serves_the_control_arm() {
        assert_eq!(Voice::Control.arm(), CONTROL_ARM);
        assert_eq!(Voice::Tone("urgent").arm(), "urgent");
    }
}
