//! One suite, run against both backends: the real PostgreSQL on 127.0.0.1:5432
//! (a database of its own per test, dropped after) and SQLite in a tempdir.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;

use super::*;

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const PG_HINT: &str = "PostgreSQL must run on 127.0.0.1:5432 (user postgres, trust auth); \
     start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`";

/// A fresh database, dropped when the test is done with it.
pub(super) struct PgDatabase {
    name: String,
}

impl PgDatabase {
    pub(super) async fn create() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "cpo_store_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = sqlx::PgConnection::connect(PG_ADMIN)
            .await
            .unwrap_or_else(|e| panic!("{PG_HINT}: {e}"));
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        Self { name }
    }

    pub(super) fn config(&self) -> StoreConfig {
        StoreConfig {
            url: format!("postgres://postgres@127.0.0.1:5432/{}", self.name),
            pool_size: 4,
            ..StoreConfig::default()
        }
    }

    pub(super) async fn drop_it(self) {
        let mut admin = sqlx::PgConnection::connect(PG_ADMIN).await.unwrap();
        sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}

pub(super) fn sqlite_config(dir: &tempfile::TempDir) -> StoreConfig {
    StoreConfig {
        url: format!("sqlite://{}/nested/cpo.sqlite", dir.path().display()),
        ..StoreConfig::default()
    }
}

/// Run `suite` on PostgreSQL and on SQLite.
pub(super) async fn on_both<F>(suite: F)
where
    F: for<'a> Fn(&'a dyn Store) -> std::pin::Pin<Box<dyn Future<Output = ()> + 'a>>,
{
    let db = PgDatabase::create().await;
    let pg = connect(&db.config()).await.expect("postgres store");
    assert_eq!(pg.backend(), "postgres");
    suite(pg.as_ref()).await;
    drop(pg);
    db.drop_it().await;

    let dir = tempfile::tempdir().unwrap();
    let lite = connect(&sqlite_config(&dir)).await.expect("sqlite store");
    assert_eq!(lite.backend(), "sqlite");
    suite(lite.as_ref()).await;
}

pub(super) fn assignment(i: usize) -> Assignment {
    Assignment {
        message_id: format!("m-{i}"),
        campaign_id: "c1".into(),
        customer_id: format!("cust-{i}"),
        segment: "s".into(),
        arm: if i.is_multiple_of(2) { "a" } else { "b" }.into(),
        variant: "v1".into(),
    }
}

#[tokio::test]
async fn migrations_twice_are_a_no_op_and_concurrent_connects_migrate_once() {
    let db = PgDatabase::create().await;
    let config = db.config();
    let connects: Vec<_> = (0..6)
        .map(|_| {
            let config = config.clone();
            tokio::spawn(async move { PostgresStore::connect(&config).await })
        })
        .collect();
    for handle in connects {
        handle
            .await
            .unwrap()
            .expect("each concurrent connect succeeds");
    }
    let store = PostgresStore::connect(&config).await.unwrap();
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(applied, vec![(1, true), (2, true), (3, true)]);
    drop(store);
    db.drop_it().await;

    // A second `cpo run` in the same directory reopens the file: no migration
    // runs again, and what the first run suppressed is still suppressed.
    let dir = tempfile::tempdir().unwrap();
    let key = SuppressionKey::AddressHash("h1".into());
    for run in 0..2 {
        let store = SqliteStore::connect(&sqlite_config(&dir).resolve().unwrap())
            .await
            .unwrap();
        if run == 0 {
            let row = Suppression {
                key: key.clone(),
                reason: "bounce".into(),
                source: "esp".into(),
                created_at_ms: 1,
            };
            store.suppress(&[row]).await.unwrap();
        }
        assert!(
            store
                .suppressed(std::slice::from_ref(&key))
                .await
                .unwrap()
                .contains(&key)
        );
        let applied: Vec<(i64, bool)> =
            sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
                .fetch_all(store.pool())
                .await
                .unwrap();
        assert_eq!(applied, vec![(1, true), (2, true), (3, true)]);
    }
}

