//! From a screen's report to a decision, fail-closed.
//!
//! `evaluate` is the one path both the stage and `cpo screen` take: it calls
//! the screen under a timeout, catching errors and panics, rejects malformed
//! reports, applies the per-category thresholds (`>=` blocks), the policy
//! findings, the citation rules and the claim rule (`claims`). Anything that goes wrong blocks; the
//! assessment keeps the screen error so the stage can apply
//! `safety.on_screen_error` (publish the block, or hold the variant undecided).

use std::panic::AssertUnwindSafe;
use std::task::Poll;
use std::time::Duration;

use cpo_shared::model::{CategorySeverities, Decision, Variant};

use crate::citations::{self, CitationCheck};
use crate::claims::{self, Source};
use crate::config::SafetyConfig;
use crate::error::ScreenError;
use crate::screen::{FindingKind, HarmCategory, SafetyScreen, ScreenReport, ScreenRequest};

/// What is screened: the text, and (when known) what its citations must resolve to.
#[derive(Debug, Clone)]
pub struct Content<'a> {
    pub subject: &'a str,
    pub body: &'a str,
    /// `None` skips the citation and claim rules (`cpo screen` without snippets).
    pub citations: Option<CitationCheck<'a>>,
}

impl<'a> Content<'a> {
    pub fn from_variant(variant: &'a Variant) -> Self {
        Self {
            subject: &variant.subject,
            body: &variant.body,
            citations: Some(CitationCheck {
                declared: Some(&variant.citations),
                snippets: variant
                    .snippets
                    .iter()
                    .map(|s| Source {
                        id: &s.id,
                        title: &s.title,
                        text: &s.text,
                    })
                    .collect(),
            }),
        }
    }
}

/// Bounded causes of a block, for metrics labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BlockCause {
    Harm(HarmCategory),
    Policy(FindingKind),
    Citation,
    /// A sentence neither tone phrasing nor supported by the snippet it cites.
    UnsupportedClaim,
    ScreenError,
}

impl BlockCause {
    pub fn as_str(self) -> &'static str {
        match self {
            BlockCause::Harm(category) => category.name(),
            BlockCause::Policy(FindingKind::Profanity) => "profanity",
            BlockCause::Policy(FindingKind::MildProfanity) => "mild_profanity",
            BlockCause::Policy(FindingKind::PersonalData) => "personal_data",
            BlockCause::Policy(FindingKind::PromptInjection) => "prompt_injection",
            BlockCause::Policy(FindingKind::UnsubstantiatedClaim) => "unsubstantiated_claim",
            BlockCause::Policy(FindingKind::TemplateExpression) => "template_expression",
            BlockCause::Policy(FindingKind::Blocklist) => "blocklist",
            BlockCause::Policy(FindingKind::Phishing) => "phishing",
            BlockCause::Policy(FindingKind::ExternalPolicy) => "external_policy",
            BlockCause::Citation => "citation",
            BlockCause::UnsupportedClaim => "unsupported_claim",
            BlockCause::ScreenError => "screen_error",
        }
    }
}

/// The decision about one piece of content, with every reason it was blocked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub decision: Decision,
    pub categories: CategorySeverities,
    pub reasons: Vec<String>,
    pub causes: Vec<BlockCause>,
    /// Why the screen gave no usable report, when it did not (then `causes`
    /// holds `BlockCause::ScreenError`).
    pub screen_error: Option<ScreenError>,
    /// Each ensemble member's own answer, for the audit record.
    pub backends: Vec<crate::ensemble::BackendAnswer>,
}

impl Assessment {
    /// Blocked only because the screen failed: with a usable report the
    /// decision might differ. A citation or claim failure blocks whatever the
    /// screen says.
    pub fn undecided(&self) -> bool {
        self.screen_error.is_some() && self.causes.iter().all(|c| *c == BlockCause::ScreenError)
    }

    fn block(&mut self, cause: BlockCause, reason: String) {
        self.decision = Decision::Blocked;
        if !self.causes.contains(&cause) {
            self.causes.push(cause);
        }
        self.reasons.push(reason);
    }

    fn screen_error(error: &ScreenError) -> Self {
        let mut assessment = Self::from_categories(CategorySeverities::default());
        assessment.block(BlockCause::ScreenError, format!("screen error: {error}"));
        assessment.screen_error = Some(error.clone());
        assessment
    }

    fn from_categories(categories: CategorySeverities) -> Self {
        Self {
            decision: Decision::Approved,
            categories,
            reasons: Vec::new(),
            causes: Vec::new(),
            screen_error: None,
            backends: Vec::new(),
        }
    }
}

