//! A single-pass merge-field renderer.
//!
//! Templates are generated text, so nothing in them may execute: the only
//! syntax is `{{ field }}` for four known fields; block or comment tags
//! (`{%`, `{#`) and anything else inside `{{ }}` are errors. Merge values are
//! inserted once and never parsed again, and are cleaned first so they cannot
//! carry template syntax or header breaks downstream (see `clean_value`).

use std::borrow::Cow;
use std::ops::Range;

use crate::json_text::{self, JsonText};

/// The fields a template may merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeField {
    FirstName,
    Location,
    Tier,
    CtaUrl,
}

impl MergeField {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "first_name" => Some(Self::FirstName),
            "location" => Some(Self::Location),
            "tier" => Some(Self::Tier),
            "cta_url" => Some(Self::CtaUrl),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("unknown merge field `{0}` (known: first_name, location, tier, cta_url)")]
    UnknownField(String),
    #[error("unterminated merge field at byte {0}")]
    Unterminated(usize),
    #[error("template logic `{0}` is not allowed in message content")]
    TemplateLogic(&'static str),
    #[error("the subject contains a control character or line break")]
    SubjectLineBreak,
    #[error("the template uses {{{{cta_url}}}} but the campaign has no call_to_action_url")]
    MissingCtaUrl,
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(Range<usize>),
    Field(MergeField),
}

/// A subject or body split into literal text and merge fields, once per template.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledText<'a> {
    source: &'a str,
    pieces: Vec<Piece>,
    /// Each piece's text JSON-escaped (empty for fields), for `render_json`.
    escaped: Vec<Cow<'a, str>>,
}

impl<'a> CompiledText<'a> {
    pub fn parse(source: &'a str) -> Result<Self, RenderError> {
        for tag in ["{%", "{#"] {
            if source.contains(tag) {
                return Err(RenderError::TemplateLogic(tag));
            }
        }
        let mut pieces = Vec::new();
        let mut text_start = 0;
        while let Some(offset) = source[text_start..].find("{{") {
            let open = text_start + offset;
            let inner_start = open + 2;
            let close = source[inner_start..]
                .find("}}")
                .map(|i| inner_start + i)
                .ok_or(RenderError::Unterminated(open))?;
            let name = source[inner_start..close].trim();
            let field = MergeField::parse(name)
                .ok_or_else(|| RenderError::UnknownField(name.chars().take(64).collect()))?;
            if open > text_start {
                pieces.push(Piece::Text(text_start..open));
            }
            pieces.push(Piece::Field(field));
            text_start = close + 2;
        }
        if text_start < source.len() {
            pieces.push(Piece::Text(text_start..source.len()));
        }
        let escaped = pieces
            .iter()
            .map(|piece| match piece {
                Piece::Text(range) => json_text::escape(&source[range.clone()]),
                Piece::Field(_) => Cow::Borrowed(""),
            })
            .collect();
        Ok(Self {
            source,
            pieces,
            escaped,
        })
    }

    /// A subject goes into a mail header: no line breaks or control characters.
    pub fn parse_subject(source: &'a str) -> Result<Self, RenderError> {
        if source.chars().any(is_unsafe_char) {
            return Err(RenderError::SubjectLineBreak);
        }
        Self::parse(source)
    }

    pub fn uses(&self, field: MergeField) -> bool {
        self.pieces.contains(&Piece::Field(field))
    }

    pub fn render(&self, values: &MergeValues<'_>) -> Result<String, RenderError> {
        let mut out = String::with_capacity(self.source.len() + 64);
        for piece in &self.pieces {
            match piece {
                Piece::Text(range) => out.push_str(&self.source[range.clone()]),
                Piece::Field(MergeField::FirstName) => out.push_str(&values.first_name),
                Piece::Field(MergeField::Location) => out.push_str(&values.location),
                Piece::Field(MergeField::Tier) => out.push_str(&values.tier),
                Piece::Field(MergeField::CtaUrl) => {
                    out.push_str(values.cta_url.ok_or(RenderError::MissingCtaUrl)?)
                }
            }
        }
        Ok(out)
    }
}

impl CompiledText<'_> {
    /// Render as the contents of a JSON string: the escaped text pieces and
    /// the escaped values, equal to escaping what `render` gives.
    pub fn render_json(&self, values: &MergeValues<'_>) -> Result<JsonText, RenderError> {
        let capacity = self.escaped.iter().map(|t| t.len()).sum::<usize>() + 64;
        let mut out = String::with_capacity(capacity);
        for (piece, text) in self.pieces.iter().zip(&self.escaped) {
            match piece {
                Piece::Text(_) => out.push_str(text),
                Piece::Field(MergeField::FirstName) => {
                    out.push_str(&json_text::escape(&values.first_name))
                }
                Piece::Field(MergeField::Location) => {
                    out.push_str(&json_text::escape(&values.location))
                }
                Piece::Field(MergeField::Tier) => out.push_str(&json_text::escape(&values.tier)),
                Piece::Field(MergeField::CtaUrl) => out.push_str(&json_text::escape(
                    values.cta_url.ok_or(RenderError::MissingCtaUrl)?,
                )),
            }
        }
        Ok(JsonText::from_escaped(out))
    }
}

/// One recipient's cleaned merge values.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeValues<'a> {
    pub first_name: Cow<'a, str>,
    pub location: Cow<'a, str>,
    pub tier: Cow<'a, str>,
    /// Already checked with `cpo_shared::links::check_link`.
    pub cta_url: Option<&'a str>,
}

