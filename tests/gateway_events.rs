//! The engagement loop as processes: `cpo worker gateway` and `cpo worker events`
//! on the real RabbitMQ, one SQLite store: a signed Mailgun complaint posted to
//! the gateway becomes a stored event and an address suppression; a one-click
//! unsubscribe becomes a customer suppression; a replayed token stores nothing.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use cpo_shared::store::{self, StoreConfig, SuppressionKey};
use serde_json::json;

fn post(port: u16, path: &str, content_type: &str, body: &str) -> u16 {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn webhooks_and_unsubscribes_through_the_gateway_end_in_the_store() {
    check_services();
    let tmp = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("gwev");
    let mut vars = env(&prefix, tmp.path());
    let url = format!("sqlite://{}/store.sqlite", tmp.path().display());
    for (k, v) in [
        ("CPO__STORE__URL", url.as_str()),
        ("CPO__SECURITY__ADDRESS_KEY", "loop-address-key"),
        ("CPO__SECURITY__UNSUBSCRIBE_KEY", "loop-unsubscribe-key"),
        ("CPO__GATEWAY__MAILGUN__SIGNING_KEY", "loop-mailgun-key"),
        ("CPO__GATEWAY__UNSUBSCRIBE", "true"),
    ] {
        vars.push((k.into(), v.into()));
    }
    let spawn = |args: &[&str], log: &str| {
        let log = std::fs::File::create(tmp.path().join(log)).unwrap();
        Killed(
            cpo(&vars)
                .args(args)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        )
    };
    // Above the fleets' ports (20000-63999), the gateway process test's
    // (64000-64999) and the ephemeral range.
    let events_port = 65_000 + (std::process::id() % 250) as u16 * 2;
    let gateway_port = events_port + 1;
    let _events = spawn(
        &["worker", "events", "--port", &events_port.to_string()],
        "events.log",
    );
    let _gateway = spawn(
        &["worker", "gateway", "--port", &gateway_port.to_string()],
        "gateway.log",
    );
    let logs = || {
        ["events.log", "gateway.log"]
            .map(|f| std::fs::read_to_string(tmp.path().join(f)).unwrap_or_default())
            .join("\n")
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", gateway_port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "gateway not listening\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let message_id = cpo_shared::envelope::message_id("loop-1", "cust-1");
    let ts = (cpo_shared::envelope::now_ms() / 1000).to_string();
    let complaint = json!({
        "signature": {"timestamp": ts, "token": "loop-token-1",
            "signature": cpo_gateway::verify::mailgun::sign(b"loop-mailgun-key", &ts, "loop-token-1")},
        "event-data": {"id": "mg-loop-1", "event": "complained", "timestamp": 1_765_000_000.0,
            "recipient": "Zoe@Example.com", "user-variables": {"message_id": message_id}}})
    .to_string();
    assert_eq!(
        post(
            gateway_port,
            "/webhooks/mailgun",
            "application/json",
            &complaint
        ),
        200,
        "{}",
        logs()
    );
    assert_eq!(
        post(
            gateway_port,
            "/webhooks/mailgun",
            "application/json",
            &complaint
        ),
        401,
        "replay"
    );

    let token = cpo_shared::unsubscribe::UnsubscribeTokens::new("loop-unsubscribe-key")
        .token("loop-1", "cust-2");
    let form = "application/x-www-form-urlencoded";
    assert_eq!(
        post(
            gateway_port,
            &format!("/u/{token}"),
            form,
            "List-Unsubscribe=One-Click"
        ),
        200,
        "{}",
        logs()
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (events, suppressed) = runtime.block_on(async {
        let store = store::connect(&StoreConfig {
            url,
            ..StoreConfig::default()
        })
        .await
        .unwrap();
        let address = SuppressionKey::AddressHash(
            cpo_shared::privacy::AddressHasher::new("loop-address-key").hash("zoe@example.com"),
        );
        let customer = SuppressionKey::Customer("cust-2".into());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let events = store.count_events(&message_id).await.unwrap();
            let suppressed = store
                .suppressed(&[address.clone(), customer.clone()])
                .await
                .unwrap();
            if (events >= 1 && suppressed.len() == 2) || Instant::now() > deadline {
                return (events, suppressed);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    assert_eq!(events, 1, "the complaint stored once\n{}", logs());
    assert_eq!(
        suppressed.len(),
        2,
        "address and customer suppressed: {suppressed:?}\n{}",
        logs()
    );
    let teardown = cpo(&vars).arg("teardown").output().unwrap();
    assert!(teardown.status.success());
}
