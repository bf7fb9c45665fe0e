//! `cpo preview --customer ID` and `cpo run --eml DIR` on the bundled data:
//! the emails they write parse with Python's `email` package as complete
//! multipart/alternative mail (`tests/mail/check_mail.py`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cpo_delivery::test_smtp::check_mail;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cpo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cpo"))
        .args(args)
        .current_dir(repo())
        .env_remove("CPO_CONFIG")
        .output()
        .expect("cpo runs")
}

/// The bundled customers with C0000001's first name made hostile.
fn hostile_customers(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("data/customers.csv")).unwrap();
    let changed = text.replacen("C0000001,Benjamin,", "C0000001,<script>x</script>,", 1);
    assert_ne!(
        changed, text,
        "the bundled customers changed: update this test"
    );
    let path = dir.join("customers.csv");
    std::fs::write(&path, changed).unwrap();
    path
}

#[test]
fn preview_prints_one_customers_complete_email_escaped_and_without_markers() {
    let dir = tempfile::tempdir().unwrap();
    let customers = hostile_customers(dir.path());
    let output = cpo(&[
        "preview",
        "--customer",
        "C0000001",
        "--customers",
        customers.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mail = dir.path().join("mail");
    std::fs::create_dir(&mail).unwrap();
    std::fs::write(mail.join("C0000001.eml"), &output.stdout).unwrap();
    check_mail(&mail, &["--escaped-script", "--count", "1"])
        .unwrap_or_else(|e| panic!("check_mail.py: {e}"));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("To: benjamin.harris.1@example.com"), "{text}");
    assert!(
        text.contains("From: \"Northwind Outfitters\" <news@northwind-outfitters.example.com>")
    );
    assert!(text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
}

#[test]
fn preview_of_a_customer_without_a_message_says_why() {
    let output = cpo(&["preview", "--customer", "C0000004"]);
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("excluded (no_consent)"), "{err}");
    let output = cpo(&["preview", "--customer", "NOPE"]);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("not in the campaign's customer list"), "{err}");
}

#[test]
fn run_eml_writes_every_message_of_the_outbox_as_parseable_mail() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let eml = dir.path().join("eml");
    let output = cpo(&[
        "run",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
        "--eml",
        eml.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let outbox = std::fs::read_to_string(out.join("outbox.jsonl")).unwrap();
    let ids: Vec<String> = outbox
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["message_id"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(ids.len() > 100, "the bundled run mails most customers");
    for id in &ids {
        assert!(eml.join(format!("{id}.eml")).exists(), "{id}.eml missing");
    }
    let count = ids.len().to_string();
    let summary =
        check_mail(&eml, &["--count", &count]).unwrap_or_else(|e| panic!("check_mail.py: {e}"));
    assert_eq!(summary["count"], ids.len());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("eml: {} messages", ids.len())),
        "{stdout}"
    );
}

#[test]
fn a_bad_mail_setting_stops_the_run_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let output = Command::new(env!("CARGO_BIN_EXE_cpo"))
        .args(["run", "--quiet", "--out", out.to_str().unwrap(), "--eml"])
        .arg(dir.path().join("eml"))
        .current_dir(repo())
        .env_remove("CPO_CONFIG")
        .env("CPO__DELIVERY__MAIL__FROM_ADDRESS", "not an address")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("delivery.mail.from_address"), "{err}");
    assert!(
        !out.exists(),
        "stopped before the output directory was made"
    );
}
