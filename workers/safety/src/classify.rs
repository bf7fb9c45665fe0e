//! Harm severities and lexicon findings from the token streams.
//!
//! Severity is the base weight of the strongest term per category, raised by
//! context: a `directed` term (kill, shoot, stab, die...) gains 3 when a person
//! or a group is within three tokens in the same sentence and 1 more when
//! intent words precede it ("I will kill you" 7, "kill you" 6, "kill" 3).
//! Terms inside a marketing idiom score nothing ("killer deals", "to die for").

use std::collections::HashSet;

use crate::aim;
use crate::error::SafetyError;
use crate::hate::HateScorer;
use crate::hate_lexicon::{FUNCTION_WORDS, HOMONYMS};
use crate::lexicon::{
    ENTRIES, Effect, GROUPS, INTENT, MACROS, POSSESSIVES, TARGETS, VICTIMS, misspelt_entries,
    segment_words,
};
use crate::matcher::{Hit, Matcher};
use crate::normalize::{Token, TokenKind, TokenStreams};
use crate::screen::{FindingKind, HarmCategory, ScreenReport};
use crate::segment::Segmenter;

/// How far (in tokens) a target or intent word may be from a directed term.
const WINDOW: usize = 3;
/// How far before a directed term a negator cancels its context.
const NEGATION_WINDOW: usize = 4;

pub struct Classifier {
    matcher: Matcher<Effect>,
    targets: HashSet<&'static str>,
    groups: HashSet<&'static str>,
    intent: HashSet<&'static str>,
    possessives: HashSet<&'static str>,
    victims: HashSet<&'static str>,
    hate: HateScorer,
    segmenter: Segmenter,
}

/// Who a directed term is aimed at.
enum Target {
    Person,
    Group,
}

impl Classifier {
    pub fn new() -> Result<Self, SafetyError> {
        let hate = HateScorer::new();
        // Every word the lexicon knows, so no misspelling shadows a real entry.
        let known: HashSet<&str> = ENTRIES
            .iter()
            .flat_map(|(spec, _)| spec.split([' ', '|']))
            .map(|w| w.trim_end_matches('?'))
            .collect();
        let misspelt = misspelt_entries(&known);
        let entries = ENTRIES
            .iter()
            .copied()
            .chain(
                misspelt
                    .iter()
                    .map(|(spec, effect)| (spec.as_str(), *effect)),
            )
            .collect();
        Ok(Self {
            matcher: Matcher::new(entries, MACROS)?,
            targets: TARGETS.iter().copied().collect(),
            groups: GROUPS.iter().copied().collect(),
            intent: INTENT.iter().copied().collect(),
            possessives: POSSESSIVES.iter().copied().collect(),
            victims: VICTIMS.iter().copied().collect(),
            segmenter: Segmenter::new(
                hate.vocabulary()
                    .chain(FUNCTION_WORDS.iter().copied())
                    .chain(segment_words()),
            ),
            hate,
        })
    }

    /// `source` is the text as written (before decoding): an expletive
    /// counts as mild only when it is written there plainly.
    pub fn classify(&self, streams: &TokenStreams, source: &str, report: &mut ScreenReport) {
        self.classify_stream(&streams.split, source, report);
        self.classify_stream(&streams.joined, source, report);
        self.hate.score(&streams.joined, report);
        // Deleted spaces: "ihatewomen", "illkillyou" cut into words and judged again.
        if let Some(cut) = self.segmenter.segment(&streams.joined) {
            self.classify_stream(&cut, source, report);
            self.hate.score(&cut, report);
        }
    }

