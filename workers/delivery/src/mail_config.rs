//! Config of what an email says about its sender (`delivery.mail`), the UTM
//! parameters of its links (`delivery.utm`) and the SMTP sink
//! (`delivery.smtp`). Checked at startup: a bad value stops the worker with
//! the key named, before anything is sent.

use std::path::PathBuf;

use serde::Deserialize;

/// `delivery.mail`: the sender identity and the footer.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    /// `From` address; its domain is the sending domain of the Message-ID.
    pub from_address: String,
    /// `From` display name (the brand).
    pub from_name: Option<String>,
    /// `Reply-To` address, if replies go elsewhere.
    pub reply_to: Option<String>,
    /// The sender's postal address, printed in every footer (CAN-SPAM).
    pub postal_address: String,
    /// Address of the `mailto:` unsubscribe (`List-Unsubscribe`); default
    /// `unsubscribe@<sending domain>`.
    pub unsubscribe_mailto: Option<String>,
    /// Text of the call-to-action button; default `Learn more`.
    pub cta_label: Option<String>,
    /// Optional DKIM signature of every message.
    pub dkim: Option<DkimConfig>,
}

/// `delivery.mail.dkim`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimConfig {
    /// The DNS selector (`<selector>._domainkey.<domain>`).
    pub selector: String,
    /// Signing domain (`d=`); default the sending domain.
    #[serde(default)]
    pub domain: Option<String>,
    /// PEM (PKCS#1) RSA key, or a base64 Ed25519 seed with `algorithm: ed25519`.
    pub private_key_file: PathBuf,
    #[serde(default)]
    pub algorithm: DkimAlgorithm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DkimAlgorithm {
    #[default]
    Rsa,
    Ed25519,
}

/// `delivery.utm`: query parameters added to every link of the body (the
/// call to action and footnotes), never to the unsubscribe link.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UtmConfig {
    /// `utm_source`, e.g. `newsletter`.
    pub source: String,
    /// `utm_medium`; default `email`.
    #[serde(default = "email_medium")]
    pub medium: String,
    /// `utm_campaign`; default the campaign id.
    #[serde(default)]
    pub campaign: Option<String>,
}

fn email_medium() -> String {
    "email".into()
}

/// `delivery.smtp`.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// `smtp://host[:port]` (STARTTLS required, port 587) or `smtps://host[:port]`
    /// (implicit TLS, port 465). No credentials in the URL.
    pub url: Option<String>,
    /// Plain text (no TLS) to a host that is not loopback: only with this.
    pub allow_plaintext: bool,
    /// A PEM CA certificate trusted besides Mozilla's roots (a private relay's CA).
    pub tls_ca_file: Option<PathBuf>,
    /// AUTH user; the password from `password` (`CPO__DELIVERY__SMTP__PASSWORD`)
    /// or `password_file`.
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    /// Connections kept open, and sends in flight at once.
    pub pool_size: u32,
    /// Deadline of one SMTP command.
    pub timeout_ms: u64,
    /// EHLO name; default the sending domain.
    pub hello_name: Option<String>,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            url: None,
            allow_plaintext: false,
            tls_ca_file: None,
            username: None,
            password: None,
            password_file: None,
            pool_size: 4,
            timeout_ms: 30_000,
            hello_name: None,
        }
    }
}

// By hand: the password must never reach a log.
impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("url", &self.url)
            .field("allow_plaintext", &self.allow_plaintext)
            .field("username", &self.username)
            .field("pool_size", &self.pool_size)
            .finish_non_exhaustive()
    }
}

impl SmtpConfig {
    /// The AUTH credentials, if any: a user needs a password and the other way round.
    pub fn credentials(&self) -> Result<Option<(String, String)>, String> {
        let password = match &self.password_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    format!(
                        "delivery.smtp.password_file: cannot read {}: {e}",
                        path.display()
                    )
                })?;
                let text = text.trim_end_matches(['\r', '\n']).to_string();
                if text.is_empty() {
                    return Err(format!(
                        "delivery.smtp.password_file: {} is empty",
                        path.display()
                    ));
                }
                Some(text)
            }
            None => self.password.clone().filter(|p| !p.is_empty()),
        };
        match (self.username.as_deref().filter(|u| !u.is_empty()), password) {
            (None, None) => Ok(None),
            (Some(user), Some(password)) => Ok(Some((user.to_string(), password))),
            (Some(_), None) => Err("delivery.smtp.username is set but no password \
                 (CPO__DELIVERY__SMTP__PASSWORD or delivery.smtp.password_file)"
                .into()),
            (None, Some(_)) => {
                Err("delivery.smtp.password is set but delivery.smtp.username is not".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cpo_shared::config::Settings;

    use super::*;

    type Section = crate::config::DeliveryConfig;

    #[test]
    fn sections_parse_with_defaults_and_name_bad_keys() {
        let yaml = "delivery:\n  mail:\n    from_address: news@brand.example\n    postal_address: 1 Main St\n  utm:\n    source: newsletter\n  smtp:\n    url: smtp://127.0.0.1:2525\n";
        let section: Section = Settings::from_yaml(yaml)
            .unwrap()
            .section("delivery")
            .unwrap();
        assert_eq!(section.mail.from_address, "news@brand.example");
        assert_eq!(section.utm.unwrap().medium, "email");
        assert_eq!(section.smtp.pool_size, 4);
        let bad = "delivery:\n  smtp:\n    pool: 3\n";
        let err = Settings::from_yaml(bad)
            .unwrap()
            .section::<Section>("delivery")
            .unwrap_err();
        assert!(err.to_string().contains("pool"), "{err}");
    }

    #[test]
    fn credentials_come_in_pairs_and_are_not_logged() {
        let mut smtp = SmtpConfig {
            username: Some("mailer".into()),
            ..SmtpConfig::default()
        };
        let err = smtp.credentials().unwrap_err();
        assert!(err.contains("delivery.smtp.username"), "{err}");
        smtp.password = Some("s3cret".into());
        assert_eq!(
            smtp.credentials().unwrap(),
            Some(("mailer".into(), "s3cret".into()))
        );
        assert!(!format!("{smtp:?}").contains("s3cret"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        smtp.password_file = Some(file);
        assert_eq!(smtp.credentials().unwrap().unwrap().1, "from-file");
        smtp.password_file = Some(dir.path().join("missing"));
        assert!(smtp.credentials().unwrap_err().contains("password_file"));
    }
}
