//! Helpers of the fleet tests: worker processes of the `cpo` binary on the real
//! RabbitMQ and Redis (127.0.0.1, or CPO_TEST_AMQP_URL / CPO_TEST_REDIS_URL) under
//! a prefix of their own, so tests share the broker without seeing each other.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const STAGES: [&str; 6] = [
    "segmentation",
    "retrieval",
    "generation",
    "safety",
    "experimentation",
    "delivery",
];

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A prefix no other test (or earlier run) uses.
pub fn unique_prefix(tag: &str) -> String {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("t{tag}{}x{n}x{nanos}", std::process::id())
}

pub fn env(prefix: &str, work: &Path) -> Vec<(String, String)> {
    let mut vars = vec![
        ("CPO__AMQP__PREFIX".to_string(), format!("cpo.{prefix}.")),
        (
            "CPO__REDIS__KEY_PREFIX".to_string(),
            format!("cpo:{prefix}:"),
        ),
        (
            "CPO__SECURITY__SIGNING_KEY".to_string(),
            format!("test-signing-{prefix}"),
        ),
        (
            "CPO__SECURITY__PSEUDONYM_KEY".to_string(),
            "test-pseudonyms".to_string(),
        ),
        (
            "CPO__SECURITY__AUDIT_KEY".to_string(),
            format!("test-audit-{prefix}"),
        ),
        (
            "CPO__GENERATION__BRAND".to_string(),
            "Northwind Outfitters".to_string(),
        ),
        (
            "CPO__WORKER__AUDIT_DIR".to_string(),
            work.display().to_string(),
        ),
        (
            "CPO__WORKER__OUTBOX".to_string(),
            work.join("outbox.jsonl").display().to_string(),
        ),
        ("CPO__WORKER__BIND".to_string(), "127.0.0.1".to_string()),
        (
            "CPO__SECURITY__ADDRESS_KEY".to_string(),
            format!("test-address-{prefix}"),
        ),
        // The system of record: a PostgreSQL database of this prefix's own.
        ("CPO__STORE__URL".to_string(), pg_database(prefix)),
        (
            "CPO__SECURITY__UNSUBSCRIBE_KEY".to_string(),
            format!("test-unsubscribe-{prefix}"),
        ),
        // A killed delivery worker's claims resolve after their lease: 20 s here
        // (600 s by default), so the kill tests finish in minutes, not ten.
        ("CPO__DELIVERY__LEASE_SECONDS".to_string(), "20".to_string()),
        (
            "CPO__DELIVERY__RETRY__HOLD_MS".to_string(),
            "5000".to_string(),
        ),
    ];
    if let Ok(url) = std::env::var("CPO_TEST_AMQP_URL") {
        vars.push(("CPO__AMQP__URL".into(), url));
    }
    if let Ok(url) = std::env::var("CPO_TEST_REDIS_URL") {
        vars.push(("CPO__REDIS__URL".into(), url));
    }
    vars
}

/// The send-batch key, for the worker of `stage` under `prefix`: as deployed,
/// only experimentation (which signs) and delivery (which verifies) get it.
pub fn batch_key_env(stage: &str, prefix: &str) -> Option<(&'static str, String)> {
    matches!(stage, "experimentation" | "delivery")
        .then(|| ("CPO__SECURITY__BATCH_KEY", format!("test-batch-{prefix}")))
}

pub fn cpo(vars: &[(String, String)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cpo"));
    command.current_dir(repo()).env_remove("CPO_CONFIG");
    for (k, v) in vars {
        command.env(k, v);
    }
    command
}

/// Create the PostgreSQL database of `prefix` (dropped by `drop_pg_database`)
/// and return its URL. PostgreSQL must run on 127.0.0.1:5432 (user postgres).
pub fn pg_database(prefix: &str) -> String {
    let name = pg_name(prefix);
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-qAtc"])
        .arg(format!("CREATE DATABASE {name}"))
        .output()
        .expect("psql runs (the PostgreSQL client)");
    assert!(
        out.status.success(),
        "PostgreSQL must run on 127.0.0.1:5432 (user postgres, trust auth): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!("postgres://postgres@127.0.0.1:5432/{name}")
}

fn pg_name(prefix: &str) -> String {
    let safe: String = prefix
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("cpo_{safe}")
}

pub fn drop_pg_database(prefix: &str) {
    let _ = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-qAtc"])
        .arg(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            pg_name(prefix)
        ))
        .output();
}

pub fn check_services() {
    let amqp = std::net::TcpStream::connect_timeout(
        &"127.0.0.1:5672".parse().unwrap(),
        Duration::from_secs(2),
    );
    assert!(
        amqp.is_ok() || std::env::var("CPO_TEST_AMQP_URL").is_ok(),
        "RabbitMQ is not running on 127.0.0.1:5672: start it with `rabbitmq-server -detached`"
    );
    let redis = std::net::TcpStream::connect_timeout(
        &"127.0.0.1:6379".parse().unwrap(),
        Duration::from_secs(2),
    );
    assert!(
        redis.is_ok() || std::env::var("CPO_TEST_REDIS_URL").is_ok(),
        "Redis is not running on 127.0.0.1:6379: start it with `redis-server --daemonize yes`"
    );
}

pub fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// customer -> (segment, arm, variant) of an outbox.
pub fn plan(outbox: &[Value]) -> BTreeMap<String, (String, String, String)> {
    outbox
        .iter()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap().to_string();
            (s("customer_id"), (s("segment"), s("arm"), s("variant_id")))
        })
        .collect()
}

