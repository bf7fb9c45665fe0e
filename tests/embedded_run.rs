//! `cpo run` end to end on the bundled data, through the real binary.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cpo(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cpo"))
        .args(args)
        .current_dir(repo())
        .env_remove("CPO_CONFIG")
        .output()
        .expect("cpo runs")
}

fn run_into(dir: &Path, extra: &[&str]) -> Value {
    let out = dir.to_str().unwrap();
    let mut args = vec!["run", "--quiet", "--out", out];
    args.extend_from_slice(extra);
    let output = cpo(&args);
    assert!(
        output.status.success(),
        "cpo run failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn bundled_demo_accounts_for_every_customer_and_is_reproducible() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let summary = run_into(&a, &[]);
    run_into(&b, &[]);

    let n = |k: &str| {
        summary[k]
            .as_u64()
            .unwrap_or_else(|| panic!("summary lacks {k}: {summary}"))
    };
    assert_eq!(n("customers_total"), 250);
    assert_eq!(
        n("customers_assigned") + n("customers_excluded"),
        250,
        "{summary}"
    );
    assert!(n("customers_assigned") > 200, "{summary}");
    for key in [
        "variants_generated",
        "variants_approved",
        "variants_blocked",
        "messages",
        "segments",
    ] {
        n(key);
    }

    let outbox = jsonl(&a.join("outbox.jsonl"));
    assert_eq!(outbox.len() as u64, n("customers_assigned"));
    assert_eq!(n("messages"), outbox.len() as u64);
    let ids: HashSet<&str> = outbox
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), outbox.len(), "message ids are unique");
    let customers: HashSet<&str> = outbox
        .iter()
        .map(|m| m["customer_id"].as_str().unwrap())
        .collect();
    assert_eq!(customers.len(), outbox.len(), "one message per customer");
    for m in &outbox {
        for field in [
            "campaign_id",
            "segment",
            "arm",
            "variant_id",
            "subject",
            "body",
        ] {
            assert!(
                m[field].as_str().is_some_and(|s| !s.is_empty()),
                "{field} missing in {m}"
            );
        }
        let body = m["body"].as_str().unwrap();
        assert!(!body.contains("{{"), "merge fields rendered: {body}");
        assert!(body.contains('['), "body cites its sources: {body}");
    }

    // every customer not in the outbox is listed with a reason
    let excluded = jsonl(&a.join("exclusions.jsonl"));
    assert_eq!(excluded.len() as u64, n("customers_excluded"));
    assert!(excluded.iter().all(|e| e["reason"].is_string()));

    let first = std::fs::read(a.join("outbox.jsonl")).unwrap();
    let second = std::fs::read(b.join("outbox.jsonl")).unwrap();
    assert!(
        first == second,
        "two runs must produce byte-identical outboxes"
    );

    for file in [
        "segments.json",
        "variants.json",
        "dead_letters.jsonl",
        "audit.jsonl",
    ] {
        assert!(a.join(file).exists(), "{file} written");
    }
    let verify = cpo(&["audit", "verify", a.join("audit.jsonl").to_str().unwrap()]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    // the audit trail never carries an email address
    let audit = std::fs::read_to_string(a.join("audit.jsonl")).unwrap();
    assert!(!audit.contains("@example"), "audit leaks emails");
}

