//! Claims are grounded: every sentence of a body is either fixed tone
//! phrasing or supported by the snippet it cites.
//!
//! Tone phrasing is recognised, never declared: a line counts only when it is
//! one of the lines of `cpo_shared::phrasing` (the banks the composer writes
//! from), a sentence only when it is a sentence of one of them, and the
//! signature only as "The {brand} team" right under a bank's sign-off, with a
//! brand that `phrasing::is_plain_brand` accepts. Every other sentence must
//! cite a snippet (`[id]` inside it, or right after it), and each number,
//! price, percentage, date or deadline, promo code, product name, quantity
//! word and absolute promise in it must appear in a snippet it cites (see
//! `facts`). Otherwise it is an unsupported claim, named in the reason.

mod facts;
mod words;

use std::collections::HashSet;
use std::fmt;
use std::sync::OnceLock;

use cpo_shared::phrasing::{Register, bank, body_phrases, signature_brand};
use cpo_shared::sentences::split_sentences;
use unicode_normalization::UnicodeNormalization;

use crate::citations::cited_ids;
use facts::Tokens;
pub use facts::{Currency, Fact, WordKind};

/// A snippet retrieval returned, as the claim check reads it.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub text: &'a str,
}

/// One sentence that is neither phrasing nor supported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedClaim {
    /// The sentence as read (NFKC-folded, citation markers removed).
    pub sentence: String,
    /// The ids it cites, in order; empty when it cites nothing.
    pub cited: Vec<String>,
    /// The facts none of those snippets states.
    pub missing: Vec<Fact>,
}

/// Longest quote of a sentence in a reason, in characters.
const MAX_QUOTE_CHARS: usize = 160;

impl fmt::Display for UnsupportedClaim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quoted = quote(&self.sentence);
        write!(f, "unsupported_claim: sentence \"{quoted}\" ")?;
        if self.cited.is_empty() {
            return f.write_str("cites no snippet and is not tone phrasing");
        }
        // A fact the quote masked (part of a phone or card number) is not
        // listed either.
        let visible = Tokens::new(&quoted);
        let words: HashSet<String> = visible.words().collect();
        let numbers: HashSet<String> = visible
            .facts(&HashSet::new())
            .into_iter()
            .filter_map(|fact| match fact {
                Fact::Money(_, v) | Fact::Percent(v) | Fact::Number(v) => Some(v),
                _ => None,
            })
            .collect();
        let (shown, masked): (Vec<&Fact>, Vec<&Fact>) =
            self.missing.iter().partition(|fact| match fact {
                Fact::Money(_, v) | Fact::Percent(v) | Fact::Number(v) => numbers.contains(v),
                Fact::Date(_) => true,
                Fact::Word(_, w) => words.contains(w),
            });
        let cited: Vec<String> = self.cited.iter().map(|id| format!("[{id}]")).collect();
        let mut listed: Vec<String> = shown.iter().map(|fact| fact.to_string()).collect();
        if !masked.is_empty() {
            listed.push(format!("{} masked", masked.len()));
        }
        write!(
            f,
            "states what {} does not: {}",
            cited.join(", "),
            listed.join(", ")
        )
    }
}