/// Six (or fewer) worker processes under one prefix; killed when dropped.
pub struct Fleet {
    pub prefix: String,
    pub work: PathBuf,
    pub vars: Vec<(String, String)>,
    children: BTreeMap<&'static str, Child>,
    base_port: u16,
}

impl Fleet {
    /// A fleet whose processes (workers and tools) all get `extra` in their environment.
    pub fn new(tmp: &Path, tag: &str, extra: &[(&str, &str)]) -> Self {
        check_services();
        static PORTS: AtomicU16 = AtomicU16::new(0);
        let work = tmp.join("fleet");
        std::fs::create_dir_all(&work).unwrap();
        let prefix = unique_prefix(tag);
        let mut vars = env(&prefix, &work);
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let slot = PORTS.fetch_add(1, Ordering::Relaxed);
        // Apart from tests/fleet.rs (20000-39999): 30 ports per test process, 6 per fleet.
        let base_port = 40_000 + (std::process::id() % 800) as u16 * 30 + (slot % 5) * 6;
        Self {
            prefix,
            work,
            vars,
            children: BTreeMap::new(),
            base_port,
        }
    }

    pub fn cpo(&self) -> Command {
        cpo(&self.vars)
    }

    /// The metrics port of `stage`'s worker.
    pub fn port_of(&self, stage: &str) -> u16 {
        self.port(stage)
    }

    fn port(&self, stage: &str) -> u16 {
        self.base_port + STAGES.iter().position(|s| *s == stage).unwrap() as u16
    }

    /// Start a stage's worker (its stderr appended to `<stage>.log`).
    pub fn start(&mut self, stage: &'static str) {
        self.start_with(stage, &[]);
    }

