//! The connection to the broker and the confirming publisher channel, rebuilt on demand.
//!
//! What lapin does and does not recover by itself: lapin 4 can reconnect and replay
//! topology and consumers when `ConnectionProperties::enable_auto_recover()` is set, but
//! that is off by default and we leave it off. Without it a dropped connection is final:
//! every channel and consumer on it is dead, pending publisher confirms fail, and the
//! ackers of unacked deliveries are "poisoned" (an ack through them sends nothing). The
//! broker, for its part, requeues every delivery that was unacked on a dead channel
//! (flagged `redelivered`), so nothing is lost; it is only redelivered.
//!
//! So we rebuild explicitly, which keeps every wait bounded and visible: `link()` hands
//! out a healthy connection and publisher channel, reconnecting (single-flight, with the
//! backoff crate's exponential policy) when they died; publishers wait for it until
//! their deadline, and subscriptions open a new channel and consumer on the new link.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use backoff::ExponentialBackoff;
use backoff::backoff::Backoff;
use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::time::{Instant, sleep, timeout_at};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::config::AmqpConfig;
use crate::privacy::{redact_url, url_password};
use crate::transport::TransportError;

/// A healthy connection and its publisher channel (cheap to clone).
#[derive(Clone)]
pub(super) struct Link {
    pub(super) connection: Arc<Connection>,
    /// In confirm mode: every publish on it is acked or nacked by the broker.
    pub(super) publisher: Channel,
}

#[derive(Default)]
struct Current {
    connection: Option<Arc<Connection>>,
    publisher: Option<Channel>,
}

pub(super) struct Connector {
    url: String,
    password: Option<String>,
    redacted_url: String,
    connection_name: String,
    reconnect_max: Duration,
    current: Mutex<Current>,
    /// Held while (re)connecting, so concurrent callers wait for one attempt instead of
    /// opening a connection each.
    reconnecting: tokio::sync::Mutex<()>,
    closed: CancellationToken,
}

fn lock(current: &Mutex<Current>) -> MutexGuard<'_, Current> {
    // The guarded value is two handles replaced whole; a poisoned lock holds no half-update.
    current.lock().unwrap_or_else(|p| p.into_inner())
}

/// Exponential backoff with jitter (so a fleet does not reconnect in lockstep), capped at
/// `max`; the caller's deadline, not the policy, decides when to give up.
pub(super) fn retry_backoff(max: Duration) -> ExponentialBackoff {
    let initial = Duration::from_millis(50).min(max);
    ExponentialBackoff {
        current_interval: initial,
        initial_interval: initial,
        max_interval: max,
        multiplier: 2.0,
        randomization_factor: 0.3,
        max_elapsed_time: None,
        ..ExponentialBackoff::default()
    }
}

impl Connector {
    pub(super) fn new(config: &AmqpConfig) -> Self {
        Self {
            url: config.url.clone(),
            password: url_password(&config.url).map(str::to_string),
            redacted_url: redact_url(&config.url),
            connection_name: format!("cpo {}", config.prefix),
            reconnect_max: config.reconnect_max(),
            current: Mutex::new(Current::default()),
            reconnecting: tokio::sync::Mutex::new(()),
            closed: CancellationToken::new(),
        }
    }

    pub(super) fn closed(&self) -> &CancellationToken {
        &self.closed
    }

    pub(super) fn redacted_url(&self) -> &str {
        &self.redacted_url
    }

    pub(super) fn reconnect_max(&self) -> Duration {
        self.reconnect_max
    }

    /// An error text from the client library, with the password removed should it appear.
    pub(super) fn scrub(&self, error: impl std::fmt::Display) -> String {
        let text = error.to_string();
        match &self.password {
            Some(password) => text.replace(password.as_str(), "***"),
            None => text,
        }
    }

    fn healthy(&self) -> Option<Link> {
        let current = lock(&self.current);
        let connection = current.connection.as_ref()?;
        let publisher = current.publisher.as_ref()?;
        (connection.status().connected() && publisher.status().connected()).then(|| Link {
            connection: connection.clone(),
            publisher: publisher.clone(),
        })
    }

