//! Turns one rendered message into an `OutgoingEmail`: From, Reply-To, To,
//! Subject, a Message-ID on the sending domain, the unsubscribe headers
//! (RFC 8058), the text part and the HTML part from the minijinja layout in
//! `data/templates/` (brand header, paragraphs, a call-to-action button, a
//! footer with the postal address and the unsubscribe link).
//!
//! Citation markers `[doc-id]` never reach the customer (`body.rs`); the
//! caller keeps `citations` for the send record and the audit. The Date
//! header and the DKIM signature are added when the email is serialized
//! (`crate::dkim::mime`), at send time.

mod body;
mod layout;
mod links;

use std::collections::HashMap;
use std::sync::Arc;

use cpo_shared::unsubscribe::UnsubscribeTokens;

use crate::mail_config::{MailConfig, UtmConfig};
use crate::sink::{Mailbox, OutgoingEmail};

pub use links::with_utm;

/// What `compose` needs of one message (all text already rendered, plain).
#[derive(Debug, Clone, Copy)]
pub struct ComposeInput<'a> {
    pub message_id: &'a str,
    pub campaign_id: &'a str,
    pub customer_id: &'a str,
    pub to: &'a str,
    /// Not shown on its own: the rendered subject and body already carry it.
    pub first_name: &'a str,
    pub subject: &'a str,
    /// The rendered body, still with its `[doc-id]` citation markers.
    pub body: &'a str,
    pub citations: &'a [String],
    pub call_to_action_url: Option<&'a str>,
}

/// The links that let a recipient leave: `https://PUBLIC_URL/u/TOKEN` and a mailto.
#[derive(Debug, Clone)]
struct Unsubscribe {
    tokens: UnsubscribeTokens,
    base_url: String,
    mailto: String,
}

/// Builds emails with one sender identity.
#[derive(Debug, Clone)]
pub struct Composer {
    from: Mailbox,
    reply_to: Option<Mailbox>,
    sending_domain: String,
    brand: String,
    postal_address: String,
    cta_label: String,
    unsubscribe: Option<Unsubscribe>,
    doc_urls: Arc<HashMap<String, String>>,
    utm: Option<UtmConfig>,
    layout: Arc<layout::Layout>,
}

fn check_address(address: &str, key: &str) -> Result<(), String> {
    address
        .parse::<lettre::Address>()
        .map(|_| ())
        .map_err(|e| format!("{key}: `{address}` is not a valid address: {e}"))
}

impl Composer {
    /// A composer with only a sender: no footer address, no unsubscribe
    /// headers (see `from_config` for what production mail needs).
    pub fn new(from: Mailbox) -> Result<Self, String> {
        let sending_domain = from
            .address
            .rsplit_once('@')
            .map(|(_, domain)| domain.to_string())
            .filter(|d| !d.is_empty())
            .ok_or_else(|| format!("from address `{}` has no domain", from.address))?;
        let brand = from.name.clone().unwrap_or_else(|| sending_domain.clone());
        Ok(Self {
            from,
            reply_to: None,
            sending_domain,
            brand,
            postal_address: String::new(),
            cta_label: "Learn more".into(),
            unsubscribe: None,
            doc_urls: Arc::new(HashMap::new()),
            utm: None,
            layout: Arc::new(layout::Layout::embedded()?),
        })
    }

