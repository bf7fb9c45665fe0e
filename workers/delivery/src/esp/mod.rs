//! The ESP API sinks: SendGrid v3 mail/send, Amazon SES v2 SendEmail and
//! Mailgun's messages API, each a `MailSink` chosen by `delivery.sink`
//! (`sendgrid`, `ses`, `mailgun`) and configured under `delivery.esp.*`.
//!
//! A sink speaks its provider's protocol and sorts its answers, nothing
//! more: 2xx is `Sent` with the provider's id, 429 is `Retry` after
//! Retry-After, 408/5xx and transport errors are `Retry`, other 4xx are
//! `Failed` with the provider's reason. Every call carries our message id
//! (SendGrid `custom_args.message_id`, SES tag `message_id`, Mailgun
//! `v:message_id`) so the gateway maps the provider's events back to us.
//! Credentials come from a file or the environment, are checked when the
//! sink is built (the error names the key) and are never logged.

mod aws_credentials;
mod batch;
mod http;
pub mod mailgun;
pub mod sendgrid;
pub mod ses;
pub mod sigv4;

use std::sync::Arc;

use serde::Deserialize;

pub use mailgun::{MailgunConfig, MailgunSink};
pub use sendgrid::{SendGridConfig, SendGridSink};
pub use ses::{SesConfig, SesSink};

use crate::sink::MailSink;

/// Config section `delivery.esp`: one block per provider; only the one named
/// by `delivery.sink` is read.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EspConfig {
    pub sendgrid: SendGridConfig,
    pub ses: SesConfig,
    pub mailgun: MailgunConfig,
}

/// A sink that cannot be built: the config key at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}`: {message}")]
pub struct EspError {
    pub key: String,
    pub message: String,
}

impl EspError {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The sink named `sink` (`sendgrid`, `ses` or `mailgun`), built from its
/// block of `config`; `None` for a name that is not an ESP (`outbox`,
/// `smtp`: the caller builds those).
pub fn build_sink(sink: &str, config: &EspConfig) -> Result<Option<Arc<dyn MailSink>>, EspError> {
    Ok(match sink {
        "sendgrid" => Some(Arc::new(SendGridSink::from_config(&config.sendgrid)?)),
        "ses" => Some(Arc::new(SesSink::from_config(&config.ses)?)),
        "mailgun" => Some(Arc::new(MailgunSink::from_config(&config.mailgun)?)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use cpo_shared::config::Settings;

    use super::*;
    use crate::DeliveryConfig;

    #[test]
    fn the_section_parses_and_names_unknown_keys() {
        let settings = Settings::from_yaml(
            "delivery:\n  esp:\n    sendgrid:\n      max_batch: 10\n    ses:\n      region: eu-west-1\n    mailgun:\n      domain: mg.example.com\n",
        )
        .unwrap();
        let config = settings.section::<DeliveryConfig>("delivery").unwrap().esp;
        assert_eq!(config.sendgrid.max_batch, 10);
        assert_eq!(config.ses.region.as_deref(), Some("eu-west-1"));
        assert_eq!(config.mailgun.domain, "mg.example.com");
        let bad =
            Settings::from_yaml("delivery:\n  esp:\n    sendgrid:\n      api_key: SG.x\n").unwrap();
        let err = bad
            .section::<DeliveryConfig>("delivery")
            .unwrap_err()
            .to_string();
        assert!(err.contains("delivery.esp.sendgrid.api_key"), "{err}");
    }

    #[test]
    fn non_esp_names_are_left_to_the_caller() {
        assert!(build_sink("smtp", &EspConfig::default()).unwrap().is_none());
    }
}
