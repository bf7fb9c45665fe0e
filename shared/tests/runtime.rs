//! The runtime's contract on the in-memory transport: ack after publish,
//! transient errors retried then dead-lettered, permanent errors and blocks
//! dead-lettered with stage, reason and attempts, bad input never fatal.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cpo_shared::cache::MemoryCache;
use cpo_shared::dead_letter::{DeadLetter, DeadLetterKind};
use cpo_shared::metrics::metrics;
use cpo_shared::progress::ProgressStore;
use cpo_shared::runtime::{Runtime, RuntimeConfig};
use cpo_shared::transport::{MemoryTransport, Publish, Transport};
use cpo_shared::{Emitter, Envelope, Outgoing, Stage, StageError, StageResult};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Serialize, Deserialize)]
struct Job {
    behaviour: String,
}

/// Fails according to the job: "ok", "transient-once", "transient-always", "permanent", "blocked".
struct TestStage {
    calls: AtomicU32,
    outages: AtomicU32,
}

impl Stage for TestStage {
    type Input = Job;

    fn name(&self) -> &'static str {
        "test"
    }

    fn inputs(&self) -> &'static [&'static str] {
        &["segments"]
    }

    async fn handle(&self, message: Envelope<Job>, emit: &Emitter) -> StageResult {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        // a line inside the runtime's span, which carries the message and campaign ids
        tracing::debug!(call, "handling");
        let out = Outgoing::new(
            "briefs",
            &message.derive(format!("{}-out", message.id), "done"),
        )?;
        match message.payload.behaviour.as_str() {
            "ok" => Ok(vec![out]),
            "transient-once" if message.attempt == 0 => {
                Err(StageError::Transient(format!("flaky call {call}")))
            }
            "transient-once" => Ok(vec![out]),
            "transient-always" => Err(StageError::Transient("backend down".into())),
            "unavailable-thrice" if self.outages.fetch_add(1, Ordering::SeqCst) < 3 => {
                Err(StageError::Unavailable("redis down".into()))
            }
            "unavailable-thrice" => Ok(vec![out]),
            "unavailable-always" => Err(StageError::Unavailable("redis down".into())),
            "defer-always" => Err(StageError::Defer {
                reason: "waiting for decisions".into(),
                after: Duration::from_millis(5),
            }),
            "counted" => {
                emit.count("customers_assigned", 5);
                emit.count("customers_assigned", 2);
                emit.stamp("enqueued_ms", 42);
                emit.stamp_first("started_ms", 7);
                emit.stamp_first("started_ms", 5);
                Ok(vec![out])
            }
            "counted-then-blocked" => {
                emit.count("variants_blocked", 1);
                Err(StageError::Blocked {
                    reasons: vec!["violence: 5".into()],
                    notify: Vec::new(),
                })
            }
            "counted-then-failed" => {
                emit.count("customers_assigned", 1000);
                Err(StageError::Permanent("failed after counting".into()))
            }
            "permanent" => Err(StageError::Permanent("bad content".into())),
            "blocked" => Err(StageError::Blocked {
                reasons: vec!["hate: 6".into()],
                notify: vec![out],
            }),
            other => Err(StageError::Permanent(format!("unknown behaviour {other}"))),
        }
    }
}

fn fast_config() -> RuntimeConfig {
    RuntimeConfig {
        max_attempts: 3,
        initial_backoff_ms: 1,
        max_backoff_ms: 5,
        ..RuntimeConfig::default()
    }
}

async fn run_jobs(bodies: Vec<Vec<u8>>) -> (MemoryTransport, Vec<DeadLetter>, Vec<String>) {
    let (transport, letters, outputs, _) = run_jobs_with(fast_config(), bodies).await;
    (transport, letters, outputs)
}

