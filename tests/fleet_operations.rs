//! What operators of the fleet rely on: a worker's defaults (loopback
//! endpoints, every labelled series at 0 from the first scrape), settings
//! checked before the broker is touched, `cpo status` on a campaign
//! dead-lettered at its first stage, `deploy/fleet-demo.sh` failing cleanly,
//! and the dashboard counting what its titles say. Real RabbitMQ and Redis on
//! 127.0.0.1 (or CPO_TEST_AMQP_URL / CPO_TEST_REDIS_URL), a prefix per test.

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Fleet, check_services, cpo, env, metric, repo, unique_prefix, wait_for};
use serde_json::Value;

/// Local addresses (hex, as in /proc/net/tcp) of the sockets listening on `port`.
fn listening_addresses(port: u16) -> Vec<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default()
        + &std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    let suffix = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // field 1 is local_address ADDR:PORT, field 3 the state (0A: LISTEN)
            let local = *fields.get(1)?;
            (fields.get(3) == Some(&"0A") && local.ends_with(&suffix))
                .then(|| local.trim_end_matches(&suffix).to_string())
        })
        .collect()
}

#[test]
fn a_worker_on_defaults_listens_on_loopback_presets_its_series_and_reports_a_dead_lettered_campaign()
 {
    let tmp = tempfile::tempdir().unwrap();
    // Audiences must lie in an empty directory: the bundled campaign's CSV does
    // not, so segmentation dead-letters the campaign before reading anyone.
    let confined = tmp.path().join("audiences");
    std::fs::create_dir_all(&confined).unwrap();
    let confined = confined.display().to_string();
    let mut fleet = Fleet::new(
        tmp.path(),
        "ops",
        &[
            ("CPO__SEGMENTATION__CONFINE_AUDIENCE", "true"),
            ("CPO__SEGMENTATION__DATA_DIR", &confined),
        ],
    );
    // The worker's own default, not the tests' explicit 127.0.0.1.
    fleet.vars.retain(|(k, _)| k != "CPO__WORKER__BIND");
    let stages = ["segmentation", "safety", "experimentation", "delivery"];
    for stage in stages {
        fleet.start(stage);
    }
    for stage in stages {
        fleet.wait_ready(stage, Duration::from_secs(60));
    }

    let port = fleet.http_port("segmentation");
    let addresses = listening_addresses(port);
    assert_eq!(
        addresses,
        vec!["0100007F".to_string()],
        "port {port} must listen on 127.0.0.1 only (/proc/net/tcp addresses {addresses:?})"
    );

    // Before any message: every series alerts and panels use exists, at 0.
    let at_zero = |stage: &str, series: &[&str]| {
        let metrics = fleet.metrics_of(stage);
        for series in series {
            assert!(
                metrics.lines().any(|l| l == format!("{series} 0")),
                "{stage}: {series} not exposed at 0:\n{metrics}"
            );
        }
    };
    at_zero(
        "safety",
        &[
            "cpo_stage_messages_dead_lettered_total{kind=\"blocked\",stage=\"safety\"}",
            "cpo_safety_decisions_total{decision=\"blocked\"}",
            "cpo_safety_block_causes_total{cause=\"citation\"}",
            "cpo_safety_screen_errors_total{action=\"held\",kind=\"transient\"}",
        ],
    );
    at_zero(
        "experimentation",
        &[
            "cpo_stage_messages_dead_lettered_total{kind=\"timeout\",stage=\"experimentation\"}",
            "cpo_experimentation_customers_total{outcome=\"fallback\"}",
        ],
    );
    at_zero(
        "delivery",
        &[
            "cpo_delivery_messages_total{outcome=\"sent\"}",
            "cpo_delivery_messages_total{outcome=\"rejected\"}",
            "cpo_stage_messages_paused_total{stage=\"delivery\"}",
        ],
    );
    at_zero(
        "segmentation",
        &[
            "cpo_stage_messages_received_total{stage=\"segmentation\"}",
            "cpo_stage_messages_succeeded_total{stage=\"segmentation\"}",
            "cpo_stage_messages_retried_total{stage=\"segmentation\"}",
            "cpo_stage_messages_paused_total{stage=\"segmentation\"}",
            "cpo_stage_messages_dead_lettered_total{kind=\"blocked\",stage=\"segmentation\"}",
            "cpo_stage_messages_dead_lettered_total{kind=\"permanent\",stage=\"segmentation\"}",
            "cpo_stage_messages_dead_lettered_total{kind=\"exhausted\",stage=\"segmentation\"}",
            "cpo_stage_messages_dead_lettered_total{kind=\"timeout\",stage=\"segmentation\"}",
            "cpo_stage_messages_dead_lettered_total{kind=\"undecodable\",stage=\"segmentation\"}",
            "cpo_stage_messages_dead_lettered_total{kind=\"oversized\",stage=\"segmentation\"}",
            "cpo_stage_handle_seconds_count{stage=\"segmentation\"}",
            "cpo_segmentation_customers_total{outcome=\"segmented\"}",
            "cpo_segmentation_customers_total{outcome=\"invalid\"}",
            "cpo_cache_requests_total{cache=\"redis\",result=\"error\"}",
        ],
    );

    fleet.enqueue(None);
    let status = |fleet: &Fleet| {
        let out = fleet
            .cpo()
            .args(["status", "autumn-2026", "--json"])
            .output()
            .unwrap();
        (
            out.status.code(),
            serde_json::from_slice::<Value>(&out.stdout).ok(),
        )
    };
    let progress = wait_for(
        &fleet,
        "segmentation to dead-letter the campaign",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || match status(&fleet) {
            (Some(0), Some(p))
                if p["counters"]["dead_letters:segmentation:permanent"].as_i64() == Some(1) =>
            {
                Some(p)
            }
            _ => None,
        },
    );
    assert_eq!(progress["state"], "waiting", "{progress}");
    assert_eq!(progress["dead_letters_pending"], 1, "{progress}");
    assert_eq!(progress["outstanding"], Value::Null, "{progress}");
    let human = fleet
        .cpo()
        .args(["status", "autumn-2026"])
        .output()
        .unwrap();
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(
        human.starts_with("campaign autumn-2026: waiting on dead letters")
            && human.contains("segmentation permanent 1"),
        "{human}"
    );
    let metrics = fleet.metrics_of("segmentation");
    assert_eq!(
        metric(
            &metrics,
            "cpo_stage_messages_dead_lettered_total{kind=\"permanent\",stage=\"segmentation\"}"
        ),
        1.0,
        "{metrics}"
    );
    fleet.teardown();
}

