//! The tantivy retriever over the bundled corpus: filters, relevance and the
//! default threshold.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use cpo_retrieval::{Date, RetrievalConfig, RetrievalQuery, Retriever, TantivyRetriever};
use cpo_shared::model::Snippet;

use common::{BUNDLED_OBJECTIVE, query, retriever, run_date, typical_segments};

const OBJECTIVES: &[&str] = &[
    BUNDLED_OBJECTIVE,
    "Promote the new autumn jackets",
    "Grow Trail Rewards loyalty sign-ups",
    "Summer clearance sale on shorts and sandals",
    "Holiday gift event with savings on gloves and hats",
    "Invite everyone to the autumn gear swap weekend in our stores",
    "Welcome new customers and encourage a second purchase",
];

/// Every hit, without threshold or top-k, so filters are tested on their own.
fn all_hits(r: &TantivyRetriever, q: &RetrievalQuery) -> Vec<cpo_retrieval::Hit> {
    r.hits(q, 1000).unwrap()
}

fn ids(snippets: &[Snippet]) -> Vec<&str> {
    snippets.iter().map(|s| s.id.as_str()).collect()
}

#[test]
fn expired_and_not_yet_approved_documents_are_never_returned() {
    let r = retriever();
    let expired = [
        "promo-summer-clearance-2026",
        "promo-holiday-gift-event-2025",
        "promo-weekend-gear-swap",
    ];
    for objective in OBJECTIVES {
        for segment in typical_segments() {
            let q = query(objective, &segment, run_date());
            for hit in all_hits(&r, &q) {
                assert!(
                    !expired.contains(&hit.snippet.id.as_str()),
                    "{} returned for `{objective}` on {}",
                    hit.snippet.id,
                    run_date()
                );
                let doc = r.corpus().get(&hit.snippet.id).unwrap();
                assert!(doc.is_live(run_date()), "{}", doc.id);
            }
        }
    }
    // The same queries find them while they are live: the filter, not the text, excluded them.
    let standard = &typical_segments()[1];
    let in_august = Date::parse("2026-08-15").unwrap();
    let summer = all_hits(&r, &query(OBJECTIVES[3], standard, in_august));
    assert!(
        summer
            .iter()
            .any(|h| h.snippet.id == "promo-summer-clearance-2026")
    );
    // ... and content approved after the run date is not yet usable.
    assert!(
        !summer
            .iter()
            .any(|h| h.snippet.id == "promo-summit-early-access")
    );
    let last_day = Date::parse("2026-08-31").unwrap();
    let on_expiry = Date::parse("2026-09-01").unwrap();
    let live = |day| {
        all_hits(&r, &query(OBJECTIVES[3], standard, day))
            .iter()
            .any(|h| h.snippet.id == "promo-summer-clearance-2026")
    };
    assert!(live(last_day), "usable through the day before expires_at");
    assert!(!live(on_expiry), "expired on expires_at");
}

#[test]
fn audience_filter_keeps_only_documents_for_the_segment_or_all() {
    let r = retriever();
    for segment in typical_segments() {
        let q = query(BUNDLED_OBJECTIVE, &segment, run_date());
        let labels: BTreeSet<&str> = q.audience.iter().map(String::as_str).collect();
        for hit in all_hits(&r, &q) {
            let doc = r.corpus().get(&hit.snippet.id).unwrap();
            assert!(
                doc.audience
                    .iter()
                    .any(|a| a == "all" || labels.contains(a.as_str())),
                "{} ({:?}) returned to {}",
                doc.id,
                doc.audience,
                segment.name
            );
        }
    }
    let segments = typical_segments();
    let win_back = |segment| -> bool {
        all_hits(&r, &query("win back lapsed customers", segment, run_date()))
            .iter()
            .any(|h| h.snippet.id == "promo-win-back-20")
    };
    assert!(
        win_back(&segments[3]),
        "the at-risk segment gets the win-back offer"
    );
    assert!(!win_back(&segments[0]), "high-value customers never see it");
}

#[test]
fn relevance_is_bounded_and_monotone_in_the_raw_score() {
    let r = retriever();
    let mut pairs_checked = 0;
    for objective in OBJECTIVES {
        for segment in typical_segments() {
            let hits = all_hits(&r, &query(objective, &segment, run_date()));
            let mut by_coverage: BTreeMap<u64, Vec<(f64, f64)>> = BTreeMap::new();
            for hit in &hits {
                let rel = hit.snippet.relevance;
                assert!((0.0..=1.0).contains(&rel), "{rel}");
                by_coverage
                    .entry(hit.coverage.to_bits())
                    .or_default()
                    .push((hit.raw_score, rel));
            }
            for group in by_coverage.values_mut() {
                group.sort_by(|a, b| a.0.total_cmp(&b.0));
                for pair in group.windows(2) {
                    assert!(pair[0].1 <= pair[1].1, "{pair:?} for `{objective}`");
                    pairs_checked += 1;
                }
            }
            // Within a result list, higher relevance always comes first.
            assert!(
                hits.windows(2)
                    .all(|w| w[0].snippet.relevance >= w[1].snippet.relevance)
            );
        }
    }
    assert!(
        pairs_checked > 20,
        "only {pairs_checked} equal-coverage pairs"
    );
}

