//! ESP webhooks end to end: real HTTP into the gateway, real RabbitMQ and Redis
//! (SES through SNS: `sns.rs`).

mod common;

use std::time::Duration;

use common::{Extras, Harness, SendgridKey, message_id, now_s, unique};
use cpo_gateway::GatewayConfig;
use cpo_gateway::config::{MailgunConfig, SendgridConfig, TokenConfig};
use cpo_gateway::verify::mailgun::sign as mailgun_sign;
use serde_json::{Value, json};

const QUIET: Duration = Duration::from_millis(400);
const SG_SIG: &str = "X-Twilio-Email-Event-Webhook-Signature";
const SG_TS: &str = "X-Twilio-Email-Event-Webhook-Timestamp";

fn sendgrid_config(key: &SendgridKey) -> GatewayConfig {
    GatewayConfig {
        sendgrid: Some(SendgridConfig {
            public_key: Some(key.public_base64.clone()),
            ..SendgridConfig::default()
        }),
        ..GatewayConfig::default()
    }
}

fn sendgrid_batch(ids: &[&str]) -> Vec<u8> {
    let events: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, customer)| {
            json!({"email": format!("{customer}@example.com"), "timestamp": 1_765_000_000 + i as i64,
                "event": "open", "sg_event_id": format!("sg-{customer}"),
                "sg_message_id": format!("sgm-{customer}"), "message_id": message_id(customer)})
        })
        .collect();
    serde_json::to_vec(&events).unwrap()
}

async fn post_sendgrid(h: &Harness, key: &SendgridKey, body: &[u8], ts: i64) -> (u16, String) {
    let ts = ts.to_string();
    let signature = key.sign(&ts, body);
    h.post(
        "/webhooks/sendgrid",
        "application/json",
        &[(SG_SIG, signature), (SG_TS, ts)],
        body.to_vec(),
    )
    .await
}

#[tokio::test]
async fn sendgrid_batch_is_published_once_even_posted_twice_and_a_flipped_byte_is_refused() {
    let key = SendgridKey::new();
    let mut h = Harness::start(&unique("sg"), sendgrid_config(&key), Extras::default()).await;
    let body = sendgrid_batch(&["c1", "c2", "c3"]);

    let (status, answer) = post_sendgrid(&h, &key, &body, now_s()).await;
    assert_eq!(status, 200, "{answer}");
    let events = h.drain_events(QUIET).await;
    assert_eq!(events.len(), 3, "one message per event");
    let first = &events
        .iter()
        .find(|e| e["payload"]["event_id"] == "sendgrid:sg-c1")
        .expect("c1")["payload"];
    assert_eq!(first["provider"], "sendgrid");
    assert_eq!(first["type"], "open");
    assert_eq!(first["message_id"], message_id("c1"));
    assert_eq!(first["provider_message_id"], "sgm-c1");
    assert_eq!(first["occurred_at_ms"], 1_765_000_000_000i64);

    // The ESP retries: answered 2xx, nothing published again.
    let (status, answer) = post_sendgrid(&h, &key, &body, now_s()).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap()["duplicates"],
        3
    );
    assert!(
        h.drain_events(QUIET).await.is_empty(),
        "a retry must not publish again"
    );

    // One flipped byte: 401, nothing published, counted.
    let before = h
        .metric(
            "cpo_gateway_webhook_rejected_total{provider=\"sendgrid\",reason=\"bad_signature\"}",
        )
        .await;
    let ts = now_s().to_string();
    let signature = key.sign(&ts, &body);
    let mut tampered = sendgrid_batch(&["c4"]);
    let signed_for_tampered = key.sign(&ts, &tampered);
    let position = tampered.len() / 2;
    tampered[position] ^= 0x01;
    for (sig, payload) in [
        (signature, tampered.clone()),
        (signed_for_tampered, tampered),
    ] {
        let (status, _) = h
            .post(
                "/webhooks/sendgrid",
                "application/json",
                &[(SG_SIG, sig), (SG_TS, ts.clone())],
                payload,
            )
            .await;
        assert_eq!(status, 401);
    }
    let after = h
        .metric(
            "cpo_gateway_webhook_rejected_total{provider=\"sendgrid\",reason=\"bad_signature\"}",
        )
        .await;
    assert_eq!(after - before, 2.0);

    // A correctly signed but stale request (a captured replay) is refused too.
    let stale = sendgrid_batch(&["c5"]);
    let (status, answer) = post_sendgrid(&h, &key, &stale, now_s() - 301).await;
    assert_eq!(status, 401, "{answer}");
    assert!(answer.contains("stale"));
    assert!(h.drain_events(QUIET).await.is_empty());
    h.stop().await;
}

