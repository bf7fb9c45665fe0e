//! cpo delivery stage: the last gate before a customer's inbox.
//!
//! It consumes `send` (one `SendBatch` per customer batch). For each message it
//! re-checks safety's signed approval against the exact content (anything
//! unsigned or altered is dead-lettered on its own while the rest of the batch
//! goes on), renders the merge fields with a single-pass renderer that cannot
//! execute template logic, and looks up the messages' send records in the
//! store (one query per batch): a message already `sent` is never sent again,
//! one claimed by a worker that died is resolved by `delivery.on_unconfirmed`.
//! It re-checks suppressions right before the send, claims each send (a
//! lease), composes the email, takes the shared rate limit right before each
//! provider call, sends through the configured `MailSink` (`outbox`, `smtp`,
//! `sendgrid`, `ses`, `mailgun`), retries what the provider asks to retry
//! (never skipping it), records `sent` (provider id) or `failed` (reason),
//! and appends one audit record per batch listing every send (customer ids
//! pseudonymized). `canonicalize_outbox` sorts a finished outbox so runs
//! compare byte for byte.
//!
//! Mail: `compose::Composer` turns a rendered message into an `OutgoingEmail`
//! (headers, unsubscribe headers, the text part and the HTML layout of
//! `data/templates/`, citations as footnotes); `smtp::SmtpSink` sends it with
//! lettre; `dkim` signs it; `eml` writes it as an .eml file.

pub mod audit;
pub mod canonical;
pub mod compose;
pub mod config;
pub mod dkim;
pub mod eml;
pub mod esp;
pub mod json_text;
pub mod mail_config;
mod metrics;
pub mod outbox;
pub mod prepare;
pub mod render;
mod sending;
pub mod sink;
pub mod smtp;
pub mod stage;
#[cfg(feature = "test-util")]
pub mod test_smtp;
pub mod triage;
pub mod verify;

pub use audit::{AuditedSend, SEND_BATCH_EVENT, audited_sends};
pub use canonical::canonicalize_outbox;
pub use config::DeliveryConfig;
pub use config::{OnUnconfirmed, SinkKind};
pub use json_text::JsonText;
pub use outbox::{FileOutbox, OutboxEntry, SinkError};
pub use sink::{MailSink, Mailbox, MessageMeta, OutgoingEmail, SendOutcome};
pub use stage::{DeliveryBackends, DeliveryStage};

#[cfg(test)]
pub(crate) mod tests {
    use cpo_shared::envelope::message_id;
    use cpo_shared::model::{Approval, ApprovedTemplate, OutboundMessage, Recipient, SendBatch};
    use cpo_shared::signing::{Signer, content_hash};

    pub(crate) fn signer() -> Signer {
        Signer::new(b"delivery-test-key".to_vec())
    }

    /// A signed template under `variant_id`.
    pub(crate) fn template(variant_id: &str) -> ApprovedTemplate {
        let citations = vec!["doc-1".to_string()];
        let subject = "{{first_name}}, spring news".to_string();
        let body =
            "Hi {{ first_name }} from {{location}} ({{tier}}) [doc-1]. {{cta_url}}".to_string();
        let hash = content_hash(variant_id, &subject, &body, &citations);
        ApprovedTemplate {
            variant_id: variant_id.into(),
            subject,
            body,
            citations,
            approval: Approval {
                signature: signer().sign(&hash),
                content_hash: hash,
            },
        }
    }

    /// Point message `index` at a template of its own (variant `v-own-<index>`,
    /// signed, then changed by `tamper`).
    pub(crate) fn own_template(
        batch: &mut SendBatch,
        index: usize,
        tamper: impl FnOnce(&mut ApprovedTemplate),
    ) {
        let mut own = template(&format!("v-own-{index}"));
        tamper(&mut own);
        batch.messages[index].variant_id = own.variant_id.clone();
        batch.templates.push(own);
    }

    /// A batch of `n` valid, signed messages for customers C0..Cn.
    pub(crate) fn batch(n: usize) -> SendBatch {
        SendBatch {
            campaign_id: "camp-1".into(),
            batch_seq: 0,
            call_to_action_url: Some("https://example.com/spring".into()),
            templates: vec![template("v-control")],
            messages: (0..n)
                .map(|i| {
                    let customer_id = format!("C{i}");
                    OutboundMessage {
                        message_id: message_id("camp-1", &customer_id),
                        recipient: Recipient {
                            customer_id,
                            email: format!("c{i}@example.com"),
                            first_name: "Ada".into(),
                            location: "Lyon".into(),
                            tier: "gold".into(),
                        },
                        segment: "loyal".into(),
                        arm: "control".into(),
                        variant_id: "v-control".into(),
                        fallback: None,
                    }
                })
                .collect(),
            signature: None,
        }
    }
}
