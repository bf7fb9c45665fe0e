//! Amazon SES events delivered through SNS: an SNS envelope whose `Message` is a
//! JSON string holding the SES event (event publishing's `eventType`, or the
//! older identity notifications' `notificationType`).
//!
//! Our message id travels as the message tag `message_id`; failing that, an
//! `X-CPO-Message-Id` header, then the Message-ID header.

use serde_json::Value;

use super::own::{Event, EventType};
use super::time::{format_rfc3339, parse_rfc3339};
use super::{Parsed, strip_angle_brackets};

fn tag(mail: &Value, name: &str) -> Option<String> {
    let tag = mail.get("tags")?.get(name)?;
    let text = tag
        .as_array()
        .and_then(|values| values.first())
        .unwrap_or(tag);
    text.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

fn header(mail: &Value, name: &str) -> Option<String> {
    mail.get("headers")?
        .as_array()?
        .iter()
        .find(|h| {
            h.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })?
        .get("value")?
        .as_str()
        .map(strip_angle_brackets)
}

fn message_id(mail: &Value) -> Option<String> {
    tag(mail, "message_id")
        .or_else(|| tag(mail, "cpo_message_id"))
        .or_else(|| header(mail, "X-CPO-Message-Id"))
        .or_else(|| {
            mail.get("commonHeaders")?
                .get("messageId")?
                .as_str()
                .map(strip_angle_brackets)
        })
        .or_else(|| header(mail, "Message-ID"))
}

/// Maps one SNS envelope.
pub fn parse(envelope: &Value) -> Result<Parsed, String> {
    let kind = envelope
        .get("Type")
        .and_then(Value::as_str)
        .ok_or("ses: SNS envelope without `Type`")?;
    if kind != "Notification" {
        return Ok(Parsed::Ignored(format!("sns `{kind}`")));
    }
    let message_text = envelope
        .get("Message")
        .and_then(Value::as_str)
        .ok_or("ses: SNS notification without a `Message` string")?;
    let message: Value = serde_json::from_str(message_text)
        .map_err(|e| format!("ses: `Message` is not JSON: {e}"))?;
    let ses_kind = message
        .get("eventType")
        .or_else(|| message.get("notificationType"))
        .and_then(Value::as_str)
        .ok_or("ses: message without `eventType` or `notificationType`")?;
    let (event_type, detail_key) = match ses_kind {
        "Delivery" => (EventType::Delivered, "delivery"),
        "Open" => (EventType::Open, "open"),
        "Click" => (EventType::Click, "click"),
        "Complaint" => (EventType::Complaint, "complaint"),
        "Subscription" => (EventType::Unsubscribe, "subscription"),
        "Bounce" => {
            // Transient bounces are retried by SES and may still be delivered.
            let bounce_type = message
                .pointer("/bounce/bounceType")
                .and_then(Value::as_str)
                .unwrap_or("Permanent");
            if bounce_type != "Permanent" {
                return Ok(Parsed::Ignored(format!("ses {bounce_type} bounce")));
            }
            (EventType::Bounce, "bounce")
        }
        other => return Ok(Parsed::Ignored(format!("ses `{other}`"))),
    };
    let mail = message.get("mail").ok_or("ses: message without `mail`")?;
    let our_id = message_id(mail).ok_or("ses: no message_id tag or Message-ID header")?;
    let timestamp = [
        message.get(detail_key).and_then(|d| d.get("timestamp")),
        mail.get("timestamp"),
        envelope.get("Timestamp"),
    ]
    .into_iter()
    .flatten()
    .filter_map(Value::as_str)
    .find_map(parse_rfc3339)
    .ok_or("ses: no valid timestamp")?;
    // SNS redelivers with the same MessageId, which is what makes dedupe work.
    let event_id = match envelope.get("MessageId").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => format!("ses:{id}"),
        _ => format!("ses:{our_id}:{ses_kind}:{timestamp}"),
    };
    Ok(Parsed::Event(Event {
        event_id,
        message_id: our_id,
        event_type,
        timestamp: format_rfc3339(timestamp),
        simulated: false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope(message: Value) -> Value {
        json!({"Type": "Notification", "MessageId": "sns-1", "TopicArn": "arn:aws:sns:x",
            "Message": message.to_string(), "Timestamp": "2025-01-06T10:00:00.000Z"})
    }

    #[test]
    fn maps_an_open_through_the_message_tag() {
        let value = envelope(json!({"eventType": "Open",
            "mail": {"messageId": "ses-internal", "timestamp": "2025-01-06T09:00:00.000Z",
                     "tags": {"message_id": ["msg-7"]}},
            "open": {"timestamp": "2025-01-06T09:30:00.000Z", "userAgent": "x"}}));
        let Ok(Parsed::Event(event)) = parse(&value) else {
            panic!("rejected")
        };
        assert_eq!(event.message_id, "msg-7");
        assert_eq!(event.event_id, "ses:sns-1");
        assert_eq!(event.timestamp, "2025-01-06T09:30:00Z");
    }

    #[test]
    fn legacy_notification_with_header_and_soft_bounce() {
        let value = envelope(json!({"notificationType": "Complaint",
            "mail": {"headers": [{"name": "X-CPO-Message-Id", "value": "msg-9"}]},
            "complaint": {"timestamp": "2025-01-07T00:00:00Z"}}));
        let Ok(Parsed::Event(event)) = parse(&value) else {
            panic!("rejected")
        };
        assert_eq!(event.message_id, "msg-9");
        assert_eq!(event.event_type, EventType::Complaint);
        let soft = envelope(
            json!({"eventType": "Bounce", "bounce": {"bounceType": "Transient"},
            "mail": {"tags": {"message_id": ["m"]}}}),
        );
        assert!(matches!(parse(&soft), Ok(Parsed::Ignored(_))));
    }

    #[test]
    fn a_message_that_is_not_json_is_malformed() {
        let value = json!({"Type": "Notification", "Message": "{not json"});
        assert!(parse(&value).unwrap_err().contains("not JSON"));
        let confirm = json!({"Type": "SubscriptionConfirmation"});
        assert!(matches!(parse(&confirm), Ok(Parsed::Ignored(_))));
    }
}
