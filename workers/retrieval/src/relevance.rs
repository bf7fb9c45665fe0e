//! Relevance in [0, 1] for one hit, from that hit alone.
//!
//! The prototype divided each score by the best score of the result list, so the
//! top hit was always "1.0 relevant" however poor the match, and a threshold on it
//! meant nothing. Here a hit's relevance is a fixed function of its own raw BM25
//! score and of how much of the query it covers; the other hits never enter, so
//! adding or removing documents from a result list cannot move it.
//!
//! `relevance = w * s / (s + k) + (1 - w) * coverage`, rounded to four decimals:
//! - `s / (s + k)` saturates the unbounded BM25 score; `k` (`score_half_point`) is
//!   the raw score that counts as half relevant;
//! - `coverage` is the IDF-weighted share of the query's terms the document contains
//!   (a rare term like "parka" weighs more than a common one like "trail"). It
//!   rewards documents that answer several parts of the query over one that
//!   repeats a single term;
//! - rounding makes the value survive a JSON round trip through the cache exactly.

use std::collections::{BTreeSet, HashMap, HashSet};

/// How raw scores and coverage become relevance (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// Raw BM25 score that maps to a saturation of 0.5; > 0.
    pub score_half_point: f64,
    /// Weight of the saturated score against coverage, in [0, 1].
    pub score_weight: f64,
}

impl Calibration {
    /// Relevance of one hit; monotone non-decreasing in both arguments, always in [0, 1].
    pub fn relevance(&self, raw_score: f64, coverage: f64) -> f64 {
        let raw = if raw_score.is_finite() && raw_score > 0.0 {
            raw_score
        } else {
            0.0
        };
        let half = if self.score_half_point > 0.0 {
            self.score_half_point
        } else {
            f64::MIN_POSITIVE
        };
        let saturation = raw / (raw + half);
        let coverage = if coverage.is_finite() {
            coverage.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let weight = if self.score_weight.is_finite() {
            self.score_weight.clamp(0.0, 1.0)
        } else {
            1.0
        };
        round4(weight * saturation + (1.0 - weight) * coverage).clamp(0.0, 1.0)
    }
}

fn round4(x: f64) -> f64 {
    // `+ 0.0` turns -0.0 (an empty f64 sum is -0.0) into 0.0, which serializes as `0.0`.
    (x * 10_000.0).round() / 10_000.0 + 0.0
}

/// Document frequencies of terms across the corpus, for IDF weights.
#[derive(Debug, Clone, Default)]
pub struct TermStats {
    documents: u64,
    document_frequency: HashMap<String, u64>,
}

impl TermStats {
    /// Count, over `documents` (each a set of analyzed terms), how many contain each term.
    pub fn new<'a>(documents: impl IntoIterator<Item = &'a HashSet<String>>) -> Self {
        let mut stats = Self::default();
        for terms in documents {
            stats.documents += 1;
            for term in terms {
                *stats.document_frequency.entry(term.clone()).or_default() += 1;
            }
        }
        stats
    }

    /// BM25's IDF, always positive; `None` for a term no document contains.
    pub fn idf(&self, term: &str) -> Option<f64> {
        let df = *self.document_frequency.get(term)? as f64;
        let n = self.documents as f64;
        Some((1.0 + (n - df + 0.5) / (df + 0.5)).ln())
    }

    /// The query's weighted terms. Terms absent from the corpus are left out: no
    /// document can cover them, so they would only lower every coverage alike.
    pub fn weigh(&self, query_terms: &BTreeSet<String>) -> Vec<(String, f64)> {
        query_terms
            .iter()
            .filter_map(|t| self.idf(t).map(|idf| (t.clone(), idf)))
            .collect()
    }
}

/// IDF-weighted share of `weighted_query` found in `document_terms`, in [0, 1].
pub fn coverage(weighted_query: &[(String, f64)], document_terms: &HashSet<String>) -> f64 {
    let total: f64 = weighted_query.iter().map(|(_, w)| w).sum();
    if total <= 0.0 {
        return 0.0;
    }
    let covered: f64 = weighted_query
        .iter()
        .filter(|(t, _)| document_terms.contains(t))
        .map(|(_, w)| w)
        .sum();
    (covered / total).clamp(0.0, 1.0) + 0.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CAL: Calibration = Calibration {
        score_half_point: 10.0,
        score_weight: 0.6,
    };

    fn set(words: &[&str]) -> HashSet<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn half_point_and_bounds() {
        let only_score = Calibration {
            score_weight: 1.0,
            ..CAL
        };
        assert_eq!(only_score.relevance(10.0, 0.0), 0.5);
        assert_eq!(CAL.relevance(0.0, 0.0), 0.0);
        assert!(CAL.relevance(-0.0, -0.0).is_sign_positive());
        assert_eq!(CAL.relevance(f64::NAN, f64::NAN), 0.0);
        assert!(CAL.relevance(f64::INFINITY, 1.0) <= 1.0);
        assert!(CAL.relevance(1e300, 1.0) > 0.99);
    }

    #[test]
    fn rare_terms_weigh_more_in_coverage() {
        let docs = [
            set(&["trail", "parka"]),
            set(&["trail"]),
            set(&["trail", "boot"]),
        ];
        let stats = TermStats::new(docs.iter());
        assert!(stats.idf("parka").unwrap() > stats.idf("trail").unwrap());
        assert_eq!(stats.idf("absent"), None);
        let query: BTreeSet<String> = ["trail", "parka", "absent"].map(String::from).into();
        let weighted = stats.weigh(&query);
        assert_eq!(weighted.len(), 2, "terms no document has are not weighed");
        assert!(coverage(&weighted, &docs[0]) == 1.0);
        assert!(coverage(&weighted, &docs[1]) < 0.5);
        assert_eq!(coverage(&[], &docs[0]), 0.0);
    }

    proptest! {
        #[test]
        fn relevance_is_bounded_and_monotone(
            a in 0.0f64..200.0, b in 0.0f64..200.0,
            c1 in 0.0f64..=1.0, c2 in 0.0f64..=1.0,
            half in 0.1f64..50.0, weight in 0.0f64..=1.0,
        ) {
            let cal = Calibration { score_half_point: half, score_weight: weight };
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let (clo, chi) = if c1 <= c2 { (c1, c2) } else { (c2, c1) };
            for r in [cal.relevance(lo, clo), cal.relevance(hi, chi)] {
                prop_assert!((0.0..=1.0).contains(&r));
            }
            prop_assert!(cal.relevance(lo, c1) <= cal.relevance(hi, c1));
            prop_assert!(cal.relevance(a, clo) <= cal.relevance(a, chi));
            let r = cal.relevance(a, c1);
            let back: f64 = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
            prop_assert_eq!(back, r, "relevance survives the cache's JSON round trip");
        }
    }
}
