//! Load test of verified SendGrid events: serves the gateway on real RabbitMQ
//! and Redis (prefix `bench.gw.<pid>.`), writes a wrk script holding pre-signed
//! batches with unique event ids (so every event is verified and published,
//! none deduplicated), and counts the events that reach the queue.
//!
//! cargo run --release -p cpo-gateway --example sendgrid_bench -- target/bench/gw 600 100
//! wrk -t2 -c32 -d5s -s target/bench/gw/requests.lua http://127.0.0.1:18080/webhooks/sendgrid

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cpo_gateway::config::SendgridConfig;
use cpo_gateway::{Gateway, GatewayConfig, Parts};
use cpo_shared::queues;
use cpo_shared::redis_cache::{RedisCache, RedisConfig};
use cpo_shared::transport::Transport;
use cpo_shared::transport::amqp::{AmqpConfig, AmqpTransport};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

fn lua_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).cloned().unwrap_or("target/bench/gw".into()));
    let batches: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(600);
    let per_batch: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(100);
    std::fs::create_dir_all(&dir).unwrap();
    let prefix = format!("bench.gw.{}.", std::process::id());

    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let public = STANDARD.encode(cpo_gateway::verify::sendgrid::spki_der(
        pair.public_key().as_ref(),
    ));

    // The requests, signed now (valid for the 5 minute window).
    let timestamp = (cpo_shared::envelope::now_ms() / 1000).to_string();
    let mut lua = std::io::BufWriter::new(std::fs::File::create(dir.join("requests.lua")).unwrap());
    writeln!(
        lua,
        "wrk.method = \"POST\"\nlocal bodies = {{}}\nlocal sigs = {{}}"
    )
    .unwrap();
    for b in 0..batches {
        let events: Vec<serde_json::Value> = (0..per_batch)
            .map(|i| {
                let customer = format!("c{b}-{i}");
                serde_json::json!({"email": format!("{customer}@example.com"), "timestamp": 1_765_000_000,
                    "event": "open", "sg_event_id": format!("bench-{}-{b}-{i}", std::process::id()),
                    "message_id": cpo_shared::envelope::message_id("bench", &customer)})
            })
            .collect();
        let body = serde_json::to_string(&events).unwrap();
        let signed = [timestamp.as_bytes(), body.as_bytes()].concat();
        let signature = STANDARD.encode(pair.sign(&rng, &signed).unwrap());
        writeln!(
            lua,
            "bodies[{}] = {}\nsigs[{}] = \"{signature}\"",
            b + 1,
            lua_string(&body),
            b + 1
        )
        .unwrap();
    }
    writeln!(
        lua,
        r#"local threads = 0
function setup(thread) thread:set("offset", threads); threads = threads + 1 end
local i = 0
function request()
  i = i + 1
  -- Two threads take alternate batches, so no batch is posted twice.
  local n = ((i - 1) * 2 + offset) % #bodies + 1
  return wrk.format(nil, nil, {{["Content-Type"] = "application/json",
    ["X-Twilio-Email-Event-Webhook-Signature"] = sigs[n],
    ["X-Twilio-Email-Event-Webhook-Timestamp"] = "{timestamp}"}}, bodies[n])
end
function done(summary, latency, requests)
  io.write(string.format("non-2xx: %d\n", summary.errors.status))
end"#
    )
    .unwrap();
    lua.flush().unwrap();

    let amqp = AmqpConfig {
        prefix: prefix.clone(),
        ..AmqpConfig::default()
    };
    let transport = AmqpTransport::connect(amqp).await.expect("RabbitMQ");
    let cache = Arc::new(
        RedisCache::new(&RedisConfig {
            key_prefix: prefix.clone(),
            ..RedisConfig::default()
        })
        .unwrap(),
    );
    let gateway = Gateway::new(Parts {
        config: GatewayConfig {
            sendgrid: Some(SendgridConfig {
                public_key: Some(public),
                ..SendgridConfig::default()
            }),
            ..GatewayConfig::default()
        },
        transport: Arc::new(transport.clone()),
        cache: cache.clone(),
        store: None,
        unsubscribe: None,
        campaigns: None,
    })
    .unwrap();
    // Count what reaches the queue.
    let received = Arc::new(AtomicU64::new(0));
    let mut events = transport.subscribe(queues::EVENTS, 1000).await.unwrap();
    let counter = received.clone();
    tokio::spawn(async move {
        while let Some(Ok(delivery)) = events.next().await {
            let _ = delivery.acker.ack().await;
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    let reporter = received.clone();
    tokio::spawn(async move {
        let mut last = 0;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = reporter.load(Ordering::Relaxed);
            if now != last {
                eprintln!("events on the queue: {now}");
                last = now;
            }
        }
    });
    gateway.set_ready(true);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:18080")
        .await
        .unwrap();
    eprintln!(
        "serving on 127.0.0.1:18080; {batches} batches of {per_batch} events in {}",
        dir.join("requests.lua").display()
    );
    let server = axum::serve(listener, gateway.router()).with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    let _ = server.await;
    eprintln!("events on the queue: {}", received.load(Ordering::Relaxed));
    let _ = cache.delete_prefixed().await;
    let _ = transport.delete_topology().await;
    transport.close().await;
}
