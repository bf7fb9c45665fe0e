//! The stage end to end on the in-memory transport: what it publishes, in which
//! order, with which ids, and how it fails.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cpo_segmentation::{SegmentationConfig, SegmentationStage, generate_customers};
use cpo_shared::dead_letter::{DeadLetter, DeadLetterKind};
use cpo_shared::model::{
    AudienceSource, CampaignRequest, Customer, CustomerBatch, ExclusionReason, LedgerEntry,
    SegmentTask, default_tones,
};
use cpo_shared::runtime::{Runtime, RuntimeConfig};
use cpo_shared::transport::{MemoryTransport, Publish, Subscription, Transport, TransportError};
use cpo_shared::{Emitter, Envelope, Stage, StageError, queues};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

const HEADER: &str = "customer_id,first_name,email,age,location,tier,purchase_frequency,avg_order_value,last_engagement_days,historical_open_rate,historical_click_rate,consent\n";

/// Remembers the queue of every publish, in order, so cross-queue order is observable.
#[derive(Clone)]
struct Recording {
    inner: MemoryTransport,
    queues: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl Transport for Recording {
    async fn publish(&self, queue: &str, message: Publish) -> Result<(), TransportError> {
        self.queues.lock().unwrap().push(queue.to_string());
        self.inner.publish(queue, message).await
    }
    async fn subscribe(
        &self,
        queue: &str,
        prefetch: u16,
    ) -> Result<Box<dyn Subscription>, TransportError> {
        self.inner.subscribe(queue, prefetch).await
    }
}

fn request(audience: AudienceSource, suppressions: &[&str]) -> Envelope<CampaignRequest> {
    let payload = CampaignRequest {
        campaign_id: "spring".into(),
        name: "Spring launch".into(),
        objective: "introduce the spring collection".into(),
        call_to_action_url: None,
        tones: default_tones(),
        arm_weights: Default::default(),
        suppressions: suppressions.iter().map(|s| s.to_string()).collect(),
        audience,
    };
    Envelope::new("req-1", "spring", payload)
}

fn stage(batch_size: usize, data_dir: Option<&std::path::Path>) -> SegmentationStage {
    SegmentationStage::new(SegmentationConfig {
        batch_size,
        data_dir: data_dir.map(Into::into),
        rules_file: None,
        confine_audience: false,
        csv: Default::default(),
    })
    .unwrap()
}

fn decode<T: DeserializeOwned>(bodies: &[Vec<u8>]) -> Vec<Envelope<T>> {
    bodies
        .iter()
        .map(|b| serde_json::from_slice(b).unwrap())
        .collect()
}

fn sample_csv(n: u64) -> Vec<u8> {
    let mut csv = Vec::new();
    generate_customers(n, 42, &mut csv).unwrap();
    csv
}

struct Run {
    queues: Vec<String>,
    tasks: Vec<Envelope<SegmentTask>>,
    batches: Vec<Envelope<CustomerBatch>>,
    ledger: Envelope<LedgerEntry>,
}

async fn run(
    stage: &SegmentationStage,
    message: Envelope<CampaignRequest>,
) -> Result<Run, StageError> {
    let transport = Recording {
        inner: MemoryTransport::new(100_000),
        queues: Arc::default(),
    };
    let emit = Emitter::new(
        Arc::new(transport.clone()),
        "segmentation",
        queues::CAMPAIGNS,
    );
    let outputs = stage.handle(message, &emit).await?;
    assert_eq!(
        outputs.len(),
        1,
        "only the ledger entry is left for the runtime"
    );
    assert_eq!(outputs[0].queue, queues::LEDGER);
    let ledger = serde_json::from_slice(&outputs[0].body).unwrap();
    let queues = transport.queues.lock().unwrap().clone();
    Ok(Run {
        queues,
        tasks: decode(&transport.inner.peek(queues::SEGMENTS)),
        batches: decode(&transport.inner.peek(queues::AUDIENCE)),
        ledger,
    })
}

#[tokio::test]
async fn csv_audience_yields_profiles_then_batches_then_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("customers.csv"), sample_csv(2_500)).unwrap();
    let stage = stage(300, Some(dir.path()));
    let source = AudienceSource::Csv {
        path: "customers.csv".into(),
    };
    let run = run(&stage, request(source, &[])).await.unwrap();

    // Every segment task was published before the first batch.
    let first_batch = run
        .queues
        .iter()
        .position(|q| q == queues::AUDIENCE)
        .unwrap();
    let last_task = run
        .queues
        .iter()
        .rposition(|q| q == queues::SEGMENTS)
        .unwrap();
    assert!(last_task < first_batch, "{:?}", run.queues);
    assert_eq!(
        run.tasks.len(),
        5,
        "the generator populates every default segment"
    );
    assert!(run.tasks.iter().all(|t| t.payload.segments_total == 5));
    assert!(
        run.tasks
            .iter()
            .all(|t| t.payload.campaign.campaign_id == "spring")
    );

    let LedgerEntry::Audience {
        customers_total,
        segments,
        exclusions,
        batches,
    } = &run.ledger.payload
    else {
        panic!("not an audience entry: {:?}", run.ledger.payload)
    };
    let segmented: u64 = segments.iter().map(|s| s.size).sum();
    assert_eq!(*customers_total, 2_500);
    assert_eq!(*customers_total, segmented + exclusions.len() as u64);
    assert_eq!(*batches, run.batches.len() as u64);
    assert_eq!(*batches, segmented.div_ceil(300));
    assert!(
        exclusions
            .iter()
            .all(|e| e.reason == ExclusionReason::NoConsent)
    );

    // Batches are in order, full but for the last, and agree with the profiles.
    let seqs: Vec<u64> = run.batches.iter().map(|b| b.payload.batch_seq).collect();
    assert_eq!(seqs, (0..*batches).collect::<Vec<_>>());
    let sizes: Vec<usize> = run
        .batches
        .iter()
        .map(|b| b.payload.customers.len())
        .collect();
    assert!(sizes[..sizes.len() - 1].iter().all(|&n| n == 300));
    for profile in segments {
        let members = run
            .batches
            .iter()
            .flat_map(|b| &b.payload.customers)
            .filter(|c| c.segment == profile.name)
            .count() as u64;
        assert_eq!(members, profile.size, "{}", profile.name);
    }
    assert!(run.batches.iter().all(|b| b.campaign_id == "spring"));
}

