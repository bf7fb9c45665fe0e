//! moto's server mode as a subprocess, with IAM authentication on.
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use cpo_delivery::esp::sigv4::{self, Credentials};
use serde_json::Value;

use super::esp_support::*;

/// A moto server on a free port, killed when dropped.
pub struct Moto {
    pub child: Child,
    pub port: u16,
    pub _log_dir: tempfile::TempDir,
    pub log: PathBuf,
}

impl Moto {
    /// `unauthenticated`: how many requests moto serves before it starts
    /// checking signatures (INITIAL_NO_AUTH_ACTION_COUNT).
    pub fn start(unauthenticated: u32) -> Self {
        let port = closed_port();
        let log_dir = tempfile::tempdir().expect("temp dir");
        let log = log_dir.path().join("moto.log");
        let out = std::fs::File::create(&log).expect("moto log");
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", unauthenticated.to_string())
            .stdout(Stdio::from(out.try_clone().expect("log handle")))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start moto_server ({e}): install it with `pip install 'moto[server]'`"
                )
            });
        let mut moto = Self {
            child,
            port,
            _log_dir: log_dir,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited ({status}): {}", moto.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen within 30 s: {}",
                moto.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn xml<'a>(text: &'a str, name: &str) -> &'a str {
    let start = text
        .find(&format!("<{name}>"))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        + name.len()
        + 2;
    let end = text[start..].find(&format!("</{name}>")).unwrap() + start;
    &text[start..end]
}

/// The three IAM calls moto serves unauthenticated: a user, its access key,
/// and a policy allowing SES.
pub async fn iam_user(moto: &Moto) -> Credentials {
    let client = reqwest::Client::new();
    // moto routes by the credential scope; these calls are not yet checked.
    let routing = "AWS4-HMAC-SHA256 Credential=AKIDSETUP/20261206/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0";
    let iam = |form: String| {
        let client = client.clone();
        let url = moto.url();
        async move {
            let response = client
                .post(url)
                .header("authorization", routing)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form)
                .send()
                .await
                .expect("moto answers IAM");
            let status = response.status();
            let text = response.text().await.unwrap();
            assert!(status.is_success(), "IAM call failed: {status} {text}");
            text
        }
    };
    iam("Action=CreateUser&UserName=cpo&Version=2010-05-08".into()).await;
    let key = iam("Action=CreateAccessKey&UserName=cpo&Version=2010-05-08".into()).await;
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ses:*","Resource":"*"}]}"#;
    let encoded: String = policy
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    iam(format!("Action=PutUserPolicy&UserName=cpo&PolicyName=ses&Version=2010-05-08&PolicyDocument={encoded}")).await;
    Credentials {
        access_key_id: xml(&key, "AccessKeyId").to_string(),
        secret_access_key: xml(&key, "SecretAccessKey").to_string(),
        session_token: None,
    }
}

/// A signed SES v2 call of the test's own (identity setup, reading back).
pub async fn ses_call(
    moto: &Moto,
    credentials: &Credentials,
    path: &str,
    body: &Value,
) -> (u16, String) {
    let body = body.to_string().into_bytes();
    let host = format!("127.0.0.1:{}", moto.port);
    let signed = sigv4::sign(
        &sigv4::Request {
            method: "POST",
            path,
            query: &[],
            headers: &[("host", &host), ("content-type", "application/json")],
            body: &body,
        },
        credentials,
        "us-east-1",
        "ses",
        SystemTime::now(),
    );
    let mut request = reqwest::Client::new()
        .post(format!("{}{path}", moto.url()))
        .header("content-type", "application/json");
    for (name, value) in signed {
        request = request.header(name, value);
    }
    let response = request.body(body).send().await.expect("moto answers SES");
    (response.status().as_u16(), response.text().await.unwrap())
}
