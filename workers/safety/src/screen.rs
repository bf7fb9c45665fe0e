//! The screen interface (`SafetyScreen`) and its embedded backend.
//!
//! A screen reports; it does not decide. It returns severities 0-7 for the four
//! harm categories and policy findings; `verdict` applies the thresholds, the
//! citation rules and fail-closed handling, so every backend is judged alike.

use std::fmt;

use async_trait::async_trait;
use cpo_shared::model::CategorySeverities;

use crate::classify::Classifier;
use crate::config::SafetyConfig;
use crate::decode::decode;
use crate::error::{SafetyError, ScreenError};
use crate::markers::Markers;
use crate::normalize::{Tokenizer, visible_nfkc};
use crate::pii::PiiDetector;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HarmCategory {
    Hate,
    Violence,
    SelfHarm,
    Sexual,
}

impl HarmCategory {
    pub const ALL: [HarmCategory; 4] = [
        HarmCategory::Hate,
        HarmCategory::Violence,
        HarmCategory::SelfHarm,
        HarmCategory::Sexual,
    ];

    /// The field name in `CategorySeverities` and in config thresholds.
    pub fn name(self) -> &'static str {
        match self {
            HarmCategory::Hate => "hate",
            HarmCategory::Violence => "violence",
            HarmCategory::SelfHarm => "self_harm",
            HarmCategory::Sexual => "sexual",
        }
    }

    pub fn get(self, severities: &CategorySeverities) -> u8 {
        match self {
            HarmCategory::Hate => severities.hate,
            HarmCategory::Violence => severities.violence,
            HarmCategory::SelfHarm => severities.self_harm,
            HarmCategory::Sexual => severities.sexual,
        }
    }

    pub fn set(self, severities: &mut CategorySeverities, value: u8) {
        match self {
            HarmCategory::Hate => severities.hate = value,
            HarmCategory::Violence => severities.violence = value,
            HarmCategory::SelfHarm => severities.self_harm = value,
            HarmCategory::Sexual => severities.sexual = value,
        }
    }
}

/// Brand-policy findings; each one blocks (mild profanity only when configured).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FindingKind {
    Profanity,
    MildProfanity,
    PersonalData,
    PromptInjection,
    UnsubstantiatedClaim,
    /// `{{ ... }}` that is not a bare merge field: delivery would render it.
    TemplateExpression,
    /// A term of one of the brand's custom blocklists (the Azure backend's `blocklistsMatch`).
    Blocklist,
    /// A request for credentials or a "verify your account" lure: a brand's
    /// copy never asks for a password, and the pattern is a phishing template.
    Phishing,
    /// A category of a remote screen that is none of our four (a Llama Guard
    /// code such as S7 privacy, OpenAI's `illicit`): it blocks.
    ExternalPolicy,
}

impl FindingKind {
    pub fn label(self) -> &'static str {
        match self {
            FindingKind::Profanity => "profanity",
            FindingKind::MildProfanity => "mild profanity",
            FindingKind::PersonalData => "personal data",
            FindingKind::PromptInjection => "prompt injection",
            FindingKind::UnsubstantiatedClaim => "unsubstantiated claim",
            FindingKind::TemplateExpression => "template expression",
            FindingKind::Blocklist => "blocklist match",
            FindingKind::Phishing => "phishing",
            FindingKind::ExternalPolicy => "remote screen policy",
        }
    }
}

/// One policy finding. `detail` names the term or the kind of data, never the
/// personal data itself, because reasons reach logs, dead letters and the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFinding {
    pub kind: FindingKind,
    pub detail: String,
}

impl fmt::Display for PolicyFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.label(), self.detail)
    }
}

/// Why a category has its severity (the strongest term found).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HarmEvidence {
    pub category: HarmCategory,
    pub severity: u8,
    pub term: String,
    pub context: Option<String>,
}

/// What a screen saw. Severities must be 0-7; anything else is a malformed verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScreenReport {
    pub categories: CategorySeverities,
    pub evidence: Vec<HarmEvidence>,
    pub findings: Vec<PolicyFinding>,
    /// Each member's own answer when an ensemble screened (empty otherwise).
    pub backends: Vec<crate::ensemble::BackendAnswer>,
}

impl ScreenReport {
    /// Record a severity if it is the highest so far for its category.
    pub fn raise(
        &mut self,
        category: HarmCategory,
        severity: u8,
        term: &str,
        context: Option<&str>,
    ) {
        if severity <= category.get(&self.categories) {
            return;
        }
        category.set(&mut self.categories, severity);
        let evidence = HarmEvidence {
            category,
            severity,
            term: term.to_string(),
            context: context.map(str::to_string),
        };
        match self.evidence.iter_mut().find(|e| e.category == category) {
            Some(existing) => *existing = evidence,
            None => self.evidence.push(evidence),
        }
    }

    /// Add a finding unless the same one is already there. Both token streams
    /// report, one spelling `risk free`, the other `riskfree`: spaces do not count.
    pub fn find(&mut self, kind: FindingKind, detail: String) {
        let same = |a: &str, b: &str| {
            a.chars()
                .filter(|c| *c != ' ')
                .eq(b.chars().filter(|c| *c != ' '))
        };
        if !self
            .findings
            .iter()
            .any(|f| f.kind == kind && same(&f.detail, &detail))
        {
            self.findings.push(PolicyFinding { kind, detail });
        }
    }
}

