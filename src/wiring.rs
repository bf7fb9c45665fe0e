//! Builds every stage from configuration and its backends. The embedded mode
//! and the fleet workers both construct stages here, so the two modes run the
//! same stage code with the same settings.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use cpo_shared::audit::AuditSink;
use cpo_shared::cache::Cache;
use cpo_shared::config::Settings;
use cpo_shared::privacy::Pseudonymizer;
use cpo_shared::runtime::Runtime;
use cpo_shared::signing::Signer;
use cpo_shared::transport::TransportError;
use serde::Deserialize;
use tokio::task::JoinSet;

/// Secrets (config section `security`). Set them through the environment
/// (`CPO__SECURITY__SIGNING_KEY`, `CPO__SECURITY__PSEUDONYM_KEY`) or a file the
/// orchestrator mounts; they are never logged.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// HMAC key of safety approvals; safety and delivery must share it.
    pub signing_key: Option<String>,
    /// Read the signing key from this file instead.
    pub signing_key_file: Option<PathBuf>,
    /// Key of the customer-id pseudonyms in logs and the audit trail.
    pub pseudonym_key: Option<String>,
    pub pseudonym_key_file: Option<PathBuf>,
    /// HMAC key of the audit chain and its head (`src/audit_key.rs`).
    pub audit_key: Option<String>,
    pub audit_key_file: Option<PathBuf>,
    /// HMAC key of send batches; experimentation signs, delivery verifies.
    /// Only those two stages are given it (and only they ask for it).
    pub batch_key: Option<String>,
    /// Read the batch key from this file instead.
    pub batch_key_file: Option<PathBuf>,
    /// HMAC key of unsubscribe tokens (`cpo_shared::unsubscribe`); delivery
    /// makes them, the gateway checks them.
    pub unsubscribe_key: Option<String>,
    pub unsubscribe_key_file: Option<PathBuf>,
    /// HMAC key of email addresses in suppressions and tombstones
    /// (`cpo_shared::privacy::AddressHasher`); must not change once used.
    pub address_key: Option<String>,
    pub address_key_file: Option<PathBuf>,
}

impl std::fmt::Debug for SecurityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecurityConfig(..)")
    }
}

pub(crate) fn secret(
    value: &Option<String>,
    file: &Option<PathBuf>,
    name: &str,
) -> anyhow::Result<Option<Vec<u8>>> {
    if let Some(path) = file {
        let bytes = std::fs::read(path)
            .with_context(|| format!("security.{name}_file: cannot read {}", path.display()))?;
        let trimmed = String::from_utf8_lossy(&bytes).trim().as_bytes().to_vec();
        anyhow::ensure!(
            !trimmed.is_empty(),
            "security.{name}_file: {} is empty",
            path.display()
        );
        return Ok(Some(trimmed));
    }
    Ok(value
        .as_ref()
        .filter(|v| !v.is_empty())
        .map(|v| v.as_bytes().to_vec()))
}

/// The keys of this process. `ephemeral_ok`: without configured keys, use random
/// ones (fine when one process signs and verifies, as in the embedded mode).
pub fn keys(settings: &Settings, ephemeral_ok: bool) -> anyhow::Result<(Signer, Pseudonymizer)> {
    let security: SecurityConfig = settings.section("security")?;
    let signing = secret(
        &security.signing_key,
        &security.signing_key_file,
        "signing_key",
    )?;
    let pseudonym = secret(
        &security.pseudonym_key,
        &security.pseudonym_key_file,
        "pseudonym_key",
    )?;
    let signing = match signing {
        Some(key) => key,
        None if ephemeral_ok => rand::random::<[u8; 32]>().to_vec(),
        None => anyhow::bail!("security.signing_key is not set (CPO__SECURITY__SIGNING_KEY)"),
    };
    let pseudonym = match pseudonym {
        Some(key) => key,
        None if ephemeral_ok => rand::random::<[u8; 32]>().to_vec(),
        None => anyhow::bail!("security.pseudonym_key is not set (CPO__SECURITY__PSEUDONYM_KEY)"),
    };
    Ok((Signer::new(signing), Pseudonymizer::new(pseudonym)))
}

