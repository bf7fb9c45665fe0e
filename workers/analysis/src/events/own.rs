//! Our own event format: one JSON object per line, what `cpo ingest` writes and
//! `cpo simulate` produces.
//!
//! `{"event_id": "...", "message_id": "...", "type": "open", "timestamp": "RFC3339",
//! "simulated": false}`

use serde::{Deserialize, Serialize};

use super::Parsed;
use super::time::parse_rfc3339;

/// The engagement events the analysis understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Delivered,
    Open,
    Click,
    Conversion,
    Unsubscribe,
    Bounce,
    Complaint,
}

impl EventType {
    pub const ALL: [EventType; 7] = [
        EventType::Delivered,
        EventType::Open,
        EventType::Click,
        EventType::Conversion,
        EventType::Unsubscribe,
        EventType::Bounce,
        EventType::Complaint,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Delivered => "delivered",
            EventType::Open => "open",
            EventType::Click => "click",
            EventType::Conversion => "conversion",
            EventType::Unsubscribe => "unsubscribe",
            EventType::Bounce => "bounce",
            EventType::Complaint => "complaint",
        }
    }

    pub fn parse(text: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// A bit per type, for per-customer flags.
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A normalized engagement event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub event_id: String,
    pub message_id: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// RFC 3339, UTC.
    pub timestamp: String,
    /// True for everything the simulator made; reports built on such events are
    /// labelled SIMULATED.
    #[serde(default)]
    pub simulated: bool,
}

/// Validates an event in our format: ids present, a known type, a real timestamp.
pub fn parse(value: &serde_json::Value) -> Result<Parsed, String> {
    let event: Event =
        serde_json::from_value(value.clone()).map_err(|e| format!("own format: {e}"))?;
    if event.event_id.trim().is_empty() {
        return Err("own format: empty event_id".into());
    }
    if event.message_id.trim().is_empty() {
        return Err("own format: empty message_id".into());
    }
    if parse_rfc3339(&event.timestamp).is_none() {
        return Err(format!(
            "own format: timestamp `{}` is not RFC 3339",
            event.timestamp
        ));
    }
    Ok(Parsed::Event(event))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_and_keeps_the_simulated_flag() {
        let value = json!({"event_id": "e1", "message_id": "m1", "type": "open",
            "timestamp": "2025-01-06T10:00:00Z", "simulated": true});
        let Ok(Parsed::Event(event)) = parse(&value) else {
            panic!("valid event rejected")
        };
        assert!(event.simulated);
        assert_eq!(event.event_type, EventType::Open);
        assert_eq!(serde_json::to_value(&event).unwrap(), value);
    }

    #[test]
    fn rejects_unknown_types_and_bad_timestamps() {
        let bad_type = json!({"event_id": "e", "message_id": "m", "type": "opened",
            "timestamp": "2025-01-06T10:00:00Z"});
        assert!(parse(&bad_type).is_err());
        let bad_time = json!({"event_id": "e", "message_id": "m", "type": "open",
            "timestamp": "Monday"});
        assert!(parse(&bad_time).unwrap_err().contains("Monday"));
    }
}
