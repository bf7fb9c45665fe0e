//! How many customers a conclusion needs, and what the customers we have can detect.
//!
//! Sample size as statsmodels `samplesize_proportions_2indep_onetail(diff, prop2,
//! power, ratio, alpha, alternative="two-sided")`: the normal one-tail formula with
//! the pooled rate under the null and unpooled rates under the alternative.

use super::{check_alpha, normal_isf};
use crate::error::{AnalysisError, Result};

/// Conventional power for planning: an 80% chance to detect the target lift.
pub const DEFAULT_POWER: f64 = 0.8;

fn check_power(power: f64) -> Result<()> {
    if power.is_finite() && power > 0.0 && power < 1.0 {
        Ok(())
    } else {
        Err(AnalysisError::InvalidPower(power))
    }
}

fn check_rate(rate: f64, lift: f64, control_rate: f64) -> Result<()> {
    if rate > 0.0 && rate < 1.0 {
        Ok(())
    } else {
        Err(AnalysisError::LiftOutOfRange { lift, control_rate })
    }
}

/// statsmodels' `_std_diff_prop`: standard deviation of a difference without the
/// 1/sqrt(n) factor, with `nobs2 = ratio * nobs1`.
fn std_diff(p1: f64, p2: f64, ratio: f64) -> f64 {
    (p1 * (1.0 - p1) + p2 * (1.0 - p2) / ratio).sqrt()
}

/// Users needed in the treatment arm (statsmodels' nobs1, a real number) to detect
/// `diff = p1 - p2` against control rate `prop2`, with `n_control = ratio * n_treatment`.
pub fn sample_size_two_proportions(
    diff: f64,
    prop2: f64,
    power: f64,
    ratio: f64,
    alpha: f64,
) -> Result<f64> {
    check_alpha(alpha)?;
    check_power(power)?;
    if !(ratio.is_finite() && ratio > 0.0) {
        return Err(AnalysisError::InvalidParameter(format!(
            "arm size ratio must be positive, got {ratio}"
        )));
    }
    if diff == 0.0 || !diff.is_finite() {
        return Err(AnalysisError::InvalidParameter(
            "a zero effect cannot be detected at any sample size".into(),
        ));
    }
    let p1 = prop2 + diff;
    let pooled = (p1 + prop2 * ratio) / (1.0 + ratio);
    let std_null = std_diff(pooled, pooled, ratio);
    let std_alt = std_diff(p1, prop2, ratio);
    // Two-sided: only the tail the alternative lies in matters, at alpha / 2.
    let crit = normal_isf(alpha / 2.0);
    let crit_power = normal_isf(power);
    let numerator = (crit * std_null - crit_power * std_alt).max(0.0);
    Ok((numerator / diff).powi(2))
}

/// Users per arm (equal arms, rounded up) to detect a relative lift of `relative_lift`
/// over `control_rate` with the given power.
pub fn required_users_per_arm(
    control_rate: f64,
    relative_lift: f64,
    alpha: f64,
    power: f64,
) -> Result<u64> {
    if control_rate <= 0.0 {
        return Err(AnalysisError::ZeroControlRate);
    }
    check_rate(control_rate, relative_lift, control_rate)?;
    let treatment_rate = control_rate * (1.0 + relative_lift);
    check_rate(treatment_rate, relative_lift, control_rate)?;
    let n = sample_size_two_proportions(
        control_rate * relative_lift,
        control_rate,
        power,
        1.0,
        alpha,
    )?;
    Ok(n.ceil() as u64)
}

/// The smallest positive relative lift that `n_treatment` and `n_control` users
/// detect with the given power: the root of `n(lift) = n_treatment`, by bisection
/// (the sample size falls monotonically as the lift grows). `None` when even a
/// treatment rate of 1 would not be detectable.
pub fn minimum_detectable_lift(
    control_rate: f64,
    n_treatment: u64,
    n_control: u64,
    alpha: f64,
    power: f64,
) -> Result<Option<f64>> {
    if control_rate <= 0.0 {
        return Err(AnalysisError::ZeroControlRate);
    }
    if control_rate >= 1.0 {
        return Ok(None);
    }
    if n_treatment == 0 || n_control == 0 {
        return Err(AnalysisError::InvalidParameter(
            "minimum detectable lift needs users in both arms".into(),
        ));
    }
    let ratio = n_control as f64 / n_treatment as f64;
    let target = n_treatment as f64;
    let needed = |lift: f64| {
        sample_size_two_proportions(control_rate * lift, control_rate, power, ratio, alpha)
    };
    // Largest lift that keeps the treatment rate below 1.
    let max_lift = (1.0 - control_rate) / control_rate;
    let mut high = max_lift * (1.0 - 1e-12);
    if needed(high)? > target {
        return Ok(None);
    }
    let mut low = 0.0;
    // 200 halvings take any interval below f64 resolution; stop earlier once converged.
    for _ in 0..200 {
        let mid = 0.5 * (low + high);
        if needed(mid)? > target {
            low = mid;
        } else {
            high = mid;
        }
        if high - low <= 1e-14 * high.max(1e-300) {
            break;
        }
    }
    Ok(Some(0.5 * (low + high)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_size_matches_statsmodels() {
        // samplesize_proportions_2indep_onetail(19/62*0.1, 19/62, 0.8) = 3646.690972522737
        let p0 = 19.0 / 62.0;
        let n = sample_size_two_proportions(p0 * 0.1, p0, 0.8, 1.0, 0.05).unwrap();
        assert!((n - 3_646.690_972_522_737).abs() < 1e-6);
        assert_eq!(required_users_per_arm(p0, 0.1, 0.05, 0.8).unwrap(), 3647);
    }

    #[test]
    fn mde_inverts_the_sample_size() {
        let lift = minimum_detectable_lift(0.2, 1000, 1000, 0.05, 0.8)
            .unwrap()
            .unwrap();
        let n = sample_size_two_proportions(0.2 * lift, 0.2, 0.8, 1.0, 0.05).unwrap();
        assert!((n - 1000.0).abs() < 1e-6);
        // More users detect smaller lifts.
        let smaller = minimum_detectable_lift(0.2, 10_000, 10_000, 0.05, 0.8)
            .unwrap()
            .unwrap();
        assert!(smaller < lift);
    }

    #[test]
    fn degenerate_planning_inputs_are_errors() {
        assert!(matches!(
            required_users_per_arm(0.0, 0.1, 0.05, 0.8),
            Err(AnalysisError::ZeroControlRate)
        ));
        assert!(required_users_per_arm(0.6, 1.0, 0.05, 0.8).is_err());
        assert!(required_users_per_arm(0.2, 0.1, 0.05, 1.0).is_err());
    }
}
