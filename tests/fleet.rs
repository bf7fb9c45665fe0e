//! The fleet end to end: six worker processes on the real RabbitMQ and Redis
//! (127.0.0.1, or CPO_TEST_AMQP_URL / CPO_TEST_REDIS_URL), the bundled campaign
//! enqueued as a CRM would, every customer accounted for, and the same
//! customers, arms and variants as the embedded mode. A service that is down
//! fails the test with how to start it.

mod common;

use std::collections::HashSet;
use std::process::{Child, Stdio};
use std::time::Instant;

use common::{batch_key_env, check_services, cpo, env, jsonl, plan};
use serde_json::Value;

struct Fleet {
    children: Vec<Child>,
    prefix: String,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        common::drop_pg_database(&self.prefix);
    }
}

#[test]
fn six_worker_processes_deliver_the_bundled_campaign_like_the_embedded_mode() {
    check_services();
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("fleet");
    std::fs::create_dir_all(&work).unwrap();
    let prefix = format!(
        "t{}x{}",
        std::process::id(),
        Instant::now().elapsed().subsec_nanos()
    );
    let vars = env(&prefix, &work);

    let mut fleet = Fleet {
        children: Vec::new(),
        prefix: prefix.clone(),
    };
    let base_port = 20000 + (std::process::id() % 20000) as u16;
    for (i, stage) in [
        "segmentation",
        "retrieval",
        "generation",
        "safety",
        "experimentation",
        "delivery",
    ]
    .iter()
    .enumerate()
    {
        let log = std::fs::File::create(work.join(format!("{stage}.log"))).unwrap();
        let child = cpo(&vars)
            .envs(batch_key_env(stage, &prefix))
            .args([
                "worker",
                stage,
                "--port",
                &(base_port + i as u16).to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        fleet.children.push(child);
    }

    // Nothing recorded yet: status says so with its own exit code.
    let unknown = cpo(&vars).args(["status", "autumn-2026"]).output().unwrap();
    assert_eq!(unknown.status.code(), Some(3), "{unknown:?}");
    assert!(String::from_utf8_lossy(&unknown.stdout).contains("unknown"));

    let enqueue = cpo(&vars)
        .args(["enqueue", "data/campaign.yaml"])
        .output()
        .unwrap();
    assert!(
        enqueue.status.success(),
        "enqueue: {}",
        String::from_utf8_lossy(&enqueue.stderr)
    );

    let out = tmp.path().join("out");
    let collect = cpo(&vars)
        .args([
            "collect",
            "autumn-2026",
            "--out",
            out.to_str().unwrap(),
            "--outbox",
        ])
        .arg(work.join("outbox.jsonl"))
        .args(["--timeout", "180"])
        .output()
        .unwrap();
    let logs = || {
        ["segmentation", "experimentation", "delivery"]
            .iter()
            .map(|s| {
                format!(
                    "--- {s}\n{}",
                    std::fs::read_to_string(work.join(format!("{s}.log"))).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        collect.status.success(),
        "collect: {}\n{}",
        String::from_utf8_lossy(&collect.stderr),
        logs()
    );

    // /metrics of a worker speaks the Prometheus text format with the runtime's counters
    let metrics = std::process::Command::new("curl")
        .args([
            "-fs",
            &format!("http://127.0.0.1:{}/metrics", base_port + 5),
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    assert!(
        metrics.contains("cpo_stage_messages_succeeded_total{stage=\"delivery\"}"),
        "{metrics}"
    );

    // `cpo status` tells the same story from the Redis counters, without the ledger.
    let status = cpo(&vars)
        .args([
            "status",
            "autumn-2026",
            "--json",
            "--wait",
            "--timeout",
            "60",
        ])
        .output()
        .unwrap();
    assert!(status.status.success(), "status: {status:?}\n{}", logs());
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let counter = |k: &str| status["counters"][k].as_u64().unwrap_or(0);
    assert_eq!(status["state"], "complete", "{status}");
    assert_eq!(status["outstanding"], 0);
    assert_eq!(counter("customers_total"), 250);
    assert_eq!(
        counter("customers_assigned"),
        summary["customers_assigned"].as_u64().unwrap()
    );
    assert_eq!(
        counter("messages_delivered"),
        summary["customers_assigned"].as_u64().unwrap()
    );
    assert_eq!(
        counter("excluded_at_segmentation") + counter("excluded_at_assignment"),
        summary["customers_excluded"].as_u64().unwrap(),
        "{status}\n{summary}"
    );
    assert_eq!(counter("segments"), summary["segments"].as_u64().unwrap());
    assert_eq!(counter("segments_retrieved"), counter("segments"));
    assert_eq!(
        counter("variants_generated"),
        summary["variants_generated"].as_u64().unwrap()
    );
    assert_eq!(
        counter("variants_approved") + counter("variants_blocked"),
        counter("variants_generated")
    );
    assert_eq!(counter("batches_assigned"), counter("audience_batches"));
    assert!(counter("enqueued_ms") > 0 && counter("updated_ms") >= counter("enqueued_ms"));
    let human = cpo(&vars).args(["status", "autumn-2026"]).output().unwrap();
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(
        human.starts_with("campaign autumn-2026: complete"),
        "{human}"
    );

    drop(fleet);
    let teardown = cpo(&vars).arg("teardown").output().unwrap();
    assert!(
        teardown.status.success(),
        "teardown: {}",
        String::from_utf8_lossy(&teardown.stderr)
    );

    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let n = |k: &str| summary[k].as_u64().unwrap();
    assert_eq!(n("customers_total"), 250);
    assert_eq!(
        n("customers_assigned") + n("customers_excluded"),
        250,
        "{summary}"
    );
    let outbox = jsonl(&out.join("outbox.jsonl"));
    assert_eq!(outbox.len() as u64, n("customers_assigned"));
    let ids: HashSet<&str> = outbox
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), outbox.len(), "no message sent twice");

    // the embedded mode on the same input plans the same messages
    let embedded_out = tmp.path().join("embedded");
    let run = cpo(&[])
        .args(["run", "--quiet", "--out", embedded_out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        plan(&outbox),
        plan(&jsonl(&embedded_out.join("outbox.jsonl")))
    );
}
