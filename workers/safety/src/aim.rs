//! Whom a word is aimed at, for the rules that depend on it: an expletive
//! aimed at a thing is mild, a threat under a negated "let" is opposed.

use crate::hate_lexicon::{
    ADDRESSEES, FUNCTION_WORDS, GROUP_NOUNS, INSULT_NOUNS, NEGATORS, PERSON_NOUNS, TOLERANCE,
};
use crate::lexicon::{GROUPS, TARGETS, VICTIMS};
use crate::matcher::Hit;
use crate::normalize::{Token, TokenKind};

/// People named by a pronoun or a common noun (beside `TARGETS`, the person
/// and group nouns, the reader and the insults).
#[rustfmt::skip]
const PEOPLE: &[&str] = &[
    "he", "she", "they", "theyre", "their", "theirs", "his", "hers", "your", "yours", "ur",
    "anyone", "anybody", "someone", "somebody", "everyone", "everybody", "whoever", "who",
    "guy", "dude", "bro", "mate", "sir", "madam", "lady", "ladies", "gentlemen", "girl", "boy",
    "kid", "baby", "staff", "team", "boss", "neighbour", "neighbor", "customer", "customers",
];

/// Endings of plural agent nouns: people by what they do or believe
/// ("politicians", "feminists", "bankers"). Some things end so too
/// ("printers"); reading them as people errs on the blocking side.
const AGENT_ENDINGS: &[&str] = &["ists", "ians", "ers", "ors", "ants", "ents"];

/// Whether the expletive's sentence, or the one before or after it, names a
/// person, the reader, a group or a merge field (a customer's name): then it
/// is aimed at someone ("The idea was bullshit. It came from a X after all").
fn at_someone(tokens: &[Token], hit: &Hit) -> bool {
    tokens[around(tokens, hit.start, 1)]
        .iter()
        .any(|t| match t.kind {
            TokenKind::MergeField => true,
            TokenKind::Word => names_someone(&t.text),
            _ => false,
        })
}

/// Determiners that introduce a thing an expletive may be aimed at:
/// demonstratives, the speaker's possessives, quantifiers ("these fucking
/// sirens", "my clothes aren't worth shit", "fuck all overpriced brands").
/// Not "your" (the reader) nor "the"/"a" (no aim: "what the fuck").
const THING_DETERMINERS: &[&str] = &[
    "these", "those", "this", "that", "my", "our", "all", "every", "each",
];
/// How far after its determiner the noun of a noun phrase may stand.
const NOUN_WINDOW: usize = 3;

/// Whether the expletive is aimed at a thing: its sentence has a noun phrase
/// (a determiner of `THING_DETERMINERS`, then within three words a content
/// word that is not the expletive) before it or right after it, and neither
/// it nor the sentences beside it name anyone. A bare expletive ("fսck", "f*ck off", "double shit points")
/// has no such aim and stays strong.
pub(crate) fn at_a_thing(tokens: &[Token], hit: &Hit) -> bool {
    let sentence = tokens[hit.start].sentence;
    let in_sentence = |i: usize| tokens[i].sentence == sentence;
    // The phrase stands before the expletive ("these fucking sirens", "my
    // clothes aren't worth shit") or right after it ("fuck all brands"),
    // never further on ("shit deals all week" aims at nothing).
    let placed = |i: usize| i < hit.start || i == hit.end;
    let noun_phrase = around(tokens, hit.start, 0)
        .filter(|&i| placed(i))
        .any(|i| {
            THING_DETERMINERS.contains(&tokens[i].text.as_str())
                && (i + 1..(i + 1 + NOUN_WINDOW).min(tokens.len())).any(|j| {
                    in_sentence(j)
                        && !(hit.start..hit.end).contains(&j)
                        && tokens[j].kind == TokenKind::Word
                        && tokens[j].text.chars().any(|c| c.is_alphabetic())
                        && !FUNCTION_WORDS.contains(&tokens[j].text.as_str())
                        && !THING_DETERMINERS.contains(&tokens[j].text.as_str())
                })
        });
    noun_phrase && !at_someone(tokens, hit)
}

