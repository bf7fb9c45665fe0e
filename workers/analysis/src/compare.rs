//! One binary metric, every treatment arm against control: the fields of
//! `analysis.json`'s `comparisons`, built from the functions in [`crate::stats`].

use serde::{Deserialize, Serialize};

use crate::error::{AnalysisError, Result};
use crate::stats::lift::{absolute_moments, relative_lift, relative_moments};
use crate::stats::multiple::{Correction, benjamini_hochberg, holm};
use crate::stats::power::{DEFAULT_POWER, minimum_detectable_lift, required_users_per_arm};
use crate::stats::proportions::{newcombe_diff_ci, pooled_z_test, wald_diff_ci, wilson_ci};
use crate::stats::sequential::{DEFAULT_TUNING, confidence_sequence};
use crate::stats::{Counts, check_alpha};

/// Knobs of an analysis; the defaults are the conventional ones.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisOptions {
    pub alpha: f64,
    pub power: f64,
    /// Relative lift to size the test for (0.1 = +10%).
    pub target_relative_lift: Option<f64>,
    /// Which adjusted p-value decides `significant`.
    pub correction: Correction,
    pub sequential_tuning: f64,
    pub bandit_seed: u64,
    pub bandit_draws: u32,
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        AnalysisOptions {
            alpha: 0.05,
            power: DEFAULT_POWER,
            target_relative_lift: None,
            correction: Correction::Holm,
            sequential_tuning: DEFAULT_TUNING,
            bandit_seed: 0,
            bandit_draws: crate::stats::bandit::DEFAULT_DRAWS,
        }
    }
}

/// Users and successes of one arm, as the summary input lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArmCounts {
    pub name: String,
    pub users: u64,
    pub successes: u64,
}

impl ArmCounts {
    pub fn counts(&self) -> Counts {
        Counts::new(self.users, self.successes)
    }
}

/// One arm's rate with its Wilson interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmRate {
    pub arm: String,
    pub users: u64,
    pub successes: u64,
    pub rate: f64,
    pub wilson_ci: [f64; 2],
}

impl ArmRate {
    pub fn new(arm: &ArmCounts, alpha: f64) -> Result<ArmRate> {
        arm.counts().validate(&arm.name)?;
        Ok(ArmRate {
            arm: arm.name.clone(),
            users: arm.users,
            successes: arm.successes,
            rate: arm.counts().rate(),
            wilson_ci: wilson_ci(arm.counts(), alpha)?,
        })
    }
}

/// CUPED-adjusted effects of one comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CupedSummary {
    pub covariate: String,
    pub theta: f64,
    pub abs_diff: f64,
    pub abs_ci: [f64; 2],
    pub abs_p_value: f64,
    pub rel_lift: Option<f64>,
    pub rel_ci: Option<[f64; 2]>,
    pub variance_reduction: f64,
}

/// One treatment arm against control on one metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub arm: String,
    pub users: u64,
    pub successes: u64,
    pub rate: f64,
    pub abs_diff: f64,
    pub abs_ci: [f64; 2],
    pub abs_p_value: f64,
    pub newcombe_ci: [f64; 2],
    pub wilson_ci: [f64; 2],
    pub rel_lift: Option<f64>,
    pub rel_ci: Option<[f64; 2]>,
    pub rel_p_value: Option<f64>,
    pub p_value_holm: f64,
    pub p_value_bh: f64,
    pub chance_to_win: Option<f64>,
    pub significant: bool,
    /// Always-valid intervals, safe to check at every daily look.
    pub seq_abs_ci: Option<[f64; 2]>,
    pub seq_rel_ci: Option<[f64; 2]>,
    pub minimum_detectable_lift: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cuped: Option<CupedSummary>,
    pub notes: Vec<String>,
}

