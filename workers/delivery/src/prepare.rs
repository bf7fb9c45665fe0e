//! Turn a `SendBatch` into rendered messages and rejected ones (pure: no IO).
//!
//! Verification and parsing happen once per distinct template of the batch,
//! not once per message: a batch of 1000 customers typically carries a
//! handful of templates.

use cpo_shared::envelope::message_id;
use cpo_shared::model::{ApprovedTemplate, OutboundMessage, SendBatch};
use cpo_shared::signing::Signer;

use crate::render::{CompiledText, MergeValues, RenderError, check_cta_url, clean_value};
use crate::verify::verify_template;

/// A message that passed every check, with its rendered subject and body.
#[derive(Debug)]
pub struct Rendered<'a> {
    pub message: &'a OutboundMessage,
    pub subject: String,
    pub body: String,
}

/// A message that must not be sent, and why (no email or name in the reason).
#[derive(Debug)]
pub struct Rejected<'a> {
    pub message: &'a OutboundMessage,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Prepared<'a> {
    pub rendered: Vec<Rendered<'a>>,
    pub rejected: Vec<Rejected<'a>>,
}

struct CompiledTemplate<'a> {
    subject: CompiledText<'a>,
    body: CompiledText<'a>,
}

/// Templates of one batch, each verified and compiled once. Lookup compares
/// the whole template (content and approval), so a tampered copy that keeps
/// the variant id is verified on its own.
#[derive(Default)]
struct TemplateCache<'a> {
    entries: Vec<(&'a ApprovedTemplate, Result<CompiledTemplate<'a>, String>)>,
}

impl<'a> TemplateCache<'a> {
    fn get(
        &mut self,
        signer: &Signer,
        template: &'a ApprovedTemplate,
    ) -> &Result<CompiledTemplate<'a>, String> {
        let found = self
            .entries
            .iter()
            .position(|(known, _)| std::ptr::eq(*known, template) || *known == template);
        let index = match found {
            Some(index) => index,
            None => {
                self.entries.push((template, compile(signer, template)));
                self.entries.len() - 1
            }
        };
        &self.entries[index].1
    }
}

fn compile<'a>(
    signer: &Signer,
    template: &'a ApprovedTemplate,
) -> Result<CompiledTemplate<'a>, String> {
    verify_template(signer, template).map_err(|e| e.to_string())?;
    let invalid =
        |what: &str, e: RenderError| format!("{what} of variant `{}`: {e}", template.variant_id);
    Ok(CompiledTemplate {
        subject: CompiledText::parse_subject(&template.subject)
            .map_err(|e| invalid("subject", e))?,
        body: CompiledText::parse(&template.body).map_err(|e| invalid("body", e))?,
    })
}

/// A recipient address is copied into a header: one `@`, no whitespace, no
/// control characters and nothing that separates addresses.
fn check_address(address: &str) -> bool {
    let mut parts = address.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && address.len() <= 254
        && address.chars().all(|c| {
            !c.is_control() && !c.is_whitespace() && !matches!(c, '<' | '>' | ',' | ';' | '"')
        })
}

