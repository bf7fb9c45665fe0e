//! Hostile campaign input through the real `cpo` binary: customer CSVs with
//! stray quotes and shared addresses, and campaign files with bad tones, keys
//! and ids.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const HEADER: &str = "customer_id,first_name,email,age,location,tier,purchase_frequency,avg_order_value,last_engagement_days,historical_open_rate,historical_click_rate,consent";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cpo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cpo"))
        .args(args)
        .current_dir(repo())
        .env_remove("CPO_CONFIG")
        .output()
        .expect("cpo runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `cpo run` of the bundled campaign (or `campaign`) on `csv`; the summary.
fn run(csv: &Path, out: &Path, campaign: Option<&Path>) -> Value {
    let bundled = repo().join("data/campaign.yaml");
    let campaign = campaign.unwrap_or(&bundled);
    let output = cpo(&[
        "run",
        "--quiet",
        "--campaign",
        campaign.to_str().unwrap(),
        "--customers",
        csv.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "cpo run failed: {}", text(&output));
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn row(id: &str, first_name: &str, email: &str) -> String {
    format!("{id},{first_name},{email},35,Austin,gold,6,120.50,10,0.40,0.12,true")
}

/// The accounting invariant and the privacy one: every physical data line is
/// one customer, assigned or excluded; no message carries an address other
/// than its recipient's.
fn assert_accounted(csv: &Path, out: &Path, summary: &Value) -> (Vec<Value>, Vec<Value>) {
    let data_lines = std::fs::read_to_string(csv).unwrap().lines().count() as u64 - 1;
    let n = |k: &str| summary[k].as_u64().unwrap();
    assert_eq!(n("customers_total"), data_lines, "{summary}");
    assert_eq!(
        n("customers_assigned") + n("customers_excluded"),
        data_lines,
        "{summary}"
    );
    let outbox = jsonl(&out.join("outbox.jsonl"));
    let exclusions = jsonl(&out.join("exclusions.jsonl"));
    assert_eq!(outbox.len() as u64, n("customers_assigned"));
    assert_eq!(exclusions.len() as u64, n("customers_excluded"));
    for message in &outbox {
        let to = message["to"].as_str().unwrap();
        for field in ["body", "subject"] {
            let rest = message[field].as_str().unwrap().replace(to, "");
            assert!(!rest.contains('@'), "another address in {field}: {message}");
        }
    }
    (outbox, exclusions)
}

#[test]
fn a_stray_quote_breaks_one_row_and_the_rows_after_it_are_read() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = [
        row("Q01", "Ann", "ann@example.com"),
        row("Q02", "\"Bob", "bob@example.com"),
        row("Q03", "Carol", "carol@example.com"),
        row("Q04", "\"Dan, dan@example.com\"", "dan@example.com"),
        row("Q05", "Eve", "\"eve@example.com,mallory@example.net\""),
        row("Q06", "Fay", "fay@example.com"),
        row("Q07", "Gus", "gus@example.com"),
        row("Q08", "Hal\"", "hal@example.com"),
    ];
    let csv = tmp.path().join("customers.csv");
    std::fs::write(&csv, format!("{HEADER}\n{}\n", rows.join("\n"))).unwrap();
    // Q07 is suppressed by id: today's bug mailed Q02's message to the last
    // swallowed row's address, whatever that row's suppression said.
    let campaign = tmp.path().join("campaign.yaml");
    let bundled = std::fs::read_to_string(repo().join("data/campaign.yaml")).unwrap();
    std::fs::write(
        &campaign,
        bundled.replace("suppressions: []", "suppressions: [Q07]"),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let summary = run(&csv, &out, Some(&campaign));
    let (outbox, exclusions) = assert_accounted(&csv, &out, &summary);

    let excluded: BTreeMap<u64, (&str, &str)> = exclusions
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                (e["reason"].as_str().unwrap(), e["detail"].as_str().unwrap()),
            )
        })
        .collect();
    let detail = |line: u64| excluded.get(&line).map(|(_, d)| *d).unwrap_or("");
    assert!(detail(3).contains("unbalanced quote"), "{excluded:?}");
    assert!(
        detail(5).contains("first_name: holds an email address"),
        "{excluded:?}"
    );
    assert!(
        detail(6).contains("email: not a valid address"),
        "{excluded:?}"
    );
    assert_eq!(excluded[&8].0, "suppressed");
    // a quote inside an unquoted field is text, as in any CSV reader
    let sent: HashSet<&str> = outbox
        .iter()
        .map(|m| m["customer_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        sent,
        HashSet::from(["Q01", "Q03", "Q06", "Q08"]),
        "{outbox:?}"
    );
    for message in &outbox {
        let id = message["customer_id"].as_str().unwrap();
        let expected = rows.iter().find(|r| r.starts_with(id)).unwrap();
        assert!(expected.contains(message["to"].as_str().unwrap()));
    }
}

#[test]
fn fifty_thousand_rows_with_stray_quotes_are_all_accounted_for() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = 50_000u64;
    let mut generated = Vec::new();
    cpo_segmentation::generate_customers(rows, 11, &mut generated).unwrap();
    let generated = String::from_utf8(generated).unwrap();
    let mut csv_text = String::new();
    let mut broken = Vec::new();
    for (i, line) in generated.lines().enumerate() {
        // every 997th row gets a quote opened and never closed, in its name
        // or in a later field, and the very last row too
        let stray = i > 0 && (i % 997 == 0 || i as u64 == rows);
        if stray {
            let mut fields: Vec<String> = line.split(',').map(String::from).collect();
            let at = if i % 2 == 0 { 1 } else { 4 };
            fields[at].insert(0, '"');
            writeln!(csv_text, "{}", fields.join(",")).unwrap();
            broken.push(i as u64 + 1);
        } else {
            writeln!(csv_text, "{line}").unwrap();
        }
    }
    let csv = tmp.path().join("customers.csv");
    std::fs::write(&csv, &csv_text).unwrap();
    let out = tmp.path().join("out");
    let summary = run(&csv, &out, None);
    let (_, exclusions) = assert_accounted(&csv, &out, &summary);
    let unbalanced: Vec<u64> = exclusions
        .iter()
        .filter(|e| e["detail"].as_str().unwrap().contains("unbalanced quote"))
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(unbalanced.len(), broken.len());
    let unbalanced: HashSet<u64> = unbalanced.into_iter().collect();
    assert_eq!(unbalanced, broken.iter().copied().collect());
}

