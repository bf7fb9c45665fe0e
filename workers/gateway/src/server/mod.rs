//! The HTTP server: routes, shared state, health endpoints.

pub mod events;
mod providers;
pub mod reply;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use cpo_shared::cache::Cache;
use cpo_shared::transport::Transport;
use cpo_shared::unsubscribe::UnsubscribeTokens;

use crate::api::CampaignApi;
use crate::config::{GatewayConfig, secret};
use crate::store::LazyStore;
use crate::verify::certs::SnsVerifier;
use crate::verify::mailgun::MailgunVerifier;
use crate::verify::sendgrid::SendgridVerifier;

/// Everything the gateway talks to. Each optional part enables its routes.
pub struct Parts {
    pub config: GatewayConfig,
    pub transport: Arc<dyn Transport>,
    pub cache: Arc<dyn Cache>,
    /// Needed for `gateway.unsubscribe`.
    pub store: Option<LazyStore>,
    pub unsubscribe: Option<UnsubscribeTokens>,
    /// Needed for `gateway.api`.
    pub campaigns: Option<Arc<dyn CampaignApi>>,
}

pub(crate) struct Inner {
    pub config: GatewayConfig,
    pub transport: Arc<dyn Transport>,
    pub cache: Arc<dyn Cache>,
    pub sendgrid: Option<SendgridVerifier>,
    pub ses: Option<SnsVerifier>,
    pub mailgun: Option<MailgunVerifier>,
    pub cpo_token: Option<Vec<u8>>,
    pub api_token: Option<Vec<u8>>,
    pub store: Option<LazyStore>,
    pub unsubscribe: Option<UnsubscribeTokens>,
    pub campaigns: Option<Arc<dyn CampaignApi>>,
    pub ready: AtomicBool,
}

/// The gateway's state; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Gateway {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub String);

impl Gateway {
    /// Checks every setting and key without building a gateway: a process
    /// calls it before it connects to anything, so a bad key fails first.
    pub fn check(config: &GatewayConfig) -> Result<(), BuildError> {
        Verifiers::new(config).map(|_| ())
    }

    /// Checks every setting and key; nothing is connected yet.
    pub fn new(parts: Parts) -> Result<Self, BuildError> {
        let config = parts.config;
        let Verifiers {
            sendgrid,
            ses,
            mailgun,
            cpo_token,
            api_token,
        } = Verifiers::new(&config)?;
        if config.unsubscribe && (parts.unsubscribe.is_none() || parts.store.is_none()) {
            return Err(BuildError(
                "key `gateway.unsubscribe`: needs `security.unsubscribe_key` and `store.url`"
                    .into(),
            ));
        }
        if config.api.is_some() && parts.campaigns.is_none() {
            return Err(BuildError(
                "key `gateway.api`: no campaign API wired in".into(),
            ));
        }
        let inner = Inner {
            transport: parts.transport,
            cache: parts.cache,
            sendgrid,
            ses,
            mailgun,
            cpo_token,
            api_token,
            store: if config.unsubscribe {
                parts.store
            } else {
                None
            },
            unsubscribe: if config.unsubscribe {
                parts.unsubscribe
            } else {
                None
            },
            campaigns: if config.api.is_some() {
                parts.campaigns
            } else {
                None
            },
            config,
            ready: AtomicBool::new(false),
        };
        crate::metrics::metrics();
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    pub fn config(&self) -> &GatewayConfig {
        &self.inner.config
    }

    /// `/readyz` answers 200 only while this is set (after startup, until shutdown).
    pub fn set_ready(&self, ready: bool) {
        self.inner.ready.store(ready, Ordering::Release);
    }

    /// Every route; disabled sources answer 404.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/webhooks/sendgrid", post(providers::sendgrid))
            .route("/webhooks/ses", post(providers::ses))
            .route("/webhooks/mailgun", post(providers::mailgun))
            .route("/webhooks/cpo", post(providers::own))
            .route(
                "/u/{token}",
                get(crate::unsubscribe::page).post(crate::unsubscribe::confirm),
            )
            .route("/v1/campaigns", post(crate::api::submit))
            .route("/v1/campaigns/{id}", get(crate::api::status))
            .route(
                "/metrics",
                get(|| async { cpo_shared::metrics::metrics().render() }),
            )
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .with_state(self.clone())
    }
}

/// The checkers of every enabled source, built from their settings.
struct Verifiers {
    sendgrid: Option<SendgridVerifier>,
    ses: Option<SnsVerifier>,
    mailgun: Option<MailgunVerifier>,
    cpo_token: Option<Vec<u8>>,
    api_token: Option<Vec<u8>>,
}

impl Verifiers {
    fn new(config: &GatewayConfig) -> Result<Self, BuildError> {
        config.validate().map_err(|e| BuildError(e.to_string()))?;
        let err = |e: crate::config::ConfigError| BuildError(e.to_string());
        let sendgrid =
            match &config.sendgrid {
                Some(c) => {
                    let key = secret(&c.public_key, &c.public_key_file, "sendgrid.public_key")
                        .map_err(err)?;
                    let key = String::from_utf8_lossy(&key).to_string();
                    Some(SendgridVerifier::new(&key, c.max_age()).map_err(|e| {
                        BuildError(format!("key `gateway.sendgrid.public_key`: {e}"))
                    })?)
                }
                None => None,
            };
        let ses = match &config.ses {
            Some(c) => Some(SnsVerifier::new(c.clone()).map_err(BuildError)?),
            None => None,
        };
        let mailgun = match &config.mailgun {
            Some(c) => {
                let key = secret(&c.signing_key, &c.signing_key_file, "mailgun.signing_key")
                    .map_err(err)?;
                Some(MailgunVerifier::new(&key, c.max_age()))
            }
            None => None,
        };
        let token = |c: &Option<crate::config::TokenConfig>, name: &str| match c {
            Some(c) => secret(&c.token, &c.token_file, name).map(Some).map_err(err),
            None => Ok(None),
        };
        Ok(Self {
            sendgrid,
            ses,
            mailgun,
            cpo_token: token(&config.cpo, "cpo.token")?,
            api_token: token(&config.api, "api.token")?,
        })
    }
}

async fn readyz(State(gateway): State<Gateway>) -> (StatusCode, &'static str) {
    if gateway.inner.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}
