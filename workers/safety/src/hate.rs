//! Hate towards identity groups, and insults aimed at the reader, scored per clause.
//!
//! A sentence is about a group when it names one (`GROUP_NOUNS`, or a group
//! adjective before a person noun: "gay people", "trans lives") or, after a
//! group was named, refers back to it ("they", "them", "those"). Each clause
//! of such a sentence multiplies the polarity of its predicates and negators:
//! "I hate X" is negative, "I don't hate X" positive, "X are not human" and
//! "X have no right to live" negative again. A negative clause is hate:
//! derogation 5, dehumanisation and violence 6 (violence is also reported as
//! violence). Words misspelt by one swapped or dropped letter ("haet",
//! "immigrnts") are read as the word they spell, for the lexicon's words only.

use std::collections::HashMap;

mod rules;

use rules::{is_break, is_group_at};

use crate::hate_lexicon::*;
use crate::normalize::{Token, TokenKind};
use crate::screen::{FindingKind, HarmCategory, ScreenReport};
use crate::spelling::{is_common, one_edit_variants};

const GROUP_NOUN: u32 = 1;
const GROUP_ADJ: u32 = 1 << 1;
const PERSON: u32 = 1 << 2;
const PRONOUN: u32 = 1 << 3;
const NEGATOR: u32 = 1 << 4;
const CANCELLER: u32 = 1 << 5;
const BREAK: u32 = 1 << 6;
const LINK: u32 = 1 << 7;
const ANIMAL_PLACE: u32 = 1 << 8;
const INSULT_NOUN: u32 = 1 << 9;
const INSULT_ADJ: u32 = 1 << 10;
const ADDRESSEE: u32 = 1 << 11;
const FACTIVE_WORD: u32 = 1 << 12;
const SUBJECT: u32 = 1 << 13;
const DOUBT: u32 = 1 << 14;
const CONTRAST: u32 = 1 << 15;
const COMPARATIVE: u32 = 1 << 16;
const UNIVERSAL: u32 = 1 << 17;
const TOLERANT: u32 = 1 << 18;
const HARM_NOUN: u32 = 1 << 19;
const LIKE: u32 = 1 << 20;
const OPINION: u32 = 1 << 21;
const PREFER: u32 = 1 << 22;

#[derive(Debug, Clone, Copy, Default)]
struct Word {
    flags: u32,
    polar: Option<Polar>,
}

/// How many tokens before a dehumanising noun its link may stand ("are nothing but common trash").
const LINK_WINDOW: usize = 5;
/// How many tokens before an insult the reader may be named ("you absolute idiot").
const INSULT_WINDOW: usize = 3;

pub struct HateScorer {
    words: HashMap<&'static str, Word>,
    /// One-edit misspellings of lexicon words, to the word they spell.
    fuzzy: HashMap<String, &'static str>,
    phrases: Vec<(Vec<&'static str>, Polar)>,
}

/// A stretch of a sentence scored on its own, and what it inherits.
#[derive(Clone, Copy)]
struct Clause {
    from: usize,
    to: usize,
    /// It names or refers to the group.
    about: bool,
    /// Negated by the clause before ("let's not stand by while ...").
    negated: bool,
}

/// One token read against the lexicon.
#[derive(Clone, Copy)]
struct Read<'a> {
    word: &'a str,
    info: Word,
    sentence: u32,
    clause: u32,
}

