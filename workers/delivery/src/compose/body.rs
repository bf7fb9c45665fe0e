//! The rendered body (plain text with `[doc-id]` citation markers) as
//! paragraphs of segments, ready for the text and the HTML layout.
//!
//! A citation marker never reaches the customer: it becomes a numbered
//! footnote when its document has a URL and is removed otherwise. The call to
//! action URL becomes a link (with the UTM parameters); every other piece is
//! text, which the HTML layout escapes.

use std::collections::HashMap;

use serde::Serialize;

/// One piece of a paragraph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Segment {
    Text { text: String },
    LineBreak,
    Link { href: String, text: String },
    Note { number: usize, href: String },
}

/// A footnote: the document a citation named and where to read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Footnote {
    pub number: usize,
    pub doc_id: String,
    pub href: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Body {
    pub paragraphs: Vec<Vec<Segment>>,
    pub notes: Vec<Footnote>,
}

/// What `parse` needs besides the text.
pub struct Links<'a> {
    /// Ids cited by the message (always markers).
    pub citations: &'a [String],
    /// Document id -> URL (already with UTM parameters).
    pub doc_urls: &'a HashMap<String, String>,
    /// The campaign's link as written in the body, and its href.
    pub call_to_action: Option<(&'a str, &'a str)>,
}

/// A marker `[id]` is a citation when the message cites `id`, a document of
/// the corpus has it, or it has the shape of a corpus id (lowercase letters
/// and digits joined by dashes, at least one dash): generated copy cites
/// nothing else, and a stray marker must not leak either.
fn is_citation(id: &str, links: &Links<'_>) -> bool {
    links.citations.iter().any(|c| c == id)
        || links.doc_urls.contains_key(id)
        || (id.contains('-')
            && id.len() <= 128
            && id.split('-').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            }))
}

pub fn parse(text: &str, links: &Links<'_>) -> Body {
    let mut body = Body::default();
    let normalized = text.replace("\r\n", "\n");
    for raw in split_paragraphs(&normalized) {
        let mut segments = Vec::new();
        for (i, line) in raw.lines().enumerate() {
            if i > 0 {
                segments.push(Segment::LineBreak);
            }
            let line = strip_unlinked(line.trim_end(), links);
            line_segments(&line, links, &mut body.notes, &mut segments);
        }
        // A paragraph that was only citations has nothing left to show.
        if segments.iter().any(|s| match s {
            Segment::Text { text } => !text.trim().is_empty(),
            Segment::LineBreak => false,
            Segment::Link { .. } | Segment::Note { .. } => true,
        }) {
            body.paragraphs.push(segments);
        }
    }
    body
}

