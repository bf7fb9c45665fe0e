//! Turn a `SendBatch` into rendered messages and rejected ones (pure: no IO).
//!
//! A batch carries each template once; each is verified and parsed once per
//! batch, and every message is rendered from the template its assignment
//! names.

use std::collections::HashMap;

use cpo_shared::links::{allowed_domains, check_link, links_in};
use cpo_shared::model::{ApprovedTemplate, OutboundMessage, SendBatch};
use cpo_shared::signing::Signer;
use sha2::{Digest, Sha256};

use crate::json_text::JsonText;
use crate::render::{CompiledText, MergeValues, RenderError, clean_value};
use crate::verify::verify_template;

/// A message that passed every check, with its rendered subject and body
/// (JSON-escaped, as the outbox writes them).
#[derive(Debug)]
pub struct Rendered<'a> {
    pub message: &'a OutboundMessage,
    pub template: &'a ApprovedTemplate,
    pub subject: JsonText,
    pub body: JsonText,
}

/// A message that must not be sent, and why (no email or name in the reason).
#[derive(Debug)]
pub struct Rejected<'a> {
    pub message: &'a OutboundMessage,
    /// The template the message names, when the batch carries one, so the
    /// dead letter can be replayed as a one-message batch.
    pub template: Option<&'a ApprovedTemplate>,
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

/// The batch's templates by variant id, each verified and compiled once.
struct Templates<'a> {
    by_id: HashMap<&'a str, (&'a ApprovedTemplate, Result<CompiledTemplate<'a>, String>)>,
}

impl<'a> Templates<'a> {
    fn new(signer: &Signer, templates: &'a [ApprovedTemplate], allowed: &[String]) -> Self {
        let mut by_id = HashMap::with_capacity(templates.len());
        for template in templates {
            let id = template.variant_id.as_str();
            match by_id.get_mut(id) {
                None => {
                    by_id.insert(id, (template, compile(signer, template, allowed)));
                }
                // A repeated copy changes nothing; a different one makes the
                // reference ambiguous, so no message may use either.
                Some((known, compiled)) if *known != template => {
                    *compiled = Err(format!(
                        "the batch carries two different templates for variant `{id}`"
                    ));
                }
                Some(_) => {}
            }
        }
        Self { by_id }
    }

    fn get(
        &self,
        variant_id: &str,
    ) -> Option<&(&'a ApprovedTemplate, Result<CompiledTemplate<'a>, String>)> {
        self.by_id.get(variant_id)
    }
}

fn compile<'a>(
    signer: &Signer,
    template: &'a ApprovedTemplate,
    allowed: &[String],
) -> Result<CompiledTemplate<'a>, String> {
    verify_template(signer, template).map_err(|e| e.to_string())?;
    // Generated copy may carry a link of its own besides `{{cta_url}}`: the same rule.
    for link in links_in(&template.subject)
        .into_iter()
        .chain(links_in(&template.body))
    {
        check_link(link, allowed).map_err(|e| {
            format!(
                "a link in variant `{}` is refused: {e}",
                template.variant_id
            )
        })?;
    }
    let invalid =
        |what: &str, e: RenderError| format!("{what} of variant `{}`: {e}", template.variant_id);
    Ok(CompiledTemplate {
        subject: CompiledText::parse_subject(&template.subject)
            .map_err(|e| invalid("subject", e))?,
        body: CompiledText::parse(&template.body).map_err(|e| invalid("body", e))?,
    })
}

