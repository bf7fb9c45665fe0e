//! The fleet end to end: six worker processes on the real RabbitMQ and Redis
//! (127.0.0.1, or CPO_TEST_AMQP_URL / CPO_TEST_REDIS_URL), the bundled campaign
//! enqueued as a CRM would, every customer accounted for, and the same
//! customers, arms and variants as the embedded mode. A service that is down
//! fails the test with how to start it.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Fleet {
    children: Vec<Child>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn env(prefix: &str, work: &Path) -> Vec<(String, String)> {
    let mut vars = vec![
        ("CPO__AMQP__PREFIX".to_string(), format!("cpo.{prefix}.")),
        ("CPO__REDIS__KEY_PREFIX".to_string(), format!("cpo:{prefix}:")),
        ("CPO__SECURITY__SIGNING_KEY".to_string(), format!("test-signing-{prefix}")),
        ("CPO__SECURITY__PSEUDONYM_KEY".to_string(), "test-pseudonyms".to_string()),
        ("CPO__GENERATION__BRAND".to_string(), "Northwind Outfitters".to_string()),
        ("CPO__WORKER__AUDIT_DIR".to_string(), work.display().to_string()),
        ("CPO__WORKER__OUTBOX".to_string(), work.join("outbox.jsonl").display().to_string()),
        ("CPO__WORKER__BIND".to_string(), "127.0.0.1".to_string()),
    ];
    if let Ok(url) = std::env::var("CPO_TEST_AMQP_URL") {
        vars.push(("CPO__AMQP__URL".into(), url));
    }
    if let Ok(url) = std::env::var("CPO_TEST_REDIS_URL") {
        vars.push(("CPO__REDIS__URL".into(), url));
    }
    vars
}

fn cpo(vars: &[(String, String)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cpo"));
    command.current_dir(repo()).env_remove("CPO_CONFIG");
    for (k, v) in vars {
        command.env(k, v);
    }
    command
}

fn check_services() {
    let amqp = std::net::TcpStream::connect_timeout(&"127.0.0.1:5672".parse().unwrap(), Duration::from_secs(2));
    assert!(amqp.is_ok() || std::env::var("CPO_TEST_AMQP_URL").is_ok(), "RabbitMQ is not running on 127.0.0.1:5672: start it with `rabbitmq-server -detached`");
    let redis = std::net::TcpStream::connect_timeout(&"127.0.0.1:6379".parse().unwrap(), Duration::from_secs(2));
    assert!(redis.is_ok() || std::env::var("CPO_TEST_REDIS_URL").is_ok(), "Redis is not running on 127.0.0.1:6379: start it with `redis-server --daemonize yes`");
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// customer -> (segment, arm, variant) of an outbox.
fn plan(outbox: &[Value]) -> BTreeMap<String, (String, String, String)> {
    outbox
        .iter()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap().to_string();
            (s("customer_id"), (s("segment"), s("arm"), s("variant_id")))
        })
        .collect()
}

#[test]
fn six_worker_processes_deliver_the_bundled_campaign_like_the_embedded_mode() {
    check_services();
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("fleet");
    std::fs::create_dir_all(&work).unwrap();
    let prefix = format!("t{}x{}", std::process::id(), Instant::now().elapsed().subsec_nanos());
    let vars = env(&prefix, &work);

    let mut fleet = Fleet { children: Vec::new() };
    let base_port = 20000 + (std::process::id() % 20000) as u16;
    for (i, stage) in ["segmentation", "retrieval", "generation", "safety", "experimentation", "delivery"].iter().enumerate() {
        let log = std::fs::File::create(work.join(format!("{stage}.log"))).unwrap();
        let child = cpo(&vars)
            .args(["worker", stage, "--port", &(base_port + i as u16).to_string()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        fleet.children.push(child);
    }

    let enqueue = cpo(&vars).args(["enqueue", "data/campaign.yaml"]).output().unwrap();
    assert!(enqueue.status.success(), "enqueue: {}", String::from_utf8_lossy(&enqueue.stderr));

    let out = tmp.path().join("out");
    let collect = cpo(&vars)
        .args(["collect", "autumn-2026", "--out", out.to_str().unwrap(), "--outbox"])
        .arg(work.join("outbox.jsonl"))
        .args(["--timeout", "180"])
        .output()
        .unwrap();
    let logs = || {
        ["segmentation", "experimentation", "delivery"]
            .iter()
            .map(|s| format!("--- {s}\n{}", std::fs::read_to_string(work.join(format!("{s}.log"))).unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(collect.status.success(), "collect: {}\n{}", String::from_utf8_lossy(&collect.stderr), logs());

    // /metrics of a worker speaks the Prometheus text format with the runtime's counters
    let metrics = std::process::Command::new("curl")
        .args(["-fs", &format!("http://127.0.0.1:{}/metrics", base_port + 5)])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    assert!(metrics.contains("cpo_stage_messages_succeeded_total{stage=\"delivery\"}"), "{metrics}");

    drop(fleet);
    let teardown = cpo(&vars).arg("teardown").output().unwrap();
    assert!(teardown.status.success(), "teardown: {}", String::from_utf8_lossy(&teardown.stderr));

    let summary: Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let n = |k: &str| summary[k].as_u64().unwrap();
    assert_eq!(n("customers_total"), 250);
    assert_eq!(n("customers_assigned") + n("customers_excluded"), 250, "{summary}");
    let outbox = jsonl(&out.join("outbox.jsonl"));
    assert_eq!(outbox.len() as u64, n("customers_assigned"));
    let ids: HashSet<&str> = outbox.iter().map(|m| m["message_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), outbox.len(), "no message sent twice");

    // the embedded mode on the same input plans the same messages
    let embedded_out = tmp.path().join("embedded");
    let run = cpo(&[]).args(["run", "--quiet", "--out", embedded_out.to_str().unwrap()]).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(plan(&outbox), plan(&jsonl(&embedded_out.join("outbox.jsonl"))));
}
