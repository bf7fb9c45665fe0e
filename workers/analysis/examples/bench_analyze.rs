//! Benchmark: analysis of a 1M-customer campaign's events.
//!
//! `cargo run --release -p cpo-analysis --example bench_analyze -- [CUSTOMERS] [DIR]`
//!
//! Synthesizes a run (outbox rows with 400-character bodies, a customer file for
//! CUPED) and simulated events once into DIR (default: the system temp dir), then
//! times the whole `analyze_run` (reading the outbox, the events and the customer
//! file, joining, every statistic for 3 metrics x 4 arms x 3 segments) and the
//! report writing, five times each.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cpo_analysis::run::{RunOptions, analyze_run};
use cpo_analysis::synth::{SyntheticRun, write_run};
use cpo_analysis::{AnalysisOptions, SimulationConfig, simulate_run, write_reports};

/// Processor time of this process so far (user + system), where /proc has it:
/// on a shared machine it shows the work done, independent of waiting for a core.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn megabytes(path: &std::path::Path) -> f64 {
    std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / 1e6)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let customers: usize = args
        .next()
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join(format!("cpo-analysis-bench-{customers}")));
    if !dir.join("events.jsonl").is_file() {
        let started = Instant::now();
        write_run(
            &dir,
            &SyntheticRun {
                customers,
                ..SyntheticRun::default()
            },
        )?;
        simulate_run(&dir, &SimulationConfig::default(), Some(1), None)?;
        println!(
            "synthesized {customers} customers in {:.1?} (not timed below)",
            started.elapsed()
        );
    }
    println!(
        "inputs: outbox {:.0} MB, events {:.0} MB, customers {:.0} MB",
        megabytes(&dir.join("outbox.jsonl")),
        megabytes(&dir.join("events.jsonl")),
        megabytes(&dir.join("customers.csv"))
    );
    let options = RunOptions {
        analysis: AnalysisOptions {
            target_relative_lift: Some(0.1),
            ..AnalysisOptions::default()
        },
        ..RunOptions::default()
    };
    let out = dir.join("reports");
    let mut analyze_times = Vec::new();
    let mut cpu_times = Vec::new();
    let mut report_times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let cpu_before = cpu_seconds();
        let analysis = analyze_run(&dir, &options)?;
        analyze_times.push(started.elapsed());
        if let (Some(before), Some(after)) = (cpu_before, cpu_seconds()) {
            cpu_times.push(after - before);
        }
        let started = Instant::now();
        write_reports(&analysis, &out)?;
        report_times.push(started.elapsed());
        assert!(
            analysis.simulated,
            "bench data is simulated and must say so"
        );
    }
    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    println!(
        "analyze_run ({customers} customers): median {:.3?}, best {:.3?}; reports: median {:.3?}",
        median(&mut analyze_times),
        analyze_times[0],
        median(&mut report_times)
    );
    if !cpu_times.is_empty() {
        cpu_times.sort_by(f64::total_cmp);
        println!(
            "processor time per analysis (all threads): median {:.2}s on {} core(s)",
            cpu_times[cpu_times.len() / 2],
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
    }
    Ok(())
}
