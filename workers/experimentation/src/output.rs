//! Borrowed mirrors of `SendBatch` and its parts.
//!
//! They serialize to exactly the JSON of the owned model types (a test checks
//! it byte for byte) but point into the batch and the decided templates, so a
//! batch of 1000 customers clones no recipients and no templates.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use cpo_shared::batch_signing::{BatchHasher, MessageFields};
use cpo_shared::model::{ApprovedTemplate, Customer};
use cpo_shared::signing::Signer;
use serde::Serialize;

use crate::error::ExperimentError;

#[derive(Debug, Serialize)]
pub struct SendBatchOut<'a> {
    pub campaign_id: &'a str,
    pub batch_seq: u64,
    pub call_to_action_url: Option<&'a str>,
    /// Each template the messages use, once, by variant id.
    pub templates: Vec<&'a ApprovedTemplate>,
    pub messages: Vec<OutboundMessageOut<'a>>,
    /// Set by `sign`, once everything above is final.
    pub signature: Option<String>,
}

impl SendBatchOut<'_> {
    /// Sign the batch over the same canonical form delivery recomputes from
    /// the owned `SendBatch` (`batch_signing::batch_hash`; a test holds them equal).
    pub fn sign(&mut self, signer: &Signer) {
        let mut hasher =
            BatchHasher::new(self.campaign_id, self.batch_seq, self.call_to_action_url);
        for template in &self.templates {
            hasher.template(&template.variant_id, &template.approval);
        }
        for m in &self.messages {
            let r = &m.recipient;
            hasher.message(&MessageFields {
                message_id: &m.message_id,
                customer_id: r.customer_id,
                email: r.email,
                first_name: r.first_name,
                location: r.location,
                tier: r.tier,
                segment: m.segment,
                arm: m.arm,
                variant_id: m.variant_id,
                fallback: m.fallback,
            });
        }
        self.signature = Some(signer.sign(&hasher.finish()));
    }
}

#[derive(Debug, Serialize)]
pub struct OutboundMessageOut<'a> {
    pub message_id: String,
    pub recipient: RecipientOut<'a>,
    pub segment: &'a str,
    pub arm: &'a str,
    pub variant_id: &'a str,
    pub fallback: Option<&'a str>,
    /// The template `variant_id` names; it travels once in the batch's
    /// `templates`, not in every message.
    #[serde(skip)]
    pub template: &'a ApprovedTemplate,
}

#[derive(Debug, Serialize)]
pub struct RecipientOut<'a> {
    pub customer_id: &'a str,
    pub email: &'a str,
    pub first_name: &'a str,
    pub location: &'a str,
    pub tier: &'a str,
}

impl<'a> RecipientOut<'a> {
    pub fn of(customer: &'a Customer) -> Self {
        Self {
            customer_id: &customer.customer_id,
            email: &customer.email,
            first_name: &customer.first_name,
            location: &customer.location,
            tier: &customer.tier,
        }
    }
}

/// The distinct templates `messages` use, ordered by variant id. Messages name
/// their template by variant id, so two different templates under one id
/// would be ambiguous: that is an error, never a silent pick.
pub fn templates_of<'a>(
    messages: &[OutboundMessageOut<'a>],
) -> Result<Vec<&'a ApprovedTemplate>, ExperimentError> {
    let mut by_id: BTreeMap<&'a str, &'a ApprovedTemplate> = BTreeMap::new();
    let mut last: Option<&'a ApprovedTemplate> = None;
    for message in messages {
        let template = message.template;
        // Consecutive customers mostly share a few templates: skip the map then.
        if last.is_some_and(|known| std::ptr::eq(known, template)) {
            continue;
        }
        last = Some(template);
        match by_id.entry(template.variant_id.as_str()) {
            Entry::Vacant(slot) => {
                slot.insert(template);
            }
            Entry::Occupied(known) => {
                let known = *known.get();
                if !std::ptr::eq(known, template) && known != template {
                    return Err(ExperimentError::AmbiguousTemplate(
                        template.variant_id.clone(),
                    ));
                }
            }
        }
    }
    Ok(by_id.into_values().collect())
}
