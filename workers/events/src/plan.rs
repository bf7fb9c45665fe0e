//! From a batch of events and what the store knows about their messages to
//! the rows to write: event records and suppressions. Pure: no IO.

use std::collections::HashMap;

use cpo_shared::model::EventMessage;
use cpo_shared::privacy::AddressHasher;
use cpo_shared::store::{Assignment, EventRecord, Suppression, SuppressionKey, reasons};

use crate::address::{is_hard_bounce, recipients};

/// Providers the gateway publishes for; any other is labelled `other`.
pub const PROVIDERS: [&str; 5] = ["sendgrid", "ses", "mailgun", "cpo", "other"];
/// Event types of `EventMessage`; any other is stored and labelled `other`.
pub const EVENT_TYPES: [&str; 8] = [
    "delivered",
    "open",
    "click",
    "conversion",
    "unsubscribe",
    "bounce",
    "complaint",
    "other",
];

/// The bounded metric label of a provider name.
pub fn provider_label(provider: &str) -> &'static str {
    PROVIDERS
        .iter()
        .find(|p| **p == provider)
        .copied()
        .unwrap_or("other")
}

/// The bounded metric label of an event type.
pub fn type_label(event_type: &str) -> &'static str {
    EVENT_TYPES
        .iter()
        .find(|t| **t == event_type)
        .copied()
        .unwrap_or("other")
}

/// The suppression reason an event gives, if any: hard bounces, complaints
/// and unsubscribes. Soft bounces and engagement give none.
pub fn suppression_reason(event: &EventMessage) -> Option<&'static str> {
    match event.event_type.as_str() {
        "bounce" if is_hard_bounce(&event.raw) => Some(reasons::BOUNCED),
        "complaint" => Some(reasons::COMPLAINED),
        "unsubscribe" => Some(reasons::UNSUBSCRIBED),
        _ => None,
    }
}

/// What the store said about the batch's messages.
#[derive(Debug, Default)]
pub struct Known {
    /// Provider message id -> our message id (from the send records).
    pub by_provider_id: HashMap<String, String>,
    /// Our message id -> its assignment.
    pub assignments: HashMap<String, Assignment>,
}

/// The rows of one batch, in input order.
#[derive(Debug, Default)]
pub struct Planned {
    pub records: Vec<EventRecord>,
    /// Per record: whether its message is one of ours (has an assignment).
    pub matched: Vec<bool>,
    pub suppressions: Vec<Suppression>,
}

/// PostgreSQL text cannot hold NUL; a hostile payload with one must not
/// fail the batch it travels in.
fn text(s: &str) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{fffd}")
    } else {
        s.to_string()
    }
}

/// Our message id of an event: the one it names when that one is ours, else
/// the one its provider message id was sent as, else whatever it names.
pub fn message_id<'a>(event: &'a EventMessage, known: &'a Known) -> Option<&'a str> {
    let named = event.message_id.as_deref();
    let sent_as = event
        .provider_message_id
        .as_ref()
        .and_then(|p| known.by_provider_id.get(p))
        .map(String::as_str);
    match (named, sent_as) {
        (Some(named), _) if known.assignments.contains_key(named) => Some(named),
        (_, Some(sent_as)) => Some(sent_as),
        (named, None) => named,
    }
}

