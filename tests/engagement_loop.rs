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

const SG_SIG: &str = "X-Twilio-Email-Event-Webhook-Signature";
const SG_TS: &str = "X-Twilio-Email-Event-Webhook-Timestamp";
const POSTERS: usize = 3;
const BATCHES: usize = 30;
const PER_BATCH: usize = 20;

fn read_logs(dir: &Path, files: &[&str]) -> String {
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            format!(
                "--- {f}\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
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
            post(
                port,
                &format!("/u/{forged}"),
                &form,
                b"List-Unsubscribe=One-Click"
            ),
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
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
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
    assert!(
        !reasons.contains_key("C0000002"),
        "forged token suppressed: {reasons:?}"
    );
    assert_eq!(
        summary["excluded_by_reason"]["unsubscribed"], 1,
        "{summary}"
    );
    assert_eq!(summary["customers_total"], 250, "{summary}");
    assert_eq!(
        summary["customers_assigned"].as_u64().unwrap()
            + summary["customers_excluded"].as_u64().unwrap(),
        250,
        "every customer accounted for: {summary}"
    );
    assert_eq!(
        summary["customers_excluded"].as_u64().unwrap(),
        reasons.len() as u64
    );
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

/// A SendGrid batch of `PER_BATCH` open events with unique ids, each for a message of ours.
fn batch(poster: usize, n: usize) -> Vec<u8> {
    let events: Vec<Value> = (0..PER_BATCH)
        .map(|i| {
            let customer = format!("c-{poster}-{n}-{i}");
            json!({"email": format!("{customer}@example.com"), "timestamp": 1_765_000_000 + i as i64,
                "event": "open", "sg_event_id": format!("sg-{customer}"),
                "sg_message_id": format!("sgm-{customer}"),
                "message_id": cpo_shared::envelope::message_id("e2e-kill", &customer)})
        })
        .collect();
    serde_json::to_vec(&events).unwrap()
}

/// Rows of the events table of the PostgreSQL database at `url`: (rows, distinct ids).
fn stored_events(url: &str) -> (u64, u64) {
    let db = url.rsplit('/').next().unwrap();
    let out = std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", db, "-qAtc"])
        .arg("SELECT count(*) || ' ' || count(DISTINCT (provider, provider_event_id)) FROM events")
        .output()
        .expect("psql runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace().map(|n| n.parse().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

#[test]
fn a_gateway_killed_with_9_while_the_esp_posts_loses_nothing_and_stores_nothing_twice() {
    check_services();
    let tmp = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("e2ek");
    let mut vars = env(&prefix, tmp.path());
    let url = vars
        .iter()
        .find(|(k, _)| k == "CPO__STORE__URL")
        .map(|(_, v)| v.clone())
        .unwrap();
    let key = SendgridKey::new();
    vars.push((
        "CPO__GATEWAY__SENDGRID__PUBLIC_KEY".into(),
        key.public_base64.clone(),
    ));
    // A claim left by the killed gateway expires after 2 s (default 30 s).
    vars.push(("CPO__GATEWAY__PENDING_TTL_S".into(), "2".into()));
    let [port, events_port] = ports(1);
    let logs = || read_logs(tmp.path(), &["gateway.log", "events.log"]);
    let start_gateway = || {
        let mut command = cpo(&vars);
        command.args(["worker", "gateway", "--port", &port.to_string()]);
        Proc::spawn(command, &tmp.path().join("gateway.log"))
    };
    let mut command = cpo(&vars);
    command.args(["worker", "events", "--port", &events_port.to_string()]);
    let _events = Proc::spawn(command, &tmp.path().join("events.log"));
    let mut gateway = start_gateway();
    wait_listening(port, "gateway", logs);

    // The ESP: POSTERS connections, each posting BATCHES signed batches in
    // turn and retrying each (re-signed, as SendGrid does) until a 2xx.
    let key = Arc::new(key);
    let answered = Arc::new(AtomicUsize::new(0));
    let posters: Vec<_> = (0..POSTERS)
        .map(|poster| {
            let (key, answered) = (key.clone(), answered.clone());
            std::thread::spawn(move || {
                let mut tally: BTreeMap<String, usize> = BTreeMap::new();
                for n in 0..BATCHES {
                    let body = batch(poster, n);
                    let deadline = Instant::now() + Duration::from_secs(120);
                    loop {
                        let (signature, ts) = key.sign_now(&body);
                        let headers = [
                            ("Content-Type", "application/json"),
                            (SG_SIG, signature.as_str()),
                            (SG_TS, ts.as_str()),
                        ];
                        let answer = post(port, "/webhooks/sendgrid", &headers, &body);
                        *tally.entry(format!("{answer:?}")).or_default() += 1;
                        match answer {
                            Answer::Status(200..=299) => break,
                            Answer::Status(status @ 400..=499) => {
                                panic!("batch {poster}/{n} refused: {status}")
                            }
                            _ => {}
                        }
                        assert!(
                            Instant::now() < deadline,
                            "batch {poster}/{n} never accepted: {tally:?}"
                        );
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    answered.fetch_add(1, Ordering::SeqCst);
                }
                tally
            })
        })
        .collect();

    // Kill -9 mid-stream, with batches in flight; restart a little later.
    let deadline = Instant::now() + Duration::from_secs(60);
    while answered.load(Ordering::SeqCst) < POSTERS * BATCHES / 3 {
        assert!(
            Instant::now() < deadline,
            "the ESP's posts are not answered\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    gateway.kill9();
    let at_kill = answered.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(700));
    let _gateway = start_gateway();

    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    for poster in posters {
        for (answer, n) in poster.join().expect("the ESP thread") {
            *tally.entry(answer).or_default() += n;
        }
    }
    let total = (POSTERS * BATCHES * PER_BATCH) as u64;
    assert!(
        at_kill < POSTERS * BATCHES,
        "the kill came after the last batch: {tally:?}"
    );
    // Some POST was written and got no answer from the killed gateway: the ESP
    // retried it (with the other failures) against the restarted one.
    assert!(
        tally.get("None").copied().unwrap_or(0) >= 1,
        "no request was in flight at the kill: {tally:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let (rows, distinct) = loop {
        let counts = stored_events(&url);
        if counts.0 >= total || Instant::now() > deadline {
            break counts;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(rows, total, "every event stored: {tally:?}\n{}", logs());
    assert_eq!(distinct, rows, "no event stored twice");
    // and no more arrive later (a late duplicate publish would be dropped by the store)
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(stored_events(&url).0, total);
    // The queue: every event published at least once; a second publish only
    // for events whose answer the kill lost (confirmed, `done` mark not yet
    // written), and those the store dropped above.
    let (_, text) = http_get(events_port, "/metrics").expect("the events stage's metrics");
    let received = metric(&text, "cpo_stage_messages_received_total{stage=\"events\"}") as u64;
    let lost_answers = tally.get("None").copied().unwrap_or(0) as u64;
    assert!(
        received >= total && received - total <= lost_answers * PER_BATCH as u64,
        "{received} messages for {total} events ({lost_answers} answers lost)"
    );
    eprintln!(
        "answers: {tally:?}; answered before the kill: {at_kill}; events messages: {received}"
    );
    let _ = cpo(&vars).arg("teardown").output();
    drop_pg_database(&prefix);
}