/// Run the jobs with `config`, recording progress in the returned cache.
async fn run_jobs_with(
    config: RuntimeConfig,
    bodies: Vec<Vec<u8>>,
) -> (
    MemoryTransport,
    Vec<DeadLetter>,
    Vec<String>,
    Arc<MemoryCache>,
) {
    let transport = MemoryTransport::new(8);
    let token = CancellationToken::new();
    let cache = Arc::new(MemoryCache::new());
    let runtime = Runtime::new(Arc::new(transport.clone()), config, token.clone())
        .with_progress(cache.clone());
    let stage = Arc::new(TestStage {
        calls: AtomicU32::new(0),
        outages: AtomicU32::new(0),
    });
    let handle = tokio::spawn({
        let runtime = runtime.clone();
        async move { runtime.run(stage).await }
    });
    for (i, body) in bodies.into_iter().enumerate() {
        transport
            .publish(
                "segments",
                Publish {
                    id: i.to_string(),
                    body,
                    delay: None,
                },
            )
            .await
            .unwrap();
    }
    // "briefs" has no consumer here: drain it so idle detection sees the work as done.
    let drainer = tokio::spawn({
        let transport = transport.clone();
        let token = token.clone();
        async move {
            let mut outputs = Vec::new();
            let mut sub = transport.subscribe("briefs", 8).await.unwrap();
            loop {
                let next = tokio::select! {
                    _ = token.cancelled() => break,
                    next = sub.next() => next,
                };
                let Some(Ok(d)) = next else { break };
                let env: Envelope<String> = serde_json::from_slice(&d.body).unwrap();
                outputs.push(env.id);
                d.acker.ack().await.unwrap();
            }
            outputs
        }
    });
    tokio::time::timeout(Duration::from_secs(5), transport.wait_idle())
        .await
        .expect("pipeline went idle");
    token.cancel();
    handle.await.unwrap().unwrap();
    let outputs = drainer.await.unwrap();
    let letters = transport
        .drain(cpo_shared::queues::DEAD_LETTER)
        .iter()
        .map(|b| serde_json::from_slice(b).unwrap())
        .collect();
    (transport, letters, outputs, cache)
}

fn job(id: &str, behaviour: &str) -> Vec<u8> {
    serde_json::to_vec(&Envelope::new(
        id,
        "camp-1",
        Job {
            behaviour: behaviour.into(),
        },
    ))
    .unwrap()
}

#[tokio::test]
async fn errors_are_retried_or_dead_lettered_by_kind() {
    let retried_before = metrics().retried.with_label_values(&["test"]).get();
    let (_t, letters, outputs) = run_jobs(vec![
        job("a", "ok"),
        job("b", "transient-once"),
        job("c", "transient-always"),
        job("d", "permanent"),
        job("e", "blocked"),
    ])
    .await;

    let mut outputs = outputs;
    outputs.sort();
    // ok, the retried one, and the blocked one's notification were published.
    assert_eq!(outputs, ["a-out", "b-out", "e-out"]);

    let by_id = |id: &str| {
        letters
            .iter()
            .find(|l| l.id == id)
            .unwrap_or_else(|| panic!("no dead letter for {id}"))
    };
    assert_eq!(letters.len(), 3, "{letters:?}");
    let exhausted = by_id("c");
    assert_eq!(exhausted.kind, DeadLetterKind::Exhausted);
    assert_eq!(exhausted.attempts, 3);
    assert_eq!(exhausted.stage, "test");
    assert!(exhausted.reason.contains("backend down"));
    assert_eq!(by_id("d").kind, DeadLetterKind::Permanent);
    assert_eq!(by_id("d").attempts, 1);
    let blocked = by_id("e");
    assert_eq!(blocked.kind, DeadLetterKind::Blocked);
    assert_eq!(blocked.reasons, ["hate: 6"]);
    assert_eq!(blocked.campaign_id.as_deref(), Some("camp-1"));
    // the original envelope is kept for replay
    assert_eq!(
        blocked.message.as_ref().unwrap()["payload"]["behaviour"],
        "blocked"
    );

    let retried = metrics().retried.with_label_values(&["test"]).get() - retried_before;
    assert!(retried >= 3, "b once, c twice: {retried}");
}

