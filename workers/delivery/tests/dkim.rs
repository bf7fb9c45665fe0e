//! DKIM signatures made by the SMTP sink verify with dkimpy after a real
//! SMTP transit (aiosmtpd), and an altered message does not.

use std::process::Command;

use cpo_delivery::compose::{ComposeInput, Composer};
use cpo_delivery::dkim::DkimSigner;
use cpo_delivery::mail_config::{DkimAlgorithm, DkimConfig, SmtpConfig};
use cpo_delivery::smtp::SmtpSink;
use cpo_delivery::test_smtp::{Behaviour, SmtpServer, script};
use cpo_delivery::{MailSink, Mailbox, SendOutcome};

fn openssl(dir: &std::path::Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("this test needs the openssl command ({e})"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn verify(dir: &std::path::Path, public_key: &str) -> Result<(), String> {
    let out = Command::new("python3")
        .arg(script("verify_dkim.py"))
        .arg(dir)
        .args(["mail2026", "northwind.example", public_key])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[tokio::test]
async fn a_signed_message_verifies_after_smtp_and_an_altered_one_does_not() {
    let probe = Command::new("python3")
        .args(["-c", "import dkim"])
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "this test needs dkimpy: pip install dkimpy"
    );
    let keys = tempfile::tempdir().unwrap();
    openssl(
        keys.path(),
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "key8.pem",
        ],
    );
    // lettre takes PKCS#1 ("BEGIN RSA PRIVATE KEY").
    openssl(
        keys.path(),
        &["rsa", "-in", "key8.pem", "-traditional", "-out", "dkim.pem"],
    );
    let der = openssl(
        keys.path(),
        &["rsa", "-in", "dkim.pem", "-pubout", "-outform", "DER"],
    );
    let public_key = {
        use std::io::Write;
        let mut child = Command::new("base64")
            .arg("-w0")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&der).unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
    };
    let config = DkimConfig {
        selector: "mail2026".into(),
        domain: None,
        private_key_file: keys.path().join("dkim.pem"),
        algorithm: DkimAlgorithm::Rsa,
    };
    let signer = DkimSigner::load(&config, "northwind.example").unwrap();

    let mail = tempfile::tempdir().unwrap();
    let server = SmtpServer::start(mail.path(), &Behaviour::default());
    let smtp = SmtpConfig {
        url: Some(server.url()),
        ..SmtpConfig::default()
    };
    let sink = SmtpSink::from_config(&smtp, "northwind.example", Some(signer)).unwrap();
    let composer = Composer::new(Mailbox {
        name: Some("Northwind Outfitters".into()),
        address: "news@northwind.example".into(),
    })
    .unwrap();
    let email = composer
        .compose(&ComposeInput {
            message_id: "msg-00aa",
            campaign_id: "autumn-2026",
            customer_id: "C1",
            to: "ada@example.com",
            first_name: "Ada",
            subject: "Zoë, the autumn collection is here",
            body: "Hi Ada,\n\nWarm jackets. [prod-a]\n\nRegards,\nThe team",
            citations: &["prod-a".to_string()],
            call_to_action_url: None,
        })
        .unwrap();
    let outcomes = sink.send(&[email]).await;
    assert!(
        matches!(outcomes[0], SendOutcome::Sent { .. }),
        "{outcomes:?}"
    );
    verify(mail.path(), &public_key).unwrap_or_else(|e| panic!("dkimpy: {e}"));

    let altered = tempfile::tempdir().unwrap();
    let text = server.messages()[0].replacen("Warm jackets.", "Cold jackets.", 1);
    std::fs::write(altered.path().join("1.eml"), text).unwrap();
    let err = verify(altered.path(), &public_key).unwrap_err();
    assert!(err.contains("does not verify"), "{err}");
}
