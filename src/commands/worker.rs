//! `cpo worker <stage>`: one stage as its own process on RabbitMQ and Redis
//! (the fleet mode), serving `/metrics`, `/healthz` and `/readyz`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use clap::{Args, ValueEnum};
use cpo_shared::audit::{AuditError, LazyFileAuditLog};
use cpo_shared::cache::Cache;
use cpo_shared::config::Settings;
use cpo_shared::metrics::metrics;
use cpo_shared::redis_cache::{RedisAuditHead, RedisCache, RedisConfig};
use cpo_shared::runtime::{Runtime, RuntimeConfig};
use cpo_shared::shutdown;
use cpo_shared::transport::amqp::{AmqpConfig, AmqpTransport};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::wiring::{self, Backends};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StageName {
    Segmentation,
    Retrieval,
    Generation,
    Safety,
    Experimentation,
    Delivery,
    Events,
    /// The HTTP gateway (webhooks, unsubscribes, campaign API): not a queue stage.
    Gateway,
}

impl StageName {
    pub fn as_str(self) -> &'static str {
        match self {
            StageName::Segmentation => "segmentation",
            StageName::Retrieval => "retrieval",
            StageName::Generation => "generation",
            StageName::Safety => "safety",
            StageName::Experimentation => "experimentation",
            StageName::Delivery => "delivery",
            StageName::Events => "events",
            StageName::Gateway => "gateway",
        }
    }
}

#[derive(Args)]
pub struct WorkerArgs {
    /// The stage this process runs.
    pub stage: StageName,
    /// Port of /metrics, /healthz and /readyz (default `worker.port`, 9464).
    #[arg(long)]
    pub port: Option<u16>,
}

/// Config section `worker`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    pub port: u16,
    /// Address the HTTP endpoints bind to: loopback unless set (the
    /// deployments set `0.0.0.0` so Prometheus and the probes can reach them).
    pub bind: String,
    /// Directory of this worker's audit log (`audit-<stage>.jsonl`: one hash chain per process).
    pub audit_dir: PathBuf,
    /// The outbox delivery appends to.
    pub outbox: PathBuf,
    /// How long in-flight messages may take to finish after SIGTERM.
    pub shutdown_grace_ms: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            port: 9464,
            bind: "127.0.0.1".into(),
            audit_dir: PathBuf::from("out/fleet"),
            outbox: PathBuf::from("out/fleet/outbox.jsonl"),
            shutdown_grace_ms: 25_000,
        }
    }
}

pub fn run(args: WorkerArgs, config: Option<&Path>) -> anyhow::Result<u8> {
    if args.stage == StageName::Gateway {
        return crate::commands::gateway::run(args.port, config);
    }
    crate::commands::init_logging(false, true);
    let settings = Settings::load(config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(args, settings))?;
    Ok(0)
}

