//! `cpo analyze --run DIR`: a campaign run's outbox joined with its events,
//! analysed per metric, per arm and per segment.

mod breakdown;
pub mod inputs;
pub mod message_index;
pub mod outbox;
pub mod record;
pub mod tally;
pub mod timeline;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::analysis::{Analysis, CupedStatus, NextWave, Source};
use crate::compare::{AnalysisOptions, analyze_metric};
use crate::error::{AnalysisError, Result};
use crate::metric::Metric;
use crate::report::verdict::verdict;
use crate::stats::Counts;
use crate::stats::bandit::thompson_weights;
use breakdown::{arm_counts, attach_cuped, count_metric, segment_analyses, srm_check};
use inputs::{Covariates, RunSummary};
use outbox::{CONTROL_ARM, Outbox};
use tally::Tally;

/// Options of a run analysis.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub analysis: AnalysisOptions,
    /// The metric of the timeline, the segment chart and the next-wave weights.
    pub primary_metric: Metric,
    /// Events file; `DIR/events.jsonl` when absent.
    pub events: Option<PathBuf>,
}

/// Arm order for the analysis: control first, the others by name.
fn arm_order(outbox: &Outbox) -> Result<Vec<usize>> {
    let control = outbox.arm_index(CONTROL_ARM).ok_or_else(|| {
        AnalysisError::Refused(format!(
            "the outbox has no `{CONTROL_ARM}` arm to compare against"
        ))
    })?;
    let mut others: Vec<usize> = (0..outbox.arms.len())
        .filter(|&a| a != usize::from(control))
        .collect();
    others.sort_by(|&a, &b| outbox.arms[a].cmp(&outbox.arms[b]));
    Ok(std::iter::once(usize::from(control))
        .chain(others)
        .collect())
}

/// Analyses a run directory (`outbox.jsonl`, `summary.json`, events).
pub fn analyze_run(run_dir: &Path, options: &RunOptions) -> Result<Analysis> {
    let outbox = Outbox::load(&run_dir.join("outbox.jsonl"))?;
    let summary = RunSummary::load(run_dir)?;
    let events_path = options
        .events
        .clone()
        .unwrap_or_else(|| run_dir.join("events.jsonl"));
    let tally = tally::tally_file(&events_path, &outbox)?;
    analyze_joined(run_dir, &outbox, summary.as_ref(), &tally, options)
}

