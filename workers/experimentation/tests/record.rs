//! The stage against the real system of record (PostgreSQL, a database per
//! test, and SQLite): suppressions and the frequency cap exclude with their
//! reasons before assignment, what was decided is written in bulk, and a store
//! that cannot answer pauses the stage.

#[allow(unused_imports)]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::*;
use cpo_experimentation::{
    ExperimentationConfig, ExperimentationStage, FrequencyCap, PolicyConfig, Record,
};
use cpo_shared::cache::MemoryCache;
use cpo_shared::model::{CONTROL_ARM, CustomerBatch, ExclusionReason, LedgerEntry};
use cpo_shared::privacy::AddressHasher;
use cpo_shared::store::{self, PostgresStore, Store, StoreConfig, Suppression, SuppressionKey};
use cpo_shared::{Envelope, Stage, StageError, queues};
use sqlx::Connection;

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const ADDRESS_KEY: &[u8] = b"test-address-key";

/// A fresh PostgreSQL database (PostgreSQL must run on 127.0.0.1:5432).
async fn pg_database() -> StoreConfig {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "cpo_exp_record_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = sqlx::PgConnection::connect(PG_ADMIN)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL must run on 127.0.0.1:5432 (user postgres, trust auth): {e}")
        });
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    StoreConfig {
        url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
        pool_size: 2,
        ..StoreConfig::default()
    }
}

fn stage(store: Arc<dyn Store>, cap: Option<FrequencyCap>) -> ExperimentationStage {
    let record = Record::new(
        store,
        AddressHasher::new(ADDRESS_KEY),
        PolicyConfig { frequency_cap: cap },
    );
    ExperimentationStage::new(
        ExperimentationConfig::default(),
        Arc::new(MemoryCache::new()),
        cpo_shared::signing::Signer::new(b"batch".to_vec()),
    )
    .unwrap()
    .with_record(record)
}

fn of_campaign(campaign_id: &str, mut batch: CustomerBatch) -> CustomerBatch {
    batch.campaign.campaign_id = campaign_id.into();
    batch
}

/// Decide every arm of `segment` (approved) for `campaign_id`.
async fn decide(stage: &ExperimentationStage, campaign_id: &str, segment: &str) {
    for arm in [CONTROL_ARM].into_iter().chain(TONES) {
        let mut d = decision(segment, arm, true);
        d.variant.campaign_id = campaign_id.into();
        d.variant.variants_in_segment = 4;
        stage
            .handle(decision_envelope(d), &emitter())
            .await
            .unwrap();
    }
}

/// Handle `batch` and return its ledger entry's (assignments, exclusions).
async fn assign(
    stage: &ExperimentationStage,
    batch: CustomerBatch,
) -> Result<(u64, Vec<cpo_shared::model::Exclusion>), StageError> {
    let campaign_id = batch.campaign.campaign_id.clone();
    let mut envelope = batch_envelope(batch);
    envelope.campaign_id = campaign_id;
    let outputs = stage.handle(envelope, &emitter()).await?;
    let ledger = outputs.iter().find(|o| o.queue == queues::LEDGER).unwrap();
    let entry: Envelope<LedgerEntry> = serde_json::from_slice(&ledger.body).unwrap();
    match entry.payload {
        LedgerEntry::Assigned {
            assignments,
            exclusions,
            ..
        } => Ok((assignments, exclusions)),
        other => panic!("unexpected ledger entry {other:?}"),
    }
}

fn reason_of(exclusions: &[cpo_shared::model::Exclusion], id: &str) -> Option<ExclusionReason> {
    exclusions
        .iter()
        .find(|e| e.customer_id.as_deref() == Some(id))
        .map(|e| e.reason)
}

async fn suppressions_exclude_with_their_reasons(store: Arc<dyn Store>) {
    let hasher = AddressHasher::new(ADDRESS_KEY);
    let row = |key, reason: &str| Suppression {
        key,
        reason: reason.into(),
        source: "test".into(),
        created_at_ms: 1,
    };
    store
        .suppress(&[
            row(SuppressionKey::Customer("C0000001".into()), "unsubscribed"),
            // by the address alone: the hash of the address, never the address
            row(
                SuppressionKey::AddressHash(hasher.hash(" C2@Example.com ")),
                "bounced",
            ),
            row(SuppressionKey::Customer("C0000003".into()), "complained"),
            // any other reason is `suppressed`; stored text is input, kept short in the detail
            row(
                SuppressionKey::Customer("C0000004".into()),
                &format!("manual {}", "x".repeat(5_000)),
            ),
        ])
        .await
        .unwrap();
    let stage = stage(store.clone(), None);
    decide(&stage, "camp-s", "loyal").await;
    let batch = of_campaign("camp-s", batch(0, 0, 10, &[], |_| "loyal"));
    let (assigned, exclusions) = assign(&stage, batch.clone()).await.unwrap();
    assert_eq!(
        (assigned, exclusions.len()),
        (6, 4),
        "every customer accounted for"
    );
    assert_eq!(
        reason_of(&exclusions, "C0000001"),
        Some(ExclusionReason::Unsubscribed)
    );
    assert_eq!(
        reason_of(&exclusions, "C0000002"),
        Some(ExclusionReason::Bounced)
    );
    assert_eq!(
        reason_of(&exclusions, "C0000003"),
        Some(ExclusionReason::Complained)
    );
    assert_eq!(
        reason_of(&exclusions, "C0000004"),
        Some(ExclusionReason::Suppressed)
    );
    let detail = &exclusions
        .iter()
        .find(|e| e.customer_id.as_deref() == Some("C0000002"))
        .unwrap()
        .detail;
    assert!(
        detail.contains("address") && !detail.contains("example.com"),
        "{detail}"
    );

    let long = exclusions
        .iter()
        .find(|e| e.customer_id.as_deref() == Some("C0000004"))
        .unwrap();
    assert!(long.detail.len() < 400, "{}", long.detail.len());
    let counts = store.campaign_counts("camp-s").await.unwrap();
    assert_eq!(counts.assigned, 6);
    assert_eq!(counts.excluded(), 4);
    for reason in ["unsubscribed", "bounced", "complained", "suppressed"] {
        assert_eq!(counts.excluded_by_reason.get(reason), Some(&1), "{reason}");
    }
    let assignments = store.assignments_for_campaign("camp-s").await.unwrap();
    assert!(assignments.iter().all(|a| {
        !["C0000001", "C0000002", "C0000003", "C0000004"].contains(&a.customer_id.as_str())
    }));
    // a redelivered batch writes nothing twice and decides the same
    let (again, excluded_again) = assign(&stage, batch).await.unwrap();
    assert_eq!((again, excluded_again.len()), (6, 4));
    assert_eq!(store.campaign_counts("camp-s").await.unwrap(), counts);
}