/// Compares one treatment arm with control. Multiplicity-adjusted fields are
/// provisional (equal to the raw p-value, not significant) until
/// [`apply_correction`] runs over the whole family.
pub fn compare(
    control: &ArmCounts,
    treatment: &ArmCounts,
    options: &AnalysisOptions,
) -> Result<Comparison> {
    check_alpha(options.alpha)?;
    let (c, t) = (control.counts(), treatment.counts());
    c.validate(&control.name)?;
    t.validate(&treatment.name)?;
    let alpha = options.alpha;
    let mut notes = Vec::new();

    // Normal approximations need a handful of successes (and failures) per arm;
    // below that the delta-method interval can even leave [-100%, +inf).
    let fewest = [
        c.successes,
        c.users - c.successes,
        t.successes,
        t.users - t.successes,
    ];
    if fewest.iter().any(|&n| n < 10) {
        notes.push(
            "fewer than 10 successes or failures in an arm: normal-approximation intervals are rough; the Newcombe interval is the most reliable here"
                .into(),
        );
    }
    let z_test = pooled_z_test(t, c);
    if z_test.statistic.is_none() {
        notes.push(
            "no variation in either arm: the z-test has nothing to test, p reported as 1".into(),
        );
    }
    let (abs_diff, abs_variance) = absolute_moments(t, c);
    let n_total = c.users + t.users;
    // Like gbstats, no sequence when an arm has no variance of its own: the
    // asymptotic normal approximation behind it does not hold at rate 0 or 1.
    let both_vary = [c.rate(), t.rate()].iter().all(|&p| p > 0.0 && p < 1.0);
    let seq_abs_ci = both_vary
        .then(|| {
            confidence_sequence(
                abs_diff,
                abs_variance,
                n_total,
                alpha,
                options.sequential_tuning,
            )
            .ok()
        })
        .flatten();

    let rel_point = (c.rate() > 0.0).then(|| (t.rate() - c.rate()) / c.rate());
    let relative = match relative_lift(t, c, alpha) {
        Ok(lift) => Some(lift),
        Err(AnalysisError::ZeroControlRate) => {
            notes.push("control rate is zero: relative lift is undefined".into());
            None
        }
        Err(AnalysisError::ZeroVariance) => {
            notes.push(
                "an arm's rate is 0% or 100%: the delta-method interval of the relative lift is undefined".into(),
            );
            None
        }
        Err(other) => return Err(other),
    };
    let seq_rel_ci = relative_moments(t, c)
        .ok()
        .and_then(|(estimate, variance)| {
            confidence_sequence(
                estimate,
                variance,
                n_total,
                alpha,
                options.sequential_tuning,
            )
            .ok()
        });

    let minimum_detectable_lift = if c.rate() > 0.0 {
        let mde = minimum_detectable_lift(c.rate(), t.users, c.users, alpha, options.power)?;
        if mde.is_none() {
            notes.push("too few users to detect any lift at the planned power".into());
        }
        mde
    } else {
        None
    };

    Ok(Comparison {
        arm: treatment.name.clone(),
        users: t.users,
        successes: t.successes,
        rate: t.rate(),
        abs_diff,
        abs_ci: wald_diff_ci(t, c, alpha)?,
        abs_p_value: z_test.p_value,
        newcombe_ci: newcombe_diff_ci(t, c, alpha)?,
        wilson_ci: wilson_ci(t, alpha)?,
        rel_lift: rel_point,
        rel_ci: relative.map(|r| r.effect.ci),
        rel_p_value: relative.map(|r| r.effect.p_value),
        p_value_holm: z_test.p_value,
        p_value_bh: z_test.p_value,
        chance_to_win: relative.map(|r| r.chance_to_win),
        significant: false,
        seq_abs_ci,
        seq_rel_ci,
        minimum_detectable_lift,
        cuped: None,
        notes,
    })
}

/// Adjusts the pooled z-test p-values of one family of comparisons (all
/// treatment-vs-control comparisons of a metric) and decides significance:
/// only an adjusted p-value below alpha is significant.
pub fn apply_correction<'a>(
    family: impl IntoIterator<Item = &'a mut Comparison>,
    options: &AnalysisOptions,
) {
    let mut family: Vec<&mut Comparison> = family.into_iter().collect();
    let raw: Vec<f64> = family.iter().map(|c| c.abs_p_value).collect();
    let holm = holm(&raw);
    let bh = benjamini_hochberg(&raw);
    for (index, comparison) in family.iter_mut().enumerate() {
        comparison.p_value_holm = holm[index];
        comparison.p_value_bh = bh[index];
        let decisive = match options.correction {
            Correction::Holm => holm[index],
            Correction::BenjaminiHochberg => bh[index],
        };
        comparison.significant = decisive < options.alpha;
    }
}

/// Everything about one metric: control, the comparisons, and what the test can
/// and would need to detect.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricAnalysis {
    pub metric: String,
    pub control: ArmRate,
    pub comparisons: Vec<Comparison>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_relative_lift: Option<f64>,
    /// Users per arm for the target lift at the planned power, at the control rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_users_per_arm: Option<u64>,
    /// The largest of the comparisons' minimum detectable lifts: the least powered
    /// comparison bounds what the whole test can claim.
    pub minimum_detectable_lift: Option<f64>,
    pub notes: Vec<String>,
}