/// Thresholds and policy applied to a well-formed report.
pub fn assess(report: &ScreenReport, config: &SafetyConfig) -> Assessment {
    let mut assessment = Assessment::from_categories(report.categories.clone());
    assessment.backends = report.backends.clone();
    let thresholds = &config.thresholds;
    for category in HarmCategory::ALL {
        let severity = category.get(&report.categories);
        let threshold = match category {
            HarmCategory::Hate => thresholds.hate,
            HarmCategory::Violence => thresholds.violence,
            HarmCategory::SelfHarm => thresholds.self_harm,
            HarmCategory::Sexual => thresholds.sexual,
        };
        if severity >= threshold {
            let mut reason = format!(
                "{} severity {severity} >= threshold {threshold}",
                category.name()
            );
            if let Some(e) = report.evidence.iter().find(|e| e.category == category) {
                reason.push_str(&format!(" ('{}'", e.term));
                if let Some(context) = &e.context {
                    reason.push_str(&format!(", {context}"));
                }
                reason.push(')');
            }
            assessment.block(BlockCause::Harm(category), reason);
        }
    }
    for finding in &report.findings {
        if finding.kind == FindingKind::MildProfanity && !config.block_mild_profanity {
            continue;
        }
        assessment.block(BlockCause::Policy(finding.kind), finding.to_string());
    }
    assessment
}

/// A report outside the contract is an error, never a pass.
fn validate(report: &ScreenReport) -> Result<(), ScreenError> {
    for category in HarmCategory::ALL {
        let severity = category.get(&report.categories);
        if severity > 7 {
            return Err(ScreenError::Malformed(format!(
                "{} severity {severity} is outside 0-7",
                category.name()
            )));
        }
    }
    Ok(())
}

/// Call the screen with a deadline; a panic inside it becomes `ScreenError::Panicked`.
pub async fn screen_guarded(
    screen: &dyn SafetyScreen,
    request: &ScreenRequest<'_>,
    timeout: Duration,
) -> Result<ScreenReport, ScreenError> {
    let mut call = screen.screen(request);
    let guarded = std::future::poll_fn(move |cx| {
        // The future is dropped right after a panic, never polled again, so
        // observing its state afterwards cannot happen.
        match std::panic::catch_unwind(AssertUnwindSafe(|| call.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(_) => Poll::Ready(Err(ScreenError::Panicked)),
        }
    });
    let report = tokio::time::timeout(timeout, guarded)
        .await
        .map_err(|_| ScreenError::Timeout(timeout))??;
    validate(&report)?;
    Ok(report)
}

/// Screen, assess, check citations and claims. Never fails: every error is a block.
pub async fn evaluate(
    screen: &dyn SafetyScreen,
    content: &Content<'_>,
    config: &SafetyConfig,
) -> Assessment {
    let request = ScreenRequest {
        subject: content.subject,
        body: content.body,
    };
    let mut assessment = match screen_guarded(screen, &request, config.timeout()).await {
        Ok(report) => assess(&report, config),
        Err(error) => Assessment::screen_error(&error),
    };
    if let Some(against) = &content.citations {
        for reason in citations::check(content.subject, content.body, against) {
            assessment.block(BlockCause::Citation, reason);
        }
        for claim in claims::check(content.body, &against.snippets) {
            assessment.block(BlockCause::UnsupportedClaim, claim.to_string());
        }
    }
    assessment
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::screen::PolicyFinding;

    fn report(violence: u8, findings: Vec<PolicyFinding>) -> ScreenReport {
        ScreenReport {
            categories: CategorySeverities {
                violence,
                ..Default::default()
            },
            evidence: Vec::new(),
            findings,
            backends: Vec::new(),
        }
    }

    #[test]
    fn severity_equal_to_the_threshold_blocks() {
        let config = SafetyConfig::default();
        assert_eq!(
            assess(&report(4, vec![]), &config).decision,
            Decision::Blocked
        );
        assert_eq!(
            assess(&report(3, vec![]), &config).decision,
            Decision::Approved
        );
        let blocked = assess(&report(4, vec![]), &config);
        assert_eq!(blocked.reasons, ["violence severity 4 >= threshold 4"]);
        assert_eq!(blocked.causes, [BlockCause::Harm(HarmCategory::Violence)]);
    }

    #[test]
    fn mild_profanity_blocks_only_when_configured() {
        let mild = vec![PolicyFinding {
            kind: FindingKind::MildProfanity,
            detail: "'damn'".into(),
        }];
        let mut config = SafetyConfig::default();
        assert_eq!(
            assess(&report(0, mild.clone()), &config).decision,
            Decision::Approved
        );
        config.block_mild_profanity = true;
        let strict = assess(&report(0, mild), &config);
        assert_eq!(strict.reasons, ["mild profanity: 'damn'"]);
    }

    #[test]
    fn out_of_range_severity_is_malformed() {
        let err = validate(&report(8, vec![])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed verdict: violence severity 8 is outside 0-7"
        );
        assert!(validate(&report(7, vec![])).is_ok());
    }
}
