//! Fleet tools: `cpo enqueue` publishes a campaign as a CRM would; `cpo collect`
//! follows a campaign through the fleet until it is complete and writes its
//! outbox and summary (what `make fleet-demo` uses).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use cpo_shared::config::Settings;
use cpo_shared::envelope::{Envelope, derive_id};
use cpo_shared::model::AudienceSource;
use cpo_shared::queues;
use cpo_shared::transport::amqp::{AmqpConfig, AmqpTransport};
use cpo_shared::transport::{Publish, Transport};

#[derive(Args)]
pub struct EnqueueArgs {
    /// Campaign request (YAML or JSON).
    pub campaign: PathBuf,
    /// Customer CSV (made absolute so workers in other directories can read it).
    #[arg(long)]
    pub customers: Option<PathBuf>,
}

#[derive(Args)]
pub struct CollectArgs {
    /// Campaign id to follow.
    pub campaign_id: String,
    /// Where to write outbox.jsonl and summary.json.
    #[arg(long)]
    pub out: PathBuf,
    /// The fleet's outboxes (each delivery replica's `worker.outbox`); repeat
    /// the option for several replicas.
    #[arg(long, default_values = ["out/fleet/outbox.jsonl"])]
    pub outbox: Vec<PathBuf>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn enqueue(args: EnqueueArgs, config: Option<&Path>) -> anyhow::Result<u8> {
    super::init_logging(true, false);
    let settings = Settings::load(config)?;
    let mut campaign = super::run::load_campaign(&args.campaign, args.customers.as_deref())?;
    crate::wiring::check_campaign_links(&settings, &campaign)?;
    if let AudienceSource::Csv { path } = &mut campaign.audience {
        let absolute =
            std::fs::canonicalize(&*path).with_context(|| format!("customer file {path}"))?;
        *path = absolute.display().to_string();
    }
    let amqp: AmqpConfig = settings.section("amqp")?;
    runtime()?.block_on(async {
        let transport = AmqpTransport::connect(amqp)
            .await
            .context("cannot reach RabbitMQ")?;
        let campaign_id = campaign.campaign_id.clone();
        // The request is on record before any stage sees it (status, collect
        // and analysis read it from the store).
        let store = crate::wiring::open_store(&settings).await?;
        store
            .put_campaign(&cpo_shared::store::CampaignRecord {
                campaign_id: campaign_id.clone(),
                request: serde_json::to_string(&campaign)?,
                state: "enqueued".into(),
                updated_at_ms: cpo_shared::envelope::now_ms() as i64,
            })
            .await
            .context("cannot record the campaign in the store")?;
        let envelope = Envelope::new(
            derive_id(&[&campaign_id, "campaign"]),
            campaign_id.clone(),
            campaign,
        );
        let body = serde_json::to_vec(&envelope)?;
        transport
            .publish(
                queues::CAMPAIGNS,
                Publish {
                    id: envelope.id.clone(),
                    body,
                    delay: None,
                },
            )
            .await
            .context("publish the campaign")?;
        transport.close().await;
        println!("enqueued campaign {campaign_id} (message {})", envelope.id);
        anyhow::Ok(())
    })?;
    Ok(0)
}

/// `cpo collect`: reads the store and the progress counters (`collect.rs`).
pub fn collect(args: CollectArgs, config: Option<&Path>) -> anyhow::Result<u8> {
    super::collect::collect(args, config)
}

/// `cpo teardown`: delete this prefix's queues and Redis keys (tests, demos).
pub fn teardown(config: Option<&Path>) -> anyhow::Result<u8> {
    super::init_logging(true, false);
    let settings = Settings::load(config)?;
    let amqp: AmqpConfig = settings.section("amqp")?;
    let redis: cpo_shared::redis_cache::RedisConfig = settings.section("redis")?;
    runtime()?.block_on(async {
        let transport = AmqpTransport::connect(amqp)
            .await
            .context("cannot reach RabbitMQ")?;
        transport.delete_topology().await?;
        transport.close().await;
        let cache = cpo_shared::redis_cache::RedisCache::new(&redis)?;
        let removed = cache.delete_prefixed().await?;
        println!("deleted the topology and {removed} keys");
        anyhow::Ok(())
    })?;
    Ok(0)
}