/// Every sentence of `body` that is neither tone phrasing nor supported by
/// the `sources` it cites, in body order.
pub fn check(body: &str, sources: &[Source<'_>]) -> Vec<UnsupportedClaim> {
    let prepared: Vec<(String, Support)> = sources
        .iter()
        .map(|s| (s.id.to_string(), Support::of(s)))
        .collect();
    let known_names = known_names(sources);
    let mut unsupported = Vec::new();
    for claim in claim_sentences(&without_phrase_lines(body)) {
        if phrase_sentences().contains(&claim.text) {
            continue;
        }
        let cited_support: Vec<&Support> = claim
            .cited
            .iter()
            .filter_map(|id| prepared.iter().find(|(sid, _)| sid == id).map(|(_, s)| s))
            .collect();
        let mut missing: Vec<Fact> = Vec::new();
        if !claim.cited.is_empty() {
            let plain = blank_merge_fields(&claim.text);
            for fact in Tokens::new(&plain).facts(&known_names) {
                if !cited_support.iter().any(|s| s.supports(&fact)) && !missing.contains(&fact) {
                    missing.push(fact);
                }
            }
            if missing.is_empty() {
                continue;
            }
        }
        unsupported.push(UnsupportedClaim {
            sentence: claim.text,
            cited: claim.cited,
            missing,
        });
    }
    unsupported
}

/// What a snippet offers a sentence that cites it.
struct Support {
    facts: HashSet<Fact>,
    /// Every numeric value, whatever its unit: a bare "169" may restate "$169".
    numbers: HashSet<String>,
    words: HashSet<String>,
}

impl Support {
    fn of(source: &Source<'_>) -> Self {
        let mut support = Support {
            facts: HashSet::new(),
            numbers: HashSet::new(),
            words: HashSet::new(),
        };
        for text in [source.title, source.text] {
            let folded = fold(text);
            let tokens = Tokens::new(&folded);
            support.words.extend(tokens.words());
            for fact in tokens.facts(&HashSet::new()) {
                match &fact {
                    Fact::Money(_, value) | Fact::Percent(value) | Fact::Number(value) => {
                        support.numbers.insert(value.clone());
                    }
                    _ => {}
                }
                support.facts.insert(fact);
            }
        }
        support
    }

    fn supports(&self, fact: &Fact) -> bool {
        match fact {
            Fact::Money(..) | Fact::Percent(_) => self.facts.contains(fact),
            Fact::Number(value) => self.numbers.contains(value),
            Fact::Date(word) => self.facts.contains(fact) || self.words.contains(*word),
            Fact::Word(_, word) => self.words.contains(word),
        }
    }
}

/// Words the snippets capitalise mid-sentence (product and brand names): at
/// the start of a sentence such a word is a name too.
fn known_names(sources: &[Source<'_>]) -> HashSet<String> {
    let mut names = HashSet::new();
    for source in sources {
        for text in [source.title, source.text] {
            for sentence in split_sentences(text) {
                names.extend(Tokens::new(&fold(sentence.text)).inner_names());
            }
        }
    }
    names
}

/// A sentence with the snippet ids it cites.
struct ClaimSentence {
    text: String,
    cited: Vec<String>,
}

/// The sentences of what is left of a body once phrase lines are removed.
/// Markers opening a piece belong to the sentence before it ("Fact. [a] Next."
/// splits as "Fact." and "[a] Next."); a piece of markers only, too.
fn claim_sentences(text: &str) -> Vec<ClaimSentence> {
    let mut sentences: Vec<ClaimSentence> = Vec::new();
    let mut pending: Vec<String> = Vec::new();
    for piece in split_sentences(text) {
        let (leading, rest) = leading_markers(piece.text);
        match sentences.last_mut() {
            Some(previous) => add_ids(&mut previous.cited, leading),
            None => add_ids(&mut pending, leading),
        }
        // Folded only now: splitting reads the text as the composer did
        // (a full-width digit does not start a sentence there).
        let plain = collapse(&fold(&remove_markers(rest)));
        if !plain.chars().any(char::is_alphanumeric) {
            continue;
        }
        let mut cited = std::mem::take(&mut pending);
        add_ids(&mut cited, cited_ids(&[rest]).into_iter().map(String::from));
        sentences.push(ClaimSentence { text: plain, cited });
    }
    sentences
}

fn add_ids(into: &mut Vec<String>, ids: impl IntoIterator<Item = String>) {
    for id in ids {
        if !into.contains(&id) {
            into.push(id);
        }
    }
}

/// The `[id]` markers a piece opens with, and the rest of it.
fn leading_markers(piece: &str) -> (Vec<String>, &str) {
    let mut ids = Vec::new();
    let mut rest = piece.trim_start();
    while rest.starts_with('[') {
        let Some(close) = rest.find(']') else { break };
        let inner = &rest[..=close];
        match cited_ids(&[inner]).first() {
            Some(id) if inner.len() == id.len() + 2 => ids.push(id.to_string()),
            _ => break,
        }
        rest = rest[close + 1..].trim_start();
    }
    (ids, rest)
}

/// The text with every citation marker replaced by a space.
fn remove_markers(text: &str) -> String {
    let mut out = text.to_string();
    for id in cited_ids(&[text]) {
        out = out.replace(&format!("[{id}]"), " ");
    }
    out
}

/// `{{ name }}` replaced by a space: a merge field states nothing.
fn blank_merge_fields(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open..].find("}}") else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push(' ');
        rest = &rest[open + close + 2..];
    }
    out.push_str(rest);
    out
}

