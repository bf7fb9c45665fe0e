//! The envelope every queue message travels in.

use std::time::{SystemTime, UNIX_EPOCH};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Version of the message schemas in `schemas/`. Bump on incompatible change;
/// the runtime dead-letters envelopes of a version it does not understand.
pub const SCHEMA_VERSION: u32 = 1;

/// A message: routing metadata plus a typed payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Envelope<T> {
    /// Unique, and deterministic where the content allows, so redelivery is recognisable.
    pub id: String,
    /// Checked as it is decoded (`campaign::check_campaign_id`): a message
    /// with a bad id is dead-lettered, naming it, before any stage sees it.
    #[serde(deserialize_with = "crate::campaign::deserialize_campaign_id")]
    #[schemars(regex(pattern = crate::campaign::CAMPAIGN_ID_PATTERN))]
    pub campaign_id: String,
    /// Schema version of the payload.
    pub version: u32,
    /// How many times this message has been handled and failed transiently (0 on first try).
    #[serde(default)]
    pub attempt: u32,
    /// Unix milliseconds when the message was first published; kept across retries.
    #[serde(default)]
    pub first_seen_ms: u64,
    /// Milliseconds this message has spent waiting out dependency outages
    /// (`StageError::Unavailable`): not counted against the join timeout, and
    /// bounded by `runtime.outage_timeout_ms`. Absent when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub paused_ms: u64,
    pub payload: T,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl<T> Envelope<T> {
    pub fn new(id: impl Into<String>, campaign_id: impl Into<String>, payload: T) -> Self {
        Self {
            id: id.into(),
            campaign_id: campaign_id.into(),
            version: SCHEMA_VERSION,
            attempt: 0,
            first_seen_ms: now_ms(),
            paused_ms: 0,
            payload,
        }
    }

    /// A message produced while handling `self`: same campaign, fresh attempt count.
    pub fn derive<U>(&self, id: impl Into<String>, payload: U) -> Envelope<U> {
        Envelope::new(id, self.campaign_id.clone(), payload)
    }
}

/// Only the metadata of an envelope; decodes even when the payload does not.
#[derive(Debug, Clone, Deserialize)]
pub struct EnvelopeHeader {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub campaign_id: Option<String>,
    #[serde(default)]
    pub version: Option<u32>,
    #[serde(default)]
    pub attempt: Option<u32>,
    #[serde(default)]
    pub first_seen_ms: Option<u64>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A short deterministic id from parts: hex of the first 16 bytes of SHA-256.
pub fn derive_id(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(&hasher.finalize()[..16])
}

/// The idempotency key of a send: the same campaign and customer always give the same id.
pub fn message_id(campaign_id: &str, customer_id: &str) -> String {
    format!("msg-{}", derive_id(&["message", campaign_id, customer_id]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_is_stable_and_distinct() {
        assert_eq!(message_id("c1", "42"), message_id("c1", "42"));
        assert_ne!(message_id("c1", "42"), message_id("c2", "42"));
        // length-prefixing keeps ("ab","c") and ("a","bc") apart
        assert_ne!(derive_id(&["ab", "c"]), derive_id(&["a", "bc"]));
    }

    #[test]
    fn header_decodes_when_payload_does_not() {
        let raw =
            br#"{"id":"x","campaign_id":"c","version":1,"attempt":2,"payload":{"bogus":true}}"#;
        let header: EnvelopeHeader = serde_json::from_slice(raw).unwrap();
        assert_eq!(header.attempt, Some(2));
        assert!(serde_json::from_slice::<Envelope<crate::model::SegmentTask>>(raw).is_err());
    }
}
