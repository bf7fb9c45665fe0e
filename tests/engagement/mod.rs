//! Helpers of `engagement_loop.rs`: worker processes killed on drop, a minimal
//! HTTP/1.1 client that tells "no answer" apart from a status, and a SendGrid
//! test signing key (ECDSA P-256, as SendGrid's Signed Event Webhook).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

/// A worker process; SIGKILLed (Child::kill) and reaped on drop.
pub struct Proc(pub Child);

impl Proc {
    pub fn spawn(mut command: Command, log: &Path) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        Proc(
            command
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("cpo starts"),
        )
    }

    /// `kill -9`: no shutdown, no answer to requests in flight.
    pub fn kill9(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What one POST got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Connecting failed: nothing was sent.
    Refused,
    /// The request was written, but no status line came back (the server died).
    None,
    Status(u16),
}

pub fn post(port: u16, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return Answer::Refused;
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    if stream.write_all(&bytes).is_err() {
        return Answer::None;
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response)
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .map_or(Answer::None, Answer::Status)
}

pub fn wait_listening(port: u16, what: &str, logs: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} not listening\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Ports of this test binary: above the fleets' (20000-63999), the gateway
/// tests' (64000-65499) and the ephemeral range; 4 per test.
pub fn ports(test: u16) -> [u16; 2] {
    let base = 65_500 + (std::process::id() % 4) as u16 * 8 + test * 4;
    [base, base + 1]
}

/// A SendGrid account's webhook signing key, for tests.
pub struct SendgridKey {
    pair: EcdsaKeyPair,
    pub public_base64: String,
}

impl SendgridKey {
    pub fn new() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let public_base64 = STANDARD.encode(cpo_gateway::verify::sendgrid::spki_der(
            pair.public_key().as_ref(),
        ));
        Self {
            pair,
            public_base64,
        }
    }

    /// (signature header, timestamp header) values for `body` signed now.
    pub fn sign_now(&self, body: &[u8]) -> (String, String) {
        let ts = (cpo_shared::envelope::now_ms() / 1000).to_string();
        let signed = [ts.as_bytes(), body].concat();
        let signature = STANDARD.encode(self.pair.sign(&SystemRandom::new(), &signed).unwrap());
        (signature, ts)
    }
}
