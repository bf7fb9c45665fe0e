//! Structural rules of the clause scorer that look beyond one word: a
//! superlative opened by "nothing", and a negated "let"/"stand by" whose
//! negation carries into the clause it governs.

use super::{COMPARATIVE, NEGATOR, Read, TOLERANT, UNIVERSAL};
use crate::aim::{PARTICLES, WITH_PARTICLE};

/// Clause words after which the next clause is what was (not) tolerated.
const GOVERNED: &[&str] = &["while", "whilst", "when", "if"];

/// "nothing", "nobody", "none", "no one" at `i` open a superlative when a
/// comparative and "than" follow in the clause ("nothing I like less than
/// X"): they do not negate it, the comparative does.
pub(super) fn opens_superlative(s: &[Read], i: usize, to: usize) -> bool {
    let universal = s[i].info.flags & UNIVERSAL != 0
        || (s[i].word == "no" && s.get(i + 1).is_some_and(|r| r.word == "one"));
    universal
        && (i + 2..to).any(|j| s[j].word == "than" && s[j - 1].info.flags & COMPARATIVE != 0)
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