#[tokio::test]
async fn a_rerun_publishes_the_same_ids_and_payloads() {
    let customers = sample_csv(700);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.csv"), &customers).unwrap();
    let stage = stage(100, Some(dir.path()));
    let source = || AudienceSource::Csv {
        path: "c.csv".into(),
    };
    let (a, b) = (
        run(&stage, request(source(), &[])).await.unwrap(),
        run(&stage, request(source(), &[])).await.unwrap(),
    );
    let key =
        |e: &Envelope<CustomerBatch>| (e.id.clone(), serde_json::to_string(&e.payload).unwrap());
    assert_eq!(
        a.batches.iter().map(key).collect::<Vec<_>>(),
        b.batches.iter().map(key).collect::<Vec<_>>()
    );
    let ids = |r: &Run| r.tasks.iter().map(|t| t.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&a), ids(&b));
    assert_eq!(a.ledger.id, b.ledger.id);
    assert_eq!(a.ledger.payload, b.ledger.payload);
    // and distinct ids within a run
    let mut batch_ids: Vec<_> = a.batches.iter().map(|e| e.id.clone()).collect();
    batch_ids.dedup();
    assert_eq!(batch_ids.len(), a.batches.len());
}

fn customer(id: &str, email: &str, consent: bool) -> Customer {
    Customer {
        customer_id: id.into(),
        first_name: "Ana".into(),
        email: email.into(),
        age: 30,
        location: "Austin".into(),
        tier: "gold".into(),
        purchase_frequency: 8,
        avg_order_value: 250.0,
        last_engagement_days: 5,
        historical_open_rate: 0.5,
        historical_click_rate: 0.2,
        consent,
    }
}

#[tokio::test]
async fn inline_audience_applies_every_exclusion() {
    let mut bad_rate = customer("C5", "e@example.com", true);
    bad_rate.historical_open_rate = 1.5;
    let customers = vec![
        customer("C1", "a@example.com", true),
        customer("C2", "b@example.com", false),
        customer("C3", "C@Example.com", true),
        customer("C1", "a@example.com", true),
        bad_rate,
        customer("C6", "f@example.com", true),
    ];
    let stage = stage(1000, None);
    let run = run(
        &stage,
        request(AudienceSource::Inline { customers }, &["c@example.com"]),
    )
    .await
    .unwrap();
    let LedgerEntry::Audience {
        customers_total,
        exclusions,
        segments,
        ..
    } = &run.ledger.payload
    else {
        panic!("not an audience entry")
    };
    assert_eq!(*customers_total, 6);
    let reasons: Vec<_> = exclusions
        .iter()
        .map(|e| (e.reason, e.detail.as_str()))
        .collect();
    assert_eq!(
        reasons,
        [
            (
                ExclusionReason::NoConsent,
                "customer 2: no marketing consent"
            ),
            (
                ExclusionReason::Suppressed,
                "customer 3: suppressed by email"
            ),
            (
                ExclusionReason::Duplicate,
                "customer 4: customer_id repeats customer 1"
            ),
            (
                ExclusionReason::Invalid,
                "customer 5: historical_open_rate: 1.5 is outside [0, 1]"
            ),
        ]
    );
    assert!(exclusions.iter().all(|e| e.line.is_none()));
    assert_eq!(segments.len(), 1);
    assert_eq!(
        (segments[0].name.as_str(), segments[0].size),
        ("High-Value Recent", 2)
    );
    let ids: Vec<_> = run.batches[0]
        .payload
        .customers
        .iter()
        .map(|c| c.customer.customer_id.as_str())
        .collect();
    assert_eq!(ids, ["C1", "C6"]);
}