/// The body with every phrase line (and the signature under a sign-off)
/// blanked, so each is its own block and nothing else can lean on it.
fn without_phrase_lines(body: &str) -> String {
    let sign_offs: Vec<&str> = Register::ALL
        .iter()
        .flat_map(|r| bank(*r).sign_offs.iter().copied())
        .collect();
    let mut out = String::with_capacity(body.len());
    let mut after_sign_off = false;
    for line in body.lines() {
        let line_text = collapse(&fold(line));
        let phrase = phrase_lines().contains(&line_text);
        let signature = after_sign_off && signature_brand(&line_text).is_some();
        after_sign_off = sign_offs.contains(&line_text.as_str());
        if !(phrase || signature) {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

fn phrase_lines() -> &'static HashSet<String> {
    static LINES: OnceLock<HashSet<String>> = OnceLock::new();
    LINES.get_or_init(|| body_phrases().into_iter().map(collapse).collect())
}

/// Each sentence of each phrase: a framing line of two sentences may be
/// written with its sentences apart.
fn phrase_sentences() -> &'static HashSet<String> {
    static SENTENCES: OnceLock<HashSet<String>> = OnceLock::new();
    SENTENCES.get_or_init(|| {
        let mut all: HashSet<String> = phrase_lines().clone();
        for phrase in body_phrases() {
            all.extend(split_sentences(phrase).iter().map(|s| collapse(s.text)));
        }
        all
    })
}

/// NFKC (full-width digits and signs become ASCII) without the invisible
/// characters that could split a word or number unseen.
pub(crate) fn fold(text: &str) -> String {
    text.nfkc()
        .filter(|c| {
            !matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
        })
        .collect()
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A sentence fit for a reason, which reaches logs, dead letters and the
/// audit trail: cut to `MAX_QUOTE_CHARS`, with anything that could be
/// personal data masked (a word with `@`, a run of seven or more digits with
/// its separators: phone, card and account numbers).
fn quote(sentence: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    for word in sentence.split(' ') {
        words.push(if word.contains('@') {
            "<address>".to_string()
        } else {
            word.to_string()
        });
    }
    let joined = words.join(" ");
    let chars: Vec<char> = joined.chars().collect();
    let mut out = String::with_capacity(joined.len());
    let mut i = 0;
    while i < chars.len() {
        let run_end = (i..chars.len())
            .find(|&j| !(chars[j].is_ascii_digit() || " -.()+/".contains(chars[j])))
            .unwrap_or(chars.len());
        let digits = chars[i..run_end]
            .iter()
            .filter(|c| c.is_ascii_digit())
            .count();
        if chars[i].is_ascii_digit() && digits >= 7 {
            out.extend(
                chars[i..run_end]
                    .iter()
                    .map(|c| if c.is_ascii_digit() { '#' } else { *c }),
            );
            i = run_end;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    if out.chars().count() > MAX_QUOTE_CHARS {
        let cut: String = out.chars().take(MAX_QUOTE_CHARS).collect();
        format!("{}...", cut.trim_end())
    } else {
        out
    }
}

#[cfg(test)]
mod tests;
