//! `cpo analyze --summary FILE`: arm totals in, the analysis out.
//!
//! Input: `{"alpha": 0.05, "expected_weights": [..], "target_relative_lift": 0.1,
//! "arms": [{"name", "users", "successes"}, ...]}` with the control arm first.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::analysis::{Analysis, NextWave, Source, SrmCheck};
use crate::compare::{AnalysisOptions, ArmCounts, ArmRate, Comparison, analyze_metric};
use crate::error::{AnalysisError, Result};
use crate::report::verdict::verdict;
use crate::stats::Counts;
use crate::stats::bandit::thompson_weights;
use crate::stats::multiple::Correction;
use crate::stats::srm::srm_p_value;

/// The summary file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryInput {
    #[serde(default)]
    pub alpha: Option<f64>,
    #[serde(default)]
    pub expected_weights: Option<Vec<f64>>,
    #[serde(default)]
    pub target_relative_lift: Option<f64>,
    /// What a success is, for the report's sentences (default "success rate").
    #[serde(default)]
    pub metric: Option<String>,
    /// Set when the totals come from simulated outcomes.
    #[serde(default)]
    pub simulated: bool,
    pub arms: Vec<ArmCounts>,
}

impl SummaryInput {
    pub fn load(path: &Path) -> Result<SummaryInput> {
        let text = std::fs::read_to_string(path).map_err(|e| AnalysisError::io(path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| AnalysisError::parse(path, format!("malformed summary: {e}")))
    }
}

/// Analyses arm totals. The file's alpha and target override `options`.
pub fn analyze_summary(input: &SummaryInput, options: &AnalysisOptions) -> Result<Analysis> {
    let mut options = options.clone();
    if let Some(alpha) = input.alpha {
        options.alpha = alpha;
    }
    if input.target_relative_lift.is_some() {
        options.target_relative_lift = input.target_relative_lift;
    }
    let metric_name = input
        .metric
        .clone()
        .unwrap_or_else(|| "success rate".into());
    let metric = analyze_metric(&metric_name, &input.arms, &options)?;

    let names: Vec<String> = input.arms.iter().map(|a| a.name.clone()).collect();
    let users: Vec<u64> = input.arms.iter().map(|a| a.users).collect();
    let weights = input
        .expected_weights
        .clone()
        .unwrap_or_else(|| vec![1.0; input.arms.len()]);
    let p_value = srm_p_value(&users, &weights)?;
    let srm = SrmCheck::new(names.clone(), users, weights, Some(p_value));

    let counts: Vec<Counts> = input.arms.iter().map(ArmCounts::counts).collect();
    let bandit = thompson_weights(&counts, options.bandit_draws, options.bandit_seed)?;
    let next_wave = NextWave {
        metric: metric_name,
        weights: names.into_iter().zip(bandit).collect::<BTreeMap<_, _>>(),
        seed: options.bandit_seed,
        draws: options.bandit_draws,
    };

    let mut analysis = Analysis {
        simulated: input.simulated,
        source: Source::Summary,
        campaign_id: None,
        alpha: options.alpha,
        power: options.power,
        correction: options.correction,
        sequential_tuning: options.sequential_tuning,
        srm_p_value: Some(p_value),
        srm,
        metrics: vec![metric],
        segments: Vec::new(),
        timeline: None,
        cuped: None,
        next_wave_weights: Some(next_wave),
        events: None,
        simulation: None,
        verdict: Vec::new(),
        notes: Vec::new(),
    };
    analysis.verdict = verdict(&analysis);
    Ok(analysis)
}

/// `analysis.json` for summary mode: the single metric's fields at the top level.
#[derive(Debug, Serialize)]
pub struct SummaryJson<'a> {
    pub simulated: bool,
    pub alpha: f64,
    pub power: f64,
    pub correction: Correction,
    pub metric: &'a str,
    pub srm_p_value: Option<f64>,
    pub srm_flagged: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_relative_lift: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_users_per_arm: Option<u64>,
    pub minimum_detectable_lift: Option<f64>,
    pub control: &'a ArmRate,
    pub comparisons: &'a [Comparison],
    pub next_wave_weights: Option<&'a NextWave>,
    pub verdict: &'a [String],
    pub notes: Vec<String>,
}

