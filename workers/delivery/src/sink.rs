//! The contract between the delivery stage and a mail provider: a composed
//! `OutgoingEmail` goes in, one `SendOutcome` per email comes out. Every sink
//! (`outbox`, `smtp`, `sendgrid`, `ses`, `mailgun`) implements `MailSink`;
//! the stage owns claiming, the rate limit, retries and the send records, so
//! a sink only speaks its provider's protocol and sorts its answers.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox as LettreMailbox, MultiPart};

/// A display name and an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub name: Option<String>,
    pub address: String,
}

impl Mailbox {
    fn to_lettre(&self, role: &str) -> Result<LettreMailbox, String> {
        let address = self
            .address
            .parse()
            .map_err(|e| format!("{role} address is invalid: {e}"))?;
        Ok(LettreMailbox::new(self.name.clone(), address))
    }
}

/// One email, composed and ready for any provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    /// Our message id (`msg-...`): the key of the send record; providers that
    /// take custom arguments carry it so their events map back to us.
    pub message_id: String,
    pub campaign_id: String,
    pub customer_id: String,
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
    pub to: Mailbox,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// RFC 5322 Message-ID without the angle brackets (`msg-...@sending-domain`),
    /// stable across resends so receiving systems can collapse a duplicate.
    pub rfc_message_id: String,
    /// Further headers, in order (`List-Unsubscribe`, `List-Unsubscribe-Post`, ...).
    pub headers: Vec<(String, String)>,
}

impl OutgoingEmail {
    /// The message as RFC 5322 bytes: multipart/alternative with text/plain
    /// and text/html, headers RFC 2047-encoded where needed. For SMTP and
    /// provider APIs that take raw MIME (SES v2 `Content.Raw`).
    pub fn to_mime(&self, date: SystemTime) -> Result<Vec<u8>, String> {
        Ok(self.to_message(date)?.formatted())
    }

    /// The message before serialization (what DKIM signs: `crate::dkim`).
    pub fn to_message(&self, date: SystemTime) -> Result<lettre::Message, String> {
        let mut builder = lettre::Message::builder()
            .from(self.from.to_lettre("From")?)
            .to(self.to.to_lettre("To")?)
            .subject(self.subject.clone())
            .date(date)
            .message_id(Some(format!("<{}>", self.rfc_message_id)));
        if let Some(reply_to) = &self.reply_to {
            builder = builder.reply_to(reply_to.to_lettre("Reply-To")?);
        }
        for (name, value) in &self.headers {
            let name = HeaderName::new_from_ascii(name.clone())
                .map_err(|e| format!("header name `{name}`: {e}"))?;
            builder = builder.raw_header(HeaderValue::new(name, value.clone()));
        }
        let message = builder
            .multipart(MultiPart::alternative_plain_html(
                self.text.clone(),
                self.html.clone(),
            ))
            .map_err(|e| format!("build message: {e}"))?;
        Ok(message)
    }
}

/// What a provider said about one email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Accepted; the provider's id for it (SMTP: our Message-ID).
    Sent { provider_message_id: String },
    /// Not now (SMTP 421/450/451/452/454, HTTP 429 or 5xx, a dropped
    /// connection): wait `after` (Retry-After when the provider gave one) and
    /// try again. Never skipped and never counted as failed.
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// Refused for good (SMTP 5xx, HTTP 4xx other than 429): recorded as
    /// failed with the provider's reply, not retried.
    Failed { reason: String },
}

/// What the campaign record keeps of a message beside its email: the
/// assignment (the outbox line carries it for `cpo analyze`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageMeta<'a> {
    pub segment: &'a str,
    pub arm: &'a str,
    pub variant_id: &'a str,
    /// The citations of the approved content (the customer's copy may have none).
    pub citations: &'a [String],
    pub fallback: Option<&'a str>,
}

/// A mail provider. `send` answers one outcome per email, in order; an error
/// that concerns the whole call (connection refused, a timeout) is a `Retry`
/// for every email of it.
#[async_trait]
pub trait MailSink: Send + Sync {
    /// `outbox`, `smtp`, `sendgrid`, `ses` or `mailgun` (the metrics' `sink` label).
    fn name(&self) -> &'static str;
    /// Most emails one `send` call takes (SendGrid: 1000 personalizations).
    fn max_batch(&self) -> usize;
    async fn send(&self, emails: &[OutgoingEmail]) -> Vec<SendOutcome>;
    /// `send` with each email's assignment (`meta[i]` belongs to `emails[i]`).
    /// The stage calls this one; providers ignore the assignment (the
    /// default), the file outbox writes it into its lines.
    async fn send_with_meta(
        &self,
        emails: &[OutgoingEmail],
        meta: &[MessageMeta<'_>],
    ) -> Vec<SendOutcome> {
        let _ = meta;
        self.send(emails).await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn email() -> OutgoingEmail {
        OutgoingEmail {
            message_id: "msg-1".into(),
            campaign_id: "camp-1".into(),
            customer_id: "C1".into(),
            from: Mailbox {
                name: Some("Brand Café".into()),
                address: "news@brand.example".into(),
            },
            reply_to: None,
            to: Mailbox {
                name: None,
                address: "ada@example.com".into(),
            },
            subject: "Ada, ton café d'automne".into(),
            text: "Hello".into(),
            html: "<p>Hello</p>".into(),
            rfc_message_id: "msg-1@brand.example".into(),
            headers: vec![(
                "List-Unsubscribe-Post".into(),
                "List-Unsubscribe=One-Click".into(),
            )],
        }
    }

    #[test]
    fn mime_has_both_parts_the_headers_and_encoded_words() {
        let mime = String::from_utf8(email().to_mime(SystemTime::UNIX_EPOCH).unwrap()).unwrap();
        assert!(mime.contains("Message-ID: <msg-1@brand.example>"), "{mime}");
        assert!(mime.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
        assert!(mime.contains("multipart/alternative"));
        assert!(mime.contains("text/plain") && mime.contains("text/html"));
        // Non-ASCII subject and display name are RFC 2047 encoded words.
        assert!(mime.contains("Subject: Ada, ton =?utf-8?b?"), "{mime}");
        assert!(!mime.contains("Café"));
    }

    #[test]
    fn a_bad_address_is_named() {
        let mut bad = email();
        bad.from.address = "not an address".into();
        let err = bad.to_mime(SystemTime::UNIX_EPOCH).unwrap_err();
        assert!(err.contains("From"), "{err}");
    }
}
