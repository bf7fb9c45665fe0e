//! SendGrid Event Webhook: a JSON array of event objects per POST.
//!
//! Our message id travels as a custom argument (`message_id`, which SendGrid
//! copies to the top level of every event); failing that, the `smtp-id` header.

use serde_json::Value;

use super::own::{Event, EventType};
use super::time::{format_rfc3339, from_unix_number};
use super::{Parsed, first_string, strip_angle_brackets};

/// Maps one SendGrid event object.
pub fn parse(value: &Value) -> Result<Parsed, String> {
    let kind = value
        .get("event")
        .and_then(Value::as_str)
        .ok_or("sendgrid: missing `event`")?;
    let event_type = match kind {
        "delivered" => EventType::Delivered,
        "open" => EventType::Open,
        "click" => EventType::Click,
        // Both mean the message never reached the inbox.
        "bounce" | "dropped" => EventType::Bounce,
        "spamreport" => EventType::Complaint,
        "unsubscribe" | "group_unsubscribe" => EventType::Unsubscribe,
        other => return Ok(Parsed::Ignored(format!("sendgrid `{other}`"))),
    };
    let message_id = first_string(value, &["message_id", "cpo_message_id"])
        .or_else(|| {
            value
                .get("smtp-id")
                .and_then(Value::as_str)
                .map(strip_angle_brackets)
        })
        .ok_or("sendgrid: no `message_id` custom argument and no `smtp-id`")?;
    let timestamp = value
        .get("timestamp")
        .and_then(Value::as_f64)
        .and_then(from_unix_number)
        .ok_or("sendgrid: missing or invalid `timestamp`")?;
    // sg_event_id is unique per event; SendGrid retries reuse it, which is what
    // makes dedupe work. Without one, the event's content is its identity.
    let event_id = match value.get("sg_event_id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => format!("sendgrid:{id}"),
        _ => format!("sendgrid:{message_id}:{kind}:{timestamp}"),
    };
    Ok(Parsed::Event(Event {
        event_id,
        message_id,
        event_type,
        timestamp: format_rfc3339(timestamp),
        simulated: false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_an_open_with_a_custom_argument() {
        let value = json!({"email": "a@example.com", "timestamp": 1_700_000_000,
            "event": "open", "sg_event_id": "abc", "sg_message_id": "xyz.filter",
            "message_id": "msg-1"});
        let Ok(Parsed::Event(event)) = parse(&value) else {
            panic!("rejected")
        };
        assert_eq!(event.message_id, "msg-1");
        assert_eq!(event.event_id, "sendgrid:abc");
        assert_eq!(event.event_type, EventType::Open);
        assert_eq!(event.timestamp, "2023-11-14T22:13:20Z");
    }

    #[test]
    fn falls_back_to_smtp_id_and_ignores_processed() {
        let value = json!({"timestamp": 1, "event": "spamreport", "smtp-id": "<m-2>"});
        let Ok(Parsed::Event(event)) = parse(&value) else {
            panic!("rejected")
        };
        assert_eq!(event.message_id, "m-2");
        assert_eq!(event.event_type, EventType::Complaint);
        let processed = json!({"timestamp": 1, "event": "processed", "message_id": "m"});
        assert!(matches!(parse(&processed), Ok(Parsed::Ignored(_))));
    }

    #[test]
    fn missing_timestamp_is_malformed() {
        let value = json!({"event": "open", "message_id": "m"});
        assert!(parse(&value).unwrap_err().contains("timestamp"));
    }
}
