//! Structural rules of the clause scorer that look beyond one word: a
//! superlative opened by "nothing", and a negated "let"/"stand by" whose
//! negation carries into the clause it governs.

use super::{
    ADDRESSEE, BREAK, COMPARATIVE, FACTIVE_WORD, GROUP_ADJ, GROUP_NOUN, LINK, NEGATOR, OPINION,
    PERSON, PREFER, Polar, Read, SUBJECT, TOLERANT, UNIVERSAL,
};
use crate::aim::{PARTICLES, WITH_PARTICLE};

/// Clause words after which the next clause is what was (not) tolerated.
const GOVERNED: &[&str] = &["while", "whilst", "when", "if"];

/// "nothing", "nobody", "none", "no one" at `i` open a superlative when a
/// comparative follows in the clause ("nothing I like less than X", "no one
/// offers better prices"): they do not negate it, the comparative does.
pub(super) fn opens_superlative(s: &[Read], i: usize, to: usize) -> bool {
    // "no creature I despise more than X" too; not "no X is less human than
    // you", where "no" quantifies the group.
    let universal = s[i].info.flags & UNIVERSAL != 0
        || (s[i].word == "no" && i + 1 < to && !is_group_at(s, i + 1));
    // "than" may stay implicit: "no one offers better prices".
    universal && (i + 2..to).any(|j| s[j].info.flags & COMPARATIVE != 0)
}

/// A clause that negates letting something happen ("let's not stand by",
/// "we will not allow it") and ends at "while"/"when"/"if" passes its
/// negation to the clause after: that clause is what is opposed.
pub(super) fn carries_negation(s: &[Read], from: usize, to: usize) -> bool {
    if !s.get(to).is_some_and(|r| GOVERNED.contains(&r.word)) {
        return false;
    }
    let tolerance = (from..to).any(|i| {
        s[i].info.flags & TOLERANT != 0
            && (!WITH_PARTICLE.contains(&s[i].word)
                || s.get(i + 1).is_some_and(|r| PARTICLES.contains(&r.word)))
    });
    let negators = (from..to)
        .filter(|&i| s[i].info.flags & NEGATOR != 0)
        .count();
    tolerance && negators % 2 == 1
}

/// "don't you think", "wouldn't we agree": a negator before "you"/"we" and an
/// opinion verb asks for agreement with what follows, it does not deny it.
pub(super) fn asks_agreement(s: &[Read], i: usize) -> bool {
    let subject = s
        .get(i + 1)
        .is_some_and(|r| r.info.flags & (ADDRESSEE | SUBJECT) != 0);
    subject && s.get(i + 2).is_some_and(|r| r.info.flags & OPINION != 0)
}

/// Prepositions that attach a noun to something else than the link before
/// it ("X is collecting blankets for dogs" links X to blankets, not dogs).
const DETACHING: &[&str] = &[
    "for", "with", "from", "about", "at", "near", "by", "to", "into", "on", "in", "and",
];

/// A link ("are", "like", "nothing but") stands within `window` tokens before
/// the dehumanising noun at `i`, with no preposition between them.
pub(super) fn linked(s: &[Read], i: usize, window: usize) -> bool {
    let from = i.saturating_sub(window);
    (from..i).rev().try_fold((), |(), j| {
        // "but" links only after a negator ("nothing but vermin"); elsewhere
        // it opens a clause ("..., but guide dogs for blind people").
        let but_alone = s[j].word == "but"
            && !j
                .checked_sub(1)
                .is_some_and(|p| s[p].info.flags & NEGATOR != 0 || s[p].word == "anything");
        if s[j].info.flags & LINK != 0 && !but_alone {
            return Err(true);
        }
        if DETACHING.contains(&s[j].word) {
            return Err(false);
        }
        Ok(())
    }) == Err(true)
}

/// "than" at `i` after "rather"/"sooner" in the clause from `from`: the
/// clause ends there, and the one after it is what is refused.
pub(super) fn prefers_before(s: &[Read], from: usize, i: usize) -> bool {
    s[i].word == "than" && (from..i).any(|j| s[j].info.flags & PREFER != 0)
}

/// The predicate at `i` in its context: "refuse" is a noun after a link
/// ("nothing but refuse"), a refusal (a negator) anywhere else.
pub(super) fn sense(s: &[Read], i: usize) -> Option<Polar> {
    if s[i].word == "refuse" {
        let noun = i
            .checked_sub(1)
            .is_some_and(|p| s[p].info.flags & LINK != 0);
        return noun.then_some(Polar::Dehumanising);
    }
    s[i].info.polar
}

/// Where a clause ends: a clause word, but not right after a negator
/// ("nothing but vermin"); "that" only after a word of knowing (`FACTIVE`),
/// "so" only before a subject.
pub(super) fn is_break(s: &[Read], i: usize) -> bool {
    if s[i].info.flags & BREAK == 0 {
        return false;
    }
    let prev = i.checked_sub(1).map(|p| s[p].info.flags).unwrap_or(0);
    if prev & NEGATOR != 0 {
        return false;
    }
    let next = s.get(i + 1).map_or(0, |r| r.info.flags);
    match s[i].word {
        // "is it not clear to all of you that ...": the knowing word may stand a few words back.
        "that" => s[i.saturating_sub(6)..i]
            .iter()
            .any(|r| r.info.flags & FACTIVE_WORD != 0),
        "so" => next & SUBJECT != 0,
        _ => true,
    }
}

/// A group is named at `i`: a group noun, or a group adjective with a person
/// noun, another group word or a dehumanising noun ("female vermin") within
/// the next two tokens.
pub(super) fn is_group_at(s: &[Read], i: usize) -> bool {
    let flags = s[i].info.flags;
    if flags & GROUP_NOUN != 0 {
        return true;
    }
    // "trans freaks", "gay perverts": a derogatory noun (plural) names people too.
    flags & GROUP_ADJ != 0
        && s[i + 1..(i + 3).min(s.len())].iter().any(|r| {
            r.info.flags & (PERSON | GROUP_NOUN | GROUP_ADJ) != 0
                || r.info.polar == Some(Polar::Dehumanising)
                || (r.info.polar == Some(Polar::Derogatory) && r.word.ends_with('s'))
        })
}
