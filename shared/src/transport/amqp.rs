//! The fleet's transport: RabbitMQ through lapin, with the guarantees the runtime
//! expects of every transport (see `transport/mod.rs` and `design.md` beside this file).
//!
//! - `publish` returns once the broker confirmed the message (publisher confirms); a
//!   nack or an unroutable message is an error. While the connection is down, publishes
//!   wait for the reconnection until `publish_timeout_ms`, then fail.
//! - A delayed publish waits in a delay-tier queue (`topology::DELAY_TIERS_MS`, rounded
//!   up) and comes back to its queue when the tier's TTL expires.
//! - `subscribe` consumes with explicit acks and a prefetch; a consumer lost with its
//!   connection is re-established, and what it held unacked is redelivered by the broker.
//! - Work queues are quorum queues with a delivery limit: a poison message ends in the
//!   dead-letter queue, never in an endless redelivery loop.

mod config;
mod consumer;
mod dead_letters;
mod declare;
mod link;
mod topology;

use std::sync::Arc;

use async_trait::async_trait;
use backoff::backoff::Backoff;
use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Confirmation};
use tokio::time::{Instant, sleep, timeout_at};
use tracing::{info, warn};

/// Kept here too: the URL redaction lives in `privacy`.
pub use crate::privacy::redact_url;
pub use config::AmqpConfig;
pub use dead_letters::BROKER_STAGE;
pub use topology::{DELAY_TIERS_MS, Topology, delay_tier};

use super::{Publish, Subscription, Transport, TransportError};
use consumer::AmqpSubscription;
use link::{Connector, retry_backoff};

/// Ready messages and consumers of one queue (for `cpo status` and queue-depth autoscaling).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDepth {
    /// Logical name (`segments`, `dead-letter`, `delay.1000`).
    pub queue: String,
    /// Messages waiting for a consumer (not counting unacked ones).
    pub ready: u32,
    pub consumers: u32,
}

struct Inner {
    config: AmqpConfig,
    topology: Arc<Topology>,
    connector: Arc<Connector>,
}

/// RabbitMQ transport. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct AmqpTransport {
    inner: Arc<Inner>,
}

/// Why one publish attempt failed: worth retrying on a new link or not.
enum Failure {
    Retry(String),
    Fatal(String),
    Closed,
}

impl AmqpTransport {
    /// Connect (retrying until `connect_timeout_ms`) and declare the topology.
    pub async fn connect(config: AmqpConfig) -> Result<Self, TransportError> {
        let config = config
            .resolve()
            .map_err(|e| TransportError::Broker(e.to_string()))?;
        config
            .validate()
            .map_err(|e| TransportError::Broker(e.to_string()))?;
        let topology = Arc::new(Topology::new(&config.prefix, config.delivery_limit));
        let connector = Arc::new(Connector::new(&config));
        let link = connector
            .link(Instant::now() + config.connect_timeout())
            .await?;
        if config.declare_topology {
            let channel = link
                .connection
                .create_channel()
                .await
                .map_err(|e| TransportError::Broker(connector.scrub(e)))?;
            declare::declare(&topology, &channel)
                .await
                .map_err(|e| TransportError::Broker(connector.scrub(e)))?;
            let _ = channel.close(200, "topology declared".into()).await;
        }
        info!(url = %connector.redacted_url(), prefix = %config.prefix, "amqp transport ready");
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                topology,
                connector,
            }),
        })
    }

    pub fn topology(&self) -> &Topology {
        &self.inner.topology
    }

    pub fn config(&self) -> &AmqpConfig {
        &self.inner.config
    }

    /// Ready messages per queue, delay tiers included, from passive declares.
    pub async fn queue_depths(&self) -> Result<Vec<QueueDepth>, TransportError> {
        let channel = self.scratch_channel().await?;
        let topology = &self.inner.topology;
        let mut names: Vec<String> = Topology::logical_queues().map(str::to_string).collect();
        names.extend(DELAY_TIERS_MS.iter().map(|tier| format!("delay.{tier}")));
        let mut depths = Vec::with_capacity(names.len());
        for logical in names {
            let queue = self.short(&topology.queue(&logical))?;
            // Passive: only look the queue up; never create it, never change it.
            let options = QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            };
            let declared = channel
                .queue_declare(queue, options, FieldTable::default())
                .await
                .map_err(|e| TransportError::Broker(format!("queue {logical}: {e}")))?;
            depths.push(QueueDepth {
                queue: logical,
                ready: declared.message_count(),
                consumers: declared.consumer_count(),
            });
        }
        let _ = channel.close(200, "depths read".into()).await;
        Ok(depths)
    }

    /// Delete every queue and exchange of this prefix, messages included. For tests and
    /// teardown of a throwaway deployment; consumers of these queues are cancelled.
    pub async fn delete_topology(&self) -> Result<(), TransportError> {
        let channel = self.scratch_channel().await?;
        declare::delete(&self.inner.topology, &channel)
            .await
            .map_err(TransportError::Broker)?;
        let _ = channel.close(200, "topology deleted".into()).await;
        Ok(())
    }

    /// Close the connection: subscriptions end, later publishes fail with `Closed`, and
    /// the broker requeues whatever was delivered but not acked.
    pub async fn close(&self) {
        self.inner.connector.close().await;
    }

    /// Drop the connection as a network failure would (tests of the reconnection path).
    #[doc(hidden)]
    pub async fn simulate_connection_loss(&self) {
        self.inner.connector.drop_connection().await;
    }

    async fn scratch_channel(&self) -> Result<lapin::Channel, TransportError> {
        let deadline = Instant::now() + self.inner.config.publish_timeout();
        let link = self.inner.connector.link(deadline).await?;
        // A channel of its own: a failing passive declare closes the channel it ran on.
        link.connection
            .create_channel()
            .await
            .map_err(|e| TransportError::Broker(self.inner.connector.scrub(e)))
    }

    fn short(&self, value: &str) -> Result<ShortString, TransportError> {
        ShortString::try_new(value)
            .map_err(|e| TransportError::Broker(format!("name `{value}`: {e}")))
    }

    async fn publish_once(
        &self,
        deadline: Instant,
        exchange: &ShortString,
        routing_key: &ShortString,
        body: &[u8],
        properties: &BasicProperties,
    ) -> Result<(), Failure> {
        let link = self
            .inner
            .connector
            .link(deadline)
            .await
            .map_err(|e| match e {
                TransportError::Closed => Failure::Closed,
                TransportError::Broker(e) => Failure::Fatal(e),
            })?;
        let scrub = |e: lapin::Error| Failure::Retry(self.inner.connector.scrub(e));
        let options = BasicPublishOptions {
            // Mandatory: a message no queue is bound for comes back to us as an error
            // instead of being dropped silently by the exchange.
            mandatory: true,
            // RabbitMQ does not implement `immediate`.
            immediate: false,
        };
        let confirm = link
            .publisher
            .basic_publish(
                exchange.clone(),
                routing_key.clone(),
                options,
                body,
                properties.clone(),
            )
            .await
            .map_err(scrub)?;
        match confirm.await.map_err(scrub)? {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(returned)) => Err(Failure::Fatal(format!(
                "unroutable: no queue bound for `{routing_key}` on `{exchange}` ({})",
                returned.reply_text
            ))),
            Confirmation::Nack(_) => Err(Failure::Fatal(format!(
                "the broker refused the message for `{routing_key}` (nack)"
            ))),
            Confirmation::NotRequested => Err(Failure::Retry(
                "publisher confirms were not enabled on the channel".into(),
            )),
        }
    }
}