    /// Everything from `delivery.mail` and `delivery.utm`, the gateway's
    /// public URL (`gateway.public_url`) and the unsubscribe key; every
    /// problem names its key. `doc_urls`: corpus document id -> URL.
    pub fn from_config(
        mail: &MailConfig,
        utm: Option<&UtmConfig>,
        public_url: Option<&str>,
        tokens: UnsubscribeTokens,
        doc_urls: HashMap<String, String>,
    ) -> Result<Self, String> {
        if mail.from_address.trim().is_empty() {
            return Err("delivery.mail.from_address is not set".into());
        }
        check_address(&mail.from_address, "delivery.mail.from_address")?;
        if mail.postal_address.trim().is_empty() {
            return Err(
                "delivery.mail.postal_address is not set (every email must carry \
                        the sender's postal address)"
                    .into(),
            );
        }
        if let Some(reply_to) = &mail.reply_to {
            check_address(reply_to, "delivery.mail.reply_to")?;
        }
        let public_url = public_url
            .filter(|u| !u.trim().is_empty())
            .ok_or("gateway.public_url is not set (the unsubscribe links point to the gateway)")?
            .trim()
            .trim_end_matches('/');
        check_public_url(public_url)?;
        if utm.is_some_and(|u| u.source.trim().is_empty()) {
            return Err("delivery.utm.source is empty".into());
        }
        let mut composer = Self::new(Mailbox {
            name: mail.from_name.clone().filter(|n| !n.trim().is_empty()),
            address: mail.from_address.clone(),
        })?;
        let mailto = match &mail.unsubscribe_mailto {
            Some(address) => {
                check_address(address, "delivery.mail.unsubscribe_mailto")?;
                address.clone()
            }
            None => format!("unsubscribe@{}", composer.sending_domain),
        };
        composer.reply_to = mail.reply_to.clone().map(|address| Mailbox {
            name: None,
            address,
        });
        composer.postal_address = mail.postal_address.trim().to_string();
        if let Some(label) = mail.cta_label.as_ref().filter(|l| !l.trim().is_empty()) {
            composer.cta_label = label.clone();
        }
        composer.unsubscribe = Some(Unsubscribe {
            tokens,
            base_url: public_url.to_string(),
            mailto,
        });
        composer.doc_urls = Arc::new(doc_urls);
        composer.utm = utm.cloned();
        Ok(composer)
    }

    /// The domain of the From address (the right side of every Message-ID).
    pub fn sending_domain(&self) -> &str {
        &self.sending_domain
    }

    pub fn compose(&self, input: &ComposeInput<'_>) -> Result<OutgoingEmail, String> {
        let with_utm = |url: &str| with_utm(url, self.utm.as_ref(), input.campaign_id);
        let doc_urls: HashMap<String, String> = input
            .citations
            .iter()
            .filter_map(|id| self.doc_urls.get(id).map(|url| (id.clone(), with_utm(url))))
            .collect();
        let cta_href = input.call_to_action_url.map(with_utm);
        let body = body::parse(
            input.body,
            &body::Links {
                citations: input.citations,
                doc_urls: &doc_urls,
                call_to_action: input.call_to_action_url.zip(cta_href.as_deref()),
            },
        );
        let flat = body::to_text(&body);
        let mut headers = Vec::new();
        let unsubscribe_url = self.unsubscribe.as_ref().map(|u| {
            let token = u.tokens.token(input.campaign_id, input.customer_id);
            let url = format!("{}/u/{token}", u.base_url);
            headers.push((
                "List-Unsubscribe".to_string(),
                format!(
                    "<{url}>, <mailto:{}?subject=unsubscribe%20{token}>",
                    u.mailto
                ),
            ));
            headers.push((
                "List-Unsubscribe-Post".to_string(),
                "List-Unsubscribe=One-Click".to_string(),
            ));
            url
        });
        let view = layout::View {
            subject: input.subject,
            brand: &self.brand,
            paragraphs: &body.paragraphs,
            text: &flat,
            notes: &body.notes,
            cta: cta_href.as_deref().map(|href| layout::Cta {
                href,
                label: &self.cta_label,
            }),
            postal_address: &self.postal_address,
            unsubscribe_url: unsubscribe_url.as_deref(),
        };
        let (text, html) = self.layout.render(&view)?;
        Ok(OutgoingEmail {
            message_id: input.message_id.to_string(),
            campaign_id: input.campaign_id.to_string(),
            customer_id: input.customer_id.to_string(),
            from: self.from.clone(),
            reply_to: self.reply_to.clone(),
            to: Mailbox {
                name: None,
                address: input.to.to_string(),
            },
            subject: input.subject.to_string(),
            text,
            html,
            rfc_message_id: format!("{}@{}", input.message_id, self.sending_domain),
            headers,
        })
    }
}

/// The gateway's URL: https, or http to a loopback host (tests, a local gateway).
fn check_public_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("gateway.public_url: `{url}`: {e}"))?;
    let loopback = matches!(
        parsed.host(),
        Some(url::Host::Domain("localhost"))
            | Some(url::Host::Ipv4(std::net::Ipv4Addr::LOCALHOST))
            | Some(url::Host::Ipv6(std::net::Ipv6Addr::LOCALHOST))
    );
    let ok = match parsed.scheme() {
        "https" => true,
        "http" => loopback,
        _ => false,
    };
    if !ok || parsed.host().is_none() || !parsed.username().is_empty() || parsed.query().is_some() {
        return Err(format!(
            "gateway.public_url: `{url}` must be https://host[/path] (http only to localhost)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