#[test]
fn relevance_does_not_depend_on_the_other_hits() {
    let r = retriever();
    // The at-risk list is led by audience-restricted win-back documents, so
    // removing them changes the best score in the list: a best-score
    // normalisation would move every other relevance.
    let at_risk = &typical_segments()[3];
    let base = query(BUNDLED_OBJECTIVE, at_risk, run_date());
    let full = all_hits(&r, &base);
    let best = full
        .iter()
        .max_by(|a, b| a.raw_score.total_cmp(&b.raw_score))
        .unwrap();
    assert_eq!(best.snippet.id, "promo-win-back-20");
    let reference: BTreeMap<String, f64> = full
        .iter()
        .map(|h| (h.snippet.id.clone(), h.snippet.relevance))
        .collect();

    // Fewer hits (top 1, top 3, a higher threshold) and more (threshold 0) ...
    for (top_k, min_relevance) in [(1, 0.0), (3, 0.0), (100, 0.0), (5, 0.4)] {
        let q = RetrievalQuery {
            top_k,
            min_relevance,
            ..base.clone()
        };
        for s in r.search(&q).unwrap() {
            assert_eq!(reference[&s.id], s.relevance, "{} with top_k {top_k}", s.id);
        }
    }
    // ... and a different audience, which drops the win-back documents from the
    // list while the query text (and so every remaining raw score) stays the same.
    let everyone = RetrievalQuery {
        audience: vec![],
        ..base.clone()
    };
    let narrowed = all_hits(&r, &everyone);
    assert!(!narrowed.iter().any(|h| h.snippet.id == best.snippet.id));
    assert!(narrowed.len() >= 3);
    for hit in narrowed {
        assert_eq!(
            reference[&hit.snippet.id], hit.snippet.relevance,
            "{}",
            hit.snippet.id
        );
    }
}

#[test]
fn default_threshold_gives_three_to_five_snippets_per_segment() {
    let r = retriever();
    let config = RetrievalConfig::default();
    for segment in typical_segments() {
        let snippets = r
            .search(&query(BUNDLED_OBJECTIVE, &segment, run_date()))
            .unwrap();
        assert!(
            (3..=5).contains(&snippets.len()),
            "{}: {:?}",
            segment.name,
            ids(&snippets)
        );
        assert!(snippets.iter().all(|s| s.relevance >= config.min_relevance));
        assert!(
            ids(&snippets).contains(&"promo-autumn-collection-launch"),
            "{}: {:?}",
            segment.name,
            ids(&snippets)
        );
    }
    let at_risk = r
        .search(&query(
            BUNDLED_OBJECTIVE,
            &typical_segments()[3],
            run_date(),
        ))
        .unwrap();
    assert_eq!(at_risk[0].id, "promo-win-back-20", "{:?}", ids(&at_risk));
    // Segments get content written for them, not only the generic copy.
    let high_value = r
        .search(&query(
            BUNDLED_OBJECTIVE,
            &typical_segments()[0],
            run_date(),
        ))
        .unwrap();
    assert!(
        high_value.iter().any(|s| {
            let doc = r.corpus().get(&s.id).unwrap();
            doc.audience.iter().any(|a| a == "premium")
        }),
        "{:?}",
        ids(&high_value)
    );
}

#[test]
fn snippets_carry_the_approved_copy_verbatim() {
    let r = retriever();
    let snippets = r
        .search(&query(
            BUNDLED_OBJECTIVE,
            &typical_segments()[3],
            run_date(),
        ))
        .unwrap();
    assert!(!snippets.is_empty());
    for s in &snippets {
        let doc = r.corpus().get(&s.id).unwrap();
        assert_eq!(s.text, doc.body);
        assert_eq!(s.title, doc.title);
        assert_eq!(s.category, doc.category.as_str());
    }
}

#[tokio::test]
async fn results_are_deterministic_and_fingerprinted() {
    let (a, b) = (retriever(), retriever());
    assert_eq!(a.fingerprint(), b.fingerprint());
    for segment in typical_segments() {
        let q = query(BUNDLED_OBJECTIVE, &segment, run_date());
        let first = serde_json::to_vec(&a.retrieve(&q).await.unwrap()).unwrap();
        let second = serde_json::to_vec(&b.retrieve(&q).await.unwrap()).unwrap();
        assert_eq!(first, second);
    }
    let rescored = TantivyRetriever::new(
        common::bundled_corpus(),
        &RetrievalConfig {
            title_boost: 3.0,
            ..RetrievalConfig::default()
        },
    )
    .unwrap();
    assert_ne!(a.fingerprint(), rescored.fingerprint());
}

#[test]
fn odd_queries_give_empty_or_normal_results_not_errors() {
    let r = retriever();
    let blank = common::segment("", "", &[]);
    assert!(r.search(&query("", &blank, run_date())).unwrap().is_empty());
    assert!(
        r.search(&query("the and of customers", &blank, run_date()))
            .unwrap()
            .is_empty()
    );
    let syntax = query(
        r#"jacket AND ("parka" OR -boots) title:x^3 \ * ?"#,
        &blank,
        run_date(),
    );
    assert!(!r.search(&syntax).unwrap().is_empty());
}
