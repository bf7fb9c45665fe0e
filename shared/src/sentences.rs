//! Sentence splitting for snippet text.
//!
//! Every sentence is a slice of the snippet's own text, so whatever the composer
//! quotes is verbatim by construction. When a boundary is ambiguous the splitter
//! does not split: a sentence that is too long is still true to its source, a
//! sentence cut after "e.g." is not.

/// One sentence of a text, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sentence<'a> {
    pub text: &'a str,
    /// Position among the text's sentences (0 = the lead).
    pub index: usize,
    /// Ends in `.`, `!` or `?` (possibly followed by a closing quote or bracket).
    pub terminated: bool,
}

/// Words that end in a period without ending a sentence (compared lowercase,
/// without the final period). Words with an inner period (`e.g`, `u.s`) and
/// single letters (initials) are caught by rule, not listed.
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "etc", "inc", "ltd", "co",
    "corp", "llc", "no", "nos", "approx", "est", "dept", "fig", "jan", "feb", "mar", "apr", "jun",
    "jul", "aug", "sep", "sept", "oct", "nov", "dec", "mon", "tue", "tues", "wed", "thu", "thur",
    "thurs", "fri", "sat", "sun", "min", "max", "hr", "hrs", "pt", "ft", "oz", "lb", "lbs", "qty",
    "ref", "ave", "blvd", "rd", "excl", "incl", "avg", "vol", "ext", "tel", "cf", "al",
];

const CLOSERS: &[char] = &['"', '\'', ')', ']', '\u{201d}', '\u{2019}', '\u{00bb}'];

/// Split `text` into sentences. Blank lines and list items are hard breaks;
/// within a block, `.`, `!` or `?` end a sentence only when whitespace and a
/// plausible sentence start follow, and a period after an abbreviation,
/// an initial or a dotted word (`e.g.`) never does. Decimals (`$19.99`) have
/// no whitespace after the period, so they never split.
pub fn split_sentences(text: &str) -> Vec<Sentence<'_>> {
    let mut sentences = Vec::new();
    for block in blocks(text) {
        split_block(block, &mut sentences);
    }
    sentences
}

/// Paragraphs and list items, each without its list marker.
fn blocks(text: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    let mut start: Option<usize> = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let line_start = offset;
        offset += line.len();
        let trimmed = line.trim_start();
        let blank = trimmed.trim().is_empty();
        let marker = list_marker_len(trimmed);
        if (blank || marker > 0)
            && let Some(s) = start.take()
        {
            blocks.push(&text[s..line_start]);
        }
        if !blank && start.is_none() {
            start = Some(line_start + (line.len() - trimmed.len()) + marker);
        }
    }
    if let Some(s) = start {
        blocks.push(&text[s..]);
    }
    blocks
}

/// Byte length of a leading list marker (`- `, `* `, `• `, `1. `, `2) `), or 0.
fn list_marker_len(line: &str) -> usize {
    for bullet in ["- ", "* ", "\u{2022} ", "\u{2013} "] {
        if line.starts_with(bullet) {
            return bullet.len();
        }
    }
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    if (1..=3).contains(&digits) {
        let rest = &line[digits..];
        if rest.starts_with(". ") || rest.starts_with(") ") {
            return digits + 2;
        }
    }
    0
}

fn split_block<'a>(block: &'a str, out: &mut Vec<Sentence<'a>>) {
    let bytes = block.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !matches!(bytes[i], b'.' | b'!' | b'?') {
            i += 1;
            continue;
        }
        let punct_start = i;
        while i < bytes.len() && matches!(bytes[i], b'.' | b'!' | b'?') {
            i += 1;
        }
        let mut end = i;
        for c in block[end..].chars() {
            if !CLOSERS.contains(&c) {
                break;
            }
            end += c.len_utf8();
        }
        let after = &block[end..];
        let next = after.trim_start();
        let followed_by_space = after.len() != next.len();
        let at_end = next.is_empty();
        if !(at_end || followed_by_space && starts_sentence(next)) {
            i = end.max(punct_start + 1);
            continue;
        }
        let only_period = &block[punct_start..i] == ".";
        if only_period && !at_end && is_abbreviation(&block[start..punct_start]) {
            i = end;
            continue;
        }
        push(&block[start..end], out);
        start = end;
        i = end;
    }
    push(&block[start..], out);
}

