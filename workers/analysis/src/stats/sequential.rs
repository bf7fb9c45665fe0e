//! Always-valid inference for daily looks: the asymptotic confidence sequence of
//! Waudby-Smith et al. (2023, eq. 9 and 161) as GrowthBook's
//! `SequentialTwoSidedTTest` computes it.
//!
//! A fixed-horizon 95% interval checked every day and acted on the first time it
//! excludes zero has a false-positive rate far above 5%; a confidence sequence
//! covers the truth at every look simultaneously, at the price of being wider.

use super::check_alpha;
use crate::error::{AnalysisError, Result};

/// GrowthBook's default tuning parameter: the sample size (both arms) at which the
/// sequence is tightest relative to a fixed-horizon interval.
pub const DEFAULT_TUNING: f64 = 5000.0;

/// The mixing parameter rho from the tuning parameter (eq. 161).
pub fn rho(alpha: f64, tuning: f64) -> f64 {
    let log_alpha = alpha.ln();
    ((-2.0 * log_alpha + (-2.0 * log_alpha + 1.0).ln()) / tuning).sqrt()
}

fn check(variance: f64, n_total: u64, tuning: f64, alpha: f64) -> Result<()> {
    check_alpha(alpha)?;
    if !(tuning.is_finite() && tuning > 0.0) {
        return Err(AnalysisError::InvalidParameter(format!(
            "sequential tuning parameter must be positive, got {tuning}"
        )));
    }
    if n_total == 0 || !(variance.is_finite() && variance > 0.0) {
        return Err(AnalysisError::ZeroVariance);
    }
    Ok(())
}

/// Confidence sequence around `estimate`, whose variance (of the estimate, as for
/// the fixed-horizon interval) is `variance`, after `n_total` users in both arms.
pub fn confidence_sequence(
    estimate: f64,
    variance: f64,
    n_total: u64,
    alpha: f64,
    tuning: f64,
) -> Result<[f64; 2]> {
    check(variance, n_total, tuning, alpha)?;
    let n = n_total as f64;
    let rho2 = rho(alpha, tuning).powi(2);
    // s2 is the per-unit variance: the estimate's variance scaled back up by N.
    let s2 = variance * n;
    let half_width = s2.sqrt()
        * ((2.0 * (n * rho2 + 1.0)) * ((n * rho2 + 1.0).sqrt() / alpha).ln() / (n * n * rho2))
            .sqrt();
    Ok([estimate - half_width, estimate + half_width])
}

/// Always-valid p-value (eq. 155): the reciprocal of the mixture e-value, capped at 1.
pub fn sequential_p_value(
    estimate: f64,
    variance: f64,
    n_total: u64,
    alpha: f64,
    tuning: f64,
) -> Result<f64> {
    check(variance, n_total, tuning, alpha)?;
    let n = n_total as f64;
    let rho2 = rho(alpha, tuning).powi(2);
    let st2 = estimate * estimate * n / variance;
    let tr2p1 = n * rho2 + 1.0;
    let log_evalue = rho2 * st2 / (2.0 * tr2p1) - 0.5 * tr2p1.ln();
    // Work in logs: the e-value overflows for very strong effects.
    Ok((-log_evalue).exp().min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_gbstats_on_the_prototype() {
        // gbstats SequentialTwoSidedTTest(ProportionStatistic(62, 19),
        // ProportionStatistic(62, 24)).compute_result().ci (relative)
        let estimate = 0.263_157_894_736_842_04;
        let variance = 0.314_625_681_445_291_1_f64.powi(2);
        let [lo, hi] = confidence_sequence(estimate, variance, 124, 0.05, 5000.0).unwrap();
        assert!((lo - -1.664_186_907_802_439_4).abs() < 1e-9);
        assert!((hi - 2.190_502_697_276_123_5).abs() < 1e-9);
    }

    #[test]
    fn sequence_is_wider_than_the_fixed_horizon_interval() {
        let variance = 0.0004;
        let [lo, hi] = confidence_sequence(0.0, variance, 20_000, 0.05, 5000.0).unwrap();
        let fixed = 1.959_964 * variance.sqrt();
        assert!(hi > fixed && lo < -fixed);
    }

    #[test]
    fn p_value_is_small_only_for_strong_effects() {
        assert_eq!(
            sequential_p_value(0.0, 0.01, 1000, 0.05, 5000.0).unwrap(),
            1.0
        );
        assert!(sequential_p_value(0.5, 0.001, 10_000, 0.05, 5000.0).unwrap() < 1e-6);
    }
}
