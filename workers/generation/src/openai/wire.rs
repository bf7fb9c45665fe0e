//! The chat-completions wire format and the prompt: pure, so it is tested
//! without a server.

use cpo_shared::model::Brief;
use cpo_shared::phrasing::{
    Framing, MAX_BRAND_CHARS, Register, ToneKind, bank, framings, signature,
};
use serde::{Deserialize, Serialize};

use crate::check::{MAX_SUBJECT_CHARS, MERGE_FIELDS, cited_ids};
use crate::generator::{Draft, GenerationError, Voice};
use crate::subject::{clean_inline, fit_words};
use crate::voice::SegmentKind;

#[derive(Debug, Serialize)]
pub struct ChatRequest<'a> {
    /// Omitted for Azure, where the deployment in the URL names the model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<&'a str>,
    pub messages: [ChatMessage; 2],
    pub temperature: f32,
    pub max_tokens: u32,
    pub response_format: ResponseFormat,
    /// Best-effort reproducibility where the backend supports it.
    pub seed: u64,
}

#[derive(Debug, Serialize)]
pub struct ChatMessage {
    pub role: &'static str,
    pub content: String,
}

#[derive(Debug, Serialize)]
pub struct ResponseFormat {
    #[serde(rename = "type")]
    pub kind: &'static str,
}

#[derive(Debug, Deserialize)]
pub struct ChatResponse {
    #[serde(default)]
    pub choices: Vec<Choice>,
}