fn push<'a>(raw: &'a str, out: &mut Vec<Sentence<'a>>) {
    let text = raw.trim();
    if text.is_empty() {
        return;
    }
    let terminated = text.trim_end_matches(CLOSERS).ends_with(['.', '!', '?']);
    out.push(Sentence {
        text,
        index: out.len(),
        terminated,
    });
}

/// Could `next` begin a sentence? Upper case, a digit, a currency sign or an
/// opening quote or bracket; a lower-case word means the period was not an end.
fn starts_sentence(next: &str) -> bool {
    next.chars().next().is_some_and(|c| {
        c.is_uppercase()
            || c.is_ascii_digit()
            || matches!(
                c,
                '"' | '\'' | '(' | '[' | '$' | '\u{20ac}' | '\u{a3}' | '\u{201c}' | '\u{2018}'
            )
    })
}

/// Is the word right before a period one that does not end a sentence?
fn is_abbreviation(before: &str) -> bool {
    let word = before
        .rsplit(char::is_whitespace)
        .next()
        .unwrap_or("")
        .trim_start_matches(['(', '"', '\'', '\u{201c}', '\u{2018}']);
    if word.is_empty() {
        return false;
    }
    if word.contains('.') {
        return true;
    }
    let mut chars = word.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        return c.is_alphabetic();
    }
    let lower = word.to_lowercase();
    ABBREVIATIONS.contains(&lower.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn texts(text: &str) -> Vec<&str> {
        split_sentences(text).into_iter().map(|s| s.text).collect()
    }

    #[test]
    fn splits_plain_sentences_and_keeps_punctuation() {
        assert_eq!(
            texts("Orders ship fast. Returns are easy! Need help? Call us."),
            vec![
                "Orders ship fast.",
                "Returns are easy!",
                "Need help?",
                "Call us."
            ]
        );
    }

    #[test]
    fn decimals_and_prices_do_not_split() {
        assert_eq!(
            texts("The kit costs $19.99 this week. Version 2.5 adds 4.5x speed."),
            vec![
                "The kit costs $19.99 this week.",
                "Version 2.5 adds 4.5x speed."
            ]
        );
    }

    #[test]
    fn abbreviations_initials_and_dotted_words_do_not_split() {
        assert_eq!(
            texts(
                "Pick any style, e.g. Oxford or Derby. Dr. Lee and J. Smith approve. Open 9 a.m. to 5 p.m. on weekdays. Daily deals follow."
            ),
            vec![
                "Pick any style, e.g. Oxford or Derby.",
                "Dr. Lee and J. Smith approve.",
                "Open 9 a.m. to 5 p.m. on weekdays.",
                "Daily deals follow."
            ]
        );
    }

    #[test]
    fn lower_case_after_a_period_is_not_a_new_sentence() {
        assert_eq!(
            texts("Shop at Acme Inc. today. Then relax."),
            vec!["Shop at Acme Inc. today.", "Then relax."]
        );
    }

    #[test]
    fn closing_quotes_stay_with_their_sentence() {
        assert_eq!(
            texts("She said \"it fits.\" Then she bought two. (Both in blue.) Done."),
            vec![
                "She said \"it fits.\"",
                "Then she bought two.",
                "(Both in blue.)",
                "Done."
            ]
        );
    }

    #[test]
    fn blank_lines_and_list_items_are_hard_breaks() {
        let text = "Members save more\n\n- Free returns for members.\n- Early access to new styles.\n1. Sign up online.";
        let got = split_sentences(text);
        let t: Vec<&str> = got.iter().map(|s| s.text).collect();
        assert_eq!(
            t,
            vec![
                "Members save more",
                "Free returns for members.",
                "Early access to new styles.",
                "Sign up online."
            ]
        );
        assert!(!got[0].terminated);
        assert!(got[1].terminated);
        assert_eq!(
            got.iter().map(|s| s.index).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
    }

    proptest! {
        #[test]
        fn every_sentence_is_a_verbatim_slice(text in "[A-Za-z0-9 .!?$,'\"()\\-\n]{0,300}") {
            for s in split_sentences(&text) {
                prop_assert!(text.contains(s.text));
                prop_assert!(!s.text.is_empty());
                prop_assert_eq!(s.text, s.text.trim());
            }
        }

        #[test]
        fn never_panics_on_arbitrary_unicode(text in "\\PC{0,200}") {
            let _ = split_sentences(&text);
        }
    }
}
