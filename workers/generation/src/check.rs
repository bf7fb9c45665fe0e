//! The generation contract every draft must meet, whichever backend wrote it.
//!
//! Safety screens content later; this check catches what would make a variant
//! unusable downstream no matter what safety thinks: a subject that does not fit,
//! citations that resolve to nothing, merge fields delivery would reject.

use cpo_shared::model::Brief;

use crate::generator::Draft;

/// Longest subject line, in characters (not bytes).
pub const MAX_SUBJECT_CHARS: usize = 60;

/// The only merge fields delivery renders; any other `{{...}}` is rejected there.
pub const MERGE_FIELDS: &[&str] = &["first_name", "location", "tier", "cta_url"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DraftViolation {
    #[error("subject is empty")]
    EmptySubject,
    #[error("subject has {chars} characters, more than {MAX_SUBJECT_CHARS}")]
    SubjectTooLong { chars: usize },
    #[error("subject spans several lines")]
    MultilineSubject,
    #[error("subject contains a merge field; subjects are sent as written")]
    MergeFieldInSubject,
    #[error("body is empty")]
    EmptyBody,
    #[error("cites `{0}`, which is not one of the brief's snippets")]
    UnknownCitation(String),
    #[error("citation list {listed:?} does not match the body's citations {in_body:?}")]
    CitationListMismatch {
        listed: Vec<String>,
        in_body: Vec<String>,
    },
    #[error("unknown merge field `{0}`")]
    UnknownMergeField(String),
    #[error("template syntax other than merge fields: `{0}`")]
    TemplateSyntax(String),
    #[error("uses {{{{cta_url}}}} but the campaign has no call to action URL")]
    CtaWithoutUrl,
}

/// Check a draft against the contract. A draft without citations passes here
/// (safety blocks it, fail-closed); a draft citing anything outside the brief does not.
pub fn check_draft(draft: &Draft, brief: &Brief) -> Result<(), DraftViolation> {
    let subject = draft.subject.trim();
    if subject.is_empty() {
        return Err(DraftViolation::EmptySubject);
    }
    let chars = draft.subject.chars().count();
    if chars > MAX_SUBJECT_CHARS {
        return Err(DraftViolation::SubjectTooLong { chars });
    }
    if draft.subject.contains(['\n', '\r']) {
        return Err(DraftViolation::MultilineSubject);
    }
    if draft.subject.contains("{{") || draft.subject.contains("}}") {
        return Err(DraftViolation::MergeFieldInSubject);
    }
    if draft.body.trim().is_empty() {
        return Err(DraftViolation::EmptyBody);
    }
    let in_body = cited_ids(&draft.body);
    for id in draft
        .citations
        .iter()
        .map(String::as_str)
        .chain(in_body.iter().copied())
    {
        if !brief.snippets.iter().any(|s| s.id == id) {
            return Err(DraftViolation::UnknownCitation(id.to_string()));
        }
    }
    if draft
        .citations
        .iter()
        .map(String::as_str)
        .ne(in_body.iter().copied())
    {
        return Err(DraftViolation::CitationListMismatch {
            listed: draft.citations.clone(),
            in_body: in_body.iter().map(|s| s.to_string()).collect(),
        });
    }
    for field in merge_fields(&draft.body)? {
        if !MERGE_FIELDS.contains(&field) {
            return Err(DraftViolation::UnknownMergeField(field.to_string()));
        }
        if field == "cta_url" && brief.campaign.call_to_action_url.is_none() {
            return Err(DraftViolation::CtaWithoutUrl);
        }
    }
    Ok(())
}

/// Ids cited as `[id]` in a body, in order of first use. A bracketed run with
/// whitespace inside (`[see below]`) is prose, not a citation.
pub fn cited_ids(body: &str) -> Vec<&str> {
    let mut ids: Vec<&str> = Vec::new();
    let mut rest = body;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else { break };
        let inner = &after[..close];
        if !inner.is_empty() && !inner.contains(char::is_whitespace) && !inner.contains('[') {
            if !ids.contains(&inner) {
                ids.push(inner);
            }
            rest = &after[close + 1..];
        } else {
            rest = after;
        }
    }
    ids
}

