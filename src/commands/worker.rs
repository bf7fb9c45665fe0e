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
use cpo_shared::audit::FileAuditLog;
use cpo_shared::cache::Cache;
use cpo_shared::config::Settings;
use cpo_shared::metrics::metrics;
use cpo_shared::redis_cache::{RedisCache, RedisConfig};
use cpo_shared::runtime::{Runtime, RuntimeConfig};
use cpo_shared::shutdown;
use cpo_shared::transport::amqp::{AmqpConfig, AmqpTransport};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::wiring::{self, Backends};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StageName {
    Segmentation,
    Retrieval,
    Generation,
    Safety,
    Experimentation,
    Delivery,
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
    /// Address the HTTP endpoints bind to.
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
            bind: "0.0.0.0".into(),
            audit_dir: PathBuf::from("out/fleet"),
            outbox: PathBuf::from("out/fleet/outbox.jsonl"),
            shutdown_grace_ms: 25_000,
        }
    }
}

pub fn run(args: WorkerArgs, config: Option<&Path>) -> anyhow::Result<u8> {
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
    let worker: WorkerConfig = settings.section("worker")?;
    let stage_name = args.stage.as_str();
    let ready = Arc::new(AtomicBool::new(false));
    let token = shutdown::on_signals();

    let port = args.port.unwrap_or(worker.port);
    let addr: SocketAddr = format!("{}:{port}", worker.bind)
        .parse()
        .with_context(|| format!("worker.bind: `{}` is not an address", worker.bind))?;
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

    let amqp: AmqpConfig = settings.section("amqp")?;
    let transport = AmqpTransport::connect(amqp)
        .await
        .context("cannot reach RabbitMQ")?;
    let redis: RedisConfig = settings.section("redis")?;
    let cache: Arc<dyn Cache> = Arc::new(RedisCache::new(&redis)?);
    let progress_cache = cache.clone();
    std::fs::create_dir_all(&worker.audit_dir).with_context(|| {
        format!(
            "worker.audit_dir: cannot create {}",
            worker.audit_dir.display()
        )
    })?;
    let audit = Arc::new(FileAuditLog::open(
        &worker.audit_dir.join(format!("audit-{stage_name}.jsonl")),
    )?);
    if let Some(parent) = worker.outbox.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let (signer, pseudonymizer) = wiring::keys(&settings, false)?;
    // The send-batch key goes to the two stages that sign and verify batches only.
    let batch_signer = match args.stage {
        StageName::Experimentation | StageName::Delivery => {
            Some(wiring::batch_signer(&settings, false)?)
        }
        _ => None,
    };
    let backends = Backends {
        settings: &settings,
        cache,
        audit: audit.clone(),
        signer,
        batch_signer,
        pseudonymizer,
        content_dir: None,
        outbox: worker.outbox.clone(),
        generator: None,
        screen: None,
    };
    let runtime_config: RuntimeConfig = settings.section("runtime")?;
    let runtime = Runtime::new(Arc::new(transport.clone()), runtime_config, token.clone())
        .with_progress(progress_cache);
    let run = {
        let runtime = runtime.clone();
        match args.stage {
            StageName::Segmentation => spawn(runtime, wiring::segmentation(&backends)?),
            StageName::Retrieval => spawn(runtime, wiring::retrieval(&backends)?),
            StageName::Generation => spawn(runtime, wiring::generation(&backends)?),
            StageName::Safety => spawn(
                runtime,
                wiring::safety_with_default(&backends, cpo_safety::OnScreenError::Hold)?,
            ),
            StageName::Experimentation => spawn(runtime, wiring::experimentation(&backends)?),
            StageName::Delivery => spawn(runtime, wiring::delivery(&backends)?),
        }
    };
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

fn spawn<S: cpo_shared::Stage>(
    runtime: Runtime,
    stage: S,
) -> tokio::task::JoinHandle<Result<(), cpo_shared::transport::TransportError>> {
    tokio::spawn(async move { runtime.run(Arc::new(stage)).await })
}

async fn readyz(State(ready): State<Arc<AtomicBool>>) -> (StatusCode, &'static str) {
    if ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}