#[tokio::test]
async fn malformed_and_oversized_input_is_dead_lettered_with_its_reason() {
    let mut oversized = job("big", "ok");
    oversized.extend(std::iter::repeat_n(b' ', 17 * 1024 * 1024));
    let wrong_version = serde_json::to_vec(&serde_json::json!({
        "id": "v9", "campaign_id": "c", "version": 9, "attempt": 0, "payload": {"behaviour": "ok"}
    }))
    .unwrap();
    let wrong_shape = serde_json::to_vec(&serde_json::json!({
        "id": "shape", "campaign_id": "c", "version": 1, "payload": {"nope": 1}
    }))
    .unwrap();
    let (_t, letters, outputs) = run_jobs(vec![
        b"not json at all".to_vec(),
        wrong_version,
        wrong_shape,
        oversized,
        job("fine", "ok"),
    ])
    .await;

    assert_eq!(
        outputs,
        ["fine-out"],
        "the worker kept going after bad input"
    );
    assert_eq!(letters.len(), 4);
    let kinds: Vec<_> = letters.iter().map(|l| (l.kind, l.reason.clone())).collect();
    assert!(
        kinds
            .iter()
            .any(|(k, r)| *k == DeadLetterKind::Undecodable && r.contains("not a JSON envelope")),
        "{kinds:?}"
    );
    assert!(
        kinds
            .iter()
            .any(|(k, r)| *k == DeadLetterKind::Undecodable && r.contains("schema version")),
        "{kinds:?}"
    );
    assert!(
        kinds
            .iter()
            .any(|(k, r)| *k == DeadLetterKind::Undecodable && r.contains("payload")),
        "{kinds:?}"
    );
    assert!(
        kinds
            .iter()
            .any(|(k, r)| *k == DeadLetterKind::Oversized && r.contains("exceeds")),
        "{kinds:?}"
    );
    let raw = letters.iter().find(|l| l.raw.is_some()).unwrap();
    assert_eq!(raw.raw.as_deref(), Some("not json at all"));
}

#[tokio::test]
async fn retry_delay_grows_and_is_capped() {
    let config = RuntimeConfig {
        initial_backoff_ms: 100,
        max_backoff_ms: 1000,
        ..RuntimeConfig::default()
    };
    let first = config.retry_delay(1);
    let late = config.retry_delay(10);
    assert!(first <= Duration::from_millis(150), "{first:?}");
    assert!(
        late <= Duration::from_millis(1200) && late >= Duration::from_millis(700),
        "{late:?}"
    );
}

#[tokio::test]
async fn an_unavailable_dependency_pauses_the_message_without_using_up_attempts() {
    let config = RuntimeConfig {
        max_attempts: 2,
        outage_retry_ms: 5,
        outage_max_retry_ms: 40,
        outage_timeout_ms: 300,
        ..fast_config()
    };
    let paused = || metrics().paused.with_label_values(&["test"]).get();
    let before = paused();
    let (_, letters, outputs, _) = run_jobs_with(
        config,
        vec![
            job("w", "unavailable-thrice"),
            job("gone", "unavailable-always"),
        ],
    )
    .await;
    // three outages are more than max_attempts (2), yet the message went through
    assert_eq!(outputs, ["w-out"]);
    assert!(paused() - before >= 3, "each wait is counted");
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter.id, "gone");
    assert_eq!(letter.kind, DeadLetterKind::Exhausted);
    assert!(
        letter.reason.contains("outage timeout") && letter.reason.contains("redis down"),
        "{}",
        letter.reason
    );
    assert_eq!(letter.attempts, 1, "waiting is not an attempt");
    assert!(letter.reason.contains("waited"), "{}", letter.reason);
}

#[test]
fn the_outage_delay_grows_with_the_wait_within_its_bounds() {
    let config = RuntimeConfig {
        outage_retry_ms: 1_000,
        outage_max_retry_ms: 30_000,
        ..RuntimeConfig::default()
    };
    assert_eq!(config.outage_delay(0), Duration::from_secs(1));
    assert_eq!(config.outage_delay(8_000), Duration::from_secs(4));
    assert_eq!(config.outage_delay(600_000), Duration::from_secs(30));
}