/// The analysis proper, once inputs are loaded (separate so benchmarks can time it).
pub fn analyze_joined(
    run_dir: &Path,
    outbox: &Outbox,
    summary: Option<&RunSummary>,
    tally: &Tally,
    options: &RunOptions,
) -> Result<Analysis> {
    let analysis_options = &options.analysis;
    let order = arm_order(outbox)?;
    let names: Vec<String> = order.iter().map(|&a| outbox.arms[a].clone()).collect();
    let mut position = vec![0usize; outbox.arms.len()];
    for (pos, &arm) in order.iter().enumerate() {
        position[arm] = pos;
    }
    let arm_of: Vec<usize> = outbox
        .recipients
        .iter()
        .map(|r| position[usize::from(r.arm)])
        .collect();
    let mut notes = Vec::new();

    let (covariates, cuped_status) = load_covariates(run_dir, outbox, summary);
    if let Some(c) = covariates.as_ref().filter(|c| c.imputed > 0) {
        notes.push(format!(
            "{} customer(s) missing from the customer file got the mean covariate",
            c.imputed
        ));
    }

    let mut metrics = Vec::new();
    let mut segments = Vec::new();
    let mut arm_users = Vec::new();
    for metric in Metric::ALL {
        let counts = count_metric(metric, outbox, &arm_of, &tally.flags, covariates.as_ref());
        arm_users = counts.arms.iter().map(|c| c.users).collect();
        let mut analysis = analyze_metric(
            metric.name(),
            &arm_counts(&names, &counts.arms),
            analysis_options,
        )?;
        if let Some(cuped_arms) = &counts.cuped {
            attach_cuped(
                &mut analysis,
                metric,
                cuped_arms,
                &names,
                analysis_options.alpha,
            );
        }
        segments.extend(segment_analyses(
            metric,
            outbox,
            &names,
            &counts,
            analysis_options,
        )?);
        metrics.push(analysis);
    }

    let srm = srm_check(&names, &arm_users, summary);
    let primary = options.primary_metric;
    let timeline = tally.first_time.get(&primary.event()).and_then(|times| {
        timeline::build(
            primary.name(),
            times,
            &arm_of,
            &names,
            &arm_users,
            analysis_options,
        )
    });
    let primary_counts = metrics
        .iter()
        .find(|m| m.metric == primary.name())
        .map(|m| {
            std::iter::once(Counts::new(m.control.users, m.control.successes))
                .chain(
                    m.comparisons
                        .iter()
                        .map(|c| Counts::new(c.users, c.successes)),
                )
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let next_wave = thompson_weights(
        &primary_counts,
        analysis_options.bandit_draws,
        analysis_options.bandit_seed,
    )
    .ok()
    .map(|weights| NextWave {
        metric: primary.name().to_string(),
        weights: names
            .iter()
            .cloned()
            .zip(weights)
            .collect::<BTreeMap<_, _>>(),
        seed: analysis_options.bandit_seed,
        draws: analysis_options.bandit_draws,
    });

    let stats = &tally.stats;
    let simulated = stats.simulated > 0;
    if simulated && stats.simulated < stats.lines {
        notes.push(format!(
            "{} of {} events are simulated: the whole analysis is treated as simulated",
            stats.simulated, stats.lines
        ));
    }
    if stats.malformed > 0 {
        notes.push(format!(
            "{} malformed event line(s) were skipped",
            stats.malformed
        ));
    }
    if stats.unmatched > 0 {
        notes.push(format!(
            "{} event(s) reference messages that are not in the outbox and were skipped",
            stats.unmatched
        ));
    }
    if let Some(assigned) = summary
        .and_then(|s| s.customers_assigned)
        .filter(|&n| n != outbox.len() as u64)
    {
        notes.push(format!(
            "the run assigned {assigned} customers but the outbox holds {} messages; the analysis covers messages sent",
            outbox.len()
        ));
    }
    let fallbacks = outbox.recipients.iter().filter(|r| r.fallback).count();
    if fallbacks > 0 {
        notes.push(format!(
            "{fallbacks} customer(s) received a fallback message; they stay in their assigned arm (intention to treat)"
        ));
    }
    let simulation = if simulated {
        read_simulation(run_dir)
    } else {
        None
    };

    let mut analysis = Analysis {
        simulated,
        source: Source::Run,
        campaign_id: summary.and_then(|s| s.campaign_id.clone()),
        alpha: analysis_options.alpha,
        power: analysis_options.power,
        correction: analysis_options.correction,
        sequential_tuning: analysis_options.sequential_tuning,
        srm_p_value: srm.p_value,
        srm,
        metrics,
        segments,
        timeline,
        cuped: Some(cuped_status),
        next_wave_weights: next_wave,
        events: Some(stats.clone()),
        simulation,
        verdict: Vec::new(),
        notes,
    };
    analysis.verdict = verdict(&analysis);
    Ok(analysis)
}

fn load_covariates(
    run_dir: &Path,
    outbox: &Outbox,
    summary: Option<&RunSummary>,
) -> (Option<Covariates>, CupedStatus) {
    let skipped = |note: String| {
        (
            None,
            CupedStatus {
                applied: false,
                note,
            },
        )
    };
    let Some(summary) = summary else {
        return skipped("CUPED skipped: the run has no summary.json naming a customer file".into());
    };
    let Some(path) = summary.customers_path(run_dir) else {
        return skipped(match &summary.customers_file {
            Some(name) => format!("CUPED skipped: customer file `{name}` not found"),
            None => "CUPED skipped: summary.json names no customer file".into(),
        });
    };
    match Covariates::load(&path, outbox) {
        Ok(covariates) => (
            Some(covariates),
            CupedStatus {
                applied: true,
                note: "CUPED applied with historical_open_rate (opens) and historical_click_rate (clicks, conversions) as covariates".into(),
            },
        ),
        Err(e) => skipped(format!("CUPED skipped: {e}")),
    }
}

fn read_simulation(run_dir: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(run_dir.join(crate::simulate::SIMULATION_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}
