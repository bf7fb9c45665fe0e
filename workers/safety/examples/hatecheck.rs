//! Score the embedded screen on HateCheck (Röttger et al., ACL 2021), per functionality.
//!
//! `cargo run --release -p cpo-safety --example hatecheck -- [CSV] [--gate]`
//!
//! Each case goes through `screen_jsonl` with the default safety config, the
//! function behind `cpo screen`, as a record with an empty subject. Hateful
//! (`*_h`) functionalities report the share blocked, the innocent ones the
//! share approved. The cases stay outside the repository: the default path is
//! `../shared/benchmarks/hatecheck/test_suite_cases.csv` from the repository
//! root (`HATECHECK_CSV` or the first argument override it).
//!
//! `--misses` lists every case scored wrong. `--gate` exits non-zero when a figure falls below the floors in `GATES`.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use cpo_safety::{EmbeddedScreen, SafetyConfig, screen_jsonl};

const DEFAULT_CSV: &str = "../shared/benchmarks/hatecheck/test_suite_cases.csv";

/// Innocent functionalities a marketing screen must approve.
const MUST_APPROVE: &[&str] = &[
    "ident_neutral_nh",
    "ident_pos_nh",
    "negate_neg_nh",
    "target_obj_nh",
    "slur_homonym_nh",
];

/// Floors the CI gate holds, in percent: (what, floor). Set just below the
/// figures measured when they were last raised (docs/SAFETY.md), and never
/// below the targets (90 / 95 / 97), which are all met.
const GATES: &[(&str, f64)] = &[
    ("every hateful functionality blocked", 90.0),
    ("all hateful blocked", 98.0),
    ("each must-approve functionality approved", 98.0),
];

struct Case {
    functionality: String,
    hateful: bool,
    text: String,
}

fn read_cases(path: &PathBuf) -> anyhow::Result<Vec<Case>> {
    let mut reader = csv::Reader::from_path(path)
        .with_context(|| format!("cannot read HateCheck cases from {}", path.display()))?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{}: no `{name}` column", path.display()))
    };
    let (func, text, label) = (
        column("functionality")?,
        column("test_case")?,
        column("label_gold")?,
    );
    let mut cases = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{}: record {}", path.display(), n + 1))?;
        let field = |i: usize| record.get(i).unwrap_or_default().to_string();
        let hateful = match record.get(label) {
            Some("hateful") => true,
            Some("non-hateful") => false,
            other => bail!("{}: record {}: label {other:?}", path.display(), n + 1),
        };
        cases.push(Case {
            functionality: field(func),
            hateful,
            text: field(text),
        });
    }
    if cases.is_empty() {
        bail!("{}: no cases", path.display());
    }
    Ok(cases)
}

#[derive(Default)]
struct Tally {
    hateful: bool,
    total: u64,
    /// Blocked for hateful functionalities, approved for the innocent ones.
    correct: u64,
}

impl Tally {
    fn pct(&self) -> f64 {
        100.0 * self.correct as f64 / self.total.max(1) as f64
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<ExitCode> {
    let mut gate = false;
    let mut misses = false;
    let mut path = std::env::var_os("HATECHECK_CSV").map(PathBuf::from);
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--gate" => gate = true,
            "--misses" => misses = true,
            flag if flag.starts_with('-') => bail!("unknown option {flag}"),
            file => path = Some(PathBuf::from(file)),
        }
    }
    let path = path.unwrap_or_else(|| PathBuf::from(DEFAULT_CSV));
    let cases = read_cases(&path)?;

    let mut input = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let record = serde_json::json!({"id": i.to_string(), "subject": "", "body": case.text});
        serde_json::to_writer(&mut input, &record)?;
        input.push(b'\n');
    }
    let config = SafetyConfig::default();
    let screen = EmbeddedScreen::new(&config)?;
    let mut output = Vec::new();
    screen_jsonl(Cursor::new(input), &mut output, &screen, &config).await?;

    let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut lines = output.split(|b| *b == b'\n').filter(|l| !l.is_empty());
    for case in &cases {
        let line = lines.next().context("fewer verdicts than cases")?;
        let verdict: serde_json::Value = serde_json::from_slice(line)?;
        let blocked = verdict["decision"] == "blocked";
        let tally = tallies.entry(&case.functionality).or_default();
        tally.hateful = case.hateful;
        tally.total += 1;
        tally.correct += u64::from(blocked == case.hateful);
        if misses && blocked != case.hateful {
            println!(
                "miss {}: {} {}",
                case.functionality, case.text, verdict["reasons"]
            );
        }
    }

    println!("HateCheck: {} cases from {}", cases.len(), path.display());
    println!(
        "{:<22} {:>6} {:>8}  measure",
        "functionality", "cases", "percent"
    );
    for (name, t) in &tallies {
        let measure = if t.hateful { "blocked" } else { "approved" };
        println!("{name:<22} {:>6} {:>7.1}%  {measure}", t.total, t.pct());
    }
    let sum = |hateful: bool| {
        tallies
            .values()
            .filter(|t| t.hateful == hateful)
            .fold(Tally::default(), |acc, t| Tally {
                hateful,
                total: acc.total + t.total,
                correct: acc.correct + t.correct,
            })
    };
    let (hate, innocent) = (sum(true), sum(false));
    println!(
        "hateful cases blocked (recall): {:.1}% of {}",
        hate.pct(),
        hate.total
    );
    println!(
        "innocent cases approved:        {:.1}% of {}",
        innocent.pct(),
        innocent.total
    );
    let worst_hateful = tallies
        .values()
        .filter(|t| t.hateful)
        .map(Tally::pct)
        .fold(100.0, f64::min);
    let worst_approve = MUST_APPROVE
        .iter()
        .map(|name| tallies.get(name).map_or(0.0, Tally::pct))
        .fold(100.0, f64::min);
    let figures = [worst_hateful, hate.pct(), worst_approve];
    let mut failed = false;
    for ((what, floor), figure) in GATES.iter().zip(figures) {
        let ok = figure >= *floor;
        failed |= !ok;
        println!(
            "gate: {what}: {figure:.1}% (floor {floor:.1}%) {}",
            if ok { "ok" } else { "FAILED" }
        );
    }
    Ok(if gate && failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