#[tokio::test]
async fn time_paused_for_an_outage_does_not_count_against_the_join_timeout() {
    let config = RuntimeConfig {
        defer_timeout_ms: 400,
        ..fast_config()
    };
    // Seen 10 s ago, but 9.9 s of that waiting out an outage: 100 ms of join wait so far.
    let mut paused: serde_json::Value = serde_json::from_slice(&job("p", "defer-always")).unwrap();
    paused["first_seen_ms"] = (cpo_shared::envelope::now_ms() - 10_000).into();
    paused["paused_ms"] = 9_900.into();
    let mut fresh_old: serde_json::Value =
        serde_json::from_slice(&job("o", "defer-always")).unwrap();
    fresh_old["first_seen_ms"] = (cpo_shared::envelope::now_ms() - 10_000).into();
    let deferred = || metrics().deferred.with_label_values(&["test"]).get();
    let before = deferred();
    let (_, letters, _, _) = run_jobs_with(
        config,
        vec![
            serde_json::to_vec(&paused).unwrap(),
            serde_json::to_vec(&fresh_old).unwrap(),
        ],
    )
    .await;
    assert_eq!(letters.len(), 2);
    assert!(letters.iter().all(|l| l.kind == DeadLetterKind::Timeout));
    // The unpaused one times out at once; the paused one waits ~300 ms more first.
    assert!(
        deferred() - before >= 10,
        "the paused message kept waiting for its join"
    );
}

#[tokio::test]
async fn progress_is_recorded_once_per_message_and_only_when_it_is_handled() {
    let (_, letters, _, cache) = run_jobs_with(
        fast_config(),
        vec![
            job("c1", "counted"),
            job("c1", "counted"),
            job("c2", "counted"),
            job("b1", "counted-then-blocked"),
            job("f1", "counted-then-failed"),
            b"{not json".to_vec(),
        ],
    )
    .await;
    assert_eq!(letters.len(), 3);
    let store = ProgressStore::new(cache, Duration::from_secs(60));
    let progress = store.read("camp-1").await.unwrap().expect("recorded");
    assert_eq!(
        progress.get("customers_assigned"),
        14,
        "c1 counted once, c2 once; f1's count is dropped with its failure"
    );
    assert_eq!(progress.get("enqueued_ms"), 42);
    assert_eq!(progress.get("started_ms"), 5);
    assert_eq!(progress.get("variants_blocked"), 1, "blocked still counts");
    assert!(progress.get("updated_ms") > 0);
    let dead = progress.dead_letters();
    assert_eq!(dead["test"]["blocked"], 1);
    assert_eq!(dead["test"]["permanent"], 1);
    assert_eq!(
        dead["test"].values().sum::<i64>(),
        2,
        "a letter without a campaign (undecodable) is not counted: {dead:?}"
    );
}

/// Log lines into a buffer (a `MakeWriter` for the fmt subscriber).
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn input_taken_into_log_lines_is_cut_to_a_bounded_length() {
    // Global, not `set_default`: a thread-local subscriber misses callsites
    // whose interest other tests, running in parallel without one, cached.
    // Those tests' lines land here too; the assertions read ours.
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
    // 2 MB rather than 20: the debug build parses it several times within the harness timeout.
    let huge_id = "i".repeat(2 * 1024 * 1024);
    let huge_campaign = "c".repeat(256 * 1024);
    let mut body: serde_json::Value = serde_json::from_slice(&job(&huge_id, "permanent")).unwrap();
    body["campaign_id"] = huge_campaign.clone().into();
    let bodies = vec![
        serde_json::to_vec(&body).unwrap(),
        job(&format!("{huge_id}-2"), "transient-once"),
    ];
    let config = RuntimeConfig {
        max_message_bytes: 64 * 1024 * 1024,
        ..fast_config()
    };
    let (_t, letters, _, _) = run_jobs_with(config, bodies).await;
    // the id is data, kept whole in the dead letter; only its log lines are cut
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].id, huge_id);
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // ours: the lines inside the span of a message with a huge id, and its dead letter
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("iiiiiiii")).collect();
    for wanted in ["dead-lettered", "handling"] {
        assert!(
            lines.iter().any(|l| l.contains(wanted)),
            "no {wanted} line in {} lines",
            lines.len()
        );
    }
    let longest = lines.iter().map(|l| l.len()).max().unwrap_or(0);
    assert!(longest < 2048, "a log line of {longest} bytes");
    assert!(
        text.contains(&format!("({} bytes", huge_id.len())),
        "{text}"
    );
}