async fn the_fourth_campaign_is_over_the_cap(store: Arc<dyn Store>) {
    let cap = FrequencyCap {
        max_messages: 3,
        window_days: 7,
    };
    let stage = stage(store.clone(), Some(cap));
    for (n, campaign) in ["camp-1", "camp-2", "camp-3", "camp-4"].iter().enumerate() {
        decide(&stage, campaign, "loyal").await;
        let batch = of_campaign(campaign, batch(0, 0, 50, &[], |_| "loyal"));
        let (assigned, exclusions) = assign(&stage, batch.clone()).await.unwrap();
        if n < 3 {
            assert_eq!((assigned, exclusions.len()), (50, 0), "campaign {campaign}");
            // its own contacts never count against a redelivery of the same batch
            let (again, _) = assign(&stage, batch).await.unwrap();
            assert_eq!(again, 50, "replay of {campaign}");
        } else {
            assert_eq!(
                (assigned, exclusions.len()),
                (0, 50),
                "every customer accounted for"
            );
            assert!(
                exclusions
                    .iter()
                    .all(|e| e.reason == ExclusionReason::FrequencyCap)
            );
            assert!(
                exclusions[0]
                    .detail
                    .contains("3 messages in the last 7 days"),
                "{}",
                exclusions[0].detail
            );
        }
    }
    let counts = store.campaign_counts("camp-4").await.unwrap();
    assert_eq!(counts.excluded_by_reason.get("frequency_cap"), Some(&50));
    assert_eq!(counts.assigned, 0);
}

#[tokio::test]
async fn suppressions_exclude_with_their_reasons_on_both_backends() {
    let pg = store::connect(&pg_database().await).await.unwrap();
    suppressions_exclude_with_their_reasons(pg).await;
    let dir = tempfile::tempdir().unwrap();
    let lite = store::connect(&StoreConfig {
        url: format!("sqlite://{}/cpo.sqlite", dir.path().display()),
        ..StoreConfig::default()
    })
    .await
    .unwrap();
    suppressions_exclude_with_their_reasons(lite).await;
}

#[tokio::test]
async fn four_campaigns_with_a_cap_of_three_exclude_everyone_from_the_fourth() {
    let pg = store::connect(&pg_database().await).await.unwrap();
    the_fourth_campaign_is_over_the_cap(pg).await;
    let dir = tempfile::tempdir().unwrap();
    let lite = store::connect(&StoreConfig {
        url: format!("sqlite://{}/cpo.sqlite", dir.path().display()),
        ..StoreConfig::default()
    })
    .await
    .unwrap();
    the_fourth_campaign_is_over_the_cap(lite).await;
}

#[tokio::test]
async fn a_store_that_cannot_answer_pauses_the_batch() {
    let config = StoreConfig {
        pool_size: 1,
        acquire_timeout_ms: 200,
        ..pg_database().await
    };
    let pg = Arc::new(PostgresStore::connect(&config).await.unwrap());
    let stage = stage(pg.clone(), None);
    decide(&stage, "camp-x", "loyal").await;
    // The only connection is taken: the stage's lookup times out waiting for one.
    let held = pg.pool().acquire().await.unwrap();
    let batch = of_campaign("camp-x", batch(0, 0, 5, &[], |_| "loyal"));
    let err = assign(&stage, batch.clone()).await.unwrap_err();
    assert!(
        matches!(&err, StageError::Unavailable(m) if m.contains("store")),
        "{err}"
    );
    drop(held);
    tokio::time::sleep(Duration::from_millis(10)).await;
    let (assigned, _) = assign(&stage, batch).await.unwrap();
    assert_eq!(assigned, 5);
    assert_eq!(pg.count_assignments("camp-x").await.unwrap(), 5);
}