/// The send-batch key (`security.batch_key`). Only experimentation and
/// delivery load it, so a compromised segmentation, retrieval, generation or
/// safety worker cannot sign a batch. `ephemeral_ok` as in `keys`.
pub fn batch_signer(settings: &Settings, ephemeral_ok: bool) -> anyhow::Result<Signer> {
    let security: SecurityConfig = settings.section("security")?;
    let key = secret(&security.batch_key, &security.batch_key_file, "batch_key")?;
    Ok(Signer::new(match key {
        Some(key) => key,
        None if ephemeral_ok => rand::random::<[u8; 32]>().to_vec(),
        None => anyhow::bail!("security.batch_key is not set (CPO__SECURITY__BATCH_KEY)"),
    }))
}

/// What the stages are built with.
pub struct Backends<'a> {
    pub settings: &'a Settings,
    pub cache: Arc<dyn Cache>,
    /// The system of record (suppressions, campaign states); opened only
    /// for the stages that use it (`None` in the others' workers).
    pub store: Option<Arc<dyn cpo_shared::store::Store>>,
    /// Where delivery keeps its send records: the store itself, except for
    /// `cpo run` into the file outbox, whose records live and die with the run.
    pub send_records: Option<Arc<dyn cpo_shared::store::Store>>,
    /// The shared rate limiter's Redis (fleet); `None`: in memory (`cpo run`).
    pub redis: Option<cpo_shared::redis_cache::RedisConfig>,
    pub audit: Arc<dyn AuditSink>,
    pub signer: Signer,
    /// Signs (experimentation) and verifies (delivery) send batches; `None`
    /// in the workers of the other stages, which never hold the key.
    pub batch_signer: Option<Signer>,
    pub pseudonymizer: Pseudonymizer,
    /// Approved content corpus; overrides `retrieval.corpus_dir`.
    pub content_dir: Option<&'a Path>,
    /// The outbox file delivery appends to.
    pub outbox: PathBuf,
    /// Replace the configured generator (tests inject faulty ones).
    pub generator: Option<Arc<dyn cpo_generation::Generator>>,
    /// Replace the configured safety screen (tests inject failing ones).
    pub screen: Option<Arc<dyn cpo_safety::SafetyScreen>>,
    /// Keyed hashes of addresses, for suppressions (`security.address_key`).
    pub address_hasher: Option<cpo_shared::privacy::AddressHasher>,
}

pub type StageTasks = JoinSet<Result<(), TransportError>>;

/// Read every section `cpo run` uses, so a mistyped key fails the run before
/// it locks or writes its output directory (the stages read them again when
/// they are built).
pub fn check_run_sections(settings: &Settings) -> anyhow::Result<()> {
    let _: SecurityConfig = settings.section("security")?;
    let _: cpo_shared::runtime::RuntimeConfig = settings.section("runtime")?;
    let _: crate::embedded::EmbeddedConfig = settings.section("embedded")?;
    let _: cpo_segmentation::SegmentationConfig = settings.section("segmentation")?;
    let _: cpo_retrieval::RetrievalConfig = settings.section("retrieval")?;
    let _: cpo_generation::GenerationConfig = settings.section("generation")?;
    let _: cpo_safety::SafetyConfig = settings.section("safety")?;
    let _: cpo_experimentation::ExperimentationConfig = settings.section("experimentation")?;
    let _: cpo_delivery::DeliveryConfig = settings.section("delivery")?;
    let _: cpo_shared::store::StoreConfig = settings.section("store")?;
    policy(settings)?;
    Ok(())
}

