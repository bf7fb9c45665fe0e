//! Subscriptions: a consumer on its own channel, re-established after a connection
//! loss, and the acker that settles each delivery.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use backoff::backoff::Backoff;
use lapin::message::DeliveryResult;
use lapin::options::BasicRejectOptions;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Consumer};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep};
use tracing::{info, warn};

use super::dead_letters::{BrokerDeath, broker_dead_letter};
use super::link::{Connector, retry_backoff};
use super::topology::Topology;
use crate::queues;
use crate::transport::{Acker, Delivery, Subscription, TransportError};

/// How often an idle subscription checks that its channel is still open, in case the
/// client library ended it without telling the consumer.
const HEALTH_CHECK: Duration = Duration::from_secs(1);

struct Active {
    channel: Channel,
    _consumer: Consumer,
    deliveries: mpsc::UnboundedReceiver<DeliveryResult>,
}

impl Drop for Active {
    fn drop(&mut self) {
        // lapin keeps the channel open while its consumer is registered, whatever handles
        // we drop, so close it explicitly: the broker then redelivers what it held unacked.
        if !self.channel.status().connected() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let channel = self.channel.clone();
            runtime.spawn(async move {
                let _ = channel.close(200, "consumer closed".into()).await;
            });
        }
    }
}

pub(super) struct AmqpSubscription {
    connector: Arc<Connector>,
    topology: Arc<Topology>,
    queue: ShortString,
    logical: String,
    prefetch: u16,
    /// Bound on one attempt to (re)open the consumer.
    attempt_timeout: Duration,
    active: Option<Active>,
}

impl AmqpSubscription {
    /// Subscribe now, failing if the consumer cannot be opened before `attempt_timeout`.
    pub(super) async fn open(
        connector: Arc<Connector>,
        topology: Arc<Topology>,
        logical: &str,
        prefetch: u16,
        attempt_timeout: Duration,
    ) -> Result<Self, TransportError> {
        let queue = ShortString::try_new(topology.queue(logical))
            .map_err(|e| TransportError::Broker(format!("queue name: {e}")))?;
        let mut subscription = Self {
            connector,
            topology,
            queue,
            logical: logical.to_string(),
            prefetch,
            attempt_timeout,
            active: None,
        };
        subscription.active = Some(subscription.start().await?);
        Ok(subscription)
    }

    async fn start(&self) -> Result<Active, TransportError> {
        let deadline = Instant::now() + self.attempt_timeout;
        let link = self.connector.link(deadline).await?;
        let fail = |what: &str, e: lapin::Error| {
            TransportError::Broker(format!(
                "{what} on {}: {}",
                self.queue,
                self.connector.scrub(e)
            ))
        };
        // A channel per consumer: a channel error (or its close) then only affects this
        // consumer, and closing it hands its unacked deliveries back to the broker.
        let channel = link
            .connection
            .create_channel()
            .await
            .map_err(|e| fail("open channel", e))?;
        // Prefetch per consumer (global = false): at most `prefetch` unacked deliveries
        // in this worker's hands. The runtime relies on it to bound concurrency, and it
        // keeps one replica from hoarding messages the others could be handling.
        channel
            .basic_qos(self.prefetch, BasicQosOptions { global: false })
            .await
            .map_err(|e| fail("basic.qos", e))?;
        let options = BasicConsumeOptions {
            // Explicit acks: a message leaves the queue only when the runtime acks it,
            // after what it produced was confirmed. This is the at-least-once guarantee.
            no_ack: false,
            // Competing consumers: a stage scales by adding replicas on the same queue.
            exclusive: false,
            ..BasicConsumeOptions::default()
        };
        let consumer = channel
            .basic_consume(
                self.queue.clone(),
                // Empty tag: the broker generates a unique one.
                ShortString::from(""),
                options,
                FieldTable::default(),
            )
            .await
            .map_err(|e| fail("basic.consume", e))?;
        let (sender, deliveries) = mpsc::unbounded_channel();
        // The delegate runs in delivery order on lapin's dispatcher; sending right away
        // (not in the returned future, which is spawned) keeps that order. The channel is
        // bounded in practice by the prefetch.
        consumer.set_delegate(move |result: DeliveryResult| {
            let _ = sender.send(result);
            std::future::ready(())
        });
        Ok(Active {
            channel,
            _consumer: consumer,
            deliveries,
        })
    }

    fn to_delivery(&self, delivery: lapin::message::Delivery) -> Delivery {
        let lapin::message::Delivery {
            data,
            redelivered,
            properties,
            acker,
            ..
        } = delivery;
        // Messages the broker dead-lettered (delivery limit) carry the original body; give
        // readers of the dead-letter queue the same record the runtime writes.
        let death = (self.logical == queues::DEAD_LETTER)
            .then(|| broker_death(&properties))
            .flatten();
        let body = match death {
            Some(death) => broker_dead_letter(&data, &death, &self.topology),
            None => data,
        };
        Delivery {
            body,
            redelivered,
            acker: Box::new(AmqpAcker { acker: Some(acker) }),
        }
    }
}