fn mailgun_body(key: &[u8], token: &str, customer: &str, timestamp: i64) -> String {
    let ts = timestamp.to_string();
    json!({"signature": {"timestamp": ts, "token": token, "signature": mailgun_sign(key, &ts, token)},
        "event-data": {"id": format!("mg-{customer}"), "event": "clicked", "timestamp": timestamp as f64,
            "user-variables": {"message_id": message_id(customer)}}})
    .to_string()
}

#[tokio::test]
async fn mailgun_valid_event_is_accepted_and_its_token_replay_refused() {
    let config = GatewayConfig {
        mailgun: Some(MailgunConfig {
            signing_key: Some("mg-signing-key".into()),
            ..MailgunConfig::default()
        }),
        ..GatewayConfig::default()
    };
    let mut h = Harness::start(&unique("mg"), config, Extras::default()).await;
    let body = mailgun_body(b"mg-signing-key", "token-1", "c1", now_s());
    let (status, answer) = h
        .post("/webhooks/mailgun", "application/json", &[], body.clone())
        .await;
    assert_eq!(status, 200, "{answer}");
    let events = h.drain_events(QUIET).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["payload"]["event_id"], "mailgun:mg-c1");
    assert_eq!(events[0]["payload"]["type"], "click");

    let (status, answer) = h
        .post("/webhooks/mailgun", "application/json", &[], body)
        .await;
    assert_eq!(status, 401);
    assert!(answer.contains("seen before"), "{answer}");
    let wrong_key = mailgun_body(b"another-key", "token-2", "c2", now_s());
    assert_eq!(
        h.post("/webhooks/mailgun", "application/json", &[], wrong_key)
            .await
            .0,
        401
    );
    assert!(h.drain_events(QUIET).await.is_empty());
    assert!(
        h.metric("cpo_gateway_webhook_rejected_total{provider=\"mailgun\",reason=\"replay\"}")
            .await
            >= 1.0
    );
    h.stop().await;
}

#[tokio::test]
async fn own_events_need_the_bearer_token_and_foreign_ones_are_counted_unmatched() {
    let config = GatewayConfig {
        cpo: Some(TokenConfig {
            token: Some("crm-token".into()),
            ..TokenConfig::default()
        }),
        ..GatewayConfig::default()
    };
    let mut h = Harness::start(&unique("own"), config, Extras::default()).await;
    let body = json!([
        {"event_id": "e1", "message_id": message_id("c1"), "type": "conversion", "timestamp": "2026-12-01T10:00:00Z"},
        {"event_id": "e2", "message_id": "not-one-of-ours", "type": "open", "timestamp": "2026-12-01T10:00:00Z"}
    ])
    .to_string();
    let (status, _) = h
        .post("/webhooks/cpo", "application/json", &[], body.clone())
        .await;
    assert_eq!(status, 401, "no token");
    let (status, _) = h
        .post(
            "/webhooks/cpo",
            "application/json",
            &[("authorization", "Bearer wrong".into())],
            body.clone(),
        )
        .await;
    assert_eq!(status, 401);
    let (status, answer) = h
        .post(
            "/webhooks/cpo",
            "application/json",
            &[("authorization", "Bearer crm-token".into())],
            body,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        (answer["published"].as_u64(), answer["unmatched"].as_u64()),
        (Some(1), Some(1))
    );
    let events = h.drain_events(QUIET).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["payload"]["event_id"], "cpo:e1");
    assert_eq!(events[0]["payload"]["type"], "conversion");
    assert!(
        h.metric("cpo_gateway_events_total{outcome=\"unmatched\",provider=\"cpo\"}")
            .await
            >= 1.0
    );
    h.stop().await;
}

