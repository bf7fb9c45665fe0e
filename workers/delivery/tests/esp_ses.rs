//! SesSink against moto's server mode (`pip install 'moto[server]'`), with
//! moto's IAM authentication on, so every SendEmail must carry a valid
//! SigV4 signature of an IAM user allowed to send; and against a small local
//! server for the answers moto does not give (throttling, 5xx).

mod esp_ses_moto;
mod esp_support;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use cpo_delivery::esp::sigv4::Credentials;
use cpo_delivery::esp::{SesConfig, SesSink};
use cpo_delivery::{MailSink, SendOutcome};
use esp_ses_moto::*;
use esp_support::*;
use serde_json::{Value, json};

fn credentials_file(credentials: &Credentials, secret: &str) -> (tempfile::TempDir, PathBuf) {
    let (dir, path) = secret_file("");
    std::fs::write(
        &path,
        format!(
            "[default]\naws_access_key_id = AKIDOTHER\naws_secret_access_key = other\n\n[cpo]\naws_access_key_id = {}\naws_secret_access_key = {secret}\n",
            credentials.access_key_id
        ),
    )
    .unwrap();
    (dir, path)
}

fn sink(endpoint: String, file: PathBuf) -> SesSink {
    SesSink::from_config(&SesConfig {
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint),
        credentials_file: Some(file),
        profile: "cpo".into(),
        concurrency: 4,
        timeout_ms: 10_000,
        ..SesConfig::default()
    })
    .expect("sink builds")
}