#[async_trait]
impl Subscription for AmqpSubscription {
    async fn next(&mut self) -> Option<Result<Delivery, TransportError>> {
        let mut backoff = retry_backoff(self.connector.reconnect_max());
        loop {
            if self.connector.closed().is_cancelled() {
                return None;
            }
            let Some(active) = self.active.as_mut() else {
                match self.start().await {
                    Ok(active) => {
                        info!(queue = %self.queue, "amqp consumer re-established");
                        self.active = Some(active);
                        backoff.reset();
                    }
                    Err(TransportError::Closed) => return None,
                    Err(e) => {
                        let wait = backoff
                            .next_backoff()
                            .unwrap_or(self.connector.reconnect_max());
                        warn!(queue = %self.queue, error = %e, retry_in_ms = wait.as_millis() as u64, "amqp consumer not re-established, retrying");
                        tokio::select! {
                            _ = self.connector.closed().cancelled() => return None,
                            _ = sleep(wait) => {}
                        }
                    }
                }
                continue;
            };
            let event = tokio::select! {
                // Biased: a ready delivery is taken without arming the health-check timer.
                biased;
                _ = self.connector.closed().cancelled() => return None,
                event = active.deliveries.recv() => event,
                _ = sleep(HEALTH_CHECK) => {
                    if !active.channel.status().connected() {
                        warn!(queue = %self.queue, "amqp channel closed, re-establishing the consumer");
                        self.active = None;
                    }
                    continue;
                }
            };
            match event {
                Some(Ok(Some(delivery))) => {
                    // Buffered before its channel died: the broker has requeued it already.
                    if !delivery.acker.usable() {
                        continue;
                    }
                    return Some(Ok(self.to_delivery(delivery)));
                }
                Some(Err(e)) => {
                    warn!(queue = %self.queue, error = %self.connector.scrub(e), "amqp consumer failed, re-establishing");
                    self.active = None;
                }
                Some(Ok(None)) | None => {
                    warn!(queue = %self.queue, "amqp consumer cancelled, re-establishing");
                    self.active = None;
                }
            }
        }
    }
}

/// The last entry of the `x-death` header the broker adds when it dead-letters a message.
fn broker_death(properties: &BasicProperties) -> Option<BrokerDeath> {
    let headers = properties.headers().as_ref()?;
    let AMQPValue::FieldArray(deaths) = headers.inner().get("x-death")? else {
        return None;
    };
    // Most recent first.
    let AMQPValue::FieldTable(latest) = deaths.as_slice().first()? else {
        return None;
    };
    let text = |key: &str| match latest.inner().get(key) {
        Some(AMQPValue::LongString(s)) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        Some(AMQPValue::ShortString(s)) => Some(s.to_string()),
        _ => None,
    };
    Some(BrokerDeath {
        queue: text("queue")?,
        reason: text("reason")?,
        time_ms: match latest.inner().get("time") {
            Some(AMQPValue::Timestamp(seconds)) => Some(seconds.saturating_mul(1000)),
            _ => None,
        },
    })
}

/// Settles one delivery. Dropped unsettled, it hands the message back (nack with
/// requeue) so the prefetch slot is freed and the message is delivered again, as the
/// in-memory transport does; should even that fail, the broker redelivers the message
/// when the channel closes.
struct AmqpAcker {
    acker: Option<lapin::Acker>,
}

fn settled(result: lapin::Result<bool>, what: &str) -> Result<(), TransportError> {
    match result {
        Ok(true) => Ok(()),
        Ok(false) => Err(TransportError::Broker(format!(
            "{what} not sent: the channel closed and the broker redelivers the message"
        ))),
        Err(e) => Err(TransportError::Broker(format!("{what}: {e}"))),
    }
}

#[async_trait]
impl Acker for AmqpAcker {
    async fn ack(mut self: Box<Self>) -> Result<(), TransportError> {
        let Some(acker) = self.acker.take() else {
            return Ok(());
        };
        // One message at a time (multiple = false): deliveries are settled out of order
        // by concurrent handlers, so acking "everything up to this tag" would be wrong.
        settled(acker.ack(BasicAckOptions { multiple: false }).await, "ack")
    }

    async fn reject(mut self: Box<Self>, requeue: bool) -> Result<(), TransportError> {
        let Some(acker) = self.acker.take() else {
            return Ok(());
        };
        // With requeue the message is delivered again (counted against the queue's
        // delivery limit); without, the queue's dead-letter exchange takes it, so even a
        // rejected message is kept in the dead-letter queue rather than discarded.
        settled(acker.reject(BasicRejectOptions { requeue }).await, "reject")
    }
}

impl Drop for AmqpAcker {
    fn drop(&mut self) {
        let Some(acker) = self.acker.take() else {
            return;
        };
        if !acker.usable() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let options = BasicNackOptions {
                    multiple: false,
                    requeue: true,
                };
                let _ = acker.nack(options).await;
            });
        }
    }
}