#[tokio::test]
async fn campaigns_and_events_dedupe_by_provider_event_id() {
    on_both(|store| {
        Box::pin(async move {
            let mut campaign = CampaignRecord {
                campaign_id: "c1".into(),
                request: r#"{"name":"spring"}"#.into(),
                state: "submitted".into(),
                updated_at_ms: 1,
            };
            store.put_campaign(&campaign).await.unwrap();
            assert!(store.set_campaign_state("c1", "running", 2).await.unwrap());
            assert!(
                !store
                    .set_campaign_state("nope", "running", 2)
                    .await
                    .unwrap()
            );
            campaign.state = "running".into();
            campaign.updated_at_ms = 2;
            assert_eq!(store.campaign("c1").await.unwrap(), Some(campaign));

            let event = EventRecord {
                provider: "esp".into(),
                provider_event_id: "ev-1".into(),
                event_type: "delivered".into(),
                message_id: Some("m-1".into()),
                occurred_at_ms: 10,
                raw: r#"{"id":"ev-1"}"#.into(),
            };
            assert!(store.record_event(&event).await.unwrap());
            assert!(!store.record_event(&event).await.unwrap(), "replayed event");
            let other_provider = EventRecord {
                provider: "sms".into(),
                ..event.clone()
            };
            assert!(store.record_event(&other_provider).await.unwrap());
            assert_eq!(store.count_events("m-1").await.unwrap(), 2);
        })
    })
    .await;
}

#[tokio::test]
async fn suppressions_round_trip_and_are_checked_in_bulk() {
    on_both(|store| {
        Box::pin(async move {
            let rows: Vec<Suppression> = (0..12_000u32)
                .map(|i| Suppression {
                    key: if i.is_multiple_of(2) {
                        SuppressionKey::Customer(format!("cust-{i}"))
                    } else {
                        SuppressionKey::AddressHash(format!("hash-{i}"))
                    },
                    reason: "unsubscribed".into(),
                    source: "esp".into(),
                    created_at_ms: 5,
                })
                .collect();
            let outcome = store.suppress(&rows).await.unwrap();
            assert_eq!(outcome.inserted, 12_000);
            assert_eq!(store.suppress(&rows[..10]).await.unwrap().inserted, 0);

            // Every kind/value pair asked about; only the stored ones come back,
            // and a customer id is not mistaken for an address hash.
            let mut asked: Vec<SuppressionKey> = rows.iter().map(|s| s.key.clone()).collect();
            asked.push(SuppressionKey::Customer("cust-unknown".into()));
            asked.push(SuppressionKey::AddressHash("cust-0".into()));
            let found = store.suppressed(&asked).await.unwrap();
            assert_eq!(found.len(), 12_000);
            assert!(found.contains(&SuppressionKey::Customer("cust-0".into())));
            assert!(found.contains(&SuppressionKey::AddressHash("hash-1".into())));
            assert!(!found.contains(&SuppressionKey::AddressHash("cust-0".into())));

            assert!(
                store
                    .unsuppress(&SuppressionKey::Customer("cust-0".into()))
                    .await
                    .unwrap()
            );
            let found = store
                .suppressed(&[SuppressionKey::Customer("cust-0".into())])
                .await
                .unwrap();
            assert!(found.is_empty());
            assert!(store.suppressed(&[]).await.unwrap().is_empty());
        })
    })
    .await;
}

#[tokio::test]
async fn contact_counts_for_frequency_caps() {
    on_both(|store| {
        Box::pin(async move {
            let contact = |m: &str, c: &str, at: i64| Contact {
                message_id: m.into(),
                customer_id: c.into(),
                campaign_id: "c1".into(),
                contacted_at_ms: at,
            };
            let rows = vec![
                contact("m1", "alice", 100),
                contact("m2", "alice", 200),
                contact("m3", "alice", 300),
                contact("m4", "bob", 50),
                contact("m5", "bob", 250),
            ];
            assert_eq!(store.record_contacts(&rows).await.unwrap().inserted, 5);
            assert_eq!(store.record_contacts(&rows).await.unwrap().inserted, 0);
            let customers = vec!["alice".to_string(), "bob".into(), "carol".into()];
            let counts = store.contacts_since(&customers, 200).await.unwrap();
            assert_eq!(counts.get("alice"), Some(&2));
            assert_eq!(counts.get("bob"), Some(&1));
            assert_eq!(counts.get("carol"), None);
            let all = store.contacts_since(&customers, 0).await.unwrap();
            assert_eq!(all.get("alice"), Some(&3));
        })
    })
    .await;
}

