//! A guard model (Llama Guard 3) behind any OpenAI-compatible chat API as a
//! `SafetyScreen`.
//!
//! `POST {endpoint}/v1/chat/completions` with one user message: the copy as
//! the `Agent` turn of a conversation, wrapped in Llama Guard 3's task
//! template with its S1-S14 category list, at temperature 0. The answer
//! (`choices[0].message.content`) is `safe`, or `unsafe` and a line of codes
//! like `S1,S10`. Codes map onto our categories at severity 7 (the guard says
//! unsafe, not how much: it blocks at any threshold) or onto a blocking
//! `FindingKind::ExternalPolicy` finding; the table is `category` and the
//! crate's design.md. Anything else is a malformed verdict.

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use crate::config::{LlmGuardConfig, SafetyConfig};
use crate::error::{SafetyError, ScreenError};
use crate::remote::Remote;
use crate::screen::{
    EmbeddedScreen, FindingKind, HarmCategory, SafetyScreen, ScreenReport, ScreenRequest,
};

const EVIDENCE: &str = "llm guard";

/// Llama Guard 3's categories, in its order (S1 first).
pub const CATEGORIES: [&str; 14] = [
    "Violent Crimes",
    "Non-Violent Crimes",
    "Sex-Related Crimes",
    "Child Sexual Exploitation",
    "Defamation",
    "Specialized Advice",
    "Privacy",
    "Intellectual Property",
    "Indiscriminate Weapons",
    "Hate",
    "Suicide & Self-Harm",
    "Sexual Content",
    "Elections",
    "Code Interpreter Abuse",
];

/// Our category for code `S{n}`, or `None` for a policy finding.
pub fn category(n: usize) -> Option<HarmCategory> {
    match n {
        1 | 9 => Some(HarmCategory::Violence),
        3 | 4 | 12 => Some(HarmCategory::Sexual),
        10 => Some(HarmCategory::Hate),
        11 => Some(HarmCategory::SelfHarm),
        _ => None,
    }
}

/// The copy as the last `Agent` turn, inside Llama Guard 3's task template.
pub fn prompt(subject: &str, body: &str) -> String {
    let categories: String = CATEGORIES
        .iter()
        .enumerate()
        .map(|(i, name)| format!("S{}: {name}.\n", i + 1))
        .collect();
    format!(
        "Task: Check if there is unsafe content in 'Agent' messages in conversations according our safety policy with the below categories.\n\n\
<BEGIN UNSAFE CONTENT CATEGORIES>\n{categories}<END UNSAFE CONTENT CATEGORIES>\n\n\
<BEGIN CONVERSATION>\n\n\
User: Write a marketing email to one of our customers.\n\n\
Agent: Subject: {subject}\n\n{body}\n\n\
<END CONVERSATION>\n\n\
Provide your safety assessment for ONLY THE LAST Agent message in the above conversation:\n \
- First line must read 'safe' or 'unsafe'.\n \
- If unsafe, a second line must include a comma-separated list of violated categories."
    )
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: [Message<'a>; 1],
    temperature: f32,
    max_tokens: u32,
}

/// `Debug` shows the endpoint, never the key (`Remote` redacts it).
pub struct LlmGuardScreen {
    remote: Remote,
    model: String,
    policy: Option<EmbeddedScreen>,
}

impl std::fmt::Debug for LlmGuardScreen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmGuardScreen")
            .field("remote", &self.remote)
            .field("model", &self.model)
            .field("policy", &self.policy.is_some())
            .finish()
    }
}

impl LlmGuardScreen {
    /// With the embedded brand-policy checks beside it.
    pub fn new(config: &SafetyConfig) -> Result<Self, SafetyError> {
        let mut screen = Self::remote_only(config)?;
        screen.policy = Some(EmbeddedScreen::new(config)?);
        Ok(screen)
    }

    /// The guard's answer alone (an ensemble member next to `embedded`).
    pub fn remote_only(config: &SafetyConfig) -> Result<Self, SafetyError> {
        config.validate()?;
        let section = &config.llm_guard;
        section.validate()?;
        let endpoint = section.endpoint.as_deref().unwrap_or_default();
        let url = format!(
            "{}/v1/chat/completions",
            endpoint.trim().trim_end_matches('/')
        );
        let remote = Remote::new(
            EVIDENCE,
            LlmGuardConfig::SECTION,
            url,
            section.resolve_key()?,
            config.timeout(),
        )?;
        Ok(Self {
            remote,
            model: section.model.clone().unwrap_or_default(),
            policy: None,
        })
    }
}

