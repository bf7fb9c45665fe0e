//! Words that shape a clause rather than judge it: contact and refusal,
//! incomprehension, contrast, comparison and superlatives, preference,
//! tolerance, abstract harm, likeness and questions asking for agreement.
//! General English, used by the structural rules in `hate/rules.rs`.

/// Abstract harm done to a group ("violence against women", "racism"):
/// praise denied in their clause is about the harm ("never accept violence
/// against X", "no tolerance for racism"), not the group.
pub const HARM_NOUNS: &[&str] = &[
    "violence", "abuse", "discrimination", "racism", "sexism", "bigotry", "harassment",
    "prejudice", "antisemitism", "islamophobia", "homophobia", "transphobia", "xenophobia",
    "ableism", "misogyny", "intolerance", "bullying",
];

/// Words of likeness: a dehumanising noun in a sentence with one is a
/// comparison ("X and rats have a lot in common", "X resemble apes").
pub const LIKENESS: &[&str] = &[
    "than", "before", "instead", "between", "common", "same", "similar", "alike", "resemble",
    "resembles", "compared", "comparing", "compare", "equivalent", "identical",
];

/// Opinion verbs: a negator before "you"/"we" and one of these asks for
/// agreement, it does not negate ("don't you think X are vile?").
pub const OPINION_VERBS: &[&str] = &[
    "think", "agree", "feel", "find", "believe", "reckon", "see", "know",
];

/// Verbs of contact and association: refusing one with a group as its
/// object is discrimination ("I would never hire X", "I won't sit next to X",
/// "never eat food touched by X"). Positive like `POSITIVE`, but it counts
/// only with the group after it ("X never eat pork" is no refusal).
pub const CONTACT: &[&str] = &[
    "eat", "eating", "drink", "drinking", "touch", "touched", "touching", "handled", "share",
    "sharing", "shake", "sit", "sitting", "hire", "hiring", "hired", "employ", "employing",
    "rent", "renting", "sell", "selling", "serve", "serving", "marry", "marrying", "date",
    "dating", "befriend", "hug", "kiss", "vote", "treat", "visit", "greet", "sleep", "swim",
    "buy", "buying", "shop", "shopping", "work", "working", "talk", "talking", "play",
    "playing", "cook", "cooking", "stay", "staying", "invite",
];

/// Words of incomprehension: they deny the praise they introduce ("it
/// baffles me why anyone values X"), like "I don't understand why". They do
/// not flip a negative predicate: "it baffles me how lazy X are" stays hate.
pub const INCOMPREHENSION: &[&str] = &[
    "baffles", "baffled", "baffling", "mystery", "bewilders", "bewildered", "bewildering", "mystifies",
    "mystified", "mystifying", "perplexes", "perplexed", "perplexing", "puzzles", "puzzling",
    "incomprehensible", "absurd", "ridiculous", "laughable",
];

/// Nouns of contrast that negate a likeness when followed by "between":
/// "there is a difference between X and rats" denies it, "no difference
/// between X and rats" (two negations) asserts it.
pub const CONTRASTS: &[&str] = &["difference", "differences", "distinction", "distinguish"];

/// Comparatives before "than": with one, "nothing"/"nobody"/"none" opens a
/// superlative rather than a negation ("nothing I like less than X" is the
/// least liked; "nobody I admire more than X" the most admired).
pub const COMPARATIVES: &[&str] = &[
    "more", "less", "better", "worse", "rather", "fewer", "greater", "lower", "higher",
];

/// Universal negators that a following comparative turns into a superlative.
pub const UNIVERSALS: &[&str] = &["nothing", "nobody", "none", "noone"];

/// Words of preference: "I'd sooner starve than eat with X" refuses what
/// follows "than".
pub const PREFERENCE: &[&str] = &["rather", "sooner"];

/// Verbs of letting something happen: negated, they oppose the clause they
/// govern, across a "while" ("let's not stand by while X are murdered", "we
/// should not allow any X to be hurt").
pub const TOLERANCE: &[&str] = &[
    "allow", "allows", "allowed", "allowing", "let", "lets", "permit", "permits", "permitted",
    "tolerate", "tolerates", "tolerated", "condone", "condones", "accept", "excuse", "ignore",
    "ignores", "watch", "watching", "silent", "quiet", "stand", "standing", "sit", "sitting",
    "look", "looking",
];
