//! Send records, retries, failures, the suppression re-check, the daily
//! quota and the rate limit, at the stage, on real SQLite and PostgreSQL
//! stores (a database of its own per test).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::pg::*;
use common::*;
use cpo_delivery::SendOutcome;
use cpo_shared::privacy::AddressHasher;
use cpo_shared::rate_limit::{MemoryRateLimiter, RateConfig};
use cpo_shared::store::{CampaignRecord, SendState, Suppression, SuppressionKey};
use cpo_shared::{StageError, progress};

/// Retry answers wait (Retry-After honoured) and are sent; a permanent
/// refusal is recorded with the reason and settles the customer.
async fn retries_and_failures(h: Harness) {
    h.sink.answer(
        &address(1),
        vec![
            SendOutcome::Retry {
                after: Some(Duration::from_millis(60)),
                reason: "454 try later".into(),
            },
            SendOutcome::Retry {
                after: None,
                reason: "451 local error".into(),
            },
        ],
    );
    h.sink.answer(
        &address(2),
        vec![SendOutcome::Failed {
            reason: "550 5.1.1 no such user".into(),
        }],
    );
    let mut input = batch(0, 0..5);
    sign(&mut input);
    let counts = deliver_with(&h.stage, &h.transport, input).await.unwrap();
    assert_eq!(counts[progress::MESSAGES_DELIVERED], 4, "{counts:?}");
    assert_eq!(counts[progress::MESSAGES_FAILED], 1, "{counts:?}");
    let handed = h.sink.handed();
    assert_eq!(handed[&id(1)], 3, "two retries, then sent");
    assert_eq!(handed[&id(2)], 1, "a 5xx is not retried");
    assert_eq!(handed[&id(0)], 1);
    // the second try of customer 1 came no sooner than its Retry-After
    let calls = h.sink.calls.lock().unwrap().clone();
    let times: Vec<Instant> = calls
        .iter()
        .filter(|(_, ids)| ids.contains(&id(1)))
        .map(|(at, _)| *at)
        .collect();
    assert!(times[1] - times[0] >= Duration::from_millis(60));
    let sent = h.store.send(&id(1)).await.unwrap().unwrap();
    assert_eq!(sent.state, SendState::Sent);
    let failed = h.store.send(&id(2)).await.unwrap().unwrap();
    assert_eq!(failed.state, SendState::Failed);
    assert_eq!(failed.last_error.as_deref(), Some("550 5.1.1 no such user"));
    // only what was sent reached the outbox and the audit trail
    assert_eq!(h.records().len(), 4);
    assert_eq!(h.audited_sends().len(), 4);

    // Redelivered: nothing is sent again, and every customer is still accounted for.
    let mut again = batch(0, 0..5);
    sign(&mut again);
    let counts = deliver_with(&h.stage, &h.transport, again).await.unwrap();
    assert_eq!(counts[progress::MESSAGES_DELIVERED], 4);
    assert_eq!(counts[progress::MESSAGES_FAILED], 1);
    assert_eq!(h.sink.handed()[&id(0)], 1);
    assert_eq!(h.sink.handed()[&id(2)], 1);
}

#[tokio::test]
async fn sqlite_retries_wait_failures_are_recorded_and_nothing_is_resent() {
    retries_and_failures(Harness::new().await).await;
}

#[tokio::test]
async fn postgres_retries_wait_failures_are_recorded_and_nothing_is_resent() {
    let db = PgDatabase::create("retries").await;
    retries_and_failures(harness_on(db.store().await, test_config())).await;
    db.drop_it().await;
}

async fn suppression_recheck(h: Harness) {
    let hasher = AddressHasher::new(ADDRESS_KEY);
    let suppress = |key, reason: &str| Suppression {
        key,
        reason: reason.into(),
        source: "test".into(),
        created_at_ms: 1,
    };
    h.store
        .suppress(&[
            suppress(SuppressionKey::Customer("C00001".into()), "unsubscribed"),
            // by address, as the gateway records a bounce (case does not matter)
            suppress(
                SuppressionKey::AddressHash(hasher.hash(" Person2@Example.com")),
                "bounced",
            ),
        ])
        .await
        .unwrap();
    let mut input = batch(0, 0..4);
    sign(&mut input);
    let counts = deliver_with(&h.stage, &h.transport, input).await.unwrap();
    assert_eq!(counts[progress::MESSAGES_SUPPRESSED], 2, "{counts:?}");
    assert_eq!(counts[progress::MESSAGES_DELIVERED], 2);
    let handed = h.sink.handed();
    assert!(!handed.contains_key(&id(1)) && !handed.contains_key(&id(2)));
    assert_eq!(handed.len(), 2);
    assert!(
        h.store.send(&id(1)).await.unwrap().is_none(),
        "never claimed"
    );
    // an unsubscribe that arrives mid-campaign stops the later batches
    h.store
        .suppress(&[suppress(
            SuppressionKey::Customer("C00005".into()),
            "unsubscribed",
        )])
        .await
        .unwrap();
    let mut later = batch(1, 4..7);
    sign(&mut later);
    let counts = deliver_with(&h.stage, &h.transport, later).await.unwrap();
    assert_eq!(counts[progress::MESSAGES_SUPPRESSED], 1);
    assert!(!h.sink.handed().contains_key(&id(5)));
}

#[tokio::test]
async fn sqlite_suppressed_recipients_are_not_sent() {
    suppression_recheck(Harness::new().await).await;
}

#[tokio::test]
async fn postgres_suppressed_recipients_are_not_sent() {
    let db = PgDatabase::create("suppress").await;
    suppression_recheck(harness_on(db.store().await, test_config())).await;
    db.drop_it().await;
}