#[tokio::test]
async fn sends_signed_raw_mime_through_moto() {
    let moto = Moto::start(3);
    let credentials = iam_user(&moto).await;
    let (status, text) = ses_call(
        &moto,
        &credentials,
        "/v2/email/identities",
        &json!({"EmailIdentity": "news@brand.example"}),
    )
    .await;
    assert_eq!(status, 200, "create identity: {text}");

    let (_dir, file) = credentials_file(&credentials, &credentials.secret_access_key);
    let ses = sink(moto.url(), file);
    assert_eq!((ses.name(), ses.max_batch()), ("ses", 50));
    let emails = emails(6);
    let outcomes = ses.send(&emails).await;
    let ids: Vec<&str> = outcomes.iter().map(sent_id).collect();
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), 6, "{ids:?}");

    // moto kept the raw messages under the ids it answered, as we sent them.
    let data: Value = reqwest::get(format!("{}/moto-api/data.json", moto.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let raw = data["ses"]["RawMessage"].as_array().expect("raw messages");
    assert_eq!(raw.len(), 6);
    for (email, id) in emails.iter().zip(&ids) {
        let stored = raw
            .iter()
            .find(|m| m["id"] == *id)
            .unwrap_or_else(|| panic!("{id} not stored"));
        assert_eq!(stored["source"], "news@brand.example");
        assert_eq!(stored["destinations"][0], email.to.address.as_str());
        let mime = stored["raw_data"].as_str().unwrap();
        assert!(
            mime.contains(&format!("Message-ID: <{}>", email.rfc_message_id)),
            "{mime}"
        );
        assert!(mime.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
        assert!(mime.contains("multipart/alternative") && mime.contains("text/html"));
    }

    // A wrong secret: moto refuses the signature, for good.
    let (_bad_dir, bad_file) = credentials_file(&credentials, "not-the-secret");
    let outcomes = sink(moto.url(), bad_file).send(&emails[..1]).await;
    assert!(
        matches!(&outcomes[0], SendOutcome::Failed { reason } if reason.contains("403") && reason.contains("Signature")),
        "{outcomes:?}"
    );
    // An address lettre cannot format fails alone; the rest is sent.
    let mut mixed = esp_support::emails(2);
    mixed[0].to.address = "not an address".into();
    let (_dir2, file) = credentials_file(&credentials, &credentials.secret_access_key);
    let outcomes = sink(moto.url(), file).send(&mixed).await;
    assert!(
        matches!(&outcomes[0], SendOutcome::Failed { reason } if reason.contains("To")),
        "{outcomes:?}"
    );
    assert!(
        matches!(&outcomes[1], SendOutcome::Sent { .. }),
        "{outcomes:?}"
    );
}

/// A scripted answer: status, extra headers, body.
type Scripted = (u16, Vec<(&'static str, &'static str)>, &'static str);

#[derive(Default)]
struct FakeSes {
    script: Mutex<VecDeque<Scripted>>,
    calls: Mutex<Vec<(Instant, HeaderMap, Value)>>,
}

async fn outbound(State(fake): State<Arc<FakeSes>>, headers: HeaderMap, body: Bytes) -> Response {
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    fake.calls
        .lock()
        .unwrap()
        .push((Instant::now(), headers, json));
    match fake.script.lock().unwrap().pop_front() {
        Some((code, extra, body)) => {
            let mut response = (StatusCode::from_u16(code).unwrap(), body).into_response();
            for (name, value) in extra {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            response
        }
        None => (StatusCode::OK, r#"{"MessageId":"fake-1"}"#).into_response(),
    }
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_rejections_fail() {
    let fake = Arc::new(FakeSes::default());
    let router = axum::Router::new()
        .route("/v2/email/outbound-emails", post(outbound))
        .with_state(fake.clone());
    let addr = serve(router).await;
    let credentials = Credentials {
        access_key_id: "AKIDFAKE".into(),
        secret_access_key: "s3cr3t".into(),
        session_token: None,
    };
    let (_dir, file) = credentials_file(&credentials, "s3cr3t");
    let ses = sink(format!("http://{addr}"), file);
    {
        let mut script = fake.script.lock().unwrap();
        script.push_back((
            429,
            vec![
                ("x-amzn-errortype", "TooManyRequestsException:"),
                ("retry-after", "1"),
            ],
            r#"{"message":"Too many requests"}"#,
        ));
        script.push_back((
            400,
            vec![("x-amzn-errortype", "ThrottlingException")],
            r#"{"message":"Maximum sending rate exceeded."}"#,
        ));
        script.push_back((503, vec![], ""));
        script.push_back((
            400,
            vec![("x-amzn-errortype", "MessageRejected:http://internal")],
            r#"{"message":"Email address is not verified. s3cr3t"}"#,
        ));
    }
    let first = ses.send(&emails(1)).await;
    assert!(
        matches!(&first[0], SendOutcome::Retry { after: Some(d), reason } if *d == Duration::from_secs(1) && reason.contains("TooManyRequestsException")),
        "{first:?}"
    );
    let second = ses.send(&emails(1)).await;
    assert!(
        matches!(&second[0], SendOutcome::Retry { reason, .. } if reason.contains("Maximum sending rate")),
        "{second:?}"
    );
    let third = ses.send(&emails(1)).await;
    assert!(
        matches!(&third[0], SendOutcome::Retry { reason, .. } if reason.contains("503")),
        "{third:?}"
    );
    let fourth = ses.send(&emails(1)).await;
    assert!(
        matches!(&fourth[0], SendOutcome::Failed { reason } if reason.contains("MessageRejected: Email address is not verified") && !reason.contains("s3cr3t")),
        "{fourth:?}"
    );
    let (outcomes, _) = send_until_settled(&ses, &emails(1), 2).await;
    assert_eq!(sent_id(&outcomes[0]), "fake-1");

    // What was signed: the SES scope, content type, host and date.
    let calls = fake.calls.lock().unwrap();
    let (_, headers, body) = &calls[0];
    let auth = headers["authorization"].to_str().unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDFAKE/"),
        "{auth}"
    );
    assert!(
        auth.contains(
            "/us-east-1/ses/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature="
        ),
        "{auth}"
    );
    assert_eq!(
        body["EmailTags"][0],
        json!({"Name": "message_id", "Value": "msg-000000"})
    );
    assert_eq!(body["FromEmailAddress"], "news@brand.example");
}

#[tokio::test]
async fn dead_endpoints_are_retried_and_bad_config_is_named() {
    let (_dir, file) = secret_file("[cpo]\naws_access_key_id = AKID\naws_secret_access_key = s\n");
    let dead = sink(format!("http://127.0.0.1:{}", closed_port()), file.clone());
    assert!(
        matches!(&dead.send(&emails(1)).await[0], SendOutcome::Retry { reason, .. } if reason.contains("connection"))
    );

    let refused = |edit: &dyn Fn(&mut SesConfig)| {
        let mut c = SesConfig {
            region: Some("us-east-1".into()),
            credentials_file: Some(file.clone()),
            profile: "cpo".into(),
            ..SesConfig::default()
        };
        edit(&mut c);
        SesSink::from_config(&c).err().expect("refused")
    };
    assert_eq!(
        refused(&|c| c.region = Some("EU West".into())).key,
        "delivery.esp.ses.region"
    );
    let profile = refused(&|c| c.profile = "prod".into());
    assert_eq!(profile.key, "delivery.esp.ses.credentials_file");
    assert!(profile.message.contains("[prod]"), "{profile}");
    let missing = refused(&|c| c.credentials_file = Some("/nonexistent/aws/credentials".into()));
    assert_eq!(missing.key, "delivery.esp.ses.credentials_file");
    assert_eq!(
        refused(&|c| c.endpoint = Some("http://email.example.com".into())).key,
        "delivery.esp.ses.endpoint"
    );
    assert_eq!(
        refused(&|c| c.concurrency = 0).key,
        "delivery.esp.ses.concurrency"
    );
    // The default endpoint is the region's.
    assert!(
        SesSink::from_config(&SesConfig {
            region: Some("eu-west-1".into()),
            credentials_file: Some(file.clone()),
            profile: "cpo".into(),
            ..SesConfig::default()
        })
        .is_ok()
    );
}