fn split_paragraphs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.split('\n') {
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            continue;
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(line);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn push_text(segments: &mut Vec<Segment>, text: &str) {
    if text.is_empty() {
        return;
    }
    if let Some(Segment::Text { text: last }) = segments.last_mut() {
        last.push_str(text);
    } else {
        segments.push(Segment::Text { text: text.into() });
    }
}

/// Drops the space before a removed marker (`outside. [doc]` -> `outside.`).
fn trim_trailing_space(segments: &mut [Segment]) {
    if let Some(Segment::Text { text }) = segments.last_mut() {
        let kept = text.trim_end_matches(' ').len();
        text.truncate(kept);
    }
}

/// Removes every citation marker whose document has no URL (with the space
/// before it), again and again until none is left: removing `[doc-a]` from
/// `[doc-[doc-a]a]` must not leave a marker the customer sees.
fn strip_unlinked(line: &str, links: &Links<'_>) -> String {
    let mut current = line.to_string();
    loop {
        let mut out = String::with_capacity(current.len());
        let mut rest = current.as_str();
        let mut changed = false;
        while let Some(at) = rest.find('[') {
            let after = &rest[at + 1..];
            let Some(close) = after.find(']') else {
                break;
            };
            let id = &after[..close];
            if is_citation(id, links) && !links.doc_urls.contains_key(id) {
                out.push_str(&rest[..at]);
                out.truncate(out.trim_end_matches(' ').len());
                rest = &after[close + 1..];
                if out.is_empty() {
                    rest = rest.trim_start_matches(' ');
                }
                changed = true;
            } else {
                out.push_str(&rest[..at + 1]);
                rest = after;
            }
        }
        out.push_str(rest);
        if !changed {
            return out;
        }
        current = out;
    }
}

fn line_segments(
    line: &str,
    links: &Links<'_>,
    notes: &mut Vec<Footnote>,
    segments: &mut Vec<Segment>,
) {
    let mut rest = line;
    while !rest.is_empty() {
        let cta_at = links
            .call_to_action
            .and_then(|(url, _)| (!url.is_empty()).then(|| rest.find(url)).flatten());
        let marker_at = rest.find('[');
        match (cta_at, marker_at) {
            (Some(at), m) if m.is_none_or(|m| at <= m) => {
                let (url, href) = links.call_to_action.unwrap_or_default();
                push_text(segments, &rest[..at]);
                segments.push(Segment::Link {
                    href: href.to_string(),
                    text: url.to_string(),
                });
                rest = &rest[at + url.len()..];
            }
            (_, Some(at)) => {
                let after = &rest[at + 1..];
                let Some(close) = after.find(']') else {
                    push_text(segments, rest);
                    return;
                };
                let id = &after[..close];
                if !is_citation(id, links) {
                    push_text(segments, &rest[..at + 1]);
                    rest = after;
                    continue;
                }
                push_text(segments, &rest[..at]);
                trim_trailing_space(segments);
                if let Some(href) = links.doc_urls.get(id) {
                    let number = match notes.iter().find(|n| n.doc_id == id) {
                        Some(note) => note.number,
                        None => {
                            let number = notes.len() + 1;
                            notes.push(Footnote {
                                number,
                                doc_id: id.to_string(),
                                href: href.clone(),
                            });
                            number
                        }
                    };
                    segments.push(Segment::Note {
                        number,
                        href: href.clone(),
                    });
                }
                rest = &after[close + 1..];
                // A marker that opened the line leaves no leading space behind.
                if matches!(segments.last(), None | Some(Segment::LineBreak)) {
                    rest = rest.trim_start_matches(' ');
                }
            }
            _ => {
                push_text(segments, rest);
                return;
            }
        }
    }
}

/// The text part: paragraphs separated by blank lines, notes as `[n]`, links
/// as their href.
pub fn to_text(body: &Body) -> String {
    let mut out = String::new();
    for (i, paragraph) in body.paragraphs.iter().enumerate() {
        if i > 0 {
            out.push_str("\n\n");
        }
        for segment in paragraph {
            match segment {
                Segment::Text { text } => out.push_str(text),
                Segment::LineBreak => out.push('\n'),
                Segment::Link { href, .. } => out.push_str(href),
                Segment::Note { number, .. } => {
                    out.push_str(&format!("[{number}]"));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links<'a>(
        citations: &'a [String],
        urls: &'a HashMap<String, String>,
        cta: Option<(&'a str, &'a str)>,
    ) -> Links<'a> {
        Links {
            citations,
            doc_urls: urls,
            call_to_action: cta,
        }
    }

    #[test]
    fn citations_become_footnotes_or_leave_the_copy() {
        let citations = vec!["prod-a".to_string(), "promo-b".to_string()];
        let urls = HashMap::from([("prod-a".to_string(), "https://x.example/a".to_string())]);
        let text = "Hi Ada,\n\nWarm jackets. [prod-a] Take 15% off. [promo-b] Boots. [prod-a]\n\nLearn more at https://x.example/autumn\n\nRegards,\nThe team";
        let body = parse(
            text,
            &links(
                &citations,
                &urls,
                Some((
                    "https://x.example/autumn",
                    "https://x.example/autumn?utm_source=s",
                )),
            ),
        );
        let plain = to_text(&body);
        assert!(
            !plain.contains("[prod-") && !plain.contains("[promo-"),
            "{plain}"
        );
        assert!(
            plain.contains("Warm jackets.[1] Take 15% off. Boots.[1]"),
            "{plain}"
        );
        assert!(plain.contains("Learn more at https://x.example/autumn?utm_source=s"));
        assert!(plain.ends_with("Regards,\nThe team"), "{plain}");
        assert_eq!(body.notes.len(), 1);
        assert_eq!(body.notes[0].href, "https://x.example/a");
        assert_eq!(body.paragraphs.len(), 4);
    }

    #[test]
    fn stray_corpus_shaped_markers_are_removed_and_other_brackets_kept() {
        let body = parse(
            "See [policy-returns] and [note] or [Bob-X] [",
            &links(&[], &HashMap::new(), None),
        );
        assert_eq!(to_text(&body), "See and [note] or [Bob-X] [");
    }

    /// Every `[x]` (no `[` inside) of `text` that has the shape of a citation.
    fn markers(text: &str, links: &Links<'_>) -> Vec<String> {
        let mut found = Vec::new();
        for (at, _) in text.match_indices('[') {
            let after = &text[at + 1..];
            if let Some(close) = after.find(']') {
                let id = &after[..close];
                if !id.contains('[') && is_citation(id, links) {
                    found.push(id.to_string());
                }
            }
        }
        found
    }

    proptest::proptest! {
        #[test]
        fn no_citation_marker_survives_whatever_surrounds_it(
            pieces in proptest::collection::vec(
                proptest::prop_oneof![
                    "[ab\\[\\]\\- \n]{0,6}",
                    proptest::strategy::Just("[prod-a]".to_string()),
                    proptest::strategy::Just("[promo-b]".to_string()),
                    proptest::strategy::Just("[pro".to_string()),
                    proptest::strategy::Just("mo-b]".to_string()),
                ],
                0..24,
            )
        ) {
            let citations = vec!["prod-a".to_string(), "promo-b".to_string()];
            let urls = HashMap::from([("prod-a".to_string(), "https://x.example/a".to_string())]);
            let links = links(&citations, &urls, None);
            let text = pieces.concat();
            let plain = to_text(&parse(&text, &links));
            proptest::prop_assert!(markers(&plain, &links).is_empty(), "{:?} -> {:?}", text, plain);
        }
    }

    #[test]
    fn a_marker_rebuilt_by_removing_another_is_removed_too() {
        let citations = vec!["promo-b".to_string()];
        let urls = HashMap::new();
        let body = parse("x [pro[promo-b]mo-b] y", &links(&citations, &urls, None));
        assert_eq!(to_text(&body), "x y");
    }

    #[test]
    fn a_body_of_only_citations_leaves_no_empty_paragraph() {
        let body = parse("[prod-a]\n\nHello", &links(&[], &HashMap::new(), None));
        assert_eq!(body.paragraphs.len(), 1);
        assert_eq!(to_text(&body), "Hello");
    }
}