#[test]
fn a_worker_without_the_pseudonym_key_fails_before_it_connects() {
    // Nothing listens on this port: a worker that connected first would fail
    // with a connection error instead of naming the missing key.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let http = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let tmp = tempfile::tempdir().unwrap();
    let mut vars = env(&unique_prefix("nokey"), tmp.path());
    vars.retain(|(k, _)| !k.starts_with("CPO__SECURITY__PSEUDONYM_KEY") && k != "CPO__AMQP__URL");
    vars.push((
        "CPO__AMQP__URL".into(),
        format!("amqp://guest:guest@127.0.0.1:{closed}/%2f"),
    ));
    // Short, so that a worker trying the broker first fails within the test's patience.
    vars.push(("CPO__AMQP__CONNECT_TIMEOUT_MS".into(), "3000".into()));
    let out = cpo(&vars)
        .env_remove("CPO__SECURITY__PSEUDONYM_KEY")
        .env_remove("CPO__SECURITY__PSEUDONYM_KEY_FILE")
        .args(["worker", "delivery", "--port", &http.to_string()])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("security.pseudonym_key is not set (CPO__SECURITY__PSEUDONYM_KEY)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("RabbitMQ"),
        "the broker was tried: {stderr}"
    );
}

/// `deploy/fleet-demo.sh` with `vars`, in its own process group (a demo still
/// running after `limit` is killed with its workers, failing the test).
/// Returns its output and the queue prefix it announced.
fn run_demo(out: &Path, vars: &[(&str, &str)], limit: Duration) -> (Output, String) {
    let mut demo = Command::new("bash");
    demo.arg(repo().join("deploy/fleet-demo.sh"))
        .arg(out)
        .current_dir(repo())
        .env("CPO_BIN", env!("CARGO_BIN_EXE_cpo"))
        .env_remove("CPO_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Ok(url) = std::env::var("CPO_TEST_AMQP_URL") {
        demo.env("CPO__AMQP__URL", url);
    }
    if let Ok(url) = std::env::var("CPO_TEST_REDIS_URL") {
        demo.env("CPO__REDIS__URL", url);
    }
    for (k, v) in vars {
        demo.env(k, v);
    }
    let mut child = demo.spawn().unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            panic!("fleet-demo.sh still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let prefix = stderr
        .lines()
        .find_map(|l| l.strip_prefix("fleet demo: queues ")?.split_once('*'))
        .map(|(prefix, _)| prefix.to_string())
        .unwrap_or_else(|| panic!("no prefix announced: {stderr}"));
    assert!(prefix.starts_with("cpo.demo"), "{prefix}");
    (output, prefix)
}

/// Processes (of this user) whose environment holds `CPO__AMQP__PREFIX=<prefix>`.
fn processes_of(prefix: &str) -> Vec<String> {
    let needle = format!("CPO__AMQP__PREFIX={prefix}");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let environ = std::fs::read(path.join("environ")).ok()?;
            environ
                .split(|b| *b == 0)
                .any(|var| var == needle.as_bytes())
                .then(|| std::fs::read_to_string(path.join("cmdline")).unwrap_or_default())
        })
        .map(|cmdline| cmdline.replace('\0', " "))
        .collect()
}