#[tokio::test]
async fn malformed_csv_rows_are_reported_by_line_and_the_rest_goes_through() {
    let mut csv = HEADER.to_string();
    csv.push_str("C1,Ana,ana@example.com,34,Austin,gold,5,250.0,10,0.4,0.1,true\n");
    csv.push_str("C2,Ben,ben@example.com,40,Boston,silver,8,abc,40,0.3,0.1,yes\n");
    csv.push_str("C3,Cy,cy@example.com,29,Denver,bronze,1,20.0,3,0.2,0.05,TRUE\n");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    std::fs::write(&path, csv).unwrap();
    let source = AudienceSource::Csv {
        path: path.to_string_lossy().into_owned(),
    };
    let run = run(&stage(10, None), request(source, &[])).await.unwrap();
    let LedgerEntry::Audience { exclusions, .. } = &run.ledger.payload else {
        panic!()
    };
    assert_eq!(exclusions.len(), 1);
    assert_eq!(
        exclusions[0].detail,
        "line 3: avg_order_value: \"abc\" is not a number"
    );
    assert_eq!(exclusions[0].line, Some(3));
    let ids: Vec<_> = run.batches[0]
        .payload
        .customers
        .iter()
        .map(|c| c.customer.customer_id.as_str())
        .collect();
    assert_eq!(ids, ["C1", "C3"]);
}

#[tokio::test]
async fn a_confined_stage_refuses_an_audience_outside_its_data_dir_and_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("audiences");
    std::fs::create_dir_all(&data).unwrap();
    let outside = dir.path().join("other.csv");
    std::fs::write(&outside, "customer_id,email\nC1,a@example.com\n").unwrap();
    let stage = SegmentationStage::new(SegmentationConfig {
        batch_size: 10,
        data_dir: Some(data),
        rules_file: None,
        confine_audience: true,
        csv: Default::default(),
    })
    .unwrap();
    for path in [outside.display().to_string(), "../other.csv".to_string()] {
        let source = AudienceSource::Csv { path };
        let err = run(&stage, request(source, &[])).await.err().unwrap();
        assert!(
            matches!(&err, StageError::Permanent(m) if m.contains("not inside segmentation.data_dir")),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn a_missing_file_is_permanent_and_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let stage = stage(10, Some(dir.path()));
    let source = AudienceSource::Csv {
        path: "absent.csv".into(),
    };
    let err = run(&stage, request(source, &[])).await.err().unwrap();
    let StageError::Permanent(message) = err else {
        panic!("not permanent: {err:?}")
    };
    let expected = dir.path().join("absent.csv");
    assert!(message.contains(&*expected.to_string_lossy()), "{message}");

    let headerless = dir.path().join("noheader.csv");
    std::fs::write(&headerless, "1,2,3\n").unwrap();
    let source = AudienceSource::Csv {
        path: "noheader.csv".into(),
    };
    let err = run(&stage, request(source, &[])).await.err().unwrap();
    assert!(
        matches!(err, StageError::Permanent(ref m) if m.contains("customer_id")),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_empty_audience_still_reports_to_the_ledger() {
    let run = run(
        &stage(10, None),
        request(AudienceSource::Inline { customers: vec![] }, &[]),
    )
    .await
    .unwrap();
    assert!(run.tasks.is_empty() && run.batches.is_empty());
    assert_eq!(
        run.ledger.payload,
        LedgerEntry::Audience {
            customers_total: 0,
            segments: vec![],
            exclusions: vec![],
            batches: 0
        }
    );
}

/// Under the runtime with tiny queues: the stage waits for the consumer instead
/// of buffering the audience, and everything still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_flow_through_bounded_queues() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.csv"), sample_csv(3_000)).unwrap();
    let transport = MemoryTransport::new(2);
    let shutdown = CancellationToken::new();
    let runtime = Runtime::new(
        Arc::new(transport.clone()),
        RuntimeConfig::default(),
        shutdown.clone(),
    );
    let worker = tokio::spawn({
        let runtime = runtime.clone();
        let stage = Arc::new(stage(50, Some(dir.path())));
        async move { runtime.run(stage).await }
    });
    let received = Arc::new(AtomicU64::new(0));
    let consume = |queue: &'static str| {
        let (transport, received) = (transport.clone(), received.clone());
        tokio::spawn(async move {
            let mut sub = transport.subscribe(queue, 1).await.unwrap();
            while let Some(Ok(delivery)) = sub.next().await {
                if queue == queues::AUDIENCE {
                    let batch: Envelope<CustomerBatch> =
                        serde_json::from_slice(&delivery.body).unwrap();
                    received.fetch_add(batch.payload.customers.len() as u64, Ordering::SeqCst);
                }
                delivery.acker.ack().await.unwrap();
            }
        })
    };
    let consumers = [consume(queues::SEGMENTS), consume(queues::AUDIENCE)];
    let source = AudienceSource::Csv {
        path: "c.csv".into(),
    };
    let body = serde_json::to_vec(&request(source, &[])).unwrap();
    transport
        .publish(
            queues::CAMPAIGNS,
            Publish {
                id: "req-1".into(),
                body,
                delay: None,
            },
        )
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        // The ledger entry is the stage's last word.
        while transport.peek(queues::LEDGER).is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        transport.wait_idle().await;
    })
    .await
    .expect("the campaign finished");
    assert!(transport.peek(queues::DEAD_LETTER).is_empty());
    let ledger: Envelope<LedgerEntry> =
        serde_json::from_slice(&transport.peek(queues::LEDGER)[0]).unwrap();
    let LedgerEntry::Audience { segments, .. } = ledger.payload else {
        panic!()
    };
    shutdown.cancel();
    worker.await.unwrap().unwrap();
    consumers.iter().for_each(|c| c.abort());
    let segmented: u64 = segments.iter().map(|s| s.size).sum();
    assert!(segmented > 2_700, "{segmented}");
    assert_eq!(received.load(Ordering::SeqCst), segmented);
}

