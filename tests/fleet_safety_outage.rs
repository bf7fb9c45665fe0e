//! The safety screen failing or timing out, in the fleet: the variants land in
//! the dead-letter queue with the reason, nothing reaches the send queue, and
//! after the failure is gone `cpo dlq replay --all` delivers the campaign.
//!
//! The safety worker runs the Azure AI Content Safety backend against a fake
//! of that HTTP API served by this test (RabbitMQ and Redis are the real ones):
//! the fake answers like the service, or hangs, or answers 503, as the test
//! says. The campaign goes through two failed rounds (timeouts, then 503s,
//! each replayed) before the screen recovers, and `cpo status` keeps count.
//! A second test uses the hanging screen to hold a message in flight across
//! SIGTERM: the worker turns not-ready, keeps serving /metrics, gives up after
//! the grace period with exit status 1, and the message is redelivered to the
//! next worker.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Fleet, jsonl, metric, plan, secs, wait_for};
use serde_json::Value;

const OK: u8 = 0;
const HANG: u8 = 1;
const UNAVAILABLE: u8 = 2;

/// A fake of Azure AI Content Safety's `text:analyze`: every text is harmless
/// (severity 0 in each category) while `mode` is OK.
struct FakeContentSafety {
    port: u16,
    mode: Arc<AtomicU8>,
    requests: Arc<AtomicUsize>,
}

impl FakeContentSafety {
    fn start(mode: u8) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(mode));
        let requests = Arc::new(AtomicUsize::new(0));
        let (m, r) = (mode.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (m, r) = (m.clone(), r.clone());
                std::thread::spawn(move || serve(stream, &m, &r));
            }
        });
        Self {
            port,
            mode,
            requests,
        }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// One keep-alive connection: answer requests until the client closes it.
