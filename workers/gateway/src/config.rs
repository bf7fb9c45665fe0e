//! The `gateway` config section. Every source is off until its own subsection
//! is given; a disabled source answers 404.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", if key.is_empty() { "section `gateway`".to_string() } else { format!("key `gateway.{key}`") })]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

fn bad(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        message: message.into(),
    }
}

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Address the HTTP server binds to (the deployments set `0.0.0.0`).
    pub bind: String,
    pub port: u16,
    /// Larger request bodies are refused with 413 before they are read whole.
    pub max_body_bytes: usize,
    /// How long a published event id is remembered (Redis) to drop ESP retries.
    pub dedupe_ttl_s: u64,
    /// How long a claim on an event id being published lives: a gateway killed
    /// mid-publish frees its events for the ESP's retry after this.
    pub pending_ttl_s: u64,
    pub sendgrid: Option<SendgridConfig>,
    pub ses: Option<SesConfig>,
    pub mailgun: Option<MailgunConfig>,
    /// `POST /webhooks/cpo`: our own event format, bearer token.
    pub cpo: Option<TokenConfig>,
    /// `POST /v1/campaigns`, `GET /v1/campaigns/{id}`: the CRM's API, bearer token.
    pub api: Option<TokenConfig>,
    /// `GET/POST /u/{token}`: one-click unsubscribes (needs `security.unsubscribe_key`).
    pub unsubscribe: bool,
    /// The gateway's public `https://` address; delivery builds the unsubscribe
    /// links from it (`src/mail.rs`). The gateway itself only carries it.
    pub public_url: Option<String>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1".into(),
            port: 8080,
            max_body_bytes: 1024 * 1024,
            dedupe_ttl_s: 7 * 24 * 3600,
            pending_ttl_s: 30,
            sendgrid: None,
            ses: None,
            mailgun: None,
            cpo: None,
            api: None,
            unsubscribe: false,
            public_url: None,
        }
    }
}

// By hand: the secrets below must never reach a log.
impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("bind", &self.bind)
            .field("port", &self.port)
            .field("sendgrid", &self.sendgrid.is_some())
            .field("ses", &self.ses.is_some())
            .field("mailgun", &self.mailgun.is_some())
            .field("cpo", &self.cpo.is_some())
            .field("api", &self.api.is_some())
            .field("unsubscribe", &self.unsubscribe)
            .finish()
    }
}

/// SendGrid's Signed Event Webhook.
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SendgridConfig {
    /// The verification key SendGrid shows: base64 of the DER public key (P-256).
    pub public_key: Option<String>,
    pub public_key_file: Option<PathBuf>,
    /// Older signed timestamps are refused (replays of captured requests; default, 0: 300).
    pub max_age_s: u64,
}

/// Amazon SES events through SNS HTTP(S) subscriptions.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SesConfig {
    /// AWS regions whose SNS endpoints are trusted: `sns.<region>.amazonaws.com`
    /// is the only host a SigningCertURL or SubscribeURL may name. A list, or
    /// one comma-separated string (`CPO__GATEWAY__SES__REGIONS=us-east-1,eu-west-1`).
    #[serde(deserialize_with = "names")]
    pub regions: Vec<String>,
    /// Certificates by SigningCertURL, read from files instead of fetched
    /// (tests, or hosts without egress). The URL must still be allow-listed.
    pub certificates: BTreeMap<String, PathBuf>,
    /// Notifications whose Timestamp is older are refused.
    pub max_age_s: u64,
    /// Bound on fetching a certificate or confirming a subscription.
    pub fetch_timeout_ms: u64,
}

impl Default for SesConfig {
    fn default() -> Self {
        Self {
            regions: Vec::new(),
            certificates: BTreeMap::new(),
            // SNS's default HTTP retry policy gives up well within an hour.
            max_age_s: 3600,
            fetch_timeout_ms: 5_000,
        }
    }
}

/// Mailgun webhooks.
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailgunConfig {
    /// The HTTP webhook signing key.
    pub signing_key: Option<String>,
    pub signing_key_file: Option<PathBuf>,
    /// Older signature timestamps are refused (default, 0: 300).
    pub max_age_s: u64,
    /// How long a seen token is remembered (Redis) to refuse its replay
    /// (default, 0: a day, well past `max_age_s`).
    pub replay_ttl_s: u64,
}

/// A bearer token, inline or from a file.
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenConfig {
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
}

