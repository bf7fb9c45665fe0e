//! The fleet while Redis is down, on the real RabbitMQ and Redis: "If Redis is down,
//! retrieval still works uncached, and sending pauses rather than risks duplicates."
//!
//! The machine's Redis stays up (other tests use it). The worker under test reaches
//! Redis through a TCP proxy inside the test (`CPO__REDIS__URL` of that worker only);
//! switching the proxy off closes its port and resets every open connection, so
//! that worker sees what a Redis crash looks like (resets, then refused connections),
//! while the rest of the fleet uses Redis directly. Safety and generation do not use
//! Redis; experimentation's join state is not covered here. Each test has a prefix
//! of its own and tears it down; a service that is down fails the test with how to
//! start it.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{
    Fleet, STAGES, audited_sends, check_collected, gen_customers, metric, secs, wait_for,
};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// A TCP proxy on 127.0.0.1 in front of the machine's Redis that can be switched off
/// (port closed, open connections reset) and on again on the same port.
struct RedisProxy {
    runtime: tokio::runtime::Runtime,
    addr: SocketAddr,
    upstream: SocketAddr,
    serving: Option<(CancellationToken, JoinHandle<()>)>,
    accepted: Arc<AtomicUsize>,
}

impl RedisProxy {
    /// A proxy on a free port, switched on.
    fn start() -> Self {
        let upstream = std::env::var("CPO_TEST_REDIS_URL")
            .ok()
            .and_then(|url| {
                let rest = url.split_once("://")?.1;
                let host_port = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
                let host_port = host_port.split('/').next()?;
                std::net::ToSocketAddrs::to_socket_addrs(host_port)
                    .ok()?
                    .next()
            })
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 6379)));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut proxy = Self {
            runtime,
            addr,
            upstream,
            serving: None,
            accepted: Arc::new(AtomicUsize::new(0)),
        };
        proxy.serve(listener);
        proxy
    }

    /// The URL a worker uses to reach Redis through the proxy (the password of
    /// CPO_TEST_REDIS_URL, if any, is not carried over).
    fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// Connections accepted so far.
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Switch on again, on the same port.
    fn on(&mut self) {
        if self.serving.is_some() {
            return;
        }
        let addr = self.addr;
        let listener = self.runtime.block_on(async move {
            // The port was ours a moment ago; give the kernel a moment if it hesitates.
            for _ in 0..50 {
                match TcpListener::bind(addr).await {
                    Ok(listener) => return listener,
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
            TcpListener::bind(addr)
                .await
                .unwrap_or_else(|e| panic!("cannot listen on {addr} again: {e}"))
        });
        self.serve(listener);
    }

    /// Switch off: stop accepting (the port refuses) and reset every open connection.
    fn off(&mut self) {
        if let Some((stop, task)) = self.serving.take() {
            stop.cancel();
            self.runtime.block_on(task).unwrap();
        }
        // A connection to a closed port in the ephemeral range can land on
        // itself (the kernel picks that very port as the source): not a listener.
        let accepted = std::net::TcpStream::connect_timeout(&self.addr, Duration::from_secs(1))
            .is_ok_and(|stream| stream.local_addr().ok() != stream.peer_addr().ok());
        assert!(!accepted, "the proxy's port still accepts connections");
    }

    fn serve(&mut self, listener: TcpListener) {
        let stop = CancellationToken::new();
        let accepted = self.accepted.clone();
        let upstream = self.upstream;
        let stopped = stop.clone();
        let task = self.runtime.spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let (client, _) = tokio::select! {
                    _ = stopped.cancelled() => break,
                    next = listener.accept() => match next {
                        Ok(next) => next,
                        Err(_) => continue,
                    },
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                let stopped = stopped.clone();
                connections.spawn(async move {
                    let mut client = client;
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        tokio::select! {
                            _ = stopped.cancelled() => {}
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        }
                    }
                    // Dropped with a reset, not a clean close: what a crashed Redis looks like.
                    let _ = client.set_zero_linger();
                });
                while connections.try_join_next().is_some() {}
            }
            drop(listener);
            while connections.join_next().await.is_some() {}
        });
        self.serving = Some((stop, task));
    }
}