/// The `policy` section, checked.
pub fn policy(settings: &Settings) -> anyhow::Result<cpo_experimentation::PolicyConfig> {
    let policy: cpo_experimentation::PolicyConfig = settings.section("policy")?;
    policy.validate().map_err(anyhow::Error::msg)?;
    Ok(policy)
}

pub fn segmentation(b: &Backends) -> anyhow::Result<cpo_segmentation::SegmentationStage> {
    let config: cpo_segmentation::SegmentationConfig = b.settings.section("segmentation")?;
    let stage = cpo_segmentation::SegmentationStage::new(config)?;
    // The audience total and its exclusions on record, when there is a store.
    Ok(match &b.store {
        Some(store) => stage.with_record(store.clone()),
        None => stage,
    })
}

pub fn retrieval(b: &Backends) -> anyhow::Result<cpo_retrieval::RetrievalStage> {
    let mut config: cpo_retrieval::RetrievalConfig = b.settings.section("retrieval")?;
    if let Some(dir) = b.content_dir {
        config.corpus_dir = dir.display().to_string();
    }
    cpo_retrieval::RetrievalStage::embedded(&config, b.cache.clone())
        .with_context(|| format!("cannot load the content corpus {}", config.corpus_dir))
}

pub fn generation(b: &Backends) -> anyhow::Result<cpo_generation::GenerationStage> {
    let config: cpo_generation::GenerationConfig = b.settings.section("generation")?;
    let generator = match &b.generator {
        Some(generator) => generator.clone(),
        None => config.generator()?,
    };
    Ok(cpo_generation::GenerationStage::new(generator, &config))
}

/// The safety stage with the configured screen (`safety.backend`), or the
/// injected one. When `safety.on_screen_error` is not set, a screen error
/// blocks (`block`): the embedded mode has no operator to replay a held
/// variant, it would only wait out the join timeout. A fleet worker calls
/// `safety_with_default(b, OnScreenError::Hold)` instead.
pub fn safety(b: &Backends) -> anyhow::Result<cpo_safety::SafetyStage> {
    safety_with_default(b, cpo_safety::OnScreenError::Block)
}

/// The safety stage, with `default` as the screen-error policy when
/// `safety.on_screen_error` is not set (a set key always wins).
pub fn safety_with_default(
    b: &Backends,
    default: cpo_safety::OnScreenError,
) -> anyhow::Result<cpo_safety::SafetyStage> {
    let mut config: cpo_safety::SafetyConfig = b.settings.section("safety")?;
    config.on_screen_error.get_or_insert(default);
    Ok(match &b.screen {
        Some(screen) => {
            cpo_safety::SafetyStage::new(screen.clone(), b.signer.clone(), b.audit.clone(), config)?
        }
        None => cpo_safety::SafetyStage::from_config(b.signer.clone(), b.audit.clone(), config)?,
    })
}

pub fn experimentation(b: &Backends) -> anyhow::Result<cpo_experimentation::ExperimentationStage> {
    let config: cpo_experimentation::ExperimentationConfig =
        b.settings.section("experimentation")?;
    let store = b
        .store
        .clone()
        .context("experimentation needs the store (store.url)")?;
    let addresses = b
        .address_hasher
        .clone()
        .context("security.address_key is not set (CPO__SECURITY__ADDRESS_KEY)")?;
    let record = cpo_experimentation::Record::new(store, addresses, policy(b.settings)?);
    Ok(
        cpo_experimentation::ExperimentationStage::new(config, b.cache.clone(), batch_key(b)?)?
            .with_record(record),
    )
}

fn batch_key(b: &Backends) -> anyhow::Result<Signer> {
    b.batch_signer
        .clone()
        .context("security.batch_key is not set (CPO__SECURITY__BATCH_KEY)")
}

