//! The audit event of a safety decision. It carries no customer data: a
//! variant is a template, and reasons name kinds of personal data, not values.

use cpo_shared::model::{Decision, SafetyVerdict, Variant};
use serde_json::{Value, json};

pub fn decision_event(variant: &Variant, verdict: &SafetyVerdict) -> Value {
    json!({
        "event": "safety_decision",
        "campaign_id": variant.campaign_id,
        "variant_id": variant.variant_id,
        "segment": variant.segment,
        "arm": variant.arm,
        "decision": match verdict.decision {
            Decision::Approved => "approved",
            Decision::Blocked => "blocked",
        },
        "categories": verdict.categories,
        "reasons": verdict.reasons,
        "content_hash": verdict.content_hash,
        "screened_by": verdict.screened_by,
    })
}
