//! From parsed provider events to the `events` queue: our-message check,
//! dedupe by provider event id in Redis, publish with broker confirms.
//!
//! Dedupe is a claim, not a mark: an event id is first claimed `pending` for
//! `gateway.pending_ttl_s` (SET NX), then marked `done` for `dedupe_ttl_s` once
//! the broker confirmed. A failed publish drops the claim, so the ESP's retry
//! goes through; a gateway killed mid-publish leaves a claim that expires
//! before the ESP retries. The events stage dedupes again in the store, so the
//! rare double publish (a confirm whose mark was lost) is harmless.

use std::time::Duration;

use cpo_analysis::events::{Event, Parsed};
use cpo_shared::envelope::{Envelope, derive_id};
use cpo_shared::model::EventMessage;
use cpo_shared::queues;
use cpo_shared::transport::Publish;
use serde_json::{Value, json};

use super::Gateway;
use super::reply::Refusal;
use crate::metrics::metrics;

const PENDING: &[u8] = b"p";
const DONE: &[u8] = b"d";
/// The envelope's campaign id: an event stream belongs to no one campaign.
pub const EVENTS_CAMPAIGN: &str = "events";

/// One item of a webhook body, parsed and checked.
pub enum Item {
    Event(EventMessage),
    Unmatched,
    Ignored,
}