impl ScreenReport {
    /// Fold another screen's report into this one: the higher severity per
    /// category (with its evidence) and every finding.
    pub fn merge(&mut self, other: ScreenReport) {
        for category in HarmCategory::ALL {
            let severity = category.get(&other.categories);
            if severity <= category.get(&self.categories) {
                continue;
            }
            category.set(&mut self.categories, severity);
            self.evidence.retain(|e| e.category != category);
            if let Some(e) = other.evidence.iter().find(|e| e.category == category) {
                self.evidence.push(e.clone());
            }
        }
        for finding in other.findings {
            self.find(finding.kind, finding.detail);
        }
    }
}

/// The text to screen; merge fields such as `{{first_name}}` are still unrendered.
#[derive(Debug, Clone, Copy)]
pub struct ScreenRequest<'a> {
    pub subject: &'a str,
    pub body: &'a str,
}

/// A safety backend. Object-safe so the stage holds `Arc<dyn SafetyScreen>`.
#[async_trait]
pub trait SafetyScreen: Send + Sync {
    /// Recorded as `screened_by` on every verdict (`embedded`, `azure`, ...).
    fn name(&self) -> &str;

    async fn screen(&self, request: &ScreenRequest<'_>) -> Result<ScreenReport, ScreenError>;
}

/// The offline default: weighted lexicons over normalized text, PII detectors,
/// prompt-injection markers and claim patterns, all compiled once.
pub struct EmbeddedScreen {
    tokenizer: Tokenizer,
    classifier: Classifier,
    pii: PiiDetector,
    markers: Markers,
}

impl EmbeddedScreen {
    pub fn new(config: &SafetyConfig) -> Result<Self, SafetyError> {
        Ok(Self {
            tokenizer: Tokenizer::new()?,
            classifier: Classifier::new()?,
            pii: PiiDetector::new(&config.allowed_contacts)?,
            markers: Markers::new()?,
        })
    }

    /// Screen synchronously; pure and allocation-light, microseconds per variant.
    pub fn screen_text(&self, request: &ScreenRequest<'_>) -> ScreenReport {
        let mut report = ScreenReport::default();
        // A line break keeps phrases from running from the subject into the body.
        let text = visible_nfkc(&format!("{}\n{}", request.subject, request.body));
        let decoded = decode(&text);
        let streams = self.tokenizer.tokenize(&decoded);
        self.classifier.classify(&streams, &text, &mut report);
        // A phrase or a word split between subject and body is read whole too.
        for bridge in bridges(request.subject, request.body) {
            let bridge = visible_nfkc(&bridge);
            let streams = self.tokenizer.tokenize(&decode(&bridge));
            self.classifier.classify(&streams, &bridge, &mut report);
        }
        if looks_reversed(&streams.joined) {
            let reversed: String = decoded.chars().rev().collect();
            let streams = self.tokenizer.tokenize(&reversed);
            // Written backwards is disguised: nothing in it is plain.
            self.classifier.classify(&streams, "", &mut report);
        }
        self.markers.scan(&text, &mut report);
        for kind in self.pii.scan(&text) {
            report.find(FindingKind::PersonalData, kind.label().to_string());
        }
        report
    }
}

/// How many words on each side of the subject/body boundary are read together.
const BRIDGE_WORDS: usize = 6;

/// The end of the subject run into the start of the body, with a space and
/// with the boundary words glued ("you nig" + "ger"); none when either is empty.
fn bridges(subject: &str, body: &str) -> Vec<String> {
    let tail: Vec<&str> = subject
        .split_whitespace()
        .rev()
        .take(BRIDGE_WORDS)
        .collect();
    let head: Vec<&str> = body.split_whitespace().take(BRIDGE_WORDS).collect();
    if tail.is_empty() || head.is_empty() {
        return Vec::new();
    }
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    let spaced = format!("{} {}", tail.join(" "), head.join(" "));
    let glued = format!("{}{}", tail.join(" "), head.join(" "));
    vec![spaced, glued]
}

/// Common English words spelt backwards: text written in reverse has them.
const REVERSED_WORDS: &[&str] = &[
    "uoy", "eht", "lliw", "ruoy", "dna", "rof", "taht", "siht", "evah", "tnod", "yeht", "meht",
    "lli", "mi", "ew", "ma", "si", "era", "reven", "lla", "ot",
];

/// Enough backwards words to read the text reversed as well.
fn looks_reversed(tokens: &[crate::normalize::Token]) -> bool {
    let hits = tokens
        .iter()
        .filter(|t| REVERSED_WORDS.contains(&t.text.as_str()))
        .count();
    hits >= 2 || (hits == 1 && tokens.len() <= 6)
}

#[async_trait]
impl SafetyScreen for EmbeddedScreen {
    fn name(&self) -> &str {
        "embedded"
    }

    async fn screen(&self, request: &ScreenRequest<'_>) -> Result<ScreenReport, ScreenError> {
        Ok(self.screen_text(request))
    }
}