/// Whether `id` is `cpo_shared::envelope::message_id(campaign_id, customer_id)`,
/// checked without building the expected string (a test holds them equal).
fn is_message_id_of(id: &str, campaign_id: &str, customer_id: &str) -> bool {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let Some(hex) = id.strip_prefix("msg-") else {
        return false;
    };
    if hex.len() != 32 {
        return false;
    }
    let mut hasher = Sha256::new();
    for part in ["message", campaign_id, customer_id] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    digest[..16]
        .iter()
        .zip(hex.as_bytes().chunks_exact(2))
        .all(|(byte, pair)| {
            pair[0] == HEX[usize::from(byte >> 4)] && pair[1] == HEX[usize::from(byte & 0x0f)]
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

/// What `prepare` checks messages against, besides the approvals' key.
#[derive(Debug, Clone, Copy)]
pub struct Limits<'c> {
    pub max_value_chars: usize,
    /// `delivery.allowed_link_domains` (empty: the campaign link's own domain).
    pub allowed_link_domains: &'c [String],
}

/// Check, verify and render every message of `batch`.
pub fn prepare<'a>(batch: &'a SendBatch, signer: &Signer, limits: Limits<'_>) -> Prepared<'a> {
    let max_value_chars = limits.max_value_chars;
    let cta_url = batch.call_to_action_url.as_deref();
    let allowed = allowed_domains(limits.allowed_link_domains, cta_url);
    let templates = Templates::new(signer, &batch.templates, &allowed);
    // The campaign's link is checked once, with the rule `cpo enqueue` applied
    // (cpo_shared::links); a bad one stops every message.
    let cta = cta_url
        .map(|url| check_link(url, &allowed))
        .transpose()
        .map_err(|e| format!("call_to_action_url is refused: {e}"));
    let mut out = Prepared {
        rendered: Vec::with_capacity(batch.messages.len()),
        rejected: Vec::new(),
    };
    for message in &batch.messages {
        let variant_id = message.variant_id.as_str();
        let entry = templates.get(variant_id);
        let result = check_message(batch, message)
            .and_then(|()| cta.clone())
            .and_then(|cta| {
                let (template, compiled) = entry.ok_or_else(|| {
                    format!("the batch carries no template for variant `{variant_id}`")
                })?;
                let compiled = compiled.as_ref().map_err(Clone::clone)?;
                let recipient = &message.recipient;
                let values = MergeValues {
                    first_name: clean_value(&recipient.first_name, max_value_chars),
                    location: clean_value(&recipient.location, max_value_chars),
                    tier: clean_value(&recipient.tier, max_value_chars),
                    cta_url: cta,
                };
                let render =
                    |text: &CompiledText<'_>| text.render_json(&values).map_err(|e| e.to_string());
                Ok((
                    *template,
                    render(&compiled.subject)?,
                    render(&compiled.body)?,
                ))
            });
        match result {
            Ok((template, subject, body)) => out.rendered.push(Rendered {
                message,
                template,
                subject,
                body,
            }),
            Err(reason) => out.rejected.push(Rejected {
                message,
                template: entry.map(|(template, _)| *template),
                reason,
            }),
        }
    }
    out
}

/// The parts of a message the signature does not cover must still agree with
/// each other: the dedupe key is only sound if it is the one derived from
/// (campaign, customer).
fn check_message(batch: &SendBatch, message: &OutboundMessage) -> Result<(), String> {
    if !is_message_id_of(
        &message.message_id,
        &batch.campaign_id,
        &message.recipient.customer_id,
    ) {
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
    use crate::tests::{batch, own_template, signer, template};

    fn limits() -> Limits<'static> {
        Limits {
            max_value_chars: 64,
            allowed_link_domains: &[],
        }
    }

    #[test]
    fn renders_valid_messages_and_rejects_tampered_ones_individually() {
        let mut input = batch(4);
        own_template(&mut input, 1, |t| t.body.push_str(" Now 90% off!"));
        own_template(&mut input, 2, |t| t.approval.signature.clear());
        input.messages[3].recipient.email = "a@example.com, b@example.com".into();
        let prepared = prepare(&input, &signer(), limits());
        assert_eq!(prepared.rendered.len(), 1);
        assert_eq!(prepared.rendered[0].subject.plain(), "Ada, spring news");
        assert_eq!(
            prepared.rendered[0].body.plain(),
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
        // another campaign's message: its id is not the one of this campaign
        input.campaign_id = "camp-2".into();
        let prepared = prepare(&input, &signer(), limits());
        assert!(prepared.rendered.is_empty());
        assert!(
            prepared
                .rejected
                .iter()
                .all(|r| r.reason.contains("message id"))
        );

        let mut input = batch(2);
        input.call_to_action_url = Some("javascript:alert(1)".into());
        let prepared = prepare(&input, &signer(), limits());
        assert!(prepared.rendered.is_empty());
        assert_eq!(prepared.rejected.len(), 2);
        assert!(prepared.rejected[1].reason.contains("call_to_action_url"));
    }

    #[test]
    fn links_are_https_and_on_the_allowed_domains() {
        let allowed = ["example.com".to_string()];
        let on_list = Limits {
            allowed_link_domains: &allowed,
            ..limits()
        };
        for (url, refused) in [
            ("https://example.com/spring", None),
            (
                "https://evil.example/phish",
                Some("`evil.example` is not on the allowed"),
            ),
            ("data:text/html,hi", Some("`data:` links are not allowed")),
            (
                "http://example.com/spring",
                Some("`http:` links are not allowed"),
            ),
        ] {
            let mut input = batch(1);
            input.call_to_action_url = Some(url.into());
            let prepared = prepare(&input, &signer(), on_list);
            match refused {
                None => assert_eq!(prepared.rendered.len(), 1, "{url}"),
                Some(why) => {
                    assert!(prepared.rendered.is_empty(), "{url} was rendered");
                    assert!(
                        prepared.rejected[0].reason.contains(why),
                        "{url}: {}",
                        prepared.rejected[0].reason
                    );
                }
            }
        }
        // a link in the approved copy itself is held to the same rule
        let mut input = batch(2);
        own_template(&mut input, 1, |t| {
            t.body.push_str(" Or visit https://evil.example/phish now.");
            t.approval.content_hash =
                cpo_shared::signing::content_hash(&t.variant_id, &t.subject, &t.body, &t.citations);
            t.approval.signature = signer().sign(&t.approval.content_hash);
        });
        let prepared = prepare(&input, &signer(), on_list);
        assert_eq!(prepared.rendered.len(), 1);
        assert!(
            prepared.rejected[0]
                .reason
                .contains("a link in variant `v-own-1` is refused"),
            "{}",
            prepared.rejected[0].reason
        );
        // without a list, the campaign link's own domain is the list: https still required
        let mut input = batch(1);
        input.call_to_action_url = Some("https://evil.example/phish".into());
        assert_eq!(prepare(&input, &signer(), limits()).rendered.len(), 1);
        input.call_to_action_url = Some("javascript:alert(1)".into());
        assert!(prepare(&input, &signer(), limits()).rendered.is_empty());
    }

    #[test]
    fn messages_render_from_the_template_their_assignment_names() {
        let mut input = batch(6);
        let mut other = template("v-other");
        other.subject = "Other news for {{first_name}}".into();
        other.approval.content_hash = cpo_shared::signing::content_hash(
            "v-other",
            &other.subject,
            &other.body,
            &other.citations,
        );
        other.approval.signature = signer().sign(&other.approval.content_hash);
        input.templates.push(other);
        input.messages[1].variant_id = "v-other".into();
        // a variant the batch carries no template for
        input.messages[2].variant_id = "v-missing".into();
        // one variant id, two different contents: neither may be used
        let mut clash = template("v-clash");
        input.templates.push(clash.clone());
        clash.body.push_str(" Different.");
        input.templates.push(clash);
        input.messages[3].variant_id = "v-clash".into();
        // an identical second copy is harmless
        input.templates.push(template("v-control"));

        let prepared = prepare(&input, &signer(), limits());
        let subjects: Vec<(&str, String)> = prepared
            .rendered
            .iter()
            .map(|r| (r.message.recipient.customer_id.as_str(), r.subject.plain()))
            .collect();
        assert_eq!(
            subjects,
            [
                ("C0", "Ada, spring news".to_string()),
                ("C1", "Other news for Ada".to_string()),
                ("C4", "Ada, spring news".to_string()),
                ("C5", "Ada, spring news".to_string())
            ]
        );
        assert_eq!(prepared.rendered[1].template.variant_id, "v-other");
        let rejected: Vec<(&str, &str)> = prepared
            .rejected
            .iter()
            .map(|r| (r.message.recipient.customer_id.as_str(), r.reason.as_str()))
            .collect();
        assert_eq!(
            rejected,
            [
                (
                    "C2",
                    "the batch carries no template for variant `v-missing`"
                ),
                (
                    "C3",
                    "the batch carries two different templates for variant `v-clash`"
                )
            ]
        );
        assert!(prepared.rejected[0].template.is_none());
        assert!(prepared.rejected[1].template.is_some());
    }

    #[test]
    fn a_tampered_shared_template_rejects_every_message_using_it() {
        let mut input = batch(3);
        own_template(&mut input, 2, |_| {});
        input.templates[0].body.push_str(" P.S. wire money");
        let prepared = prepare(&input, &signer(), limits());
        assert_eq!(prepared.rendered.len(), 1);
        assert_eq!(prepared.rendered[0].message.recipient.customer_id, "C2");
        assert_eq!(prepared.rejected.len(), 2);
        assert!(
            prepared
                .rejected
                .iter()
                .all(|r| r.reason.contains("altered"))
        );
    }

    #[test]
    fn message_ids_are_checked_exactly() {
        use cpo_shared::envelope::message_id;
        let id = message_id("camp-1", "C7");
        assert!(is_message_id_of(&id, "camp-1", "C7"));
        assert!(!is_message_id_of(&id, "camp-1", "C8"));
        assert!(!is_message_id_of(&id, "camp-2", "C7"));
        assert!(!is_message_id_of(&id.to_uppercase(), "camp-1", "C7"));
        assert!(!is_message_id_of(&id[..35], "camp-1", "C7"));
        assert!(!is_message_id_of(&format!("{id}0"), "camp-1", "C7"));
        assert!(!is_message_id_of(&id[4..], "camp-1", "C7"));
        // lengths are byte lengths, as in `derive_id`
        let accented = message_id("camp-\u{e9}", "C\u{e9}");
        assert!(is_message_id_of(&accented, "camp-\u{e9}", "C\u{e9}"));
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