pub fn delivery(b: &Backends) -> anyhow::Result<cpo_delivery::DeliveryStage> {
    use cpo_delivery::{MailSink, SinkKind};
    use cpo_shared::rate_limit::{MemoryRateLimiter, RateLimiter};
    let config: cpo_delivery::DeliveryConfig = b.settings.section("delivery")?;
    config.validate().map_err(anyhow::Error::msg)?;
    // The composer (and DKIM key) from `delivery.mail`; the embedded mode
    // (no shared Redis) may make up an unsubscribe key, a worker may not.
    let mail = crate::mail::mail(
        &outbox_defaults(b.settings, &config)?,
        b.content_dir,
        b.redis.is_none(),
    )?;
    let sink: Arc<dyn MailSink> = match config.sink {
        SinkKind::Outbox => Arc::new(
            cpo_delivery::FileOutbox::open(&b.outbox)
                .with_context(|| format!("cannot open the outbox {}", b.outbox.display()))?,
        ),
        SinkKind::Smtp => Arc::new(crate::mail::smtp_sink(b.settings, &mail)?),
        kind @ (SinkKind::Sendgrid | SinkKind::Ses | SinkKind::Mailgun) => {
            cpo_delivery::esp::build_sink(kind.as_str(), &config.esp)
                .map_err(anyhow::Error::msg)?
                .context("an ESP sink")?
        }
    };
    let limiter: Arc<dyn RateLimiter> = match &b.redis {
        // No limit: nothing to share, no round trip per send.
        Some(redis) if !config.rate.is_unlimited() => Arc::new(
            cpo_shared::redis_cache::RedisRateLimiter::new(redis, &config.rate)
                .map_err(anyhow::Error::msg)?,
        ),
        _ => Arc::new(MemoryRateLimiter::new(&config.rate)),
    };
    let composer = mail.composer;
    Ok(cpo_delivery::DeliveryStage::new(
        config,
        cpo_delivery::DeliveryBackends {
            signer: b.signer.clone(),
            batch_signer: batch_key(b)?,
            store: b
                .send_records
                .clone()
                .context("delivery needs the store (store.url)")?,
            record: b
                .store
                .clone()
                .context("delivery needs the store (store.url)")?,
            sink,
            limiter,
            composer,
            address_hasher: b
                .address_hasher
                .clone()
                .context("security.address_key is not set (CPO__SECURITY__ADDRESS_KEY)")?,
            audit: b.audit.clone(),
            pseudonymizer: b.pseudonymizer.clone(),
        },
    ))
}

/// Into the file outbox nothing is mailed: without `delivery.mail.from_address`,
/// `.postal_address` or `gateway.public_url` it writes as a demo sender, and
/// without `security.unsubscribe_key` its links use a fixed demo key, so two
/// runs write identical outboxes. (A gateway never holds that key; any real
/// sink needs every one of these settings.)
fn outbox_defaults(
    settings: &Settings,
    config: &cpo_delivery::DeliveryConfig,
) -> anyhow::Result<Settings> {
    if config.sink != cpo_delivery::SinkKind::Outbox {
        return Ok(settings.clone());
    }
    #[derive(Default, Deserialize)]
    #[serde(default)]
    struct PublicUrl {
        public_url: Option<String>,
    }
    let mut settings = settings.clone();
    if config.mail.from_address.trim().is_empty() {
        settings = settings.with_override("delivery.mail.from_address", "news@cpo.example")?;
    }
    if config.mail.postal_address.trim().is_empty() {
        settings = settings.with_override(
            "delivery.mail.postal_address",
            "cpo demo, nowhere (the file outbox mails no one)",
        )?;
    }
    let gateway: PublicUrl = settings.section("gateway")?;
    if gateway.public_url.is_none_or(|u| u.trim().is_empty()) {
        settings =
            settings.with_override("gateway.public_url", "https://unsubscribe.cpo.example")?;
    }
    let security: SecurityConfig = settings.section("security")?;
    if secret(
        &security.unsubscribe_key,
        &security.unsubscribe_key_file,
        "unsubscribe_key",
    )?
    .is_none()
    {
        settings = settings.with_override("security.unsubscribe_key", "cpo-outbox-demo-links")?;
    }
    Ok(settings)
}

