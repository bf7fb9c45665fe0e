//! PostgreSQL going away under the events stage (a relay in front of the real
//! server is cut; the server itself keeps running): the stage pauses, nothing
//! is dead-lettered or written halfway, and once the store is back every
//! waiting event is stored and its suppression made.

mod common;

use std::time::Duration;

use common::*;
use cpo_shared::metrics::metrics;
use cpo_shared::store::{Assignment, SuppressionKey};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_pauses_the_stage_and_loses_nothing() {
    let db = PgDatabase::create().await;
    // Migrate through the direct port; the stage only ever sees the relay.
    let direct = open_store(&db.url_on(5432)).await;
    let rows: Vec<Assignment> = (1..=2)
        .map(|i| Assignment {
            message_id: format!("msg-{i}"),
            campaign_id: "spring".into(),
            customer_id: format!("C{i}"),
            segment: "loyal".into(),
            arm: "control".into(),
            variant: "v1".into(),
        })
        .collect();
    direct.insert_assignments(&rows).await.unwrap();
    let mut relay = Relay::start().await;
    let relayed = open_store(&db.url_on(relay.port)).await;
    let h = Harness::start("outage", relayed).await;

    h.publish(&[event("e1", "bounce", Some("msg-1"), "{}")], 1)
        .await;
    eventually(
        Duration::from_secs(30),
        "the first event stored",
        || async { direct.count_events("msg-1").await.unwrap() == 1 },
    )
    .await;

    relay.cut().await;
    let paused = || metrics().paused.with_label_values(&["events"]).get();
    let paused_before = paused();
    h.publish(
        &[event(
            "e2",
            "unsubscribe",
            Some("msg-2"),
            r#"{"email":"c2@example.com"}"#,
        )],
        1,
    )
    .await;
    eventually(Duration::from_secs(30), "the stage to pause", || async {
        paused() >= paused_before + 2
    })
    .await;
    assert_eq!(direct.count_events("msg-2").await.unwrap(), 0);
    let c2 = SuppressionKey::Customer("C2".into());
    assert!(
        direct
            .suppressed(std::slice::from_ref(&c2))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(h.dead_letters().await, 0, "an outage dead-letters nothing");

    relay.restore().await;
    eventually(
        Duration::from_secs(30),
        "the waiting event stored",
        || async { direct.count_events("msg-2").await.unwrap() == 1 },
    )
    .await;
    assert!(
        direct
            .suppressed(std::slice::from_ref(&c2))
            .await
            .unwrap()
            .contains(&c2)
    );
    assert_eq!(direct.count_events("msg-1").await.unwrap(), 1);
    assert_eq!(h.dead_letters().await, 0);
    let errors = cpo_shared::store::metrics::store_metrics()
        .errors
        .with_label_values(&["lookup_assignments"])
        .get();
    assert!(errors >= 1, "store errors are counted by operation");

    h.stop().await;
    drop(direct);
    db.drop_it().await;
}