/// Check, verify and render every message of `batch`.
pub fn prepare<'a>(batch: &'a SendBatch, signer: &Signer, max_value_chars: usize) -> Prepared<'a> {
    let mut templates = TemplateCache::default();
    let mut last_cta: Option<(&str, Result<&str, RenderError>)> = None;
    let mut out = Prepared {
        rendered: Vec::with_capacity(batch.messages.len()),
        rejected: Vec::new(),
    };
    for message in &batch.messages {
        let cta = match message.call_to_action_url.as_deref() {
            None => Ok(None),
            // Every message of a campaign carries the same URL: check it once.
            Some(url) => match &last_cta {
                Some((known, checked)) if *known == url => checked.clone().map(Some),
                _ => {
                    let checked = check_cta_url(url);
                    last_cta = Some((url, checked.clone()));
                    checked.map(Some)
                }
            },
        };
        let result = check_message(batch, message)
            .and_then(|()| cta.map_err(|e| e.to_string()))
            .and_then(|cta| {
                let compiled = templates
                    .get(signer, &message.template)
                    .as_ref()
                    .map_err(Clone::clone)?;
                let recipient = &message.recipient;
                let values = MergeValues {
                    first_name: clean_value(&recipient.first_name, max_value_chars),
                    location: clean_value(&recipient.location, max_value_chars),
                    tier: clean_value(&recipient.tier, max_value_chars),
                    cta_url: cta,
                };
                let render =
                    |text: &CompiledText<'_>| text.render(&values).map_err(|e| e.to_string());
                Ok((render(&compiled.subject)?, render(&compiled.body)?))
            });
        match result {
            Ok((subject, body)) => out.rendered.push(Rendered {
                message,
                subject,
                body,
            }),
            Err(reason) => out.rejected.push(Rejected { message, reason }),
        }
    }
    out
}

/// The parts of a message the signature does not cover must still agree with
/// each other: the dedupe key is only sound if it is the one derived from
/// (campaign, customer).
fn check_message(batch: &SendBatch, message: &OutboundMessage) -> Result<(), String> {
    if message.campaign_id != batch.campaign_id {
        return Err("message belongs to another campaign than its batch".into());
    }
    if message.assignment.customer_id != message.recipient.customer_id {
        return Err("assignment and recipient name different customers".into());
    }
    if message.assignment.variant_id != message.template.variant_id {
        return Err("assignment names another variant than the template".into());
    }
    if message.message_id != message_id(&message.campaign_id, &message.recipient.customer_id) {
        return Err("message id is not the one derived from (campaign, customer)".into());
    }
    if !check_address(&message.recipient.email) {
        return Err("recipient address is not a single plain email address".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{batch, signer};

    #[test]
    fn renders_valid_messages_and_rejects_tampered_ones_individually() {
        let mut input = batch(4);
        input.messages[1].template.body.push_str(" Now 90% off!");
        input.messages[2].template.approval.signature.clear();
        input.messages[3].recipient.email = "a@example.com, b@example.com".into();
        let prepared = prepare(&input, &signer(), 64);
        assert_eq!(prepared.rendered.len(), 1);
        assert_eq!(prepared.rendered[0].subject, "Ada, spring news");
        assert_eq!(
            prepared.rendered[0].body,
            "Hi Ada from Lyon (gold) [doc-1]. https://example.com/spring"
        );
        let reasons: Vec<&str> = prepared
            .rejected
            .iter()
            .map(|r| r.reason.as_str())
            .collect();
        assert_eq!(reasons.len(), 3);
        assert!(reasons[0].contains("altered"), "{reasons:?}");
        assert!(reasons[1].contains("no signature"), "{reasons:?}");
        assert!(reasons[2].contains("recipient address"), "{reasons:?}");
        assert!(
            reasons.iter().all(|r| !r.contains("example.com")),
            "no address in reasons"
        );
    }

    #[test]
    fn forged_message_ids_and_bad_urls_are_rejected() {
        let mut input = batch(2);
        input.messages[0].message_id = "msg-00000000000000000000000000000000".into();
        input.messages[1].call_to_action_url = Some("javascript:alert(1)".into());
        let prepared = prepare(&input, &signer(), 64);
        assert!(prepared.rendered.is_empty());
        assert!(prepared.rejected[0].reason.contains("message id"));
        assert!(prepared.rejected[1].reason.contains("call_to_action_url"));
    }

    #[test]
    fn addresses_are_checked() {
        assert!(check_address("ada@example.com"));
        for bad in [
            "",
            "ada",
            "ada@example",
            "a@b@c.com",
            "ada @example.com",
            "ada@example.com\r\nBcc: x@y.z",
        ] {
            assert!(!check_address(bad), "{bad:?}");
        }
    }
}
