//! Turns one rendered message into an `OutgoingEmail`: headers, the text part
//! and the HTML part. (A first cut: the mail issue replaces the HTML with the
//! minijinja layout in `data/templates/` and adds the footer, the unsubscribe
//! headers, citations as footnotes, UTM parameters and DKIM; the signature of
//! `Composer::compose` stays.)

use crate::sink::{Mailbox, OutgoingEmail};

/// What `compose` needs of one message (all text already rendered, plain).
#[derive(Debug, Clone, Copy)]
pub struct ComposeInput<'a> {
    pub message_id: &'a str,
    pub campaign_id: &'a str,
    pub customer_id: &'a str,
    pub to: &'a str,
    pub first_name: &'a str,
    pub subject: &'a str,
    /// The rendered body, still with its `[doc-id]` citation markers.
    pub body: &'a str,
    pub citations: &'a [String],
    pub call_to_action_url: Option<&'a str>,
}

/// Builds emails with one sender identity.
#[derive(Debug, Clone)]
pub struct Composer {
    from: Mailbox,
    sending_domain: String,
}

impl Composer {
    pub fn new(from: Mailbox) -> Result<Self, String> {
        let sending_domain = from
            .address
            .rsplit_once('@')
            .map(|(_, domain)| domain.to_string())
            .filter(|d| !d.is_empty())
            .ok_or_else(|| format!("from address `{}` has no domain", from.address))?;
        Ok(Self {
            from,
            sending_domain,
        })
    }

    pub fn compose(&self, input: &ComposeInput<'_>) -> Result<OutgoingEmail, String> {
        let text = input.body.to_string();
        let html = format!("<p>{}</p>", escape_html(input.body));
        Ok(OutgoingEmail {
            message_id: input.message_id.to_string(),
            campaign_id: input.campaign_id.to_string(),
            customer_id: input.customer_id.to_string(),
            from: self.from.clone(),
            reply_to: None,
            to: Mailbox {
                name: None,
                address: input.to.to_string(),
            },
            subject: input.subject.to_string(),
            text,
            html,
            rfc_message_id: format!("{}@{}", input.message_id, self.sending_domain),
            headers: Vec::new(),
        })
    }
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
