//! Builders and test doubles shared by the crate-level tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use cpo_delivery::{
    DeliveryBackends, DeliveryConfig, DeliveryStage, FileOutbox, OutboxEntry, OutboxSink, SinkError,
};
use cpo_shared::audit::{AuditError, AuditSink, MemoryAuditLog};
use cpo_shared::dead_letter::DeadLetter;
use cpo_shared::envelope::message_id;
use cpo_shared::model::{
    Approval, ApprovedTemplate, OutboundMessage, OutboxRecord, Recipient, SendBatch,
};
use cpo_shared::privacy::Pseudonymizer;
use cpo_shared::signing::{Signer, content_hash};
use cpo_shared::transport::MemoryTransport;
use cpo_shared::{Emitter, Envelope, Stage, StageError, queues};

pub const KEY: &[u8] = b"approval-key";
/// Experimentation's send-batch key, shared with delivery only.
pub const BATCH_KEY: &[u8] = b"batch-key";

pub fn batch_signer() -> Signer {
    Signer::new(BATCH_KEY.to_vec())
}

/// Sign a batch as experimentation does, over its current content.
pub fn sign(batch: &mut Envelope<SendBatch>) {
    cpo_shared::batch_signing::sign_batch(&batch_signer(), &mut batch.payload);
}

pub fn template(variant_id: &str, subject: &str, body: &str) -> ApprovedTemplate {
    let citations = vec!["doc-1".to_string(), "doc-2".to_string()];
    let hash = content_hash(variant_id, subject, body, &citations);
    ApprovedTemplate {
        variant_id: variant_id.into(),
        subject: subject.into(),
        body: body.into(),
        citations,
        approval: Approval {
            signature: Signer::new(KEY.to_vec()).sign(&hash),
            content_hash: hash,
        },
    }
}

pub fn standard_template() -> ApprovedTemplate {
    template(
        "v-urgent",
        "{{first_name}}: last days",
        "Hi {{ first_name }},\nour {{tier}} offer for {{location}} ends soon [doc-1][doc-2].\n{{cta_url}}",
    )
}

pub fn message(customer: usize, template: &ApprovedTemplate) -> OutboundMessage {
    let customer_id = format!("C{customer:05}");
    OutboundMessage {
        message_id: message_id("camp-1", &customer_id),
        recipient: Recipient {
            customer_id,
            email: format!("person{customer}@example.com"),
            first_name: format!("Name{customer}"),
            location: "Lyon".into(),
            tier: "gold".into(),
        },
        segment: "loyal".into(),
        arm: "urgent".into(),
        variant_id: template.variant_id.clone(),
        fallback: None,
    }
}

/// Point message `index` at a copy of the standard template under its own
/// variant id (`v-own-<index>`), signed, then changed by `tamper`.
pub fn own_template(
    batch: &mut Envelope<SendBatch>,
    index: usize,
    tamper: impl FnOnce(&mut ApprovedTemplate),
) {
    let standard = standard_template();
    let mut own = template(&format!("v-own-{index}"), &standard.subject, &standard.body);
    tamper(&mut own);
    batch.payload.messages[index].variant_id = own.variant_id.clone();
    batch.payload.templates.push(own);
}

pub fn batch(seq: u64, customers: std::ops::Range<usize>) -> Envelope<SendBatch> {
    let template = standard_template();
    Envelope::new(
        format!("send-{seq}"),
        "camp-1",
        SendBatch {
            campaign_id: "camp-1".into(),
            batch_seq: seq,
            call_to_action_url: Some("https://example.com/go".into()),
            messages: customers.map(|c| message(c, &template)).collect(),
            templates: vec![template],
            signature: None,
        },
    )
}

pub use cpo_shared::cache::FlakyCache;

/// An audit log that fails while `down` is set.
#[derive(Default)]
pub struct FlakyAudit {
    pub inner: MemoryAuditLog,
    pub down: AtomicBool,
}

impl AuditSink for FlakyAudit {
    fn append(&self, event: &serde_json::Value) -> Result<(), AuditError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(AuditError::Io(std::io::Error::other("audit disk full")));
        }
        self.inner.append(event)
    }
}

/// A sink that fails while `down` is set and otherwise writes to a file outbox.
pub struct FlakySink {
    pub inner: FileOutbox,
    pub down: AtomicBool,
}

#[async_trait]
impl OutboxSink for FlakySink {
    async fn write_batch(&self, entries: &[OutboxEntry<'_>]) -> Result<usize, SinkError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(SinkError::Io(std::io::Error::other("disk full")));
        }
        self.inner.write_batch(entries).await
    }
}

pub struct Harness {
    pub _dir: tempfile::TempDir,
    pub outbox: PathBuf,
    pub cache: Arc<FlakyCache>,
    pub sink: Arc<FlakySink>,
    pub audit: Arc<FlakyAudit>,
    pub transport: MemoryTransport,
    pub stage: DeliveryStage,
}

impl Harness {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let outbox = dir.path().join("outbox.jsonl");
        let cache = Arc::new(FlakyCache::default());
        let sink = Arc::new(FlakySink {
            inner: FileOutbox::create(&outbox).unwrap(),
            down: AtomicBool::new(false),
        });
        let audit = Arc::new(FlakyAudit::default());
        let stage = DeliveryStage::new(
            DeliveryConfig::default(),
            DeliveryBackends {
                signer: Signer::new(KEY.to_vec()),
                batch_signer: batch_signer(),
                cache: cache.clone(),
                sink: sink.clone(),
                audit: audit.clone(),
                pseudonymizer: Pseudonymizer::new(b"pseudonym-key".to_vec()),
            },
        );
        Self {
            _dir: dir,
            outbox,
            cache,
            sink,
            audit,
            transport: MemoryTransport::new(64),
            stage,
        }
    }

    /// Deliver `batch` signed as experimentation would sign it (the tests build
    /// batches, then change them, as a faulty producer upstream of the signature would).
    pub async fn deliver(&self, mut batch: Envelope<SendBatch>) -> Result<(), StageError> {
        sign(&mut batch);
        self.deliver_as_is(batch).await
    }

    /// Deliver `batch` with whatever signature it carries (none, stale, forged).
    pub async fn deliver_as_is(&self, batch: Envelope<SendBatch>) -> Result<(), StageError> {
        let emit = Emitter::new(Arc::new(self.transport.clone()), "delivery", queues::SEND);
        let outputs = self.stage.handle(batch, &emit).await?;
        assert!(outputs.is_empty(), "delivery publishes nothing onward");
        Ok(())
    }

    pub fn records(&self) -> Vec<OutboxRecord> {
        read_records(&self.outbox)
    }

    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.transport
            .peek(queues::DEAD_LETTER)
            .iter()
            .map(|body| serde_json::from_slice(body).unwrap())
            .collect()
    }

    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        self.audit.inner.events.lock().unwrap().clone()
    }

    /// Every send the audit trail lists, across its batch records.
    pub fn audited_sends(&self) -> Vec<cpo_delivery::AuditedSend> {
        self.audit_events()
            .iter()
            .flat_map(cpo_delivery::audited_sends)
            .collect()
    }
}

pub fn read_records(path: &Path) -> Vec<OutboxRecord> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}
