//! The engagement loop with the real binary, end to end: a one-click
//! unsubscribe POSTed over HTTP to `cpo worker gateway` excludes that customer
//! from the next `cpo run` (same store.url), with every customer accounted
//! for; and a gateway killed with -9 while an ESP keeps posting signed SendGrid
//! batches loses nothing and stores nothing twice once the ESP's retries reach
//! the restarted gateway (`cpo worker events` writing into PostgreSQL).

mod common;
mod engagement;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use engagement::*;
use serde_json::{Value, json};

fn read_logs(dir: &Path, files: &[&str]) -> String {
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            format!("--- {f}\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_one_click_unsubscribe_over_http_excludes_the_customer_from_the_next_run() {
    check_services();
    let tmp = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("e2eu");
    let mut vars = env(&prefix, tmp.path());
    // env() made a PostgreSQL database; this test's record is a SQLite file.
    drop_pg_database(&prefix);
    let url = format!("sqlite://{}/cpo.sqlite", tmp.path().display());
    for (k, v) in [
        ("CPO__STORE__URL", url.as_str()),
        ("CPO__SECURITY__ADDRESS_KEY", "e2e-address-key"),
        ("CPO__SECURITY__UNSUBSCRIBE_KEY", "e2e-unsubscribe-key"),
        ("CPO__GATEWAY__UNSUBSCRIBE", "true"),
    ] {
        vars.push((k.into(), v.into()));
    }
    let [port, _] = ports(0);
    let mut command = cpo(&vars);
    command.args(["worker", "gateway", "--port", &port.to_string()]);
    let _gateway = Proc::spawn(command, &tmp.path().join("gateway.log"));
    let logs = || read_logs(tmp.path(), &["gateway.log"]);
    wait_listening(port, "gateway", logs);

    // C0000001 is assigned by a run of the bundled data (consent, no other exclusion).
    let token = cpo_shared::unsubscribe::UnsubscribeTokens::new("e2e-unsubscribe-key")
        .token("autumn-2026", "C0000001");
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    for attempt in ["first", "again (idempotent)"] {
        assert_eq!(
            post(
                port,
                &format!("/u/{token}"),
                &form,
                b"List-Unsubscribe=One-Click"
            ),
            Answer::Status(200),
            "{attempt}\n{}",
            logs()
        );
    }
    // A forged token suppresses nobody.
    let forged = cpo_shared::unsubscribe::UnsubscribeTokens::new("another-key")
        .token("autumn-2026", "C0000002");
    assert!(
        matches!(
            post(port, &format!("/u/{forged}"), &form, b"List-Unsubscribe=One-Click"),
            Answer::Status(400..=499)
        ),
        "a forged token is refused"
    );

    let out = tmp.path().join("run");
    let data = repo().join("data");
    let output = cpo(&vars)
        .arg("--config")
        .arg(data.join("cpo.yaml"))
        .args(["run", "--quiet", "--campaign"])
        .arg(data.join("campaign.yaml"))
        .arg("--customers")
        .arg(data.join("customers.csv"))
        .arg("--content")
        .arg(data.join("content"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap())
            .unwrap();
    let reasons: BTreeMap<String, String> = jsonl(&out.join("exclusions.jsonl"))
        .iter()
        .map(|e| {
            (
                e["customer_id"].as_str().unwrap().to_string(),
                e["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        reasons.get("C0000001").map(String::as_str),
        Some("unsubscribed"),
        "{reasons:?}"
    );
    assert!(!reasons.contains_key("C0000002"), "forged token suppressed: {reasons:?}");
    assert_eq!(summary["excluded_by_reason"]["unsubscribed"], 1, "{summary}");
    assert_eq!(summary["customers_total"], 250, "{summary}");
    assert_eq!(
        summary["customers_assigned"].as_u64().unwrap()
            + summary["customers_excluded"].as_u64().unwrap(),
        250,
        "every customer accounted for: {summary}"
    );
    assert_eq!(summary["customers_excluded"].as_u64().unwrap(), reasons.len() as u64);
    // 8 without consent in the bundled data, plus the unsubscribe.
    assert_eq!(summary["customers_assigned"], 241, "{summary}");
    let outbox = jsonl(&out.join("outbox.jsonl"));
    assert_eq!(outbox.len(), 241);
    assert!(
        outbox.iter().all(|m| m["customer_id"] != "C0000001"),
        "the unsubscribed customer got a message"
    );
    let _ = cpo(&vars).arg("teardown").output();
}
