//! `cpo run` with `delivery.sink: smtp` against a real SMTP server (aiosmtpd,
//! `tests/mail/smtp_server.py`) answering 454 for a while and 550 for one
//! recipient: every other assigned customer receives exactly one message,
//! the 454s wait and arrive later, the 550 is recorded as failed and the
//! campaign completes.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use cpo_delivery::test_smtp::{Behaviour, SmtpServer, check_mail};

const REJECTED: &str = "abigail.watson.2@example.net";

#[test]
fn cpo_run_mails_every_customer_once_over_smtp() {
    let dir = tempfile::tempdir().unwrap();
    let mail_dir = dir.path().join("mail");
    std::fs::create_dir_all(&mail_dir).unwrap();
    let server = SmtpServer::start(
        &mail_dir,
        &Behaviour {
            tempfail: 5,
            reject: vec![REJECTED.into()],
            ..Behaviour::default()
        },
    );
    let out = dir.path().join("out");
    let store = format!("sqlite://{}", dir.path().join("cpo.sqlite").display());
    let output = Command::new(env!("CARGO_BIN_EXE_cpo"))
        .args(["run", "--quiet", "--out", out.to_str().unwrap()])
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .env_remove("CPO_CONFIG")
        .env("CPO__DELIVERY__SINK", "smtp")
        .env("CPO__DELIVERY__SMTP__URL", server.url())
        // A record of this test's own: a shared one would say "already sent".
        .env("CPO__STORE__URL", &store)
        .output()
        .expect("cpo runs");
    // Every customer accounted for and messages sent: exit 0, although one
    // recipient was refused (a `failed` send, not a failed run).
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let assigned = summary["customers_assigned"]
        .as_u64()
        .unwrap_or_else(|| panic!("{summary}")) as usize;
    let messages = server.messages();
    assert_eq!(messages.len(), assigned - 1, "all but the 550");
    // The summary counts what the server accepted, from the send records.
    assert_eq!(summary["messages"].as_u64(), Some(messages.len() as u64));
    // Exactly one message per recipient, none to the refused address.
    let recipients: BTreeSet<String> = messages
        .iter()
        .map(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("To: "))
                .unwrap_or_else(|| panic!("no To: in {m}"))
                .to_string()
        })
        .collect();
    assert_eq!(recipients.len(), messages.len());
    assert!(!recipients.iter().any(|r| r.contains(REJECTED)));
    let count = messages.len().to_string();
    check_mail(&mail_dir, &["--count", &count]).unwrap_or_else(|e| panic!("check_mail.py: {e}"));

    // The record: the refusal with the server's reply, the rest sent with their Message-ID.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = cpo_shared::store::connect(&cpo_shared::store::StoreConfig {
            url: store,
            ..Default::default()
        })
        .await
        .unwrap();
        let failed = store.unconfirmed_sends(10).await.unwrap();
        assert!(failed.is_empty(), "nothing unconfirmed: {failed:?}");
        let id = cpo_shared::envelope::message_id("autumn-2026", "C0000002");
        let record = store.send(&id).await.unwrap().expect("a send record");
        assert_eq!(record.state, cpo_shared::store::SendState::Failed);
        assert!(
            record.last_error.as_deref().unwrap_or("").contains("550"),
            "{record:?}"
        );
    });
}