#[tokio::test]
async fn a_store_outage_pauses_sending_and_sends_nothing() {
    let db = PgDatabase::create("outage").await;
    let h = harness_on(db.store().await, test_config());
    db.drop_it().await;
    let mut input = batch(0, 0..3);
    sign(&mut input);
    let err = deliver_with(&h.stage, &h.transport, input)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StageError::Unavailable(m) if m.contains("sending paused")),
        "{err}"
    );
    assert!(h.sink.handed().is_empty());
}

#[tokio::test]
async fn a_spent_daily_quota_pauses_the_campaign_until_the_next_day() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path(), "cpo.sqlite").await;
    store
        .put_campaign(&CampaignRecord {
            campaign_id: "camp-1".into(),
            request: "{}".into(),
            state: "running".into(),
            updated_at_ms: 0,
        })
        .await
        .unwrap();
    let rate = RateConfig {
        per_day: Some(3),
        ..RateConfig::default()
    };
    let limiter = Arc::new(MemoryRateLimiter::new(&rate));
    let h = Harness::on(dir, store.clone(), test_config(), limiter);
    let mut input = batch(0, 0..5);
    sign(&mut input);
    let err = deliver_with(&h.stage, &h.transport, input)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StageError::Unavailable(m) if m.contains("daily quota")),
        "{err}"
    );
    assert_eq!(h.sink.handed().len(), 3, "the quota, not one more");
    let state = store.campaign("camp-1").await.unwrap().unwrap().state;
    assert!(state.starts_with("paused until 20"), "{state}");
    assert!(state.ends_with("T00:00:00Z"), "{state}");
    // the two left are released, not failed: they go out in the next window
    let waiting = store.send(&id(4)).await.unwrap().unwrap();
    assert!(waiting.last_error.unwrap().starts_with("not sent:"));
    // redelivered the same day: the three sent are not sent again, the rest still waits
    let mut again = batch(0, 0..5);
    sign(&mut again);
    assert!(deliver_with(&h.stage, &h.transport, again).await.is_err());
    assert_eq!(h.sink.handed().values().sum::<usize>(), 3);
}

#[tokio::test]
async fn the_stage_takes_the_rate_limit_right_before_each_send() {
    let rate = RateConfig {
        per_second: Some(50),
        ..RateConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path(), "cpo.sqlite").await;
    let mut config = test_config();
    config.retry.hold_ms = 10_000;
    let h = Harness::on(dir, store, config, Arc::new(MemoryRateLimiter::new(&rate)));
    let started = Instant::now();
    let mut input = batch(0, 0..80);
    sign(&mut input);
    deliver_with(&h.stage, &h.transport, input).await.unwrap();
    let elapsed = started.elapsed();
    // 80 at 50/s with a burst of 2: at least 1.5 s
    assert!(elapsed >= Duration::from_millis(1_500), "{elapsed:?}");
    let calls = h.sink.calls.lock().unwrap().clone();
    let times: Vec<Instant> = calls
        .iter()
        .flat_map(|(at, ids)| ids.iter().map(move |_| *at))
        .collect();
    assert_eq!(times.len(), 80);
    for (i, start) in times.iter().enumerate() {
        let in_window = times[i..]
            .iter()
            .take_while(|t| **t - *start < Duration::from_secs(1))
            .count();
        assert!(in_window <= 52, "{in_window} sends in one second");
    }
}

static FAKE_NOW_US: AtomicU64 = AtomicU64::new(0);

fn fake_now() -> u64 {
    FAKE_NOW_US.load(Ordering::SeqCst)
}

#[tokio::test]
async fn a_campaign_paused_on_the_quota_resumes_the_next_day() {
    const DAY_US: u64 = 86_400_000_000;
    FAKE_NOW_US.store(20_000 * DAY_US + 1, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path(), "cpo.sqlite").await;
    store
        .put_campaign(&CampaignRecord {
            campaign_id: "camp-1".into(),
            request: "{}".into(),
            state: "running".into(),
            updated_at_ms: 0,
        })
        .await
        .unwrap();
    let rate = RateConfig {
        per_day: Some(2),
        ..RateConfig::default()
    };
    let limiter = Arc::new(MemoryRateLimiter::with_clock(&rate, fake_now));
    let h = Harness::on(dir, store.clone(), test_config(), limiter);
    let mut input = batch(0, 0..3);
    sign(&mut input);
    assert!(deliver_with(&h.stage, &h.transport, input).await.is_err());
    let state = store.campaign("camp-1").await.unwrap().unwrap().state;
    assert_eq!(state, "paused until 2024-10-05T00:00:00Z");
    // (Other tests of this binary pause the same sink's gauge at the real next midnight.)
    let metrics = cpo_shared::metrics::metrics().render();
    let until: i64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("cpo_delivery_paused_until_seconds{sink=\"smtp\"} "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the pause gauge");
    assert!(until >= 1_728_086_400, "{until}");
    // The next UTC day: the one left goes out and the campaign runs again.
    FAKE_NOW_US.store(20_001 * DAY_US + 1, Ordering::SeqCst);
    let mut input = batch(0, 0..3);
    input.paused_ms = 1_000;
    sign(&mut input);
    let counts = deliver_with(&h.stage, &h.transport, input).await.unwrap();
    assert_eq!(counts[progress::MESSAGES_DELIVERED], 3);
    assert_eq!(h.sink.handed().len(), 3);
    assert_eq!(
        store.campaign("camp-1").await.unwrap().unwrap().state,
        "running"
    );
    // per sink and outcome, no ids
    assert!(metrics.contains("cpo_delivery_sends_total{outcome=\"sent\",sink=\"smtp\"}"));
}
