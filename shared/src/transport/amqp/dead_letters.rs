//! Messages the broker dead-lettered by itself, turned into the runtime's dead-letter
//! record so the dead-letter queue reads the same whoever put a message there.
//!
//! The runtime writes a `DeadLetter` for every message it gives up on. The broker
//! moves a message there on its own only when a work queue's delivery limit is reached
//! (a worker kept crashing on it, or it was requeued again and again) or when a
//! consumer rejects it without requeue; it then carries the original body and an
//! `x-death` header. The subscription converts those on the way out.

use crate::dead_letter::{DeadLetter, DeadLetterKind};
use crate::envelope::{EnvelopeHeader, SCHEMA_VERSION, derive_id, now_ms};

use super::topology::Topology;

/// The latest entry of a message's `x-death` header.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct BrokerDeath {
    /// Broker queue the message was dead-lettered from.
    pub(super) queue: String,
    /// `delivery_limit`, `rejected`, `expired` or `maxlen`.
    pub(super) reason: String,
    pub(super) time_ms: Option<u64>,
}

/// Stage name on records the broker, not a stage, produced.
pub const BROKER_STAGE: &str = "broker";

/// The JSON of a `DeadLetter` for a message the broker dead-lettered.
pub(super) fn broker_dead_letter(body: &[u8], death: &BrokerDeath, topology: &Topology) -> Vec<u8> {
    let queue = topology.logical(&death.queue).to_string();
    let header: Option<EnvelopeHeader> = serde_json::from_slice(body).ok();
    let message: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let (kind, reason, attempts) = match death.reason.as_str() {
        "delivery_limit" => (
            DeadLetterKind::Exhausted,
            format!(
                "delivery limit of {} reached on queue {queue}: delivered again and again \
                 without an ack (a worker crashed on it, or it was requeued each time)",
                topology.delivery_limit()
            ),
            topology.delivery_limit() + 1,
        ),
        "expired" => (
            DeadLetterKind::Timeout,
            format!("expired on queue {queue}"),
            1,
        ),
        other => (
            DeadLetterKind::Permanent,
            format!("dead-lettered by the broker from queue {queue}: {other}"),
            1,
        ),
    };
    let id = header
        .as_ref()
        .and_then(|h| h.id.clone())
        .unwrap_or_else(|| format!("raw-{}", derive_id(&[&String::from_utf8_lossy(body)])));
    let dead_lettered_ms = death.time_ms.unwrap_or_else(now_ms);
    let letter = DeadLetter {
        version: SCHEMA_VERSION,
        id,
        campaign_id: header.as_ref().and_then(|h| h.campaign_id.clone()),
        stage: BROKER_STAGE.to_string(),
        queue,
        kind,
        reason,
        reasons: Vec::new(),
        attempts,
        first_seen_ms: header
            .as_ref()
            .and_then(|h| h.first_seen_ms)
            .filter(|ms| *ms > 0)
            .unwrap_or(dead_lettered_ms),
        dead_lettered_ms,
        raw: message
            .is_none()
            .then(|| String::from_utf8_lossy(body).chars().take(4096).collect()),
        message,
    };
    // A DeadLetter of plain strings, numbers and JSON values always serializes; should
    // that ever change, the original body is still better than nothing.
    serde_json::to_vec(&letter).unwrap_or_else(|_| body.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn death(reason: &str) -> BrokerDeath {
        BrokerDeath {
            queue: "t.segments".into(),
            reason: reason.into(),
            time_ms: Some(1_700_000_000_000),
        }
    }

    #[test]
    fn a_poison_envelope_becomes_an_exhausted_dead_letter_keeping_the_message() {
        let topology = Topology::new("t.", 4);
        let body = br#"{"id":"m1","campaign_id":"c1","version":1,"attempt":0,"first_seen_ms":5,"payload":{"x":1}}"#;
        let letter: DeadLetter = serde_json::from_slice(&broker_dead_letter(
            body,
            &death("delivery_limit"),
            &topology,
        ))
        .unwrap();
        assert_eq!(letter.kind, DeadLetterKind::Exhausted);
        assert_eq!(letter.id, "m1");
        assert_eq!(letter.campaign_id.as_deref(), Some("c1"));
        assert_eq!(letter.queue, "segments", "logical name, replayable");
        assert_eq!(letter.stage, BROKER_STAGE);
        assert_eq!(letter.attempts, 5);
        assert!(
            letter.reason.contains("delivery limit of 4"),
            "{}",
            letter.reason
        );
        assert_eq!(letter.first_seen_ms, 5);
        assert_eq!(letter.dead_lettered_ms, 1_700_000_000_000);
        assert_eq!(letter.message.unwrap()["payload"]["x"], 1);
        assert_eq!(letter.raw, None);
    }

    #[test]
    fn non_json_bodies_are_kept_raw_and_other_reasons_are_permanent() {
        let topology = Topology::new("t.", 4);
        let letter: DeadLetter = serde_json::from_slice(&broker_dead_letter(
            b"\xffgarbage",
            &death("rejected"),
            &topology,
        ))
        .unwrap();
        assert_eq!(letter.kind, DeadLetterKind::Permanent);
        assert!(letter.id.starts_with("raw-"));
        assert!(letter.raw.unwrap().contains("garbage"));
        assert!(letter.message.is_none());
        assert!(letter.reason.contains("rejected"));
    }
}
