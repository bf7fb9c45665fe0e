//! Builders and test doubles shared by the crate-level tests.
#![allow(dead_code)]

pub mod pg;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use cpo_delivery::compose::Composer;
use cpo_delivery::config::RetryConfig;
use cpo_delivery::{
    DeliveryBackends, DeliveryConfig, DeliveryStage, FileOutbox, MailSink, Mailbox, MessageMeta,
    OutgoingEmail, SendOutcome,
};
use cpo_shared::audit::{AuditError, AuditSink, MemoryAuditLog};
use cpo_shared::dead_letter::DeadLetter;
use cpo_shared::envelope::message_id;
use cpo_shared::model::{
    Approval, ApprovedTemplate, OutboundMessage, OutboxRecord, Recipient, SendBatch,
};
use cpo_shared::privacy::AddressHasher;
use cpo_shared::privacy::Pseudonymizer;
use cpo_shared::rate_limit::{MemoryRateLimiter, RateLimiter};
use cpo_shared::signing::{Signer, content_hash};
use cpo_shared::store::{Store, StoreConfig};
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

/// The test's mail provider: records every call, writes what it accepts to a
/// file outbox, and answers from a script per address (then `Sent`), or
/// `Retry` for everything while `down` is set.
pub struct TestSink {
    pub inner: FileOutbox,
    pub down: AtomicBool,
    /// Never answer (a worker killed mid-send): the call hangs.
    pub hang: AtomicBool,
    pub script: Mutex<HashMap<String, VecDeque<SendOutcome>>>,
    /// Message ids of each call, and when it was made.
    pub calls: Mutex<Vec<(Instant, Vec<String>)>>,
    pub max_batch: usize,
}

impl TestSink {
    pub fn new(outbox: &Path) -> Self {
        Self {
            inner: FileOutbox::create(outbox).unwrap(),
            down: AtomicBool::new(false),
            hang: AtomicBool::new(false),
            script: Mutex::default(),
            calls: Mutex::default(),
            max_batch: usize::MAX,
        }
    }

    /// Answer `outcomes` (in order) for `address`, then send.
    pub fn answer(&self, address: &str, outcomes: Vec<SendOutcome>) {
        self.script
            .lock()
            .unwrap()
            .insert(address.to_string(), outcomes.into());
    }

    /// How many times each message id was handed to the provider.
    pub fn handed(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for (_, ids) in self.calls.lock().unwrap().iter() {
            for id in ids {
                *counts.entry(id.clone()).or_insert(0) += 1;
            }
        }
        counts
    }
}

#[async_trait]
impl MailSink for TestSink {
    fn name(&self) -> &'static str {
        "smtp"
    }

    fn max_batch(&self) -> usize {
        self.max_batch
    }

    async fn send(&self, _emails: &[OutgoingEmail]) -> Vec<SendOutcome> {
        unreachable!("the stage calls send_with_meta")
    }

    async fn send_with_meta(
        &self,
        emails: &[OutgoingEmail],
        meta: &[MessageMeta<'_>],
    ) -> Vec<SendOutcome> {
        self.calls.lock().unwrap().push((
            Instant::now(),
            emails.iter().map(|e| e.message_id.clone()).collect(),
        ));
        if self.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if self.down.load(Ordering::SeqCst) {
            return emails
                .iter()
                .map(|_| SendOutcome::Retry {
                    after: None,
                    reason: "421 service not available".into(),
                })
                .collect();
        }
        let mut answers = Vec::with_capacity(emails.len());
        let mut accepted = Vec::new();
        for (i, email) in emails.iter().enumerate() {
            let scripted = self
                .script
                .lock()
                .unwrap()
                .get_mut(&email.to.address)
                .and_then(VecDeque::pop_front);
            match scripted {
                Some(answer) => answers.push(answer),
                None => {
                    accepted.push(i);
                    answers.push(SendOutcome::Sent {
                        provider_message_id: format!("prov-{}", email.message_id),
                    });
                }
            }
        }
        let emails: Vec<OutgoingEmail> = accepted.iter().map(|&i| emails[i].clone()).collect();
        let meta: Vec<MessageMeta<'_>> = accepted.iter().map(|&i| meta[i]).collect();
        for outcome in self.inner.send_with_meta(&emails, &meta).await {
            assert!(matches!(outcome, SendOutcome::Sent { .. }), "{outcome:?}");
        }
        answers
    }
}

