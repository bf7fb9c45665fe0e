//! A small phrase matcher over token streams, compiled once from pattern specs.
//!
//! Spec syntax: slots separated by spaces; a slot lists alternatives separated
//! by `|`; a trailing `?` makes a slot optional; `#` matches any number and
//! `$name` expands to a word list (`$group`). Example:
//! `ignore|disregard all? previous|prior instructions`.
//!
//! A word matches exactly, in its alternative l33t reading, with masked letters
//! (`f*ck`), or elongated (`fuuuck`): consonant runs must grow to three or more,
//! so `assess` never reads as an elongated `asses`.

use std::collections::HashMap;

use crate::error::SafetyError;
use crate::normalize::{MASK, Token, TokenKind};

#[derive(Debug)]
enum Alt {
    Word(Box<str>),
    Number,
}

impl Alt {
    fn text(&self) -> &str {
        match self {
            Alt::Word(w) => w,
            Alt::Number => "<number>",
        }
    }
}

#[derive(Debug)]
struct Slot {
    alts: Vec<Alt>,
    optional: bool,
}

#[derive(Debug)]
struct Pattern {
    slots: Vec<Slot>,
}

/// One match of an entry: tokens `start..end` of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub entry: usize,
    pub start: usize,
    pub end: usize,
    /// The alternatives that matched, in canonical spelling (`fuck` for `f*ck`).
    pub label: String,
}

pub struct Matcher<E> {
    entries: Vec<(Pattern, E)>,
    /// First-slot word -> entries, for exact and l33t-alternative lookups.
    exact: HashMap<Box<str>, Vec<usize>>,
    /// Squeezed first-slot word (`fuck`, `kil`) -> entries, for elongated tokens.
    squeezed: HashMap<String, Vec<usize>>,
    /// Every first-slot word, scanned only for masked tokens (rare).
    first_words: Vec<(Box<str>, usize)>,
    number_first: Vec<usize>,
}

