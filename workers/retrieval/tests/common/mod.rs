//! Fixtures shared by the crate-level tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use cpo_retrieval::{Corpus, Date, RetrievalConfig, RetrievalQuery, TantivyRetriever};
use cpo_shared::model::{CampaignContext, SegmentProfile};

/// The objective of the bundled sample campaign.
pub const BUNDLED_OBJECTIVE: &str =
    "Drive sales of the autumn collection and win back lapsed customers";

/// A run date inside the bundled corpus's window: after every approval, after the
/// three expired documents ended, before the live promotions end.
pub fn run_date() -> Date {
    Date::parse("2026-11-24").unwrap()
}

pub fn content_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/content")
}

pub fn bundled_corpus() -> Corpus {
    Corpus::load(content_dir()).unwrap()
}

pub fn retriever() -> TantivyRetriever {
    TantivyRetriever::new(bundled_corpus(), &RetrievalConfig::default()).unwrap()
}

pub fn campaign(objective: &str) -> CampaignContext {
    CampaignContext {
        campaign_id: "cmp-autumn-2026".into(),
        name: "Autumn 2026".into(),
        objective: objective.into(),
        call_to_action_url: None,
        tones: vec!["friendly".into()],
        arm_weights: BTreeMap::new(),
    }
}

pub fn segment(name: &str, description: &str, traits: &[&str]) -> SegmentProfile {
    SegmentProfile {
        name: name.into(),
        description: description.into(),
        traits: traits.iter().map(|t| t.to_string()).collect(),
        size: 100,
        mean_avg_order_value: 120.0,
        mean_purchase_frequency: 3.0,
        mean_last_engagement_days: 40.0,
        mean_engagement: 0.3,
    }
}

/// Segments of the kind segmentation produces (RFM-style rules).
pub fn typical_segments() -> Vec<SegmentProfile> {
    vec![
        segment(
            "High-Value Recent",
            "Average order value of at least $150 and engaged within the last 30 days",
            &["high-value", "premium", "recent"],
        ),
        segment(
            "Standard",
            "Customers with moderate purchase frequency and engagement",
            &["standard", "regular"],
        ),
        segment(
            "New Customer",
            "First purchase within the last 60 days",
            &["new", "onboarding"],
        ),
        segment(
            "At-Risk",
            "No engagement for more than 120 days",
            &["at-risk", "lapsed", "win-back"],
        ),
    ]
}

pub fn query(objective: &str, segment: &SegmentProfile, as_of: Date) -> RetrievalQuery {
    let config = RetrievalConfig::default();
    RetrievalQuery::for_segment(
        &campaign(objective),
        segment,
        as_of,
        config.top_k,
        config.min_relevance,
    )
}
