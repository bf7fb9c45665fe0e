//! The audit record of a delivered batch (pure: no IO).
//!
//! One hash-chained line per batch lists every send of it, grouped by what was
//! sent: `{"batch_seq":..,"campaign_id":..,"count":N,"event":"send_batch",
//! "groups":[{"arm":..,"content_hash":..,"segment":..,"sends":[["<message id>",
//! "<pseudonym>"],..],"variant_id":..},..]}` (keys sorted, as a
//! `serde_json::Value` would write them). The text is written directly: for a
//! batch of a thousand sends, building a `Value` cost more than the sends'
//! rendering. Why one line per batch rather than per send: see the crate's
//! design notes.

use std::collections::BTreeMap;

use cpo_shared::privacy::Pseudonymizer;
use serde_json::Value;

use crate::json_text::escape;
use crate::prepare::Rendered;

/// Name of the event; each line of this kind lists the sends of one batch.
pub const SEND_BATCH_EVENT: &str = "send_batch";

/// The record of `sends`, all of one batch, as JSON text on one line.
/// Customer ids appear only as pseudonyms.
pub fn send_batch_event(
    campaign_id: &str,
    batch_seq: u64,
    sends: &[&Rendered<'_>],
    pseudonymizer: &Pseudonymizer,
) -> String {
    // Keyed by what was sent, so the record's order depends on the batch's content only.
    let mut groups: BTreeMap<(&str, &str, &str), (&str, Vec<&Rendered<'_>>)> = BTreeMap::new();
    for rendered in sends {
        let message = rendered.message;
        let key = (
            message.segment.as_str(),
            message.arm.as_str(),
            message.variant_id.as_str(),
        );
        groups
            .entry(key)
            .or_insert_with(|| (rendered.template.approval.content_hash.as_str(), Vec::new()))
            .1
            .push(rendered);
    }
    let mut out = String::with_capacity(160 + sends.len() * 80);
    out.push_str(r#"{"batch_seq":"#);
    out.push_str(&batch_seq.to_string());
    out.push_str(r#","campaign_id":""#);
    out.push_str(&escape(campaign_id));
    out.push_str(r#"","count":"#);
    out.push_str(&sends.len().to_string());
    out.push_str(r#","event":""#);
    out.push_str(SEND_BATCH_EVENT);
    out.push_str(r#"","groups":["#);
    for (i, ((segment, arm, variant_id), (content_hash, listed))) in groups.into_iter().enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"arm":""#);
        out.push_str(&escape(arm));
        out.push_str(r#"","content_hash":""#);
        out.push_str(&escape(content_hash));
        out.push_str(r#"","segment":""#);
        out.push_str(&escape(segment));
        out.push_str(r#"","sends":["#);
        for (j, rendered) in listed.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str(r#"[""#);
            out.push_str(&escape(&rendered.message.message_id));
            out.push_str(r#"",""#);
            pseudonymizer.pseudonym_into(&rendered.message.recipient.customer_id, &mut out);
            out.push_str(r#""]"#);
        }
        out.push_str(r#"],"variant_id":""#);
        out.push_str(&escape(variant_id));
        out.push_str(r#""}"#);
    }
    out.push_str("]}");
    out
}

/// One send as a batch record lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditedSend {
    pub campaign_id: String,
    pub message_id: String,
    /// Pseudonymized customer id.
    pub customer: String,
    pub segment: String,
    pub arm: String,
    pub variant_id: String,
    pub content_hash: String,
}

/// The sends a `send_batch` event lists, in its order; nothing for other events.
pub fn audited_sends(event: &Value) -> Vec<AuditedSend> {
    let text = |value: &Value, key: &str| value[key].as_str().unwrap_or_default().to_string();
    if event["event"] != SEND_BATCH_EVENT {
        return Vec::new();
    }
    let campaign_id = text(event, "campaign_id");
    let mut sends = Vec::new();
    for group in event["groups"].as_array().into_iter().flatten() {
        for send in group["sends"].as_array().into_iter().flatten() {
            let part = |i: usize| send[i].as_str().unwrap_or_default().to_string();
            sends.push(AuditedSend {
                campaign_id: campaign_id.clone(),
                message_id: part(0),
                customer: part(1),
                segment: text(group, "segment"),
                arm: text(group, "arm"),
                variant_id: text(group, "variant_id"),
                content_hash: text(group, "content_hash"),
            });
        }
    }
    sends
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::prepare::prepare;
    use crate::tests::{batch, own_template, signer};

    #[test]
    fn every_send_is_listed_once_with_a_pseudonym_and_its_content_hash() {
        let mut input = batch(5);
        own_template(&mut input, 3, |_| {});
        input.messages[3].arm = "urgent".into();
        let prepared = prepare(
            &input,
            &signer(),
            crate::prepare::Limits {
                max_value_chars: 64,
                allowed_link_domains: &[],
            },
        );
        let sends: Vec<&Rendered<'_>> = prepared.rendered.iter().collect();
        let pseudonymizer = Pseudonymizer::new(b"p".to_vec());
        let text = send_batch_event("camp-1", 7, &sends, &pseudonymizer);
        let event: Value = serde_json::from_str(&text).unwrap();
        // the text is what serde writes for the same value
        assert_eq!(event.to_string(), text);
        assert_eq!(event["batch_seq"], 7);
        assert_eq!(event["count"], 5);
        let listed = audited_sends(&event);
        assert_eq!(listed.len(), 5);
        // grouped by (segment, arm, variant): the four control sends, then the urgent one
        let customers: Vec<String> = ["C0", "C1", "C2", "C4", "C3"]
            .iter()
            .map(|c| pseudonymizer.pseudonym(c))
            .collect();
        assert_eq!(
            listed
                .iter()
                .map(|s| s.customer.clone())
                .collect::<Vec<_>>(),
            customers
        );
        let urgent = &listed[4];
        assert_eq!(
            (urgent.arm.as_str(), urgent.variant_id.as_str()),
            ("urgent", "v-own-3")
        );
        assert_eq!(
            urgent.content_hash,
            input.templates[1].approval.content_hash
        );
        assert_eq!(urgent.message_id, input.messages[3].message_id);
        assert_eq!(urgent.campaign_id, "camp-1");
        assert!(!text.contains("example.com") && !text.contains("\"C0\""));
        // the line layout the design notes describe (keys sorted, as a `Value` serializes)
        let single = batch(1);
        let one = prepare(
            &single,
            &signer(),
            crate::prepare::Limits {
                max_value_chars: 64,
                allowed_link_domains: &[],
            },
        );
        let sends: Vec<&Rendered<'_>> = one.rendered.iter().collect();
        let text = send_batch_event("camp-1", 0, &sends, &pseudonymizer);
        let expected = format!(
            r#"{{"batch_seq":0,"campaign_id":"camp-1","count":1,"event":"send_batch","groups":[{{"arm":"control","content_hash":"{}","segment":"loyal","sends":[["{}","{}"]],"variant_id":"v-control"}}]}}"#,
            input.templates[0].approval.content_hash,
            input.messages[0].message_id,
            pseudonymizer.pseudonym("C0"),
        );
        assert_eq!(text, expected);
        assert!(audited_sends(&json!({"event": "safety_decision"})).is_empty());
    }
}
