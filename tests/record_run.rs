//! `cpo run` obeys the record it keeps in `out/cpo.sqlite` (relative to the
//! working directory): a suppression added to the store between two runs and
//! the frequency cap carry over to the next run, with their reasons, and every
//! customer is still accounted for.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cpo_shared::privacy::AddressHasher;
use cpo_shared::store::{self, StoreConfig, Suppression, SuppressionKey};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A directory with a config (the demo's plus `policy`) and campaign files.
struct Workdir {
    dir: tempfile::TempDir,
}

impl Workdir {
    fn new(max_messages: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let demo = std::fs::read_to_string(repo().join("data/cpo.yaml")).unwrap();
        let config = format!(
            "{demo}\npolicy:\n  frequency_cap: {{max_messages: {max_messages}, window_days: 7}}\n"
        );
        std::fs::write(dir.path().join("cpo.yaml"), config).unwrap();
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `cpo run` of campaign `id` (the bundled campaign under another id), in this directory.
    fn run(&self, id: &str) -> (Output, Value, Vec<Value>) {
        let text = std::fs::read_to_string(repo().join("data/campaign.yaml")).unwrap();
        let campaign = self.path().join(format!("{id}.yaml"));
        std::fs::write(
            &campaign,
            text.replace("campaign_id: autumn-2026", &format!("campaign_id: {id}")),
        )
        .unwrap();
        let out = format!("out/{id}");
        let output = Command::new(env!("CARGO_BIN_EXE_cpo"))
            .current_dir(self.path())
            .env_remove("CPO_CONFIG")
            .env_remove("CPO__STORE__URL")
            .args(["--config", "cpo.yaml", "run", "--quiet", "--campaign"])
            .arg(&campaign)
            .arg("--customers")
            .arg(repo().join("data/customers.csv"))
            .arg("--content")
            .arg(repo().join("data/content"))
            .args(["--out", &out])
            .output()
            .expect("cpo runs");
        let read = |name: &str| self.path().join(&out).join(name);
        let summary: Value = match std::fs::read_to_string(read("summary.json")) {
            Ok(text) => serde_json::from_str(&text).unwrap(),
            Err(e) => panic!(
                "no summary ({e}): {}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        };
        let exclusions = std::fs::read_to_string(read("exclusions.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (output, summary, exclusions)
    }

    async fn store(&self) -> std::sync::Arc<dyn store::Store> {
        let url = format!("sqlite://{}/out/cpo.sqlite", self.path().display());
        store::connect(&StoreConfig {
            url,
            ..StoreConfig::default()
        })
        .await
        .expect("the run left its SQLite store in out/cpo.sqlite")
    }

    fn address_hasher(&self) -> AddressHasher {
        let key = std::fs::read_to_string(self.path().join("out/cpo.sqlite.address.key"))
            .expect("the run kept its generated address key beside the store");
        AddressHasher::new(key.trim())
    }
}

fn accounted(summary: &Value) -> u64 {
    summary["customers_assigned"].as_u64().unwrap()
        + summary["customers_excluded"].as_u64().unwrap()
}

fn reasons(exclusions: &[Value]) -> BTreeMap<String, String> {
    exclusions
        .iter()
        .filter_map(|e| {
            Some((
                e["customer_id"].as_str()?.to_string(),
                e["reason"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// Customers and emails of the bundled CSV.
fn customers() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("data/customers.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let id = header.iter().position(|h| *h == "customer_id").unwrap();
    let email = header.iter().position(|h| *h == "email").unwrap();
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[id].to_string(), f[email].to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_in_the_same_directory_obeys_suppressions_and_the_cap() {
    let work = Workdir::new(1);
    let (output, first, first_exclusions) = work.run("spring-a");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(accounted(&first), 250, "{first}");
    let assigned_first: Vec<String> = {
        let store = work.store().await;
        let rows = store.assignments_for_campaign("spring-a").await.unwrap();
        assert_eq!(
            rows.len() as u64,
            first["customers_assigned"].as_u64().unwrap()
        );
        let record = store
            .campaign("spring-a")
            .await
            .unwrap()
            .expect("campaign record");
        assert_eq!(record.state, "complete");
        assert!(record.request.contains("Northwind"), "{}", record.request);
        rows.into_iter().map(|a| a.customer_id).collect()
    };
    let excluded_first = reasons(&first_exclusions);

    // Between the runs: one unsubscribe by customer id, a bounce known only by
    // the address (as the events stage records it), a complaint, a manual one.
    let people = customers();
    let assigned: Vec<&(String, String)> = people
        .iter()
        .filter(|(id, _)| assigned_first.contains(id))
        .take(4)
        .collect();
    let hasher = work.address_hasher();
    let row = |key, reason: &str| Suppression {
        key,
        reason: reason.into(),
        source: "test".into(),
        created_at_ms: 1,
    };
    work.store()
        .await
        .suppress(&[
            row(
                SuppressionKey::Customer(assigned[0].0.clone()),
                "unsubscribed",
            ),
            row(
                SuppressionKey::AddressHash(hasher.hash(&assigned[1].1)),
                "bounced",
            ),
            row(
                SuppressionKey::Customer(assigned[2].0.clone()),
                "complained",
            ),
            row(SuppressionKey::Customer(assigned[3].0.clone()), "operator"),
        ])
        .await
        .unwrap();

    let (output, second, exclusions) = work.run("spring-b");
    // Everyone mailed by the first run is over the cap of 1: nothing to deliver.
    assert!(
        matches!(output.status.code(), Some(0) | Some(7)),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        accounted(&second),
        250,
        "every customer accounted for: {second}"
    );
    let got = reasons(&exclusions);
    assert_eq!(got[&assigned[0].0], "unsubscribed");
    assert_eq!(got[&assigned[1].0], "bounced");
    assert_eq!(got[&assigned[2].0], "complained");
    assert_eq!(got[&assigned[3].0], "suppressed");
    for id in &assigned_first[..] {
        if assigned.iter().all(|(a, _)| a != id) {
            assert_eq!(
                got.get(id).map(String::as_str),
                Some("frequency_cap"),
                "{id}"
            );
        }
    }
    // who was excluded at segmentation the first time still is, for the same reason
    for (id, reason) in &excluded_first {
        assert_eq!(got.get(id), Some(reason), "{id}");
    }
    let by_reason = &second["excluded_by_reason"];
    assert_eq!(by_reason["unsubscribed"], 1);
    assert_eq!(by_reason["bounced"], 1);
    assert_eq!(by_reason["complained"], 1);
    assert_eq!(by_reason["suppressed"], 1);
    assert_eq!(
        by_reason["frequency_cap"].as_u64().unwrap(),
        assigned_first.len() as u64 - 4
    );
    // the store says the same
    let counts = work
        .store()
        .await
        .campaign_counts("spring-b")
        .await
        .unwrap();
    assert_eq!(
        counts.excluded_by_reason["frequency_cap"],
        assigned_first.len() as u64 - 4
    );
    assert_eq!(counts.excluded_by_reason["unsubscribed"], 1);
    assert_eq!(
        counts.assigned,
        second["customers_assigned"].as_u64().unwrap()
    );
    // every customer accounted for in the store too, segmentation's exclusions included
    assert_eq!(counts.customers_total, Some(250));
    assert_eq!(counts.outstanding(), Some(0));
    assert_eq!(
        counts.excluded(),
        second["customers_excluded"].as_u64().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fourth_campaign_to_the_same_audience_is_over_a_cap_of_three() {
    let work = Workdir::new(3);
    let mut assigned = Vec::new();
    for id in ["w1", "w2", "w3", "w4"] {
        let (output, summary, exclusions) = work.run(id);
        assert_eq!(accounted(&summary), 250, "{id}: {summary}");
        let capped = exclusions
            .iter()
            .filter(|e| e["reason"] == "frequency_cap")
            .count();
        if id == "w4" {
            assert_eq!(output.status.code(), Some(7), "nothing left to deliver");
            assert_eq!(summary["customers_assigned"], 0, "{summary}");
            assert_eq!(capped as u64, assigned[0], "{summary}");
            assert_eq!(summary["excluded_by_reason"]["frequency_cap"], assigned[0]);
        } else {
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            assert_eq!(capped, 0, "{id}");
            assigned.push(summary["customers_assigned"].as_u64().unwrap());
        }
    }
    assert!(
        assigned[0] > 200 && assigned.iter().all(|n| *n == assigned[0]),
        "{assigned:?}"
    );
    let counts = work.store().await.campaign_counts("w4").await.unwrap();
    assert_eq!(counts.excluded_by_reason["frequency_cap"], assigned[0]);
    assert_eq!(counts.assigned, 0);
}