/// A list, or one comma-separated string (environment variables carry no lists).
fn names<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Names {
        List(Vec<String>),
        Joined(String),
    }
    Ok(match Names::deserialize(deserializer)? {
        Names::List(list) => list,
        Names::Joined(joined) => joined
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

/// A secret from its value or its file; `name` is the key for messages.
pub fn secret(
    value: &Option<String>,
    file: &Option<PathBuf>,
    name: &str,
) -> Result<Vec<u8>, ConfigError> {
    let text = match (value, file) {
        (_, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| bad(&format!("{name}_file"), format!("{}: {e}", path.display())))?,
        (Some(value), None) => value.clone(),
        (None, None) => return Err(bad(name, format!("required (or `{name}_file`)"))),
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(bad(name, "is empty"));
    }
    Ok(trimmed.as_bytes().to_vec())
}

impl GatewayConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_body_bytes == 0 {
            return Err(bad("max_body_bytes", "must be greater than 0"));
        }
        if self.dedupe_ttl_s == 0 || self.pending_ttl_s == 0 {
            return Err(bad("dedupe_ttl_s", "TTLs must be greater than 0"));
        }
        if let Some(ses) = &self.ses {
            if ses.regions.is_empty() {
                return Err(bad("ses.regions", "name at least one AWS region"));
            }
            for region in &ses.regions {
                let ok = !region.is_empty()
                    && region
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if !ok {
                    return Err(bad("ses.regions", format!("`{region}` is not a region")));
                }
            }
        }
        if self.sources().is_empty() {
            return Err(bad(
                "",
                "nothing enabled: configure at least one of sendgrid, ses, mailgun, cpo, api, unsubscribe",
            ));
        }
        Ok(())
    }

    /// The enabled sources, for the startup log.
    pub fn sources(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (on, name) in [
            (self.sendgrid.is_some(), "sendgrid"),
            (self.ses.is_some(), "ses"),
            (self.mailgun.is_some(), "mailgun"),
            (self.cpo.is_some(), "cpo"),
            (self.api.is_some(), "api"),
            (self.unsubscribe, "unsubscribe"),
        ] {
            if on {
                out.push(name);
            }
        }
        out
    }
}

impl SendgridConfig {
    pub fn max_age(&self) -> u64 {
        if self.max_age_s == 0 {
            300
        } else {
            self.max_age_s
        }
    }
}

impl MailgunConfig {
    pub fn max_age(&self) -> u64 {
        if self.max_age_s == 0 {
            300
        } else {
            self.max_age_s
        }
    }

    pub fn replay_ttl(&self) -> u64 {
        if self.replay_ttl_s == 0 {
            86_400
        } else {
            self.replay_ttl_s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<GatewayConfig, String> {
        let settings = cpo_shared::config::Settings::from_yaml(yaml).map_err(|e| e.to_string())?;
        settings
            .section::<GatewayConfig>("gateway")
            .map_err(|e| e.to_string())
    }

    #[test]
    fn sources_are_off_until_configured_and_unknown_keys_are_refused() {
        let config = parse("gateway:\n  port: 8081\n").unwrap();
        assert!(config.sources().is_empty());
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("nothing enabled")
        );
        let typo = parse("gateway:\n  sendgrid:\n    public_kee: abc\n").unwrap_err();
        assert!(typo.contains("public_kee"), "{typo}");
    }

    #[test]
    fn regions_come_as_a_list_or_a_joined_string_and_are_checked() {
        let list = parse("gateway:\n  ses:\n    regions: [us-east-1, eu-west-1]\n").unwrap();
        let joined = parse("gateway:\n  ses:\n    regions: \"us-east-1, eu-west-1\"\n").unwrap();
        assert_eq!(
            list.ses.as_ref().unwrap().regions,
            joined.ses.as_ref().unwrap().regions
        );
        assert!(list.validate().is_ok());
        let bad = parse("gateway:\n  ses:\n    regions: [\"evil.example/x\"]\n").unwrap();
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("gateway.ses.regions")
        );
        let none = parse("gateway:\n  ses: {}\n").unwrap();
        assert!(none.validate().is_err());
    }

    #[test]
    fn a_missing_secret_names_its_key() {
        let error = secret(&None, &None, "mailgun.signing_key").unwrap_err();
        assert_eq!(
            error.to_string(),
            "key `gateway.mailgun.signing_key`: required (or `mailgun.signing_key_file`)"
        );
    }
}