#[test]
fn the_fleet_demo_fails_on_a_worker_that_cannot_start_and_leaves_no_queue_behind() {
    check_services();
    let tmp = tempfile::tempdir().unwrap();
    let (out, prefix) = run_demo(
        &tmp.path().join("demo"),
        // The safety worker refuses this configuration (no endpoint); the others start.
        &[
            ("CPO__SAFETY__BACKEND", "azure"),
            ("CPO__SAFETY__AZURE__ENDPOINT", ""),
            ("CPO_DEMO_READY_TIMEOUT", "60"),
        ],
        Duration::from_secs(120),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("the safety worker exited before it was ready"),
        "{stderr}"
    );
    assert_eq!(processes_of(&prefix), Vec::<String>::new(), "{stderr}");

    // The other workers got as far as declaring the topology...
    let logs = tmp.path().join("demo/fleet");
    let declared = ["segmentation", "retrieval", "delivery"].iter().any(|s| {
        std::fs::read_to_string(logs.join(format!("{s}.log")))
            .is_ok_and(|log| log.contains("amqp transport ready"))
    });
    assert!(declared, "no worker reached the broker: {stderr}");
    // ...and the demo removed every queue of its prefix on the way out.
    let queues = Command::new("rabbitmqctl")
        .args(["-q", "list_queues", "name"])
        .output()
        .expect("rabbitmqctl (RabbitMQ's CLI) must be installed to list the broker's queues");
    assert!(
        queues.status.success(),
        "rabbitmqctl list_queues: {}",
        String::from_utf8_lossy(&queues.stderr)
    );
    let left: Vec<String> = String::from_utf8_lossy(&queues.stdout)
        .lines()
        .filter(|q| q.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    assert!(left.is_empty(), "queues left behind: {left:?}");
}

#[test]
fn the_fleet_demo_fails_when_its_workers_are_not_ready_in_time_and_stops_them() {
    // A "broker" that accepts connections and never answers: the workers stay
    // alive and unready, and the demo's teardown cannot reach it either.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let held: Vec<_> = silent.incoming().collect();
        drop(held);
    });
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    let started = Instant::now();
    let (out, prefix) = run_demo(
        &tmp.path().join("demo"),
        &[
            ("CPO__AMQP__URL", &url),
            ("CPO__AMQP__CONNECT_TIMEOUT_MS", "3000"),
            ("CPO_DEMO_READY_TIMEOUT", "2"),
        ],
        Duration::from_secs(90),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("worker was not ready within 2 s"),
        "{stderr}"
    );
    // Teardown was attempted, and its failure is reported with what to run.
    assert!(stderr.contains("teardown failed"), "{stderr}");
    assert_eq!(processes_of(&prefix), Vec::<String>::new(), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    let mut stack: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(panel) = stack.pop() {
        if let Some(nested) = panel["panels"].as_array() {
            stack.extend(nested);
        }
        all.push(panel);
    }
    all
}

#[test]
fn the_messages_sent_panel_counts_sent_messages_only() {
    let text = std::fs::read_to_string(repo().join("deploy/grafana/cpo-dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let exprs = |panel: &Value| -> Vec<String> {
        panel["targets"]
            .as_array()
            .map(|targets| {
                targets
                    .iter()
                    .filter_map(|t| t["expr"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let sent: Vec<&Value> = panels(&dashboard)
        .into_iter()
        .filter(|p| {
            p["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("Messages sent"))
        })
        .collect();
    assert_eq!(sent.len(), 1, "one \"Messages sent\" panel");
    let sent_exprs = exprs(sent[0]);
    assert!(!sent_exprs.is_empty());
    for expr in &sent_exprs {
        assert!(
            expr.contains("cpo_delivery_messages_total{outcome=\"sent\"}"),
            "\"Messages sent\" must count the sent outcome only: {expr}"
        );
    }
    // Anywhere else, delivery's counter is either split by outcome or filtered on one.
    for panel in panels(&dashboard) {
        for expr in exprs(panel) {
            if expr.contains("cpo_delivery_messages_total") {
                assert!(
                    expr.contains("by (outcome)") || expr.contains("outcome=\""),
                    "{}: {expr} adds up every outcome",
                    panel["title"]
                );
            }
        }
    }
}