/// Build all six stages (so configuration errors surface before anything runs),
/// then start each on the runtime.
pub fn spawn_all(runtime: &Runtime, b: &Backends, tasks: &mut StageTasks) -> anyhow::Result<()> {
    let segmentation = Arc::new(segmentation(b)?);
    let retrieval = Arc::new(retrieval(b)?);
    let generation = Arc::new(generation(b)?);
    let safety = Arc::new(safety(b)?);
    let experimentation = Arc::new(experimentation(b)?);
    let delivery = Arc::new(delivery(b)?);
    let rt = runtime.clone();
    tasks.spawn(async move { rt.run(segmentation).await });
    let rt = runtime.clone();
    tasks.spawn(async move { rt.run(retrieval).await });
    let rt = runtime.clone();
    tasks.spawn(async move { rt.run(generation).await });
    let rt = runtime.clone();
    tasks.spawn(async move { rt.run(safety).await });
    let rt = runtime.clone();
    tasks.spawn(async move { rt.run(experimentation).await });
    let rt = runtime.clone();
    tasks.spawn(async move { rt.run(delivery).await });
    Ok(())
}

/// The enqueue check of a campaign's links (https, on
/// `delivery.allowed_link_domains`), the rule delivery applies again per batch.
pub fn check_campaign_links(
    settings: &Settings,
    campaign: &cpo_shared::model::CampaignRequest,
) -> anyhow::Result<()> {
    let delivery: cpo_delivery::DeliveryConfig = settings.section("delivery")?;
    cpo_shared::links::check_campaign_links(campaign, &delivery.allowed_link_domains)
        .map_err(anyhow::Error::msg)
}

/// Sort the outbox by message id so runs are byte-identical whatever the batch interleaving.
/// Returns the number of messages in the outbox.
pub fn finish_outbox(path: &Path) -> anyhow::Result<u64> {
    if !path.exists() {
        return Ok(0);
    }
    cpo_delivery::canonicalize_outbox(path)
        .with_context(|| format!("cannot sort {}", path.display()))
}

/// The address hasher (`security.address_key`), if the key is set.
pub fn address_hasher(
    settings: &Settings,
) -> anyhow::Result<Option<cpo_shared::privacy::AddressHasher>> {
    let security: SecurityConfig = settings.section("security")?;
    let key = secret(
        &security.address_key,
        &security.address_key_file,
        "address_key",
    )?;
    Ok(key.map(cpo_shared::privacy::AddressHasher::new))
}

/// Open the store named by `store.url` (migrations applied).
pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn cpo_shared::store::Store>> {
    let config: cpo_shared::store::StoreConfig = settings.section("store")?;
    let redacted = cpo_shared::privacy::redact_url(&config.url);
    cpo_shared::store::connect(&config)
        .await
        .with_context(|| format!("cannot open the store (store.url {redacted})"))
}

/// The events stage on the configured store, and the prefetch it needs
/// (at least two batches: one written while the next fills).
pub async fn events(
    settings: &Settings,
    concurrency: u16,
) -> anyhow::Result<(cpo_events::EventsStage, u16)> {
    let config: cpo_events::EventsConfig = settings.section("events")?;
    config.validate().map_err(anyhow::Error::msg)?;
    // Required, like every worker key: without it a bounce of a message the
    // store does not know would suppress nobody.
    let hasher = address_hasher(settings)?.context(
        "security.address_key is not set (CPO__SECURITY__ADDRESS_KEY): the events worker \
         suppresses addresses by their keyed hash",
    )?;
    let store = open_store(settings).await?;
    let stage =
        cpo_events::EventsStage::new(&config, store, Some(hasher)).map_err(anyhow::Error::msg)?;
    Ok((stage, config.prefetch(concurrency)))
}
