//! The fleet keeps each audit log's signed head in Redis, off the host that
//! writes the log, so whoever can cut that log's tail cannot also set back
//! its head. (The system-of-record store does not exist yet; when it does,
//! the head belongs there.)
//!
//! The audit sink is called synchronously from the stage handlers, so this
//! uses a blocking connection with bounded timeouts: one `SET` per flush of
//! the log (per batch, per safety decision), a fraction of a millisecond on
//! a local Redis. A failed `SET` fails the append, which the stage retries:
//! an unrecorded head must not be mistaken for a complete log.

use std::sync::Mutex;
use std::time::Duration;

use crate::audit::{AuditError, HeadStore, SignedHead};
use crate::config::resolve_url;
use crate::privacy::redact_url;

use super::RedisConfig;

/// One log's head at `<key_prefix>audit-head:<name>`.
pub struct RedisAuditHead {
    client: redis::Client,
    connection: Mutex<Option<redis::Connection>>,
    key: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    redacted_url: String,
}

fn unavailable(what: &str, error: impl std::fmt::Display) -> AuditError {
    AuditError::Unavailable(format!("redis {what}: {error}"))
}

impl RedisAuditHead {
    /// `name` tells the logs apart (the log's file name, one per stage).
    pub fn new(config: &RedisConfig, name: &str) -> Result<Self, AuditError> {
        let url = resolve_url(
            "redis",
            &config.url,
            config.url_file.as_deref(),
            config.password_file.as_deref(),
        )
        .map_err(|e| AuditError::Head(e.to_string()))?;
        let redacted_url = redact_url(&url);
        let client = redis::Client::open(url.as_str())
            .map_err(|e| AuditError::Head(format!("redis url {redacted_url}: {e}")))?;
        Ok(Self {
            client,
            connection: Mutex::new(None),
            key: format!("{}audit-head:{name}", config.key_prefix),
            connect_timeout: Duration::from_millis(config.connect_timeout_ms),
            response_timeout: Duration::from_millis(config.response_timeout_ms),
            redacted_url,
        })
    }

    /// Run `command` on the connection, opening it first if needed; a failed
    /// command drops the connection so the next call opens a fresh one.
    fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> Result<T, AuditError> {
        let mut slot = self.connection.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            let connection = self
                .client
                .get_connection_with_timeout(self.connect_timeout)
                .map_err(|e| unavailable(&self.redacted_url, e))?;
            connection
                .set_read_timeout(Some(self.response_timeout))
                .and_then(|()| connection.set_write_timeout(Some(self.response_timeout)))
                .map_err(|e| unavailable(&self.redacted_url, e))?;
            *slot = Some(connection);
        }
        let Some(connection) = slot.as_mut() else {
            return Err(unavailable(&self.redacted_url, "no connection"));
        };
        let result = command.query(connection);
        if result.is_err() {
            *slot = None;
        }
        result.map_err(|e| unavailable(&self.redacted_url, e))
    }
}

impl HeadStore for RedisAuditHead {
    fn load(&self) -> Result<Option<SignedHead>, AuditError> {
        let text: Option<String> = self.query(redis::cmd("GET").arg(&self.key))?;
        text.map(|t| SignedHead::from_json(&t)).transpose()
    }

    fn store(&self, head: &SignedHead) -> Result<(), AuditError> {
        self.query::<()>(redis::cmd("SET").arg(&self.key).arg(head.to_json()))
    }

    fn describe(&self) -> String {
        format!("redis {} key {}", self.redacted_url, self.key)
    }
}
