//! Shared by the ESP sink tests: emails to send, a local HTTP server for the
//! wire-format fakes, a driver that waits the way the stage does, and
//! secret files.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cpo_delivery::{MailSink, Mailbox, OutgoingEmail, SendOutcome};

/// Email `i` of a campaign: its own name, subject, text, HTML and
/// unsubscribe link, so batching must carry per-recipient values.
pub fn email(i: usize) -> OutgoingEmail {
    OutgoingEmail {
        message_id: format!("msg-{i:06x}"),
        campaign_id: "camp-autumn".into(),
        customer_id: format!("C{i}"),
        from: Mailbox {
            name: Some("Brand Café".into()),
            address: "news@brand.example".into(),
        },
        reply_to: Some(Mailbox {
            name: None,
            address: "help@brand.example".into(),
        }),
        to: Mailbox {
            name: Some(format!("Ada {i}")),
            address: format!("c{i}@example.com"),
        },
        subject: format!("Ada {i}, autumn is here"),
        text: format!("Hello Ada {i},\nour autumn collection.\n"),
        html: format!("<p>Hello Ada {i} &amp; friends,</p><p>our autumn collection.</p>"),
        rfc_message_id: format!("msg-{i:06x}@brand.example"),
        headers: vec![
            (
                "List-Unsubscribe".into(),
                format!("<https://gw.brand.example/u/tok{i}>, <mailto:unsub@brand.example>"),
            ),
            (
                "List-Unsubscribe-Post".into(),
                "List-Unsubscribe=One-Click".into(),
            ),
        ],
    }
}

pub fn emails(n: usize) -> Vec<OutgoingEmail> {
    (0..n).map(email).collect()
}

/// Serve `router` on a free loopback port until the test ends.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port for the fake provider");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(listener, router)
            .await
            .expect("fake provider serves");
    });
    addr
}

/// A port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A secret file in a temp dir (kept alive by the returned guard).
pub fn secret_file(content: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("secret");
    std::fs::write(&path, format!("{content}\n")).expect("write secret");
    (dir, path)
}

/// Send, and send again what came back `Retry` after waiting its
/// `after` (or 50 ms), as the stage does, until every email settled or
/// `rounds` ran out. The outcomes in order, and the time it took.
pub async fn send_until_settled(
    sink: &dyn MailSink,
    emails: &[OutgoingEmail],
    rounds: usize,
) -> (Vec<SendOutcome>, Duration) {
    let started = Instant::now();
    let mut outcomes: Vec<Option<SendOutcome>> = vec![None; emails.len()];
    let mut pending: Vec<usize> = (0..emails.len()).collect();
    for _ in 0..rounds {
        let batch: Vec<OutgoingEmail> = pending.iter().map(|&i| emails[i].clone()).collect();
        let answers = sink.send(&batch).await;
        assert_eq!(answers.len(), batch.len(), "one outcome per email");
        let mut wait = Duration::ZERO;
        let mut still = Vec::new();
        for (&i, answer) in pending.iter().zip(answers) {
            if let SendOutcome::Retry { after, .. } = &answer {
                wait = wait.max(after.unwrap_or(Duration::from_millis(50)));
                still.push(i);
            }
            outcomes[i] = Some(answer);
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        tokio::time::sleep(wait).await;
    }
    (
        outcomes
            .into_iter()
            .map(|o| o.expect("sent once"))
            .collect(),
        started.elapsed(),
    )
}

pub fn sent_id(outcome: &SendOutcome) -> &str {
    match outcome {
        SendOutcome::Sent {
            provider_message_id,
        } => provider_message_id,
        other => panic!("expected Sent, got {other:?}"),
    }
}