/// Our message ids: `msg-` and 32 hex digits (`cpo_shared::envelope::message_id`).
pub fn is_our_message_id(id: &str) -> bool {
    id.strip_prefix("msg-")
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Parser errors that say the event names no message id at all: not malformed,
/// just not ours (mail sent by other systems through the same account).
fn names_no_message(reason: &str) -> bool {
    reason.contains("no `message_id`") || reason.contains("no message_id")
}

/// Event types each provider documents that carry no outcome for us. Anything
/// else ignored by the parser is an unknown type: refused, so it is noticed.
fn known_ignored(provider: &str, kind: &str) -> bool {
    let known: &[&str] = match provider {
        "sendgrid" => &["processed", "deferred", "group_resubscribe"],
        "ses" => &[
            "Send",
            "Reject",
            "Rendering Failure",
            "DeliveryDelay",
            "AmazonSnsSubscriptionSucceeded",
        ],
        "mailgun" => &[
            "accepted",
            "rejected",
            "stored",
            "list_member_uploaded",
            "list_member_upload_error",
            "list_uploaded",
        ],
        _ => &[],
    };
    known.contains(&kind)
}

/// Maps one parser result. `raw` is the item's own JSON, kept with the event.
pub fn item(
    provider: &'static str,
    parsed: Result<Parsed, String>,
    raw: &Value,
    index: Option<usize>,
) -> Result<Item, Refusal> {
    let at = |message: String| match index {
        Some(i) => format!("item {i}: {message}"),
        None => message,
    };
    let event = match parsed {
        Ok(Parsed::Event(event)) => event,
        Ok(Parsed::Ignored(reason)) => {
            // `sendgrid `x``: the name between backticks is the event type.
            let kind = reason.split('`').nth(1);
            return match kind {
                Some(kind) if !known_ignored(provider, kind) => Err(Refusal::Unprocessable {
                    reason: "unknown_type",
                    message: at(format!("unknown event type `{kind}`")),
                }),
                _ => Ok(Item::Ignored),
            };
        }
        Err(reason) if names_no_message(&reason) => return Ok(Item::Unmatched),
        Err(reason) => return Err(Refusal::bad("malformed_event", at(reason))),
    };
    if event.simulated {
        return Err(Refusal::Unprocessable {
            reason: "malformed_event",
            message: at("simulated events are not accepted as observed ones".into()),
        });
    }
    if !is_our_message_id(&event.message_id) {
        return Ok(Item::Unmatched);
    }
    Ok(Item::Event(message(provider, event, raw)))
}

fn message(provider: &'static str, event: Event, raw: &Value) -> EventMessage {
    let occurred_at_ms = cpo_analysis::events::time::parse_rfc3339(&event.timestamp)
        .map(|s| s.saturating_mul(1000))
        .unwrap_or(0);
    let provider_message_id = match provider {
        "sendgrid" => raw
            .get("sg_message_id")
            .and_then(Value::as_str)
            .map(str::to_string),
        "mailgun" => raw
            .pointer("/event-data/message/headers/message-id")
            .and_then(Value::as_str)
            .map(str::to_string),
        "ses" => raw
            .get("Message")
            .and_then(Value::as_str)
            .and_then(|m| serde_json::from_str::<Value>(m).ok())
            .and_then(|m| {
                m.pointer("/mail/messageId")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            }),
        _ => None,
    };
    let prefix = format!("{provider}:");
    let event_id = if event.event_id.starts_with(&prefix) {
        event.event_id
    } else {
        format!("{prefix}{}", event.event_id)
    };
    EventMessage {
        provider: provider.to_string(),
        event_id,
        message_id: Some(event.message_id),
        provider_message_id,
        event_type: event.event_type.as_str().to_string(),
        occurred_at_ms,
        raw: match provider {
            // The SES event itself, not its SNS envelope (verified already):
            // what the events stage reads recipients from.
            "ses" => raw
                .get("Message")
                .and_then(Value::as_str)
                .map_or_else(|| raw.to_string(), str::to_string),
            _ => raw.to_string(),
        },
    }
}

fn dedupe_key(event_id: &str) -> String {
    format!("gateway:event:{event_id}")
}

impl Gateway {
    /// Publishes the events of one request; the answer counts what became of each.
    pub async fn publish_items(
        &self,
        provider: &'static str,
        items: Vec<Item>,
    ) -> Result<Value, Refusal> {
        let m = metrics();
        let (mut unmatched, mut ignored, mut duplicates) = (0u64, 0u64, 0u64);
        let mut claimed = Vec::new();
        let pending_ttl = Some(Duration::from_secs(self.inner.config.pending_ttl_s));
        let unavailable = |e: cpo_shared::cache::CacheError| Refusal::Unavailable(e.to_string());
        let mut events = Vec::new();
        for item in items {
            match item {
                Item::Event(event) => events.push(event),
                Item::Unmatched => unmatched += 1,
                Item::Ignored => ignored += 1,
            }
        }
        // Claimed concurrently: the Redis connection pipelines them.
        let keys: Vec<String> = events.iter().map(|e| dedupe_key(&e.event_id)).collect();
        let claims = futures_util::future::join_all(
            keys.iter()
                .map(|key| self.inner.cache.set_if_absent(key, PENDING, pending_ttl)),
        )
        .await;
        let mut failure = None;
        let mut taken = Vec::new();
        for (event, claim) in events.into_iter().zip(claims) {
            match claim {
                Ok(true) => claimed.push(event),
                Ok(false) => taken.push(event),
                Err(e) => {
                    failure.get_or_insert(unavailable(e));
                }
            }
        }
        if failure.is_none() && !taken.is_empty() {
            let keys: Vec<String> = taken.iter().map(|e| dedupe_key(&e.event_id)).collect();
            match self.inner.cache.get_many(&keys).await {
                Ok(values) => {
                    for (event, value) in taken.iter().zip(values) {
                        if value.as_deref() == Some(DONE) {
                            duplicates += 1;
                        } else {
                            failure.get_or_insert(Refusal::Unavailable(format!(
                                "event {} is being published by another request",
                                event.event_id
                            )));
                        }
                    }
                }
                Err(e) => {
                    failure.get_or_insert(unavailable(e));
                }
            }
        }
        if let Some(refusal) = failure {
            self.release(&claimed).await;
            return Err(refusal);
        }
        let results = futures_util::future::join_all(claimed.iter().map(|e| self.publish(e))).await;
        let mut published = Vec::new();
        let mut failed = Vec::new();
        let mut error = None;
        for (event, result) in claimed.into_iter().zip(results) {
            match result {
                Ok(()) => published.push(event),
                Err(e) => {
                    error.get_or_insert(e);
                    failed.push(event);
                }
            }
        }
        let done_ttl = Some(Duration::from_secs(self.inner.config.dedupe_ttl_s));
        let marks: Vec<(String, Vec<u8>)> = published
            .iter()
            .map(|e| (dedupe_key(&e.event_id), DONE.to_vec()))
            .collect();
        if let Err(e) = self.inner.cache.set_many(&marks, done_ttl).await {
            // Published all the same: a retry after the claim expires is dropped by the store.
            tracing::warn!(error = %e, "cannot mark published events as done");
        }
        m.events
            .with_label_values(&[provider, "published"])
            .inc_by(published.len() as u64);
        m.events
            .with_label_values(&[provider, "duplicate"])
            .inc_by(duplicates);
        m.events
            .with_label_values(&[provider, "unmatched"])
            .inc_by(unmatched);
        m.events
            .with_label_values(&[provider, "ignored"])
            .inc_by(ignored);
        if let Some(e) = error {
            self.release(&failed).await;
            return Err(Refusal::Unavailable(e));
        }
        Ok(json!({
            "published": published.len(),
            "duplicates": duplicates,
            "unmatched": unmatched,
            "ignored": ignored,
        }))
    }

    async fn publish(&self, event: &EventMessage) -> Result<(), String> {
        let envelope = Envelope::new(
            derive_id(&["event", &event.event_id]),
            EVENTS_CAMPAIGN,
            event,
        );
        let body = serde_json::to_vec(&envelope).map_err(|e| e.to_string())?;
        self.inner
            .transport
            .publish(
                queues::EVENTS,
                Publish {
                    id: envelope.id.clone(),
                    body,
                    delay: None,
                },
            )
            .await
            .map_err(|e| e.to_string())
    }

    /// Drops the claims of events that were not published, so a retry may take them.
    async fn release(&self, events: &[EventMessage]) {
        for event in events {
            let _ = self.inner.cache.delete(&dedupe_key(&event.event_id)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_message_ids_have_one_shape() {
        assert!(is_our_message_id(&cpo_shared::envelope::message_id(
            "c", "1"
        )));
        assert!(!is_our_message_id("msg-123"));
        assert!(!is_our_message_id("<abc@mail.example>"));
    }

    #[test]
    fn unknown_types_are_refused_known_ones_ignored() {
        let raw = serde_json::json!({});
        let unknown = item(
            "sendgrid",
            Ok(Parsed::Ignored("sendgrid `exploded`".into())),
            &raw,
            Some(2),
        );
        assert!(matches!(
            unknown,
            Err(Refusal::Unprocessable {
                reason: "unknown_type",
                ..
            })
        ));
        let known = item(
            "sendgrid",
            Ok(Parsed::Ignored("sendgrid `processed`".into())),
            &raw,
            None,
        );
        assert!(matches!(known, Ok(Item::Ignored)));
        let soft = item(
            "ses",
            Ok(Parsed::Ignored("ses Transient bounce".into())),
            &raw,
            None,
        );
        assert!(matches!(soft, Ok(Item::Ignored)));
        let foreign = item(
            "sendgrid",
            Err("sendgrid: no `message_id` custom argument".into()),
            &raw,
            None,
        );
        assert!(matches!(foreign, Ok(Item::Unmatched)));
    }
}