#[test]
fn one_address_under_several_customer_ids_gets_one_message() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = [
        row("D01", "Ann", "ann@example.com"),
        row("D02", "Annie", "Ann@Example.COM"),
        row("D03", "Bob", "bob@example.com"),
        row("D04", "Ann", "ann@example.com"),
    ];
    let csv = tmp.path().join("customers.csv");
    std::fs::write(&csv, format!("{HEADER}\n{}\n", rows.join("\n"))).unwrap();
    let out = tmp.path().join("out");
    let summary = run(&csv, &out, None);
    let (outbox, exclusions) = assert_accounted(&csv, &out, &summary);
    let sent: Vec<&str> = outbox.iter().map(|m| m["to"].as_str().unwrap()).collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    let duplicates: Vec<(u64, &str)> = exclusions
        .iter()
        .map(|e| (e["line"].as_u64().unwrap(), e["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        duplicates,
        [(3, "duplicate_email"), (5, "duplicate_email")],
        "{exclusions:?}"
    );
    assert_eq!(summary["excluded_by_reason"]["duplicate_email"], 2);
}

/// `cpo run` (or `enqueue`) on the bundled campaign edited by `edit`; it must
/// fail, and its output is returned.
fn refused(
    tmp: &Path,
    command: &str,
    edit: impl Fn(&str) -> String,
    env: &[(&str, &str)],
) -> String {
    let bundled = std::fs::read_to_string(repo().join("data/campaign.yaml")).unwrap();
    let file = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile_in(tmp)
        .unwrap();
    std::fs::write(file.path(), edit(&bundled)).unwrap();
    let campaign = file.path();
    let out = tmp.join("out");
    let mut args = vec![command, campaign.to_str().unwrap()];
    if command == "run" {
        args = vec!["run", "--quiet", "--campaign", campaign.to_str().unwrap()];
        args.extend(["--out", out.to_str().unwrap()]);
    }
    let output = Command::new(env!("CARGO_BIN_EXE_cpo"))
        .args(&args)
        .current_dir(repo())
        .env_remove("CPO_CONFIG")
        .envs(env.iter().copied())
        .output()
        .expect("cpo runs");
    assert!(!output.status.success(), "accepted: {}", text(&output));
    assert!(!out.join("outbox.jsonl").exists(), "ran anyway");
    text(&output)
}

#[test]
fn empty_tones_are_refused_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let edit = |c: &str| {
        c.replace("tones: [urgent, informational, friendly]", "tones: []")
            .replace("  urgent: 1.0\n  informational: 1.0\n  friendly: 1.0\n", "")
    };
    let err = refused(tmp.path(), "run", edit, &[]);
    assert!(err.contains("tones is empty"), "{err}");
}

#[test]
fn unknown_keys_in_the_campaign_and_the_config_are_named_with_a_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let misspelt = |c: &str| c.replace("tones:", "toness:");
    let err = refused(tmp.path(), "run", misspelt, &[]);
    assert!(
        err.contains("unknown key `toness` (did you mean `tones`?"),
        "{err}"
    );
    let same = |c: &str| c.to_string();
    let err = refused(
        tmp.path(),
        "run",
        same,
        &[("CPO__SEGMENTATION__BATCHSIZE", "5")],
    );
    assert!(
        err.contains("unknown key `segmentation.batchsize` (did you mean `batch_size`?"),
        "{err}"
    );
    let err = refused(
        tmp.path(),
        "run",
        same,
        &[("CPO__SEGMENTATON__BATCH_SIZE", "5")],
    );
    assert!(
        err.contains("unknown section `segmentaton` (did you mean `segmentation`?)"),
        "{err}"
    );
    let config = tmp.path().join("cpo.yaml");
    std::fs::write(&config, "runtime:\n  max_attempt: 3\n").unwrap();
    let config = config.to_str().unwrap().to_string();
    let err = refused(tmp.path(), "run", same, &[("CPO_CONFIG", &config)]);
    assert!(err.contains("did you mean `max_attempts`?"), "{err}");
}

#[test]
fn a_campaign_id_that_is_a_path_is_refused_by_run_and_enqueue() {
    let tmp = tempfile::tempdir().unwrap();
    let escape = "cpo-campaign-id-escape-test";
    for id in [format!("../../{escape}"), format!("/tmp/{escape}")] {
        let edit = |c: &str| c.replace("campaign_id: autumn-2026", &format!("campaign_id: {id}"));
        for command in ["run", "enqueue"] {
            let err = refused(tmp.path(), command, edit, &[]);
            assert!(
                err.contains("is not a valid campaign id"),
                "{command}: {err}"
            );
        }
        // `cpo run` without --out would have written to out/<campaign-id>/
        let default_out = repo().join("out").join(&id);
        assert!(
            !default_out.exists(),
            "{} was created",
            default_out.display()
        );
    }
}