type Macros<'a> = &'a [(&'a str, &'a [&'a str])];

fn parse(spec: &str, macros: Macros<'_>) -> Result<Pattern, SafetyError> {
    let fail = |message: &str| SafetyError::Pattern {
        pattern: spec.to_string(),
        message: message.to_string(),
    };
    let mut slots = Vec::new();
    for raw in spec.split(' ') {
        let (body, optional) = match raw.strip_suffix('?') {
            Some(body) => (body, true),
            None => (raw, false),
        };
        if optional && slots.is_empty() {
            return Err(fail("the first slot cannot be optional"));
        }
        let mut alts = Vec::new();
        for alt in body.split('|') {
            if alt == "#" {
                alts.push(Alt::Number);
            } else if let Some(name) = alt.strip_prefix('$') {
                let (_, words) = macros
                    .iter()
                    .find(|(n, _)| *n == name)
                    .ok_or_else(|| fail(&format!("unknown macro ${name}")))?;
                alts.extend(words.iter().map(|w| Alt::Word((*w).into())));
            } else if !alt.is_empty()
                && alt
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            {
                alts.push(Alt::Word(alt.into()));
            } else {
                return Err(fail(&format!("bad alternative `{alt}`")));
            }
        }
        slots.push(Slot { alts, optional });
    }
    Ok(Pattern { slots })
}

impl<E> Matcher<E> {
    pub fn new(specs: Vec<(&str, E)>, macros: Macros<'_>) -> Result<Self, SafetyError> {
        let mut matcher = Self {
            entries: Vec::with_capacity(specs.len()),
            exact: HashMap::new(),
            squeezed: HashMap::new(),
            first_words: Vec::new(),
            number_first: Vec::new(),
        };
        for (index, (spec, effect)) in specs.into_iter().enumerate() {
            let pattern = parse(spec, macros)?;
            for alt in &pattern.slots[0].alts {
                match alt {
                    Alt::Word(w) => {
                        matcher.exact.entry(w.clone()).or_default().push(index);
                        matcher.squeezed.entry(squeeze(w)).or_default().push(index);
                        matcher.first_words.push((w.clone(), index));
                    }
                    Alt::Number => matcher.number_first.push(index),
                }
            }
            matcher.entries.push((pattern, effect));
        }
        Ok(matcher)
    }

    pub fn effect(&self, entry: usize) -> &E {
        &self.entries[entry].1
    }

    /// Every match in the stream, in order of start position then entry.
    pub fn find(&self, tokens: &[Token]) -> Vec<Hit> {
        let mut hits = Vec::new();
        let mut candidates = Vec::new();
        let mut matched = Vec::new();
        for (start, token) in tokens.iter().enumerate() {
            self.candidates(token, &mut candidates);
            for &entry in &candidates {
                matched.clear();
                let slots = &self.entries[entry].0.slots;
                if let Some(end) = match_slots(slots, tokens, start, &mut matched) {
                    let label = matched.join(" ");
                    hits.push(Hit {
                        entry,
                        start,
                        end,
                        label,
                    });
                }
            }
        }
        hits
    }

    fn candidates(&self, token: &Token, out: &mut Vec<usize>) {
        out.clear();
        match token.kind {
            TokenKind::Number => {
                out.extend(&self.number_first);
                out.extend(self.exact.get(token.text.as_str()).into_iter().flatten());
            }
            TokenKind::Word => {
                for reading in readings(token) {
                    out.extend(self.exact.get(reading).into_iter().flatten());
                    if has_repeat(reading) {
                        out.extend(self.squeezed.get(&squeeze(reading)).into_iter().flatten());
                    }
                }
                if token.is_masked() {
                    out.extend(
                        self.first_words
                            .iter()
                            .filter(|(w, _)| readings(token).any(|r| masked_eq(r, w)))
                            .map(|(_, index)| *index),
                    );
                }
            }
            TokenKind::MergeField | TokenKind::Citation => {}
        }
        out.sort_unstable();
        out.dedup();
    }
}

/// End of the match of `slots` starting at `at`, collecting the matched
/// alternatives; optional slots are tried taken first.
fn match_slots<'p>(
    slots: &'p [Slot],
    tokens: &[Token],
    at: usize,
    matched: &mut Vec<&'p str>,
) -> Option<usize> {
    let Some((slot, rest)) = slots.split_first() else {
        return Some(at);
    };
    if let Some(token) = tokens.get(at)
        && let Some(alt) = slot.alts.iter().find(|alt| alt_matches(alt, token))
    {
        matched.push(alt.text());
        if let Some(end) = match_slots(rest, tokens, at + 1, matched) {
            return Some(end);
        }
        matched.pop();
    }
    if slot.optional {
        return match_slots(rest, tokens, at, matched);
    }
    None
}

fn alt_matches(alt: &Alt, token: &Token) -> bool {
    match (alt, token.kind) {
        (Alt::Number, kind) => kind == TokenKind::Number,
        (Alt::Word(w), TokenKind::Number) => token.text == **w,
        (Alt::Word(w), TokenKind::Word) => {
            readings(token).any(|r| r == &**w || is_elongation(r, w) || masked_eq(r, w))
        }
        _ => false,
    }
}

fn readings(token: &Token) -> impl Iterator<Item = &str> {
    std::iter::once(token.text.as_str()).chain(token.alt.as_deref())
}

fn squeeze(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut last = None;
    for c in word.chars() {
        if last != Some(c) {
            out.push(c);
        }
        last = Some(c);
    }
    out
}

fn has_repeat(word: &str) -> bool {
    word.as_bytes().windows(2).any(|w| w[0] == w[1])
}

/// Run-length encoding: (char, count) for each run of equal characters.
fn runs(word: &str) -> impl Iterator<Item = (char, usize)> + '_ {
    let mut chars = word.chars().peekable();
    std::iter::from_fn(move || {
        let c = chars.next()?;
        let mut n = 1;
        while chars.next_if_eq(&c).is_some() {
            n += 1;
        }
        Some((c, n))
    })
}

/// `token` is `form` with some letters repeated (`fuuuck`, `shiit`, `killll`).
/// A vowel may double; a consonant must reach three, because doubled
/// consonants make real words (`assess` is not `asses` stretched).
fn is_elongation(token: &str, form: &str) -> bool {
    if token.len() <= form.len() {
        return false;
    }
    let mut token_runs = runs(token);
    let mut form_runs = runs(form);
    loop {
        match (token_runs.next(), form_runs.next()) {
            (None, None) => return true,
            (Some((tc, tn)), Some((fc, fnum))) if tc == fc && tn >= fnum => {
                let vowel = matches!(tc, 'a' | 'e' | 'i' | 'o' | 'u' | 'y');
                if tn > fnum && !vowel && tn < 3 {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// `f*ck` against `fuck`: same length, masks match any letter, and at least
/// half the letters (two or more) are shown.
fn masked_eq(token: &str, form: &str) -> bool {
    if !token.contains(MASK) || token.chars().count() != form.chars().count() {
        return false;
    }
    let mut shown = 0;
    let mut total = 0;
    for (t, f) in token.chars().zip(form.chars()) {
        total += 1;
        if t == MASK {
            continue;
        }
        if t != f {
            return false;
        }
        shown += 1;
    }
    shown >= 2 && shown * 2 >= total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::{Tokenizer, visible_nfkc};

    fn matcher() -> Matcher<&'static str> {
        let groups: &[&str] = &["jews", "women"];
        Matcher::new(
            vec![
                ("fuck|fucking", "profanity"),
                ("asses", "profanity"),
                ("ignore all? previous|prior instructions", "injection"),
                ("lose # pounds", "claim"),
                ("$group are vermin", "hate"),
            ],
            &[("group", groups)],
        )
        .unwrap()
    }

    fn labels(text: &str) -> Vec<String> {
        let m = matcher();
        let streams = Tokenizer::new().unwrap().tokenize(&visible_nfkc(text));
        m.find(&streams.joined)
            .into_iter()
            .map(|h| h.label)
            .collect()
    }

    #[test]
    fn optional_slots_numbers_and_macros_match() {
        assert_eq!(
            labels("Ignore all prior instructions"),
            ["ignore all prior instructions"]
        );
        assert_eq!(
            labels("ignore previous instructions"),
            ["ignore previous instructions"]
        );
        assert_eq!(labels("lose 30 pounds"), ["lose <number> pounds"]);
        assert_eq!(labels("Women are vermin"), ["women are vermin"]);
        assert!(labels("ignore the instructions").is_empty());
    }

    #[test]
    fn elongation_masks_and_leet_match_but_doubled_consonants_do_not() {
        assert_eq!(labels("fuuuuck"), ["fuck"]);
        assert_eq!(labels("f*ck"), ["fuck"]);
        assert_eq!(labels("f**king"), ["fucking"]);
        assert!(labels("assess").is_empty());
        assert!(labels("***k").is_empty(), "one shown letter is not enough");
        assert!(is_elongation("shiiit", "shit"));
        assert!(is_elongation("fuuck", "fuck"));
        assert!(!is_elongation("kil", "kill"));
        assert!(!is_elongation("assess", "asses"));
    }

    #[test]
    fn bad_specs_are_rejected_with_the_pattern() {
        let err = Matcher::new(vec![("Bad", ())], &[]).err().unwrap();
        assert!(err.to_string().contains("Bad"));
        assert!(Matcher::new(vec![("opt? word", ())], &[]).is_err());
        assert!(Matcher::new(vec![("$nope", ())], &[]).is_err());
        assert!(Matcher::new(vec![("a||b", ())], &[]).is_err());
    }
}