impl HateScorer {
    pub fn new() -> Self {
        let mut words: HashMap<&'static str, Word> = HashMap::new();
        let mut flag = |list: &[&'static str], bits: u32| {
            for w in list {
                words.entry(w).or_default().flags |= bits;
            }
        };
        flag(GROUP_NOUNS, GROUP_NOUN);
        flag(GROUP_ADJECTIVES, GROUP_ADJ);
        flag(PERSON_NOUNS, PERSON);
        flag(PRONOUNS, PRONOUN);
        flag(NEGATORS, NEGATOR);
        flag(NEGATION_CANCELLERS, CANCELLER);
        flag(CLAUSE_BREAKS, BREAK);
        flag(LINKS, LINK);
        flag(ANIMAL_PLACES, ANIMAL_PLACE);
        flag(INSULT_NOUNS, INSULT_NOUN);
        flag(INSULT_ADJECTIVES, INSULT_ADJ);
        flag(ADDRESSEES, ADDRESSEE);
        flag(FACTIVE, FACTIVE_WORD);
        flag(SUBJECTS, SUBJECT);
        flag(INCOMPREHENSION, DOUBT);
        flag(CONTRASTS, CONTRAST);
        flag(COMPARATIVES, COMPARATIVE);
        flag(UNIVERSALS, UNIVERSAL);
        flag(TOLERANCE, TOLERANT);
        flag(HARM_NOUNS, HARM_NOUN);
        flag(LIKENESS, LIKE);
        flag(OPINION_VERBS, OPINION);
        flag(PREFERENCE, PREFER);
        for (list, polar) in [
            (CONTACT, Polar::Contact),
            (POSITIVE, Polar::Positive),
            (DEROGATORY, Polar::Derogatory),
            (AVERSION, Polar::Aversion),
            (VIOLENT, Polar::Violent),
            (DEHUMANISING, Polar::Dehumanising),
            (ANIMAL_PLACES, Polar::Dehumanising),
        ] {
            for w in list {
                words.entry(w).or_default().polar = Some(polar);
            }
        }
        let mut fuzzy = HashMap::new();
        let phrase_words: Vec<&'static str> = PHRASES
            .iter()
            .flat_map(|(p, _)| p.split(' '))
            .filter(|w| w.len() >= 4)
            .collect();
        for w in &phrase_words {
            words.entry(w).or_default();
        }
        let fuzzy_sources = [
            &phrase_words[..],
            POSITIVE,
            PERSON_NOUNS,
            GROUP_NOUNS,
            GROUP_ADJECTIVES,
            AVERSION,
            DEROGATORY,
            DEHUMANISING,
            VIOLENT,
        ];
        for word in fuzzy_sources.into_iter().flatten() {
            for variant in one_edit_variants(word) {
                if !words.contains_key(variant.as_str()) && !is_common(&variant) {
                    fuzzy.entry(variant).or_insert(*word);
                }
            }
        }
        let phrases = PHRASES
            .iter()
            .map(|(p, polar)| (p.split(' ').collect(), *polar))
            .collect();
        Self {
            words,
            fuzzy,
            phrases,
        }
    }

    /// Every word the scorer knows, for cutting run-together text into words.
    pub fn vocabulary(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.words.keys().copied()
    }

    fn read<'a>(&'a self, token: &'a Token) -> Read<'a> {
        let (sentence, clause) = (token.sentence, token.clause);
        if token.kind != TokenKind::Word {
            return Read {
                word: "",
                info: Word::default(),
                sentence,
                clause,
            };
        }
        let readings = std::iter::once(token.text.as_str()).chain(token.alt.as_deref());
        for reading in readings {
            if let Some((word, info)) = self.words.get_key_value(reading) {
                return Read {
                    word,
                    info: *info,
                    sentence,
                    clause,
                };
            }
        }
        // "woman's" reads "womans" joined: the group noun it is the possessive of.
        let stem = token.text.strip_suffix('s');
        let stem_word = stem.and_then(|stem| {
            self.words.get_key_value(stem).or_else(|| {
                self.fuzzy
                    .get(stem)
                    .and_then(|w| self.words.get_key_value(w))
            })
        });
        if let Some((word, info)) = stem_word
            && info.flags & (GROUP_NOUN | GROUP_ADJ | PERSON) != 0
        {
            return Read {
                word,
                info: Word {
                    flags: info.flags & (GROUP_NOUN | GROUP_ADJ | PERSON),
                    polar: None,
                },
                sentence,
                clause,
            };
        }
        if let Some(word) = self.fuzzy.get(token.text.as_str()) {
            return Read {
                word,
                info: self.words[word],
                sentence,
                clause,
            };
        }
        Read {
            word: &token.text,
            info: Word::default(),
            sentence,
            clause,
        }
    }

