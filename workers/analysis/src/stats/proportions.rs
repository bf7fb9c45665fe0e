//! Two-proportion tests and intervals, as statsmodels computes them.
//!
//! Convention: `treatment` is statsmodels' sample 1 and `control` sample 2, so
//! differences are `treatment - control`.

use super::{Counts, check_alpha, normal_isf, two_sided_p, z_two_sided};
use crate::error::Result;

/// Result of the pooled two-proportion z-test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZTest {
    /// `None` when the pooled variance is zero (no successes or no failures at all).
    pub statistic: Option<f64>,
    pub p_value: f64,
}

/// Pooled two-proportion z-test, two-sided, as
/// `statsmodels.stats.proportion.proportions_ztest([x1, x0], [n1, n0])`.
///
/// When both arms are all-failure (or all-success) the pooled variance is zero and
/// statsmodels returns NaN; there is no evidence of any difference, so this returns
/// p = 1 with no statistic instead.
pub fn pooled_z_test(treatment: Counts, control: Counts) -> ZTest {
    let (n1, n0) = (treatment.users as f64, control.users as f64);
    let pooled = (treatment.successes + control.successes) as f64 / (n1 + n0);
    let variance = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n0);
    if variance <= 0.0 {
        return ZTest {
            statistic: None,
            p_value: 1.0,
        };
    }
    let z = (treatment.rate() - control.rate()) / variance.sqrt();
    ZTest {
        statistic: Some(z),
        p_value: two_sided_p(z),
    }
}

/// Unpooled Wald interval of `p1 - p0`, as
/// `confint_proportions_2indep(x1, n1, x0, n0, method="wald")`.
pub fn wald_diff_ci(treatment: Counts, control: Counts, alpha: f64) -> Result<[f64; 2]> {
    check_alpha(alpha)?;
    let (p1, p0) = (treatment.rate(), control.rate());
    let variance =
        p1 * (1.0 - p1) / treatment.users as f64 + p0 * (1.0 - p0) / control.users as f64;
    let half_width = z_two_sided(alpha) * variance.sqrt();
    let diff = p1 - p0;
    Ok([diff - half_width, diff + half_width])
}

/// Wilson score interval of one arm's rate, as
/// `proportion_confint(x, n, alpha, method="wilson")` (clipped to [0, 1] like it).
pub fn wilson_ci(arm: Counts, alpha: f64) -> Result<[f64; 2]> {
    check_alpha(alpha)?;
    let n = arm.users as f64;
    let q = arm.rate();
    let crit = normal_isf(alpha / 2.0);
    let crit2 = crit * crit;
    let denom = 1.0 + crit2 / n;
    let center = (q + crit2 / (2.0 * n)) / denom;
    let dist = crit * (q * (1.0 - q) / n + crit2 / (4.0 * n * n)).sqrt() / denom;
    Ok([
        (center - dist).clamp(0.0, 1.0),
        (center + dist).clamp(0.0, 1.0),
    ])
}

/// Newcombe's hybrid score interval of `p1 - p0` (Newcombe 1998, method 10), as
/// `confint_proportions_2indep(..., method="newcomb")`. Unlike Wald it stays
/// informative when an arm has no successes.
pub fn newcombe_diff_ci(treatment: Counts, control: Counts, alpha: f64) -> Result<[f64; 2]> {
    let [low1, upp1] = wilson_ci(treatment, alpha)?;
    let [low0, upp0] = wilson_ci(control, alpha)?;
    let (p1, p0) = (treatment.rate(), control.rate());
    let d_low = ((p1 - low1).powi(2) + (upp0 - p0).powi(2)).sqrt();
    let d_upp = ((p0 - low0).powi(2) + (upp1 - p1).powi(2)).sqrt();
    let diff = p1 - p0;
    Ok([diff - d_low, diff + d_upp])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(users: u64, successes: u64) -> Counts {
        Counts::new(users, successes)
    }

    #[test]
    fn prototype_example_is_not_significant() {
        // statsmodels: proportions_ztest([24, 19], [62, 62]) -> p = 0.3454671936171113
        let test = pooled_z_test(c(62, 24), c(62, 19));
        assert!((test.p_value - 0.345_467_193_617_111_3).abs() < 1e-9);
    }

    #[test]
    fn no_successes_anywhere_gives_p_one_not_nan() {
        let test = pooled_z_test(c(10, 0), c(12, 0));
        assert_eq!(test.p_value, 1.0);
        assert!(test.statistic.is_none());
    }

    #[test]
    fn wilson_stays_inside_unit_interval_at_the_edges() {
        let [lo, hi] = wilson_ci(c(20, 0), 0.05).unwrap();
        assert_eq!(lo, 0.0);
        assert!(hi > 0.0 && hi < 0.2);
        let [lo, hi] = wilson_ci(c(20, 20), 0.05).unwrap();
        assert!(lo > 0.8 && lo < 1.0);
        assert!(hi > 1.0 - 1e-12 && hi <= 1.0);
    }

    #[test]
    fn newcombe_is_informative_with_zero_successes_where_wald_collapses() {
        let wald = wald_diff_ci(c(15, 0), c(15, 0), 0.05).unwrap();
        assert_eq!(wald, [0.0, 0.0]);
        let [lo, hi] = newcombe_diff_ci(c(15, 0), c(15, 0), 0.05).unwrap();
        assert!(lo < -0.1 && hi > 0.1);
    }
}