/// Names of the `{{ name }}` merge fields in a template, in order. Any other
/// template syntax (`{% %}`, `{# #}`, an unclosed `{{`) is an error, because
/// delivery's renderer would interpret it.
pub fn merge_fields(template: &str) -> Result<Vec<&str>, DraftViolation> {
    for tag in ["{%", "%}", "{#", "#}"] {
        if template.contains(tag) {
            return Err(DraftViolation::TemplateSyntax(tag.to_string()));
        }
    }
    let mut fields = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(DraftViolation::TemplateSyntax("{{".into()));
        };
        fields.push(after[..close].trim());
        rest = &after[close + 2..];
    }
    if rest.contains("}}") {
        return Err(DraftViolation::TemplateSyntax("}}".into()));
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpo_shared::model::{CampaignContext, SegmentProfile, Snippet};

    fn brief(cta: Option<&str>) -> Brief {
        Brief {
            campaign: CampaignContext {
                campaign_id: "c1".into(),
                name: "Spring".into(),
                objective: "o".into(),
                call_to_action_url: cta.map(String::from),
                tones: vec![],
                arm_weights: Default::default(),
            },
            segment: SegmentProfile {
                name: "Standard".into(),
                description: String::new(),
                traits: vec![],
                size: 1,
                mean_avg_order_value: 0.0,
                mean_purchase_frequency: 0.0,
                mean_last_engagement_days: 0.0,
                mean_engagement: 0.0,
            },
            segments_total: 1,
            query: String::new(),
            snippets: vec![Snippet {
                id: "doc-1".into(),
                title: "t".into(),
                category: "product".into(),
                text: "A fact.".into(),
                relevance: 0.9,
            }],
        }
    }

    fn draft(subject: &str, body: &str, citations: &[&str]) -> Draft {
        Draft {
            subject: subject.into(),
            body: body.into(),
            citations: citations.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_well_formed_draft_passes() {
        let d = draft(
            "Hi",
            "Hi {{first_name}},\n\nA fact. [doc-1]\n\n{{cta_url}}",
            &["doc-1"],
        );
        assert_eq!(check_draft(&d, &brief(Some("https://x"))), Ok(()));
    }

    #[test]
    fn subject_length_counts_chars_not_bytes() {
        let b = brief(None);
        let sixty_accented = "é".repeat(60);
        assert_eq!(check_draft(&draft(&sixty_accented, "x", &[]), &b), Ok(()));
        let long = "é".repeat(61);
        assert_eq!(
            check_draft(&draft(&long, "x", &[]), &b),
            Err(DraftViolation::SubjectTooLong { chars: 61 })
        );
    }

    #[test]
    fn citations_must_resolve_and_match_the_body() {
        let b = brief(None);
        assert_eq!(
            check_draft(&draft("s", "Fact. [doc-9]", &["doc-9"]), &b),
            Err(DraftViolation::UnknownCitation("doc-9".into()))
        );
        assert!(matches!(
            check_draft(&draft("s", "Fact. [doc-1]", &[]), &b),
            Err(DraftViolation::CitationListMismatch { .. })
        ));
    }

    #[test]
    fn merge_fields_are_limited_and_cta_needs_a_url() {
        let b = brief(None);
        assert_eq!(
            check_draft(&draft("s", "Hi {{ email }}", &[]), &b),
            Err(DraftViolation::UnknownMergeField("email".into()))
        );
        assert_eq!(
            check_draft(&draft("s", "Go {{cta_url}}", &[]), &b),
            Err(DraftViolation::CtaWithoutUrl)
        );
        assert!(matches!(
            check_draft(&draft("s", "{% if x %}", &[]), &b),
            Err(DraftViolation::TemplateSyntax(_))
        ));
        assert_eq!(
            check_draft(&draft("Hi {{first_name}}", "x", &[]), &b),
            Err(DraftViolation::MergeFieldInSubject)
        );
    }

    #[test]
    fn cited_ids_skip_prose_brackets_and_keep_first_use_order() {
        assert_eq!(
            cited_ids("A. [b] B. [a] C. [b] [see note] [] D."),
            vec!["b", "a"]
        );
    }
}