#[tokio::test]
async fn send_states_claim_with_lease_then_sent_or_failed() {
    on_both(|store| {
        Box::pin(async move {
            let lease = 1_000;
            assert_eq!(
                store.claim_send("m1", "esp", 0, lease).await.unwrap(),
                Claim::Claimed { attempt: 1 }
            );
            // A live lease is held; once it runs out another worker takes over.
            assert_eq!(
                store.claim_send("m1", "esp", 500, lease).await.unwrap(),
                Claim::Held {
                    lease_until_ms: 1_000
                }
            );
            assert_eq!(
                store.claim_send("m1", "esp", 1_000, lease).await.unwrap(),
                Claim::Claimed { attempt: 2 }
            );
            // The worker that lost its lease cannot finish the send.
            assert!(!store.mark_sent("m1", 1, "p-old", 1_100).await.unwrap());
            assert!(store.mark_failed("m1", 2, "timeout", 1_200).await.unwrap());
            let failed = store.send("m1").await.unwrap().unwrap();
            assert_eq!(failed.state, SendState::Failed);
            assert_eq!(failed.last_error.as_deref(), Some("timeout"));

            // A failed send may be claimed again at once, then sent.
            assert_eq!(
                store.claim_send("m1", "esp", 1_300, lease).await.unwrap(),
                Claim::Claimed { attempt: 3 }
            );
            assert!(store.mark_sent("m1", 3, "p-42", 1_400).await.unwrap());
            assert!(!store.mark_sent("m1", 3, "p-43", 1_500).await.unwrap());
            let sent = store.send("m1").await.unwrap().unwrap();
            assert_eq!(sent.state, SendState::Sent);
            assert_eq!(sent.attempts, 3);
            assert_eq!(sent.provider_message_id.as_deref(), Some("p-42"));
            assert_eq!(sent.sent_at_ms, Some(1_400));
            assert_eq!(sent.first_claimed_at_ms, 0);

            // A second claim of a sent message is refused, even long after.
            assert_eq!(
                store.claim_send("m1", "esp", 99_999, lease).await.unwrap(),
                Claim::AlreadySent {
                    provider_message_id: Some("p-42".into())
                }
            );
            assert_eq!(store.send("nope").await.unwrap(), None);
        })
    })
    .await;
}

#[tokio::test]
async fn racing_claims_have_one_winner() {
    let db = PgDatabase::create().await;
    let store: Arc<dyn Store> = connect(&db.config()).await.unwrap();
    let claims: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_send("m1", "esp", 0, 60_000).await })
        })
        .collect();
    let mut winners = 0;
    for claim in claims {
        if matches!(claim.await.unwrap().unwrap(), Claim::Claimed { .. }) {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    drop(store);
    db.drop_it().await;
}

#[tokio::test]
async fn bulk_assignments_are_idempotent_and_few_statements() {
    on_both(|store| {
        Box::pin(async move {
            let rows: Vec<Assignment> = (0..100_000).map(assignment).collect();
            let first = store.insert_assignments(&rows).await.unwrap();
            assert_eq!(first.inserted, 100_000);
            // PostgreSQL copies batches this large (pre-check, savepoint, COPY).
            let batches = 100_000u64.div_ceil(BULK_ROWS as u64);
            let pg = store.backend() == "postgres";
            assert_eq!(first.statements, if pg { 3 } else { batches });
            // A replay (redelivery) adds nothing, and a partly new batch only the new rows.
            let again = store.insert_assignments(&rows[..1_000]).await.unwrap();
            assert_eq!(again.inserted, 0);
            let more: Vec<Assignment> = (99_990..100_010).map(assignment).collect();
            assert_eq!(store.insert_assignments(&more).await.unwrap().inserted, 10);
            assert_eq!(store.count_assignments("c1").await.unwrap(), 100_010);
            assert_eq!(
                store.insert_assignments(&[]).await.unwrap(),
                BulkOutcome::default()
            );
        })
    })
    .await;
}

#[tokio::test]
async fn unreachable_postgres_is_transient_and_bad_urls_are_refused() {
    let config = StoreConfig {
        url: "postgres://postgres:s3cret@127.0.0.1:1/none".into(),
        acquire_timeout_ms: 500,
        ..StoreConfig::default()
    };
    match connect(&config).await {
        Err(StoreError::Transient(m)) => assert!(!m.contains("s3cret"), "{m}"),
        Err(other) => panic!("expected a transient error, got {other}"),
        Ok(_) => panic!("connected to a closed port"),
    }
    let bad = StoreConfig {
        url: "mysql://h/db".into(),
        ..StoreConfig::default()
    };
    assert!(matches!(connect(&bad).await, Err(StoreError::Permanent(_))));
}

// The campaign record: exclusions, counts, assignments and events per campaign.
#[path = "tests_record.rs"]
mod record;
mod sends;
// Large PostgreSQL bulk writes through COPY.
#[path = "tests_copy.rs"]
mod copy;
