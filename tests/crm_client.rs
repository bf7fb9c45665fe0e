//! A CRM that is not Rust: the Python client in `tests/clients/` publishes the
//! bundled campaign to six worker processes on the real RabbitMQ and Redis
//! (127.0.0.1, or CPO_TEST_AMQP_URL / CPO_TEST_REDIS_URL), and every customer is
//! accounted for. The same client refuses a message that fails the published
//! JSON schema, and publishes nothing. Services that are down, or a Python that
//! cannot get its packages, fail the test with how to fix it.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{STAGES, batch_key_env, check_services, cpo, env, jsonl, repo};
use cpo_shared::envelope::derive_id;
use serde_json::Value;

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

/// The Python client with exactly the fleet's environment (`CPO__AMQP__PREFIX`,
/// `CPO__AMQP__URL` when the test sets one): no variable of its own. It runs
/// from the system temp directory so the campaign's relative paths cannot
/// resolve by luck.
fn client(vars: &[(String, String)]) -> Command {
    let mut command = Command::new("python3");
    command
        .arg(repo().join("tests/clients/enqueue_campaign.py"))
        .current_dir(std::env::temp_dir())
        .env_remove("CPO_PREFIX")
        .env_remove("CPO_AMQP_URL")
        .env_remove("CPO__AMQP__URL")
        .env_remove("CPO__AMQP__URL_FILE")
        .env_remove("CPO__AMQP__PREFIX");
    for (k, v) in vars {
        command.env(k, v);
    }
    command
}

