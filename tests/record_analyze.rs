//! `cpo analyze --campaign ID` reads the campaign's assignments and events from
//! the store and gives the same analysis as `cpo analyze --run DIR` on the
//! run's outbox and events files, for the same data.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cpo_analysis::events::time::parse_rfc3339;
use cpo_shared::store::{self, EventRecord, StoreConfig};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cpo(dir: &Path, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_cpo"))
        .current_dir(dir)
        .env_remove("CPO_CONFIG")
        .env_remove("CPO__STORE__URL")
        .args(args)
        .output()
        .expect("cpo runs");
    assert!(
        output.status.success(),
        "cpo {args:?}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_and_the_files_give_the_same_analysis() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let path = |p: &str| repo().join(p).display().to_string();
    let config = path("data/cpo.yaml");
    cpo(
        dir,
        &[
            "--config",
            &config,
            "run",
            "--quiet",
            "--campaign",
            &path("data/campaign.yaml"),
            "--customers",
            &path("data/customers.csv"),
            "--content",
            &path("data/content"),
            "--out",
            "out/run",
        ],
    );
    cpo(dir, &["simulate", "--run", "out/run", "--seed", "3"]);

    // The events the files hold, recorded in the store as the events stage would.
    let store = store::connect(&StoreConfig {
        url: format!("sqlite://{}/out/cpo.sqlite", dir.display()),
        ..StoreConfig::default()
    })
    .await
    .unwrap();
    let events = std::fs::read_to_string(dir.join("out/run/events.jsonl")).unwrap();
    let mut recorded = 0;
    for line in events.lines() {
        let event: Value = serde_json::from_str(line).unwrap();
        let seconds = parse_rfc3339(event["timestamp"].as_str().unwrap()).unwrap();
        let new = store
            .record_event(&EventRecord {
                provider: "cpo".into(),
                provider_event_id: event["event_id"].as_str().unwrap().into(),
                event_type: event["type"].as_str().unwrap().into(),
                message_id: event["message_id"].as_str().map(str::to_string),
                occurred_at_ms: seconds * 1000,
                raw: line.into(),
            })
            .await
            .unwrap();
        recorded += usize::from(new);
    }
    assert!(recorded > 100, "{recorded} events");
    drop(store);

    cpo(
        dir,
        &["analyze", "--run", "out/run", "--out", "out/from-files"],
    );
    // Into the run directory, where the simulation's truth file is, as for --run.
    cpo(
        dir,
        &["analyze", "--campaign", "autumn-2026", "--out", "out/run"],
    );
    let files = read_json(&dir.join("out/from-files/analysis.json"));
    let stored = read_json(&dir.join("out/run/analysis.json"));
    assert!(
        files["metrics"].as_array().is_some_and(|m| !m.is_empty()),
        "{files}"
    );
    assert_eq!(files["simulated"], true);
    assert_eq!(stored, files, "the store gives the analysis the files give");
    let report = std::fs::read_to_string(dir.join("out/run/report.md")).unwrap();
    assert!(report.contains("SIMULATED"), "labelled simulated");

    // A campaign the store does not know is refused with its id.
    let output = Command::new(env!("CARGO_BIN_EXE_cpo"))
        .current_dir(dir)
        .env_remove("CPO__STORE__URL")
        .args(["analyze", "--campaign", "nobody", "--out", "out/x"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("no assignments of campaign `nobody`"), "{err}");
}
