//! The retrieval contract: what a query is and what any backend (the embedded
//! tantivy index, a remote search service, the caching wrapper) must answer.

use async_trait::async_trait;
use cpo_shared::envelope::derive_id;
use cpo_shared::model::{CampaignContext, SegmentProfile, Snippet};

use crate::date::Date;
use crate::text::audience_label;

#[derive(Debug, thiserror::Error)]
pub enum RetrievalError {
    /// The index or backend failed in a way a retry will not fix.
    #[error("search failed: {0}")]
    Search(String),
    /// A remote backend did not answer; a retry may succeed.
    #[error("search backend unavailable: {0}")]
    Unavailable(String),
    #[error("config key `retrieval.{key}`: {message}")]
    Config { key: &'static str, message: String },
    #[error(transparent)]
    Corpus(#[from] crate::corpus::CorpusError),
}

impl RetrievalError {
    pub fn is_transient(&self) -> bool {
        matches!(self, RetrievalError::Unavailable(_))
    }
}

/// What to retrieve for one segment of one campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrievalQuery {
    /// Free text: the objective, then the segment's name, description and traits.
    pub text: String,
    /// The campaign objective alone: coverage measures how much of it a document answers.
    pub objective: String,
    /// Normalized segment name and traits; a document must list one of them (or `all`).
    pub audience: Vec<String>,
    /// Run date: documents not yet approved or already expired on it are excluded.
    pub as_of: Date,
    pub top_k: usize,
    pub min_relevance: f64,
}

impl RetrievalQuery {
    pub fn for_segment(
        campaign: &CampaignContext,
        segment: &SegmentProfile,
        as_of: Date,
        top_k: usize,
        min_relevance: f64,
    ) -> Self {
        let mut parts: Vec<&str> = vec![
            campaign.objective.trim(),
            segment.name.trim(),
            segment.description.trim(),
        ];
        parts.extend(segment.traits.iter().map(|t| t.trim()));
        parts.retain(|p| !p.is_empty());
        let text = parts.join(". ");

        let mut audience: Vec<String> = std::iter::once(&segment.name)
            .chain(&segment.traits)
            .map(|label| audience_label(label))
            .filter(|label| !label.is_empty())
            .collect();
        audience.sort();
        audience.dedup();
        Self {
            text,
            objective: campaign.objective.trim().to_string(),
            audience,
            as_of,
            top_k,
            min_relevance,
        }
    }

    /// Digest of everything the answer depends on besides the content and scoring:
    /// the cache key's query part.
    pub fn digest(&self) -> String {
        let as_of = self.as_of.to_string();
        let audience = self.audience.join("\n");
        let top_k = self.top_k.to_string();
        let min_relevance = format!("{:.6}", self.min_relevance);
        derive_id(&[
            &self.text,
            &self.objective,
            &audience,
            &as_of,
            &top_k,
            &min_relevance,
        ])
    }
}

/// A source of approved snippets. Object-safe: the stage holds an `Arc<dyn Retriever>`.
#[async_trait]
pub trait Retriever: Send + Sync + 'static {
    /// Identifies the content and scoring behind the answers: equal fingerprints and
    /// equal queries give equal snippets. Part of every cache key.
    fn fingerprint(&self) -> &str;

    /// Up to `top_k` snippets with relevance >= `min_relevance`, most relevant first.
    /// No match is an empty list, not an error.
    async fn retrieve(&self, query: &RetrievalQuery) -> Result<Vec<Snippet>, RetrievalError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    pub(crate) fn campaign(objective: &str) -> CampaignContext {
        CampaignContext {
            campaign_id: "c1".into(),
            name: "Autumn".into(),
            objective: objective.into(),
            call_to_action_url: None,
            tones: vec![],
            arm_weights: BTreeMap::new(),
        }
    }

    pub(crate) fn segment(name: &str, traits: &[&str]) -> SegmentProfile {
        SegmentProfile {
            name: name.into(),
            description: "Customers who bought recently".into(),
            traits: traits.iter().map(|t| t.to_string()).collect(),
            size: 10,
            mean_avg_order_value: 100.0,
            mean_purchase_frequency: 2.0,
            mean_last_engagement_days: 20.0,
            mean_engagement: 0.3,
        }
    }

    #[test]
    fn query_joins_objective_and_segment_and_normalizes_audience() {
        let day = Date::parse("2026-10-01").unwrap();
        let q = RetrievalQuery::for_segment(
            &campaign("Sell jackets"),
            &segment("High-Value Recent", &["Premium", "premium", " "]),
            day,
            5,
            0.3,
        );
        assert_eq!(
            q.text,
            "Sell jackets. High-Value Recent. Customers who bought recently. Premium. premium"
        );
        assert_eq!(q.audience, ["high-value-recent", "premium"]);
    }

    #[test]
    fn digest_changes_with_every_input() {
        let day = Date::parse("2026-10-01").unwrap();
        let base = RetrievalQuery::for_segment(&campaign("x"), &segment("s", &[]), day, 5, 0.3);
        let variants = [
            RetrievalQuery {
                text: "y".into(),
                ..base.clone()
            },
            RetrievalQuery {
                objective: "y".into(),
                ..base.clone()
            },
            RetrievalQuery {
                audience: vec!["other".into()],
                ..base.clone()
            },
            RetrievalQuery {
                as_of: day.next_day(),
                ..base.clone()
            },
            RetrievalQuery {
                top_k: 6,
                ..base.clone()
            },
            RetrievalQuery {
                min_relevance: 0.31,
                ..base.clone()
            },
        ];
        for v in variants {
            assert_ne!(v.digest(), base.digest(), "{v:?}");
        }
        assert_eq!(base.digest(), base.clone().digest());
    }
}
