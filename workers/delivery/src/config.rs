//! Config section `delivery`.

use cpo_shared::rate_limit::RateConfig;
use serde::Deserialize;

/// `delivery.sink`: where messages go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// The JSONL file outbox (the default, and what `cpo run` writes).
    #[default]
    Outbox,
    Smtp,
    Sendgrid,
    Ses,
    Mailgun,
}

impl SinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Outbox => "outbox",
            SinkKind::Smtp => "smtp",
            SinkKind::Sendgrid => "sendgrid",
            SinkKind::Ses => "ses",
            SinkKind::Mailgun => "mailgun",
        }
    }
}

/// `delivery.on_unconfirmed`: a send claimed by a worker that stopped before
/// it recorded the provider's answer (its lease ran out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnUnconfirmed {
    /// Send it again (the customer may get it twice; over SMTP the stable
    /// Message-ID lets receiving systems collapse the copy). The default:
    /// nobody goes without their message.
    #[default]
    Resend,
    /// Record it as failed (`unconfirmed: ... skipped`) and do not send.
    Skip,
}

/// `delivery.retry`: how a `Retry` answer (SMTP 4xx, HTTP 429/5xx) waits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// First wait when the provider gave no Retry-After.
    pub initial_ms: u64,
    /// Longest backoff between tries (a provider's Retry-After is honoured as given).
    pub max_ms: u64,
    /// How long one batch may wait in the worker (throttled, or retrying);
    /// past it the rest of the batch goes back to the queue, delayed, and the
    /// worker takes other work. Nothing is skipped either way.
    pub hold_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            initial_ms: 500,
            max_ms: 60_000,
            hold_ms: 60_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Merge values (first name, location, tier) are cut to this many characters.
    pub max_merge_value_chars: usize,
    /// Domains links may point to (a listed domain or its subdomains), https
    /// only. Empty (the default): the domain of the campaign's own
    /// `call_to_action_url`. `cpo enqueue` and `cpo run` check the same list.
    pub allowed_link_domains: Vec<String>,
    /// `outbox` (default), `smtp`, `sendgrid`, `ses`, `mailgun`.
    pub sink: SinkKind,
    /// What to do with a send claimed by a worker that died before confirming it.
    pub on_unconfirmed: OnUnconfirmed,
    /// How long a claimed send is held for its worker; past it the claim is
    /// unconfirmed. Longer than a send can take, Retry-After waits included.
    pub lease_seconds: u64,
    /// One limit for every replica (`per_second`, `per_minute`, `per_day`, `per_domain`).
    pub rate: RateConfig,
    pub retry: RetryConfig,
    /// Sender identity, footer, DKIM (`crate::mail_config`).
    pub mail: crate::mail_config::MailConfig,
    /// UTM parameters on body links; none when unset.
    pub utm: Option<crate::mail_config::UtmConfig>,
    /// The SMTP sink (`delivery.sink: smtp`).
    pub smtp: crate::mail_config::SmtpConfig,
    /// The ESP API sinks' settings (`delivery.esp.sendgrid|ses|mailgun`).
    pub esp: crate::esp::EspConfig,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            max_merge_value_chars: 100,
            allowed_link_domains: Vec::new(),
            sink: SinkKind::Outbox,
            on_unconfirmed: OnUnconfirmed::Resend,
            lease_seconds: 600,
            rate: RateConfig::default(),
            retry: RetryConfig::default(),
            mail: Default::default(),
            utm: None,
            smtp: Default::default(),
            esp: Default::default(),
        }
    }
}

impl DeliveryConfig {
    /// Checks what serde cannot, naming the key.
    pub fn validate(&self) -> Result<(), String> {
        self.rate.validate()?;
        if self.lease_seconds == 0 {
            return Err("delivery.lease_seconds: must be at least 1".into());
        }
        if self.lease_ms() <= i64::try_from(self.retry.hold_ms).unwrap_or(i64::MAX) {
            // A claim must outlive the batch's send loop, or a live worker's
            // sends would look unconfirmed to the next one.
            return Err(format!(
                "delivery.lease_seconds: {} s must be longer than delivery.retry.hold_ms ({} ms)",
                self.lease_seconds, self.retry.hold_ms
            ));
        }
        if self.retry.initial_ms == 0 || self.retry.max_ms < self.retry.initial_ms {
            return Err("delivery.retry: initial_ms must be at least 1 and at most max_ms".into());
        }
        Ok(())
    }

    pub fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease_seconds.saturating_mul(1_000)).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use cpo_shared::config::Settings;

    use super::*;

    #[test]
    fn section_overrides_defaults_and_names_bad_keys() {
        let settings = Settings::from_yaml("delivery:\n  lease_seconds: 30\n").unwrap();
        let config: DeliveryConfig = settings.section("delivery").unwrap();
        assert_eq!(config.lease_ms(), 30_000);
        assert_eq!(config.max_merge_value_chars, 100);
        assert_eq!(DeliveryConfig::default().lease_ms(), 600_000);
        let bad = Settings::from_yaml("delivery:\n  max_merge_value_chars: many\n").unwrap();
        let err = bad.section::<DeliveryConfig>("delivery").unwrap_err();
        assert!(err.to_string().contains("max_merge_value_chars"), "{err}");
    }

    #[test]
    fn sink_policy_and_rate_are_read_and_checked() {
        let settings = Settings::from_yaml(
            "delivery:\n  sink: smtp\n  on_unconfirmed: skip\n  rate: {per_second: 200, per_day: 1000}\n",
        )
        .unwrap();
        let config: DeliveryConfig = settings.section("delivery").unwrap();
        assert_eq!(config.sink, SinkKind::Smtp);
        assert_eq!(config.on_unconfirmed, OnUnconfirmed::Skip);
        assert_eq!(config.rate.per_second, Some(200));
        config.validate().unwrap();
        let bad = Settings::from_yaml("delivery:\n  sink: pigeon\n").unwrap();
        let err = bad.section::<DeliveryConfig>("delivery").unwrap_err();
        assert!(err.to_string().contains("sink"), "{err}");
        let zero = Settings::from_yaml("delivery:\n  rate: {per_minute: 0}\n").unwrap();
        let config: DeliveryConfig = zero.section("delivery").unwrap();
        assert!(
            config
                .validate()
                .unwrap_err()
                .contains("delivery.rate.per_minute")
        );
        let short = Settings::from_yaml("delivery:\n  lease_seconds: 30\n").unwrap();
        let config: DeliveryConfig = short.section("delivery").unwrap();
        assert!(
            config
                .validate()
                .unwrap_err()
                .contains("delivery.lease_seconds")
        );
        let typo = Settings::from_yaml("delivery:\n  rate: {per_sec: 5}\n").unwrap();
        let err = typo.section::<DeliveryConfig>("delivery").unwrap_err();
        assert!(err.to_string().contains("per_sec"), "{err}");
    }
}