#[tokio::test]
async fn sources_not_configured_answer_404() {
    let key = SendgridKey::new();
    let h = Harness::start(&unique("404"), sendgrid_config(&key), Extras::default()).await;
    for path in [
        "/webhooks/ses",
        "/webhooks/mailgun",
        "/webhooks/cpo",
        "/v1/campaigns",
        "/u/abc.def.0123",
    ] {
        let (status, _) = h.post(path, "application/json", &[], "{}").await;
        assert_eq!(status, 404, "{path}");
    }
    assert_eq!(h.get("/v1/campaigns/spring-1", &[]).await.0, 404);
    assert_eq!(h.get("/u/abc.def.0123", &[]).await.0, 404);
    assert_eq!(h.get("/healthz", &[]).await.0, 200);
    assert_eq!(h.get("/readyz", &[]).await.0, 200);
    h.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_4xx_with_its_reason_and_is_counted() {
    let key = SendgridKey::new();
    let config = GatewayConfig {
        max_body_bytes: 4096,
        ..sendgrid_config(&key)
    };
    let mut h = Harness::start(&unique("bad"), config, Extras::default()).await;
    let ts = now_s();

    let huge = vec![b' '; 5000];
    let (status, answer) = post_sendgrid(&h, &key, &huge, ts).await;
    assert_eq!(status, 413, "{answer}");

    let (status, answer) = post_sendgrid(&h, &key, b"[{not json", ts).await;
    assert_eq!(status, 400);
    assert!(answer.contains("not JSON"), "{answer}");

    let body = sendgrid_batch(&["c1"]);
    let sig = key.sign(&ts.to_string(), &body);
    let (status, answer) = h
        .post(
            "/webhooks/sendgrid",
            "text/html",
            &[(SG_SIG, sig), (SG_TS, ts.to_string())],
            body,
        )
        .await;
    assert_eq!(status, 415);
    assert!(answer.contains("application/json"), "{answer}");

    let unknown = serde_json::to_vec(
        &json!([{"event": "exploded", "timestamp": 1, "message_id": message_id("c1")}]),
    )
    .unwrap();
    let (status, answer) = post_sendgrid(&h, &key, &unknown, ts).await;
    assert_eq!(status, 422);
    assert!(answer.contains("exploded"), "{answer}");

    let malformed =
        serde_json::to_vec(&json!([{"event": "open", "message_id": message_id("c1")}])).unwrap();
    let (status, answer) = post_sendgrid(&h, &key, &malformed, ts).await;
    assert_eq!(status, 400);
    assert!(
        answer.contains("item 1") && answer.contains("timestamp"),
        "{answer}"
    );

    for (reason, at_least) in [
        ("too_large", 1.0),
        ("malformed_json", 1.0),
        ("content_type", 1.0),
        ("unknown_type", 1.0),
        ("malformed_event", 1.0),
    ] {
        let value = h
            .metric(&format!(
                "cpo_gateway_webhook_rejected_total{{provider=\"sendgrid\",reason=\"{reason}\"}}"
            ))
            .await;
        assert!(value >= at_least, "{reason}: {value}");
    }
    assert!(h.drain_events(QUIET).await.is_empty());
    // Still serving.
    let (status, _) = post_sendgrid(&h, &key, &sendgrid_batch(&["c9"]), now_s()).await;
    assert_eq!(status, 200);
    h.stop().await;
}

#[tokio::test]
async fn broker_or_redis_down_answers_503_and_the_retry_goes_through() {
    let key = SendgridKey::new();
    let prefix = unique("down");
    let body = sendgrid_batch(&["c1", "c2"]);

    // Redis down: 503 before anything is published.
    let h = Harness::start(
        &prefix,
        sendgrid_config(&key),
        Extras {
            redis_down: true,
            ..Extras::default()
        },
    )
    .await;
    let (status, answer) = post_sendgrid(&h, &key, &body, now_s()).await;
    assert_eq!(status, 503, "{answer}");
    h.server_only_stop().await;

    // The broker connection gone: 503, and the claims are dropped so the retry is not a "duplicate".
    let h = Harness::start(&prefix, sendgrid_config(&key), Extras::default()).await;
    h.transport.close().await;
    let (status, answer) = post_sendgrid(&h, &key, &body, now_s()).await;
    assert_eq!(status, 503, "{answer}");
    h.server_only_stop().await;

    let mut h = Harness::start(&prefix, sendgrid_config(&key), Extras::default()).await;
    let (status, answer) = post_sendgrid(&h, &key, &body, now_s()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap()["published"],
        2
    );
    assert_eq!(h.drain_events(QUIET).await.len(), 2);
    h.stop().await;
}

#[tokio::test]
async fn an_event_claimed_by_a_request_that_died_is_taken_once_its_claim_expires() {
    use cpo_shared::cache::Cache;
    let key = SendgridKey::new();
    let mut h = Harness::start(&unique("claim"), sendgrid_config(&key), Extras::default()).await;
    // What a gateway killed -9 between its claim and its publish leaves behind.
    h.cache
        .set(
            "gateway:event:sendgrid:sg-c1",
            b"p",
            Some(Duration::from_millis(1500)),
        )
        .await
        .unwrap();
    let body = sendgrid_batch(&["c1", "c2"]);
    let (status, answer) = post_sendgrid(&h, &key, &body, now_s()).await;
    assert_eq!(
        status, 503,
        "in flight elsewhere: the ESP must retry, {answer}"
    );
    assert!(
        h.drain_events(QUIET).await.is_empty(),
        "nothing published while refused"
    );
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let (status, answer) = post_sendgrid(&h, &key, &body, now_s()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap()["published"],
        2
    );
    assert_eq!(h.drain_events(QUIET).await.len(), 2);
    h.stop().await;
}
