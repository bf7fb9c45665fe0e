//! The system of record, opened on first use: a gateway whose database is down
//! still starts, serves webhooks, and answers 503 on the routes that need it
//! until the database is back.

use std::sync::Arc;

use cpo_shared::store::{Store, StoreConfig, StoreError};
use tokio::sync::OnceCell;

pub struct LazyStore {
    config: StoreConfig,
    store: OnceCell<Arc<dyn Store>>,
}

impl LazyStore {
    pub fn new(config: StoreConfig) -> Self {
        Self {
            config,
            store: OnceCell::new(),
        }
    }

    /// An already-open store (tests, or a caller that connected at startup).
    pub fn ready(store: Arc<dyn Store>) -> Self {
        Self {
            config: StoreConfig::default(),
            store: OnceCell::new_with(Some(store)),
        }
    }

    /// The store; connects (and migrates) on the first call that succeeds.
    pub async fn get(&self) -> Result<&Arc<dyn Store>, StoreError> {
        self.store
            .get_or_try_init(|| cpo_shared::store::connect(&self.config))
            .await
    }
}
