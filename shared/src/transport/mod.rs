//! Transports: how envelopes move between stages.
//!
//! The in-memory transport (`memory.rs`) backs the embedded mode; the AMQP one
//! backs the fleet. Both give the same guarantees to the runtime: `publish`
//! returns only once the message is stored (broker confirm), a delivery stays
//! owned by the consumer until acked, and an unacked delivery is redelivered.

pub mod amqp;
pub mod memory;

use std::time::Duration;

use async_trait::async_trait;

pub use memory::MemoryTransport;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("transport closed")]
    Closed,
    #[error("broker error: {0}")]
    Broker(String),
}

/// A message to publish.
#[derive(Debug, Clone)]
pub struct Publish {
    pub id: String,
    pub body: Vec<u8>,
    /// Deliver no earlier than this from now (retries and deferrals).
    pub delay: Option<Duration>,
}

/// What a consumer receives: the body and the handle that settles it.
pub struct Delivery {
    pub body: Vec<u8>,
    /// True when the broker delivered this message before and it was not acked.
    pub redelivered: bool,
    pub acker: Box<dyn Acker>,
}

#[async_trait]
pub trait Acker: Send {
    /// The message is done with; the broker forgets it.
    async fn ack(self: Box<Self>) -> Result<(), TransportError>;
    /// Hand the message back; with `requeue` it is delivered again.
    async fn reject(self: Box<Self>, requeue: bool) -> Result<(), TransportError>;
}

#[async_trait]
pub trait Subscription: Send {
    /// The next delivery, or `None` once the transport is closed.
    async fn next(&mut self) -> Option<Result<Delivery, TransportError>>;
}

#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Publish and wait until the transport has stored the message.
    async fn publish(&self, queue: &str, message: Publish) -> Result<(), TransportError>;
    /// Start consuming a queue with at most `prefetch` unacked deliveries.
    async fn subscribe(
        &self,
        queue: &str,
        prefetch: u16,
    ) -> Result<Box<dyn Subscription>, TransportError>;
}