/// Control characters and the Unicode line and paragraph separators.
fn is_unsafe_char(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// A merge value made safe to insert: line breaks and tabs become spaces, other
/// control characters are dropped, braces become parentheses (so no value can
/// form `{{`, `{%` or `${` here or in an ESP's own template language), and the
/// result is cut to `max_chars` characters. Clean values are borrowed as-is.
pub fn clean_value(raw: &str, max_chars: usize) -> Cow<'_, str> {
    let clean = raw
        .chars()
        .all(|c| !is_unsafe_char(c) && c != '{' && c != '}');
    if clean && (raw.len() <= max_chars || raw.chars().count() <= max_chars) {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len().min(max_chars * 4));
    for c in raw.chars() {
        let mapped = match c {
            '\r' | '\n' | '\t' | '\u{2028}' | '\u{2029}' => ' ',
            '{' => '(',
            '}' => ')',
            c if c.is_control() => continue,
            c => c,
        };
        out.push(mapped);
    }
    if let Some((cut, _)) = out.char_indices().nth(max_chars) {
        out.truncate(cut);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn values(first_name: &str) -> MergeValues<'_> {
        MergeValues {
            first_name: clean_value(first_name, 64),
            location: Cow::Borrowed("Lyon"),
            tier: Cow::Borrowed("gold"),
            cta_url: Some("https://example.com/go"),
        }
    }

    #[test]
    fn renders_fields_with_or_without_inner_whitespace() {
        let t =
            CompiledText::parse("Hi {{first_name}} in {{ location }}/{{  tier\t}}: {{cta_url}}!")
                .unwrap();
        assert_eq!(
            t.render(&values("Ada")).unwrap(),
            "Hi Ada in Lyon/gold: https://example.com/go!"
        );
        assert!(t.uses(MergeField::CtaUrl));
        let plain = CompiledText::parse("no fields { here }").unwrap();
        assert_eq!(plain.render(&values("x")).unwrap(), "no fields { here }");
    }

    #[test]
    fn unknown_malformed_and_logic_templates_are_errors() {
        assert_eq!(
            CompiledText::parse("Dear {{ email }}").unwrap_err(),
            RenderError::UnknownField("email".into())
        );
        assert_eq!(
            CompiledText::parse("{{ first_name | upper }}").unwrap_err(),
            RenderError::UnknownField("first_name | upper".into())
        );
        assert_eq!(
            CompiledText::parse("Hi {{first_name").unwrap_err(),
            RenderError::Unterminated(3)
        );
        assert_eq!(
            CompiledText::parse("{% if true %}x{% endif %}").unwrap_err(),
            RenderError::TemplateLogic("{%")
        );
        assert_eq!(
            CompiledText::parse_subject("Hello\r\nBcc: all@example.com").unwrap_err(),
            RenderError::SubjectLineBreak
        );
    }

    #[test]
    fn missing_cta_url_is_an_error_only_when_used() {
        let mut v = values("Ada");
        v.cta_url = None;
        assert_eq!(
            CompiledText::parse("go {{cta_url}}").unwrap().render(&v),
            Err(RenderError::MissingCtaUrl)
        );
        assert_eq!(
            CompiledText::parse("Hi {{first_name}}")
                .unwrap()
                .render(&v)
                .unwrap(),
            "Hi Ada"
        );
    }

    #[test]
    fn injected_syntax_and_line_breaks_stay_inert() {
        let t = CompiledText::parse_subject("Hi {{first_name}}").unwrap();
        let rendered = t
            .render(&values(
                "{{cta_url}}{% for x in y %}\r\nBcc: evil@example.com",
            ))
            .unwrap();
        assert_eq!(
            rendered,
            "Hi ((cta_url))(% for x in y %)  Bcc: evil@example.com"
        );
        assert_eq!(clean_value("Zoë\u{0}\u{7}", 64), "Zoë");
        assert!(matches!(clean_value("Zoë", 64), Cow::Borrowed(_)));
        assert_eq!(clean_value("Bartholomew", 4), "Bart");
        assert_eq!(clean_value("ÉÉÉÉÉ", 3), "ÉÉÉ");
    }

    proptest! {
        #[test]
        fn no_value_can_inject_syntax_or_break_a_line(
            first in any::<String>(), location in any::<String>(), tier in any::<String>()
        ) {
            let t = CompiledText::parse_subject("Hi {{first_name}}, {{ location }} ({{tier}})").unwrap();
            let v = MergeValues {
                first_name: clean_value(&first, 40),
                location: clean_value(&location, 40),
                tier: clean_value(&tier, 40),
                cta_url: None,
            };
            let out = t.render(&v).unwrap();
            let injected = ["{{", "{%", "{#"].iter().any(|tag| out.contains(tag));
            prop_assert!(!injected, "template syntax in {:?}", out);
            prop_assert!(!out.chars().any(is_unsafe_char));
            prop_assert!(out.chars().count() <= "Hi ,  ()".chars().count() + 3 * 40);
        }

        #[test]
        fn json_rendering_is_the_escaped_plain_rendering(
            text in "[^{}]{0,20}", name in any::<String>(), tail in any::<String>()
        ) {
            let source = format!("{text}{{{{first_name}}}}\n\"{tail}\" {{{{cta_url}}}}{{{{tier}}}}");
            // tail may hold braces; only valid templates matter here
            if let Ok(t) = CompiledText::parse(&source) {
                let v = values(&name);
                let plain = t.render(&v).unwrap();
                prop_assert_eq!(t.render_json(&v).unwrap().plain(), plain.clone());
                prop_assert_eq!(
                    format!("\"{}\"", t.render_json(&v).unwrap().escaped()),
                    serde_json::to_string(&plain).unwrap()
                );
            }
        }

        #[test]
        fn templates_without_braces_render_verbatim(text in "[^{}]*") {
            let t = CompiledText::parse(&text).unwrap();
            prop_assert_eq!(t.render(&values("x")).unwrap(), text);
        }
    }
}