/// Every message id the batch may be about (named, or found through the
/// provider's message id): what to look assignments up for.
pub fn candidate_message_ids(events: &[&EventMessage], known: &Known) -> Vec<String> {
    let mut ids: Vec<String> = events
        .iter()
        .flat_map(|e| {
            let sent_as = e
                .provider_message_id
                .as_ref()
                .and_then(|p| known.by_provider_id.get(p));
            e.message_id.iter().chain(sent_as)
        })
        .cloned()
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Rows for `events`. Suppressions are keyed by the customer of the message
/// (when it is ours) and by the hashed recipient address (when the payload
/// names it and a hasher is configured); created at the event's time.
pub fn plan(events: &[&EventMessage], known: &Known, hasher: Option<&AddressHasher>) -> Planned {
    let mut planned = Planned::default();
    for event in events {
        let message = message_id(event, known);
        let assignment = message.and_then(|m| known.assignments.get(m));
        planned.records.push(EventRecord {
            provider: text(&event.provider),
            provider_event_id: text(&event.event_id),
            event_type: text(&event.event_type),
            message_id: message.map(text),
            occurred_at_ms: event.occurred_at_ms,
            raw: text(&event.raw),
        });
        planned.matched.push(assignment.is_some());
        let Some(reason) = suppression_reason(event) else {
            continue;
        };
        let suppression = |key| Suppression {
            key,
            reason: reason.to_string(),
            source: text(&event.provider),
            created_at_ms: event.occurred_at_ms,
        };
        if let Some(a) = assignment {
            planned
                .suppressions
                .push(suppression(SuppressionKey::Customer(a.customer_id.clone())));
        }
        if let Some(hasher) = hasher {
            for address in recipients(&event.raw) {
                planned
                    .suppressions
                    .push(suppression(SuppressionKey::AddressHash(
                        hasher.hash(&address),
                    )));
            }
        }
    }
    planned
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, event_type: &str, message: Option<&str>, raw: &str) -> EventMessage {
        EventMessage {
            provider: "sendgrid".into(),
            event_id: id.into(),
            message_id: message.map(String::from),
            provider_message_id: None,
            event_type: event_type.into(),
            occurred_at_ms: 1_000,
            raw: raw.into(),
        }
    }

    fn known() -> Known {
        let assignment = Assignment {
            message_id: "msg-1".into(),
            campaign_id: "c1".into(),
            customer_id: "C1".into(),
            segment: "s".into(),
            arm: "a".into(),
            variant: "v".into(),
        };
        Known {
            by_provider_id: HashMap::from([("sg-1".to_string(), "msg-1".to_string())]),
            assignments: HashMap::from([("msg-1".to_string(), assignment)]),
        }
    }

    #[test]
    fn each_kind_of_event_gives_its_reason_and_keys() {
        let hasher = AddressHasher::new(b"k");
        let raw = r#"{"email":"Ada@Example.com"}"#;
        let mut by_provider = event("e4", "complaint", None, raw);
        by_provider.provider_message_id = Some("sg-1".into());
        let events = [
            event("e1", "bounce", Some("msg-1"), raw),
            event("e2", "unsubscribe", Some("msg-unknown"), raw),
            event("e3", "open", Some("msg-1"), raw),
            by_provider,
            event("e5", "bounce", Some("msg-1"), r#"{"type":"blocked"}"#),
        ];
        let mut misnamed = event("e6", "open", Some("msg-typo"), "{}");
        misnamed.provider_message_id = Some("sg-1".into());
        assert_eq!(message_id(&misnamed, &known()), Some("msg-1"));
        let mut unsent = event("e7", "open", Some("msg-x"), "{}");
        unsent.provider_message_id = Some("sg-unknown".into());
        assert_eq!(message_id(&unsent, &known()), Some("msg-x"));
        let refs: Vec<&EventMessage> = [&misnamed, &unsent].into_iter().collect();
        assert_eq!(
            candidate_message_ids(&refs, &known()),
            ["msg-1", "msg-typo", "msg-x"]
        );
        let refs: Vec<&EventMessage> = events.iter().collect();
        let planned = plan(&refs, &known(), Some(&hasher));
        assert_eq!(planned.matched, [true, false, true, true, true]);
        assert_eq!(planned.records[3].message_id.as_deref(), Some("msg-1"));
        assert_eq!(
            planned.records[1].message_id.as_deref(),
            Some("msg-unknown")
        );
        let got: Vec<(SuppressionKey, &str, &str)> = planned
            .suppressions
            .iter()
            .map(|s| (s.key.clone(), s.reason.as_str(), s.source.as_str()))
            .collect();
        let address = SuppressionKey::AddressHash(hasher.hash("ada@example.com"));
        let customer = SuppressionKey::Customer("C1".into());
        assert_eq!(
            got,
            [
                (customer.clone(), "bounced", "sendgrid"),
                (address.clone(), "bounced", "sendgrid"),
                // unknown message: the address only
                (address.clone(), "unsubscribed", "sendgrid"),
                (customer, "complained", "sendgrid"),
                (address, "complained", "sendgrid"),
            ]
        );
        assert!(
            planned
                .suppressions
                .iter()
                .all(|s| s.created_at_ms == 1_000)
        );
    }

    #[test]
    fn without_a_hasher_only_customers_and_nul_is_replaced() {
        let events = [event(
            "e\0x",
            "bounce",
            Some("msg-1"),
            "{\"email\":\"a@b.c\u{0}\"}",
        )];
        let refs: Vec<&EventMessage> = events.iter().collect();
        let planned = plan(&refs, &known(), None);
        assert_eq!(planned.suppressions.len(), 1);
        assert_eq!(planned.records[0].provider_event_id, "e\u{fffd}x");
        assert!(!planned.records[0].raw.contains('\0'));
    }

    #[test]
    fn labels_are_bounded() {
        assert_eq!(provider_label("ses"), "ses");
        assert_eq!(provider_label("evil\"provider"), "other");
        assert_eq!(type_label("bounce"), "bounce");
        assert_eq!(type_label("x".repeat(100).as_str()), "other");
    }
}