async fn serve(args: WorkerArgs, settings: Settings) -> anyhow::Result<()> {
    // Every setting is read and checked, and the stage built, before the broker
    // is touched: a misconfigured worker fails with the key at fault, not after
    // connecting and declaring the topology (or with a connection error that
    // hides the real problem).
    let worker: WorkerConfig = settings.section("worker")?;
    let amqp: AmqpConfig = settings.section("amqp")?;
    let amqp = amqp.resolve()?;
    amqp.validate()?;
    let redis: RedisConfig = settings.section("redis")?;
    let mut runtime_config: RuntimeConfig = settings.section("runtime")?;
    let (signer, pseudonymizer) = wiring::keys(&settings, false)?;
    // The send-batch key goes to the two stages that sign and verify batches only.
    let batch_signer = match args.stage {
        StageName::Experimentation | StageName::Delivery => {
            Some(wiring::batch_signer(&settings, false)?)
        }
        _ => None,
    };
    let stage_name = args.stage.as_str();
    let port = args.port.unwrap_or(worker.port);
    let addr: SocketAddr = format!("{}:{port}", worker.bind)
        .parse()
        .with_context(|| format!("worker.bind: `{}` is not an address", worker.bind))?;
    // Lazy: no connection until the first request.
    let cache: Arc<dyn Cache> = Arc::new(RedisCache::new(&redis)?);
    let progress_cache = cache.clone();
    std::fs::create_dir_all(&worker.audit_dir).with_context(|| {
        format!(
            "worker.audit_dir: cannot create {}",
            worker.audit_dir.display()
        )
    })?;
    // The log on this worker's disk, its signed head in Redis (`audit.rs`).
    let audit_name = format!("audit-{stage_name}.jsonl");
    let audit = Arc::new(LazyFileAuditLog::new(
        worker.audit_dir.join(&audit_name),
        crate::audit_key::required(&settings)?,
        Arc::new(RedisAuditHead::new(&redis, &audit_name)?),
    ));
    // A log that does not verify stops the worker here; a head store that is
    // down does not: the log opens on first append, once it is back.
    match audit.open_now() {
        Err(AuditError::Unavailable(reason)) => {
            warn!(%reason, "audit head store unavailable; the audit log opens on first use");
        }
        other => other?,
    }
    if let Some(parent) = worker.outbox.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // The stages that read or write the record open it (and migrate it) before
    // the broker is touched; the others never connect.
    let (store, address_hasher) = match args.stage {
        StageName::Segmentation => (Some(wiring::open_store(&settings).await?), None),
        StageName::Experimentation | StageName::Delivery => (
            Some(wiring::open_store(&settings).await?),
            Some(crate::address_key::required(&settings)?),
        ),
        _ => (None, None),
    };
    let backends = Backends {
        settings: &settings,
        cache,
        store: store.clone(),
        send_records: store,
        address_hasher,
        redis: Some(redis.clone()),
        audit: audit.clone(),
        signer,
        batch_signer,
        pseudonymizer,
        content_dir: None,
        outbox: worker.outbox.clone(),
        generator: None,
        screen: None,
    };
    let launch = match args.stage {
        StageName::Segmentation => launcher(wiring::segmentation(&backends)?),
        StageName::Retrieval => launcher(wiring::retrieval(&backends)?),
        StageName::Generation => launcher(wiring::generation(&backends)?),
        StageName::Safety => launcher(wiring::safety_with_default(
            &backends,
            cpo_safety::OnScreenError::Hold,
        )?),
        StageName::Experimentation => launcher(wiring::experimentation(&backends)?),
        StageName::Delivery => launcher(wiring::delivery(&backends)?),
        StageName::Events => {
            let (stage, prefetch) = wiring::events(&settings, runtime_config.concurrency).await?;
            runtime_config.concurrency = prefetch;
            launcher(stage)
        }
        StageName::Gateway => anyhow::bail!("the gateway is not a queue stage"),
    };

    let ready = Arc::new(AtomicBool::new(false));
    let token = shutdown::on_signals();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let app = Router::new()
        .route("/metrics", get(|| async { metrics().render() }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(ready.clone());
    // The endpoints outlive the signal: /metrics stays scrapable and /readyz
    // answers 503 while in-flight work drains; they stop once the worker has.
    let http_stop = CancellationToken::new();
    let stopped = http_stop.clone().cancelled_owned();
    let http = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
    });

    let transport = AmqpTransport::connect(amqp)
        .await
        .context("cannot reach RabbitMQ")?;
    let runtime = Runtime::new(Arc::new(transport.clone()), runtime_config, token.clone())
        .with_progress(progress_cache);
    let run = launch(runtime);
    ready.store(true, Ordering::Release);
    info!(stage = stage_name, %addr, "worker consuming");
    tokio::spawn({
        let (ready, token) = (ready.clone(), token.clone());
        async move {
            token.cancelled().await;
            ready.store(false, Ordering::Release);
            info!(
                stage = stage_name,
                "shutting down: draining in-flight messages"
            );
        }
    });

    let grace = Duration::from_millis(worker.shutdown_grace_ms);
    let outcome = tokio::select! {
        done = run => done
            .context("stage task")?
            .map_err(|e| anyhow::anyhow!("{stage_name} stopped: {e}")),
        _ = async { token.cancelled().await; tokio::time::sleep(grace).await } => {
            error!(stage = stage_name, "in-flight work did not finish within the grace period");
            // Nothing is lost (unacked messages return to their queue when the
            // connection closes), but the exit status tells the orchestrator.
            Err(anyhow::anyhow!(
                "{stage_name}: in-flight work abandoned after the {} ms grace period; \
                 its messages will be redelivered",
                worker.shutdown_grace_ms
            ))
        }
    };
    ready.store(false, Ordering::Release);
    token.cancel();
    audit.flush()?;
    transport.close().await;
    http_stop.cancel();
    let _ = http.await;
    outcome?;
    info!(stage = stage_name, "worker stopped");
    Ok(())
}

type StageTask = tokio::task::JoinHandle<Result<(), cpo_shared::transport::TransportError>>;

/// A built stage, started once the runtime (and so the broker) is there.
type Launch = Box<dyn FnOnce(Runtime) -> StageTask + Send>;

fn launcher<S: cpo_shared::Stage>(stage: S) -> Launch {
    // The runtime presets these too, but only once it runs; /metrics answers
    // before that (while connecting), and must already show every series at 0.
    metrics().preset_stage(stage.name());
    stage.preset_metrics();
    Box::new(move |runtime| tokio::spawn(async move { runtime.run(Arc::new(stage)).await }))
}

async fn readyz(State(ready): State<Arc<AtomicBool>>) -> (StatusCode, &'static str) {
    if ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}