/// Whether `word` stands in `source` as written, letter for letter (ASCII
/// case aside) between non-letters: not masked, spaced, elongated, in l33t,
/// look-alike letters or character references.
pub(crate) fn written_plainly(source: &str, word: &str) -> bool {
    if word.is_empty() || word.len() > source.len() {
        return false;
    }
    let bytes = source.as_bytes();
    let is_letter = |i: usize| bytes.get(i).is_some_and(|b| b.is_ascii_alphanumeric());
    (0..=bytes.len() - word.len()).any(|i| {
        bytes[i..i + word.len()].eq_ignore_ascii_case(word.as_bytes())
            && (i == 0 || !is_letter(i - 1))
            && !is_letter(i + word.len())
    })
}

/// The tokens of the sentences within `reach` of the one `at` is in (tokens
/// are in sentence order), found by walking out from `at`: linear in those
/// sentences, not in the text.
fn around(tokens: &[Token], at: usize, reach: u32) -> std::ops::Range<usize> {
    let sentence = tokens[at].sentence;
    let near = |t: &Token| t.sentence.abs_diff(sentence) <= reach;
    let start = tokens[..at]
        .iter()
        .rposition(|t| !near(t))
        .map_or(0, |p| p + 1);
    let end = tokens[at..]
        .iter()
        .position(|t| !near(t))
        .map_or(tokens.len(), |n| at + n);
    start..end
}

fn names_someone(word: &str) -> bool {
    let lists: [&[&str]; 8] = [
        TARGETS,
        ADDRESSEES,
        PERSON_NOUNS,
        GROUP_NOUNS,
        GROUPS,
        INSULT_NOUNS,
        VICTIMS,
        PEOPLE,
    ];
    lists.iter().any(|list| list.contains(&word))
        || (word.len() >= 6 && AGENT_ENDINGS.iter().any(|e| word.ends_with(e)))
}

/// Tolerance verbs that need a particle to mean letting happen ("stand by",
/// "sit back", "look away"); alone they mean something else ("can't stand").
pub(crate) const WITH_PARTICLE: &[&str] =
    &["stand", "standing", "sit", "sitting", "look", "looking"];
pub(crate) const PARTICLES: &[&str] = &["by", "back", "idly", "away", "on", "aside"];
/// How far after its negator a tolerance verb may stand ("not ever allow").
const TOLERANCE_WINDOW: usize = 3;

/// A negator followed by a verb of letting happen earlier in the same
/// comma-separated stretch as `at`: what follows is opposed, not wished.
pub(crate) fn negated_tolerance(tokens: &[Token], at: usize) -> bool {
    let (sentence, clause) = (tokens[at].sentence, tokens[at].clause);
    let same = |t: &Token| t.sentence == sentence && t.clause == clause;
    let start = tokens[..at]
        .iter()
        .rposition(|t| !same(t))
        .map_or(0, |p| p + 1);
    (start..at).any(|i| {
        is_negator(tokens, i)
            && (i + 1..(i + 1 + TOLERANCE_WINDOW).min(at)).any(|j| {
                let w = tokens[j].text.as_str();
                TOLERANCE.contains(&w)
                    && (!WITH_PARTICLE.contains(&w)
                        || tokens
                            .get(j + 1)
                            .is_some_and(|n| PARTICLES.contains(&n.text.as_str())))
            })
    })
}

/// A negator at `i`, also split from its verb in the split stream
/// ("won't" is `won` `t` there, `wont` in the joined one).
pub(crate) fn is_negator(tokens: &[Token], i: usize) -> bool {
    let word = tokens[i].text.as_str();
    NEGATORS.contains(&word)
        || (word == "t"
            && i.checked_sub(1).is_some_and(|p| {
                let joined = format!("{}t", tokens[p].text);
                NEGATORS.contains(&joined.as_str())
            }))
}