#[derive(Debug, Deserialize)]
pub struct Choice {
    pub message: ResponseMessage,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ResponseMessage {
    #[serde(default)]
    pub content: Option<String>,
}

/// What the model is asked to return.
#[derive(Debug, Deserialize)]
struct DraftJson {
    subject: String,
    body: String,
    #[serde(default)]
    citations: Vec<String>,
}

pub const SYSTEM: &str = "You write marketing emails for a retail brand. You only state facts \
that appear in the numbered snippets you are given, copied word for word, and you cite each \
factual sentence immediately after it as [snippet-id]. You never invent prices, percentages, \
deadlines, product claims or promises. Every sentence that is not one of the fixed lines you \
are given is such a cited sentence. You answer with a single JSON object and nothing else.";

/// The user message: the brief, the voice and the rules, in plain text.
pub fn user_prompt(brief: &Brief, voice: Voice<'_>) -> String {
    let campaign = &brief.campaign;
    let mut p = String::with_capacity(2048);
    p.push_str(&format!(
        "Campaign: {}\nObjective: {}\n",
        campaign.name, campaign.objective
    ));
    match voice {
        Voice::Tone(tone) => {
            let segment = &brief.segment;
            p.push_str(&format!(
                "Audience segment: {} ({}); traits: {}\nTone: {tone}\n",
                segment.name,
                segment.description,
                segment.traits.join(", ")
            ));
            p.push_str(
                "Greet the reader with {{first_name}} and frame the message for this segment.\n",
            );
        }
        Voice::Control => p.push_str(
            "This is the control message: generic, not personalized, neutral in tone, \
             the same for every customer. Do not use {{first_name}} or any segment framing.\n",
        ),
    }
    p.push_str("\nSnippets (the only facts you may use):\n");
    for snippet in &brief.snippets {
        p.push_str(&format!(
            "[{}] ({}) {}: {}\n",
            snippet.id, snippet.category, snippet.title, snippet.text
        ));
    }
    // As the composer decides it: an empty URL is no URL.
    let has_url = campaign
        .call_to_action_url
        .as_deref()
        .is_some_and(|url| !url.trim().is_empty());
    p.push_str(&format!(
        "\nRules:\n\
         - subject: at most {MAX_SUBJECT_CHARS} characters, one line, no merge fields, no facts.\n\
         - body, each part on its own line, blank lines between parts: a greeting, a framing \
           line, a paragraph of 2 to 4 sentences copied verbatim from the snippets, each followed \
           by its [snippet-id], a call to action, and the sign-off with the signature on the \
           line under it.\n\
         - the greeting, framing line, call to action and sign-off are fixed lines: copy one of \
           the options below exactly, character for character. Any other sentence without a \
           [snippet-id] blocks the message, and so does a cited sentence stating a number, \
           price, percentage, date, deadline, code, product name or promise its snippet does \
           not state.\n\
         - merge fields allowed in the body: {}; write them as {{{{name}}}}.\n",
        MERGE_FIELDS
            .iter()
            .filter(|f| **f != "cta_url" || has_url)
            .copied()
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let (register, framing) = match voice {
        Voice::Tone(tone) => (
            Register::Tone(ToneKind::of(tone)),
            SegmentKind::of(&brief.segment).framing(),
        ),
        Voice::Control => (Register::Control, Framing::Neutral),
    };
    let phrases = bank(register);
    let ctas = if has_url {
        phrases.ctas_with_url
    } else {
        phrases.ctas_without_url
    };
    for (part, options) in [
        ("greeting", phrases.greetings),
        ("framing line", framings(register, framing)),
        ("call to action", ctas),
        ("sign-off", phrases.sign_offs),
    ] {
        p.push_str(&format!("- {part}, one of: {}\n", quoted(options)));
    }
    let brand = signature(fit_words(&clean_inline(&campaign.name), MAX_BRAND_CHARS));
    p.push_str(&format!("- signature: \"{brand}\"\n"));
    p.push_str(
        "- citations: the snippet ids you cited, in order of first use.\n\
         Answer with JSON: {\"subject\": \"...\", \"body\": \"...\", \"citations\": [\"...\"]}\n",
    );
    p
}

fn quoted(options: &[&str]) -> String {
    options
        .iter()
        .map(|o| format!("\"{o}\""))
        .collect::<Vec<_>>()
        .join(" | ")
}

/// The draft inside a chat-completions response. Shape problems are `Malformed`;
/// a content filter is `Rejected` (asking again gets the same answer).
pub fn parse_response(raw: &[u8]) -> Result<Draft, GenerationError> {
    let response: ChatResponse = serde_json::from_slice(raw).map_err(|e| {
        GenerationError::Malformed(format!("response is not chat completions JSON: {e}"))
    })?;
    let choice = response
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| GenerationError::Malformed("response has no choices".into()))?;
    match choice.finish_reason.as_deref() {
        Some("content_filter") => {
            return Err(GenerationError::Rejected(
                "the backend's content filter stopped the draft".into(),
            ));
        }
        Some("length") => {
            return Err(GenerationError::Malformed(
                "the draft was cut off at max_tokens".into(),
            ));
        }
        _ => {}
    }
    let content = choice
        .message
        .content
        .ok_or_else(|| GenerationError::Malformed("response message has no content".into()))?;
    let json = strip_code_fence(&content);
    let draft: DraftJson = serde_json::from_str(json)
        .map_err(|e| GenerationError::Malformed(format!("draft is not the agreed JSON: {e}")))?;
    // The body is what customers read, so its markers are the truth; the model's
    // own list must agree with them (checked by `check_draft`), in first-use order.
    let in_body: Vec<String> = cited_ids(&draft.body)
        .into_iter()
        .map(String::from)
        .collect();
    let mut listed: Vec<String> = Vec::with_capacity(draft.citations.len());
    for id in draft.citations {
        if !listed.contains(&id) {
            listed.push(id);
        }
    }
    let citations = if same_set(&listed, &in_body) {
        in_body
    } else {
        listed
    };
    Ok(Draft {
        subject: draft.subject.trim().to_string(),
        body: draft.body.trim().to_string(),
        citations,
    })
}

fn same_set(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

/// Models sometimes wrap JSON in a Markdown fence despite being asked not to.
fn strip_code_fence(content: &str) -> &str {
    let trimmed = content.trim();
    let Some(inner) = trimmed.strip_prefix("```") else {
        return trimmed;
    };
    let inner = inner.strip_prefix("json").unwrap_or(inner);
    inner.strip_suffix("```").unwrap_or(inner).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(content: &str, finish: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "choices": [{"index": 0, "finish_reason": finish,
                         "message": {"role": "assistant", "content": content}}]
        }))
        .unwrap_or_default()
    }

    #[test]
    fn parses_fenced_json_and_orders_citations_by_first_use() {
        let content = "```json\n{\"subject\": \"Hi\", \"body\": \"A. [b] B. [a]\", \"citations\": [\"a\", \"b\"]}\n```";
        let draft = parse_response(&response(content, "stop")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(draft.subject, "Hi");
        assert_eq!(draft.citations, vec!["b", "a"]);
    }

    #[test]
    fn a_disagreeing_citation_list_is_kept_for_the_check_to_reject() {
        let content = r#"{"subject": "Hi", "body": "A. [b]", "citations": ["a"]}"#;
        let draft = parse_response(&response(content, "stop")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(draft.citations, vec!["a"]);
    }

    #[test]
    fn shape_problems_are_malformed_and_filters_rejected() {
        assert!(matches!(
            parse_response(b"{not json"),
            Err(GenerationError::Malformed(_))
        ));
        assert!(matches!(
            parse_response(b"{\"choices\": []}"),
            Err(GenerationError::Malformed(_))
        ));
        assert!(matches!(
            parse_response(&response("just prose", "stop")),
            Err(GenerationError::Malformed(_))
        ));
        assert!(matches!(
            parse_response(&response("{}", "content_filter")),
            Err(GenerationError::Rejected(_))
        ));
        assert!(matches!(
            parse_response(&response("{\"subject\":", "length")),
            Err(GenerationError::Malformed(_))
        ));
    }
}
