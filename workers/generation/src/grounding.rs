//! Grounding: which snippets to cite and which of their sentences to quote.
//!
//! Snippets are chosen by relevance with a preference for variety (an offer plus
//! a support or loyalty snippet reads better, and tells more, than two offers);
//! sentences are chosen by how much of the campaign's objective they speak to,
//! whether they stand on their own, and their length. Everything returned is a
//! verbatim slice of a snippet.

use cpo_shared::model::{Brief, Snippet};

use crate::scoring::{category_role, query_terms, sentence_score, snippet_score, usable};
use crate::sentences::{Sentence, split_sentences};
use crate::voice::SegmentKind;

/// How much grounding a draft gets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroundingLimits {
    /// Snippets cited at most (2-3 reads well).
    pub max_snippets: usize,
    /// Factual sentences at most (clamped to 1-4).
    pub max_facts: usize,
    /// A snippet is cited only if its relevance is at least this share of the best one's.
    pub min_relative_relevance: f64,
}

impl Default for GroundingLimits {
    fn default() -> Self {
        Self {
            max_snippets: 3,
            max_facts: 3,
            min_relative_relevance: 0.5,
        }
    }
}

/// A sentence quoted verbatim from a snippet, and the id to cite it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fact<'a> {
    pub snippet_id: &'a str,
    pub sentence: &'a str,
}

struct Candidate<'a> {
    snippet: &'a Snippet,
    score: f64,
    /// Usable sentences, best first.
    sentences: Vec<(Sentence<'a>, f64)>,
}

/// The facts to quote, grouped by snippet (offers first, support and policy
/// last) and in their original order within a snippet.
pub fn select_facts<'a>(
    brief: &'a Brief,
    segment: SegmentKind,
    limits: &GroundingLimits,
) -> Vec<Fact<'a>> {
    let query = query_terms(brief);
    let mut candidates: Vec<Candidate<'a>> = Vec::new();
    for snippet in &brief.snippets {
        if !citable_id(&snippet.id) || candidates.iter().any(|c| c.snippet.id == snippet.id) {
            continue;
        }
        let mut sentences: Vec<(Sentence<'a>, f64)> = split_sentences(&snippet.text)
            .into_iter()
            .filter(usable)
            .map(|s| (s, sentence_score(&s, &query)))
            .collect();
        if sentences.is_empty() {
            continue;
        }
        sentences.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.index.cmp(&b.0.index)));
        candidates.push(Candidate {
            snippet,
            score: snippet_score(snippet, brief, segment),
            sentences,
        });
    }
    candidates.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.snippet.id.cmp(&b.snippet.id))
    });
    let chosen = choose_snippets(candidates, limits);

    let max_facts = limits.max_facts.clamp(1, 4);
    let per_snippet = if chosen.len() == 1 { max_facts } else { 2 };
    // picks[i] holds how many of chosen[i]'s best sentences are quoted.
    let mut picks = vec![0usize; chosen.len()];
    let mut total = 0;
    for round in 0..per_snippet {
        for (i, candidate) in chosen.iter().enumerate() {
            if total < max_facts && candidate.sentences.len() > round {
                picks[i] += 1;
                total += 1;
            }
        }
    }

    let mut order: Vec<usize> = (0..chosen.len()).collect();
    order.sort_by_key(|&i| category_role(&chosen[i].snippet.category));
    let mut facts: Vec<Fact<'a>> = Vec::with_capacity(total);
    for i in order {
        let mut quoted: Vec<Sentence<'a>> = chosen[i].sentences[..picks[i]]
            .iter()
            .map(|(s, _)| *s)
            .collect();
        quoted.sort_by_key(|s| s.index);
        for sentence in quoted {
            if facts.iter().all(|f| f.sentence != sentence.text) {
                facts.push(Fact {
                    snippet_id: &chosen[i].snippet.id,
                    sentence: sentence.text,
                });
            }
        }
    }
    facts
}

/// Greedy: the best snippet, then the best of a category not yet cited, else the next best.
fn choose_snippets<'a>(
    mut ranked: Vec<Candidate<'a>>,
    limits: &GroundingLimits,
) -> Vec<Candidate<'a>> {
    let Some(top) = ranked.first().map(|c| c.score) else {
        return Vec::new();
    };
    let floor = top * limits.min_relative_relevance.clamp(0.0, 1.0);
    ranked.retain(|c| c.score >= floor);
    let mut chosen: Vec<Candidate<'a>> = Vec::new();
    while chosen.len() < limits.max_snippets.max(1) && !ranked.is_empty() {
        let fresh = ranked.iter().position(|c| {
            chosen
                .iter()
                .all(|p| !p.snippet.category.eq_ignore_ascii_case(&c.snippet.category))
        });
        chosen.push(ranked.remove(fresh.unwrap_or(0)));
    }
    chosen
}