fn serve(stream: TcpStream, mode: &AtomicU8, requests: &AtomicUsize) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        requests.fetch_add(1, Ordering::SeqCst);
        assert!(
            request_line.contains("/contentsafety/text:analyze"),
            "{request_line}"
        );
        // Hang until told otherwise (the client times out and drops the connection).
        let started = Instant::now();
        while mode.load(Ordering::SeqCst) == HANG && started.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let (status, text) = if mode.load(Ordering::SeqCst) == UNAVAILABLE {
            (
                "503 Service Unavailable",
                r#"{"error":{"code":"ServiceUnavailable"}}"#.to_string(),
            )
        } else {
            let categories = ["Hate", "SelfHarm", "Sexual", "Violence"]
                .map(|c| format!(r#"{{"category":"{c}","severity":0}}"#))
                .join(",");
            (
                "200 OK",
                format!(r#"{{"blocklistsMatch":[],"categoriesAnalysis":[{categories}]}}"#),
            )
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

fn status_json(fleet: &Fleet) -> Option<Value> {
    let out = fleet
        .cpo()
        .args(["status", "autumn-2026", "--json"])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).ok()
}

fn counter(status: &Value, name: &str) -> u64 {
    status["counters"][name].as_u64().unwrap_or(0)
}

/// Wait until `round` rounds of the campaign's variants (at safety) and batches
/// (at experimentation) have been dead-lettered; the status then.
fn wait_held(fleet: &Fleet, round: u64) -> Value {
    wait_for(
        fleet,
        &format!("round {round} of variants and batches in the dead-letter queue"),
        Duration::from_secs(120),
        Duration::from_millis(500),
        || {
            let s = status_json(fleet)?;
            let variants = counter(&s, "variants_generated");
            let batches = counter(&s, "audience_batches");
            (variants > 0
                && batches > 0
                && counter(&s, "dead_letters:safety:exhausted") == round * variants
                && counter(&s, "dead_letters:experimentation:timeout") == round * batches)
                .then_some(s)
        },
    )
}

/// Nothing reached the send queue, let alone the outbox.
fn assert_nothing_sent(fleet: &Fleet) {
    let delivery = fleet.metrics_of("delivery");
    assert_eq!(
        metric(
            &delivery,
            "cpo_stage_messages_received_total{stage=\"delivery\"}"
        ),
        0.0,
        "{delivery}"
    );
    assert_eq!(fleet.outbox_lines(), 0);
}

/// The dead-letter queue holds every variant, with the screen error, and every batch.
fn check_letters(fleet: &Fleet, variants: u64, error: &str) {
    let letters = fleet.dead_letters();
    let safety: Vec<&Value> = letters.iter().filter(|l| l["stage"] == "safety").collect();
    assert_eq!(safety.len() as u64, variants, "{letters:#?}");
    for letter in &safety {
        let reason = letter["reason"].as_str().unwrap();
        assert_eq!(letter["kind"], "exhausted", "{letter}");
        assert!(
            reason.contains("screen error")
                && reason.contains(error)
                && reason.contains("outage timeout"),
            "{reason}"
        );
        assert_eq!(letter["attempts"], 1, "waiting is not an attempt: {letter}");
    }
    assert!(
        letters
            .iter()
            .filter(|l| l["stage"] == "experimentation")
            .all(|l| l["kind"] == "timeout"
                && l["reason"].as_str().unwrap().contains("safety decisions")),
        "{letters:#?}"
    );
}

#[test]
fn a_failing_safety_screen_holds_variants_in_the_dead_letter_queue_until_replayed() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let screen = FakeContentSafety::start(HANG);
    let endpoint = screen.endpoint();
    let mut fleet = Fleet::new(tmp.path(), "screen-out", &[]);
    for stage in ["segmentation", "retrieval", "generation", "delivery"] {
        fleet.start(stage);
    }
    // A screen error keeps the variant waiting (without using up attempts) for
    // 1.5 s of outage in all, then dead-letters it; 8 calls at a time.
    fleet.start_with(
        "safety",
        &[
            ("CPO__SAFETY__BACKEND", "azure"),
            ("CPO__SAFETY__AZURE__ENDPOINT", &endpoint),
            ("CPO__SAFETY__AZURE__API_KEY", "test-key-not-secret"),
            ("CPO__SAFETY__TIMEOUT_MS", "300"),
            ("CPO__RUNTIME__CONCURRENCY", "8"),
            ("CPO__RUNTIME__OUTAGE_RETRY_MS", "100"),
            ("CPO__RUNTIME__OUTAGE_MAX_RETRY_MS", "200"),
            ("CPO__RUNTIME__OUTAGE_TIMEOUT_MS", "1500"),
        ],
    );
    // Batches stop waiting for their segments' decisions after 4 s.
    fleet.start_with(
        "experimentation",
        &[("CPO__RUNTIME__DEFER_TIMEOUT_MS", "4000")],
    );
    fleet.enqueue(None);

    // Round 1, the screen hangs: every variant dead-lettered by safety, every
    // batch by experimentation.
    let held = wait_held(&fleet, 1);
    eprintln!("held after {:.1}s: {held}", secs(started));
    let variants = counter(&held, "variants_generated");
    let batches = counter(&held, "audience_batches");
    assert_eq!(held["state"], "waiting", "{held}");
    assert_eq!(held["dead_letters_pending"], variants + batches, "{held}");
    assert_eq!(counter(&held, "variants_approved"), 0);
    assert_eq!(
        counter(&held, "variants_blocked"),
        0,
        "an outage is not a decision"
    );
    assert!(
        screen.requests() as u64 >= 2 * variants,
        "each variant was tried again while it waited ({} requests)",
        screen.requests()
    );
    assert_nothing_sent(&fleet);
    check_letters(&fleet, variants, "timed out");

    // Round 2, the screen answers 503: replayed, everything is held again, and
    // status counts the new round as pending, not as replayed.
    screen.set(UNAVAILABLE);
    let replay = fleet.run(&["dlq", "replay", "--all"]);
    assert!(replay.status.success(), "{replay:?}");
    let held = wait_held(&fleet, 2);
    assert_eq!(held["state"], "waiting", "{held}");
    assert_eq!(held["dead_letters_pending"], variants + batches, "{held}");
    assert_eq!(counter(&held, "replayed:safety:exhausted"), variants);
    assert_nothing_sent(&fleet);
    check_letters(&fleet, variants, "503");

    // The screen is back: replay everything, and the campaign completes.
    screen.set(OK);
    let replay = fleet.run(&["dlq", "replay", "--all"]);
    assert!(replay.status.success(), "{replay:?}");
    let done = fleet
        .cpo()
        .args([
            "status",
            "autumn-2026",
            "--json",
            "--wait",
            "--timeout",
            "120",
        ])
        .output()
        .unwrap();
    assert!(
        done.status.success(),
        "status --wait: {done:?}\n{}",
        fleet.logs()
    );
    let done: Value = serde_json::from_slice(&done.stdout).unwrap();
    assert_eq!(done["state"], "complete", "{done}");
    assert_eq!(done["dead_letters_pending"], 0, "{done}");
    assert_eq!(counter(&done, "replayed:safety:exhausted"), 2 * variants);
    assert_eq!(
        counter(&done, "replayed:experimentation:timeout"),
        2 * batches
    );
    assert_eq!(
        counter(&done, "variants_approved"),
        counter(&done, "variants_generated")
    );

    let outbox = jsonl(&fleet.outbox());
    assert_eq!(outbox.len() as u64, counter(&done, "customers_assigned"));
    let ids: HashSet<&str> = outbox
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), outbox.len(), "no message sent twice");
    assert!(
        fleet.dead_letters().is_empty(),
        "the replay emptied the queue"
    );

    // The same messages as the embedded mode plans (its screen approves them all too).
    assert_eq!(plan(&outbox), common::embedded_plan(tmp.path(), None));
    fleet.assert_running();
    eprintln!("screen outage test: {:.1}s", secs(started));
    fleet.teardown();
}

