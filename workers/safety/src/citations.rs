//! Citations are real: every `[id]` in the subject or body must name a snippet
//! retrieval returned for the segment, at least one must be present, and the
//! variant's `citations` field must list exactly the ids the text cites.
//!
//! Anything that looks like a citation counts as one (`[\S]{1,128}` without
//! brackets), so a made-up `[source]` cannot pass as decoration.

use crate::claims::Source;

/// What the cited ids (and the claims citing them) are checked against.
#[derive(Debug, Clone)]
pub struct CitationCheck<'a> {
    /// The ids the producer says it cited; `None` skips the agreement check.
    pub declared: Option<&'a [String]>,
    /// The snippets retrieval returned for the segment.
    pub snippets: Vec<Source<'a>>,
}

/// Longest id accepted inside `[...]`, in characters.
const MAX_ID_CHARS: usize = 128;

/// Cited ids in order of first use, each once. Same grammar as `normalize::CITATION`.
pub fn cited_ids<'t>(texts: &[&'t str]) -> Vec<&'t str> {
    let mut ids: Vec<&str> = Vec::new();
    for text in texts {
        let mut rest = *text;
        while let Some(open) = rest.find('[') {
            let after = &rest[open + 1..];
            let end = after
                .char_indices()
                .take(MAX_ID_CHARS + 1)
                .find(|(_, c)| *c == ']' || *c == '[' || c.is_whitespace());
            match end {
                Some((0, _)) | None => rest = after,
                Some((len, ']')) => {
                    let id = &after[..len];
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                    rest = &after[len + 1..];
                }
                Some((len, _)) => rest = &after[len..],
            }
        }
    }
    ids
}

/// Reasons to block; empty when the citations are sound.
pub fn check(subject: &str, body: &str, against: &CitationCheck<'_>) -> Vec<String> {
    let cited = cited_ids(&[subject, body]);
    let mut reasons = Vec::new();
    if cited.is_empty() {
        reasons.push(
            "no citation: the message must cite at least one snippet retrieved for its segment"
                .to_string(),
        );
    }
    for id in &cited {
        if !against.snippets.iter().any(|s| s.id == *id) {
            reasons.push(format!(
                "citation [{id}] does not match any snippet retrieved for this segment"
            ));
        }
    }
    if let Some(declared) = against.declared {
        for id in declared {
            if !cited.contains(&id.as_str()) {
                reasons.push(format!(
                    "citations field lists [{id}], which the text does not cite"
                ));
            }
        }
        for id in &cited {
            if !declared.iter().any(|d| d == id) {
                reasons.push(format!(
                    "text cites [{id}], which is missing from the citations field"
                ));
            }
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn against<'a>(declared: Option<&'a [String]>, snippets: &[&'a str]) -> CitationCheck<'a> {
        CitationCheck {
            declared,
            snippets: snippets
                .iter()
                .map(|id| Source {
                    id,
                    title: "",
                    text: "",
                })
                .collect(),
        }
    }

    #[test]
    fn ids_are_found_in_order_of_first_use() {
        assert_eq!(
            cited_ids(&[
                "New [doc-2]",
                "see [doc-1] and [doc-2]; [not an id] [] [[x]"
            ]),
            ["doc-2", "doc-1", "x"]
        );
    }

    #[test]
    fn sound_citations_pass() {
        let declared = vec!["doc-1".to_string(), "doc-2".to_string()];
        let reasons = check(
            "Hi [doc-1]",
            "Body [doc-2]",
            &against(Some(&declared), &["doc-1", "doc-2", "doc-3"]),
        );
        assert!(reasons.is_empty(), "{reasons:?}");
    }

    #[test]
    fn each_failure_names_the_bad_id() {
        let none = check("Hi", "no cites", &against(None, &["doc-1"]));
        assert!(none[0].starts_with("no citation"));

        let declared = vec!["doc-1".to_string(), "doc-9".to_string()];
        let reasons = check(
            "Hi",
            "[doc-1] [doc-7]",
            &against(Some(&declared), &["doc-1"]),
        );
        assert_eq!(
            reasons,
            [
                "citation [doc-7] does not match any snippet retrieved for this segment",
                "citations field lists [doc-9], which the text does not cite",
                "text cites [doc-7], which is missing from the citations field",
            ]
        );
    }

    proptest! {
        #[test]
        fn every_embedded_id_is_found(ids in proptest::collection::vec("[a-z0-9-]{1,20}", 1..5), filler in "[a-z ]{0,30}") {
            let text: String = ids.iter().map(|id| format!("{filler}[{id}]")).collect();
            let found = cited_ids(&[&text]);
            for id in &ids {
                prop_assert!(found.contains(&id.as_str()));
            }
        }
    }
}
