//! Calibration over many simulated experiments (fixed seed): with no true effect,
//! Holm-adjusted decisions rarely call anything significant; with a true effect,
//! 95% intervals cover it 93-97% of the time; confidence sequences stay valid
//! under daily peeking where the fixed-horizon interval does not.

use cpo_analysis::compare::{AnalysisOptions, ArmCounts, analyze_metric};
use cpo_analysis::stats::Counts;
use cpo_analysis::stats::lift::relative_moments;
use cpo_analysis::stats::sequential::confidence_sequence;
use cpo_analysis::stats::z_two_sided;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Exact binomial sampling by inverting a precomputed CDF: one uniform draw per
/// sample instead of n Bernoulli draws keeps thousands of experiments fast in
/// debug builds.
struct Binomial {
    cdf: Vec<f64>,
}

impl Binomial {
    fn new(n: u64, p: f64) -> Binomial {
        // pmf(k + 1) = pmf(k) (n - k) / (k + 1) p / (1 - p); (1 - p)^n stays far
        // above f64's underflow for the sizes used here.
        let mut pmf = (1.0 - p).powf(n as f64);
        let mut total = 0.0;
        let cdf = (0..=n)
            .map(|k| {
                total += pmf;
                pmf *= (n - k) as f64 / (k + 1) as f64 * p / (1.0 - p);
                total
            })
            .collect();
        Binomial { cdf }
    }

    fn sample(&self, rng: &mut ChaCha8Rng) -> u64 {
        let u: f64 = rng.r#gen::<f64>() * self.cdf[self.cdf.len() - 1];
        self.cdf.partition_point(|&c| c < u) as u64
    }
}

fn arms(rng: &mut ChaCha8Rng, n: u64, samplers: &[Binomial]) -> Vec<ArmCounts> {
    samplers
        .iter()
        .enumerate()
        .map(|(i, b)| ArmCounts {
            name: if i == 0 {
                "control".into()
            } else {
                format!("t{i}")
            },
            users: n,
            successes: b.sample(rng),
        })
        .collect()
}

#[test]
fn binomial_sampler_has_the_right_mean_and_variance() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let sampler = Binomial::new(500, 0.2);
    let draws: Vec<f64> = (0..20_000)
        .map(|_| sampler.sample(&mut rng) as f64)
        .collect();
    let mean = draws.iter().sum::<f64>() / draws.len() as f64;
    let variance = draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / draws.len() as f64;
    assert!((mean - 100.0).abs() < 0.2, "{mean}");
    assert!((variance - 80.0).abs() < 3.0, "{variance}");
}

/// Three standard errors of a proportion estimated from `runs` trials.
fn slack(p: f64, runs: usize) -> f64 {
    3.0 * (p * (1.0 - p) / runs as f64).sqrt()
}

#[test]
fn without_a_true_effect_holm_keeps_the_family_wise_error_at_alpha() {
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let options = AnalysisOptions::default();
    let runs = 2000;
    let samplers: Vec<Binomial> = (0..4).map(|_| Binomial::new(600, 0.2)).collect();
    let (mut any_holm, mut any_raw, mut raw_rejections, mut comparisons) = (0, 0, 0, 0);
    for _ in 0..runs {
        let analysis =
            analyze_metric("opened", &arms(&mut rng, 600, &samplers), &options).expect("analysis");
        any_holm += usize::from(analysis.comparisons.iter().any(|c| c.significant));
        any_raw += usize::from(
            analysis
                .comparisons
                .iter()
                .any(|c| c.abs_p_value < options.alpha),
        );
        raw_rejections += analysis
            .comparisons
            .iter()
            .filter(|c| c.abs_p_value < options.alpha)
            .count();
        comparisons += analysis.comparisons.len();
    }
    let fwer = any_holm as f64 / runs as f64;
    let raw_fwer = any_raw as f64 / runs as f64;
    let per_test = raw_rejections as f64 / comparisons as f64;
    eprintln!("holm fwer {fwer}, per-test {per_test}, uncorrected fwer {raw_fwer}");
    assert!(
        fwer <= 0.05 + slack(0.05, runs),
        "Holm family-wise error {fwer}"
    );
    // The single test is calibrated (not merely conservative) ...
    assert!(
        (per_test - 0.05).abs() <= slack(0.05, comparisons),
        "per-test error {per_test}"
    );
    // ... and without the correction three looks would be wrong far more often.
    assert!(raw_fwer > 0.09, "uncorrected family-wise error {raw_fwer}");
}

