//! The gateway on real RabbitMQ and Redis (and PostgreSQL for unsubscribes),
//! each test under its own queue prefix, key prefix and database, served on
//! a loopback port and reached over real HTTP.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cpo_gateway::{CampaignApi, Gateway, GatewayConfig, LazyStore, Parts};
use cpo_shared::cache::Cache;
use cpo_shared::privacy::redact_url;
use cpo_shared::queues;
use cpo_shared::redis_cache::{RedisCache, RedisConfig};
use cpo_shared::transport::amqp::{AmqpConfig, AmqpTransport};
use cpo_shared::transport::{Subscription, Transport};
use cpo_shared::unsubscribe::UnsubscribeTokens;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::Value;

pub const SNS_CERT_URL: &str =
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem";
pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

pub fn unique(test: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("test.gw.{test}.{}.{nanos:x}{n}.", std::process::id())
}

pub fn amqp_config(prefix: &str) -> AmqpConfig {
    AmqpConfig {
        url: std::env::var("CPO_TEST_AMQP_URL")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into()),
        prefix: prefix.to_string(),
        connect_timeout_ms: 5_000,
        publish_timeout_ms: 10_000,
        reconnect_max_ms: 500,
        ..AmqpConfig::default()
    }
}

pub fn redis_config(prefix: &str) -> RedisConfig {
    RedisConfig {
        url: std::env::var("CPO_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379/".into()),
        key_prefix: prefix.to_string(),
        ..RedisConfig::default()
    }
}

/// A SendGrid account's signing key, as a test holds it.
pub struct SendgridKey {
    pair: EcdsaKeyPair,
    pub public_base64: String,
}

impl SendgridKey {
    pub fn new() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let public_base64 = STANDARD.encode(cpo_gateway::verify::sendgrid::spki_der(
            pair.public_key().as_ref(),
        ));
        Self {
            pair,
            public_base64,
        }
    }

    pub fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        let signed = [timestamp.as_bytes(), body].concat();
        STANDARD.encode(self.pair.sign(&SystemRandom::new(), &signed).unwrap())
    }
}

/// What a test may add to the gateway.
#[derive(Default)]
pub struct Extras {
    pub store: Option<LazyStore>,
    pub unsubscribe: Option<UnsubscribeTokens>,
    pub campaigns: Option<Arc<dyn CampaignApi>>,
    /// Point Redis at a closed port (Redis down).
    pub redis_down: bool,
}

pub struct Harness {
    pub base: String,
    pub http: reqwest::Client,
    pub transport: AmqpTransport,
    pub cache: Arc<RedisCache>,
    pub gateway: Gateway,
    events: Box<dyn Subscription>,
    server: tokio::task::JoinHandle<()>,
}

impl Harness {
    pub async fn start(prefix: &str, config: GatewayConfig, extras: Extras) -> Self {
        let amqp = amqp_config(prefix);
        let url = redact_url(&amqp.url);
        let transport = AmqpTransport::connect(amqp).await.unwrap_or_else(|e| {
            panic!(
                "RabbitMQ is not reachable at {url}: {e}\nStart it with `rabbitmq-server -detached` \
                 or set CPO_TEST_AMQP_URL."
            )
        });
        let mut redis = redis_config(prefix);
        let cache = Arc::new(RedisCache::new(&redis).expect("redis config"));
        cache.ping().await.unwrap_or_else(|e| {
            panic!(
                "Redis is not reachable at {}: {e}\nStart it with `redis-server --daemonize yes`.",
                redis.url
            )
        });
        let gateway_cache: Arc<dyn Cache> = if extras.redis_down {
            redis.url = "redis://127.0.0.1:1/".into();
            redis.reconnect_retries = 0;
            Arc::new(RedisCache::new(&redis).unwrap())
        } else {
            cache.clone()
        };
        let events = transport
            .subscribe(queues::EVENTS, 200)
            .await
            .expect("subscribe to events");
        let gateway = Gateway::new(Parts {
            config,
            transport: Arc::new(transport.clone()),
            cache: gateway_cache,
            store: extras.store,
            unsubscribe: extras.unsubscribe,
            campaigns: extras.campaigns,
        })
        .expect("gateway config");
        Self::serve(gateway, transport, cache, events).await
    }

    async fn serve(
        gateway: Gateway,
        transport: AmqpTransport,
        cache: Arc<RedisCache>,
        events: Box<dyn Subscription>,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        gateway.set_ready(true);
        let router = gateway.router();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            base,
            http: reqwest::Client::new(),
            transport,
            cache,
            gateway,
            events,
            server,
        }
    }

    pub async fn post(
        &self,
        path: &str,
        content_type: &str,
        headers: &[(&str, String)],
        body: impl Into<Vec<u8>>,
    ) -> (u16, String) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body.into());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.expect("http request");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    pub async fn get(&self, path: &str, headers: &[(&str, String)]) -> (u16, String) {
        let mut request = self.http.get(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.expect("http request");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    /// Every event message on the queue now (waits `quiet` for stragglers), acked.
    pub async fn drain_events(&mut self, quiet: Duration) -> Vec<Value> {
        let mut out = Vec::new();
        while let Ok(Some(Ok(delivery))) = tokio::time::timeout(quiet, self.events.next()).await {
            let envelope: Value =
                serde_json::from_slice(&delivery.body).expect("event envelope is JSON");
            delivery.acker.ack().await.expect("ack");
            out.push(envelope);
        }
        out
    }

    /// The value of one metric series in `/metrics`, 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let (_, text) = self.get("/metrics", &[]).await;
        text.lines()
            .find_map(|line| {
                line.strip_prefix(series)
                    .and_then(|rest| rest.trim().parse().ok())
            })
            .unwrap_or(0.0)
    }

    pub async fn stop(self) {
        self.server.abort();
        let _ = self.cache.delete_prefixed().await;
        let _ = self.transport.delete_topology().await;
        self.transport.close().await;
    }
}

pub fn now_s() -> i64 {
    (cpo_shared::envelope::now_ms() / 1000) as i64
}

pub fn message_id(customer: &str) -> String {
    cpo_shared::envelope::message_id("spring-1", customer)
}

impl Harness {
    /// Stops the server but keeps the queues and keys for the next harness on the prefix.
    pub async fn server_only_stop(self) {
        self.server.abort();
        self.transport.close().await;
    }
}
