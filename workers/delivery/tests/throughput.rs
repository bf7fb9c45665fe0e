//! Throughput of experimentation + delivery on 1M customers (1000 batches of
//! 1000), decoding (with each stage's `decode`) and encoding as the runtime
//! would. Ignored by default; run in release:
//! `cargo test --release -p cpo-delivery --test throughput -- --ignored --nocapture`

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cpo_delivery::compose::Composer;
use cpo_delivery::{
    DeliveryBackends, DeliveryConfig, DeliveryStage, FileOutbox, Mailbox, canonicalize_outbox,
};
use cpo_experimentation::{ExperimentationConfig, ExperimentationStage};
use cpo_shared::audit::{AuditKey, FileAuditLog, FileHead};
use cpo_shared::model::{
    Approval, CampaignContext, CategorySeverities, Customer, CustomerBatch, Decision,
    ExperimentInput, SafetyVerdict, SegmentedCustomer, Variant, VariantDecision,
};
use cpo_shared::privacy::{AddressHasher, Pseudonymizer};
use cpo_shared::rate_limit::MemoryRateLimiter;
use cpo_shared::signing::{Signer, content_hash};
use cpo_shared::transport::MemoryTransport;
use cpo_shared::{Emitter, Envelope, Stage, queues};

const SEGMENTS: [&str; 4] = ["loyal", "lapsed", "new", "vip"];
const ARMS: [&str; 4] = ["control", "urgent", "informational", "friendly"];

fn campaign() -> CampaignContext {
    CampaignContext {
        campaign_id: "camp-bench".into(),
        name: "Bench".into(),
        objective: "throughput".into(),
        call_to_action_url: Some("https://example.com/offer?utm=bench".into()),
        tones: ARMS[1..].iter().map(|t| t.to_string()).collect(),
        arm_weights: Default::default(),
    }
}

fn decision(signer: &Signer, segment: &str, arm: &str) -> VariantDecision {
    let variant = Variant {
        variant_id: format!("v-{segment}-{arm}"),
        campaign_id: "camp-bench".into(),
        segment: segment.into(),
        arm: arm.into(),
        subject: format!("{{{{first_name}}}}, a {arm} note for {segment} customers"),
        body: format!(
            "Hi {{{{ first_name }}}},\n\nAs one of our {{{{tier}}}} customers in {{{{location}}}}, \
             you can now use our new loyalty programme [doc-1]. Shipping is free this month \
             [doc-2], and returns stay easy [doc-3]. This is the {arm} version.\n\n{{{{cta_url}}}}\n"
        ),
        citations: vec!["doc-1".into(), "doc-2".into(), "doc-3".into()],
        snippets: Vec::new(),
        variants_in_segment: 4,
        segments_total: 4,
        generator: "offline".into(),
    };
    let hash = content_hash(
        &variant.variant_id,
        &variant.subject,
        &variant.body,
        &variant.citations,
    );
    // one blocked treatment, so fallbacks are exercised
    let approved = !(segment == "new" && arm == "urgent");
    VariantDecision {
        verdict: SafetyVerdict {
            variant_id: variant.variant_id.clone(),
            decision: if approved {
                Decision::Approved
            } else {
                Decision::Blocked
            },
            categories: CategorySeverities::default(),
            reasons: if approved {
                vec![]
            } else {
                vec!["brand policy".into()]
            },
            content_hash: hash.clone(),
            screened_by: "embedded".into(),
        },
        approval: approved.then(|| Approval {
            signature: signer.sign(&hash),
            content_hash: hash,
        }),
        variant,
    }
}

fn customer_batch(seq: u64, size: usize) -> Vec<u8> {
    let batch = CustomerBatch {
        campaign: campaign(),
        batch_seq: seq,
        customers: (0..size)
            .map(|i| {
                let n = seq as usize * size + i;
                SegmentedCustomer {
                    segment: SEGMENTS[n % SEGMENTS.len()].into(),
                    customer: Customer {
                        customer_id: format!("CUST{n:08}"),
                        first_name: "Alexandra".into(),
                        email: format!("customer{n}@example.com"),
                        age: 35,
                        location: "Amsterdam".into(),
                        tier: "gold".into(),
                        purchase_frequency: 4,
                        avg_order_value: 80.0,
                        last_engagement_days: 12,
                        historical_open_rate: 0.3,
                        historical_click_rate: 0.08,
                        consent: true,
                    },
                }
            })
            .collect(),
    };
    serde_json::to_vec(&Envelope::new(format!("b{seq}"), "camp-bench", batch)).unwrap()
}

/// CPU time of this thread (Linux), so a busy machine does not inflate the numbers.
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

/// CPU time of the whole process (Linux, clock ticks), for a section that
/// runs threads of its own (the canonical merge of a large outbox).
fn process_cpu() -> Duration {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // utime and stime are fields 14 and 15; the command name may hold spaces
            let fields: Vec<u64> = s
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .skip(11)
                .take(2)
                .map(|f| f.parse().ok())
                .collect::<Option<_>>()?;
            Some(Duration::from_millis(fields.iter().sum::<u64>() * 10))
        })
        .unwrap_or_default()
}

