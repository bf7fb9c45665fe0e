//! SES events through SNS: real HTTP into the gateway, real RabbitMQ and Redis,
//! notifications signed with the test-only certificate in tests/fixtures.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Extras, FIXTURES, Harness, SNS_CERT_URL, message_id, now_s, unique};
use cpo_gateway::GatewayConfig;
use cpo_gateway::config::SesConfig;
use serde_json::{Value, json};

const QUIET: Duration = Duration::from_millis(400);

fn ses_config(extra_certificates: &[(&str, &str)]) -> GatewayConfig {
    let mut certificates = BTreeMap::new();
    certificates.insert(
        SNS_CERT_URL.to_string(),
        PathBuf::from(FIXTURES).join("sns-test-only.pem"),
    );
    for (url, file) in extra_certificates {
        certificates.insert(url.to_string(), PathBuf::from(FIXTURES).join(file));
    }
    GatewayConfig {
        ses: Some(SesConfig {
            regions: vec!["us-east-1".into()],
            certificates,
            ..SesConfig::default()
        }),
        ..GatewayConfig::default()
    }
}

fn sns_key() -> rsa::RsaPrivateKey {
    use rsa::pkcs8::DecodePrivateKey;
    let pem = std::fs::read_to_string(PathBuf::from(FIXTURES).join("sns-test-only.key")).unwrap();
    rsa::RsaPrivateKey::from_pkcs8_pem(&pem).unwrap()
}

/// An SNS notification carrying an SES open, signed as SNS does.
fn sns_notification(
    id: &str,
    customer: &str,
    timestamp: &str,
    version: &str,
    cert_url: &str,
) -> Value {
    use rsa::signature::{SignatureEncoding, Signer};
    let message = json!({"eventType": "Open",
        "mail": {"messageId": format!("ses-{customer}"), "timestamp": timestamp,
                 "tags": {"message_id": [message_id(customer)]}},
        "open": {"timestamp": timestamp}})
    .to_string();
    let mut envelope = json!({"Type": "Notification", "MessageId": id,
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:ses-events", "Message": message,
        "Timestamp": timestamp, "SignatureVersion": version, "SigningCertURL": cert_url});
    let canonical = cpo_gateway::verify::sns::canonical_string(&envelope).unwrap();
    let signature = if version == "1" {
        rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(sns_key())
            .sign(canonical.as_bytes())
            .to_bytes()
    } else {
        rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(sns_key())
            .sign(canonical.as_bytes())
            .to_bytes()
    };
    envelope["Signature"] = json!(STANDARD.encode(signature));
    envelope
}

fn rfc3339(seconds: i64) -> String {
    cpo_analysis::events::time::format_rfc3339(seconds)
}

#[tokio::test]
async fn sns_notifications_signed_with_the_certificate_are_accepted_and_forgeries_refused() {
    let unlisted = "https://sns.evil.example/SimpleNotificationService-test.pem";
    let mut h = Harness::start(
        &unique("ses"),
        ses_config(&[(unlisted, "sns-test-only.pem")]),
        Extras::default(),
    )
    .await;
    let now = rfc3339(now_s());
    for (id, customer, version) in [("sns-1", "c1", "1"), ("sns-2", "c2", "2")] {
        let body = sns_notification(id, customer, &now, version, SNS_CERT_URL).to_string();
        let (status, answer) = h
            .post("/webhooks/ses", "text/plain; charset=UTF-8", &[], body)
            .await;
        assert_eq!(status, 200, "SignatureVersion {version}: {answer}");
    }
    let events = h.drain_events(QUIET).await;
    let mut ids: Vec<_> = events
        .iter()
        .map(|e| e["payload"]["event_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["ses:sns-1", "ses:sns-2"]);
    assert_eq!(events[0]["payload"]["provider"], "ses");
    // The stored payload is the SES event (the envelope's Message), not the SNS envelope.
    let raw: Value = serde_json::from_str(events[0]["payload"]["raw"].as_str().unwrap()).unwrap();
    assert_eq!(raw["eventType"], "Open");
    assert!(
        events[0]["payload"]["provider_message_id"]
            .as_str()
            .unwrap()
            .starts_with("ses-c")
    );

    // A wrong signature: the signed text changed after signing.
    let mut forged = sns_notification("sns-3", "c3", &now, "2", SNS_CERT_URL);
    forged["MessageId"] = json!("sns-3b");
    let (status, answer) = h
        .post("/webhooks/ses", "text/plain", &[], forged.to_string())
        .await;
    assert_eq!(status, 401, "{answer}");
    let mut bogus = sns_notification("sns-4", "c4", &now, "1", SNS_CERT_URL);
    bogus["Signature"] = json!("BOGUS");
    assert_eq!(
        h.post("/webhooks/ses", "text/plain", &[], bogus.to_string())
            .await
            .0,
        401
    );

    // A certificate host that is not allow-listed, even with a certificate configured for it.
    let off_list = sns_notification("sns-5", "c5", &now, "2", unlisted);
    let (status, answer) = h
        .post("/webhooks/ses", "text/plain", &[], off_list.to_string())
        .await;
    assert_eq!(status, 401);
    assert!(answer.contains("allow-listed"), "{answer}");
    let plain_http = sns_notification(
        "sns-6",
        "c6",
        &now,
        "2",
        "http://sns.us-east-1.amazonaws.com/x.pem",
    );
    assert_eq!(
        h.post("/webhooks/ses", "text/plain", &[], plain_http.to_string())
            .await
            .0,
        401
    );

    // A stale Timestamp (signed correctly, two hours old).
    let old = sns_notification("sns-7", "c7", &rfc3339(now_s() - 7200), "2", SNS_CERT_URL);
    let (status, answer) = h
        .post("/webhooks/ses", "text/plain", &[], old.to_string())
        .await;
    assert_eq!(status, 401);
    assert!(answer.contains("stale"), "{answer}");

    // A subscription confirmation naming an unlisted SubscribeURL is not followed.
    let mut confirm = json!({"Type": "SubscriptionConfirmation", "MessageId": "sub-1", "Token": "tok",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:ses-events", "Message": "confirm",
        "SubscribeURL": "https://attacker.example/confirm", "Timestamp": now,
        "SignatureVersion": "2", "SigningCertURL": SNS_CERT_URL});
    {
        use rsa::signature::{SignatureEncoding, Signer};
        let canonical = cpo_gateway::verify::sns::canonical_string(&confirm).unwrap();
        let sig = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(sns_key())
            .sign(canonical.as_bytes())
            .to_bytes();
        confirm["Signature"] = json!(STANDARD.encode(sig));
    }
    let (status, answer) = h
        .post("/webhooks/ses", "text/plain", &[], confirm.to_string())
        .await;
    assert_eq!(status, 401, "{answer}");
    assert!(answer.contains("attacker.example"), "{answer}");

    assert!(
        h.drain_events(QUIET).await.is_empty(),
        "nothing refused may be published"
    );
    h.stop().await;
}