/// Ids end up inside `[...]` markers: brackets or whitespace would break citation parsing.
fn citable_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::voice::SegmentKind;

    fn snippet(id: &str, category: &str, relevance: f64, text: &str) -> Snippet {
        Snippet {
            id: id.into(),
            title: id.into(),
            category: category.into(),
            text: text.into(),
            relevance,
        }
    }

    fn brief(objective: &str, snippets: Vec<Snippet>) -> Brief {
        let mut b: Brief = serde_json::from_value(serde_json::json!({
            "campaign": {"campaign_id": "c", "name": "Spring", "objective": objective,
                         "tones": [], "arm_weights": {}},
            "segment": {"name": "Standard", "description": "", "traits": [], "size": 1,
                        "mean_avg_order_value": 0.0, "mean_purchase_frequency": 0.0,
                        "mean_last_engagement_days": 0.0, "mean_engagement": 0.0},
            "segments_total": 1, "query": "", "snippets": []
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        b.snippets = snippets;
        b
    }

    #[test]
    fn prefers_a_second_category_over_a_second_offer() {
        let b = brief(
            "running shoes",
            vec![
                snippet(
                    "p1",
                    "product",
                    0.95,
                    "Our trail running shoes have a new grippy sole.",
                ),
                snippet(
                    "p2",
                    "product",
                    0.90,
                    "The road running shoes come in six colours now.",
                ),
                snippet(
                    "s1",
                    "support",
                    0.80,
                    "Every pair of shoes can be returned within the usual window.",
                ),
            ],
        );
        let limits = GroundingLimits {
            max_snippets: 2,
            ..Default::default()
        };
        let ids: Vec<&str> = select_facts(&b, SegmentKind::Neutral, &limits)
            .iter()
            .map(|f| f.snippet_id)
            .collect();
        assert_eq!(ids, vec!["p1", "s1"]);
    }

    #[test]
    fn weak_snippets_and_uncitable_ids_are_left_out() {
        let b = brief(
            "shoes",
            vec![
                snippet(
                    "good",
                    "product",
                    0.9,
                    "Our shoes are made from recycled materials.",
                ),
                snippet(
                    "weak",
                    "loyalty",
                    0.2,
                    "Members collect points on every order they place.",
                ),
                snippet(
                    "bad id",
                    "support",
                    0.9,
                    "Support is available all week long for you.",
                ),
            ],
        );
        let facts = select_facts(&b, SegmentKind::Neutral, &GroundingLimits::default());
        assert!(facts.iter().all(|f| f.snippet_id == "good"), "{facts:?}");
    }

    #[test]
    fn picks_on_topic_self_contained_sentences_in_source_order() {
        let text = "Welcome to our store. Our spring jackets are now in stock in all sizes. \
                    They also fold small. Spring jackets ship within two days of your order.";
        let b = brief("spring jackets", vec![snippet("d", "product", 0.9, text)]);
        let limits = GroundingLimits {
            max_facts: 2,
            ..Default::default()
        };
        let facts: Vec<&str> = select_facts(&b, SegmentKind::Neutral, &limits)
            .iter()
            .map(|f| f.sentence)
            .collect();
        assert_eq!(
            facts,
            vec![
                "Our spring jackets are now in stock in all sizes.",
                "Spring jackets ship within two days of your order."
            ]
        );
    }

    #[test]
    fn sentences_with_template_syntax_or_questions_are_never_quoted() {
        let b = brief(
            "points",
            vec![snippet(
                "d",
                "loyalty",
                0.9,
                "Hello {{email}} you earned points today. Want more points this month? Members earn points on every order.",
            )],
        );
        let facts = select_facts(&b, SegmentKind::Neutral, &GroundingLimits::default());
        let texts: Vec<&str> = facts.iter().map(|f| f.sentence).collect();
        assert_eq!(texts, vec!["Members earn points on every order."]);
    }

    #[test]
    fn offers_come_before_support() {
        let b = brief(
            "boots",
            vec![
                snippet(
                    "help",
                    "support",
                    0.95,
                    "Our boots team answers questions every day.",
                ),
                snippet(
                    "offer",
                    "promotion",
                    0.9,
                    "Winter boots are part of this season's promotion.",
                ),
            ],
        );
        let ids: Vec<&str> = select_facts(&b, SegmentKind::Neutral, &GroundingLimits::default())
            .iter()
            .map(|f| f.snippet_id)
            .collect();
        assert_eq!(ids, vec!["offer", "help"]);
    }
}