/// Analyses one metric; `arms[0]` is control. Every arm must have users.
pub fn analyze_metric(
    metric: &str,
    arms: &[ArmCounts],
    options: &AnalysisOptions,
) -> Result<MetricAnalysis> {
    check_alpha(options.alpha)?;
    let Some((control, treatments)) = arms.split_first().filter(|(_, t)| !t.is_empty()) else {
        return Err(AnalysisError::TooFewArms(arms.len()));
    };
    let control_rate = ArmRate::new(control, options.alpha)?;
    let mut comparisons = treatments
        .iter()
        .map(|treatment| compare(control, treatment, options))
        .collect::<Result<Vec<_>>>()?;
    apply_correction(comparisons.iter_mut(), options);

    let mut notes = Vec::new();
    let required_users_per_arm = match options.target_relative_lift {
        Some(target) => {
            match required_users_per_arm(control_rate.rate, target, options.alpha, options.power) {
                Ok(n) => Some(n),
                Err(e) => {
                    notes.push(format!(
                        "cannot size the test for a {:+.1}% lift: {e}",
                        target * 100.0
                    ));
                    None
                }
            }
        }
        None => None,
    };
    let minimum_detectable_lift = if control_rate.rate <= 0.0 {
        notes.push("control has no successes: the detectable lift cannot be computed".into());
        None
    } else {
        comparisons
            .iter()
            .map(|c| c.minimum_detectable_lift)
            .try_fold(0.0f64, |worst, mde| mde.map(|m| worst.max(m)))
    };
    Ok(MetricAnalysis {
        metric: metric.to_string(),
        control: control_rate,
        comparisons,
        target_relative_lift: options.target_relative_lift,
        required_users_per_arm,
        minimum_detectable_lift,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arm(name: &str, users: u64, successes: u64) -> ArmCounts {
        ArmCounts {
            name: name.into(),
            users,
            successes,
        }
    }

    #[test]
    fn the_prototype_result_is_not_significant_and_says_what_it_would_need() {
        let options = AnalysisOptions {
            target_relative_lift: Some(0.26),
            ..AnalysisOptions::default()
        };
        let analysis = analyze_metric(
            "opened",
            &[arm("control", 62, 19), arm("friendly", 62, 24)],
            &options,
        )
        .unwrap();
        let comparison = &analysis.comparisons[0];
        assert!(!comparison.significant);
        assert!((comparison.rel_lift.unwrap() - 0.263_157_894_736_842).abs() < 1e-12);
        assert!(analysis.required_users_per_arm.unwrap() > 400);
        assert!(analysis.minimum_detectable_lift.unwrap() > 0.5);
    }

    #[test]
    fn zero_users_is_an_error_naming_the_arm() {
        let err = analyze_metric(
            "x",
            &[arm("control", 10, 1), arm("urgent", 0, 0)],
            &AnalysisOptions::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("urgent"));
    }

    #[test]
    fn zero_control_rate_gives_notes_not_nan() {
        let options = AnalysisOptions {
            target_relative_lift: Some(0.1),
            ..AnalysisOptions::default()
        };
        let analysis =
            analyze_metric("x", &[arm("control", 40, 0), arm("a", 40, 3)], &options).unwrap();
        let comparison = &analysis.comparisons[0];
        assert!(comparison.rel_lift.is_none() && comparison.rel_ci.is_none());
        assert!(comparison.abs_p_value.is_finite());
        assert!(analysis.required_users_per_arm.is_none());
        assert!(
            analysis
                .notes
                .iter()
                .any(|n| n.contains("control rate is zero"))
        );
        let json = serde_json::to_string(&analysis).unwrap();
        assert!(!json.contains("NaN"));
    }

    proptest! {
        #[test]
        fn intervals_contain_their_point_estimates(
            n0 in 1u64..5000, n1 in 1u64..5000, f0 in 0.0f64..=1.0, f1 in 0.0f64..=1.0,
        ) {
            let (s0, s1) = ((n0 as f64 * f0) as u64, (n1 as f64 * f1) as u64);
            let c = compare(&arm("control", n0, s0), &arm("t", n1, s1), &AnalysisOptions::default()).unwrap();
            let contains = |ci: [f64; 2], x: f64| ci[0] <= x + 1e-12 && x <= ci[1] + 1e-12;
            prop_assert!(contains(c.abs_ci, c.abs_diff));
            prop_assert!(contains(c.newcombe_ci, c.abs_diff));
            prop_assert!(contains(c.wilson_ci, c.rate));
            if let (Some(ci), Some(lift)) = (c.rel_ci, c.rel_lift) {
                prop_assert!(contains(ci, lift));
            }
            if let (Some(seq), Some(fixed)) = (c.seq_rel_ci, c.rel_ci) {
                // The always-valid interval is never narrower than the fixed one.
                prop_assert!(seq[0] <= fixed[0] + 1e-12 && fixed[1] <= seq[1] + 1e-12);
            }
            prop_assert!((0.0..=1.0).contains(&c.abs_p_value));
        }
    }
}
