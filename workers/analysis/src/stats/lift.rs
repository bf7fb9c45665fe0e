//! Relative lift (percent change) with a delta-method interval, as GrowthBook's
//! gbstats computes it, but with normal (z) quantiles instead of Welch t.
//!
//! Point estimate `(p1 - p0) / p0`; variance (gbstats `frequentist_variance`,
//! relative) `v1 / (p0^2 n1) + v0 p1^2 / (p0^4 n0)` with `v = p (1 - p)` per arm.

use super::{Counts, NormalEffect, normal_cdf};
use crate::error::{AnalysisError, Result};

/// Relative lift of treatment over control with its interval and tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RelativeLift {
    pub effect: NormalEffect,
    /// Bayesian chance to beat control under GrowthBook's effect model with a flat
    /// prior: the posterior of the lift is N(lift, se^2), so P(lift > 0) = Phi(lift / se).
    pub chance_to_win: f64,
}

/// Delta-method moments (estimate, variance) of the relative lift.
///
/// Mirrors gbstats' refusals: a zero control rate makes the ratio undefined, and
/// an arm at rate 0 or 1 has zero variance (gbstats `ZERO_NEGATIVE_VARIANCE`).
pub fn relative_moments(treatment: Counts, control: Counts) -> Result<(f64, f64)> {
    let (p1, p0) = (treatment.rate(), control.rate());
    if p0 <= 0.0 {
        return Err(AnalysisError::ZeroControlRate);
    }
    let (v1, v0) = (p1 * (1.0 - p1), p0 * (1.0 - p0));
    if v1 <= 0.0 || v0 <= 0.0 {
        return Err(AnalysisError::ZeroVariance);
    }
    let (n1, n0) = (treatment.users as f64, control.users as f64);
    let variance = v1 / (p0 * p0 * n1) + v0 * p1 * p1 / (p0.powi(4) * n0);
    Ok(((p1 - p0) / p0, variance))
}

/// Relative lift with its z interval, z p-value and chance to win.
pub fn relative_lift(treatment: Counts, control: Counts, alpha: f64) -> Result<RelativeLift> {
    let (estimate, variance) = relative_moments(treatment, control)?;
    let effect = NormalEffect::from_moments(estimate, variance, alpha)?;
    Ok(RelativeLift {
        chance_to_win: normal_cdf(estimate / effect.std_error),
        effect,
    })
}

/// Moments of the absolute difference `p1 - p0` with unpooled variance
/// (gbstats `frequentist_variance`, absolute).
pub fn absolute_moments(treatment: Counts, control: Counts) -> (f64, f64) {
    let (p1, p0) = (treatment.rate(), control.rate());
    let variance =
        p1 * (1.0 - p1) / treatment.users as f64 + p0 * (1.0 - p0) / control.users as f64;
    (p1 - p0, variance)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prototype_lift_matches_gbstats() {
        // gbstats EffectBayesianABTest(ProportionStatistic(62, 19), ProportionStatistic(62, 24)):
        // expected 0.26315789473684204, stddev 0.3146256814452911, chance_to_win 0.7985394897856348
        let lift = relative_lift(Counts::new(62, 24), Counts::new(62, 19), 0.05).unwrap();
        assert!((lift.effect.estimate - 0.263_157_894_736_842).abs() < 1e-12);
        assert!((lift.effect.std_error - 0.314_625_681_445_291_1).abs() < 1e-12);
        assert!((lift.chance_to_win - 0.798_539_489_785_634_8).abs() < 1e-9);
        assert!(lift.effect.p_value > 0.05);
    }

    #[test]
    fn zero_control_rate_is_a_clear_error() {
        let err = relative_lift(Counts::new(50, 3), Counts::new(50, 0), 0.05).unwrap_err();
        assert!(matches!(err, AnalysisError::ZeroControlRate));
    }

    #[test]
    fn treatment_without_successes_has_no_delta_interval() {
        let err = relative_lift(Counts::new(50, 0), Counts::new(50, 5), 0.05).unwrap_err();
        assert!(matches!(err, AnalysisError::ZeroVariance));
    }
}