#[test]
fn ninety_five_percent_intervals_cover_the_true_lift() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let options = AnalysisOptions::default();
    let (p0, p1) = (0.20, 0.23);
    let (true_abs, true_rel) = (p1 - p0, p1 / p0 - 1.0);
    let runs = 2000;
    let samplers = [Binomial::new(1500, p0), Binomial::new(1500, p1)];
    let (mut wald, mut newcombe, mut relative) = (0, 0, 0);
    for _ in 0..runs {
        let analysis =
            analyze_metric("opened", &arms(&mut rng, 1500, &samplers), &options).expect("analysis");
        let c = &analysis.comparisons[0];
        let covers = |ci: [f64; 2], x: f64| ci[0] <= x && x <= ci[1];
        wald += usize::from(covers(c.abs_ci, true_abs));
        newcombe += usize::from(covers(c.newcombe_ci, true_abs));
        relative += usize::from(c.rel_ci.is_some_and(|ci| covers(ci, true_rel)));
    }
    for (name, covered) in [
        ("wald", wald),
        ("newcombe", newcombe),
        ("relative", relative),
    ] {
        let coverage = covered as f64 / runs as f64;
        eprintln!("{name} coverage {coverage}");
        assert!(
            (0.93..=0.97).contains(&coverage),
            "{name} coverage {coverage}"
        );
    }
}

#[test]
fn confidence_sequences_survive_daily_peeking() {
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let (p, alpha, tuning, looks, per_look) = (0.2, 0.05, 5000.0, 10, 300u64);
    let runs = 500;
    let sampler = Binomial::new(per_look, p);
    let (mut sequence_wrong, mut fixed_wrong) = (0, 0);
    for _ in 0..runs {
        let (mut control, mut treatment) = (Counts::new(0, 0), Counts::new(0, 0));
        let (mut seq_excluded_truth, mut fixed_excluded_truth) = (false, false);
        for _ in 0..looks {
            control = Counts::new(
                control.users + per_look,
                control.successes + sampler.sample(&mut rng),
            );
            treatment = Counts::new(
                treatment.users + per_look,
                treatment.successes + sampler.sample(&mut rng),
            );
            let (estimate, variance) = relative_moments(treatment, control).expect("moments");
            let [lo, hi] = confidence_sequence(
                estimate,
                variance,
                control.users + treatment.users,
                alpha,
                tuning,
            )
            .expect("sequence");
            seq_excluded_truth |= lo > 0.0 || hi < 0.0;
            let half = z_two_sided(alpha) * variance.sqrt();
            fixed_excluded_truth |= estimate - half > 0.0 || estimate + half < 0.0;
        }
        sequence_wrong += usize::from(seq_excluded_truth);
        fixed_wrong += usize::from(fixed_excluded_truth);
    }
    let sequence_error = sequence_wrong as f64 / runs as f64;
    let fixed_error = fixed_wrong as f64 / runs as f64;
    eprintln!("peeking error: sequence {sequence_error}, fixed {fixed_error}");
    assert!(
        sequence_error <= alpha + slack(alpha, runs),
        "sequence error under peeking {sequence_error}"
    );
    // Peeking at the fixed-horizon interval ten times inflates the error well past alpha.
    assert!(
        fixed_error > 0.1,
        "fixed-horizon error under peeking {fixed_error}"
    );
}
