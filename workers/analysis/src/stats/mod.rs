//! Statistics for binary metrics, each treatment arm against control.
//!
//! Every function here is pure and matches a reference implementation (statsmodels,
//! scipy or GrowthBook's gbstats) to 1e-6; `design.md` beside the crate lists which.
//! Degenerate input returns an [`AnalysisError`] instead of NaN.

pub mod bandit;
pub mod cuped;
pub mod lift;
pub mod multiple;
pub mod power;
pub mod proportions;
pub mod sequential;
pub mod srm;

use statrs::distribution::{ContinuousCDF, Normal};

use crate::error::{AnalysisError, Result};

/// Successes out of users for one arm on one binary metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub users: u64,
    pub successes: u64,
}

impl Counts {
    pub fn new(users: u64, successes: u64) -> Self {
        Counts { users, successes }
    }

    /// The observed rate; callers validate `users > 0` first (see [`Counts::validate`]).
    pub fn rate(&self) -> f64 {
        if self.users == 0 {
            0.0
        } else {
            self.successes as f64 / self.users as f64
        }
    }

    /// Rejects arms whose rate is undefined or impossible.
    pub fn validate(&self, arm: &str) -> Result<()> {
        if self.users == 0 {
            return Err(AnalysisError::EmptyArm {
                arm: arm.to_string(),
            });
        }
        if self.successes > self.users {
            return Err(AnalysisError::SuccessesExceedUsers {
                arm: arm.to_string(),
                successes: self.successes,
                users: self.users,
            });
        }
        Ok(())
    }
}

/// Rejects significance levels for which no interval or test exists.
pub fn check_alpha(alpha: f64) -> Result<()> {
    if alpha.is_finite() && alpha > 0.0 && alpha < 1.0 {
        Ok(())
    } else {
        Err(AnalysisError::InvalidAlpha(alpha))
    }
}

/// Standard normal cumulative distribution function.
pub fn normal_cdf(x: f64) -> f64 {
    Normal::standard().cdf(x)
}

/// Standard normal survival function; computed through erfc so tiny tail
/// probabilities keep their precision (as scipy's `norm.sf`).
pub fn normal_sf(x: f64) -> f64 {
    Normal::standard().sf(x)
}

/// Inverse survival function, as scipy's `norm.isf(q)`.
pub fn normal_isf(q: f64) -> f64 {
    -Normal::standard().inverse_cdf(q)
}

/// Critical value of a two-sided interval at level `alpha` (1.959963... at 0.05).
pub fn z_two_sided(alpha: f64) -> f64 {
    normal_isf(alpha / 2.0)
}

/// Two-sided p-value of a z statistic, as `2 * norm.sf(|z|)`.
pub fn two_sided_p(z: f64) -> f64 {
    (2.0 * normal_sf(z.abs())).min(1.0)
}

/// A normal (z) interval and test for an estimate with a known variance: the
/// building block for the delta-method lift, CUPED and the absolute effect.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormalEffect {
    pub estimate: f64,
    pub std_error: f64,
    pub ci: [f64; 2],
    pub p_value: f64,
}

impl NormalEffect {
    /// Fails on a non-positive variance, where the interval would be a point and
    /// the p-value 0 or NaN: a degenerate answer, not evidence.
    pub fn from_moments(estimate: f64, variance: f64, alpha: f64) -> Result<Self> {
        check_alpha(alpha)?;
        if !(variance.is_finite() && variance > 0.0 && estimate.is_finite()) {
            return Err(AnalysisError::ZeroVariance);
        }
        let std_error = variance.sqrt();
        let half_width = z_two_sided(alpha) * std_error;
        Ok(NormalEffect {
            estimate,
            std_error,
            ci: [estimate - half_width, estimate + half_width],
            p_value: two_sided_p(estimate / std_error),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_quantiles_match_scipy() {
        // scipy.stats.norm.isf(0.025) and norm.sf(3.0); statrs' erfc is good to
        // about 1e-10 relative, far inside the 1e-6 the fixtures demand.
        assert!((z_two_sided(0.05) - 1.959_963_984_540_054).abs() < 1e-12);
        assert!((normal_sf(3.0) / 0.001_349_898_031_630_093_3 - 1.0).abs() < 1e-9);
        assert!((normal_isf(0.2) - 0.841_621_233_572_914_4).abs() < 1e-12);
    }

    #[test]
    fn zero_variance_is_an_error_not_nan() {
        assert!(matches!(
            NormalEffect::from_moments(0.1, 0.0, 0.05),
            Err(AnalysisError::ZeroVariance)
        ));
    }

    #[test]
    fn counts_validation_names_the_arm() {
        let err = Counts::new(0, 0).validate("friendly").unwrap_err();
        assert!(err.to_string().contains("friendly"));
        assert!(Counts::new(5, 6).validate("x").is_err());
        assert!(Counts::new(5, 5).validate("x").is_ok());
    }
}