#[test]
fn a_screen_call_outliving_the_grace_period_is_abandoned_with_exit_1_and_redelivered() {
    let tmp = tempfile::tempdir().unwrap();
    let screen = FakeContentSafety::start(HANG);
    let endpoint = screen.endpoint();
    let mut fleet = Fleet::new(tmp.path(), "screen-grace", &[]);
    for stage in ["segmentation", "retrieval", "generation"] {
        fleet.start(stage);
    }
    let safety_env = [
        ("CPO__SAFETY__BACKEND", "azure"),
        ("CPO__SAFETY__AZURE__ENDPOINT", endpoint.as_str()),
        ("CPO__SAFETY__AZURE__API_KEY", "test-key-not-secret"),
        ("CPO__SAFETY__TIMEOUT_MS", "30000"),
        ("CPO__WORKER__SHUTDOWN_GRACE_MS", "1500"),
    ];
    fleet.start_with("safety", &safety_env);
    fleet.wait_ready("safety", Duration::from_secs(30));
    fleet.enqueue(None);
    wait_for(
        &fleet,
        "a screen call in flight",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || (screen.requests() > 0).then_some(()),
    );

    let since = Instant::now();
    fleet.signal_term("safety");
    // Draining: not ready, but still observable.
    let draining = wait_for(
        &fleet,
        "/readyz to turn 503",
        Duration::from_secs(1),
        Duration::from_millis(20),
        || match fleet.http("safety", "/readyz") {
            Some((503, body)) => Some(body),
            _ => None,
        },
    );
    assert!(draining.contains("not ready"), "{draining}");
    let metrics = fleet.http("safety", "/metrics");
    assert!(
        metrics.is_some_and(|(status, body)| status == 200 && body.contains("cpo_stage")),
        "/metrics must answer while draining"
    );
    let (status, took) = fleet.wait_exit("safety", since, Duration::from_secs(20));
    assert_eq!(
        status.code(),
        Some(1),
        "{status}\n{}",
        fleet.logs_of("safety")
    );
    assert!(
        took >= Duration::from_millis(1500),
        "left before the grace period: {took:?}"
    );
    let log = std::fs::read_to_string(fleet.work.join("safety.log")).unwrap();
    assert!(
        log.contains("did not finish within the grace period"),
        "{log}"
    );

    // The abandoned message was never acked: the next worker screens it.
    screen.set(OK);
    fleet.start_with("safety", &safety_env);
    let decided = wait_for(
        &fleet,
        "every variant approved after the restart",
        Duration::from_secs(60),
        Duration::from_millis(300),
        || {
            let s = status_json(&fleet)?;
            let generated = counter(&s, "variants_generated");
            (generated > 0 && counter(&s, "variants_approved") == generated).then_some(s)
        },
    );
    assert_eq!(counter(&decided, "variants_blocked"), 0);
    let dead: BTreeSet<String> = fleet
        .dead_letters()
        .iter()
        .map(|l| l["stage"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(dead.is_empty(), "nothing dead-lettered: {dead:?}");
    fleet.teardown();
}
