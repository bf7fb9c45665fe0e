//! `cpo migrate`: apply the store's embedded migrations and exit. Workers
//! apply them at start too (under PostgreSQL's advisory lock, so replicas
//! starting together migrate once); this is the explicit step for a
//! Kubernetes init container or a deploy pipeline, so a failed migration
//! stops the rollout before any worker runs against a half-upgraded schema.

use std::path::Path;

use anyhow::Context;
use cpo_shared::config::Settings;
use cpo_shared::privacy::redact_url;
use cpo_shared::store::{self, StoreConfig};

pub fn migrate(config: Option<&Path>) -> anyhow::Result<u8> {
    let settings = Settings::load(config)?;
    let store_config: StoreConfig = settings.section("store")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let shown = redact_url(&store_config.url);
    let store = rt
        .block_on(store::connect(&store_config))
        .with_context(|| format!("migrate the store at {shown}"))?;
    println!(
        "store {} ({}) is at the latest schema",
        shown,
        store.backend()
    );
    Ok(0)
}
