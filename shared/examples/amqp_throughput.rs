//! Broker throughput through `AmqpTransport`: publish N messages of S bytes with
//! publisher confirms (pipelined: `--in-flight` publishes awaiting their confirm at
//! once), then consume them all with one ack each. Prints messages/s and MB/s.
//!
//! ```text
//! cargo run --release -p cpo-shared --example amqp_throughput -- \
//!     --messages 20000 --size 1024 [--in-flight 256] [--prefetch 256] [--url amqp://...]
//! ```
//!
//! The URL defaults to `CPO_TEST_AMQP_URL`, else the local broker. The run uses its
//! own queue prefix and deletes its queues at the end.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use cpo_shared::queues;
use cpo_shared::transport::amqp::{AmqpConfig, AmqpTransport, redact_url};
use cpo_shared::transport::{Publish, Transport};
use tokio::task::JoinSet;

struct Args {
    messages: usize,
    size: usize,
    in_flight: usize,
    prefetch: u16,
    url: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        messages: 20_000,
        size: 1024,
        in_flight: 256,
        prefetch: 256,
        url: std::env::var("CPO_TEST_AMQP_URL").unwrap_or_else(|_| AmqpConfig::default().url),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .map_err(|e| format!("{flag} {value}: {e}"))
        };
        match flag.as_str() {
            "--messages" => args.messages = number()?,
            "--size" => args.size = number()?,
            "--in-flight" => args.in_flight = number()?.max(1),
            "--prefetch" => {
                args.prefetch = u16::try_from(number()?.max(1)).map_err(|e| e.to_string())?
            }
            "--url" => args.url = value,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn rate(label: &str, messages: usize, bytes: usize, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    println!(
        "{label:<8} {messages} messages of {bytes} B in {seconds:.2} s: {:.0} msg/s, {:.1} MB/s",
        messages as f64 / seconds,
        (messages * bytes) as f64 / seconds / 1e6,
    );
}

async fn publish_all(transport: &AmqpTransport, args: &Args) -> Result<Duration, String> {
    let body = vec![b'x'; args.size];
    let started = Instant::now();
    let mut publishers = JoinSet::new();
    for worker in 0..args.in_flight {
        let transport = transport.clone();
        let body = body.clone();
        let share = (worker..args.messages).step_by(args.in_flight).count();
        publishers.spawn(async move {
            for i in 0..share {
                let message = Publish {
                    id: format!("bench-{worker}-{i}"),
                    body: body.clone(),
                    delay: None,
                };
                transport
                    .publish(queues::SEGMENTS, message)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        });
    }
    while let Some(joined) = publishers.join_next().await {
        joined.map_err(|e| e.to_string())??;
    }
    Ok(started.elapsed())
}

async fn consume_all(transport: &AmqpTransport, args: &Args) -> Result<Duration, String> {
    let mut subscription = transport
        .subscribe(queues::SEGMENTS, args.prefetch)
        .await
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    for received in 0..args.messages {
        let delivery = tokio::time::timeout(Duration::from_secs(30), subscription.next())
            .await
            .map_err(|_| format!("stalled after {received} messages"))?
            .ok_or("subscription ended")?
            .map_err(|e| e.to_string())?;
        delivery.acker.ack().await.map_err(|e| e.to_string())?;
    }
    Ok(started.elapsed())
}

async fn run(args: Args) -> Result<(), String> {
    let config = AmqpConfig {
        url: args.url.clone(),
        prefix: format!("bench.{}.", std::process::id()),
        prefetch: args.prefetch,
        ..AmqpConfig::default()
    };
    let transport = AmqpTransport::connect(config)
        .await
        .map_err(|e| format!("{}: {e}", redact_url(&args.url)))?;
    let outcome = async {
        let published = publish_all(&transport, &args).await?;
        rate("publish", args.messages, args.size, published);
        let consumed = consume_all(&transport, &args).await?;
        rate("consume", args.messages, args.size, consumed);
        Ok::<(), String>(())
    }
    .await;
    let cleanup = transport.delete_topology().await;
    transport.close().await;
    outcome?;
    cleanup.map_err(|e| format!("cleanup: {e}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match parse_args() {
        Ok(args) => run(args).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("amqp_throughput: {e}");
            ExitCode::FAILURE
        }
    }
}