fn text(output: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// pika, jsonschema and PyYAML, installed from the client's requirements when missing.
fn ensure_python_client() {
    let importable = || {
        Command::new("python3")
            .args(["-c", "import pika, jsonschema, yaml"])
            .output()
    };
    let first = importable();
    assert!(
        first.is_ok(),
        "python3 is not installed: the CRM client test needs Python 3 with pip"
    );
    if first.is_ok_and(|o| o.status.success()) {
        return;
    }
    let install = Command::new("python3")
        .args(["-m", "pip", "install", "-q", "-r"])
        .arg(repo().join("tests/clients/requirements.txt"))
        .output()
        .unwrap();
    assert!(
        install.status.success(),
        "cannot install the Python client's packages; run `python3 -m pip install -r tests/clients/requirements.txt`\n{}",
        text(&install)
    );
    let again = importable().unwrap();
    assert!(
        again.status.success(),
        "pika, jsonschema or yaml still not importable after pip install\n{}",
        text(&again)
    );
}

/// GET on a worker's HTTP port: (status code, body), or None while nothing listens.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().ok()?,
        Duration::from_secs(2),
    )
    .ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// The value of one sample of a Prometheus text exposition (0 when absent).
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn a_python_crm_enqueues_the_bundled_campaign_and_invalid_messages_are_refused() {
    check_services();
    ensure_python_client();
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("fleet");
    std::fs::create_dir_all(&work).unwrap();
    let prefix = format!(
        "crm{}x{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let vars = env(&prefix, &work);

    // It documents the fleet's variable names, and refuses the names it read before.
    let help = client(&vars).arg("--help").output().unwrap();
    let help_text = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success(), "help: {}", text(&help));
    for name in ["CPO__AMQP__URL", "CPO__AMQP__PREFIX"] {
        assert!(
            help_text.contains(name),
            "{name} not in --help:\n{help_text}"
        );
    }
    let retired = client(&[])
        .env("CPO_PREFIX", format!("cpo.{prefix}."))
        .arg("--dry-run")
        .output()
        .unwrap();
    assert_eq!(retired.status.code(), Some(2), "{}", text(&retired));
    assert!(
        String::from_utf8_lossy(&retired.stderr).contains("set CPO__AMQP__PREFIX"),
        "{}",
        text(&retired)
    );

    // The envelope the client builds is the one `cpo enqueue` would publish.
    let dry = client(&vars).arg("--dry-run").output().unwrap();
    assert!(dry.status.success(), "dry run: {}", text(&dry));
    let envelope: Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(
        envelope["id"],
        derive_id(&["autumn-2026", "campaign"]),
        "{envelope}"
    );
    assert_eq!(envelope["campaign_id"], "autumn-2026");
    assert_eq!(envelope["version"], cpo_shared::envelope::SCHEMA_VERSION);
    assert_eq!(envelope["attempt"], 0);
    assert!(envelope["first_seen_ms"].as_u64().unwrap() > 0);
    let audience = &envelope["payload"]["audience"];
    assert_eq!(audience["kind"], "csv");
    let csv = Path::new(audience["path"].as_str().unwrap());
    assert!(
        csv.is_absolute() && csv.ends_with("data/customers.csv"),
        "{audience}"
    );
    // ...and it decodes as the workers' message type.
    serde_json::from_value::<cpo_shared::envelope::Envelope<cpo_shared::model::CampaignRequest>>(
        envelope.clone(),
    )
    .unwrap();

    let mut fleet = Fleet {
        children: Vec::new(),
    };
    let base_port = 20000 + ((std::process::id() + 7919) % 20000) as u16;
    for (i, stage) in STAGES.iter().enumerate() {
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
    let logs = || {
        STAGES
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
    // The client does not declare the topology (a CRM has no configure permission):
    // the workers' queues must exist before it publishes.
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..STAGES.len() as u16 {
        while http_get(base_port + i, "/readyz").map(|(status, _)| status) != Some(200) {
            assert!(
                Instant::now() < deadline,
                "worker {} not ready within 60 s\n{}",
                STAGES[i as usize],
                logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // A request without campaign_id fails the schema: refused before any connection.
    let broken = client(&vars).arg("--break-schema").output().unwrap();
    assert_eq!(
        broken.status.code(),
        Some(2),
        "broken message: {}",
        text(&broken)
    );
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert!(
        stderr.contains("nothing published")
            && stderr.contains("'campaign_id' is a required property"),
        "{stderr}"
    );
    assert!(broken.stdout.is_empty(), "{}", text(&broken));

    let enqueue = client(&vars).output().unwrap();
    assert!(
        enqueue.status.success(),
        "enqueue: {}\n{}",
        text(&enqueue),
        logs()
    );
    assert!(
        String::from_utf8_lossy(&enqueue.stdout).contains(&derive_id(&["autumn-2026", "campaign"])),
        "{}",
        text(&enqueue)
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
    assert!(
        collect.status.success(),
        "collect: {}\n{}",
        text(&collect),
        logs()
    );

    // Segmentation saw exactly one campaign: the refused message never reached the queue.
    let (status, metrics) = http_get(base_port, "/metrics").expect("segmentation /metrics");
    assert_eq!(status, 200);
    assert_eq!(
        sample(
            &metrics,
            "cpo_stage_messages_received_total{stage=\"segmentation\"}"
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "cpo_stage_messages_succeeded_total{stage=\"segmentation\"}"
        ),
        1.0,
        "{metrics}"
    );
    // Nothing dead-lettered: the series exist (created at 0 for alerting) and stay 0.
    let dead_letters: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("cpo_stage_messages_dead_lettered_total{"))
        .collect();
    assert!(!dead_letters.is_empty(), "{metrics}");
    assert!(dead_letters.iter().all(|l| l.ends_with(" 0")), "{metrics}");

    drop(fleet);
    let teardown = cpo(&vars).arg("teardown").output().unwrap();
    assert!(teardown.status.success(), "teardown: {}", text(&teardown));

    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let n = |k: &str| {
        summary[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} missing in {summary}"))
    };
    assert_eq!(n("customers_total"), 250, "{summary}");
    assert_eq!(
        n("customers_assigned") + n("customers_excluded"),
        250,
        "{summary}"
    );
    assert!(n("customers_assigned") > 0, "{summary}");
    assert_eq!(n("dead_lettered"), 0, "{summary}");
    let outbox = jsonl(&out.join("outbox.jsonl"));
    assert_eq!(outbox.len() as u64, n("customers_assigned"));
    assert!(outbox.iter().all(|m| m["campaign_id"] == "autumn-2026"));
    let ids: HashSet<&str> = outbox
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), outbox.len(), "no message sent twice");
    let customers: HashSet<&str> = outbox
        .iter()
        .map(|m| m["customer_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        customers.len(),
        outbox.len(),
        "one message per assigned customer"
    );
}
