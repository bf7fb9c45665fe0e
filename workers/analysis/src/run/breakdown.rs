//! The breakdowns of a run: counts per arm and per segment, CUPED attached to
//! comparisons, segment families, and the sample-ratio check.

use super::inputs::{Covariates, RunSummary};
use super::outbox::Outbox;
use crate::analysis::{SegmentAnalysis, SrmCheck};
use crate::compare::{
    AnalysisOptions, ArmCounts, ArmRate, CupedSummary, MetricAnalysis, apply_correction, compare,
};
use crate::error::{AnalysisError, Result};
use crate::metric::Metric;
use crate::stats::Counts;
use crate::stats::cuped::{CupedArm, cuped};
use crate::stats::srm::srm_p_value;

pub(super) fn srm_check(names: &[String], users: &[u64], summary: Option<&RunSummary>) -> SrmCheck {
    let Some(weights) = summary.and_then(|s| s.arm_weights.as_ref()) else {
        let p = srm_p_value(users, &vec![1.0; users.len()]).ok();
        return SrmCheck::new(names.to_vec(), users.to_vec(), vec![1.0; users.len()], p);
    };
    // Configured arms that got nobody are the worst mismatch of all: include them.
    let mut arms = names.to_vec();
    let mut arm_users = users.to_vec();
    for name in weights.keys() {
        if !arms.contains(name) {
            arms.push(name.clone());
            arm_users.push(0);
        }
    }
    let missing: Vec<&String> = arms.iter().filter(|a| !weights.contains_key(*a)).collect();
    let expected: Vec<f64> = arms
        .iter()
        .map(|a| weights.get(a).copied().unwrap_or(0.0))
        .collect();
    if !missing.is_empty() {
        let mut check = SrmCheck::new(arms.clone(), arm_users, expected, None);
        check.flagged = true;
        check.note = Some(format!(
            "arm(s) {missing:?} received customers but have no configured weight; the split cannot be checked"
        ));
        return check;
    }
    match srm_p_value(&arm_users, &expected) {
        Ok(p) => SrmCheck::new(arms, arm_users, expected, Some(p)),
        Err(e) => {
            let mut check = SrmCheck::new(arms, arm_users, expected, None);
            check.note = Some(format!("split not checked: {e}"));
            check
        }
    }
}

/// Per-arm and per-(segment, arm) counts of one metric, and CUPED statistics.
pub(super) struct MetricCounts {
    pub arms: Vec<Counts>,
    pub segments: Vec<Vec<Counts>>,
    pub cuped: Option<Vec<CupedArm>>,
}

pub(super) fn count_metric(
    metric: Metric,
    outbox: &Outbox,
    arm_of: &[usize],
    flags: &[u8],
    covariates: Option<&Covariates>,
) -> MetricCounts {
    let arm_count = arm_of.iter().max().map_or(0, |m| m + 1).max(1);
    let mut arms = vec![Counts::new(0, 0); arm_count];
    let mut segments = vec![vec![Counts::new(0, 0); arm_count]; outbox.segments.len()];
    let covariate = covariates.map(|c| match metric {
        Metric::Opened => &c.historical_open_rate,
        Metric::Clicked | Metric::Converted => &c.historical_click_rate,
    });
    let mut cuped = covariate.map(|_| vec![CupedArm::default(); arm_count]);
    let bit = metric.event().bit();
    for (index, recipient) in outbox.recipients.iter().enumerate() {
        let arm = arm_of[index];
        let hit = flags[index] & bit != 0;
        let segment = &mut segments[usize::from(recipient.segment)][arm];
        for counts in [&mut arms[arm], segment] {
            counts.users += 1;
            counts.successes += u64::from(hit);
        }
        if let (Some(cuped), Some(x)) = (cuped.as_mut(), covariate) {
            cuped[arm].add(hit, x[index]);
        }
    }
    MetricCounts {
        arms,
        segments,
        cuped,
    }
}

pub(super) fn arm_counts(names: &[String], counts: &[Counts]) -> Vec<ArmCounts> {
    names
        .iter()
        .zip(counts)
        .map(|(name, c)| ArmCounts {
            name: name.clone(),
            users: c.users,
            successes: c.successes,
        })
        .collect()
}

pub(super) fn attach_cuped(
    analysis: &mut MetricAnalysis,
    metric: Metric,
    arms: &[CupedArm],
    names: &[String],
    alpha: f64,
) {
    for comparison in &mut analysis.comparisons {
        let Some(arm) = names.iter().position(|n| *n == comparison.arm) else {
            continue;
        };
        match cuped(&arms[0], &arms[arm], alpha) {
            Ok(result) => {
                comparison.cuped = Some(CupedSummary {
                    covariate: metric.covariate().to_string(),
                    theta: result.theta,
                    abs_diff: result.absolute.estimate,
                    abs_ci: result.absolute.ci,
                    abs_p_value: result.absolute.p_value,
                    rel_lift: result.relative.map(|r| r.estimate),
                    rel_ci: result.relative.map(|r| r.ci),
                    variance_reduction: result.variance_reduction,
                })
            }
            Err(AnalysisError::ZeroVariance) => comparison
                .notes
                .push("CUPED not applied: an arm has no variation in this outcome".into()),
            Err(e) => comparison.notes.push(format!("CUPED not applied: {e}")),
        }
    }
}

pub(super) fn segment_analyses(
    metric: Metric,
    outbox: &Outbox,
    names: &[String],
    counts: &MetricCounts,
    options: &AnalysisOptions,
) -> Result<Vec<SegmentAnalysis>> {
    let mut order: Vec<usize> = (0..outbox.segments.len()).collect();
    order.sort_by(|&a, &b| outbox.segments[a].cmp(&outbox.segments[b]));
    let mut result = Vec::new();
    for segment in order {
        let arms = arm_counts(names, &counts.segments[segment]);
        let mut analysis = SegmentAnalysis {
            segment: outbox.segments[segment].clone(),
            metric: metric.name().to_string(),
            control: None,
            comparisons: Vec::new(),
            notes: Vec::new(),
        };
        if arms[0].users == 0 {
            analysis
                .notes
                .push("no control customers in this segment: nothing to compare against".into());
            result.push(analysis);
            continue;
        }
        analysis.control = Some(ArmRate::new(&arms[0], options.alpha)?);
        for treatment in &arms[1..] {
            if treatment.users == 0 {
                analysis.notes.push(format!(
                    "arm `{}` has no customers in this segment",
                    treatment.name
                ));
                continue;
            }
            analysis
                .comparisons
                .push(compare(&arms[0], treatment, options)?);
        }
        result.push(analysis);
    }
    // One family per metric: every segment-by-arm comparison is adjusted together.
    apply_correction(
        result.iter_mut().flat_map(|s| s.comparisons.iter_mut()),
        options,
    );
    Ok(result)
}
