//! A PostgreSQL database per test, and small helpers of the send-record tests.

use std::sync::Arc;

use cpo_shared::envelope::message_id;
use cpo_shared::rate_limit::{MemoryRateLimiter, RateConfig};
use cpo_shared::store::{Store, StoreConfig};
use sqlx::Connection;

use super::Harness;

pub const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const PG_HINT: &str = "PostgreSQL must run on 127.0.0.1:5432 (user postgres, trust auth)";

/// A fresh PostgreSQL database for one test.
pub struct PgDatabase {
    name: String,
}

impl PgDatabase {
    pub async fn create(tag: &str) -> Self {
        let name = format!("cpo_delivery_{tag}_{}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(PG_ADMIN)
            .await
            .unwrap_or_else(|e| panic!("{PG_HINT}: {e}"));
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            sqlx::query(&sql).execute(&mut admin).await.unwrap();
        }
        Self { name }
    }

    pub async fn store(&self) -> Arc<dyn Store> {
        cpo_shared::store::connect(&StoreConfig {
            url: format!("postgres://postgres@127.0.0.1:5432/{}", self.name),
            pool_size: 4,
            acquire_timeout_ms: 2_000,
            ..StoreConfig::default()
        })
        .await
        .unwrap()
    }

    pub async fn drop_it(&self) {
        let mut admin = sqlx::PgConnection::connect(PG_ADMIN).await.unwrap();
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut admin)
        .await
        .unwrap();
    }
}

pub fn unlimited() -> Arc<MemoryRateLimiter> {
    Arc::new(MemoryRateLimiter::new(&RateConfig::default()))
}

pub fn harness_on(store: Arc<dyn Store>, config: cpo_delivery::DeliveryConfig) -> Harness {
    Harness::on(tempfile::tempdir().unwrap(), store, config, unlimited())
}

pub fn id(customer: usize) -> String {
    message_id("camp-1", &format!("C{customer:05}"))
}

pub fn address(customer: usize) -> String {
    format!("person{customer}@example.com")
}