    fn classify_stream(&self, tokens: &[Token], source: &str, report: &mut ScreenReport) {
        let hits = self.matcher.find(tokens);
        let mut in_idiom = vec![false; tokens.len()];
        for hit in &hits {
            if *self.matcher.effect(hit.entry) == Effect::Idiom {
                in_idiom[hit.start..hit.end].fill(true);
            }
        }
        let covered = |hit: &Hit| {
            in_idiom[hit.start..hit.end].iter().all(|c| *c) || ordinary_sense(tokens, hit)
        };
        for hit in &hits {
            let label = &hit.label;
            match *self.matcher.effect(hit.entry) {
                Effect::Harm { .. } => {
                    if !covered(hit) {
                        self.score_harm(tokens, hit, report);
                    }
                }
                Effect::Profanity { mild } => {
                    if !covered(hit) {
                        let kind = if mild {
                            FindingKind::MildProfanity
                        } else {
                            FindingKind::Profanity
                        };
                        report.find(kind, format!("'{label}'"));
                    }
                }
                // An expletive aimed at a thing ("these fucking sirens", "my
                // clothes aren't worth shit") is mild: it blocks with
                // `block_mild_profanity`. Bare, aimed at anyone or disguised
                // (`f*cking`, `f u c k`, look-alikes, entities), it is strong.
                Effect::Expletive => {
                    if !covered(hit) {
                        if aim::at_a_thing(tokens, hit) && aim::written_plainly(source, label) {
                            report.find(
                                FindingKind::MildProfanity,
                                format!("'{label}' (aimed at a thing)"),
                            );
                        } else {
                            report.find(FindingKind::Profanity, format!("'{label}'"));
                        }
                    }
                }
                Effect::Claim { citable } => {
                    if !(citable && cited_nearby(tokens, hit)) {
                        report.find(FindingKind::UnsubstantiatedClaim, format!("'{label}'"));
                    }
                }
                Effect::Injection => {
                    report.find(FindingKind::PromptInjection, format!("'{label}'"))
                }
                Effect::Phishing => {
                    if !negated_before(tokens, hit) {
                        report.find(FindingKind::Phishing, format!("'{label}'"));
                    }
                }
                Effect::Idiom => {}
            }
        }
    }

    fn score_harm(&self, tokens: &[Token], hit: &Hit, report: &mut ScreenReport) {
        let Effect::Harm {
            category,
            base,
            directed,
        } = *self.matcher.effect(hit.entry)
        else {
            return;
        };
        let label = &hit.label;
        // "never tolerate the murder of X", "not let anyone hurt you": a
        // negated threat is no threat; the word keeps its base weight.
        let negated = negated_before(tokens, hit);
        // "No Muslim deserves to die": a negated statement about a group is not hate.
        if negated && category == HarmCategory::Hate && hit.end > hit.start + 1 {
            return;
        }
        let target = if directed && !negated {
            self.target_near(tokens, hit)
        } else {
            None
        };
        let Some(target) = target else {
            report.raise(category, base.min(7), label, None);
            return;
        };
        let with_intent = self.intent_before(tokens, hit);
        let severity = (base + 3 + u8::from(with_intent)).min(7);
        let context = match (&target, with_intent) {
            (Target::Group, _) => "aimed at a group",
            (Target::Person, true) => "aimed at a person, with stated intent",
            (Target::Person, false) => "aimed at a person",
        };
        report.raise(category, severity, label, Some(context));
        if matches!(target, Target::Group) {
            report.raise(
                HarmCategory::Hate,
                severity,
                label,
                Some("violence against a group"),
            );
        }
    }

    fn target_near(&self, tokens: &[Token], hit: &Hit) -> Option<Target> {
        let sentence = tokens[hit.start].sentence;
        let before = hit.start.saturating_sub(WINDOW)..hit.start;
        let after = hit.end..(hit.end + WINDOW).min(tokens.len());
        let victim_after = |i: usize| {
            tokens[i + 1..(i + 3).min(tokens.len())]
                .iter()
                .any(|t| t.sentence == sentence && self.victims.contains(t.text.as_str()))
        };
        before
            .chain(after)
            .filter(|i| tokens[*i].sentence == sentence)
            .find_map(|i| {
                let t = &tokens[i];
                let word = t.text.as_str();
                match t.kind {
                    TokenKind::MergeField => Some(Target::Person),
                    TokenKind::Word if self.groups.contains(word) => Some(Target::Group),
                    TokenKind::Word if self.targets.contains(word) => Some(Target::Person),
                    TokenKind::Word if self.possessives.contains(word) && victim_after(i) => {
                        Some(Target::Person)
                    }
                    _ => None,
                }
            })
    }

    fn intent_before(&self, tokens: &[Token], hit: &Hit) -> bool {
        let sentence = tokens[hit.start].sentence;
        tokens[hit.start.saturating_sub(WINDOW)..hit.start]
            .iter()
            .any(|t| t.sentence == sentence && self.intent.contains(t.text.as_str()))
    }
}

