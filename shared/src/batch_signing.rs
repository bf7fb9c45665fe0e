//! Send-batch signatures: experimentation signs every `SendBatch` over its
//! canonical form, delivery recomputes it and checks the signature before it
//! renders anything.
//!
//! The template approvals (`signing`) only prove that safety approved a
//! template's text. Everything else a customer sees or that decides who gets
//! it (recipients, merge values, the call-to-action link, the campaign) is
//! covered here, with a key only experimentation and delivery hold
//! (`security.batch_key`), distinct from safety's signing key.

use sha2::{Digest, Sha256};

use crate::model::{Approval, OutboundMessage, SendBatch};
use crate::signing::Signer;

/// The fields of one message that go into the batch hash, borrowed so that
/// experimentation (which serializes borrowed mirrors) and delivery (which
/// decodes the owned model) feed the same canonical form.
#[derive(Debug, Clone, Copy)]
pub struct MessageFields<'a> {
    pub message_id: &'a str,
    pub customer_id: &'a str,
    pub email: &'a str,
    pub first_name: &'a str,
    pub location: &'a str,
    pub tier: &'a str,
    pub segment: &'a str,
    pub arm: &'a str,
    pub variant_id: &'a str,
    pub fallback: Option<&'a str>,
}

impl<'a> MessageFields<'a> {
    pub fn of(message: &'a OutboundMessage) -> Self {
        let r = &message.recipient;
        Self {
            message_id: &message.message_id,
            customer_id: &r.customer_id,
            email: &r.email,
            first_name: &r.first_name,
            location: &r.location,
            tier: &r.tier,
            segment: &message.segment,
            arm: &message.arm,
            variant_id: &message.variant_id,
            fallback: message.fallback.as_deref(),
        }
    }
}

/// SHA-256 over the canonical form of a batch: every field length-prefixed,
/// every record and optional value tagged, so no two different batches (or
/// a field moved from one message to the next) hash alike.
/// Feed the templates first, then the messages, each in batch order.
pub struct BatchHasher {
    hasher: Sha256,
}

impl BatchHasher {
    pub fn new(campaign_id: &str, batch_seq: u64, call_to_action_url: Option<&str>) -> Self {
        let mut this = Self {
            hasher: Sha256::new(),
        };
        this.field(b"cpo-send-batch-v1");
        this.field(campaign_id.as_bytes());
        this.field(&batch_seq.to_le_bytes());
        this.optional(call_to_action_url);
        this
    }

    fn field(&mut self, bytes: &[u8]) {
        self.hasher.update((bytes.len() as u64).to_le_bytes());
        self.hasher.update(bytes);
    }

    fn optional(&mut self, value: Option<&str>) {
        match value {
            None => self.field(b"-"),
            Some(value) => {
                self.field(b"+");
                self.field(value.as_bytes());
            }
        }
    }

    /// A template, by its approval: delivery checks separately that the
    /// approval's hash is the hash of the template's content.
    pub fn template(&mut self, variant_id: &str, approval: &Approval) {
        self.field(b"template");
        self.field(variant_id.as_bytes());
        self.field(approval.content_hash.as_bytes());
        self.field(approval.signature.as_bytes());
    }

    pub fn message(&mut self, m: &MessageFields<'_>) {
        self.field(b"message");
        for value in [
            m.message_id,
            m.customer_id,
            m.email,
            m.first_name,
            m.location,
            m.tier,
            m.segment,
            m.arm,
            m.variant_id,
        ] {
            self.field(value.as_bytes());
        }
        self.optional(m.fallback);
    }

    pub fn finish(self) -> String {
        hex::encode(self.hasher.finalize())
    }
}

/// The canonical hash of an owned batch (its `signature` is not part of it).
pub fn batch_hash(batch: &SendBatch) -> String {
    let mut hasher = BatchHasher::new(
        &batch.campaign_id,
        batch.batch_seq,
        batch.call_to_action_url.as_deref(),
    );
    for template in &batch.templates {
        hasher.template(&template.variant_id, &template.approval);
    }
    for message in &batch.messages {
        hasher.message(&MessageFields::of(message));
    }
    hasher.finish()
}