    /// A healthy link, reconnecting with backoff until `deadline` if needed.
    pub(super) async fn link(&self, deadline: Instant) -> Result<Link, TransportError> {
        if self.closed.is_cancelled() {
            return Err(TransportError::Closed);
        }
        if let Some(link) = self.healthy() {
            return Ok(link);
        }
        let _single_flight = timeout_at(deadline, self.reconnecting.lock())
            .await
            .map_err(|_| self.unreachable("another task's reconnection did not finish in time"))?;
        // Whoever held the lock may have reconnected already.
        if let Some(link) = self.healthy() {
            return Ok(link);
        }
        let mut backoff = retry_backoff(self.reconnect_max);
        loop {
            if self.closed.is_cancelled() {
                return Err(TransportError::Closed);
            }
            let error = match timeout_at(deadline, self.repair()).await {
                Ok(Ok(link)) => return Ok(link),
                Ok(Err(error)) => error,
                Err(_) => "no connection before the deadline".to_string(),
            };
            let wait = backoff.next_backoff().unwrap_or(self.reconnect_max);
            if Instant::now() + wait >= deadline {
                return Err(self.unreachable(&error));
            }
            warn!(url = %self.redacted_url, %error, retry_in_ms = wait.as_millis() as u64, "amqp connection failed, retrying");
            tokio::select! {
                _ = self.closed.cancelled() => return Err(TransportError::Closed),
                _ = sleep(wait) => {}
            }
        }
    }

    fn unreachable(&self, error: &str) -> TransportError {
        TransportError::Broker(format!(
            "amqp broker {} unreachable: {error}",
            self.redacted_url
        ))
    }

    /// Reuse the connection when only the publisher channel died (a channel error, such
    /// as publishing to a deleted exchange, does not close the connection); else reconnect.
    async fn repair(&self) -> Result<Link, String> {
        let alive = lock(&self.current)
            .connection
            .clone()
            .filter(|c| c.status().connected());
        let connection = match alive {
            Some(connection) => connection,
            None => {
                // Named, so operators can tell a deployment's connections apart in the
                // management UI. Auto-recovery stays off (see the module comment).
                let properties = ConnectionProperties::default()
                    .with_connection_name(self.connection_name.as_str().into());
                let connection = Connection::connect(&self.url, properties)
                    .await
                    .map_err(|e| self.scrub(e))?;
                info!(url = %self.redacted_url, "amqp connected");
                Arc::new(connection)
            }
        };
        let publisher = connection
            .create_channel()
            .await
            .map_err(|e| format!("open publisher channel: {}", self.scrub(e)))?;
        // Publisher confirms: the broker acks each message once it is stored (for quorum
        // queues: fsynced on a majority), which is what lets the runtime ack its input.
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| format!("enable publisher confirms: {}", self.scrub(e)))?;
        let mut current = lock(&self.current);
        current.connection = Some(connection.clone());
        current.publisher = Some(publisher.clone());
        Ok(Link {
            connection,
            publisher,
        })
    }

    /// Close the connection as if the network had dropped it; the next use reconnects.
    pub(super) async fn drop_connection(&self) {
        let connection = lock(&self.current).connection.take();
        if let Some(connection) = connection {
            let _ = connection.close(320, "connection dropped".into()).await;
        }
    }

    /// Close for good: subscriptions end and publishes fail with `Closed`.
    pub(super) async fn close(&self) {
        self.closed.cancel();
        let (publisher, connection) = {
            let mut current = lock(&self.current);
            (current.publisher.take(), current.connection.take())
        };
        // The publisher channel first, and waited for: closing the connection
        // with it still open makes lapin close it a second time and log an error.
        if let Some(publisher) = publisher
            && publisher.status().connected()
        {
            let _ = publisher.close(200, "worker shutting down".into()).await;
        }
        if let Some(connection) = connection {
            // 200 = normal shutdown; the broker requeues whatever was left unacked.
            let _ = connection.close(200, "worker shutting down".into()).await;
        }
    }
}
