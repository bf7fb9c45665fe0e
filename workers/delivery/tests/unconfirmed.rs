//! Claims left by a worker that died between claim and answer: resolved by
//! `delivery.on_unconfirmed`, counted and listed, on SQLite and PostgreSQL.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::pg::*;
use common::*;
use cpo_delivery::OnUnconfirmed;
use cpo_shared::StageError;
use cpo_shared::progress;
use cpo_shared::store::{SendState, Store};

/// A worker claimed customer 0 and died before it recorded an answer.
async fn dead_claim(store: &Arc<dyn Store>) {
    let now = cpo_shared::envelope::now_ms() as i64;
    // A lease that is already over when the next worker looks.
    store
        .claim_send(&id(0), "smtp", now - 1_000, 1)
        .await
        .unwrap();
}

async fn unconfirmed_policies(store: Arc<dyn Store>, other: Arc<dyn Store>) {
    // resend: the customer gets the message, the record says it was resent
    dead_claim(&store).await;
    let h = harness_on(store.clone(), test_config());
    let mut input = batch(0, 0..3);
    sign(&mut input);
    let counts = deliver_with(&h.stage, &h.transport, input).await.unwrap();
    assert_eq!(counts[progress::MESSAGES_UNCONFIRMED], 1);
    assert_eq!(counts[progress::MESSAGES_DELIVERED], 3);
    assert_eq!(h.sink.handed()[&id(0)], 1);
    let record = store.send(&id(0)).await.unwrap().unwrap();
    assert_eq!(record.state, SendState::Sent);
    assert_eq!(record.attempts, 2);
    let listed = store.unconfirmed_sends(10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].message_id, id(0));
    assert!(listed[0].last_error.as_deref().unwrap().contains("resent"));

    // skip: not sent, recorded as failed with the policy, listed, and settled
    dead_claim(&other).await;
    let mut config = test_config();
    config.on_unconfirmed = OnUnconfirmed::Skip;
    let h = harness_on(other.clone(), config);
    let mut input = batch(0, 0..3);
    sign(&mut input);
    let counts = deliver_with(&h.stage, &h.transport, input).await.unwrap();
    assert_eq!(counts[progress::MESSAGES_UNCONFIRMED], 1);
    assert_eq!(counts[progress::MESSAGES_FAILED], 1);
    assert_eq!(counts[progress::MESSAGES_DELIVERED], 2);
    assert!(!h.sink.handed().contains_key(&id(0)));
    let record = other.send(&id(0)).await.unwrap().unwrap();
    assert_eq!(record.state, SendState::Failed);
    assert!(record.last_error.unwrap().contains("skipped"));
    assert_eq!(other.unconfirmed_sends(10).await.unwrap().len(), 1);

    // a live claim of another worker is waited for, not sent
    let now = cpo_shared::envelope::now_ms() as i64;
    other.claim_send(&id(7), "smtp", now, 60_000).await.unwrap();
    let mut input = batch(1, 6..8);
    sign(&mut input);
    let err = deliver_with(&h.stage, &h.transport, input)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StageError::Unavailable(m) if m.contains("held")),
        "{err}"
    );
    assert!(!h.sink.handed().contains_key(&id(7)));
    assert_eq!(h.sink.handed()[&id(6)], 1);
}

#[tokio::test]
async fn sqlite_unconfirmed_claims_are_resolved_by_the_policy_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let resend = sqlite_store(dir.path(), "resend.sqlite").await;
    let skip = sqlite_store(dir.path(), "skip.sqlite").await;
    unconfirmed_policies(resend, skip).await;
}

#[tokio::test]
async fn postgres_unconfirmed_claims_are_resolved_by_the_policy_and_listed() {
    let (a, b) = (
        PgDatabase::create("resend").await,
        PgDatabase::create("skip").await,
    );
    unconfirmed_policies(a.store().await, b.store().await).await;
    a.drop_it().await;
    b.drop_it().await;
}

#[tokio::test]
async fn a_worker_killed_mid_send_leaves_claims_the_next_one_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path(), "cpo.sqlite").await;
    let mut config = test_config();
    config.lease_seconds = 1;
    let first = Arc::new(Harness::on(dir, store.clone(), config.clone(), unlimited()));
    first
        .sink
        .hang
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let worker = first.clone();
    let killed = tokio::spawn(async move {
        let mut input = batch(0, 0..4);
        sign(&mut input);
        deliver_with(&worker.stage, &worker.transport, input).await
    });
    // Killed once the provider has the emails and before it answered.
    while first.sink.calls.lock().unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    killed.abort();
    assert!(killed.await.unwrap_err().is_cancelled());
    let claimed = store.send(&id(0)).await.unwrap().unwrap();
    assert_eq!(claimed.state, SendState::Claimed);

    // The redelivery, to another worker: held while the lease runs...
    let second = harness_on(store.clone(), config);
    let mut input = batch(0, 0..4);
    sign(&mut input);
    let err = deliver_with(&second.stage, &second.transport, input)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StageError::Unavailable(m) if m.contains("held")),
        "{err}"
    );
    assert!(second.sink.handed().is_empty());
    // ...then resolved by the policy (resend): every customer gets the message once more.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let mut input = batch(0, 0..4);
    sign(&mut input);
    let counts = deliver_with(&second.stage, &second.transport, input)
        .await
        .unwrap();
    assert_eq!(counts[progress::MESSAGES_UNCONFIRMED], 4);
    assert_eq!(counts[progress::MESSAGES_DELIVERED], 4);
    assert!((0..4).all(|c| second.sink.handed()[&id(c)] == 1));
    assert_eq!(store.unconfirmed_sends(10).await.unwrap().len(), 4);
}
