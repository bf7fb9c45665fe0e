//! `cpo simulate`: engagement events for a run's assignment with true effects
//! that you choose. Everything it writes says `"simulated": true`, and it never
//! overwrites observed events, so simulated outcomes cannot pass for real ones.

pub mod config;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

pub use config::{BaseRates, Effects, SimulationConfig};

use crate::error::{AnalysisError, Result};
use crate::events::ingest::write_events;
use crate::events::time::format_rfc3339;
use crate::events::{Event, EventType};
use crate::metric::Metric;
use crate::run::inputs::{Covariates, RunSummary};
use crate::run::outbox::{CONTROL_ARM, Outbox};

/// The simulator's record of what it did, next to the events in the run dir.
pub const SIMULATION_FILE: &str = "simulation.json";

/// Per-recipient probabilities under one arm.
#[derive(Debug, Clone, Copy)]
struct Probabilities {
    delivered: f64,
    open: f64,
    click_given_open: f64,
    conversion_given_click: f64,
}

impl Probabilities {
    fn of(metric: Metric, p: &Probabilities) -> f64 {
        let open = p.delivered * p.open;
        match metric {
            Metric::Opened => open,
            Metric::Clicked => open * p.click_given_open,
            Metric::Converted => open * p.click_given_open * p.conversion_given_click,
        }
    }
}

/// The simulator's model, compiled against one outbox.
struct Model<'a> {
    config: &'a SimulationConfig,
    /// `effects[arm][segment]`, indices as in the outbox.
    effects: Vec<Vec<Effects>>,
    history: Option<&'a [f64]>,
}

impl<'a> Model<'a> {
    fn new(
        config: &'a SimulationConfig,
        outbox: &Outbox,
        covariates: Option<&'a Covariates>,
    ) -> Self {
        let effects = outbox
            .arms
            .iter()
            .map(|arm| {
                let own = config.arm_effects.get(arm).copied().unwrap_or_default();
                outbox
                    .segments
                    .iter()
                    .map(|segment| {
                        let extra = config
                            .segment_effects
                            .get(segment)
                            .and_then(|a| a.get(arm))
                            .copied();
                        own.plus(extra.unwrap_or_default())
                    })
                    .collect()
            })
            .collect();
        Model {
            config,
            effects,
            history: covariates.map(|c| c.historical_open_rate.as_slice()),
        }
    }

    fn probabilities(&self, recipient: usize, arm: usize, segment: usize) -> Probabilities {
        let base = &self.config.base;
        let effects = self.effects[arm][segment];
        // Customers who opened before open again: that is what makes the
        // historical open rate a useful CUPED covariate.
        let baseline = match self.history {
            Some(history) => {
                let w = self.config.history_weight;
                w * history[recipient].clamp(0.0, 1.0) + (1.0 - w) * base.open
            }
            None => base.open,
        };
        Probabilities {
            delivered: 1.0 - base.bounce,
            open: (baseline * (1.0 + effects.open)).clamp(0.0, 1.0),
            click_given_open: (base.click_given_open * (1.0 + effects.click)).clamp(0.0, 1.0),
            conversion_given_click: (base.conversion_given_click * (1.0 + effects.conversion))
                .clamp(0.0, 1.0),
        }
    }
}

/// The true rates the simulation was drawn from: each arm's rate had every
/// customer been assigned to it, so lifts compare like with like.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Truth {
    pub true_rates: BTreeMap<String, BTreeMap<String, f64>>,
    pub true_relative_lift: BTreeMap<String, BTreeMap<String, f64>>,
}

fn truth(model: &Model, outbox: &Outbox) -> Truth {
    let n = outbox.len() as f64;
    let mut true_rates = BTreeMap::new();
    let mut true_relative_lift = BTreeMap::new();
    for metric in Metric::ALL {
        let mut rates = BTreeMap::new();
        for (arm, name) in outbox.arms.iter().enumerate() {
            let total: f64 = outbox
                .recipients
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    Probabilities::of(metric, &model.probabilities(i, arm, usize::from(r.segment)))
                })
                .sum();
            rates.insert(name.clone(), total / n);
        }
        if let Some(&control) = rates.get(CONTROL_ARM).filter(|&&c| c > 0.0) {
            let lifts = rates
                .iter()
                .filter(|(name, _)| name.as_str() != CONTROL_ARM)
                .map(|(name, rate)| (name.clone(), rate / control - 1.0))
                .collect();
            true_relative_lift.insert(metric.name().to_string(), lifts);
        }
        true_rates.insert(metric.name().to_string(), rates);
    }
    Truth {
        true_rates,
        true_relative_lift,
    }
}

