//! Config section `delivery`.

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Merge values (first name, location, tier) are cut to this many characters.
    pub max_merge_value_chars: usize,
    /// How long a sent-marker is kept; 0 keeps it forever. A message replayed
    /// after its marker expired would be sent again.
    pub sent_marker_ttl_days: u64,
    /// Domains links may point to (a listed domain or its subdomains), https
    /// only. Empty (the default): the domain of the campaign's own
    /// `call_to_action_url`. `cpo enqueue` and `cpo run` check the same list.
    pub allowed_link_domains: Vec<String>,
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
            sent_marker_ttl_days: 30,
            allowed_link_domains: Vec::new(),
            mail: Default::default(),
            utm: None,
            smtp: Default::default(),
            esp: Default::default(),
        }
    }
}

impl DeliveryConfig {
    pub fn sent_marker_ttl(&self) -> Option<Duration> {
        (self.sent_marker_ttl_days > 0)
            .then(|| Duration::from_secs(self.sent_marker_ttl_days.saturating_mul(86_400)))
    }
}

#[cfg(test)]
mod tests {
    use cpo_shared::config::Settings;

    use super::*;

    #[test]
    fn section_overrides_defaults_and_names_bad_keys() {
        let settings = Settings::from_yaml("delivery:\n  sent_marker_ttl_days: 0\n").unwrap();
        let config: DeliveryConfig = settings.section("delivery").unwrap();
        assert_eq!(config.sent_marker_ttl(), None);
        assert_eq!(config.max_merge_value_chars, 100);
        assert_eq!(
            DeliveryConfig::default().sent_marker_ttl(),
            Some(Duration::from_secs(30 * 86_400))
        );
        let bad = Settings::from_yaml("delivery:\n  max_merge_value_chars: many\n").unwrap();
        let err = bad.section::<DeliveryConfig>("delivery").unwrap_err();
        assert!(err.to_string().contains("max_merge_value_chars"), "{err}");
    }
}
