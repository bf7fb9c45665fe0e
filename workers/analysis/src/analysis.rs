//! The analysis document: what `analysis.json` holds and the reports render.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::compare::{ArmRate, Comparison, MetricAnalysis};
use crate::stats::multiple::Correction;
use crate::stats::srm::SRM_THRESHOLD;

/// Where the numbers came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Arm totals given directly (`cpo analyze --summary`).
    Summary,
    /// A campaign run's outbox joined with its events (`cpo analyze --run`).
    Run,
}

/// Sample ratio mismatch check of the arm sizes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SrmCheck {
    pub arms: Vec<String>,
    pub users: Vec<u64>,
    pub expected_weights: Vec<f64>,
    /// `None` when it could not be computed (see `note`).
    pub p_value: Option<f64>,
    pub flagged: bool,
    pub threshold: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl SrmCheck {
    pub fn new(
        arms: Vec<String>,
        users: Vec<u64>,
        expected_weights: Vec<f64>,
        p_value: Option<f64>,
    ) -> Self {
        SrmCheck {
            flagged: p_value.is_some_and(|p| p < SRM_THRESHOLD),
            arms,
            users,
            expected_weights,
            p_value,
            threshold: SRM_THRESHOLD,
            note: None,
        }
    }
}

/// Thompson-sampling split proposed for the next wave.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NextWave {
    pub metric: String,
    pub weights: BTreeMap<String, f64>,
    pub seed: u64,
    pub draws: u32,
}

/// One segment's comparisons on one metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentAnalysis {
    pub segment: String,
    pub metric: String,
    pub control: Option<ArmRate>,
    pub comparisons: Vec<Comparison>,
    pub notes: Vec<String>,
}

/// A treatment arm's cumulative relative lift at the end of one day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelinePoint {
    pub day: u32,
    pub date: String,
    pub arm: String,
    pub control_successes: u64,
    pub successes: u64,
    pub rel_lift: Option<f64>,
    pub rel_ci: Option<[f64; 2]>,
    pub seq_rel_ci: Option<[f64; 2]>,
}

/// Cumulative lift over time for one metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timeline {
    pub metric: String,
    pub points: Vec<TimelinePoint>,
}

/// Whether CUPED was applied, and if not, why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CupedStatus {
    pub applied: bool,
    pub note: String,
}

/// Counts of the events the analysis read.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EventStats {
    pub lines: usize,
    pub used: usize,
    pub simulated: usize,
    pub malformed: usize,
    /// First malformed lines, for the report (`line N: reason`).
    pub malformed_examples: Vec<String>,
    pub unmatched: usize,
    pub by_type: BTreeMap<String, usize>,
}

/// The whole analysis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    /// True when any outcome was simulated: every report says so prominently.
    pub simulated: bool,
    pub source: Source,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<String>,
    pub alpha: f64,
    pub power: f64,
    pub correction: Correction,
    pub sequential_tuning: f64,
    pub srm_p_value: Option<f64>,
    pub srm: SrmCheck,
    pub metrics: Vec<MetricAnalysis>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<SegmentAnalysis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Timeline>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cuped: Option<CupedStatus>,
    pub next_wave_weights: Option<NextWave>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<EventStats>,
    /// The simulator's configuration and true rates, when outcomes were simulated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub simulation: Option<serde_json::Value>,
    pub verdict: Vec<String>,
    pub notes: Vec<String>,
}

impl Analysis {
    /// The CI level as a percentage (95 for alpha = 0.05).
    pub fn confidence_percent(&self) -> f64 {
        (1.0 - self.alpha) * 100.0
    }
}