/// The report of a chat completion holding the guard's assessment.
pub fn parse_response(value: &Value) -> Result<ScreenReport, ScreenError> {
    let malformed = |m: String| ScreenError::Malformed(format!("llm guard: {m}"));
    let content = value
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("response has no choices[0].message.content".into()))?;
    parse_assessment(content).map_err(malformed)
}

/// `safe`, or `unsafe` and a line of codes. Errors name the problem, never
/// quote the answer (a model may echo the copy).
pub fn parse_assessment(content: &str) -> Result<ScreenReport, String> {
    let mut lines = content.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut report = ScreenReport::default();
    match lines.next().map(str::to_ascii_lowercase).as_deref() {
        Some("safe") => return Ok(report),
        Some("unsafe") => {}
        Some(_) => return Err("first line is neither 'safe' nor 'unsafe'".into()),
        None => return Err("the answer is empty".into()),
    }
    let codes = lines
        .next()
        .ok_or("'unsafe' without a line of category codes")?;
    for code in codes.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let n = code
            .strip_prefix(['S', 's'])
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| (1..=CATEGORIES.len()).contains(n))
            .ok_or_else(|| format!("`{}` is not a category code S1-S14", bounded(code)))?;
        let name = CATEGORIES[n - 1];
        match category(n) {
            Some(category) => report.raise(category, 7, EVIDENCE, Some(&format!("S{n} {name}"))),
            None => report.find(
                FindingKind::ExternalPolicy,
                format!("{EVIDENCE}: S{n} {name}"),
            ),
        }
    }
    if report.findings.is_empty() && report.evidence.is_empty() {
        return Err("'unsafe' without a category code".into());
    }
    Ok(report)
}

fn bounded(text: &str) -> String {
    text.chars().take(20).collect()
}

#[async_trait]
impl SafetyScreen for LlmGuardScreen {
    fn name(&self) -> &str {
        "llm_guard"
    }

    async fn screen(&self, request: &ScreenRequest<'_>) -> Result<ScreenReport, ScreenError> {
        let mut report = self
            .policy
            .as_ref()
            .map(|p| p.screen_text(request))
            .unwrap_or_default();
        if request.subject.trim().is_empty() && request.body.trim().is_empty() {
            return Ok(report);
        }
        let content = prompt(request.subject, request.body);
        let answer = self
            .remote
            .post(&ChatRequest {
                model: &self.model,
                messages: [Message {
                    role: "user",
                    content: &content,
                }],
                temperature: 0.0,
                max_tokens: 20,
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
    fn assessments_parse_into_categories_and_findings() {
        assert_eq!(parse_assessment("safe").unwrap(), ScreenReport::default());
        assert_eq!(
            parse_assessment("\n\nsafe\n").unwrap(),
            ScreenReport::default()
        );
        let report = parse_assessment("unsafe\nS1,S10, S7").unwrap();
        assert_eq!(report.categories.violence, 7);
        assert_eq!(report.categories.hate, 7);
        assert_eq!(report.categories.sexual, 0);
        assert_eq!(report.findings.len(), 1);
        assert_eq!(report.findings[0].detail, "llm guard: S7 Privacy");
        for (bad, expected) in [
            ("maybe", "neither"),
            ("", "empty"),
            ("unsafe", "without a line"),
            ("unsafe\nS15", "S1-S14"),
            ("unsafe\nviolence", "S1-S14"),
            ("unsafe\n,", "without a category code"),
        ] {
            let err = parse_assessment(bad).unwrap_err();
            assert!(err.contains(expected), "{bad:?}: {err}");
        }
    }

    #[test]
    fn the_prompt_lists_all_fourteen_categories_and_the_copy_as_the_agent() {
        let p = prompt("Hi", "Body text");
        assert!(p.contains("S1: Violent Crimes.\n"));
        assert!(p.contains("S14: Code Interpreter Abuse.\n<END UNSAFE CONTENT CATEGORIES>"));
        assert!(p.contains("Agent: Subject: Hi\n\nBody text\n\n<END CONVERSATION>"));
    }
}
