//! Borrowed mirrors of `SendBatch` and its parts.
//!
//! They serialize to exactly the JSON of the owned model types (a test checks
//! it byte for byte) but point into the batch and the decided templates, so a
//! batch of 1000 customers does not clone 1000 templates and recipients.

use cpo_shared::model::{ApprovedTemplate, Customer};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct SendBatchOut<'a> {
    pub campaign_id: &'a str,
    pub batch_seq: u64,
    pub messages: Vec<OutboundMessageOut<'a>>,
}

#[derive(Debug, Serialize)]
pub struct OutboundMessageOut<'a> {
    pub message_id: String,
    pub campaign_id: &'a str,
    pub recipient: RecipientOut<'a>,
    pub assignment: ArmAssignmentOut<'a>,
    pub template: &'a ApprovedTemplate,
    pub call_to_action_url: Option<&'a str>,
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

#[derive(Debug, Serialize)]
pub struct ArmAssignmentOut<'a> {
    pub customer_id: &'a str,
    pub segment: &'a str,
    pub arm: &'a str,
    pub variant_id: &'a str,
    pub fallback: Option<&'a str>,
}
