//! `cpo worker <stage>` and SIGTERM, on the real RabbitMQ and Redis: a worker stops
//! taking work, finishes what is in flight, flushes its audit log and exits 0 within
//! `worker.shutdown_grace_ms`; a campaign interrupted that way completes once the
//! worker is back, every customer sent exactly once. Each test has a prefix of its
//! own and tears it down; a service that is down fails the test with how to start it.
//!
//! What the worker does on SIGTERM (src/commands/worker.rs): the shutdown token stops
//! the runtime's consumers and turns `/readyz` to 503 while `/metrics` stays up;
//! in-flight messages finish and are acked, then the audit log is flushed, the AMQP
//! connection closed and the HTTP server stopped. Work that outlives the grace
//! period is abandoned (redelivered) and the exit status is 1:
//! tests/fleet_safety_outage.rs drives that case with a screen that hangs.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Fleet, STAGES, audited_sends, check_collected, gen_customers, secs, wait_for};
use serde_json::Value;

/// The log line of a worker whose in-flight work outlived the grace period.
const GRACE_EXPIRED: &str = "in-flight work did not finish within the grace period";
/// The log line of a worker that stopped cleanly.
const STOPPED: &str = "worker stopped";

/// After SIGTERM, the worker has stopped: it exited 0, its HTTP port is closed, and
/// its log says it stopped cleanly, not that the grace period ran out.
fn assert_stopped_cleanly(
    fleet: &Fleet,
    stage: &str,
    status: std::process::ExitStatus,
    took: Duration,
    limit: Duration,
) {
    let log = std::fs::read_to_string(fleet.work.join(format!("{stage}.log"))).unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "{stage} exited with {status} after SIGTERM\n{}",
        fleet.logs_of(stage)
    );
    assert!(
        took <= limit,
        "{stage} took {took:?} to exit after SIGTERM, more than {limit:?}\n{}",
        fleet.logs_of(stage)
    );
    assert!(
        fleet.http(stage, "/readyz").is_none(),
        "{stage}'s HTTP port still answers after it exited"
    );
    assert!(
        !log.contains(GRACE_EXPIRED),
        "{stage}'s in-flight work was cut off by the grace period\n{}",
        fleet.logs_of(stage)
    );
    assert!(
        log.contains(STOPPED),
        "{stage} did not log `{STOPPED}`\n{}",
        fleet.logs_of(stage)
    );
}

#[test]
fn idle_workers_of_every_stage_exit_zero_promptly_on_sigterm() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::new(tmp.path(), "idle", &[]);
    fleet.start_all();
    for stage in STAGES {
        fleet.wait_ready(stage, Duration::from_secs(30));
        assert_eq!(
            fleet.http(stage, "/healthz").map(|(s, _)| s),
            Some(200),
            "{stage} /healthz"
        );
        let (status, body) = fleet.http(stage, "/readyz").unwrap();
        assert!(status == 200 && body.contains("ready"), "{stage}: {body}");
    }
    // The default grace period (25 s) is an upper bound for work in flight; an idle
    // worker has none, so it must not wait the period out.
    let prompt = Duration::from_secs(5);
    let mut took = BTreeMap::new();
    for stage in STAGES {
        let (status, elapsed) = fleet.terminate(stage, Duration::from_secs(30));
        assert_stopped_cleanly(&fleet, stage, status, elapsed, prompt);
        took.insert(stage, elapsed.as_millis());
    }
    eprintln!(
        "idle SIGTERM: ms to exit per stage {took:?}; {:.1}s",
        secs(started)
    );
    fleet.teardown();
}

/// Wait until delivery is visibly busy: the outbox grew by at least `by` lines past
/// `from` and is still growing. Returns the line count then.
fn wait_busy(fleet: &Fleet, from: usize, by: usize) -> usize {
    let mut last = fleet.outbox_lines();
    wait_for(
        fleet,
        &format!("the outbox to grow past {} lines", from + by),
        Duration::from_secs(60),
        Duration::from_millis(20),
        || {
            let now = fleet.outbox_lines();
            let growing = now > last;
            last = now;
            (growing && now >= from + by).then_some(now)
        },
    )
}

