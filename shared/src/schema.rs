//! JSON Schemas of every queue message, generated from the Rust types.
//! `schemas/` holds them; `tests/schemas.rs` fails when they are stale.

use schemars::{JsonSchema, schema_for};

use crate::dead_letter::DeadLetter;
use crate::envelope::Envelope;
use crate::model::*;

fn schema<T: JsonSchema>() -> serde_json::Value {
    serde_json::to_value(schema_for!(T)).unwrap_or_default()
}

/// (file name, schema) for every message type, one per queue plus the domain records.
pub fn all() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        (
            "campaign-request.json",
            schema::<Envelope<CampaignRequest>>(),
        ),
        ("segment-task.json", schema::<Envelope<SegmentTask>>()),
        ("brief.json", schema::<Envelope<Brief>>()),
        ("variant.json", schema::<Envelope<Variant>>()),
        (
            "variant-decision.json",
            schema::<Envelope<VariantDecision>>(),
        ),
        (
            "experiment-input.json",
            schema::<Envelope<ExperimentInput>>(),
        ),
        ("send-batch.json", schema::<Envelope<SendBatch>>()),
        ("ledger-entry.json", schema::<Envelope<LedgerEntry>>()),
        ("dead-letter.json", schema::<DeadLetter>()),
        ("outbox-record.json", schema::<OutboxRecord>()),
        ("customer.json", schema::<Customer>()),
        ("safety-verdict.json", schema::<SafetyVerdict>()),
        ("arm-assignment.json", schema::<ArmAssignment>()),
    ]
}

/// Pretty JSON as committed in `schemas/`, with a trailing newline.
pub fn render(schema: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}
