//! Engagement events: our own JSONL format and the webhook formats of SendGrid,
//! Amazon SES (via SNS) and Mailgun, normalized to [`Event`].

pub mod ingest;
pub mod mailgun;
pub mod own;
pub mod sendgrid;
pub mod ses;
pub mod time;

use std::fmt;

use serde_json::Value;

pub use own::{Event, EventType};

/// What a provider event maps to.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Event(Event),
    /// A well-formed event that carries no engagement outcome (SendGrid
    /// `processed`, SES `Send`, SNS subscription confirmations, soft bounces).
    Ignored(String),
}

/// Which parser reads an input; `Auto` recognizes each document by its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum InputFormat {
    #[default]
    Auto,
    Own,
    Sendgrid,
    Ses,
    Mailgun,
}

impl fmt::Display for InputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            InputFormat::Auto => "auto",
            InputFormat::Own => "own",
            InputFormat::Sendgrid => "sendgrid",
            InputFormat::Ses => "ses",
            InputFormat::Mailgun => "mailgun",
        };
        f.write_str(name)
    }
}

/// Which signature an event object carries, if any: an SNS envelope's
/// `Signature`, a Mailgun body's `signature.signature`.
pub fn carried_signature(value: &Value) -> Option<InputFormat> {
    if value.get("Type").is_some()
        && (value.get("Signature").is_some() || value.get("SigningCertURL").is_some())
    {
        Some(InputFormat::Ses)
    } else if value.pointer("/signature/signature").is_some() {
        Some(InputFormat::Mailgun)
    } else {
        None
    }
}

/// Checks the signature an event object carries, before it is parsed. The
/// `cpo` binary passes in the gateway's verifiers (this crate does not depend
/// on the gateway); `Err` names why the object is refused.
pub trait SignatureCheck {
    fn check(&self, value: &Value) -> Result<(), String>;
}

/// Without verifiers: an object that carries a signature is refused (it cannot
/// be checked, so it cannot be trusted); one without passes.
pub struct RefuseSigned;

impl SignatureCheck for RefuseSigned {
    fn check(&self, value: &Value) -> Result<(), String> {
        match carried_signature(value) {
            Some(format) => Err(format!("{format} signature cannot be verified here")),
            None => Ok(()),
        }
    }
}

/// Recognizes a single event object by the fields only its format has.
fn detect(value: &Value) -> Option<InputFormat> {
    let has = |key: &str| value.get(key).is_some();
    if has("event-data") {
        Some(InputFormat::Mailgun)
    } else if has("Type") && (has("Message") || has("TopicArn")) {
        Some(InputFormat::Ses)
    } else if has("event_id") && has("type") {
        Some(InputFormat::Own)
    } else if has("sg_event_id") || (has("event") && has("timestamp")) {
        Some(InputFormat::Sendgrid)
    } else {
        None
    }
}

/// Parses one event object with the given (or detected) format.
pub fn parse_object(value: &Value, format: InputFormat) -> Result<Parsed, String> {
    if !value.is_object() {
        return Err("expected a JSON object".into());
    }
    let format = match format {
        InputFormat::Auto => detect(value).ok_or("unrecognized event format")?,
        explicit => explicit,
    };
    match format {
        InputFormat::Own => own::parse(value),
        InputFormat::Sendgrid => sendgrid::parse(value),
        InputFormat::Ses => ses::parse(value),
        InputFormat::Mailgun => mailgun::parse(value),
        InputFormat::Auto => Err("unrecognized event format".into()),
    }
}

/// Parses one JSON document: an object, or an array of objects (a SendGrid POST).
/// Returns each item's position within the document (`None` for a lone object).
pub fn parse_document(
    value: &Value,
    format: InputFormat,
) -> Vec<(Option<usize>, Result<Parsed, String>)> {
    match value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(index, item)| (Some(index + 1), parse_object(item, format)))
            .collect(),
        other => vec![(None, parse_object(other, format))],
    }
}

/// The first non-empty string among `keys` of an object.
pub(crate) fn first_string(value: &Value, keys: &[&str]) -> Option<String> {
    keys.iter()
        .filter_map(|key| value.get(*key).and_then(Value::as_str))
        .find(|s| !s.trim().is_empty())
        .map(str::to_string)
}

/// `<id@host>` -> `id@host`: Message-ID headers come wrapped in angle brackets.
pub(crate) fn strip_angle_brackets(text: &str) -> String {
    text.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn auto_detection_tells_the_formats_apart() {
        assert_eq!(
            detect(&json!({"event-data": {}})),
            Some(InputFormat::Mailgun)
        );
        assert_eq!(
            detect(&json!({"Type": "Notification", "Message": "{}"})),
            Some(InputFormat::Ses)
        );
        assert_eq!(
            detect(&json!({"event_id": "e", "type": "open"})),
            Some(InputFormat::Own)
        );
        assert_eq!(
            detect(&json!({"event": "open", "timestamp": 1})),
            Some(InputFormat::Sendgrid)
        );
        assert_eq!(detect(&json!({"hello": 1})), None);
    }

    #[test]
    fn signed_objects_are_refused_without_a_verifier() {
        let sns = json!({"Type": "Notification", "Message": "{}", "Signature": "BOGUS"});
        assert!(RefuseSigned.check(&sns).is_err());
        let mailgun = json!({"signature": {"signature": "ab"}, "event-data": {}});
        assert!(RefuseSigned.check(&mailgun).is_err());
        let plain = json!({"signature": {}, "event-data": {}});
        assert!(RefuseSigned.check(&plain).is_ok());
    }

    #[test]
    fn arrays_are_parsed_item_by_item() {
        let doc = json!([
            {"event": "open", "timestamp": 1, "message_id": "m1", "sg_event_id": "a"},
            "not an object"
        ]);
        let items = parse_document(&doc, InputFormat::Auto);
        assert_eq!(items.len(), 2);
        assert!(items[0].1.is_ok());
        assert_eq!(items[1].0, Some(2));
        assert!(items[1].1.is_err());
    }
}
