//! `cpo worker gateway` and `cpo ingest`'s signature checks, as processes: the
//! CRM's campaign API through the gateway into a real fleet (RabbitMQ, Redis,
//! a prefix of its own) until `GET /v1/campaigns/{id}` says complete; an SNS
//! envelope with `Signature: "BOGUS"` refused by `cpo ingest`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Fleet, cpo, repo};
use serde_json::{Value, json};

fn fixtures() -> PathBuf {
    repo().join("workers/gateway/tests/fixtures")
}

/// One HTTP/1.1 request on a fresh connection; (status, body).
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the gateway");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_gateway(fleet: &Fleet, port: u16) -> Gateway {
    let log = std::fs::File::create(fleet.work.join("gateway.log")).unwrap();
    let child = fleet
        .cpo()
        .args(["worker", "gateway", "--port", &port.to_string()])
        .env("CPO__GATEWAY__API__TOKEN", "crm-secret")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let gateway = Gateway(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "gateway did not listen: {}",
            read_log(&fleet.work)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    gateway
}

fn read_log(work: &Path) -> String {
    std::fs::read_to_string(work.join("gateway.log")).unwrap_or_default()
}

#[test]
fn a_campaign_posted_to_the_gateway_runs_through_the_fleet_and_its_status_is_served() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::new(tmp.path(), "gw", &[]);
    // Above the fleets' ports (20000-63999) and the ephemeral range, so neither
    // a stage of this fleet nor another test's client socket can take it.
    let port = 64_000 + (std::process::id() % 1000) as u16;
    let gateway = start_gateway(&fleet, port);
    let auth = [
        ("Authorization", "Bearer crm-secret"),
        ("Content-Type", "application/json"),
    ];
    let customers = repo().join("data/customers.csv").display().to_string();
    let campaign = json!({"campaign_id": "gw-crm-1", "name": "Autumn", "objective": "sell boots",
        "call_to_action_url": "https://www.example.com/autumn",
        "audience": {"kind": "csv", "path": customers}})
    .to_string();

    // Refused: no token; a misspelt key (named, with the likely one); no audience.
    assert_eq!(
        http(port, "POST", "/v1/campaigns", &auth[1..], &campaign).0,
        401
    );
    let misspelt = campaign.replace("\"objective\"", "\"objectiv\"");
    let (status, answer) = http(port, "POST", "/v1/campaigns", &auth, &misspelt);
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("objectiv"), "{answer}");
    let no_audience = json!({"campaign_id": "gw-crm-2", "name": "n", "objective": "o"}).to_string();
    let (status, answer) = http(port, "POST", "/v1/campaigns", &auth, &no_audience);
    assert_eq!(status, 422);
    assert!(answer.contains("audience"), "{answer}");
    let (status, answer) = http(port, "GET", "/v1/campaigns/gw-crm-1", &auth[..1], "");
    assert_eq!(status, 404, "not started yet: {answer}");

    let (status, answer) = http(port, "POST", "/v1/campaigns", &auth, &campaign);
    assert_eq!(status, 202, "{answer}\n{}", read_log(&fleet.work));
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap()["campaign_id"],
        "gw-crm-1"
    );

    fleet.start_all();
    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        let (code, body) = http(port, "GET", "/v1/campaigns/gw-crm-1", &auth[..1], "");
        if code == 200 {
            let status: Value = serde_json::from_str(&body).unwrap();
            if status["state"] == "complete" {
                break status;
            }
        }
        assert!(
            Instant::now() < deadline,
            "campaign not complete: {code} {body}\n{}",
            fleet.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(status["campaign_id"], "gw-crm-1");
    assert_eq!(status["outstanding"], 0);
    // The same document `cpo status --json` prints.
    let out = fleet.run(&["status", "gw-crm-1", "--json"]);
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["counters"], status["counters"]);
    drop(gateway);
    fleet.teardown();
}

#[test]
fn cpo_ingest_refuses_an_sns_envelope_whose_signature_does_not_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let message_id = cpo_shared::envelope::message_id("spring-1", "c1");
    let record = json!({"message_id": message_id, "campaign_id": "spring-1", "customer_id": "c1",
        "segment": "s", "arm": "control", "variant_id": "v", "to": "c1@example.com",
        "subject": "s", "body": "b", "citations": [], "fallback": null});
    std::fs::write(run.join("outbox.jsonl"), format!("{record}\n")).unwrap();
    let config = tmp.path().join("cpo.yaml");
    std::fs::write(
        &config,
        format!(
            "gateway:\n  ses:\n    regions: [us-east-1]\n    certificates:\n      \"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem\": {}\n",
            fixtures().join("sns-test-only.pem").display()
        ),
    )
    .unwrap();
    let ingest = |config: Option<&Path>| {
        let mut command = cpo(&[]);
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let out = command
            .arg("ingest")
            .arg("--run")
            .arg(&run)
            .arg(fixtures().join("sns-bogus-notification.json"))
            .arg(fixtures().join("sns-signed-notification.json"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let events = std::fs::read_to_string(run.join("events.jsonl")).unwrap_or_default();
        let _ = std::fs::remove_file(run.join("events.jsonl"));
        (String::from_utf8_lossy(&out.stdout).to_string(), events)
    };

    let (said, events) = ingest(Some(&config));
    assert!(said.contains("1 event(s) refused"), "{said}");
    assert!(
        said.contains("sns-bogus-notification.json") && said.contains("signature"),
        "{said}"
    );
    let lines: Vec<Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "only the genuine notification is kept: {events}"
    );
    assert_eq!(lines[0]["event_id"], "ses:sns-fixture-1");

    // Without the gateway.ses settings nothing signed can be checked, so nothing signed is kept.
    let (said, events) = ingest(None);
    assert!(said.contains("2 event(s) refused"), "{said}");
    assert!(events.lines().next().is_none(), "{events}");
}

#[test]
fn a_bad_gateway_setting_stops_the_start_naming_its_key_before_any_connection() {
    for (key, value, named) in [
        (
            "CPO__GATEWAY__SENDGRID__PUBLIC_KEY",
            "not-a-key",
            "gateway.sendgrid.public_key",
        ),
        (
            "CPO__GATEWAY__SES__REGIONS",
            "evil.example/x",
            "gateway.ses.regions",
        ),
        (
            "CPO__GATEWAY__PORT",
            "8081",
            "section `gateway`: nothing enabled",
        ),
    ] {
        let out = cpo(&[])
            .args(["worker", "gateway"])
            .env(key, value)
            // A broker that is not there: reaching it would hang, not fail fast.
            .env("CPO__AMQP__URL", "amqp://guest:guest@127.0.0.1:1/%2f")
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{key}");
        assert!(said.contains(named), "{key}: {said}");
        assert!(
            !said.contains("amqp"),
            "{key}: connected before checking: {said}"
        );
    }
}