/// An exponential delay with the given mean, in seconds.
fn exponential(rng: &mut ChaCha8Rng, mean_seconds: f64) -> i64 {
    let u: f64 = 1.0 - rng.r#gen::<f64>();
    (-u.ln() * mean_seconds) as i64
}

/// Simulated events (sorted by time) and the truth they were drawn from.
pub fn simulate(
    outbox: &Outbox,
    covariates: Option<&Covariates>,
    config: &SimulationConfig,
    seed: u64,
) -> Result<(Vec<Event>, Truth)> {
    config.validate()?;
    let start = config.start_seconds()?;
    let window_end = start + i64::from(config.days) * 86_400 - 1;
    let model = Model::new(config, outbox, covariates);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut raw: Vec<(i64, u32, EventType)> = Vec::with_capacity(outbox.len() * 2);
    let base = &config.base;
    for (index, recipient) in outbox.recipients.iter().enumerate() {
        let p = model.probabilities(
            index,
            usize::from(recipient.arm),
            usize::from(recipient.segment),
        );
        let id = index as u32;
        // Sends are spread over the first hour of the campaign.
        let sent = start + rng.gen_range(0..3600);
        if !rng.gen_bool(p.delivered) {
            raw.push((sent + rng.gen_range(1..300), id, EventType::Bounce));
            continue;
        }
        let delivered = sent + rng.gen_range(5..120);
        raw.push((delivered, id, EventType::Delivered));
        if !rng.gen_bool(p.open) {
            continue;
        }
        // Most opens come within a day; the rare late one lands on the last day.
        let opened = (delivered + exponential(&mut rng, 0.7 * 86_400.0)).min(window_end);
        raw.push((opened, id, EventType::Open));
        if rng.gen_bool(base.unsubscribe_given_open) {
            raw.push((
                (opened + rng.gen_range(10..900)).min(window_end),
                id,
                EventType::Unsubscribe,
            ));
        }
        if rng.gen_bool(base.complaint_given_open) {
            raw.push((
                (opened + rng.gen_range(10..900)).min(window_end),
                id,
                EventType::Complaint,
            ));
        }
        if !rng.gen_bool(p.click_given_open) {
            continue;
        }
        let clicked = (opened + rng.gen_range(5..1800)).min(window_end);
        raw.push((clicked, id, EventType::Click));
        if rng.gen_bool(p.conversion_given_click) {
            let converted = (clicked + exponential(&mut rng, 3.0 * 3600.0)).min(window_end);
            raw.push((converted, id, EventType::Conversion));
        }
    }
    raw.sort_by_key(|&(time, id, kind)| (time, id, kind));
    let events = raw
        .into_iter()
        .map(|(time, id, kind)| {
            let message_id = outbox.message_id(id as usize);
            Event {
                event_id: format!("sim-{message_id}-{}", kind.as_str()),
                message_id: message_id.to_string(),
                event_type: kind,
                timestamp: format_rfc3339(time),
                simulated: true,
            }
        })
        .collect();
    Ok((events, truth(&model, outbox)))
}

/// Refuses to replace an events file that holds any observed (non-simulated) event.
fn check_overwrite(out: &Path) -> Result<()> {
    let text = match std::fs::read_to_string(out) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(AnalysisError::io(out, e)),
    };
    #[derive(serde::Deserialize)]
    struct Flag {
        #[serde(default)]
        simulated: bool,
    }
    let holds_real = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .any(|line| serde_json::from_str::<Flag>(line).map_or(true, |f| !f.simulated));
    if holds_real {
        return Err(AnalysisError::Refused(format!(
            "{} holds observed events; simulated events go to another file (--out)",
            out.display()
        )));
    }
    Ok(())
}

