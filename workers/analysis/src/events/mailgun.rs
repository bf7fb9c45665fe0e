//! Mailgun webhooks: `{"signature": {...}, "event-data": {...}}` per POST.
//!
//! Our message id travels as the user variable `message_id` (`v:message_id` when
//! sending); failing that, the Message-ID header.

use serde_json::Value;

use super::own::{Event, EventType};
use super::time::{format_rfc3339, from_unix_number};
use super::{Parsed, first_string, strip_angle_brackets};

/// Maps one Mailgun webhook body.
pub fn parse(value: &Value) -> Result<Parsed, String> {
    let data = value
        .get("event-data")
        .ok_or("mailgun: missing `event-data`")?;
    let kind = data
        .get("event")
        .and_then(Value::as_str)
        .ok_or("mailgun: missing `event-data.event`")?;
    let event_type = match kind {
        "delivered" => EventType::Delivered,
        "opened" => EventType::Open,
        "clicked" => EventType::Click,
        "unsubscribed" => EventType::Unsubscribe,
        "complained" => EventType::Complaint,
        "failed" => {
            // Temporary failures are retried by Mailgun and may still be delivered.
            let severity = data
                .get("severity")
                .and_then(Value::as_str)
                .unwrap_or("permanent");
            if severity != "permanent" {
                return Ok(Parsed::Ignored(format!("mailgun {severity} failure")));
            }
            EventType::Bounce
        }
        other => return Ok(Parsed::Ignored(format!("mailgun `{other}`"))),
    };
    let message_id = data
        .get("user-variables")
        .and_then(|vars| first_string(vars, &["message_id", "cpo_message_id"]))
        .or_else(|| {
            data.pointer("/message/headers/message-id")
                .and_then(Value::as_str)
                .map(strip_angle_brackets)
        })
        .ok_or("mailgun: no `message_id` user variable and no message-id header")?;
    let timestamp = data
        .get("timestamp")
        .and_then(Value::as_f64)
        .and_then(from_unix_number)
        .ok_or("mailgun: missing or invalid `event-data.timestamp`")?;
    let event_id = match data.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => format!("mailgun:{id}"),
        _ => format!("mailgun:{message_id}:{kind}:{timestamp}"),
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
    fn maps_a_click_with_a_user_variable() {
        let value = json!({"signature": {"token": "t"}, "event-data": {
            "id": "mg-1", "event": "clicked", "timestamp": 1_521_472_262.908_181,
            "user-variables": {"message_id": "msg-3"},
            "message": {"headers": {"message-id": "<other@mailgun>"}}}});
        let Ok(Parsed::Event(event)) = parse(&value) else {
            panic!("rejected")
        };
        assert_eq!(event.message_id, "msg-3");
        assert_eq!(event.event_type, EventType::Click);
        assert_eq!(event.event_id, "mailgun:mg-1");
        assert_eq!(event.timestamp, "2018-03-19T15:11:02Z");
    }

    #[test]
    fn permanent_failure_is_a_bounce_temporary_is_ignored() {
        let permanent = json!({"event-data": {"event": "failed", "severity": "permanent",
            "timestamp": 1.0, "message": {"headers": {"message-id": "<m-1>"}}}});
        let Ok(Parsed::Event(event)) = parse(&permanent) else {
            panic!("rejected")
        };
        assert_eq!(event.event_type, EventType::Bounce);
        assert_eq!(event.message_id, "m-1");
        let temporary = json!({"event-data": {"event": "failed", "severity": "temporary",
            "timestamp": 1.0, "user-variables": {"message_id": "m"}}});
        assert!(matches!(parse(&temporary), Ok(Parsed::Ignored(_))));
    }
}