#[async_trait]
impl Transport for AmqpTransport {
    async fn publish(&self, queue: &str, message: Publish) -> Result<(), TransportError> {
        let timeout = self.inner.config.publish_timeout();
        let deadline = Instant::now() + timeout;
        let topology = &self.inner.topology;
        let exchange = match message.delay.filter(|d| !d.is_zero()) {
            Some(delay) => topology.delay(delay_tier(delay)),
            None => topology.exchange(),
        };
        let exchange = self.short(&exchange)?;
        // The routing key is the logical queue, also on the way through a delay tier: the
        // tier's fanout exchange ignores it and the message keeps it for its return.
        let routing_key = self.short(queue)?;
        // Persistent (delivery mode 2): written to disk, so a broker restart keeps it
        // (quorum queues persist everything; this also covers classic queues if a
        // deployment swaps them in). The message id shows in the management UI and traces.
        let mut properties = BasicProperties::default().with_delivery_mode(2);
        if let Ok(id) = ShortString::try_new(message.id.as_str()) {
            properties = properties.with_message_id(id);
        }
        let mut backoff = retry_backoff(self.inner.connector.reconnect_max());
        loop {
            let attempt = self.publish_once(
                deadline,
                &exchange,
                &routing_key,
                &message.body,
                &properties,
            );
            let error = match timeout_at(deadline, attempt).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(Failure::Closed)) => return Err(TransportError::Closed),
                Ok(Err(Failure::Fatal(e))) => {
                    return Err(TransportError::Broker(format!("publish to {queue}: {e}")));
                }
                Ok(Err(Failure::Retry(e))) => e,
                Err(_) => "no confirm before the deadline".to_string(),
            };
            let wait = backoff.next_backoff().unwrap_or(timeout);
            if Instant::now() + wait >= deadline {
                return Err(TransportError::Broker(format!(
                    "publish to {queue} not confirmed within {} ms: {error}",
                    timeout.as_millis()
                )));
            }
            warn!(queue, %error, retry_in_ms = wait.as_millis() as u64, "amqp publish failed, retrying");
            sleep(wait).await;
        }
    }

    async fn subscribe(
        &self,
        queue: &str,
        prefetch: u16,
    ) -> Result<Box<dyn Subscription>, TransportError> {
        let cap = self.inner.config.prefetch;
        let prefetch = if prefetch == 0 {
            cap
        } else {
            prefetch.min(cap)
        };
        let subscription = AmqpSubscription::open(
            self.inner.connector.clone(),
            self.inner.topology.clone(),
            queue,
            prefetch,
            self.inner.config.publish_timeout(),
        )
        .await?;
        Ok(Box::new(subscription))
    }
}
