//! Thompson-sampling weights for the next wave of a campaign.
//!
//! Each arm's rate gets a Beta(1 + successes, 1 + failures) posterior (uniform
//! prior); an arm's weight is the posterior probability that it is the best arm,
//! estimated by Monte Carlo. A seeded ChaCha generator makes the weights
//! reproducible, so a re-run of the analysis proposes the same split.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::Counts;
use crate::error::{AnalysisError, Result};

/// Enough draws that a weight's Monte Carlo error is below half a percentage point.
pub const DEFAULT_DRAWS: u32 = 10_000;

/// Standard normal by Box-Muller; rand 0.8 itself ships no normal distribution.
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    // 1 - u is in (0, 1], so the log is finite.
    let u1: f64 = 1.0 - rng.r#gen::<f64>();
    let u2: f64 = rng.r#gen::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Gamma(shape, 1) for shape >= 1 by Marsaglia and Tsang (2000).
fn gamma(shape: f64, rng: &mut ChaCha8Rng) -> f64 {
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = standard_normal(rng);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u: f64 = rng.r#gen::<f64>();
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// Beta(a, b) for a, b >= 1 as a ratio of gammas.
fn beta(a: f64, b: f64, rng: &mut ChaCha8Rng) -> f64 {
    let x = gamma(a, rng);
    let y = gamma(b, rng);
    x / (x + y)
}

/// Probability of each arm being best, in arm order; sums to 1.
pub fn thompson_weights(arms: &[Counts], draws: u32, seed: u64) -> Result<Vec<f64>> {
    if arms.is_empty() {
        return Err(AnalysisError::TooFewArms(0));
    }
    if draws == 0 {
        return Err(AnalysisError::InvalidParameter(
            "thompson sampling needs at least one draw".into(),
        ));
    }
    for (index, arm) in arms.iter().enumerate() {
        arm.validate(&format!("#{index}"))?;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut wins = vec![0u32; arms.len()];
    for _ in 0..draws {
        let mut best = 0;
        let mut best_value = f64::NEG_INFINITY;
        for (index, arm) in arms.iter().enumerate() {
            let failures = (arm.users - arm.successes) as f64;
            let value = beta(1.0 + arm.successes as f64, 1.0 + failures, &mut rng);
            if value > best_value {
                best = index;
                best_value = value;
            }
        }
        wins[best] += 1;
    }
    Ok(wins
        .into_iter()
        .map(|w| f64::from(w) / f64::from(draws))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_deterministic_and_sum_to_one() {
        let arms = [
            Counts::new(500, 50),
            Counts::new(500, 60),
            Counts::new(500, 45),
        ];
        let a = thompson_weights(&arms, 4000, 42).unwrap();
        let b = thompson_weights(&arms, 4000, 42).unwrap();
        assert_eq!(a, b);
        assert!((a.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(a[1] > a[0] && a[0] > a[2], "{a:?}");
    }

    #[test]
    fn a_clear_winner_takes_nearly_all_traffic() {
        let arms = [Counts::new(5000, 500), Counts::new(5000, 800)];
        let w = thompson_weights(&arms, 2000, 1).unwrap();
        assert!(w[1] > 0.99, "{w:?}");
    }

    #[test]
    fn beta_sampler_has_the_right_mean() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 20_000;
        let mean: f64 = (0..n).map(|_| beta(3.0, 7.0, &mut rng)).sum::<f64>() / n as f64;
        assert!((mean - 0.3).abs() < 0.005, "{mean}");
    }
}