/// A negator shortly before the hit in its sentence ("never share your
/// password"), or a negated letting-happen earlier in its clause ("we should
/// not allow any X to be hurt", "let's not stand by while X are murdered").
fn negated_before(tokens: &[Token], hit: &Hit) -> bool {
    let sentence = tokens[hit.start].sentence;
    let near = (hit.start.saturating_sub(NEGATION_WINDOW)..hit.start)
        .any(|i| tokens[i].sentence == sentence && aim::is_negator(tokens, i));
    near || aim::negated_tolerance(tokens, hit.start)
}

/// A slur that is also an ordinary word, in a sentence with a word of its
/// ordinary sense ("the dyke held back the sea", "a queer feeling").
fn ordinary_sense(tokens: &[Token], hit: &Hit) -> bool {
    if hit.end != hit.start + 1 {
        return false;
    }
    let word = tokens[hit.start].text.as_str();
    let Some((_, senses)) = HOMONYMS.iter().find(|(forms, _)| forms.contains(&word)) else {
        return false;
    };
    let sentence = tokens[hit.start].sentence;
    tokens
        .iter()
        .any(|t| t.sentence == sentence && senses.contains(&t.text.as_str()))
}

/// A citation in the claim's sentence, or opening the next one ("... proven. [doc-1]").
fn cited_nearby(tokens: &[Token], hit: &Hit) -> bool {
    let sentence = tokens[hit.start].sentence;
    let in_sentence = tokens
        .iter()
        .any(|t| t.kind == TokenKind::Citation && t.sentence == sentence);
    in_sentence
        || tokens[hit.end..]
            .iter()
            .find(|t| t.sentence != sentence)
            .is_some_and(|t| t.kind == TokenKind::Citation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::{Tokenizer, visible_nfkc};

    fn report(text: &str) -> ScreenReport {
        let streams = Tokenizer::new().unwrap().tokenize(&visible_nfkc(text));
        let mut report = ScreenReport::default();
        Classifier::new()
            .unwrap()
            .classify(&streams, text, &mut report);
        report
    }

    #[test]
    fn the_builtin_lexicon_compiles() {
        assert!(Classifier::new().is_ok());
    }

    #[test]
    fn context_raises_a_threat_and_idioms_keep_marketing_low() {
        assert_eq!(report("kill").categories.violence, 3);
        assert_eq!(report("kill you").categories.violence, 6);
        assert_eq!(report("I will kill you").categories.violence, 7);
        assert_eq!(report("Killer deals for you").categories.violence, 0);
        assert_eq!(report("the killer").categories.violence, 1);
        assert_eq!(
            report("A dress to die for, just for you")
                .categories
                .violence,
            0
        );
        assert_eq!(report("We'll shoot you an email").categories.violence, 0);
        // a target in the next sentence does not count
        assert_eq!(report("Prices that kill. You win.").categories.violence, 3);
        assert_eq!(report("kill {{first_name}}").categories.violence, 6);
    }

    #[test]
    fn violence_against_a_group_is_also_hate() {
        let r = report("kill all immigrants");
        assert_eq!(r.categories.hate, 7);
        assert!(r.categories.violence >= 6);
    }

    #[test]
    fn evidence_names_the_strongest_term_and_its_context() {
        let r = report("I will kill you");
        let e = r
            .evidence
            .iter()
            .find(|e| e.category == HarmCategory::Violence)
            .unwrap();
        assert_eq!((e.severity, e.term.as_str()), (7, "kill"));
        assert_eq!(
            e.context.as_deref(),
            Some("aimed at a person, with stated intent")
        );
    }

    #[test]
    fn citable_claims_pass_with_a_citation_in_the_sentence() {
        let kinds = |t: &str| {
            report(t)
                .findings
                .iter()
                .map(|f| f.kind)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            kinds("Clinically proven to hydrate."),
            [
                FindingKind::UnsubstantiatedClaim,
                FindingKind::UnsubstantiatedClaim
            ]
        );
        assert!(kinds("Clinically proven to hydrate [doc-2].").is_empty());
        assert!(kinds("Clinically proven to hydrate. [doc-2]").is_empty());
        assert_eq!(
            kinds("A guaranteed cure [doc-2]."),
            [FindingKind::UnsubstantiatedClaim]
        );
    }
}