/// Wall and CPU time spent in the measured sections.
#[derive(Default)]
struct Clock {
    wall: Duration,
    cpu: Duration,
}

impl Clock {
    fn time<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let (wall, cpu) = (Instant::now(), thread_cpu());
        let result = f();
        self.wall += wall.elapsed();
        self.cpu += thread_cpu().saturating_sub(cpu);
        result
    }

    async fn time_async<R>(&mut self, f: impl std::future::Future<Output = R>) -> R {
        let (wall, cpu) = (Instant::now(), thread_cpu());
        let result = f.await;
        self.wall += wall.elapsed();
        self.cpu += thread_cpu().saturating_sub(cpu);
        result
    }
}

impl std::fmt::Display for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.2?} wall, {:.2?} cpu", self.wall, self.cpu)
    }
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "throughput check; run in release with --ignored"]
async fn one_million_customers_through_experimentation_and_delivery() {
    // CPO_BENCH_BATCHES runs a shorter version (profiling).
    let batches: u64 = std::env::var("CPO_BENCH_BATCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let size = 1000usize;
    let signer = Signer::new(b"bench-key".to_vec());
    let dir = tempfile::tempdir().unwrap();
    let outbox_path = dir.path().join("outbox.jsonl");
    let transport = MemoryTransport::new(1 << 20);
    let emit = |queue| Emitter::new(Arc::new(transport.clone()), "bench", queue);

    let batch_signer = Signer::new(b"bench-batch-key".to_vec());
    let experimentation = ExperimentationStage::new(
        ExperimentationConfig::default(),
        Arc::new(cpo_shared::cache::MemoryCache::new()),
        batch_signer.clone(),
    )
    .unwrap();
    for segment in SEGMENTS {
        for arm in ARMS {
            let d = Envelope::new(
                "d",
                "camp-bench",
                ExperimentInput::Decision(decision(&signer, segment, arm)),
            );
            experimentation
                .handle(d, &emit(queues::DECISIONS))
                .await
                .unwrap();
        }
    }
    let audit_path = dir.path().join("audit.jsonl");
    let audit = Arc::new(
        FileAuditLog::open(
            &audit_path,
            AuditKey::new(b"throughput".to_vec()),
            Box::new(FileHead::beside(&audit_path)),
        )
        .unwrap(),
    );
    // A run's send records, in SQLite as `cpo run` keeps them.
    let sends = cpo_shared::store::connect(&cpo_shared::store::StoreConfig {
        url: format!("sqlite://{}", dir.path().join("sends.sqlite").display()),
        ..Default::default()
    })
    .await
    .unwrap();
    let delivery = DeliveryStage::new(
        DeliveryConfig::default(),
        DeliveryBackends {
            signer: signer.clone(),
            batch_signer,
            store: sends.clone(),
            record: sends,
            sink: Arc::new(FileOutbox::create(&outbox_path).unwrap()),
            limiter: Arc::new(MemoryRateLimiter::new(&Default::default())),
            composer: Composer::new(Mailbox {
                name: None,
                address: "news@bench.example".into(),
            })
            .unwrap(),
            address_hasher: AddressHasher::new(b"bench"),
            audit: audit.clone(),
            pseudonymizer: Pseudonymizer::new(b"pseudonym".to_vec()),
        },
    );

    // Decoding is timed apart: the runtime does it, not the stage.
    let (mut decode_audience, mut decode_send) = (Clock::default(), Clock::default());
    let (mut experiment, mut deliver, mut canonical) =
        (Clock::default(), Clock::default(), Clock::default());
    for seq in 0..batches {
        let raw = customer_batch(seq, size);
        let input =
            decode_audience.time(|| experimentation.decode(queues::AUDIENCE, &raw).unwrap());
        let outputs = experiment
            .time_async(experimentation.handle(input, &emit(queues::AUDIENCE)))
            .await
            .unwrap();
        let send = outputs
            .into_iter()
            .find(|o| o.queue == queues::SEND)
            .unwrap();
        let input = decode_send.time(|| delivery.decode(queues::SEND, &send.body).unwrap());
        deliver
            .time_async(delivery.handle(input, &emit(queues::SEND)))
            .await
            .unwrap();
    }
    audit.flush().unwrap();
    // The merge of a large outbox runs on two threads: count the process.
    let (wall, cpu) = (Instant::now(), process_cpu());
    canonicalize_outbox(&outbox_path).unwrap();
    canonical.wall += wall.elapsed();
    canonical.cpu += process_cpu().saturating_sub(cpu);

    // counted streaming: the outbox of 1M messages is ~450 MB
    let lines = BufReader::new(File::open(&outbox_path).unwrap())
        .lines()
        .count();
    println!("{lines} messages");
    println!("decode audience   {decode_audience}");
    println!("decode send       {decode_send}");
    println!("experimentation   {experiment}");
    println!("delivery          {deliver}");
    println!("canonicalize      {canonical}");
    assert_eq!(lines, batches as usize * size);
    assert!(transport.peek(queues::DEAD_LETTER).is_empty());
}