/// The fleet's dead letters from one stage.
fn letters_of(fleet: &Fleet, stage: &str) -> Vec<Value> {
    fleet
        .dead_letters()
        .into_iter()
        .filter(|l| l["stage"] == stage)
        .collect()
}

fn cache_requests(metrics: &str, cache: &str, result: &str) -> f64 {
    metric(
        metrics,
        &format!("cpo_cache_requests_total{{cache=\"{cache}\",result=\"{result}\"}}"),
    )
}

/// Sum of a stage's dead-letter counters over every kind.
fn dead_lettered(metrics: &str, stage: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("cpo_stage_messages_dead_lettered_total{")
                && l.contains(&format!("stage=\"{stage}\""))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[test]
fn retrieval_without_redis_works_uncached_and_dead_letters_nothing() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let mut proxy = RedisProxy::start();
    proxy.off();
    let mut fleet = Fleet::new(tmp.path(), "noredisret", &[]);
    for stage in STAGES.iter().filter(|s| **s != "retrieval") {
        fleet.start(stage);
    }
    fleet.start_with("retrieval", &[("CPO__REDIS__URL", &proxy.url())]);
    fleet.wait_ready("retrieval", Duration::from_secs(30));
    fleet.enqueue(None);
    let out = tmp.path().join("out");
    fleet.collect(&out, 120);
    let (_, outbox) = check_collected(&out, 250);
    assert!(!outbox.is_empty());

    let m = fleet.metrics_of("retrieval");
    let handled = metric(
        &m,
        "cpo_stage_messages_succeeded_total{stage=\"retrieval\"}",
    );
    let (hits, misses, errors) = (
        cache_requests(&m, "retrieval", "hit"),
        cache_requests(&m, "retrieval", "miss"),
        cache_requests(&m, "retrieval", "error"),
    );
    let redis_errors = cache_requests(&m, "redis", "error");
    eprintln!(
        "retrieval without redis: {handled} segments retrieved; retrieval cache hit {hits} miss {misses} error {errors}; redis errors {redis_errors}"
    );
    assert!(handled >= 1.0, "retrieval handled nothing:\n{m}");
    assert_eq!(hits, 0.0, "a cache hit without a cache:\n{m}");
    // Every lookup failed (and was counted), and none wrote to the cache after it.
    assert!(
        errors >= handled,
        "fewer cache errors than retrievals:\n{m}"
    );
    assert!(redis_errors >= 1.0, "no Redis error counted:\n{m}");
    assert_eq!(proxy.accepted(), 0, "the proxy was off, yet accepted");
    assert_eq!(dead_lettered(&m, "retrieval"), 0.0, "{m}");
    let letters = letters_of(&fleet, "retrieval");
    assert!(letters.is_empty(), "retrieval dead-lettered: {letters:#?}");

    // Uncached retrieval grounds the same messages: the embedded mode plans the same.
    assert_eq!(
        common::plan(&outbox),
        common::embedded_plan(tmp.path(), None)
    );
    fleet.assert_running();
    eprintln!("retrieval outage test: {:.1}s", secs(started));
    fleet.teardown();
}

/// How long the outage lasts once delivery has work it cannot send: longer than the
/// whole budget of ordinary retries (5 attempts within ~1.5 s), so a delivery that
/// burns its attempts on an outage dead-letters within it.
const OUTAGE: Duration = Duration::from_secs(8);

