//! The `retrieval` config section.

use serde::Deserialize;

use crate::date::Date;
use crate::relevance::Calibration;
use crate::retriever::RetrievalError;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrievalConfig {
    /// Directory of approved-content documents, relative to the working directory.
    pub corpus_dir: String,
    /// Most snippets per brief.
    pub top_k: usize,
    /// Snippets below this relevance are dropped (relevance is per hit, see design.md).
    pub min_relevance: f64,
    /// Run date (`YYYY-MM-DD`) expiry is judged against; today (UTC) when unset.
    /// Pin it for reproducible runs: a document expiring between two runs changes the briefs.
    pub as_of: Option<String>,
    /// Raw BM25 score that counts as half relevant.
    pub score_half_point: f64,
    /// Share of relevance from the saturated score; the rest is query-term coverage.
    pub score_weight: f64,
    pub title_boost: f32,
    pub keywords_boost: f32,
    /// Weight of a query term matching a document's audience labels (e.g. trait "premium").
    pub audience_boost: f32,
    /// Lifetime of cached results. Content changes never serve stale results (the
    /// corpus fingerprint is in the key); the TTL only bounds the cache's size.
    pub cache_ttl_secs: u64,
}

impl Default for RetrievalConfig {
    fn default() -> Self {
        Self {
            corpus_dir: "data/content".into(),
            top_k: 5,
            min_relevance: 0.32,
            as_of: None,
            score_half_point: 12.0,
            score_weight: 0.5,
            title_boost: 2.0,
            keywords_boost: 1.5,
            audience_boost: 1.0,
            cache_ttl_secs: 3600,
        }
    }
}

impl RetrievalConfig {
    /// Check every value; the error names the key.
    pub fn validate(&self) -> Result<(), RetrievalError> {
        let bad = |key, message: &str| {
            Err(RetrievalError::Config {
                key,
                message: message.to_string(),
            })
        };
        if self.top_k == 0 || self.top_k > 100 {
            return bad("top_k", "must be between 1 and 100");
        }
        if !(0.0..=1.0).contains(&self.min_relevance) {
            return bad("min_relevance", "must be in [0, 1]");
        }
        if !(self.score_half_point.is_finite() && self.score_half_point > 0.0) {
            return bad("score_half_point", "must be a positive number");
        }
        if !(0.0..=1.0).contains(&self.score_weight) {
            return bad("score_weight", "must be in [0, 1]");
        }
        for (key, boost) in [
            ("title_boost", self.title_boost),
            ("keywords_boost", self.keywords_boost),
            ("audience_boost", self.audience_boost),
        ] {
            if !(boost.is_finite() && boost > 0.0) {
                return bad(key, "must be a positive number");
            }
        }
        self.as_of_date()?;
        Ok(())
    }

    /// The pinned run date, if any.
    pub fn as_of_date(&self) -> Result<Option<Date>, RetrievalError> {
        self.as_of
            .as_deref()
            .map(|raw| {
                Date::parse(raw.trim()).map_err(|e| RetrievalError::Config {
                    key: "as_of",
                    message: e.to_string(),
                })
            })
            .transpose()
    }

    pub fn calibration(&self) -> Calibration {
        Calibration {
            score_half_point: self.score_half_point,
            score_weight: self.score_weight,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpo_shared::config::Settings;

    #[test]
    fn section_overrides_defaults_and_validation_names_the_key() {
        let settings =
            Settings::from_yaml("retrieval:\n  top_k: 3\n  as_of: 2026-10-01\n").unwrap();
        let config: RetrievalConfig = settings.section("retrieval").unwrap();
        assert_eq!(config.top_k, 3);
        assert_eq!(
            config.min_relevance,
            RetrievalConfig::default().min_relevance
        );
        assert!(config.validate().is_ok());
        assert_eq!(
            config.as_of_date().unwrap().unwrap().to_string(),
            "2026-10-01"
        );

        let bad = RetrievalConfig {
            min_relevance: 1.5,
            ..RetrievalConfig::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("min_relevance")
        );
        let bad_date = RetrievalConfig {
            as_of: Some("yesterday".into()),
            ..RetrievalConfig::default()
        };
        assert!(
            bad_date
                .validate()
                .unwrap_err()
                .to_string()
                .contains("as_of")
        );
    }
}
