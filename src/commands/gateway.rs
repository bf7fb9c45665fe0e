//! `cpo worker gateway`: the HTTP gateway (workers/gateway) wired to RabbitMQ,
//! Redis and the store, with the campaign API implemented by the `cpo enqueue`
//! and `cpo status` code. Also the signature check `cpo ingest` runs on the
//! SNS envelopes it reads.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use cpo_gateway::{ApiError, CampaignApi, Gateway, GatewayConfig, LazyStore, Parts};
use cpo_shared::campaign_file::CampaignFile;
use cpo_shared::config::Settings;
use cpo_shared::envelope::{Envelope, derive_id};
use cpo_shared::model::AudienceSource;
use cpo_shared::progress::ProgressStore;
use cpo_shared::queues;
use cpo_shared::redis_cache::{RedisCache, RedisConfig};
use cpo_shared::runtime::RuntimeConfig;
use cpo_shared::store::StoreConfig;
use cpo_shared::transport::amqp::{AmqpConfig, AmqpTransport};
use cpo_shared::transport::{Publish, Transport};
use cpo_shared::unsubscribe::UnsubscribeTokens;
use serde_json::Value;
use tracing::info;

use crate::wiring::{SecurityConfig, secret};

/// The campaign API of the fleet: `cpo enqueue`'s checks and publish, `cpo status`'s read.
pub struct FleetCampaigns {
    settings: Settings,
    transport: Arc<dyn Transport>,
    progress: ProgressStore,
}

impl FleetCampaigns {
    pub fn new(settings: Settings, transport: Arc<dyn Transport>, progress: ProgressStore) -> Self {
        Self {
            settings,
            transport,
            progress,
        }
    }
}

#[async_trait]
impl CampaignApi for FleetCampaigns {
    async fn submit(&self, request: &str) -> Result<String, ApiError> {
        let file = CampaignFile::parse(request).map_err(ApiError::Invalid)?;
        // No server-side default audience: the CRM names it.
        let Some(audience) = file.audience.clone() else {
            return Err(ApiError::Invalid("key `audience`: required".into()));
        };
        let campaign = file
            .into_request(audience)
            .map_err(|e| ApiError::Invalid(e.to_string()))?;
        if let AudienceSource::Csv { path } = &campaign.audience
            && path.trim().is_empty()
        {
            return Err(ApiError::Invalid("key `audience.path`: empty".into()));
        }
        crate::wiring::check_campaign_links(&self.settings, &campaign)
            .map_err(|e| ApiError::Invalid(format!("{e:#}")))?;
        let campaign_id = campaign.campaign_id.clone();
        let envelope = Envelope::new(
            derive_id(&[&campaign_id, "campaign"]),
            campaign_id.clone(),
            campaign,
        );
        let body = serde_json::to_vec(&envelope).map_err(|e| ApiError::Invalid(e.to_string()))?;
        self.transport
            .publish(
                queues::CAMPAIGNS,
                Publish {
                    id: envelope.id.clone(),
                    body,
                    delay: None,
                },
            )
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        Ok(campaign_id)
    }

    async fn status(&self, campaign_id: &str) -> Result<Option<Value>, ApiError> {
        let progress = self
            .progress
            .read(campaign_id)
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        progress
            .map(|p| {
                serde_json::to_value(crate::commands::status::StatusJson::from(&p))
                    .map_err(|e| ApiError::Unavailable(e.to_string()))
            })
            .transpose()
    }
}

/// The unsubscribe key, when the gateway serves unsubscribes.
fn unsubscribe_tokens(
    settings: &Settings,
    gateway: &GatewayConfig,
) -> anyhow::Result<Option<UnsubscribeTokens>> {
    if !gateway.unsubscribe {
        return Ok(None);
    }
    let security: SecurityConfig = settings.section("security")?;
    let key = secret(
        &security.unsubscribe_key,
        &security.unsubscribe_key_file,
        "unsubscribe_key",
    )?
    .context(
        "gateway.unsubscribe needs security.unsubscribe_key (CPO__SECURITY__UNSUBSCRIBE_KEY)",
    )?;
    Ok(Some(UnsubscribeTokens::new(key)))
}

pub fn run(port: Option<u16>, config: Option<&Path>) -> anyhow::Result<u8> {
    crate::commands::init_logging(false, true);
    let settings = Settings::load(config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(settings, port))?;
    Ok(0)
}