    pub fn score(&self, tokens: &[Token], report: &mut ScreenReport) {
        let reads: Vec<Read> = tokens.iter().map(|t| self.read(t)).collect();
        self.insults(&reads, report);
        // A pronoun may refer to a group named before or after it ("Of course
        // they are stupid. They are X after all"); "you" does once the group
        // was addressed ("X like you ... You're all that dumb").
        let group_named = (0..reads.len()).any(|i| is_group_at(&reads, i));
        let addressed = group_named && reads.iter().any(|r| r.info.flags & ADDRESSEE != 0);
        let referent = PRONOUN | if addressed { ADDRESSEE } else { 0 };
        let mut start = 0;
        while start < reads.len() {
            let sentence = reads[start].sentence;
            let end = reads[start..]
                .iter()
                .position(|r| r.sentence != sentence)
                .map_or(reads.len(), |n| start + n);
            let s = &reads[start..end];
            let mentions: Vec<usize> = (0..s.len()).filter(|&i| is_group_at(s, i)).collect();
            let refers = group_named && s.iter().any(|r| r.info.flags & referent != 0);
            if !mentions.is_empty() || refers {
                self.score_sentence(s, &mentions, report);
            }
            start = end;
        }
    }

    fn score_sentence(&self, s: &[Read], mentions: &[usize], report: &mut ScreenReport) {
        let mut clause_start = 0;
        // A negated "let"/"stand by" governs the clause after its "while".
        let mut carried = false;
        for i in 0..=s.len() {
            // A comma starts a clause at its token; a clause word is left out of both.
            let comma = i > clause_start && i < s.len() && s[i].clause != s[i - 1].clause;
            // "I'd sooner starve than eat with X": what follows "than" is refused.
            let preferred = i < s.len() && rules::prefers_before(s, clause_start, i);
            if i < s.len() && !comma && !preferred && !is_break(s, i) {
                continue;
            }
            // Praise denied in a clause that does not name or refer to the
            // group ("I don't like people in general, but ...") is not about it.
            let about = (clause_start..i).any(|j| {
                mentions.contains(&j)
                    || s[j].info.flags & PRONOUN != 0
                    || (!mentions.is_empty() && s[j].info.flags & ADDRESSEE != 0)
            });
            let clause = Clause {
                from: clause_start,
                to: i,
                about,
                negated: carried,
            };
            self.score_clause(s, clause, mentions, report);
            carried = preferred || (!comma && rules::carries_negation(s, clause_start, i));
            clause_start = if comma { i } else { i + 1 };
        }
    }

    fn score_clause(&self, s: &[Read], c: Clause, mentions: &[usize], report: &mut ScreenReport) {
        let Clause {
            from,
            to,
            about,
            negated: carried,
        } = c;
        // Negators flip the clause; negative predicates make it negative once
        // however many there are ("worthless dirt"), so "never tolerate the
        // murder of X" (negated praise of a negative) is positive.
        let mut negated = carried;
        // Incomprehension ("it baffles me why anyone values X") denies praise only.
        let mut doubted = false;
        let mut harm_noun = false;
        let mut any_negative = false;
        let mut polar_seen = false;
        let mut strongest: Option<(u8, &str, Polar)> = None;
        let mut i = from;
        while i < to {
            let (polar, len) = match self.phrase_at(s, i, to) {
                Some(found) => found,
                None => (rules::sense(s, i), 1),
            };
            let flags = s[i].info.flags;
            if flags & DOUBT != 0 {
                doubted = !doubted;
            }
            harm_noun |= flags & HARM_NOUN != 0;
            // "there is a difference between X and rats" denies the likeness.
            if flags & CONTRAST != 0 && s.get(i + 1).is_some_and(|r| r.word == "between") {
                negated = !negated;
            }
            if flags & NEGATOR != 0 && polar.is_none_or(|p| p == Polar::Positive) {
                let cancelled = s[i + 1..to.min(i + 3)]
                    .iter()
                    .any(|r| r.info.flags & CANCELLER != 0)
                    || rules::opens_superlative(s, i, to)
                    || rules::asks_agreement(s, i);
                if !cancelled {
                    negated = !negated;
                }
                if polar.is_none() {
                    i += 1;
                    continue;
                }
            }
            if let Some(p) = polar.filter(|p| self.counts(s, i, len, *p, mentions)) {
                polar_seen = true;
                if p.is_negative() {
                    any_negative = true;
                    let severity = match p {
                        Polar::Dehumanising | Polar::Violent => 6,
                        _ => 5,
                    };
                    if strongest.is_none_or(|(sev, _, _)| severity > sev) {
                        strongest = Some((severity, s[i].word, p));
                    }
                }
            }
            i += len;
        }
        let negative = if any_negative {
            !negated
        } else {
            // "never accept violence against X": the praise denied is the harm's.
            negated != doubted && !harm_noun
        };
        if !(polar_seen && negative) || (!any_negative && !about) {
            return;
        }
        let (severity, term, polar) = strongest.unwrap_or((5, "negated praise", Polar::Positive));
        report.raise(HarmCategory::Hate, severity, term, Some("about a group"));
        if polar == Polar::Violent {
            report.raise(
                HarmCategory::Violence,
                severity,
                term,
                Some("against a group"),
            );
        }
    }

