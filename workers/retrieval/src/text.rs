//! Text analysis shared by the index and the query side, and the normal form of
//! audience labels. Both sides must analyze identically or terms stop matching,
//! so there is exactly one analyzer and it carries a version that enters the
//! cache fingerprint.

use std::collections::BTreeSet;

use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer,
    StopWordFilter, TextAnalyzer,
};

/// Name the analyzer is registered under in the index.
pub const ANALYZER_NAME: &str = "cpo_en";

/// Bump when the analyzer or the stop words change: cached results then stop matching.
pub const ANALYZER_VERSION: &str = "en-2";

/// Lucene's English stop words, plus the vocabulary of segment rules and campaign
/// briefs ("customers with an average order value above...", "drive sales") that
/// says nothing about which content fits and would otherwise match most documents.
const STOP_WORDS: &[&str] = &[
    // Lucene English
    "a",
    "an",
    "and",
    "are",
    "as",
    "at",
    "be",
    "but",
    "by",
    "for",
    "if",
    "in",
    "into",
    "is",
    "it",
    "no",
    "not",
    "of",
    "on",
    "or",
    "such",
    "that",
    "the",
    "their",
    "then",
    "there",
    "these",
    "they",
    "this",
    "to",
    "was",
    "will",
    "with",
    // brief and segment-rule vocabulary
    "above",
    "average",
    "avg",
    "below",
    "campaign",
    "click",
    "customer",
    "customers",
    "day",
    "days",
    "drive",
    "engagement",
    "frequency",
    "from",
    "grow",
    "has",
    "have",
    "increase",
    "last",
    "least",
    "less",
    "month",
    "months",
    "more",
    "open",
    "order",
    "orders",
    "our",
    "over",
    "per",
    "rate",
    "score",
    "segment",
    "than",
    "under",
    "we",
    "who",
    "within",
    "you",
    "your",
];

/// The analyzer used for title, keywords and body, and for queries.
pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(StopWordFilter::remove(
            STOP_WORDS.iter().map(|w| (*w).to_string()),
        ))
        .filter(Stemmer::new(Language::English))
        .build()
}

/// Every analyzed term of `text`, in order, duplicates kept.
pub fn terms(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stream = analyzer.token_stream(text);
    while stream.advance() {
        out.push(stream.token().text.clone());
    }
    out
}

/// The distinct terms a query searches for. Pure numbers are dropped: in a segment
/// rule ("above 150", "last 30 days") they are thresholds, and matching them
/// against prices and periods in the copy is noise.
pub fn query_terms(analyzer: &mut TextAnalyzer, text: &str) -> BTreeSet<String> {
    terms(analyzer, text)
        .into_iter()
        .filter(|t| !t.bytes().all(|b| b.is_ascii_digit()))
        .collect()
}

/// Normal form of an audience label, segment name or trait: runs of lowercase
/// letters and digits joined by single dashes ("High-Value Recent" and
/// "high_value_recent" both become "high-value-recent").
pub fn audience_label(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// Whitespace runs (line breaks included) folded to one space: bodies are quoted
/// sentence by sentence into one-paragraph copy.
pub fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stems_fold_inflections_and_stop_words_drop() {
        let mut a = analyzer();
        assert_eq!(terms(&mut a, "Jackets"), terms(&mut a, "jacket"));
        assert_eq!(terms(&mut a, "lapsed"), terms(&mut a, "lapse"));
        assert!(terms(&mut a, "the customers with an average order").is_empty());
    }

    #[test]
    fn query_terms_are_distinct_and_skip_numbers() {
        let mut a = analyzer();
        let t = query_terms(&mut a, "Autumn jackets, autumn JACKET above 150 in 30 days");
        assert_eq!(t.into_iter().collect::<Vec<_>>(), ["autumn", "jacket"]);
    }

    #[test]
    fn audience_labels_normalize_case_and_separators() {
        assert_eq!(audience_label("High-Value Recent"), "high-value-recent");
        assert_eq!(audience_label(" high_value__recent "), "high-value-recent");
        assert_eq!(audience_label("At-Risk"), "at-risk");
        assert_eq!(audience_label("--"), "");
    }

    proptest! {
        #[test]
        fn audience_label_is_idempotent(raw in "\\PC{0,24}") {
            let once = audience_label(&raw);
            prop_assert_eq!(audience_label(&once), once.clone());
            prop_assert!(!once.starts_with('-') && !once.ends_with('-'));
            prop_assert!(!once.contains("--"));
        }
    }
}
