//! PostgreSQL stopped mid-campaign, as the experimentation worker sees it: the
//! batches wait (no dead letter, no attempt used up, nothing assigned twice),
//! and once the store is back the campaign completes with every customer
//! accounted for in the store and every message sent once.
//!
//! The machine's PostgreSQL stays up (other tests use it): the experimentation
//! worker reaches it through a TCP proxy inside the test, whose switching off
//! closes its port and resets every open connection (what a crashed server
//! looks like), while the other workers and the test use the database directly.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Fleet, STAGES, check_collected, gen_customers, wait_for};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// A TCP proxy in front of 127.0.0.1:5432 that can be switched off and on again.
struct Proxy {
    runtime: tokio::runtime::Runtime,
    addr: SocketAddr,
    serving: Option<(CancellationToken, JoinHandle<()>)>,
    accepted: Arc<AtomicUsize>,
}

const UPSTREAM: ([u8; 4], u16) = ([127, 0, 0, 1], 5432);

impl Proxy {
    fn start() -> Self {
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
            serving: None,
            accepted: Arc::new(AtomicUsize::new(0)),
        };
        proxy.serve(listener);
        proxy
    }

    fn on(&mut self) {
        let addr = self.addr;
        let listener = self.runtime.block_on(async move {
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

    fn off(&mut self) {
        if let Some((stop, task)) = self.serving.take() {
            stop.cancel();
            self.runtime.block_on(task).unwrap();
        }
    }

    fn serve(&mut self, listener: TcpListener) {
        let stop = CancellationToken::new();
        let accepted = self.accepted.clone();
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
                    if let Ok(mut server) = TcpStream::connect(SocketAddr::from(UPSTREAM)).await {
                        tokio::select! {
                            _ = stopped.cancelled() => {}
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        }
                    }
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

fn assigned(url: &str) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = cpo_shared::store::connect(&cpo_shared::store::StoreConfig {
            url: url.to_string(),
            pool_size: 1,
            ..Default::default()
        })
        .await
        .unwrap();
        store.count_assignments("autumn-2026").await.unwrap()
    })
}

#[test]
fn experimentation_waits_out_a_store_outage_and_the_campaign_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = gen_customers(tmp.path(), 3_000);
    let mut proxy = Proxy::start();
    let mut fleet = Fleet::new(
        tmp.path(),
        "pgdown",
        &[("CPO__SEGMENTATION__BATCH_SIZE", "50")],
    );
    let direct = fleet
        .vars
        .iter()
        .find(|(k, _)| k == "CPO__STORE__URL")
        .map(|(_, v)| v.clone())
        .unwrap();
    let proxied = direct.replace("127.0.0.1:5432", &proxy.addr.to_string());
    for stage in STAGES.iter().filter(|s| **s != "experimentation") {
        fleet.start(stage);
    }
    fleet.start_with(
        "experimentation",
        &[
            ("CPO__STORE__URL", &proxied),
            // A lookup gives up on the pool quickly: the batch waits as unavailable.
            ("CPO__STORE__ACQUIRE_TIMEOUT_MS", "1000"),
        ],
    );
    fleet.wait_ready("experimentation", Duration::from_secs(60));
    fleet.enqueue(Some(&csv));
    wait_for(
        &fleet,
        "500 customers assigned before the outage",
        Duration::from_secs(120),
        Duration::from_millis(50),
        || (assigned(&direct) >= 500).then_some(()),
    );
    assert!(proxy.accepted.load(Ordering::SeqCst) > 0);
    proxy.off();
    // Batches past their writes when the store went away may land; then nothing moves.
    std::thread::sleep(Duration::from_secs(2));
    let frozen = assigned(&direct);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        assigned(&direct),
        frozen,
        "assigned while the store was down"
    );
    assert!(frozen < 3_000, "the outage came too late to matter");
    fleet.assert_running();
    let letters: Vec<_> = fleet
        .dead_letters()
        .into_iter()
        .filter(|l| l["stage"] == "experimentation")
        .collect();
    assert!(
        letters.is_empty(),
        "dead-lettered during the outage: {letters:?}"
    );
    let log = fleet.logs_of("experimentation");
    assert!(
        log.lines()
            .any(|l| l.contains("dependency unavailable") && l.contains("store")),
        "the worker says it waits for the store:\n{log}"
    );

    proxy.on();
    let out = tmp.path().join("out");
    fleet.collect(&out, 180);
    let (summary, outbox) = check_collected(&out, 3_000);
    assert_eq!(assigned(&direct), outbox.len() as u64);
    assert_eq!(summary["dead_lettered"], 0, "{summary}");
    fleet.teardown();
}