    /// Whether a predicate at `i` counts: a feeling needs its group after it,
    /// a dehumanising noun a link before it, "suffer from" is no wish.
    fn counts(&self, s: &[Read], i: usize, len: usize, polar: Polar, mentions: &[usize]) -> bool {
        let next = s.get(i + len).map(|r| r.word);
        match polar {
            Polar::Aversion | Polar::Contact => {
                mentions.iter().any(|&m| m > i)
                    || s[i + len..].iter().any(|r| r.info.flags & PRONOUN != 0)
            }
            Polar::Dehumanising => {
                s[i].info.flags & ANIMAL_PLACE != 0
                    || len > 1
                    // "Muslim vermin": the group word itself names what is dehumanised
                    || i.checked_sub(1).is_some_and(|p| is_group_at(s, p))
                    // a comparison: "my dog is smarter than any X", "rather have cancer than"
                    || s.iter().any(|r| r.info.flags & LIKE != 0)
                    || rules::linked(s, i, LINK_WINDOW)
            }
            Polar::Violent => {
                let object = VIOLENT_OBJECTS.iter().find(|(w, _)| *w == s[i].word);
                let has_object = object.is_none_or(|(_, objects)| {
                    s[i + 1..(i + 5).min(s.len())]
                        .iter()
                        .any(|r| objects.contains(&r.word))
                });
                // "suffer from", "bullet points": no violence done.
                has_object
                    && !matches!(
                        next,
                        Some("from" | "with" | "point" | "points" | "proof" | "train" | "journal")
                    )
            }
            Polar::Derogatory | Polar::Positive => true,
        }
    }

    fn phrase_at(&self, s: &[Read], i: usize, to: usize) -> Option<(Option<Polar>, usize)> {
        self.phrases.iter().find_map(|(words, polar)| {
            let fits =
                i + words.len() <= to && words.iter().zip(&s[i..]).all(|(w, r)| *w == r.word);
            fits.then_some((Some(*polar), words.len()))
        })
    }

    /// Insult nouns block anywhere; insulting adjectives when the reader is named just before.
    fn insults(&self, reads: &[Read], report: &mut ScreenReport) {
        for (i, r) in reads.iter().enumerate() {
            let flags = r.info.flags;
            if flags & (INSULT_NOUN | INSULT_ADJ) == 0 {
                continue;
            }
            // "idiot-proof", "idiot box": the word names a thing, not a person.
            if matches!(reads.get(i + 1).map(|n| n.word), Some("proof" | "box")) {
                continue;
            }
            let aimed = reads[i.saturating_sub(INSULT_WINDOW)..i]
                .iter()
                .any(|b| b.sentence == r.sentence && b.info.flags & ADDRESSEE != 0);
            if flags & INSULT_NOUN != 0 || aimed {
                report.find(FindingKind::Profanity, format!("'{}' (insult)", r.word));
            }
        }
    }
}

#[cfg(test)]
mod tests;