#[test]
fn audit_verify_names_an_edited_line() {
    let tmp = tempfile::tempdir().unwrap();
    run_into(tmp.path(), &[]);
    let path = tmp.path().join("audit.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    assert!(lines.len() > 3);
    lines[2] = lines[2]
        .replacen("\"approved\"", "\"blocked\"", 1)
        .replacen("\"send\"", "\"sent\"", 1);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let verify = cpo(&["audit", "verify", path.to_str().unwrap()]);
    assert!(!verify.status.success());
    assert!(
        String::from_utf8_lossy(&verify.stderr).contains("line 3"),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[test]
fn malformed_csv_row_is_reported_with_its_line_and_the_run_continues() {
    let tmp = tempfile::tempdir().unwrap();
    let original = std::fs::read_to_string(repo().join("data/customers.csv")).unwrap();
    let mut lines: Vec<&str> = original.lines().collect();
    // line 6 of the file (header is line 1) gets a non-numeric order value
    let broken = lines[5]
        .split(',')
        .enumerate()
        .map(|(i, f)| if i == 7 { "lots" } else { f })
        .collect::<Vec<_>>()
        .join(",");
    lines[5] = &broken;
    let csv = tmp.path().join("customers.csv");
    std::fs::write(&csv, lines.join("\n") + "\n").unwrap();
    let out = tmp.path().join("out");
    let summary = run_into(&out, &["--customers", csv.to_str().unwrap()]);
    assert_eq!(summary["customers_total"], 250);
    assert_eq!(
        summary["customers_assigned"].as_u64().unwrap()
            + summary["customers_excluded"].as_u64().unwrap(),
        250
    );
    let excluded = jsonl(&out.join("exclusions.jsonl"));
    let bad = excluded
        .iter()
        .find(|e| e["line"] == 6)
        .expect("line 6 listed");
    assert_eq!(bad["reason"], "invalid");
    assert!(bad["detail"].as_str().unwrap().contains("line 6"), "{bad}");
}

#[test]
fn missing_customer_file_is_a_clear_error() {
    let output = cpo(&[
        "run",
        "--quiet",
        "--customers",
        "no/such/file.csv",
        "--out",
        "target/never",
    ]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no/such/file.csv"));
}

/// A campaign file like the bundled one with another call-to-action link.
fn campaign_with_link(dir: &Path, url: &str) -> PathBuf {
    let bundled = std::fs::read_to_string(repo().join("data/campaign.yaml")).unwrap();
    let text = bundled.replace(
        "call_to_action_url: https://www.example.com/autumn",
        &format!("call_to_action_url: {url:?}"),
    );
    assert_ne!(text, bundled, "the bundled campaign changed its link");
    let path = dir.join(format!("campaign-{}.yaml", text.len()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn unsafe_or_off_list_links_are_refused_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("cpo.yaml");
    std::fs::write(
        &config,
        "delivery:\n  allowed_link_domains: [example.com]\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    for (url, why) in [
        ("javascript:alert(1)", "`javascript:` links are not allowed"),
        (
            "data:text/html;base64,PHNjcmlwdD4=",
            "`data:` links are not allowed",
        ),
        (
            "https://evil.example/phish",
            "`evil.example` is not on the allowed domains",
        ),
        (
            "http://www.example.com/autumn",
            "`http:` links are not allowed",
        ),
    ] {
        let campaign = campaign_with_link(tmp.path(), url);
        for command in ["run", "enqueue"] {
            let output = Command::new(env!("CARGO_BIN_EXE_cpo"))
                .current_dir(repo())
                .env_remove("CPO_CONFIG")
                .arg("--config")
                .arg(&config)
                .arg(command)
                .args(if command == "run" {
                    vec![
                        "--campaign",
                        campaign.to_str().unwrap(),
                        "--quiet",
                        "--out",
                        out.to_str().unwrap(),
                    ]
                } else {
                    vec![campaign.to_str().unwrap()]
                })
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "cpo {command} accepted {url}");
            assert!(
                stderr.contains("call_to_action_url is refused") && stderr.contains(why),
                "cpo {command} {url}: {stderr}"
            );
        }
    }
    assert!(!out.join("outbox.jsonl").exists(), "a refused campaign ran");
    // on the list (a subdomain of it): runs
    let campaign = campaign_with_link(tmp.path(), "https://shop.example.com/autumn");
    let output = Command::new(env!("CARGO_BIN_EXE_cpo"))
        .current_dir(repo())
        .env_remove("CPO_CONFIG")
        .arg("--config")
        .arg(&config)
        .arg("run")
        .arg("--campaign")
        .arg(&campaign)
        .args(["--quiet", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A first name "Fuck" once produced "Hi Fuck,": abusive or personal merge
/// values are replaced by the greeting's fallback, counted and listed.
#[test]
fn abusive_merge_values_are_never_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let bundled = std::fs::read_to_string(repo().join("data/customers.csv")).unwrap();
    let mut lines: Vec<String> = bundled.lines().map(str::to_string).collect();
    let mut abused = Vec::new();
    for (row, name) in [(1, "Fuck you, idiot"), (2, "Fuck"), (3, "Sh1t")] {
        let mut fields: Vec<String> = lines[row].split(',').map(str::to_string).collect();
        fields[1] = format!("\"{name}\"");
        abused.push(fields[0].clone());
        lines[row] = fields.join(",");
    }
    let customers = tmp.path().join("customers.csv");
    std::fs::write(&customers, lines.join("\n") + "\n").unwrap();
    let out = tmp.path().join("out");
    let summary = run_into(&out, &["--customers", customers.to_str().unwrap()]);
    let outbox = std::fs::read_to_string(out.join("outbox.jsonl")).unwrap();
    for word in ["Fuck", "idiot", "Sh1t"] {
        assert!(!outbox.contains(word), "{word} was sent");
    }
    let sent: Vec<Value> = jsonl(&out.join("outbox.jsonl"))
        .into_iter()
        .filter(|m| abused.iter().any(|id| m["customer_id"] == id.as_str()))
        .collect();
    assert_eq!(sent.len(), 3, "the customers are still mailed");
    assert!(
        sent.iter()
            .all(|m| m["body"].as_str().unwrap().contains("there")),
        "{sent:#?}"
    );
    assert_eq!(summary["merge_values_replaced"], 3, "{summary}");
    let replaced = jsonl(&out.join("replaced_values.jsonl"));
    let ids: Vec<&str> = replaced
        .iter()
        .map(|r| r["customer_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, abused);
    assert!(replaced.iter().all(|r| r["field"] == "first_name"));
    assert!(
        !std::fs::read_to_string(out.join("replaced_values.jsonl"))
            .unwrap()
            .contains("Fuck")
    );
}
