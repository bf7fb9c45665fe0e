//! How good a sentence or snippet is for a brief: relevance to the campaign,
//! whether a sentence stands on its own, and where a snippet's category belongs
//! in the message. Scores only order candidates; they are never shown.

use cpo_shared::model::{Brief, Snippet};

use crate::sentences::Sentence;
use crate::voice::SegmentKind;

/// Can this sentence be quoted as a fact? Questions are not facts; anything
/// with template or citation syntax could smuggle in merge fields or fake citations.
pub fn usable(sentence: &Sentence<'_>) -> bool {
    let text = sentence.text;
    let chars = text.chars().count();
    (20..=300).contains(&chars)
        && text.split_whitespace().count() >= 4
        && !text.contains(['[', ']', '{', '}', '<', '>'])
        && !text.contains("%}")
        && text.chars().next().is_some_and(|c| {
            c.is_uppercase() || c.is_ascii_digit() || matches!(c, '$' | '"' | '(' | '\u{201c}')
        })
        && !text.trim_end_matches(['"', ')', '\u{201d}']).ends_with('?')
        && !text.ends_with(':')
}

/// Words that lean on a previous sentence and read badly on their own.
const ANAPHORA: &[&str] = &[
    "it", "its", "this", "that", "these", "those", "they", "their", "also", "however", "but",
    "and", "plus", "he", "she", "there",
];

pub fn sentence_score(sentence: &Sentence<'_>, query: &[String]) -> f64 {
    let words = terms(sentence.text);
    let overlap = query.iter().filter(|q| words.contains(q)).count() as f64;
    let lead = match sentence.index {
        0 => 0.6,
        1 => 0.3,
        _ => 0.0,
    };
    let chars = sentence.text.chars().count();
    let length = if (40..=180).contains(&chars) {
        0.3
    } else {
        0.0
    };
    let first = sentence
        .text
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("")
        .to_lowercase();
    let dangling = if sentence.index > 0 && ANAPHORA.contains(&first.as_str()) {
        0.8
    } else {
        0.0
    };
    let wrapped = if sentence.text.contains('\n') {
        1.0
    } else {
        0.0
    };
    let unfinished = if sentence.terminated { 0.0 } else { 2.0 };
    overlap + lead + length - dangling - wrapped - unfinished
}

pub fn snippet_score(snippet: &Snippet, brief: &Brief, segment: SegmentKind) -> f64 {
    let relevance = if snippet.relevance.is_finite() {
        snippet.relevance.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let category = snippet.category.to_lowercase();
    let suits = segment
        .preferred_categories()
        .iter()
        .any(|p| category.contains(p))
        || brief
            .segment
            .traits
            .iter()
            .any(|t| !t.is_empty() && category.contains(&t.to_lowercase()));
    // A nudge, not an override: it only reorders snippets of near-equal relevance.
    relevance + if suits { 0.1 } else { 0.0 }
}

/// Offers lead, support and policy close; anything else sits between.
pub fn category_role(category: &str) -> u8 {
    let c = category.to_lowercase();
    let any = |needles: &[&str]| needles.iter().any(|n| c.contains(n));
    if any(&[
        "product",
        "promotion",
        "offer",
        "sale",
        "collection",
        "launch",
        "feature",
        "event",
    ]) {
        0
    } else if any(&[
        "support", "policy", "shipping", "return", "faq", "help", "warranty", "service", "terms",
    ]) {
        2
    } else {
        1
    }
}

const STOPWORDS: &[&str] = &[
    "the",
    "and",
    "for",
    "with",
    "our",
    "your",
    "you",
    "are",
    "was",
    "were",
    "has",
    "have",
    "this",
    "that",
    "from",
    "into",
    "all",
    "any",
    "can",
    "will",
    "not",
    "but",
    "its",
    "their",
    "they",
    "who",
    "what",
    "when",
    "how",
    "more",
    "most",
    "customers",
    "customer",
    "increase",
    "drive",
];

/// Lowercase content words, naively singularised, without stopwords.
fn terms(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
        .map(|w| {
            let lower = w.to_lowercase();
            match lower.strip_suffix('s') {
                Some(stem) if stem.len() >= 4 && !stem.ends_with('s') => stem.to_string(),
                _ => lower,
            }
        })
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .collect();
    out.sort();
    out.dedup();
    out
}

pub fn query_terms(brief: &Brief) -> Vec<String> {
    let mut text = format!(
        "{} {} {}",
        brief.campaign.objective, brief.query, brief.campaign.name
    );
    for t in &brief.segment.traits {
        text.push(' ');
        text.push_str(t);
    }
    terms(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sentences::split_sentences;

    #[test]
    fn terms_are_lowercase_singular_content_words() {
        assert_eq!(
            terms("Our Jackets and the JACKET boss ship today"),
            vec!["boss", "jacket", "ship", "today"]
        );
    }

    #[test]
    fn offers_lead_and_support_closes() {
        assert!(category_role("Promotion") < category_role("loyalty"));
        assert!(category_role("loyalty") < category_role("Returns policy"));
    }

    #[test]
    fn a_sentence_leaning_on_the_previous_one_scores_lower() {
        let sentences =
            split_sentences("Jackets are in stock today. They also fold into a pocket.");
        let query = terms("jackets pocket");
        let lead = sentence_score(&sentences[0], &query);
        let leaning = sentence_score(&sentences[1], &query);
        assert!(lead > leaning, "{lead} <= {leaning}");
    }
}
