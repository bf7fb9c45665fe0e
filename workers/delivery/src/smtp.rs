//! `delivery.sink: smtp`: a `MailSink` over lettre's pooled async SMTP
//! transport (tokio, rustls with ring, Mozilla roots).
//!
//! Transport security follows the URL: `smtps://` is TLS from the first
//! byte; `smtp://` requires STARTTLS, except to a loopback host (a local
//! relay or test server) or with `allow_plaintext: true`, which speak plain
//! text. Each email has one recipient and gets its own outcome: 2xx `Sent`
//! (the provider id is our Message-ID), 4xx `Retry`, 5xx `Failed` with the
//! server's reply, a connection or TLS error `Retry`.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::{
    AsyncSmtpTransport, AsyncSmtpTransportBuilder, Error as SmtpError, PoolConfig,
};
use lettre::{AsyncTransport, Tokio1Executor};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::dkim::{self, DkimSigner};
use crate::mail_config::SmtpConfig;
use crate::sink::{MailSink, OutgoingEmail, SendOutcome};

/// How the connection is secured, decided from the URL and the opt-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    ImplicitTls,
    StartTls,
    Plain,
}

/// The parts of `delivery.smtp.url` that matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub security: Security,
}

impl Endpoint {
    pub fn parse(raw: &str, allow_plaintext: bool) -> Result<Self, String> {
        let key = "delivery.smtp.url";
        let url = url::Url::parse(raw.trim()).map_err(|e| format!("{key}: {e}"))?;
        let (default_port, tls) = match url.scheme() {
            "smtps" => (465, Security::ImplicitTls),
            "smtp" => (587, Security::StartTls),
            other => {
                return Err(format!(
                    "{key}: scheme `{other}` is not smtp:// (STARTTLS) or smtps:// (TLS)"
                ));
            }
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "{key}: credentials do not belong in the URL; set delivery.smtp.username \
                 and CPO__DELIVERY__SMTP__PASSWORD or delivery.smtp.password_file"
            ));
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(format!("{key}: only smtp[s]://host[:port] is understood"));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(format!("{key}: no host")),
        };
        let loopback = host == "localhost"
            || host
                .parse::<IpAddr>()
                .is_ok_and(|ip: IpAddr| ip.is_loopback());
        let security = match tls {
            Security::StartTls if loopback || allow_plaintext => Security::Plain,
            other => other,
        };
        Ok(Self {
            host,
            port: url.port().unwrap_or(default_port),
            security,
        })
    }
}

pub struct SmtpSink {
    builder: AsyncSmtpTransportBuilder,
    // Built on the first send: lettre's pool starts a task on the tokio
    // runtime, and the sink may be configured before one runs.
    transport: OnceLock<Arc<AsyncSmtpTransport<Tokio1Executor>>>,
    dkim: Option<DkimSigner>,
    in_flight: usize,
}

impl std::fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSink")
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

impl SmtpSink {
    /// Checks every setting (naming the key) without connecting; works
    /// outside a tokio runtime (the pool starts on the first send).
    pub fn from_config(
        config: &SmtpConfig,
        sending_domain: &str,
        dkim: Option<DkimSigner>,
    ) -> Result<Self, String> {
        let raw = config
            .url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .ok_or("delivery.smtp.url is not set (smtp://host:port or smtps://host:port)")?;
        let endpoint = Endpoint::parse(raw, config.allow_plaintext)?;
        if config.pool_size == 0 {
            return Err("delivery.smtp.pool_size must be at least 1".into());
        }
        let extra_ca = match &config.tls_ca_file {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    format!(
                        "delivery.smtp.tls_ca_file: cannot read {}: {e}",
                        path.display()
                    )
                })?;
                Some(Certificate::from_pem(&pem).map_err(|e| {
                    format!(
                        "delivery.smtp.tls_ca_file: {} is not a PEM certificate: {e}",
                        path.display()
                    )
                })?)
            }
            None => None,
        };
        let tls_parameters = || {
            let mut builder = TlsParameters::builder(endpoint.host.clone());
            if let Some(ca) = extra_ca.clone() {
                builder = builder.add_root_certificate(ca);
            }
            builder
                .build_rustls()
                .map_err(|e| format!("delivery.smtp.url: tls setup for {}: {e}", endpoint.host))
        };
        let tls = match endpoint.security {
            Security::ImplicitTls => Tls::Wrapper(tls_parameters()?),
            Security::StartTls => Tls::Required(tls_parameters()?),
            Security::Plain => Tls::None,
        };
        let hello = config
            .hello_name
            .clone()
            .unwrap_or_else(|| sending_domain.to_string());
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(endpoint.host.clone())
                .port(endpoint.port)
                .tls(tls)
                .hello_name(ClientId::Domain(hello))
                .timeout(Some(Duration::from_millis(config.timeout_ms.max(1))))
                .pool_config(PoolConfig::new().max_size(config.pool_size));
        if let Some((user, password)) = config.credentials()? {
            builder = builder.credentials(Credentials::new(user, password));
        }
        Ok(Self {
            builder,
            transport: OnceLock::new(),
            dkim,
            in_flight: config.pool_size as usize,
        })
    }

    async fn send_one(
        transport: &AsyncSmtpTransport<Tokio1Executor>,
        dkim: Option<&DkimSigner>,
        email: &OutgoingEmail,
    ) -> SendOutcome {
        let prepared = envelope(email).and_then(|envelope| {
            dkim::mime(email, SystemTime::now(), dkim).map(|bytes| (envelope, bytes))
        });
        let (envelope, bytes) = match prepared {
            Ok(prepared) => prepared,
            Err(reason) => return SendOutcome::Failed { reason },
        };
        match transport.send_raw(&envelope, &bytes).await {
            Ok(_) => SendOutcome::Sent {
                provider_message_id: email.rfc_message_id.clone(),
            },
            Err(error) => classify(&error, &email.to.address),
        }
    }
}

