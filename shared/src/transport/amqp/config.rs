//! The `amqp` config section and its validation.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{ConfigError, resolve_url};
use crate::privacy::redact_url;

/// Settings of the AMQP transport (config section `amqp`; `CPO__AMQP__URL` overrides the URL).
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmqpConfig {
    /// `amqp://user:password@host:port/vhost` or `amqps://...` (TLS). The password is never logged.
    pub url: String,
    /// A file holding the whole URL (a mounted secret); replaces `url`.
    pub url_file: Option<PathBuf>,
    /// A file holding the password, put into the URL (percent-encoded) at connect time,
    /// so the URL itself can live in plain config: `amqps://cpo@broker:5671/prod`.
    pub password_file: Option<PathBuf>,
    /// Prepended to every exchange and queue name, so several deployments, or parallel
    /// tests, share one broker without seeing each other's messages.
    pub prefix: String,
    /// Upper bound on unacknowledged deliveries per consumer: `subscribe(queue, n)` asks the
    /// broker for `min(n, prefetch)` (`n = 0` means `prefetch`).
    pub prefetch: u16,
    /// How long `publish` may wait for the broker's confirm, reconnection included,
    /// before it returns an error (the runtime then requeues the input).
    pub publish_timeout_ms: u64,
    /// How long `AmqpTransport::connect` keeps retrying a broker that is not up yet.
    pub connect_timeout_ms: u64,
    /// Longest pause between two reconnection attempts (the backoff grows up to it).
    pub reconnect_max_ms: u64,
    /// Deliveries of one message without an ack (crashed workers, requeues) before the
    /// broker moves it to the dead-letter queue instead of delivering it again.
    pub delivery_limit: u32,
    /// Declare exchanges, queues and bindings at start. Turn off where the topology is
    /// loaded from `deploy/rabbitmq/definitions.json` and workers lack `configure` permission.
    pub declare_topology: bool,
}

impl Default for AmqpConfig {
    fn default() -> Self {
        Self {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            url_file: None,
            password_file: None,
            prefix: "cpo.".into(),
            prefetch: 256,
            publish_timeout_ms: 30_000,
            connect_timeout_ms: 30_000,
            reconnect_max_ms: 5_000,
            delivery_limit: 10,
            declare_topology: true,
        }
    }
}

// By hand: a derived Debug would print the password inside the URL.
impl fmt::Debug for AmqpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpConfig")
            .field("url", &redact_url(&self.url))
            .field("url_file", &self.url_file)
            .field("password_file", &self.password_file)
            .field("prefix", &self.prefix)
            .field("prefetch", &self.prefetch)
            .field("publish_timeout_ms", &self.publish_timeout_ms)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("reconnect_max_ms", &self.reconnect_max_ms)
            .field("delivery_limit", &self.delivery_limit)
            .field("declare_topology", &self.declare_topology)
            .finish()
    }
}

impl AmqpConfig {
    /// The config with `url_file` and `password_file` read into `url`.
    pub fn resolve(mut self) -> Result<Self, ConfigError> {
        self.url = resolve_url(
            "amqp",
            &self.url,
            self.url_file.as_deref(),
            self.password_file.as_deref(),
        )?;
        self.url_file = None;
        self.password_file = None;
        Ok(self)
    }

    /// Check the values that would otherwise fail later, deep inside the broker client.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| ConfigError::Section {
            section: "amqp".into(),
            message: format!("key `amqp.{key}`: {message}"),
        };
        if !(self.url.starts_with("amqp://") || self.url.starts_with("amqps://")) {
            return Err(bad(
                "url",
                format!(
                    "`{}` must start with amqp:// or amqps://",
                    redact_url(&self.url)
                ),
            ));
        }
        validate_prefix(&self.prefix).map_err(|m| bad("prefix", m))?;
        if self.prefetch == 0 {
            return Err(bad("prefetch", "must be at least 1".into()));
        }
        if self.delivery_limit == 0 {
            return Err(bad("delivery_limit", "must be at least 1".into()));
        }
        for (key, value) in [
            ("publish_timeout_ms", self.publish_timeout_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("reconnect_max_ms", self.reconnect_max_ms),
        ] {
            if value == 0 {
                return Err(bad(key, "must be greater than 0".into()));
            }
        }
        Ok(())
    }

    pub fn publish_timeout(&self) -> Duration {
        Duration::from_millis(self.publish_timeout_ms)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub fn reconnect_max(&self) -> Duration {
        Duration::from_millis(self.reconnect_max_ms)
    }
}

/// Names are `<prefix><logical name>` and must fit AMQP's 255-byte short strings; the
/// `amq.` namespace is reserved by the broker.
fn validate_prefix(prefix: &str) -> Result<(), String> {
    if prefix.len() > 100 {
        return Err(format!(
            "{} bytes, at most 100 so names stay under 255",
            prefix.len()
        ));
    }
    if prefix.starts_with("amq.") {
        return Err("the `amq.` namespace is reserved by RabbitMQ".into());
    }
    if let Some(c) = prefix
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':')))
    {
        return Err(format!(
            "character {c:?} not allowed (letters, digits, . - _ :)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn debug_output_hides_the_password() {
        let config = AmqpConfig {
            url: "amqp://svc:hunter2@h/%2f".into(),
            ..AmqpConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("svc:***@h"), "{shown}");
    }

    #[test]
    fn section_overrides_defaults_and_validation_names_the_key() {
        let settings =
            Settings::from_yaml("amqp:\n  prefix: \"test.\"\n  delivery_limit: 3\n").unwrap();
        let config: AmqpConfig = settings.section("amqp").unwrap();
        assert_eq!(config.prefix, "test.");
        assert_eq!(config.delivery_limit, 3);
        assert_eq!(config.url, AmqpConfig::default().url);
        config.validate().unwrap();

        let bad = AmqpConfig {
            url: "http://u:topsecret@h".into(),
            ..AmqpConfig::default()
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("amqp.url"), "{err}");
        assert!(!err.contains("topsecret"), "{err}");
        let bad = AmqpConfig {
            prefix: "amq.x".into(),
            ..AmqpConfig::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("amqp.prefix")
        );
        let bad = AmqpConfig {
            prefix: "a b".into(),
            ..AmqpConfig::default()
        };
        assert!(bad.validate().is_err());
        let bad = AmqpConfig {
            prefetch: 0,
            ..AmqpConfig::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("amqp.prefetch")
        );
    }
}