/// Set `batch.signature` to the signature of its current content.
pub fn sign_batch(signer: &Signer, batch: &mut SendBatch) {
    batch.signature = Some(signer.sign(&batch_hash(batch)));
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BatchSignatureError {
    #[error("send batch is unsigned")]
    Unsigned,
    #[error("send batch signature does not match its content (altered or forged batch)")]
    Invalid,
}

/// Fail-closed check of a batch's signature.
pub fn verify_batch(signer: &Signer, batch: &SendBatch) -> Result<(), BatchSignatureError> {
    let signature = batch
        .signature
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .ok_or(BatchSignatureError::Unsigned)?;
    if signer.verify(&batch_hash(batch), signature) {
        Ok(())
    } else {
        Err(BatchSignatureError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ApprovedTemplate, Recipient};

    fn batch() -> SendBatch {
        let message = |i: usize| OutboundMessage {
            message_id: format!("msg-{i}"),
            recipient: Recipient {
                customer_id: format!("C{i}"),
                email: format!("c{i}@example.com"),
                first_name: "Ada".into(),
                location: "Lyon".into(),
                tier: "gold".into(),
            },
            segment: "s".into(),
            arm: "control".into(),
            variant_id: "v1".into(),
            fallback: None,
        };
        SendBatch {
            campaign_id: "camp-1".into(),
            batch_seq: 3,
            call_to_action_url: Some("https://example.com/go".into()),
            templates: vec![ApprovedTemplate {
                variant_id: "v1".into(),
                subject: "Hi".into(),
                body: "Hi {{first_name}}".into(),
                citations: vec![],
                approval: Approval {
                    content_hash: "h".into(),
                    signature: "s".into(),
                },
            }],
            messages: vec![message(0), message(1)],
            signature: None,
        }
    }

    #[test]
    fn every_field_is_covered() {
        let signer = Signer::new(b"batch-key".to_vec());
        let mut signed = batch();
        assert_eq!(
            verify_batch(&signer, &signed),
            Err(BatchSignatureError::Unsigned)
        );
        sign_batch(&signer, &mut signed);
        assert_eq!(verify_batch(&signer, &signed), Ok(()));
        assert_eq!(
            verify_batch(&Signer::new(b"other".to_vec()), &signed),
            Err(BatchSignatureError::Invalid)
        );
        type Edit = fn(&mut SendBatch);
        let edits: [Edit; 16] = [
            |b| b.campaign_id.push('x'),
            |b| b.batch_seq += 1,
            |b| b.call_to_action_url = Some("https://evil.example/phish".into()),
            |b| b.call_to_action_url = None,
            |b| b.templates[0].approval.content_hash.push('x'),
            |b| b.templates[0].variant_id.push('x'),
            |b| b.messages[0].recipient.email = "attacker@evil.example".into(),
            |b| b.messages[0].recipient.first_name = "Fuck you, idiot".into(),
            |b| b.messages[1].recipient.location.push('x'),
            |b| b.messages[1].recipient.tier.push('x'),
            |b| b.messages[1].recipient.customer_id.push('x'),
            |b| b.messages[1].message_id.push('x'),
            |b| b.messages[1].arm = "urgent".into(),
            |b| b.messages[1].fallback = Some(String::new()),
            |b| b.messages.truncate(1),
            |b| b.messages.swap(0, 1),
        ];
        for (i, edit) in edits.iter().enumerate() {
            let mut altered = signed.clone();
            edit(&mut altered);
            assert_eq!(
                verify_batch(&signer, &altered),
                Err(BatchSignatureError::Invalid),
                "edit {i} went unnoticed"
            );
        }
        // a value moved across a field boundary changes the hash too
        let mut moved = signed.clone();
        moved.messages[0].recipient.first_name = "AdaLyon".into();
        moved.messages[0].recipient.location = String::new();
        assert_eq!(
            verify_batch(&signer, &moved),
            Err(BatchSignatureError::Invalid)
        );
    }
}
