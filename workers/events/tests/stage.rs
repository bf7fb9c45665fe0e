//! The events stage end to end through RabbitMQ into each store: rows,
//! suppressions with their reasons, replays deduplicated, batching. One test
//! in this binary, so the process-wide metrics it reads are its own.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use cpo_events::metrics::events_metrics;
use cpo_shared::metrics::metrics;
use cpo_shared::privacy::AddressHasher;
use cpo_shared::store::{Assignment, Claim, Store, SuppressionKey};

fn assignments() -> Vec<Assignment> {
    (1..=4)
        .map(|i| Assignment {
            message_id: format!("msg-{i}"),
            campaign_id: "spring".into(),
            customer_id: format!("C{i}"),
            segment: "loyal".into(),
            arm: "control".into(),
            variant: "v1".into(),
        })
        .collect()
}

fn scenario() -> Vec<cpo_shared::model::EventMessage> {
    let mut by_provider_id = event("e7", "delivered", None, "{}");
    by_provider_id.provider_message_id = Some("sg-msg-4".into());
    vec![
        event(
            "e1",
            "bounce",
            Some("msg-1"),
            r#"{"email":"C1@Example.com","type":"bounce"}"#,
        ),
        event(
            "e2",
            "complaint",
            Some("msg-2"),
            r#"{"email":"c2@example.com"}"#,
        ),
        event("e3", "unsubscribe", Some("msg-3"), "{}"),
        event("e4", "open", Some("msg-4"), r#"{"email":"c4@example.com"}"#),
        // A soft bounce suppresses nobody.
        event(
            "e5",
            "bounce",
            Some("msg-4"),
            r#"{"email":"c4@example.com","type":"blocked"}"#,
        ),
        // Not our message: stored, unmatched, and the address still suppressed.
        event(
            "e6",
            "unsubscribe",
            Some("msg-nope"),
            r#"{"email":"stranger@example.com"}"#,
        ),
        by_provider_id,
    ]
}

fn succeeded() -> u64 {
    metrics().succeeded.with_label_values(&["events"]).get()
}

async fn run_scenario(store: Arc<dyn Store>, tag: &str) {
    store.insert_assignments(&assignments()).await.unwrap();
    assert!(matches!(
        store
            .claim_send("msg-4", "sendgrid", 0, 1_000)
            .await
            .unwrap(),
        Claim::Claimed { attempt: 1 }
    ));
    store.mark_sent("msg-4", 1, "sg-msg-4", 1).await.unwrap();
    let m = events_metrics();
    let before = (
        succeeded(),
        m.unmatched.get(),
        m.stored.with_label_values(&["sendgrid", "bounce"]).get(),
        m.suppressions_added
            .with_label_values(&["unsubscribed"])
            .get(),
    );

    let h = Harness::start(tag, store.clone()).await;
    let events = scenario();
    h.publish(&events, 1).await;
    eventually(Duration::from_secs(30), "7 events handled", || async {
        succeeded() == before.0 + 7
    })
    .await;

    for (message, n) in [
        ("msg-1", 1),
        ("msg-2", 1),
        ("msg-3", 1),
        ("msg-4", 3),
        ("msg-nope", 1),
    ] {
        assert_eq!(store.count_events(message).await.unwrap(), n, "{message}");
    }
    let hash = |a: &str| AddressHasher::new(ADDRESS_KEY).hash(a);
    let expected: BTreeSet<(SuppressionKey, String, String)> = [
        (SuppressionKey::Customer("C1".into()), "bounced"),
        (
            SuppressionKey::AddressHash(hash("c1@example.com")),
            "bounced",
        ),
        (SuppressionKey::Customer("C2".into()), "complained"),
        (
            SuppressionKey::AddressHash(hash("c2@example.com")),
            "complained",
        ),
        (SuppressionKey::Customer("C3".into()), "unsubscribed"),
        (
            SuppressionKey::AddressHash(hash("stranger@example.com")),
            "unsubscribed",
        ),
    ]
    .into_iter()
    .map(|(k, r)| (k, r.to_string(), "sendgrid".to_string()))
    .collect();
    let listed: BTreeSet<_> = store
        .list_suppressions()
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.key, s.reason, s.source))
        .collect();
    assert_eq!(listed, expected);
    assert_eq!(
        m.unmatched.get(),
        before.1 + 1,
        "only msg-nope is unmatched"
    );
    assert_eq!(
        m.stored.with_label_values(&["sendgrid", "bounce"]).get(),
        before.2 + 2
    );
    assert_eq!(
        m.suppressions_added
            .with_label_values(&["unsubscribed"])
            .get(),
        before.3 + 2
    );

    // The ESP retries everything (new envelopes, same provider event ids):
    // nothing is stored twice, nothing counted twice.
    h.publish(&events, 2).await;
    eventually(Duration::from_secs(30), "the replay handled", || async {
        succeeded() == before.0 + 14
    })
    .await;
    assert_eq!(store.count_events("msg-4").await.unwrap(), 3);
    assert_eq!(store.list_suppressions().await.unwrap().len(), 6);
    assert_eq!(m.unmatched.get(), before.1 + 1);
    assert_eq!(
        m.stored.with_label_values(&["sendgrid", "bounce"]).get(),
        before.2 + 2
    );

    // A burst is written in batches, not one write per event.
    let batches_before = h.stage.batches_written();
    let burst: Vec<_> = (0..300)
        .map(|i| event(&format!("burst-{i}"), "open", Some("msg-1"), "{}"))
        .collect();
    let publishers: Vec<_> = burst
        .chunks(30)
        .map(|chunk| {
            let chunk = chunk.to_vec();
            let transport = h.transport.clone();
            tokio::spawn(async move { publish_on(&transport, &chunk).await })
        })
        .collect();
    for p in publishers {
        p.await.unwrap();
    }
    eventually(Duration::from_secs(60), "the burst stored", || async {
        store.count_events("msg-1").await.unwrap() == 301
    })
    .await;
    let batches = h.stage.batches_written() - batches_before;
    assert!(batches <= 60, "300 events took {batches} batches");
    assert_eq!(h.dead_letters().await, 0);
    h.stop().await;
}

async fn publish_on(
    transport: &cpo_shared::transport::amqp::AmqpTransport,
    events: &[cpo_shared::model::EventMessage],
) {
    use cpo_shared::transport::{Publish, Transport};
    for event in events {
        let envelope =
            cpo_shared::Envelope::new(format!("evt-{}", event.event_id), "events", event.clone());
        transport
            .publish(
                cpo_shared::queues::EVENTS,
                Publish {
                    id: envelope.id.clone(),
                    body: serde_json::to_vec(&envelope).unwrap(),
                    delay: None,
                },
            )
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_become_rows_and_suppressions_once_on_postgres_and_sqlite() {
    let db = PgDatabase::create().await;
    let pg = open_store(&db.url_on(5432)).await;
    run_scenario(pg.clone(), "pg").await;
    drop(pg);
    db.drop_it().await;

    let dir = tempfile::tempdir().unwrap();
    let lite = open_store(&format!("sqlite://{}/cpo.sqlite", dir.path().display())).await;
    run_scenario(lite, "lite").await;
}
