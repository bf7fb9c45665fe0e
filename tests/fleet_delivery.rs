//! Two delivery replicas in the fleet share one rate limit (the Redis Lua
//! limiter) and one record of sends: the bundled campaign completes, every
//! customer is sent exactly once, both replicas took part, and the send
//! times in the store never exceed the rate in any one-second window.

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::*;

const PER_SECOND: usize = 40;

struct Replica(Child);

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `cpo_delivery_sends_total{outcome="sent",sink="outbox"}` of a worker's /metrics.
fn sent_by(port: u16) -> u64 {
    let out = std::process::Command::new("curl")
        .args(["-sf", &format!("http://127.0.0.1:{port}/metrics")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("cpo_delivery_sends_total{outcome=\"sent\",sink=\"outbox\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn two_delivery_replicas_share_one_rate_and_one_record() {
    let tmp = tempfile::tempdir().unwrap();
    let rate = PER_SECOND.to_string();
    let mut fleet = Fleet::new(
        tmp.path(),
        "dlvrate",
        &[
            ("CPO__DELIVERY__RATE__PER_SECOND", rate.as_str()),
            // Small batches, so both replicas get some.
            ("CPO__SEGMENTATION__BATCH_SIZE", "20"),
        ],
    );
    fleet.start_all();
    let second_port = free_port();
    let log = std::fs::File::create(fleet.work.join("delivery-2.log")).unwrap();
    let mut second = fleet.cpo();
    second.envs(batch_key_env("delivery", &fleet.prefix));
    let _second = Replica(
        second
            .args(["worker", "delivery", "--port", &second_port.to_string()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    fleet.enqueue(None);
    fleet.collect(&tmp.path().join("out"), 240);

    let outbox = jsonl(&fleet.outbox());
    let ids: Vec<String> = outbox
        .iter()
        .map(|m| m["message_id"].as_str().unwrap().to_string())
        .collect();
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no customer got two messages");
    assert!(ids.len() > 200, "{} messages", ids.len());

    // The record: every message sent once, at the shared rate.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sends = runtime.block_on(async {
        let store = cpo_shared::store::connect(&cpo_shared::store::StoreConfig {
            // The fleet's own record (a PostgreSQL database of its prefix).
            url: fleet
                .vars
                .iter()
                .find(|(k, _)| k == "CPO__STORE__URL")
                .map(|(_, v)| v.clone())
                .expect("the harness sets the store URL"),
            ..Default::default()
        })
        .await
        .unwrap();
        store.sends_for(&ids).await.unwrap()
    });
    assert_eq!(sends.len(), ids.len());
    let mut times: Vec<i64> = sends
        .values()
        .map(|s| {
            assert_eq!(s.state, cpo_shared::store::SendState::Sent, "{s:?}");
            assert_eq!(s.attempts, 1, "{s:?}");
            s.sent_at_ms.unwrap()
        })
        .collect();
    times.sort_unstable();
    let mut busiest = 0;
    let mut end = 0;
    for start in 0..times.len() {
        while end < times.len() && times[end] - times[start] < 1_000 {
            end += 1;
        }
        busiest = busiest.max(end - start);
    }
    // The limit plus 5 %; sent_at is written after the provider answered, so
    // a window can gain a send recorded a little late (one more, at most).
    assert!(
        busiest <= PER_SECOND * 105 / 100 + 1,
        "{busiest} sends recorded in one second"
    );
    let span_s = (times[times.len() - 1] - times[0]) as f64 / 1_000.0;
    let average = (times.len() - 1) as f64 / span_s;
    eprintln!("busiest second {busiest}, average {average:.1}/s over {span_s:.1} s");
    assert!(average >= PER_SECOND as f64 * 0.8, "{average:.1}/s");

    // Both replicas sent, and together they sent every message once.
    let (first, second) = (sent_by(fleet_port(&fleet)), sent_by(second_port));
    assert!(first > 0 && second > 0, "{first} + {second}");
    assert_eq!(first + second, ids.len() as u64);
    drop(_second);
    std::thread::sleep(Duration::from_millis(100));
    fleet.teardown();
}

/// The port of the fleet's own delivery worker (the last of the six).
fn fleet_port(fleet: &Fleet) -> u16 {
    fleet.port_of("delivery")
}
