//! Sample ratio mismatch: are the arm sizes consistent with the configured weights?
//! Pearson chi-square against the expected split, as `scipy.stats.chisquare` and
//! gbstats `check_srm`.

use statrs::distribution::{ChiSquared, ContinuousCDF};

use crate::error::{AnalysisError, Result};

/// Below this p-value the split is flagged (GrowthBook's default threshold): at
/// that level a mismatch almost always means broken assignment or logging.
pub const SRM_THRESHOLD: f64 = 0.001;

/// Chi-square p-value of `users` against `weights` (normalized; need not sum to 1).
pub fn srm_p_value(users: &[u64], weights: &[f64]) -> Result<f64> {
    if users.len() != weights.len() {
        return Err(AnalysisError::WeightCount {
            expected: users.len(),
            got: weights.len(),
        });
    }
    if users.len() < 2 {
        return Err(AnalysisError::TooFewArms(users.len()));
    }
    if let Some(&bad) = weights.iter().find(|w| !(w.is_finite() && **w > 0.0)) {
        return Err(AnalysisError::InvalidWeight(bad));
    }
    let total_users: u64 = users.iter().sum();
    if total_users == 0 {
        // gbstats returns 1 here: nothing observed, nothing mismatched.
        return Ok(1.0);
    }
    let total_weight: f64 = weights.iter().sum();
    let statistic: f64 = users
        .iter()
        .zip(weights)
        .map(|(&observed, &weight)| {
            let expected = weight / total_weight * total_users as f64;
            (observed as f64 - expected).powi(2) / expected
        })
        .sum();
    let distribution = ChiSquared::new((users.len() - 1) as f64)
        .map_err(|e| AnalysisError::InvalidParameter(format!("chi-square: {e}")))?;
    Ok(distribution.sf(statistic))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_split_is_not_flagged_and_skewed_split_is() {
        assert!(srm_p_value(&[5000, 5010], &[1.0, 1.0]).unwrap() > 0.9);
        // scipy.stats.chisquare([5000, 5600]).pvalue ~ 5.6e-9
        assert!(srm_p_value(&[5000, 5600], &[1.0, 1.0]).unwrap() < SRM_THRESHOLD);
    }

    #[test]
    fn weights_are_normalized() {
        let a = srm_p_value(&[300, 100], &[3.0, 1.0]).unwrap();
        let b = srm_p_value(&[300, 100], &[0.75, 0.25]).unwrap();
        assert!((a - b).abs() < 1e-12);
        assert!(a > 0.99);
    }

    #[test]
    fn mismatched_weight_count_and_zero_weight_are_errors() {
        assert!(srm_p_value(&[1, 2, 3], &[1.0, 1.0]).is_err());
        assert!(srm_p_value(&[1, 2], &[1.0, 0.0]).is_err());
    }
}
