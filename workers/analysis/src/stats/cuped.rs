//! CUPED variance reduction (Deng et al. 2013) with a pre-experiment covariate, as
//! GrowthBook's `RegressionAdjustedStatistic` computes it.
//!
//! Each arm's mean is adjusted by `theta * mean(x)`, with one `theta` fitted on both
//! arms pooled (so it does not depend on the treatment). Because assignment is
//! random, the covariate is balanced in expectation and the adjusted difference is
//! unbiased; its variance shrinks by about the squared correlation of x and y.

use super::NormalEffect;
use crate::error::{AnalysisError, Result};

/// Sufficient statistics of one arm: a binary outcome y and a covariate x
/// (here the customer's historical open or click rate).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CupedArm {
    pub n: u64,
    /// Successes; for a binary outcome the sum of squares equals the sum.
    pub sum_y: f64,
    pub sum_x: f64,
    pub sum_x2: f64,
    pub sum_xy: f64,
}

impl CupedArm {
    pub fn add(&mut self, outcome: bool, covariate: f64) {
        let y = if outcome { 1.0 } else { 0.0 };
        self.n += 1;
        self.sum_y += y;
        self.sum_x += covariate;
        self.sum_x2 += covariate * covariate;
        self.sum_xy += y * covariate;
    }

    fn n(&self) -> f64 {
        self.n as f64
    }

    fn post_mean(&self) -> f64 {
        self.sum_y / self.n()
    }

    /// gbstats `ProportionStatistic.variance`: p (1 - p), no n - 1 correction.
    fn post_variance(&self) -> f64 {
        let m = self.post_mean();
        m * (1.0 - m)
    }

    fn pre_mean(&self) -> f64 {
        self.sum_x / self.n()
    }

    /// gbstats `SampleMeanStatistic.variance`, with the n - 1 correction.
    fn pre_variance(&self) -> f64 {
        if self.n <= 1 {
            return 0.0;
        }
        (self.sum_x2 - self.sum_x * self.sum_x / self.n()) / (self.n() - 1.0)
    }

    fn covariance(&self) -> f64 {
        if self.n <= 1 {
            return 0.0;
        }
        (self.sum_xy - self.sum_y * self.sum_x / self.n()) / (self.n() - 1.0)
    }

    fn merged(&self, other: &CupedArm) -> CupedArm {
        CupedArm {
            n: self.n + other.n,
            sum_y: self.sum_y + other.sum_y,
            sum_x: self.sum_x + other.sum_x,
            sum_x2: self.sum_x2 + other.sum_x2,
            sum_xy: self.sum_xy + other.sum_xy,
        }
    }

    fn adjusted_mean(&self, theta: f64) -> f64 {
        self.post_mean() - theta * self.pre_mean()
    }

    fn adjusted_variance(&self, theta: f64) -> f64 {
        if self.n <= 1 {
            return 0.0;
        }
        self.post_variance() + theta * theta * self.pre_variance() - 2.0 * theta * self.covariance()
    }
}

/// The CUPED-adjusted comparison of treatment against control.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CupedResult {
    pub theta: f64,
    pub absolute: NormalEffect,
    /// `None` when the control rate is zero (gbstats' baseline-zero refusal).
    pub relative: Option<NormalEffect>,
    /// Share of the absolute difference's variance removed by the adjustment.
    pub variance_reduction: f64,
}

/// gbstats `compute_theta`: covariance over covariate variance on both arms pooled;
/// 0 (no adjustment) when either pooled variance vanishes.
pub fn theta(control: &CupedArm, treatment: &CupedArm) -> f64 {
    let joint = control.merged(treatment);
    let pre_variance = joint.pre_variance();
    // gbstats tests for exactly zero; the sums formula leaves rounding noise of
    // order epsilon * mean^2 for a constant covariate, which must count as zero
    // too or theta becomes noise divided by noise.
    let noise = 64.0 * f64::EPSILON * joint.pre_mean().powi(2);
    if pre_variance <= noise || joint.post_variance() == 0.0 {
        return 0.0;
    }
    joint.covariance() / pre_variance
}

/// CUPED-adjusted absolute and relative effects with z intervals.
pub fn cuped(control: &CupedArm, treatment: &CupedArm, alpha: f64) -> Result<CupedResult> {
    if control.n == 0 || treatment.n == 0 {
        return Err(AnalysisError::InvalidParameter(
            "CUPED needs users in both arms".into(),
        ));
    }
    let theta = theta(control, treatment);
    let (var_a, var_b) = (
        control.adjusted_variance(theta),
        treatment.adjusted_variance(theta),
    );
    if var_a <= 0.0 || var_b <= 0.0 {
        return Err(AnalysisError::ZeroVariance);
    }
    let (n_a, n_b) = (control.n(), treatment.n());
    let (mean_a, mean_b) = (control.adjusted_mean(theta), treatment.adjusted_mean(theta));
    let absolute_variance = var_b / n_b + var_a / n_a;
    let absolute = NormalEffect::from_moments(mean_b - mean_a, absolute_variance, alpha)?;

    // The relative effect divides by the unadjusted control mean, as gbstats does.
    let (raw_a, raw_b) = (control.post_mean(), treatment.post_mean());
    let relative = if raw_a > 0.0 && mean_a != 0.0 {
        let variance =
            var_b / (raw_a * raw_a * n_b) + var_a * raw_b * raw_b / (raw_a.powi(4) * n_a);
        Some(NormalEffect::from_moments(
            (mean_b - mean_a) / raw_a,
            variance,
            alpha,
        )?)
    } else {
        None
    };

    let plain_variance = treatment.post_variance() / n_b + control.post_variance() / n_a;
    let variance_reduction = if plain_variance > 0.0 {
        1.0 - absolute_variance / plain_variance
    } else {
        0.0
    };
    Ok(CupedResult {
        theta,
        absolute,
        relative,
        variance_reduction,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn simulate(n: usize, uplift: f64, rng: &mut ChaCha8Rng) -> CupedArm {
        let mut arm = CupedArm::default();
        for _ in 0..n {
            let history: f64 = rng.gen_range(0.0..0.8);
            let opened = rng.gen_bool((history + uplift).min(1.0));
            arm.add(opened, history);
        }
        arm
    }

    #[test]
    fn a_predictive_covariate_shrinks_the_interval() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let control = simulate(4000, 0.0, &mut rng);
        let treatment = simulate(4000, 0.03, &mut rng);
        let result = cuped(&control, &treatment, 0.05).unwrap();
        assert!(result.theta > 0.5, "theta {}", result.theta);
        assert!(
            result.variance_reduction > 0.2,
            "{}",
            result.variance_reduction
        );
        let [lo, hi] = result.absolute.ci;
        assert!(lo < 0.03 && 0.03 < hi);
    }

    #[test]
    fn constant_covariate_means_no_adjustment() {
        let mut control = CupedArm::default();
        let mut treatment = CupedArm::default();
        for i in 0..100 {
            control.add(i % 4 == 0, 0.3);
            treatment.add(i % 3 == 0, 0.3);
        }
        let result = cuped(&control, &treatment, 0.05).unwrap();
        assert_eq!(result.theta, 0.0);
        assert!(result.variance_reduction.abs() < 0.02);
    }
}
