//! `cpo worker events` as its own process on the real RabbitMQ, writing to a
//! SQLite store: an event published to `events` becomes a row and a
//! suppression, and /metrics shows the stage's counters.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use cpo_shared::model::EventMessage;
use cpo_shared::store::{self, StoreConfig, SuppressionKey};
use cpo_shared::transport::amqp::{AmqpConfig, AmqpTransport};
use cpo_shared::transport::{Publish, Transport};
use cpo_shared::{Envelope, queues};

#[test]
fn the_events_worker_stores_events_and_suppresses() {
    check_services();
    let tmp = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("events");
    let mut vars = env(&prefix, tmp.path());
    let url = format!("sqlite://{}/store.sqlite", tmp.path().display());
    vars.push(("CPO__STORE__URL".into(), url.clone()));
    vars.push((
        "CPO__SECURITY__ADDRESS_KEY".into(),
        "worker-test-key".into(),
    ));
    let port = 39_000 + (std::process::id() % 900) as u16;
    let log = std::fs::File::create(tmp.path().join("events.log")).unwrap();
    let mut worker = cpo(&vars)
        .args(["worker", "events", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let logs = || std::fs::read_to_string(tmp.path().join("events.log")).unwrap_or_default();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let outcome = runtime.block_on(async {
        let mut config = AmqpConfig {
            prefix: format!("cpo.{prefix}."),
            ..AmqpConfig::default()
        };
        if let Ok(url) = std::env::var("CPO_TEST_AMQP_URL") {
            config.url = url;
        }
        let transport = AmqpTransport::connect(config).await.unwrap();
        let event = EventMessage {
            provider: "mailgun".into(),
            event_id: "mailgun:ev-1".into(),
            message_id: Some("msg-unknown".into()),
            provider_message_id: None,
            event_type: "complaint".into(),
            occurred_at_ms: 5,
            raw: r#"{"event-data":{"recipient":"Zoe@Example.com"}}"#.into(),
        };
        let envelope = Envelope::new("evt-1", "events", event);
        transport
            .publish(
                queues::EVENTS,
                Publish {
                    id: envelope.id.clone(),
                    body: serde_json::to_vec(&envelope).unwrap(),
                    delay: None,
                },
            )
            .await
            .unwrap();

        let store = store::connect(&StoreConfig {
            url: url.clone(),
            ..StoreConfig::default()
        })
        .await
        .unwrap();
        let hash =
            cpo_shared::privacy::AddressHasher::new("worker-test-key").hash("zoe@example.com");
        let key = SuppressionKey::AddressHash(hash);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut stored = false;
        while Instant::now() < deadline {
            if store.count_events("msg-unknown").await.unwrap() == 1
                && store
                    .suppressed(std::slice::from_ref(&key))
                    .await
                    .unwrap()
                    .contains(&key)
            {
                stored = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let listed = store.list_suppressions().await.unwrap();
        let _ = transport.delete_topology().await;
        transport.close().await;
        (stored, listed)
    });
    let metrics = std::process::Command::new("curl")
        .args(["-s", &format!("http://127.0.0.1:{port}/metrics")])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let _ = worker.kill();
    let _ = worker.wait();
    let (stored, listed) = outcome;
    assert!(stored, "event not stored\n{}", logs());
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].reason.as_str(), listed[0].source.as_str()),
        ("complained", "mailgun")
    );
    assert!(
        metrics.contains("cpo_events_stored_total{provider=\"mailgun\",type=\"complaint\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cpo_events_unmatched_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cpo_suppressions_added_total{reason=\"complained\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cpo_store_errors_total{op=\"record_events\"} 0"),
        "{metrics}"
    );
}

#[test]
fn the_events_worker_refuses_to_start_without_the_address_key_or_store() {
    let tmp = tempfile::tempdir().unwrap();
    let vars = env(&unique_prefix("evkey"), tmp.path());
    let no_key = cpo(&vars)
        .env_remove("CPO__SECURITY__ADDRESS_KEY")
        .env(
            "CPO__STORE__URL",
            format!("sqlite://{}/s.sqlite", tmp.path().display()),
        )
        .args(["worker", "events", "--port", "0"])
        .output()
        .unwrap();
    assert!(!no_key.status.success());
    let stderr = String::from_utf8_lossy(&no_key.stderr);
    assert!(
        stderr.contains("security.address_key is not set"),
        "{stderr}"
    );

    let no_store = cpo(&vars)
        .env("CPO__SECURITY__ADDRESS_KEY", "k")
        .env(
            "CPO__STORE__URL",
            "postgres://postgres:secret@127.0.0.1:1/none",
        )
        .env("CPO__STORE__ACQUIRE_TIMEOUT_MS", "1000")
        .args(["worker", "events", "--port", "0"])
        .output()
        .unwrap();
    assert!(!no_store.status.success());
    let stderr = String::from_utf8_lossy(&no_store.stderr);
    assert!(stderr.contains("cannot open the store"), "{stderr}");
    assert!(!stderr.contains("secret@"), "{stderr}");
}
