//! The throughput budget: a million customers generated in a few seconds, and
//! both passes (batches encoded as the stage publishes them) well under 2 s.
//! Run in release: `cargo test --release -p cpo-segmentation --test perf -- --ignored --nocapture`.

use std::io::BufWriter;
use std::time::Instant;

use cpo_segmentation::encode::BatchEncoder;
use cpo_segmentation::scan::{CsvFile, Plan, pass_one, pass_two};
use cpo_segmentation::screen::Suppressions;
use cpo_segmentation::{RuleSet, generate_customers};
use cpo_shared::model::{CampaignContext, default_tones};

/// CPU seconds of this process, when the OS tells (Linux): on a machine shared
/// with other builds, CPU time says more about the code than wall time does.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; 100 Hz ticks.
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

#[test]
#[ignore = "timing; run in release"]
fn a_million_customers_within_budget() {
    const N: u64 = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("million.csv");

    let started = Instant::now();
    let file = BufWriter::new(std::fs::File::create(&path).unwrap());
    generate_customers(N, 42, file).unwrap();
    let generated = started.elapsed();

    let plan = Plan {
        rules: RuleSet::bundled().unwrap(),
        suppressions: Suppressions::new(&["C0000017".to_string(), "x@example.com".to_string()]),
        batch_size: 1000,
    };
    let context = CampaignContext {
        campaign_id: "perf".into(),
        name: "perf".into(),
        objective: "perf".into(),
        call_to_action_url: None,
        tones: default_tones(),
        arm_weights: Default::default(),
    };
    let source = CsvFile::new(path);
    let cpu_started = cpu_seconds();
    let started = Instant::now();
    let one = pass_one(&source, &plan).unwrap();
    let first = started.elapsed();
    let mut bytes = 0usize;
    let mut encoder = BatchEncoder::new(context, plan.batch_size, |out| {
        bytes += out.body.len();
        Ok(())
    });
    let two = pass_two(&source, &plan, &one, &mut encoder).unwrap();
    let both = started.elapsed();
    let cpu = cpu_seconds()
        .zip(cpu_started)
        .map(|(end, start)| end - start);
    one.check(&two).unwrap();
    println!(
        "generate {generated:?}; pass one {first:?}; both passes {both:?} (cpu {cpu:?} s); {} batches, {} MB of batches",
        two.batches,
        bytes / 1_000_000
    );
    assert_eq!(one.customers_total, N);
    assert!(
        generated.as_secs_f64() < 5.0,
        "generation took {generated:?}"
    );
    let passes = cpu.unwrap_or(both.as_secs_f64());
    assert!(passes < 2.0, "two passes took {both:?} ({cpu:?} s of cpu)");
}
