//! Harness of the events stage tests: the stage on the runtime over the real
//! RabbitMQ (a topology of its own per test), writing to the real PostgreSQL
//! (a database of its own, dropped after) or to SQLite in a tempdir, and a
//! TCP relay in front of PostgreSQL that a test can cut to play an outage
//! without touching the server.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use cpo_events::{EventsConfig, EventsStage};
use cpo_shared::Envelope;
use cpo_shared::model::EventMessage;
use cpo_shared::privacy::AddressHasher;
use cpo_shared::queues;
use cpo_shared::runtime::{Runtime, RuntimeConfig};
use cpo_shared::store::{self, Store, StoreConfig};
use cpo_shared::transport::amqp::{AmqpConfig, AmqpTransport};
use cpo_shared::transport::{Publish, Transport};
use sqlx::Connection;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const PG_HINT: &str = "PostgreSQL must run on 127.0.0.1:5432 (user postgres, trust auth)";
pub const ADDRESS_KEY: &[u8] = b"events-test-address-key";

fn unique(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{tag}_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh PostgreSQL database, dropped by `drop_it`.
pub struct PgDatabase {
    pub name: String,
}

impl PgDatabase {
    pub async fn create() -> Self {
        let name = unique("cpo_events_test");
        let mut admin = sqlx::PgConnection::connect(PG_ADMIN)
            .await
            .unwrap_or_else(|e| panic!("{PG_HINT}: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        Self { name }
    }

    pub fn url_on(&self, port: u16) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/{}", self.name)
    }

    pub async fn drop_it(self) {
        let mut admin = sqlx::PgConnection::connect(PG_ADMIN).await.unwrap();
        sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}

pub async fn open_store(url: &str) -> Arc<dyn Store> {
    let config = StoreConfig {
        url: url.to_string(),
        pool_size: 4,
        // An outage shows within a second instead of the default 30.
        acquire_timeout_ms: 1_000,
        ..StoreConfig::default()
    };
    store::connect(&config)
        .await
        .unwrap_or_else(|e| panic!("open store {url}: {e}"))
}

/// Runs the events stage on a topology of its own until dropped.
pub struct Harness {
    pub transport: AmqpTransport,
    pub stage: Arc<EventsStage>,
    token: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Harness {
    pub async fn start(tag: &str, store: Arc<dyn Store>) -> Self {
        let config = AmqpConfig {
            url: std::env::var("CPO_TEST_AMQP_URL")
                .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into()),
            prefix: format!("test.{}.", unique(tag)),
            connect_timeout_ms: 5_000,
            ..AmqpConfig::default()
        };
        let transport = AmqpTransport::connect(config).await.unwrap_or_else(|e| {
            panic!("RabbitMQ is not reachable on 127.0.0.1:5672 ({e}): start it with `rabbitmq-server -detached`")
        });
        let events = EventsConfig::default();
        let runtime_config = RuntimeConfig {
            concurrency: events.prefetch(1),
            // An outage is retried every 200 ms in the tests.
            outage_retry_ms: 200,
            outage_max_retry_ms: 200,
            ..RuntimeConfig::default()
        };
        let stage = Arc::new(
            EventsStage::new(&events, store, Some(AddressHasher::new(ADDRESS_KEY))).unwrap(),
        );
        let token = CancellationToken::new();
        let runtime = Runtime::new(Arc::new(transport.clone()), runtime_config, token.clone());
        let running = stage.clone();
        let task = tokio::spawn(async move {
            runtime.run(running).await.expect("events stage runs");
        });
        Self {
            transport,
            stage,
            token,
            task: Some(task),
        }
    }

    /// Publish each event in an envelope of its own (`copy` tells replays apart).
    pub async fn publish(&self, events: &[EventMessage], copy: u32) {
        for event in events {
            let envelope = Envelope::new(
                format!("evt-{}-{copy}", event.event_id),
                "events",
                event.clone(),
            );
            let body = serde_json::to_vec(&envelope).unwrap();
            self.transport
                .publish(
                    queues::EVENTS,
                    Publish {
                        id: envelope.id.clone(),
                        body,
                        delay: None,
                    },
                )
                .await
                .expect("publish event");
        }
    }

    /// Ready messages in the dead-letter queue.
    pub async fn dead_letters(&self) -> u32 {
        let depths = self.transport.queue_depths().await.unwrap();
        depths
            .iter()
            .find(|d| d.queue == queues::DEAD_LETTER)
            .map(|d| d.ready)
            .unwrap_or(0)
    }

    pub async fn stop(mut self) {
        self.token.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        self.transport.delete_topology().await.unwrap();
        self.transport.close().await;
    }
}

/// Wait until `check` holds, or fail after `within` with `what`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn event(id: &str, event_type: &str, message: Option<&str>, raw: &str) -> EventMessage {
    EventMessage {
        provider: "sendgrid".into(),
        event_id: format!("sendgrid:{id}"),
        message_id: message.map(String::from),
        provider_message_id: None,
        event_type: event_type.into(),
        occurred_at_ms: 1_700_000_000_000,
        raw: raw.into(),
    }
}

/// A TCP relay to PostgreSQL on a port of its own. `cut` closes the listener
/// and every relayed connection, as a stopped server would look to a client;
/// `restore` listens again on the same port.
pub struct Relay {
    pub port: u16,
    tasks: Option<JoinSet<()>>,
}

impl Relay {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut relay = Self { port, tasks: None };
        relay.serve(listener);
        relay
    }

    fn serve(&mut self, listener: TcpListener) {
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect("127.0.0.1:5432").await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        self.tasks = Some(tasks);
    }

    pub async fn cut(&mut self) {
        // Aborting the accept task drops the listener and, with its JoinSet,
        // every connection it relays.
        if let Some(mut tasks) = self.tasks.take() {
            tasks.shutdown().await;
        }
    }

    pub async fn restore(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serve(listener);
    }
}