/// Fast retries, so tests of waiting take milliseconds.
pub fn test_config() -> DeliveryConfig {
    DeliveryConfig {
        retry: RetryConfig {
            initial_ms: 5,
            max_ms: 40,
            hold_ms: 300,
        },
        ..DeliveryConfig::default()
    }
}

pub const ADDRESS_KEY: &[u8] = b"address-key";

pub async fn sqlite_store(dir: &Path, name: &str) -> Arc<dyn Store> {
    cpo_shared::store::connect(&StoreConfig {
        url: format!("sqlite://{}", dir.join(name).display()),
        ..StoreConfig::default()
    })
    .await
    .unwrap()
}

pub struct Harness {
    pub _dir: tempfile::TempDir,
    pub outbox: PathBuf,
    pub store: Arc<dyn Store>,
    pub sink: Arc<TestSink>,
    pub audit: Arc<FlakyAudit>,
    pub transport: MemoryTransport,
    pub stage: DeliveryStage,
}

impl Harness {
    /// A stage on a real SQLite store of its own and the test sink.
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(dir.path(), "cpo.sqlite").await;
        Self::on(
            dir,
            store,
            test_config(),
            Arc::new(MemoryRateLimiter::new(&Default::default())),
        )
    }

    pub fn on(
        dir: tempfile::TempDir,
        store: Arc<dyn Store>,
        config: DeliveryConfig,
        limiter: Arc<dyn RateLimiter>,
    ) -> Self {
        let outbox = dir.path().join("outbox.jsonl");
        let sink = Arc::new(TestSink::new(&outbox));
        let audit = Arc::new(FlakyAudit::default());
        let stage = stage_on(&store, sink.clone(), audit.clone(), config, limiter);
        Self {
            _dir: dir,
            outbox,
            store,
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
        deliver_with(&self.stage, &self.transport, batch)
            .await
            .map(|_| ())
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

/// The stage with the test keys on `store` (send records and suppressions).
pub fn stage_on(
    store: &Arc<dyn Store>,
    sink: Arc<dyn MailSink>,
    audit: Arc<dyn AuditSink>,
    config: DeliveryConfig,
    limiter: Arc<dyn RateLimiter>,
) -> DeliveryStage {
    DeliveryStage::new(
        config,
        DeliveryBackends {
            signer: Signer::new(KEY.to_vec()),
            batch_signer: batch_signer(),
            store: store.clone(),
            record: store.clone(),
            sink,
            limiter,
            composer: Composer::new(Mailbox {
                name: Some("Northwind".into()),
                address: "news@northwind.example".into(),
            })
            .unwrap(),
            address_hasher: AddressHasher::new(ADDRESS_KEY),
            audit,
            pseudonymizer: Pseudonymizer::new(b"pseudonym-key".to_vec()),
        },
    )
}

/// Handle `batch` once, as the runtime would, and return the progress it counted.
pub async fn deliver_with(
    stage: &DeliveryStage,
    transport: &MemoryTransport,
    batch: Envelope<SendBatch>,
) -> Result<HashMap<String, i64>, StageError> {
    let emit = Emitter::new(Arc::new(transport.clone()), "delivery", queues::SEND);
    let outputs = stage.handle(batch, &emit).await?;
    assert!(outputs.is_empty(), "delivery publishes nothing onward");
    Ok(emit.take_counts().add.into_iter().collect())
}

pub fn read_records(path: &Path) -> Vec<OutboxRecord> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}