/// Under the runtime: a campaign whose id is a path, in the envelope or in the
/// payload, never reaches the stage; one without tones stops at it. Each is
/// dead-lettered with the reason, and nothing is published downstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_campaign_id_or_empty_tones_is_dead_lettered_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.csv"), sample_csv(20)).unwrap();
    let transport = MemoryTransport::new(100);
    let shutdown = CancellationToken::new();
    let runtime = Runtime::new(
        Arc::new(transport.clone()),
        RuntimeConfig::default(),
        shutdown.clone(),
    );
    let worker = tokio::spawn({
        let runtime = runtime.clone();
        let stage = Arc::new(stage(50, Some(dir.path())));
        async move { runtime.run(stage).await }
    });
    let source = || AudienceSource::Csv {
        path: "c.csv".into(),
    };
    let mut in_envelope = request(source(), &[]);
    in_envelope.id = "bad-envelope".into();
    in_envelope.campaign_id = "../../x".into();
    let mut in_payload = request(source(), &[]);
    in_payload.id = "bad-payload".into();
    in_payload.payload.campaign_id = "/tmp/x".into();
    let mut no_tones = request(source(), &[]);
    no_tones.id = "no-tones".into();
    no_tones.payload.tones = vec![];
    for message in [&in_envelope, &in_payload, &no_tones] {
        let body = serde_json::to_vec(message).unwrap();
        let publish = Publish {
            id: message.id.clone(),
            body,
            delay: None,
        };
        transport.publish(queues::CAMPAIGNS, publish).await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(30), async {
        while transport.peek(queues::DEAD_LETTER).len() < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        transport.wait_idle().await;
    })
    .await
    .expect("all three dead-lettered");
    shutdown.cancel();
    worker.await.unwrap().unwrap();
    let letters: Vec<DeadLetter> = transport
        .peek(queues::DEAD_LETTER)
        .iter()
        .map(|b| serde_json::from_slice(b).unwrap())
        .collect();
    let reason = |id: &str| {
        let letter = letters.iter().find(|l| l.id == id).unwrap();
        (letter.kind, letter.reason.clone())
    };
    let (kind, why) = reason("bad-envelope");
    assert_eq!(kind, DeadLetterKind::Undecodable);
    assert!(
        why.contains("\"../../x\" is not a valid campaign id"),
        "{why}"
    );
    let (kind, why) = reason("bad-payload");
    assert_eq!(kind, DeadLetterKind::Undecodable);
    assert!(
        why.contains("\"/tmp/x\" is not a valid campaign id"),
        "{why}"
    );
    let (kind, why) = reason("no-tones");
    assert_eq!(kind, DeadLetterKind::Permanent);
    assert!(why.contains("tones is empty"), "{why}");
    for queue in [queues::SEGMENTS, queues::AUDIENCE, queues::LEDGER] {
        assert!(transport.peek(queue).is_empty(), "{queue} got a message");
    }
}
