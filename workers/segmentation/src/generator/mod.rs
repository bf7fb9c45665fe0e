//! Synthetic customers for demos, tests and benchmarks (`cpo gen-data`).
//!
//! Each customer draws a latent *activity* (how much they shop and read mail) and
//! a *spend* propensity correlated with it; the observable columns follow from
//! those, so the data has the correlations real CRM exports show: frequent buyers
//! engaged recently and open more mail, big spenders sit in higher tiers, clicks
//! trail opens. Output is a pure function of (n, seed): ChaCha8 with a fixed seed,
//! no clock, no hash-map order.

mod cli;
mod names;

use std::fmt::Write as _;
use std::io::Write;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use cli::{GenDataArgs, run_gen_data};
use names::{CITIES, EMAIL_DOMAINS, FIRST_NAMES, LAST_NAMES, TIERS, ascii_slug};

use crate::record::COLUMNS;

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("writing customers: {0}")]
    Csv(#[from] csv::Error),
    #[error("writing customers: {0}")]
    Io(#[from] std::io::Error),
}

/// How often the progress callback hears about it.
const PROGRESS_EVERY: u64 = 1 << 16;

/// Write `n` synthetic customers (with header) as CSV. Same `(n, seed)`, same bytes.
pub fn generate_customers(n: u64, seed: u64, writer: impl Write) -> Result<u64, GenerateError> {
    generate_customers_with_progress(n, seed, writer, |_| {})
}

/// As `generate_customers`, calling `progress(rows_written)` every 65,536 rows and at the end.
pub fn generate_customers_with_progress(
    n: u64,
    seed: u64,
    writer: impl Write,
    mut progress: impl FnMut(u64),
) -> Result<u64, GenerateError> {
    let mut out = csv::WriterBuilder::new()
        .buffer_capacity(256 * 1024)
        .from_writer(writer);
    out.write_record(COLUMNS)?;
    let mut synth = Synth::new(seed);
    let mut field = String::with_capacity(64);
    for index in 0..n {
        let c = synth.customer();
        let number = index + 1;
        put(&mut out, &mut field, format_args!("C{number:07}"))?;
        out.write_field(FIRST_NAMES[c.first])?;
        put(
            &mut out,
            &mut field,
            format_args!(
                "{}.{}.{number}@{}",
                synth.first_slugs[c.first], synth.last_slugs[c.last], EMAIL_DOMAINS[c.domain]
            ),
        )?;
        put(&mut out, &mut field, format_args!("{}", c.age))?;
        out.write_field(CITIES[c.city].0)?;
        out.write_field(TIERS[c.tier])?;
        put(
            &mut out,
            &mut field,
            format_args!("{}", c.purchase_frequency),
        )?;
        put(
            &mut out,
            &mut field,
            format_args!("{:.2}", c.avg_order_value),
        )?;
        put(
            &mut out,
            &mut field,
            format_args!("{}", c.last_engagement_days),
        )?;
        put(&mut out, &mut field, format_args!("{:.3}", c.open_rate))?;
        put(&mut out, &mut field, format_args!("{:.3}", c.click_rate))?;
        out.write_field(if c.consent { "true" } else { "false" })?;
        out.write_record(None::<&[u8]>)?;
        if number % PROGRESS_EVERY == 0 {
            progress(number);
        }
    }
    out.flush()?;
    progress(n);
    Ok(n)
}

/// One formatted field; `field` is reused so a row allocates nothing.
fn put<W: Write>(
    out: &mut csv::Writer<W>,
    field: &mut String,
    args: std::fmt::Arguments,
) -> csv::Result<()> {
    field.clear();
    // Writing to a String cannot fail.
    let _ = field.write_fmt(args);
    out.write_field(field.as_bytes())
}

/// One customer's drawn values, as indices into the word lists plus numbers.
struct Draw {
    first: usize,
    last: usize,
    domain: usize,
    age: u32,
    city: usize,
    tier: usize,
    purchase_frequency: u32,
    avg_order_value: f64,
    last_engagement_days: u32,
    open_rate: f64,
    click_rate: f64,
    consent: bool,
}

struct Synth {
    rng: ChaCha8Rng,
    first_slugs: Vec<String>,
    last_slugs: Vec<String>,
    /// Cumulative city weights for a binary-search pick.
    city_cumulative: Vec<u32>,
}

impl Synth {
    fn new(seed: u64) -> Self {
        let city_cumulative = CITIES
            .iter()
            .scan(0, |sum, (_, weight)| {
                *sum += weight;
                Some(*sum)
            })
            .collect();
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            first_slugs: FIRST_NAMES.iter().map(|n| ascii_slug(n)).collect(),
            last_slugs: LAST_NAMES.iter().map(|n| ascii_slug(n)).collect(),
            city_cumulative,
        }
    }

    fn customer(&mut self) -> Draw {
        let activity = self.normal();
        let spend = 0.4 * activity + 0.92 * self.normal();

        // Purchases: Poisson around a log-normal rate, i.e. negative-binomial-like
        // overdispersion; median rate 5 a year.
        let purchase_frequency = self.poisson((1.6 + 0.7 * activity).exp());
        // Order value: log-normal, median ~85, long right tail.
        let avg_order_value = (85f64.ln() + 0.35 * spend + 0.55 * self.normal())
            .exp()
            .max(5.0);
        // Recency: exponential; active customers were seen more recently.
        let mean_days = 40.0 * (-0.65 * activity).exp();
        let last_engagement_days = self.exponential(mean_days).min(730.0) as u32;
        // Open rate: logit-normal (beta-like), higher for active and recent customers.
        let logit = -0.55 + 0.75 * activity - 0.012 * f64::from(last_engagement_days.min(150))
            + 0.55 * self.normal();
        let open_rate = round3(sigmoid(logit));
        // Clicks are a fraction (~30%) of opens, so always below them.
        let click_rate = round3(open_rate * sigmoid(-0.9 + 0.5 * self.normal()));
        // Tier follows annual spend, with some noise (status lags behaviour).
        let annual = f64::from(purchase_frequency) * avg_order_value;
        let score = annual.max(1.0).ln() + 0.25 * self.normal();
        let tier = [300f64, 900.0, 2200.0]
            .iter()
            .filter(|threshold| score > threshold.ln())
            .count();
        let age = (41.0 + 13.0 * self.normal()).round().clamp(18.0, 90.0) as u32;

        Draw {
            first: self.rng.gen_range(0..FIRST_NAMES.len()),
            last: self.rng.gen_range(0..LAST_NAMES.len()),
            domain: self.rng.gen_range(0..EMAIL_DOMAINS.len()),
            age,
            city: self.city(),
            tier,
            purchase_frequency,
            avg_order_value: (avg_order_value * 100.0).round() / 100.0,
            last_engagement_days,
            open_rate,
            click_rate,
            consent: self.rng.gen_bool(0.95),
        }
    }

    /// Standard normal by Box-Muller (one of the pair; simplicity beats the saved draw).
    fn normal(&mut self) -> f64 {
        let u1: f64 = 1.0 - self.rng.r#gen::<f64>(); // (0, 1]: ln stays finite
        let u2: f64 = self.rng.r#gen();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    fn exponential(&mut self, mean: f64) -> f64 {
        let u: f64 = 1.0 - self.rng.r#gen::<f64>();
        -mean * u.ln()
    }

    /// Knuth's method for small rates, a rounded normal for large ones.
    fn poisson(&mut self, lambda: f64) -> u32 {
        if lambda >= 30.0 {
            return (lambda + lambda.sqrt() * self.normal()).round().max(0.0) as u32;
        }
        let limit = (-lambda).exp();
        let mut product: f64 = self.rng.r#gen();
        let mut count = 0;
        while product > limit {
            product *= self.rng.r#gen::<f64>();
            count += 1;
        }
        count
    }

    fn city(&mut self) -> usize {
        let total = self.city_cumulative.last().copied().unwrap_or(1);
        let pick = self.rng.gen_range(0..total);
        self.city_cumulative
            .partition_point(|&cumulative| cumulative <= pick)
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generate(n: u64, seed: u64) -> Vec<u8> {
        let mut buf = Vec::new();
        generate_customers(n, seed, &mut buf).unwrap();
        buf
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        assert_eq!(generate(500, 7), generate(500, 7));
        assert_ne!(generate(500, 7), generate(500, 8));
        // a prefix of a longer run is the shorter run
        let short = generate(100, 7);
        assert!(generate(500, 7).starts_with(&short));
    }

    #[test]
    fn distributions_look_like_customers() {
        let mut synth = Synth::new(1);
        let draws: Vec<Draw> = (0..20_000).map(|_| synth.customer()).collect();
        let n = draws.len() as f64;
        let share = |f: &dyn Fn(&Draw) -> bool| draws.iter().filter(|d| f(d)).count() as f64 / n;
        let no_consent = share(&|d| !d.consent);
        assert!((0.04..0.06).contains(&no_consent), "{no_consent}");
        assert!(draws.iter().all(|d| d.click_rate <= d.open_rate));
        let mut values: Vec<f64> = draws.iter().map(|d| d.avg_order_value).collect();
        values.sort_by(f64::total_cmp);
        let (median, mean) = (values[values.len() / 2], values.iter().sum::<f64>() / n);
        assert!(
            mean > median * 1.05,
            "log-normal is right-skewed: {mean} vs {median}"
        );
        for tier in 0..4 {
            assert!(share(&|d| d.tier == tier) > 0.03, "tier {tier} is rare");
        }
        let spend = |t: usize| {
            let of: Vec<_> = draws.iter().filter(|d| d.tier == t).collect();
            of.iter().map(|d| d.avg_order_value).sum::<f64>() / of.len() as f64
        };
        assert!(spend(3) > spend(0), "tiers follow spend");
        let recent_open = draws
            .iter()
            .filter(|d| d.last_engagement_days < 14)
            .map(|d| d.open_rate);
        let stale_open = draws
            .iter()
            .filter(|d| d.last_engagement_days > 90)
            .map(|d| d.open_rate);
        let mean_of = |it: &mut dyn Iterator<Item = f64>| {
            let (sum, count) = it.fold((0.0, 0), |(s, c), x| (s + x, c + 1));
            sum / count as f64
        };
        assert!(mean_of(&mut { recent_open }) > mean_of(&mut { stale_open }));
        let cities: std::collections::HashSet<usize> = draws.iter().map(|d| d.city).collect();
        assert!(cities.len() > 40);
    }
}