async fn serve(settings: Settings, port: Option<u16>) -> anyhow::Result<()> {
    // Every setting and key is checked before anything is connected.
    let gateway_config: GatewayConfig = settings.section("gateway")?;
    Gateway::check(&gateway_config)?;
    let amqp: AmqpConfig = settings.section("amqp")?;
    let amqp = amqp.resolve()?;
    amqp.validate()?;
    let redis: RedisConfig = settings.section("redis")?;
    let runtime_config: RuntimeConfig = settings.section("runtime")?;
    let store_config: StoreConfig = settings.section("store")?;
    let unsubscribe = unsubscribe_tokens(&settings, &gateway_config)?;
    let port = port.unwrap_or(gateway_config.port);
    let addr: SocketAddr = format!("{}:{port}", gateway_config.bind)
        .parse()
        .with_context(|| format!("gateway.bind: `{}` is not an address", gateway_config.bind))?;
    let cache = Arc::new(RedisCache::new(&redis)?);
    let token = cpo_shared::shutdown::on_signals();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let transport = AmqpTransport::connect(amqp)
        .await
        .context("cannot reach RabbitMQ")?;
    let transport_dyn: Arc<dyn Transport> = Arc::new(transport.clone());
    let progress = ProgressStore::new(
        cache.clone(),
        Duration::from_secs(runtime_config.progress_ttl_s),
    );
    let campaigns: Arc<dyn CampaignApi> = Arc::new(FleetCampaigns::new(
        settings.clone(),
        transport_dyn.clone(),
        progress,
    ));
    let sources = gateway_config.sources();
    let gateway = Gateway::new(Parts {
        config: gateway_config,
        transport: transport_dyn,
        cache,
        store: Some(LazyStore::new(store_config)),
        unsubscribe,
        campaigns: Some(campaigns),
    })?;
    gateway.set_ready(true);
    info!(%addr, ?sources, "gateway serving");
    let stop = token.clone();
    let ready = gateway.clone();
    axum::serve(listener, gateway.router())
        .with_graceful_shutdown(async move {
            stop.cancelled().await;
            ready.set_ready(false);
            info!("gateway shutting down: finishing in-flight requests");
        })
        .await
        .context("gateway server")?;
    transport.close().await;
    info!("gateway stopped");
    Ok(())
}

/// `cpo ingest`'s signature check, with the gateway's verifiers and keys: an
/// SNS envelope is checked against its certificate (`gateway.ses`), a Mailgun
/// body against `gateway.mailgun.signing_key`; a signed object that cannot be
/// checked (the source not configured) is refused, never trusted.
pub struct IngestVerifier {
    sns: Option<cpo_gateway::verify::certs::SnsVerifier>,
    mailgun: Option<cpo_gateway::verify::mailgun::MailgunVerifier>,
    runtime: tokio::runtime::Runtime,
}

impl IngestVerifier {
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let gateway: GatewayConfig = settings.section("gateway")?;
        let sns = match gateway.ses {
            Some(ses) => Some(
                cpo_gateway::verify::certs::SnsVerifier::new(ses).map_err(anyhow::Error::msg)?,
            ),
            None => None,
        };
        let mailgun = match &gateway.mailgun {
            Some(c) => {
                let key = cpo_gateway::config::secret(
                    &c.signing_key,
                    &c.signing_key_file,
                    "mailgun.signing_key",
                )?;
                Some(cpo_gateway::verify::mailgun::MailgunVerifier::new(
                    &key,
                    c.max_age(),
                ))
            }
            None => None,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        Ok(Self {
            sns,
            mailgun,
            runtime,
        })
    }
}

impl cpo_analysis::events::SignatureCheck for IngestVerifier {
    fn check(&self, value: &Value) -> Result<(), String> {
        use cpo_analysis::events::{InputFormat, carried_signature};
        match carried_signature(value) {
            None => Ok(()),
            Some(InputFormat::Mailgun) => {
                let verifier = self.mailgun.as_ref().ok_or(
                    "mailgun signature cannot be checked: gateway.mailgun.signing_key is not set",
                )?;
                verifier
                    .verify_signature(value)
                    .map(|_| ())
                    .map_err(|e| format!("mailgun signature: {e}"))
            }
            Some(_) => {
                let verifier = self.sns.as_ref().ok_or(
                    "SNS signature cannot be checked: gateway.ses (regions, certificates) is not set",
                )?;
                self.runtime
                    .block_on(verifier.verify_signature_only(value))
                    .map_err(|e| format!("SNS signature: {e}"))
            }
        }
    }
}

/// `cpo ingest` with signature checks.
pub fn ingest(args: cpo_analysis::cli::IngestArgs, config: Option<&Path>) -> anyhow::Result<u8> {
    let settings = Settings::load(config)?;
    let verifier = IngestVerifier::from_settings(&settings)?;
    cpo_analysis::cli::run_ingest_checked(args, &verifier)?;
    Ok(0)
}
