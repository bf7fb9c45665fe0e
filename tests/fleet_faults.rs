//! The fleet under faults, on the real RabbitMQ and Redis: workers killed with
//! SIGKILL mid-campaign, poison messages on every work queue, tampered send
//! batches, and a broker restart. Each test has a prefix of its own and tears it
//! down at the end; a service that is down fails the test with how to start it.
//!
//! The broker restart stops the whole RabbitMQ application, so it runs alone: the
//! other tests of this file hold the shared side of `BROKER`, it the exclusive one.

mod common;

use std::sync::RwLock;
use std::time::{Duration, Instant};

use common::{Fleet, STAGES, check_collected, gen_customers, secs};
use cpo_shared::envelope::message_id;
use cpo_shared::queues;
use cpo_shared::transport::amqp::{AmqpConfig, AmqpTransport};
use cpo_shared::transport::{Publish, Transport};
use serde_json::{Value, json};

static BROKER: RwLock<()> = RwLock::new(());

const BUNDLED_CUSTOMERS: u64 = 250;
const LARGE_CUSTOMERS: u32 = 20_000;

/// A transport on the fleet's prefix; it lives on the runtime that connected it.
async fn transport_for(fleet: &Fleet) -> AmqpTransport {
    let mut config = AmqpConfig {
        prefix: format!("cpo.{}.", fleet.prefix),
        ..AmqpConfig::default()
    };
    if let Ok(url) = std::env::var("CPO_TEST_AMQP_URL") {
        config.url = url;
    }
    AmqpTransport::connect(config).await.unwrap()
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Publish raw bodies straight onto logical queues, as a broken producer would.
fn publish_raw(fleet: &Fleet, messages: Vec<(&'static str, String, Vec<u8>)>) {
    tokio_runtime().block_on(async {
        let transport = transport_for(fleet).await;
        for (queue, id, body) in messages {
            transport
                .publish(
                    queue,
                    Publish {
                        id,
                        body,
                        delay: None,
                    },
                )
                .await
                .unwrap();
        }
        transport.close().await;
    });
}

/// Wait until every work queue of the fleet has been empty for a moment.
fn wait_idle(fleet: &Fleet, within: Duration) {
    let deadline = Instant::now() + within;
    tokio_runtime().block_on(async {
        let transport = transport_for(fleet).await;
        let mut quiet = 0;
        while quiet < 3 {
            assert!(
                Instant::now() < deadline,
                "work queues not drained\n{}",
                fleet.logs()
            );
            let depths = transport.queue_depths().await.unwrap();
            let busy = depths
                .iter()
                .any(|d| queues::PIPELINE_QUEUES.contains(&d.queue.as_str()) && d.ready > 0);
            quiet = if busy { 0 } else { quiet + 1 };
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        transport.close().await;
    });
}

#[test]
fn workers_killed_one_by_one_mid_campaign_lose_and_duplicate_nothing() {
    let _shared = BROKER.read().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let customers = gen_customers(tmp.path(), LARGE_CUSTOMERS);
    // Small audience batches: a thousand of them keep every stage busy long enough to
    // kill each in turn mid-campaign, and each kill interrupts some batch in flight.
    let mut fleet = Fleet::new(
        tmp.path(),
        "kill",
        &[("CPO__SEGMENTATION__BATCH_SIZE", "10")],
    );
    fleet.start_all();
    fleet.enqueue(Some(&customers));
    let out = tmp.path().join("out");
    let collect = fleet.spawn_collect(&out, 240);

    let outbox_lines = |fleet: &Fleet| {
        std::fs::read_to_string(fleet.outbox())
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let mut at_kill = Vec::new();
    for stage in STAGES {
        std::thread::sleep(Duration::from_millis(150));
        at_kill.push((stage, outbox_lines(&fleet)));
        fleet.kill(stage);
        std::thread::sleep(Duration::from_millis(300));
        fleet.start(stage);
        // A worker that cannot come back after a crash fails here, not at the timeout.
        std::thread::sleep(Duration::from_millis(400));
        fleet.assert_running();
        eprintln!("killed and restarted {stage} at {:.1}s", secs(started));
    }
    fleet.finish_collect(collect);
    let (summary, _) = check_collected(&out, u64::from(LARGE_CUSTOMERS));
    let assigned = summary["customers_assigned"].as_u64().unwrap() as usize;
    eprintln!(
        "kill test: {assigned} assigned and sent once each; outbox lines at each kill {at_kill:?}; {:.1}s",
        secs(started)
    );
    // Otherwise the test proved nothing: the campaign was over before a worker died.
    for (stage, lines) in &at_kill {
        assert!(
            *lines < assigned,
            "{stage} was killed after the campaign was complete ({lines} lines)"
        );
    }
    fleet.teardown();
}

/// The four kinds of bad input for one queue, with the id (where it has one) and the
/// reason fragment its dead letter must show.
fn poison(
    queue: &'static str,
    limit: usize,
) -> Vec<(&'static str, String, Vec<u8>, &'static str, &'static str)> {
    let envelope = |id: &str, version: u32, payload: Value| {
        serde_json::to_vec(&json!({"id": id, "campaign_id": "poison", "version": version, "attempt": 0, "first_seen_ms": 1, "payload": payload})).unwrap()
    };
    let schema_id = format!("bad-schema-{queue}");
    let version_id = format!("bad-version-{queue}");
    let oversized = envelope(
        &format!("big-{queue}"),
        1,
        json!({"pad": "x".repeat(limit)}),
    );
    vec![
        (
            queue,
            format!("garbage-{queue}"),
            format!("not json at all {queue} \u{1}").into_bytes(),
            "undecodable",
            "not a JSON envelope",
        ),
        (
            queue,
            schema_id.clone(),
            envelope(&schema_id, 1, json!({"nonsense": true})),
            "undecodable",
            "schema",
        ),
        (
            queue,
            version_id.clone(),
            envelope(&version_id, 99, json!({})),
            "undecodable",
            "unsupported schema version",
        ),
        (
            queue,
            format!("big-{queue}"),
            oversized,
            "oversized",
            "exceeds the limit",
        ),
    ]
}

#[test]
fn poison_messages_on_every_work_queue_are_dead_lettered_and_the_workers_go_on() {
    let _shared = BROKER.read().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    // Large enough for the bundled campaign's real messages, small enough to exceed cheaply.
    let limit = 2 * 1024 * 1024;
    let limit_s = limit.to_string();
    let mut fleet = Fleet::new(
        tmp.path(),
        "poison",
        &[("CPO__RUNTIME__MAX_MESSAGE_BYTES", &limit_s)],
    );
    fleet.start_all();

    let bad: Vec<_> = queues::PIPELINE_QUEUES
        .iter()
        .flat_map(|q| poison(q, limit))
        .collect();
    publish_raw(
        &fleet,
        bad.iter()
            .map(|(q, id, body, _, _)| (*q, id.clone(), body.clone()))
            .collect(),
    );
    wait_idle(&fleet, Duration::from_secs(60));
    fleet.assert_running();

    // Listing twice shows the same letters: the listing leaves the queue intact.
    let letters = fleet.dead_letters();
    assert_eq!(
        fleet.dead_letters().len(),
        letters.len(),
        "dlq list consumed letters"
    );
    for (queue, id, _, kind, reason) in &bad {
        let found = letters.iter().any(|l| {
            l["queue"] == *queue
                && l["kind"] == *kind
                && l["reason"].as_str().unwrap_or("").contains(reason)
                && (id.starts_with("garbage") || l["id"] == id.as_str())
        });
        assert!(
            found,
            "no {kind} letter for {id} on {queue} with `{reason}` in:\n{letters:#?}"
        );
    }
    // The table form also shows them, with a human first-seen time.
    let table = String::from_utf8_lossy(&fleet.run(&["dlq", "list"]).stdout).to_string();
    assert!(
        table.contains(&format!("{} dead letter(s)", letters.len())),
        "{table}"
    );
    assert!(
        table.contains("first_seen=1970-01-01 00:00:00.001Z"),
        "{table}"
    );

    // The same workers still run a whole campaign.
    fleet.enqueue(None);
    let out = tmp.path().join("out");
    fleet.collect(&out, 120);
    check_collected(&out, BUNDLED_CUSTOMERS);
    fleet.assert_running();
    eprintln!(
        "poison test: {} letters, {:.1}s",
        letters.len(),
        secs(started)
    );
    fleet.teardown();
}

/// One real send batch from the fleet's `send` queue, handed back untouched.
fn take_send_batch(fleet: &Fleet) -> Value {
    tokio_runtime().block_on(async {
        let transport = transport_for(fleet).await;
        let mut send = transport.subscribe(queues::SEND, 1).await.unwrap();
        let next = tokio::time::timeout(Duration::from_secs(90), send.next()).await;
        let delivery = next.expect("no send batch within 90 s").unwrap().unwrap();
        let batch: Value = serde_json::from_slice(&delivery.body).unwrap();
        delivery.acker.reject(true).await.unwrap();
        transport.close().await;
        batch
    })
}

/// A genuine send batch republished with new recipients, a phishing link and
/// an abusive first name once reached the outbox (its templates were still
/// genuine). The batch signature covers all of it: delivery dead-letters the
/// forgery whole, with the reason, and sends none of it.
#[test]
fn a_genuine_batch_republished_with_new_recipients_and_links_is_dead_lettered() {
    let _shared = BROKER.read().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::new(tmp.path(), "forged", &[]);
    for stage in STAGES.iter().filter(|s| **s != "delivery") {
        fleet.start(stage);
    }
    fleet.enqueue(None);
    let batch = take_send_batch(&fleet);

    let mut forged = batch.clone();
    forged["id"] = json!("forged-republish");
    let payload = &mut forged["payload"];
    payload["call_to_action_url"] = json!("https://evil.example/phish");
    let messages: Vec<Value> = payload["messages"].as_array().unwrap()[..4]
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut m = m.clone();
            // New recipients, with the message ids a forger derives for them
            // (the derivation is public), so no dedupe marker stops them.
            let customer = format!("EVIL{i}");
            m["message_id"] = json!(message_id("autumn-2026", &customer));
            m["recipient"]["customer_id"] = json!(customer);
            m["recipient"]["email"] = json!(format!("victim{i}@evil.example"));
            m["recipient"]["first_name"] = json!("Fuck you, idiot");
            m
        })
        .collect();
    payload["messages"] = json!(messages);
    // Ahead of the real batches: delivery meets the forgery first.
    publish_raw(
        &fleet,
        vec![(
            queues::SEND,
            "forged-republish".into(),
            serde_json::to_vec(&forged).unwrap(),
        )],
    );
    fleet.start("delivery");
    let out = tmp.path().join("out");
    fleet.collect(&out, 120);
    // The campaign can be complete before delivery reaches the forgery: wait for it.
    wait_idle(&fleet, Duration::from_secs(60));
    check_collected(&out, BUNDLED_CUSTOMERS);

    let raw = std::fs::read_to_string(fleet.outbox()).unwrap();
    for forged_text in ["evil.example", "Fuck", "idiot"] {
        assert!(
            !raw.contains(forged_text),
            "`{forged_text}` reached the outbox"
        );
    }
    let letters = fleet.dead_letters();
    let refused: Vec<&Value> = letters
        .iter()
        .filter(|l| l["id"] == "forged-republish" || l["message"]["id"] == "forged-republish")
        .collect();
    assert_eq!(refused.len(), 1, "{letters:#?}");
    let letter = refused[0];
    assert_eq!(
        (&letter["stage"], &letter["queue"], &letter["kind"]),
        (
            &json!("delivery"),
            &json!(queues::SEND),
            &json!("permanent")
        ),
        "{letter:#}"
    );
    assert!(
        letter["reason"]
            .as_str()
            .unwrap()
            .contains("send batch signature does not match its content"),
        "{letter:#}"
    );
    // the letter keeps the forgery as it came, for inspection
    assert_eq!(
        letter["message"]["payload"]["call_to_action_url"],
        "https://evil.example/phish"
    );
    eprintln!(
        "forged republish test: refused whole, {:.1}s",
        secs(started)
    );
    fleet.teardown();
}

#[test]
fn tampered_or_unsigned_send_batches_never_reach_the_outbox() {
    let _shared = BROKER.read().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::new(tmp.path(), "tamper", &[]);
    for stage in STAGES.iter().filter(|s| **s != "delivery") {
        fleet.start(stage);
    }
    fleet.enqueue(None);
    let batch = take_send_batch(&fleet);

    // One template and only its messages, so every message of a forged batch is rejected.
    let forge = |id: &str, edit: &dyn Fn(&mut Value)| {
        let mut forged = batch.clone();
        forged["id"] = json!(id);
        let template = forged["payload"]["templates"][0].clone();
        let variant = template["variant_id"].clone();
        forged["payload"]["templates"] = json!([template]);
        let messages: Vec<Value> = forged["payload"]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["variant_id"] == variant || m["assignment"]["variant_id"] == variant)
            .take(3)
            .cloned()
            .collect();
        assert!(
            !messages.is_empty(),
            "no message uses the first template: {batch}"
        );
        forged["payload"]["messages"] = json!(messages);
        edit(&mut forged["payload"]["templates"][0]);
        (
            queues::SEND,
            id.to_string(),
            serde_json::to_vec(&forged).unwrap(),
        )
    };
    let forged = vec![
        forge("forged-body", &|t| {
            t["body"] = json!(format!("{} TAMPERED-BODY", t["body"].as_str().unwrap()))
        }),
        forge("forged-signature", &|t| {
            t["approval"]["signature"] = json!("00".repeat(32))
        }),
        forge("forged-unsigned", &|t| {
            t["approval"]["signature"] = json!("")
        }),
    ];
    // Ahead of the real batches: delivery meets the forgeries first.
    publish_raw(&fleet, forged);
    fleet.start("delivery");
    let out = tmp.path().join("out");
    fleet.collect(&out, 120);
    let (_, outbox) = check_collected(&out, BUNDLED_CUSTOMERS);
    let raw = std::fs::read_to_string(fleet.outbox()).unwrap();
    assert!(!raw.contains("TAMPERED-BODY"), "a tampered body was sent");
    assert!(!outbox.is_empty());

    let letters = fleet.dead_letters();
    let rejected: Vec<&Value> = letters
        .iter()
        .filter(|l| l["stage"] == "delivery" && l["queue"] == queues::SEND)
        .collect();
    // Each forgery changed what experimentation signed: refused whole, one letter each.
    assert_eq!(
        rejected.len(),
        3,
        "one letter per forged batch:\n{letters:#?}"
    );
    assert!(
        rejected.iter().all(|l| l["kind"] == "permanent"
            && l["reason"]
                .as_str()
                .unwrap()
                .contains("send batch signature does not match")),
        "{rejected:#?}"
    );
    eprintln!(
        "tamper test: {} rejected, reasons {:?}, {:.1}s",
        rejected.len(),
        rejected
            .iter()
            .map(|l| l["reason"].as_str().unwrap())
            .collect::<std::collections::BTreeSet<_>>(),
        secs(started)
    );
    fleet.teardown();
}

fn rabbitmqctl(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .map_err(|e| format!("rabbitmqctl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "rabbitmqctl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn a_broker_restart_mid_campaign_changes_nothing_in_the_outbox() {
    let _exclusive = BROKER.write().unwrap_or_else(|e| e.into_inner());
    if std::env::var("CPO_TEST_AMQP_URL").is_ok() {
        eprintln!("skipped: CPO_TEST_AMQP_URL points at a broker this test cannot restart");
        return;
    }
    // Can the test restart the broker at all? A status query needs the same rights.
    if let Err(why) = rabbitmqctl(&["status"]) {
        eprintln!("skipped: cannot control the local broker: {why}");
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let customers = gen_customers(tmp.path(), LARGE_CUSTOMERS);
    // Small batches, as in the kill test, so the broker goes down mid-campaign.
    let mut fleet = Fleet::new(
        tmp.path(),
        "restart",
        &[("CPO__SEGMENTATION__BATCH_SIZE", "10")],
    );
    fleet.start_all();
    fleet.enqueue(Some(&customers));
    let out = tmp.path().join("out");
    let collect = fleet.spawn_collect(&out, 240);
    std::thread::sleep(Duration::from_millis(2_500));
    let lines_before = std::fs::read_to_string(fleet.outbox())
        .map(|s| s.lines().count())
        .unwrap_or(0);
    let stopped = Instant::now();
    let restart = rabbitmqctl(&["stop_app"]).and_then(|()| {
        std::thread::sleep(Duration::from_secs(2));
        rabbitmqctl(&["start_app"])
    });
    // Whatever happened, leave the broker running for everyone else.
    let awaited = rabbitmqctl(&["await_startup"]);
    restart.unwrap();
    awaited.unwrap();
    eprintln!(
        "broker down and up in {:.1}s at {:.1}s ({lines_before} outbox lines before)",
        secs(stopped),
        secs(started)
    );
    fleet.finish_collect(collect);
    let (_, outbox) = check_collected(&out, u64::from(LARGE_CUSTOMERS));
    assert!(
        lines_before < outbox.len(),
        "the broker went down after the campaign was complete"
    );
    fleet.assert_running();

    // The same outbox as without the restart: the embedded mode plans the same messages.
    assert_eq!(
        common::plan(&outbox),
        common::embedded_plan(tmp.path(), Some(&customers))
    );
    eprintln!(
        "restart test: {} messages, {:.1}s",
        outbox.len(),
        secs(started)
    );
    fleet.teardown();
}

/// Replay at delivery (tests/fleet_safety_outage.rs does it at safety): delivery
/// first runs with the wrong signing key and dead-letters every message (each as a
/// replayable one-message batch), then restarts with the right key, and
/// `cpo dlq replay` delivers them. A letter without a message stays.
#[test]
fn messages_refused_by_a_misconfigured_delivery_are_sent_once_replayed_and_raw_letters_stay() {
    let _shared = BROKER.read().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::new(
        tmp.path(),
        "replay",
        &[("CPO__SEGMENTATION__BATCH_SIZE", "50")],
    );
    for stage in STAGES.iter().filter(|s| **s != "delivery") {
        fleet.start(stage);
    }
    fleet.start_with(
        "delivery",
        &[("CPO__SECURITY__SIGNING_KEY", "not-the-fleet-key")],
    );
    publish_raw(
        &fleet,
        vec![(queues::SEND, "raw".into(), b"\xffnot json".to_vec())],
    );
    fleet.enqueue(None);
    let out = tmp.path().join("out");
    let collect = fleet.spawn_collect(&out, 120);

    // Wait until the dead-letter queue stops growing: every message refused.
    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut letters, mut stable) = (Vec::new(), 0);
    while stable < 3 {
        assert!(
            Instant::now() < deadline,
            "messages not dead-lettered\n{}",
            fleet.logs()
        );
        std::thread::sleep(Duration::from_millis(700));
        let now = fleet.dead_letters();
        stable = if now.len() == letters.len() && now.len() > 1 {
            stable + 1
        } else {
            0
        };
        letters = now;
    }
    let refused: Vec<&Value> = letters
        .iter()
        .filter(|l| l["stage"] == "delivery" && l["kind"] == "permanent")
        .collect();
    assert_eq!(refused.len() + 1, letters.len(), "{letters:#?}");
    assert!(
        refused
            .iter()
            .all(|l| l["queue"] == queues::SEND && l["message"].is_object()),
        "{refused:#?}"
    );
    let outbox_lines = || {
        std::fs::read_to_string(fleet.outbox())
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    assert_eq!(
        outbox_lines(),
        0,
        "a message with an unverifiable approval was delivered"
    );

    fleet.kill("delivery");
    fleet.start("delivery");
    // One by id first, then the rest.
    let first = refused[0]["id"].as_str().unwrap().to_string();
    let one =
        String::from_utf8_lossy(&fleet.run(&["dlq", "replay", "--id", &first]).stdout).to_string();
    assert!(one.contains("1 replayed"), "{one}");
    let all = String::from_utf8_lossy(&fleet.run(&["dlq", "replay", "--all"]).stdout).to_string();
    assert!(
        all.contains(&format!("{} replayed, 1 kept", refused.len() - 1)),
        "{all}"
    );
    assert!(all.contains("cannot replay raw-"), "{all}");

    fleet.finish_collect(collect);
    check_collected(&out, BUNDLED_CUSTOMERS);
    let left = fleet.dead_letters();
    assert_eq!(left.len(), 1, "only the raw letter stays: {left:#?}");
    assert!(left[0]["message"].is_null() && left[0]["raw"].as_str().unwrap().contains("not json"));
    eprintln!(
        "replay test: {} messages replayed, {:.1}s",
        refused.len(),
        secs(started)
    );
    fleet.teardown();
}
