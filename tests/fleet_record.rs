//! The fleet obeys and reports the system of record (a PostgreSQL database of
//! the test's own): suppressions written to the store before a campaign exclude
//! with their reasons, a second campaign to the same audience is over a cap of
//! one, and `cpo status` and any number of concurrent `cpo collect`s read the
//! same counts from the store, consuming nothing.

mod common;

use std::path::Path;
use std::process::{Output, Stdio};

use common::{Fleet, check_collected, repo};
use cpo_shared::privacy::AddressHasher;
use cpo_shared::store::{self, StoreConfig, Suppression, SuppressionKey};
use serde_json::Value;

fn var(fleet: &Fleet, key: &str) -> String {
    fleet
        .vars
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("the harness sets {key}"))
}

fn first_customers(n: usize) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("data/customers.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let id = header.iter().position(|h| *h == "customer_id").unwrap();
    let email = header.iter().position(|h| *h == "email").unwrap();
    let consent = header.iter().position(|h| *h == "consent").unwrap();
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| matches!(f[consent], "true" | "1" | "yes"))
        .take(n)
        .map(|f| (f[id].to_string(), f[email].to_string()))
        .collect()
}

fn collect(fleet: &Fleet, campaign: &str, out: &Path) -> std::process::Child {
    fleet
        .cpo()
        .args([
            "collect",
            campaign,
            "--out",
            out.to_str().unwrap(),
            "--outbox",
        ])
        .arg(fleet.outbox())
        .args(["--timeout", "180"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finished(fleet: &Fleet, child: std::process::Child) -> Output {
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "collect: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        fleet.logs()
    );
    output
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_obeys_the_record_and_status_and_collect_read_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::new(
        tmp.path(),
        "record",
        &[
            ("CPO__POLICY__FREQUENCY_CAP__MAX_MESSAGES", "1"),
            ("CPO__POLICY__FREQUENCY_CAP__WINDOW_DAYS", "7"),
        ],
    );
    let url = var(&fleet, "CPO__STORE__URL");
    assert!(url.starts_with("postgres://"), "{url}");
    // The store exists before any worker: the first connect migrates it.
    let store = store::connect(&StoreConfig {
        url,
        pool_size: 2,
        ..StoreConfig::default()
    })
    .await
    .expect("the fleet's PostgreSQL database");
    let hasher = AddressHasher::new(var(&fleet, "CPO__SECURITY__ADDRESS_KEY"));
    let people = first_customers(3);
    let row = |key, reason: &str| Suppression {
        key,
        reason: reason.into(),
        source: "test".into(),
        created_at_ms: 1,
    };
    store
        .suppress(&[
            row(
                SuppressionKey::Customer(people[0].0.clone()),
                "unsubscribed",
            ),
            row(
                SuppressionKey::AddressHash(hasher.hash(&people[1].1)),
                "bounced",
            ),
            row(SuppressionKey::Customer(people[2].0.clone()), "complained"),
        ])
        .await
        .unwrap();

    fleet.start_all();
    fleet.enqueue(None);
    // Two collectors at once and a status reader: nothing is consumed, all agree.
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (first, second) = (
        collect(&fleet, "autumn-2026", &a),
        collect(&fleet, "autumn-2026", &b),
    );
    finished(&fleet, first);
    finished(&fleet, second);
    let (summary, outbox) = check_collected(&a, 250);
    assert_eq!(read(&a.join("summary.json")), read(&b.join("summary.json")));
    let reasons = &summary["excluded_by_reason"];
    for reason in ["unsubscribed", "bounced", "complained"] {
        assert_eq!(reasons[reason], 1, "{summary}");
    }
    assert!(
        outbox
            .iter()
            .all(|m| people.iter().all(|(id, _)| m["customer_id"] != *id))
    );

    let status = fleet
        .cpo()
        .args(["status", "autumn-2026", "--json"])
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["state"], "complete", "{status}");
    assert_eq!(status["outstanding"], 0);
    let counts = store.campaign_counts("autumn-2026").await.unwrap();
    assert_eq!(status["record"]["assigned"], counts.assigned);
    assert_eq!(summary["customers_assigned"], counts.assigned);
    assert_eq!(status["record"]["excluded_by_reason"]["bounced"], 1);
    // segmentation's exclusions are on record too: the store accounts for everyone
    assert_eq!(counts.customers_total, Some(250));
    assert_eq!(counts.outstanding(), Some(0));
    assert_eq!(
        counts.excluded(),
        summary["customers_excluded"].as_u64().unwrap()
    );
    assert_eq!(status["record"]["customers_total"], 250);
    assert_eq!(counts.assigned, outbox.len() as u64);
    let record = store
        .campaign("autumn-2026")
        .await
        .unwrap()
        .expect("enqueue recorded it");
    assert!(record.request.contains("Northwind"));

    // The same audience again under another id: everyone mailed is over the cap of 1.
    let text = std::fs::read_to_string(repo().join("data/campaign.yaml")).unwrap();
    let again = tmp.path().join("again.yaml");
    std::fs::write(&again, text.replace("autumn-2026", "autumn-again")).unwrap();
    let enqueue = fleet.cpo().arg("enqueue").arg(&again).output().unwrap();
    assert!(enqueue.status.success(), "{enqueue:?}");
    let c = tmp.path().join("c");
    finished(&fleet, collect(&fleet, "autumn-again", &c));
    let (summary_again, outbox_again) = check_collected(&c, 250);
    assert!(
        outbox_again.is_empty(),
        "nobody may be mailed twice this week"
    );
    assert_eq!(
        summary_again["excluded_by_reason"]["frequency_cap"], counts.assigned,
        "{summary_again}"
    );
    let human = fleet
        .cpo()
        .args(["status", "autumn-again"])
        .output()
        .unwrap();
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(
        human.starts_with("campaign autumn-again: complete"),
        "{human}"
    );
    assert!(
        human.contains(&format!("frequency_cap {}", counts.assigned)),
        "{human}"
    );
    fleet.teardown();
}

#[test]
fn two_delivery_replicas_one_collect_and_the_store_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::new(
        tmp.path(),
        "replicas",
        &[("CPO__SEGMENTATION__BATCH_SIZE", "10")],
    );
    fleet.start_all();
    let second = fleet.start_replica("delivery", "delivery-2");
    fleet.enqueue(None);
    let out = tmp.path().join("out");
    let child = fleet
        .cpo()
        .args([
            "collect",
            "autumn-2026",
            "--out",
            out.to_str().unwrap(),
            "--outbox",
        ])
        .arg(fleet.outbox())
        .arg("--outbox")
        .arg(&second)
        .args(["--timeout", "180"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finished(&fleet, child);
    let (summary, outbox) = check_collected(&out, 250);
    let lines = |p: &Path| {
        std::fs::read_to_string(p)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let (one, two) = (lines(&fleet.outbox()), lines(&second));
    assert!(
        one > 0 && two > 0,
        "both replicas delivered: {one} + {two}\n{}",
        fleet.logs()
    );
    assert_eq!(
        (one + two) as u64,
        summary["customers_assigned"].as_u64().unwrap()
    );
    let status = fleet
        .cpo()
        .args(["status", "autumn-2026", "--json"])
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["state"], "complete", "{status}");
    assert_eq!(status["record"]["assigned"], outbox.len() as u64);
    fleet.teardown();
}