impl<'a> SummaryJson<'a> {
    /// `None` when the analysis does not hold exactly one metric.
    pub fn from_analysis(analysis: &'a Analysis) -> Option<SummaryJson<'a>> {
        let [metric] = analysis.metrics.as_slice() else {
            return None;
        };
        Some(SummaryJson {
            simulated: analysis.simulated,
            alpha: analysis.alpha,
            power: analysis.power,
            correction: analysis.correction,
            metric: &metric.metric,
            srm_p_value: analysis.srm_p_value,
            srm_flagged: analysis.srm.flagged,
            target_relative_lift: metric.target_relative_lift,
            required_users_per_arm: metric.required_users_per_arm,
            minimum_detectable_lift: metric.minimum_detectable_lift,
            control: &metric.control,
            comparisons: &metric.comparisons,
            next_wave_weights: analysis.next_wave_weights.as_ref(),
            verdict: &analysis.verdict,
            notes: analysis
                .notes
                .iter()
                .chain(&metric.notes)
                .cloned()
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: &str) -> SummaryInput {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn srm_uses_expected_weights() {
        let balanced = input(
            r#"{"arms": [{"name": "control", "users": 500, "successes": 50},
            {"name": "b", "users": 1500, "successes": 160}], "expected_weights": [1, 3]}"#,
        );
        let analysis = analyze_summary(&balanced, &AnalysisOptions::default()).unwrap();
        assert!(analysis.srm_p_value.unwrap() > 0.5);
        assert!(!analysis.srm.flagged);
        let equal = input(
            r#"{"arms": [{"name": "control", "users": 500, "successes": 50},
            {"name": "b", "users": 1500, "successes": 160}]}"#,
        );
        let analysis = analyze_summary(&equal, &AnalysisOptions::default()).unwrap();
        assert!(analysis.srm.flagged);
        assert!(analysis.verdict[0].contains("sample ratio mismatch"));
    }

    #[test]
    fn summary_json_has_the_documented_fields() {
        let file = input(
            r#"{"alpha": 0.05, "target_relative_lift": 0.1, "arms": [
            {"name": "control", "users": 62, "successes": 19},
            {"name": "friendly", "users": 62, "successes": 24}]}"#,
        );
        let analysis = analyze_summary(&file, &AnalysisOptions::default()).unwrap();
        let json = serde_json::to_value(SummaryJson::from_analysis(&analysis).unwrap()).unwrap();
        assert!(json["srm_p_value"].is_number());
        assert_eq!(json["required_users_per_arm"], 3647);
        let comparison = &json["comparisons"][0];
        for field in [
            "arm",
            "rate",
            "abs_diff",
            "abs_ci",
            "abs_p_value",
            "newcombe_ci",
            "wilson_ci",
            "rel_lift",
            "rel_ci",
            "rel_p_value",
            "p_value_holm",
            "chance_to_win",
            "significant",
        ] {
            assert!(comparison.get(field).is_some(), "missing {field}");
        }
        assert_eq!(comparison["significant"], false);
    }

    #[test]
    fn unknown_fields_and_missing_arms_are_rejected() {
        assert!(serde_json::from_str::<SummaryInput>(r#"{"arms": [], "alhpa": 0.1}"#).is_err());
        let one_arm = input(r#"{"arms": [{"name": "control", "users": 5, "successes": 1}]}"#);
        assert!(matches!(
            analyze_summary(&one_arm, &AnalysisOptions::default()),
            Err(AnalysisError::TooFewArms(1))
        ));
    }
}