#[test]
fn busy_workers_finish_in_flight_work_on_sigterm_and_the_campaign_loses_nothing() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    const CUSTOMERS: u32 = 10_000;
    let customers = gen_customers(tmp.path(), CUSTOMERS);
    let grace = Duration::from_millis(4_000);
    let grace_ms = grace.as_millis().to_string();
    // Generous on a loaded 2-core machine: closing the AMQP connection and the exit
    // itself come after the grace period's work.
    let limit = grace + Duration::from_secs(6);
    // Small audience batches: thousands of them keep experimentation and delivery busy
    // long enough to stop each mid-campaign with a batch in flight.
    let mut fleet = Fleet::new(
        tmp.path(),
        "term",
        &[
            ("CPO__SEGMENTATION__BATCH_SIZE", "10"),
            ("CPO__WORKER__SHUTDOWN_GRACE_MS", &grace_ms),
        ],
    );
    fleet.start_all();
    for stage in STAGES {
        fleet.wait_ready(stage, Duration::from_secs(30));
    }
    fleet.enqueue(Some(&customers));
    let out = tmp.path().join("out");
    let collect = fleet.spawn_collect(&out, 120);

    let mut at_term = Vec::new();
    let mut from = 0;
    for stage in ["experimentation", "delivery"] {
        from = wait_busy(&fleet, from, 150);
        let (status, took) = fleet.terminate(stage, limit + Duration::from_secs(20));
        let lines_at_exit = fleet.outbox_lines();
        assert_stopped_cleanly(&fleet, stage, status, took, limit);
        eprintln!(
            "SIGTERM {stage} at {from} outbox lines: exit 0 after {} ms ({lines_at_exit} lines at exit), {:.1}s",
            took.as_millis(),
            secs(started)
        );
        at_term.push((stage, from, lines_at_exit));
        if stage == "delivery" {
            // Nobody else writes the outbox: with delivery gone it stands still.
            std::thread::sleep(Duration::from_millis(500));
            assert_eq!(
                fleet.outbox_lines(),
                lines_at_exit,
                "the outbox grew after delivery exited"
            );
        }
        fleet.start(stage);
        fleet.wait_ready(stage, Duration::from_secs(30));
        from = fleet.outbox_lines();
    }

    fleet.finish_collect(collect);
    let (summary, outbox) = check_collected(&out, u64::from(CUSTOMERS));
    let assigned = summary["customers_assigned"].as_u64().unwrap() as usize;
    // Otherwise the test proved nothing: the campaign was over before the SIGTERM.
    for (stage, _, lines) in &at_term {
        assert!(
            *lines < assigned,
            "{stage} was stopped after the campaign was complete ({lines} of {assigned} lines)"
        );
    }
    // The worker's own outbox, not only collect's copy: every message once.
    let raw = common::jsonl(&fleet.outbox());
    assert_eq!(raw.len(), assigned, "the fleet's outbox has extra lines");
    // What delivery audited is what it sent: each message once, none unaudited.
    let audited = audited_sends(&fleet, "autumn-2026");
    let twice: Vec<_> = audited.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "sends audited twice: {twice:?}");
    let sent: std::collections::BTreeSet<&str> = outbox
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    assert!(
        audited.keys().map(String::as_str).eq(sent.iter().copied()),
        "audited sends ({}) differ from the outbox ({})",
        audited.len(),
        sent.len()
    );
    fleet.assert_running();
    let letters: Vec<Value> = fleet.dead_letters();
    assert!(letters.is_empty(), "dead letters: {letters:#?}");
    eprintln!(
        "SIGTERM test: {assigned} assigned and sent once each; (stage, lines at SIGTERM, at exit) {at_term:?}; {:.1}s",
        secs(started)
    );
    fleet.teardown();
}
