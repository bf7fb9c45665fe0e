//! Audit events of the safety stage. They carry no customer data: a variant
//! is a template, and reasons name kinds of personal data, not values.

use cpo_shared::model::{Decision, SafetyVerdict, Variant};
use serde_json::{Value, json};

use crate::ensemble::BackendAnswer;
use crate::error::ScreenError;

/// `backends`: each ensemble member's own answer (empty for one backend,
/// then the key is left out).
pub fn decision_event(
    variant: &Variant,
    verdict: &SafetyVerdict,
    backends: &[BackendAnswer],
) -> Value {
    let mut event = json!({
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
    });
    if !backends.is_empty() {
        event["backends"] = json!(backends);
    }
    event
}

/// A screen error under `on_screen_error: hold`: no decision was made, the
/// variant waits and is tried again (`transient`) or is dead-lettered
/// (`permanent`). One event per failed try, so the trail shows how long the
/// outage held a variant (waiting does not raise `attempt`).
pub fn screen_error_event(
    variant: &Variant,
    content_hash: &str,
    screened_by: &str,
    error: &ScreenError,
    attempt: u32,
) -> Value {
    json!({
        "event": "safety_screen_error",
        "campaign_id": variant.campaign_id,
        "variant_id": variant.variant_id,
        "segment": variant.segment,
        "arm": variant.arm,
        "action": "held",
        "kind": error.kind().as_str(),
        "error": format!("screen error: {error}"),
        "attempt": attempt,
        "content_hash": content_hash,
        "screened_by": screened_by,
    })
}
