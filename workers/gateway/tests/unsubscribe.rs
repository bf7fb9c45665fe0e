//! One-click unsubscribes over real HTTP, written to a real PostgreSQL database
//! of the test's own.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};

use common::{Extras, Harness, unique};
use cpo_gateway::{GatewayConfig, LazyStore};
use cpo_shared::store::{StoreConfig, SuppressionKey};
use cpo_shared::unsubscribe::UnsubscribeTokens;
use sqlx::Connection;

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const FORM: &str = "application/x-www-form-urlencoded";

struct PgDatabase {
    name: String,
}

impl PgDatabase {
    async fn create() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "cpo_gateway_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = sqlx::PgConnection::connect(PG_ADMIN)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is not reachable at 127.0.0.1:5432 (user postgres, trust auth): {e}"
                )
            });
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

    fn config(&self) -> StoreConfig {
        StoreConfig {
            url: format!("postgres://postgres@127.0.0.1:5432/{}", self.name),
            pool_size: 2,
            ..StoreConfig::default()
        }
    }

    async fn drop_it(self) {
        let mut admin = sqlx::PgConnection::connect(PG_ADMIN).await.unwrap();
        sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}

fn config() -> GatewayConfig {
    GatewayConfig {
        unsubscribe: true,
        ..GatewayConfig::default()
    }
}

#[tokio::test]
async fn a_one_click_post_writes_the_suppression_before_answering() {
    let db = PgDatabase::create().await;
    let tokens = UnsubscribeTokens::new(b"unsubscribe-test-key");
    let h = Harness::start(
        &unique("unsub"),
        config(),
        Extras {
            store: Some(LazyStore::new(db.config())),
            unsubscribe: Some(tokens.clone()),
            ..Extras::default()
        },
    )
    .await;
    let token = tokens.token("spring-1", "cust-<42>");

    // The page: a form that posts back, nothing external, nothing unescaped.
    let (status, page) = h.get(&format!("/u/{token}"), &[]).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("<form method=\"post\">") && page.contains("name=\"confirm\""),
        "{page}"
    );
    assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("<script"));
    assert!(!page.contains("cust-<42>"));

    // What mail clients send (RFC 8058).
    let (status, answer) = h
        .post(
            &format!("/u/{token}"),
            FORM,
            &[],
            "List-Unsubscribe=One-Click",
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    // Durable before the 200: a fresh connection sees it.
    let store = cpo_shared::store::connect(&db.config()).await.unwrap();
    let key = SuppressionKey::Customer("cust-<42>".into());
    let suppressed = store.suppressed(std::slice::from_ref(&key)).await.unwrap();
    assert!(suppressed.contains(&key), "the customer must be suppressed");

    // Idempotent, and the page's own form works too.
    let (status, _) = h
        .post(
            &format!("/u/{token}"),
            FORM,
            &[],
            "List-Unsubscribe=One-Click",
        )
        .await;
    assert_eq!(status, 200);
    let other = tokens.token("spring-1", "cust-7");
    assert_eq!(
        h.post(&format!("/u/{other}"), FORM, &[], "confirm=yes")
            .await
            .0,
        200
    );
    let both = store
        .suppressed(&[key.clone(), SuppressionKey::Customer("cust-7".into())])
        .await
        .unwrap();
    assert_eq!(both.len(), 2);

    // A forged token (another customer's id, the same tag) suppresses no one.
    let forged = {
        let parts: Vec<&str> = token.split('.').collect();
        let other_id = tokens.token("spring-1", "cust-8");
        let other_parts: Vec<&str> = other_id.split('.').collect();
        format!("{}.{}.{}", parts[0], other_parts[1], parts[2])
    };
    let (status, page) = h
        .post(
            &format!("/u/{forged}"),
            FORM,
            &[],
            "List-Unsubscribe=One-Click",
        )
        .await;
    assert_eq!(status, 400);
    assert!(page.contains("not valid"));
    let none = store
        .suppressed(&[SuppressionKey::Customer("cust-8".into())])
        .await
        .unwrap();
    assert!(none.is_empty(), "a forged token must not suppress anyone");
    assert_eq!(h.get("/u/%3Cscript%3E", &[]).await.0, 400);

    // Wrong content type, wrong body.
    assert_eq!(
        h.post(&format!("/u/{token}"), "application/json", &[], "{}")
            .await
            .0,
        415
    );
    assert_eq!(
        h.post(&format!("/u/{token}"), FORM, &[], "List-Unsubscribe=Maybe")
            .await
            .0,
        400
    );
    h.stop().await;
    db.drop_it().await;
}

#[tokio::test]
async fn the_store_down_answers_503_and_suppresses_nothing() {
    let tokens = UnsubscribeTokens::new(b"unsubscribe-test-key");
    let down = StoreConfig {
        url: "postgres://postgres@127.0.0.1:1/nowhere".into(),
        acquire_timeout_ms: 500,
        ..StoreConfig::default()
    };
    let h = Harness::start(
        &unique("unsub-down"),
        config(),
        Extras {
            store: Some(LazyStore::new(down)),
            unsubscribe: Some(tokens.clone()),
            ..Extras::default()
        },
    )
    .await;
    let token = tokens.token("spring-1", "cust-1");
    let (status, page) = h
        .post(
            &format!("/u/{token}"),
            FORM,
            &[],
            "List-Unsubscribe=One-Click",
        )
        .await;
    assert_eq!(status, 503, "{page}");
    assert!(page.contains("try again"));
    h.stop().await;
}