fn envelope(email: &OutgoingEmail) -> Result<Envelope, String> {
    let from = email
        .from
        .address
        .parse()
        .map_err(|e| format!("From address is invalid: {e}"))?;
    let to = email
        .to
        .address
        .parse()
        .map_err(|e| format!("recipient address is invalid: {e}"))?;
    Envelope::new(Some(from), vec![to]).map_err(|e| format!("envelope: {e}"))
}

/// Sorts an SMTP error into an outcome. Reasons never carry the recipient's
/// address (servers often quote it).
pub fn classify(error: &SmtpError, recipient: &str) -> SendOutcome {
    let reason = error.to_string().replace(recipient, "<recipient>");
    let code = error
        .status()
        .and_then(|c| c.to_string().parse::<u16>().ok());
    match code {
        Some(400..=499) => SendOutcome::Retry {
            after: None,
            reason,
        },
        Some(500..=599) => SendOutcome::Failed { reason },
        // lettre's own refusal of a non-ASCII address (the server has no
        // SMTPUTF8): trying again cannot help this one.
        _ if error.is_client() && !recipient.is_ascii() => SendOutcome::Failed { reason },
        // Connection, TLS (a server that stopped offering STARTTLS is a
        // client error too: every email would meet it, so they all wait),
        // timeout, a dropped pool: the message waits.
        _ => SendOutcome::Retry {
            after: None,
            reason,
        },
    }
}

#[async_trait]
impl MailSink for SmtpSink {
    fn name(&self) -> &'static str {
        "smtp"
    }

    fn max_batch(&self) -> usize {
        100
    }

    async fn send(&self, emails: &[OutgoingEmail]) -> Vec<SendOutcome> {
        let permits = Arc::new(Semaphore::new(self.in_flight));
        let mut tasks = JoinSet::new();
        let transport = self
            .transport
            .get_or_init(|| Arc::new(self.builder.clone().build()));
        for (index, email) in emails.iter().enumerate() {
            let transport = Arc::clone(transport);
            let dkim = self.dkim.clone();
            let email = email.clone();
            let permits = Arc::clone(&permits);
            tasks.spawn(async move {
                // The semaphore is never closed, so acquiring cannot fail.
                let _permit = permits.acquire_owned().await.ok();
                (
                    index,
                    Self::send_one(&transport, dkim.as_ref(), &email).await,
                )
            });
        }
        let mut outcomes: Vec<Option<SendOutcome>> = vec![None; emails.len()];
        while let Some(joined) = tasks.join_next().await {
            if let Ok((index, outcome)) = joined {
                outcomes[index] = Some(outcome);
            }
        }
        // A task that panicked has sent nothing we know of: it waits and is tried again.
        outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or(SendOutcome::Retry {
                    after: None,
                    reason: "smtp send task failed".into(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_decides_the_security() {
        let parse = |url: &str, plain: bool| Endpoint::parse(url, plain);
        let e = parse("smtp://mail.example.com", false).unwrap();
        assert_eq!((e.port, e.security), (587, Security::StartTls));
        let e = parse("smtps://mail.example.com", false).unwrap();
        assert_eq!((e.port, e.security), (465, Security::ImplicitTls));
        let e = parse("smtp://127.0.0.1:2525", false).unwrap();
        assert_eq!((e.port, e.security), (2525, Security::Plain));
        assert_eq!(
            parse("smtp://[::1]:25", false).unwrap().security,
            Security::Plain
        );
        assert_eq!(
            parse("smtp://relay.internal:25", true).unwrap().security,
            Security::Plain
        );
        // Opting into plain text never downgrades implicit TLS.
        assert_eq!(
            parse("smtps://relay.internal", true).unwrap().security,
            Security::ImplicitTls
        );
        for bad in [
            "http://mail.example.com",
            "smtp://user:pw@mail.example.com",
            "smtp://mail.example.com/path",
            "smtp://",
            "not a url",
        ] {
            let err = parse(bad, false).unwrap_err();
            assert!(err.contains("delivery.smtp.url"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_sink_is_configured_outside_a_runtime() {
        let config = SmtpConfig {
            url: Some("smtps://mail.example.com".into()),
            ..SmtpConfig::default()
        };
        let sink = SmtpSink::from_config(&config, "brand.example", None).unwrap();
        assert_eq!(sink.name(), "smtp");
        let config = SmtpConfig {
            tls_ca_file: Some("/nonexistent/ca.pem".into()),
            ..config
        };
        let err = SmtpSink::from_config(&config, "brand.example", None).unwrap_err();
        assert!(err.contains("delivery.smtp.tls_ca_file"), "{err}");
    }

    #[test]
    fn bad_settings_stop_the_sink_at_start() {
        let config = SmtpConfig::default();
        let err = SmtpSink::from_config(&config, "brand.example", None).unwrap_err();
        assert!(err.contains("delivery.smtp.url"), "{err}");
        let config = SmtpConfig {
            url: Some("smtp://127.0.0.1:2525".into()),
            username: Some("mailer".into()),
            ..SmtpConfig::default()
        };
        let err = SmtpSink::from_config(&config, "brand.example", None).unwrap_err();
        assert!(err.contains("password"), "{err}");
    }
}
