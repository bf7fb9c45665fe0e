//! `cpo analyze --campaign ID`: a campaign read from the system of record
//! (its assignments and events) instead of files. The store's rows are turned
//! into exactly the inputs `--run` builds from `outbox.jsonl` and the events
//! file (the same parser, the same tally), so both give the same analysis for
//! the same data. The binary reads the store; this crate stays store-free.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::inputs::RunSummary;
use super::outbox::Outbox;
use super::{RunOptions, analyze_joined, tally};
use crate::analysis::Analysis;
use crate::error::{AnalysisError, Result};
use crate::events::time::format_rfc3339;

/// One assignment row: which customer got which message in which arm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAssignment {
    pub message_id: String,
    pub customer_id: String,
    pub segment: String,
    pub arm: String,
}

/// One event row naming a message of the campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub provider_event_id: String,
    pub message_id: String,
    /// As stored; provider spellings (`opened`, `bounced`, `spamreport`...) are mapped.
    pub event_type: String,
    pub occurred_at_ms: i64,
    /// The raw payload; `"simulated": true` in it marks a simulated event.
    pub raw: String,
}

/// A campaign as the store holds it.
#[derive(Debug, Clone, Default)]
pub struct StoredCampaign {
    pub campaign_id: String,
    pub assignments: Vec<StoredAssignment>,
    pub events: Vec<StoredEvent>,
    /// From the campaign request (absent: equal weights).
    pub arm_weights: Option<BTreeMap<String, f64>>,
    /// The customer CSV of the request, for CUPED covariates.
    pub customers_file: Option<String>,
}

/// Our event type for a stored type, when it is one the analysis counts.
pub fn event_type_name(stored: &str) -> &str {
    match stored {
        "opened" | "open" => "open",
        "clicked" | "click" => "click",
        "delivered" | "delivery" => "delivered",
        "converted" | "conversion" => "conversion",
        "unsubscribed" | "unsubscribe" | "group_unsubscribe" => "unsubscribe",
        "bounced" | "bounce" | "hard_bounce" => "bounce",
        "complained" | "complaint" | "spamreport" | "spam_complaint" => "complaint",
        // Counted as malformed by the tally, and said so in the notes.
        other => other,
    }
}

fn simulated(raw: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(raw)
        .ok()
        .and_then(|v| v.get("simulated").and_then(|s| s.as_bool()))
        .unwrap_or(false)
}

/// The outbox lines and event lines `--run` would read for this campaign.
pub fn as_files(campaign: &StoredCampaign) -> Result<(Vec<u8>, Vec<u8>)> {
    let write = |buffer: &mut Vec<u8>, value: serde_json::Value| -> Result<()> {
        serde_json::to_writer(&mut *buffer, &value)
            .map_err(|e| AnalysisError::Refused(format!("cannot encode a stored row: {e}")))?;
        buffer.push(b'\n');
        Ok(())
    };
    let mut outbox = Vec::with_capacity(campaign.assignments.len() * 120);
    for a in &campaign.assignments {
        write(
            &mut outbox,
            json!({
                "message_id": a.message_id,
                "campaign_id": campaign.campaign_id,
                "customer_id": a.customer_id,
                "segment": a.segment,
                "arm": a.arm,
            }),
        )?;
    }
    let mut events = Vec::with_capacity(campaign.events.len() * 140);
    for e in &campaign.events {
        write(
            &mut events,
            json!({
                "event_id": e.provider_event_id,
                "message_id": e.message_id,
                "type": event_type_name(&e.event_type),
                "timestamp": format_rfc3339(e.occurred_at_ms.div_euclid(1000)),
                "simulated": simulated(&e.raw),
            }),
        )?;
    }
    Ok((outbox, events))
}

/// Analyses a stored campaign with the statistics of `--run`. `dir` is where a
/// simulation's truth file would be and relative customer paths resolve.
pub fn analyze_stored(
    campaign: &StoredCampaign,
    dir: &Path,
    options: &RunOptions,
) -> Result<Analysis> {
    if campaign.assignments.is_empty() {
        return Err(AnalysisError::Refused(format!(
            "the store holds no assignments of campaign `{}`",
            campaign.campaign_id
        )));
    }
    let (outbox_lines, event_lines) = as_files(campaign)?;
    let outbox = Outbox::parse(Path::new("store: assignments"), &outbox_lines)?;
    let tally = tally::tally(&event_lines, &outbox);
    let summary = RunSummary {
        campaign_id: Some(campaign.campaign_id.clone()),
        customers_total: None,
        customers_assigned: Some(campaign.assignments.len() as u64),
        arm_weights: campaign.arm_weights.clone(),
        customers_file: campaign.customers_file.clone(),
    };
    analyze_joined(dir, &outbox, Some(&summary), &tally, options)
}

/// Writes the rows as `outbox.jsonl` and `events.jsonl`-shaped files (for
/// inspection, or for `--run` on another machine).
pub fn write_files(campaign: &StoredCampaign, dir: &Path) -> Result<()> {
    let (outbox, events) = as_files(campaign)?;
    for (name, bytes) in [("outbox.jsonl", outbox), ("events.jsonl", events)] {
        let path = dir.join(name);
        let mut file = std::fs::File::create(&path).map_err(|e| AnalysisError::io(&path, e))?;
        file.write_all(&bytes)
            .map_err(|e| AnalysisError::io(&path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_rows_become_the_lines_the_file_path_reads() {
        let campaign = StoredCampaign {
            campaign_id: "c".into(),
            assignments: vec![StoredAssignment {
                message_id: "m1".into(),
                customer_id: "C1".into(),
                segment: "s".into(),
                arm: "control".into(),
            }],
            events: vec![StoredEvent {
                provider_event_id: "e1".into(),
                message_id: "m1".into(),
                event_type: "opened".into(),
                occurred_at_ms: 1_700_000_000_999,
                raw: r#"{"simulated": true}"#.into(),
            }],
            ..StoredCampaign::default()
        };
        let (outbox, events) = as_files(&campaign).unwrap();
        let outbox: serde_json::Value = serde_json::from_slice(outbox.trim_ascii()).unwrap();
        assert_eq!(outbox["arm"], "control");
        let event: serde_json::Value = serde_json::from_slice(events.trim_ascii()).unwrap();
        assert_eq!(event["type"], "open");
        assert_eq!(event["timestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(event["simulated"], true);
        let err = analyze_stored(
            &StoredCampaign::default(),
            Path::new("."),
            &RunOptions::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("no assignments"), "{err}");
    }
}