/// Delivery reaches Redis through the proxy, which goes off after `cut_after` outbox
/// lines (0: before the campaign starts). Its dedupe is the store's send records,
/// so while Redis is off no message is sent twice, nothing is dead-lettered and the
/// worker stays up; once it is on again the campaign completes with every message
/// exactly once.
fn delivery_without_redis(tag: &str, customers: Option<u32>, cut_after: usize) {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let csv = customers.map(|n| gen_customers(tmp.path(), n));
    let total = customers.map_or(250, u64::from);
    let mut proxy = RedisProxy::start();
    let mut fleet = Fleet::new(tmp.path(), tag, &[("CPO__SEGMENTATION__BATCH_SIZE", "50")]);
    for stage in STAGES.iter().filter(|s| **s != "delivery") {
        fleet.start(stage);
    }
    fleet.start_with("delivery", &[("CPO__REDIS__URL", &proxy.url())]);
    fleet.wait_ready("delivery", Duration::from_secs(30));
    if cut_after == 0 {
        proxy.off();
    }
    fleet.enqueue(csv.as_deref());
    let out = tmp.path().join("out");
    let collect = fleet.spawn_collect(&out, 120);

    if cut_after > 0 {
        wait_for(
            &fleet,
            &format!("{cut_after} outbox lines before the outage"),
            Duration::from_secs(60),
            Duration::from_millis(20),
            || (fleet.outbox_lines() >= cut_after).then_some(()),
        );
        assert!(proxy.accepted() > 0, "delivery never used the proxy");
        proxy.off();
    }
    let cut = Instant::now();
    // Delivery's dedupe is the store's send records, not Redis: with Redis
    // gone it neither stops nor sends twice, and waits with nothing it cannot
    // finish (no dead letters) while its progress counters are unreachable.
    let window = Instant::now();
    while window.elapsed() < OUTAGE {
        let letters = letters_of(&fleet, "delivery");
        assert!(
            letters.is_empty(),
            "delivery dead-lettered {:.1}s into the Redis outage: {letters:#?}",
            secs(cut)
        );
        let raw = common::jsonl(&fleet.outbox());
        let unique: std::collections::BTreeSet<&str> = raw
            .iter()
            .filter_map(|m| m["message_id"].as_str())
            .collect();
        assert_eq!(
            unique.len(),
            raw.len(),
            "a message was sent twice during the outage"
        );
        fleet.assert_running();
        std::thread::sleep(Duration::from_millis(200));
    }
    let m = fleet.metrics_of("delivery");
    let redis_errors = cache_requests(&m, "redis", "error");
    eprintln!(
        "delivery outage: {} lines after {:.1}s without Redis; redis errors {redis_errors}",
        fleet.outbox_lines(),
        secs(cut)
    );

    proxy.on();
    fleet.finish_collect(collect);
    let (summary, outbox) = check_collected(&out, total);
    let assigned = summary["customers_assigned"].as_u64().unwrap() as usize;
    // The worker's own outbox, not only collect's copy: every message exactly once.
    let raw = common::jsonl(&fleet.outbox());
    assert_eq!(raw.len(), assigned, "the fleet's outbox has extra lines");
    assert_eq!(outbox.len(), assigned);
    let letters = letters_of(&fleet, "delivery");
    assert!(letters.is_empty(), "delivery dead-lettered: {letters:#?}");
    fleet.assert_running();
    let m = fleet.metrics_of("delivery");
    // Not asserted: a cut between a batch's outbox write and its sent-markers makes
    // the retry audit (and count) the batch again, which the outbox itself skips.
    let audited = audited_sends(&fleet, "autumn-2026");
    let audited_twice = audited.values().filter(|n| **n > 1).count();
    eprintln!(
        "delivery outage test ({tag}): {assigned} sent once each; {} audited, {audited_twice} of them more than once; delivery counted sent {} duplicate {}; {:.1}s",
        audited.len(),
        metric(&m, "cpo_delivery_messages_total{outcome=\"sent\"}"),
        metric(&m, "cpo_delivery_messages_total{outcome=\"duplicate\"}"),
        secs(started)
    );
    fleet.teardown();
}

#[test]
fn delivery_sends_each_message_once_while_redis_is_down_from_the_start() {
    delivery_without_redis("noredisdlv", None, 0);
}

#[test]
fn delivery_keeps_sending_once_when_redis_goes_down_mid_campaign() {
    delivery_without_redis("cutredisdlv", Some(5_000), 400);
}
