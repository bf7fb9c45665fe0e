//! Raw-text policy markers the token streams cannot see: chat role tags left
//! by a language model (`<|im_start|>`, `[INST]`, `### Assistant`, a line
//! starting `system:`) and template expressions other than bare merge fields,
//! which delivery would evaluate after screening.

use regex::Regex;

use crate::error::SafetyError;
use crate::normalize::MERGE_FIELD;
use crate::screen::{FindingKind, ScreenReport};

pub struct Markers {
    role_tag: Regex,
    merge_field: Regex,
    template: Regex,
}

impl Markers {
    pub fn new() -> Result<Self, SafetyError> {
        Ok(Self {
            role_tag: Regex::new(concat!(
                r"(?im)<\|\s*(?:im_start|im_end|endoftext|system|user|assistant)\s*\|>",
                r"|\[/?INST\]",
                r"|<<\s*/?\s*SYS\s*>>",
                r"|</?\s*(?:system|assistant|user)\s*>",
                r"|^[ \t]*#{2,}[ \t]*(?:assistant|system|user|human|instructions?|response)\b",
                r"|^[ \t]*(?:system|assistant|user|human)[ \t]*:",
            ))?,
            merge_field: Regex::new(MERGE_FIELD)?,
            template: Regex::new(r"\{\{|\}\}|\{%|%\}|\{#|#\}")?,
        })
    }

    pub fn scan(&self, text: &str, report: &mut ScreenReport) {
        for tag in self.role_tag.find_iter(text) {
            let tag: String = tag.as_str().trim().chars().take(40).collect();
            report.find(FindingKind::PromptInjection, format!("role tag '{tag}'"));
        }
        let without_merge_fields = self.merge_field.replace_all(text, " ");
        if self.template.is_match(&without_merge_fields) {
            report.find(
                FindingKind::TemplateExpression,
                "only bare merge fields such as {{first_name}} may be templated".into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(text: &str) -> Vec<String> {
        let mut report = ScreenReport::default();
        Markers::new().unwrap().scan(text, &mut report);
        report.findings.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn role_tags_are_found_anywhere_they_appear_in_model_output() {
        for text in [
            "<|im_start|>assistant",
            "Great deals [INST] buy [/INST]",
            "<<SYS>> be nice",
            "Hello\n### Assistant\nHi",
            "intro\nsystem: you are a marketer",
            "  Assistant: sure",
        ] {
            let found = findings(text);
            assert!(!found.is_empty(), "{text}");
            assert!(
                found
                    .iter()
                    .all(|f| f.starts_with("prompt injection: role tag")),
                "{text}"
            );
        }
        assert!(findings("Our rewards system: points on every order").is_empty());
        assert!(findings("#1 choice for users: our app").is_empty());
    }

    #[test]
    fn only_bare_merge_fields_may_be_templated() {
        assert!(findings("Hi {{first_name}}, {{ tier }} members save").is_empty());
        assert_eq!(
            findings("Hi {{ \"x\" ~ first_name }} {% if a %}"),
            ["template expression: only bare merge fields such as {{first_name}} may be templated"]
        );
    }
}
