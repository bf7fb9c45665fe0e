//! OpenAI's Moderation API as a `SafetyScreen`.
//!
//! `POST {endpoint}/v1/moderations` with `{"model", "input"}` and the key as a
//! bearer token answers `results[0].categories` (booleans) and
//! `results[0].category_scores` (0-1) per OpenAI category. Each category maps
//! onto one of ours (or onto a policy finding); its severity is
//! `min(7, floor(score * 8))`, raised to at least 4 when OpenAI flags the
//! category, and to 7 for `sexual/minors` when flagged. The table is in the
//! crate's design.md and in `MAPPING`. Like the Azure backend, the embedded
//! brand-policy checks run beside it unless an ensemble lists `embedded`.

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use crate::config::SafetyConfig;
use crate::error::{SafetyError, ScreenError};
use crate::remote::Remote;
use crate::screen::{
    EmbeddedScreen, FindingKind, HarmCategory, SafetyScreen, ScreenReport, ScreenRequest,
};

/// How a severity reported by OpenAI is named in the block reason.
const EVIDENCE: &str = "openai moderation";

/// Where an OpenAI category goes: one of our categories, or a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Harm(HarmCategory),
    /// Not one of our four: a flagged answer is a `FindingKind::ExternalPolicy`
    /// finding (it blocks); the score alone does not.
    Finding,
}

/// Every OpenAI category we read (an unknown one in the answer is ignored;
/// one of these missing is malformed).
pub const MAPPING: [(&str, Target); 13] = [
    ("hate", Target::Harm(HarmCategory::Hate)),
    ("hate/threatening", Target::Harm(HarmCategory::Hate)),
    ("harassment", Target::Harm(HarmCategory::Hate)),
    (
        "harassment/threatening",
        Target::Harm(HarmCategory::Violence),
    ),
    ("self-harm", Target::Harm(HarmCategory::SelfHarm)),
    ("self-harm/intent", Target::Harm(HarmCategory::SelfHarm)),
    (
        "self-harm/instructions",
        Target::Harm(HarmCategory::SelfHarm),
    ),
    ("sexual", Target::Harm(HarmCategory::Sexual)),
    ("sexual/minors", Target::Harm(HarmCategory::Sexual)),
    ("violence", Target::Harm(HarmCategory::Violence)),
    ("violence/graphic", Target::Harm(HarmCategory::Violence)),
    ("illicit", Target::Finding),
    ("illicit/violent", Target::Harm(HarmCategory::Violence)),
];

/// Categories OpenAI's older models (`text-moderation-*`) do not report.
const OPTIONAL: [&str; 2] = ["illicit", "illicit/violent"];

/// The severity of a score: eight equal bands of 0-1.
pub fn severity_of(score: f64, flagged: bool, category: &str) -> u8 {
    let banded = (score * 8.0).floor().clamp(0.0, 7.0) as u8;
    match (flagged, category) {
        (true, "sexual/minors") => 7,
        (true, _) => banded.max(4),
        (false, _) => banded,
    }
}

#[derive(Serialize)]
struct ModerationRequest<'a> {
    model: &'a str,
    input: &'a str,
}

/// `Debug` shows the endpoint, never the key (`Remote` redacts it).
pub struct OpenAiModerationScreen {
    remote: Remote,
    model: String,
    policy: Option<EmbeddedScreen>,
}

impl std::fmt::Debug for OpenAiModerationScreen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiModerationScreen")
            .field("remote", &self.remote)
            .field("model", &self.model)
            .field("policy", &self.policy.is_some())
            .finish()
    }
}

impl OpenAiModerationScreen {
    /// With the embedded brand-policy checks beside it.
    pub fn new(config: &SafetyConfig) -> Result<Self, SafetyError> {
        let mut screen = Self::remote_only(config)?;
        screen.policy = Some(EmbeddedScreen::new(config)?);
        Ok(screen)
    }

    /// OpenAI's answer alone (an ensemble member next to `embedded`).
    pub fn remote_only(config: &SafetyConfig) -> Result<Self, SafetyError> {
        config.validate()?;
        let section = &config.openai_moderation;
        section.validate()?;
        let url = format!(
            "{}/v1/moderations",
            section.endpoint.trim().trim_end_matches('/')
        );
        let remote = Remote::new(
            EVIDENCE,
            crate::config::OpenAiModerationConfig::SECTION,
            url,
            Some(section.resolve_key()?),
            config.timeout(),
        )?;
        Ok(Self {
            remote,
            model: section.model.clone(),
            policy: None,
        })
    }
}

/// The report of a moderation answer.
pub fn parse_response(value: &Value) -> Result<ScreenReport, ScreenError> {
    let malformed = |m: String| ScreenError::Malformed(format!("openai moderation: {m}"));
    let result = value
        .get("results")
        .and_then(Value::as_array)
        .and_then(|r| r.first())
        .ok_or_else(|| malformed("response has no results".into()))?;
    let flags = result
        .get("categories")
        .and_then(Value::as_object)
        .ok_or_else(|| malformed("results[0] has no categories object".into()))?;
    let scores = result
        .get("category_scores")
        .and_then(Value::as_object)
        .ok_or_else(|| malformed("results[0] has no category_scores object".into()))?;
    let mut report = ScreenReport::default();
    for (name, target) in MAPPING {
        let (flag, score) = (flags.get(name), scores.get(name));
        if flag.is_none() && score.is_none() && OPTIONAL.contains(&name) {
            continue;
        }
        let flagged = flag
            .and_then(Value::as_bool)
            .ok_or_else(|| malformed(format!("category {name} is missing or not a boolean")))?;
        let score = score
            .and_then(Value::as_f64)
            .filter(|s| (0.0..=1.0).contains(s))
            .ok_or_else(|| malformed(format!("score of {name} is missing or outside 0-1")))?;
        match target {
            Target::Harm(category) => report.raise(
                category,
                severity_of(score, flagged, name),
                EVIDENCE,
                Some(name),
            ),
            Target::Finding if flagged => {
                report.find(FindingKind::ExternalPolicy, format!("{EVIDENCE}: {name}"))
            }
            Target::Finding => {}
        }
    }
    Ok(report)
}

#[async_trait]
impl SafetyScreen for OpenAiModerationScreen {
    fn name(&self) -> &str {
        "openai_moderation"
    }

    async fn screen(&self, request: &ScreenRequest<'_>) -> Result<ScreenReport, ScreenError> {
        let mut report = self
            .policy
            .as_ref()
            .map(|p| p.screen_text(request))
            .unwrap_or_default();
        let text = format!("{}\n\n{}", request.subject, request.body);
        if text.trim().is_empty() {
            return Ok(report);
        }
        let answer = self
            .remote
            .post(&ModerationRequest {
                model: &self.model,
                input: &text,
            })
            .await?;
        report.merge(parse_response(&answer)?);
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_fall_into_eight_bands_and_a_flag_reaches_the_default_threshold() {
        assert_eq!(severity_of(0.0, false, "hate"), 0);
        assert_eq!(severity_of(0.124, false, "hate"), 0);
        assert_eq!(severity_of(0.5, false, "hate"), 4);
        assert_eq!(severity_of(1.0, false, "hate"), 7);
        assert_eq!(severity_of(0.2, true, "hate"), 4);
        assert_eq!(severity_of(0.9, true, "hate"), 7);
        assert_eq!(severity_of(0.1, true, "sexual/minors"), 7);
    }
}