/// What `simulate_run` wrote.
#[derive(Debug, Clone)]
pub struct SimulationReport {
    pub events_path: PathBuf,
    pub simulation_path: PathBuf,
    pub events: usize,
    pub truth: Truth,
}

/// Simulates events for the run in `run_dir` and writes them to `out`
/// (default `DIR/events.jsonl`) plus `DIR/simulation.json`.
pub fn simulate_run(
    run_dir: &Path,
    config: &SimulationConfig,
    seed: Option<u64>,
    out: Option<&Path>,
) -> Result<SimulationReport> {
    let outbox = Outbox::load(&run_dir.join("outbox.jsonl"))?;
    let summary = RunSummary::load(run_dir)?;
    let covariates = summary
        .as_ref()
        .and_then(|s| s.customers_path(run_dir))
        .and_then(|path| Covariates::load(&path, &outbox).ok());
    let seed = seed.or(config.seed).unwrap_or(0);
    let events_path = out.map_or_else(|| run_dir.join("events.jsonl"), Path::to_path_buf);
    check_overwrite(&events_path)?;
    let (events, truth) = simulate(&outbox, covariates.as_ref(), config, seed)?;
    write_events(&events_path, &events)?;
    let record = serde_json::json!({
        "simulated": true,
        "warning": "these outcomes were generated by cpo simulate, not observed",
        "seed": seed,
        "customer_history_used": covariates.is_some(),
        "events": events.len(),
        "config": config,
        "true_rates": truth.true_rates,
        "true_relative_lift": truth.true_relative_lift,
    });
    let simulation_path = run_dir.join(SIMULATION_FILE);
    let text = serde_json::to_string_pretty(&record)
        .map_err(|e| AnalysisError::parse(&simulation_path, e.to_string()))?;
    std::fs::write(&simulation_path, text).map_err(|e| AnalysisError::io(&simulation_path, e))?;
    Ok(SimulationReport {
        events_path,
        simulation_path,
        events: events.len(),
        truth,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(n: usize) -> Outbox {
        let arms = ["control", "friendly"];
        let text: String = (0..n)
            .map(|i| {
                format!(
                    "{{\"message_id\": \"m{i}\", \"customer_id\": \"C{i}\", \"segment\": \"S{}\", \"arm\": \"{}\"}}\n",
                    i % 3,
                    arms[i % 2]
                )
            })
            .collect();
        Outbox::parse(Path::new("outbox.jsonl"), text.as_bytes()).unwrap()
    }

    #[test]
    fn deterministic_labelled_and_consistent() {
        let outbox = outbox(2000);
        let config = SimulationConfig::default();
        let (a, truth) = simulate(&outbox, None, &config, 9).unwrap();
        let (b, _) = simulate(&outbox, None, &config, 9).unwrap();
        assert_eq!(a, b);
        assert!(a.iter().all(|e| e.simulated));
        let (c, _) = simulate(&outbox, None, &config, 10).unwrap();
        assert_ne!(a, c);
        // Every click follows an open of the same message.
        let opened: std::collections::HashSet<&str> = a
            .iter()
            .filter(|e| e.event_type == EventType::Open)
            .map(|e| e.message_id.as_str())
            .collect();
        assert!(
            a.iter()
                .filter(|e| e.event_type == EventType::Click)
                .all(|e| opened.contains(e.message_id.as_str()))
        );
        let lift = truth.true_relative_lift["opened"]["friendly"];
        assert!((lift - 0.10).abs() < 1e-9, "{lift}");
    }

    #[test]
    fn refuses_to_overwrite_observed_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, "{\"event_id\": \"e\", \"message_id\": \"m\", \"type\": \"open\", \"timestamp\": \"2025-01-01T00:00:00Z\", \"simulated\": false}\n").unwrap();
        assert!(matches!(
            check_overwrite(&path),
            Err(AnalysisError::Refused(_))
        ));
        std::fs::write(&path, "{\"simulated\": true}\n").unwrap();
        assert!(check_overwrite(&path).is_ok());
    }
}