    /// Start another worker of `stage` under `name` (its log `<name>.log`, its
    /// own outbox and audit directory, an OS-chosen port).
    pub fn start_replica(&mut self, stage: &'static str, name: &'static str) -> PathBuf {
        let dir = self.work.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(self.work.join(format!("{name}.log"))).unwrap();
        let outbox = dir.join("outbox.jsonl");
        let child = self
            .cpo()
            .envs(batch_key_env(stage, &self.prefix))
            .env("CPO__WORKER__OUTBOX", &outbox)
            .env("CPO__WORKER__AUDIT_DIR", &dir)
            .args(["worker", stage, "--port", "0"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        assert!(
            self.children.insert(name, child).is_none(),
            "{name} started twice"
        );
        outbox
    }

    pub fn start_with(&mut self, stage: &'static str, extra: &[(&str, &str)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.work.join(format!("{stage}.log")))
            .unwrap();
        let mut command = self.cpo();
        command.envs(batch_key_env(stage, &self.prefix));
        for (k, v) in extra {
            command.env(k, v);
        }
        let child = command
            .args(["worker", stage, "--port", &self.port(stage).to_string()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        assert!(
            self.children.insert(stage, child).is_none(),
            "{stage} started twice"
        );
    }

    pub fn start_all(&mut self) {
        for stage in STAGES {
            self.start(stage);
        }
    }

    /// SIGKILL: no shutdown hook, no flush, unacked deliveries go back to the queue.
    pub fn kill(&mut self, stage: &str) {
        let mut child = self
            .children
            .remove(stage)
            .unwrap_or_else(|| panic!("{stage} is not running"));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Every started worker is still running (none crashed on what it was fed).
    pub fn assert_running(&mut self) {
        let exited: Vec<&str> = self
            .children
            .iter_mut()
            .filter_map(|(stage, child)| child.try_wait().unwrap().map(|_| *stage))
            .collect();
        let logs: Vec<String> = exited.iter().map(|s| self.logs_of(s)).collect();
        assert!(exited.is_empty(), "{exited:?} exited\n{}", logs.join("\n"));
    }

    pub fn logs_of(&self, stage: &str) -> String {
        let log =
            std::fs::read_to_string(self.work.join(format!("{stage}.log"))).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        format!(
            "--- {stage}\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }

    pub fn logs(&self) -> String {
        STAGES
            .iter()
            .map(|s| self.logs_of(s))
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn outbox(&self) -> PathBuf {
        self.work.join("outbox.jsonl")
    }

    pub fn enqueue(&self, customers: Option<&Path>) {
        let mut command = self.cpo();
        command.args(["enqueue", "data/campaign.yaml"]);
        if let Some(customers) = customers {
            command.arg("--customers").arg(customers);
        }
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "enqueue: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `cpo collect` of the bundled campaign, started in the background.
    pub fn spawn_collect(&self, out: &Path, timeout_s: u64) -> Collect {
        let child = self
            .cpo()
            .args([
                "collect",
                "autumn-2026",
                "--out",
                out.to_str().unwrap(),
                "--outbox",
            ])
            .arg(self.outbox())
            .args(["--timeout", &timeout_s.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Collect(Some(child))
    }

    /// Wait for a collect, failing with its output and the workers' logs.
    pub fn finish_collect(&self, mut collect: Collect) {
        let output = collect.0.take().unwrap().wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "collect: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.logs()
        );
    }

    pub fn collect(&self, out: &Path, timeout_s: u64) {
        self.finish_collect(self.spawn_collect(out, timeout_s));
    }

    /// The dead-letter queue through `cpo dlq list --json` (which must leave it intact).
    pub fn dead_letters(&self) -> Vec<Value> {
        let out = self.cpo().args(["dlq", "list", "--json"]).output().unwrap();
        assert!(
            out.status.success(),
            "dlq list: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.cpo().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "cpo {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Stop the workers, then delete the prefix's queues and keys.
    pub fn teardown(mut self) {
        self.stop();
        self.run(&["teardown"]);
    }

    fn stop(&mut self) {
        for child in self.children.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.clear();
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop();
        drop_pg_database(&self.prefix);
    }
}

/// A background `cpo collect`, killed if the test fails before waiting for it.
pub struct Collect(Option<Child>);

impl Drop for Collect {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The summary of a collected campaign, checked: every customer accounted for, one
/// outbox line per assigned customer, no message id twice. Returns (summary, outbox).
pub fn check_collected(out: &Path, customers: u64) -> (Value, Vec<Value>) {
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let n = |k: &str| summary[k].as_u64().unwrap();
    assert_eq!(n("customers_total"), customers, "{summary}");
    assert_eq!(
        n("customers_assigned") + n("customers_excluded"),
        customers,
        "{summary}"
    );
    let outbox = jsonl(&out.join("outbox.jsonl"));
    let ids: std::collections::HashSet<&str> = outbox
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), outbox.len(), "a message was sent twice");
    assert_eq!(
        outbox.len() as u64,
        n("customers_assigned"),
        "a message is missing: {summary}"
    );
    (summary, outbox)
}

/// `cpo gen-data` customers (20,000 make a campaign long enough to break in the middle of).
pub fn gen_customers(dir: &Path, count: u32) -> PathBuf {
    let path = dir.join("customers.csv");
    let out = cpo(&[])
        .args([
            "gen-data",
            "--customers",
            &count.to_string(),
            "--seed",
            "3",
            "--out",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gen-data: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// Seconds since `start`, for the timings the tests print.
pub fn secs(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

// Helpers of the signal and outage tests (tests/fleet_signals.rs, tests/fleet_outages.rs).

impl Fleet {
    /// Port of a stage's `/metrics`, `/healthz` and `/readyz`.
    pub fn http_port(&self, stage: &str) -> u16 {
        self.port(stage)
    }

    /// `GET path` on a stage's HTTP endpoints: (status, body), or None when the
    /// port refuses the connection or does not answer.
    pub fn http(&self, stage: &str, path: &str) -> Option<(u16, String)> {
        http_get(self.port(stage), path)
    }

    /// A stage's `/metrics` text (empty when the port does not answer).
    pub fn metrics_of(&self, stage: &str) -> String {
        self.http(stage, "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default()
    }

    /// Wait until a stage's `/readyz` answers 200, failing with its log.
    pub fn wait_ready(&mut self, stage: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Some((200, _)) = self.http(stage, "/readyz") {
                return;
            }
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "{stage} not ready within {within:?}\n{}",
                self.logs_of(stage)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Process id of a running stage's worker.
    pub fn pid(&self, stage: &str) -> u32 {
        self.children
            .get(stage)
            .unwrap_or_else(|| panic!("{stage} is not running"))
            .id()
    }

    /// Send SIGTERM (through `kill -TERM`, as an orchestrator would) to a worker.
    pub fn signal_term(&self, stage: &str) {
        let pid = self.pid(stage);
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("cannot run `kill`");
        assert!(status.success(), "kill -TERM {pid} ({stage}): {status}");
    }

    /// Wait up to `within` for a worker to exit; its status and how long it took
    /// from `since`. A worker still running then is killed and the test fails.
    pub fn wait_exit(
        &mut self,
        stage: &str,
        since: Instant,
        within: Duration,
    ) -> (std::process::ExitStatus, Duration) {
        let mut child = self
            .children
            .remove(stage)
            .unwrap_or_else(|| panic!("{stage} is not running"));
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return (status, since.elapsed());
            }
            if since.elapsed() > within {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{stage} still running {within:?} after SIGTERM\n{}",
                    self.logs_of(stage)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM a worker and wait up to `within` for it to exit: (status, time to exit).
    pub fn terminate(
        &mut self,
        stage: &str,
        within: Duration,
    ) -> (std::process::ExitStatus, Duration) {
        let since = Instant::now();
        self.signal_term(stage);
        self.wait_exit(stage, since, within)
    }

    /// Whole lines in the fleet's outbox (0 before delivery wrote any).
    pub fn outbox_lines(&self) -> usize {
        std::fs::read_to_string(self.outbox())
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }
}

/// `GET path` on 127.0.0.1:port over plain HTTP/1.1 with `Connection: close`:
/// (status, body), or None when the port refuses or the answer is not HTTP.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    // axum answers with a length or chunks; the tests only look for substrings and
    // sample lines, which chunk-size lines do not disturb.
    Some((status, body.to_string()))
}

/// The value of one series of a Prometheus text exposition (`name{labels}` exactly
/// as rendered, or a bare name), 0 when the series is absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            if name == series {
                value.parse().ok()
            } else {
                None
            }
        })
        .unwrap_or(0.0)
}

/// Poll `check` every `every` until it returns Some, failing with `what` (and the
/// fleet's logs) after `within`.
pub fn wait_for<T>(
    fleet: &Fleet,
    what: &str,
    within: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}\n{}",
            fleet.logs()
        );
        std::thread::sleep(every);
    }
}

/// Every message id the delivery audit log records as sent for the campaign, with
/// how many times (the log must also verify as an unbroken MAC chain, against its head in Redis).
pub fn audited_sends(fleet: &Fleet, campaign: &str) -> BTreeMap<String, usize> {
    let path = fleet.work.join("audit-delivery.jsonl");
    let verify = fleet
        .cpo()
        .args(["audit", "verify", "--redis-head"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "audit verify {}: {}{}",
        path.display(),
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let mut sends = BTreeMap::new();
    for line in jsonl(&path) {
        let event = &line["event"];
        if event["event"] != "send_batch" || event["campaign_id"] != campaign {
            continue;
        }
        for group in event["groups"].as_array().unwrap() {
            for send in group["sends"].as_array().unwrap() {
                *sends
                    .entry(send[0].as_str().unwrap().to_string())
                    .or_insert(0) += 1;
            }
        }
    }
    sends
}

/// What `cpo run` (the embedded mode) plans on the bundled campaign, or on
/// `customers`: customer -> (segment, arm, variant id). The fleet must match it.
pub fn embedded_plan(
    dir: &Path,
    customers: Option<&Path>,
) -> BTreeMap<String, (String, String, String)> {
    let out = dir.join("embedded");
    let mut command = cpo(&[]);
    command.args(["run", "--quiet"]);
    if let Some(customers) = customers {
        command.arg("--customers").arg(customers);
    }
    let run = command.arg("--out").arg(&out).output().unwrap();
    assert!(
        run.status.success(),
        "cpo run: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    plan(&jsonl(&out.join("outbox.jsonl")))
}
