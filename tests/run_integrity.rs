//! Integrity of `cpo run`'s output through the real binary: the audit log
//! and its head against every kind of tampering, one run per output
//! directory, exit codes that say what went wrong, and a closed stdout.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cpo"));
    command
        .args(args)
        .current_dir(repo())
        .env_remove("CPO_CONFIG")
        .env_remove("CPO__SECURITY__AUDIT_KEY");
    command
}

fn cpo(args: &[&str]) -> Output {
    command(args).output().expect("cpo runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["run", "--quiet", "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    cpo(&args)
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

/// `cpo audit verify` on `log` written as `lines`, in a copy of `run` (key
/// and head beside it): the exit code and stderr.
fn verify_tampered(run: &Path, into: &Path, lines: &[String]) -> (Option<i32>, String) {
    std::fs::create_dir_all(into).unwrap();
    for file in ["audit.key", "audit.head.json"] {
        std::fs::copy(run.join(file), into.join(file)).unwrap();
    }
    let log = into.join("audit.jsonl");
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let output = cpo(&["audit", "verify", log.to_str().unwrap()]);
    (output.status.code(), text(&output.stderr))
}

/// Rewrite line `index` and every later one with the plain SHA-256 chain a
/// forger without the key can compute.
fn recompute_plain_chain(lines: &mut [String], from: usize) {
    for i in from..lines.len() {
        let mut value: serde_json::Value = serde_json::from_str(&lines[i]).unwrap();
        if i > 0 {
            let prev: serde_json::Value = serde_json::from_str(&lines[i - 1]).unwrap();
            value["prev"] = prev["hash"].clone();
        }
        let event = serde_json::to_string(&value["event"]).unwrap();
        let (seq, ts) = (
            value["seq"].as_u64().unwrap(),
            value["ts_ms"].as_u64().unwrap(),
        );
        let prev = value["prev"].as_str().unwrap().to_string();
        let mut hasher = Sha256::new();
        hasher.update(seq.to_le_bytes());
        hasher.update(ts.to_le_bytes());
        hasher.update(prev.as_bytes());
        hasher.update(event.as_bytes());
        let hash = hex::encode(hasher.finalize());
        lines[i] = format!(
            r#"{{"seq":{seq},"ts_ms":{ts},"prev":"{prev}","event":{event},"hash":"{hash}"}}"#
        );
    }
}

#[test]
fn audit_verify_fails_on_every_kind_of_tampering_and_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    assert!(run(&a, &[]).status.success());
    let original = lines(&a.join("audit.jsonl"));
    assert!(original.len() > 6);
    let log = a.join("audit.jsonl");
    let intact = cpo(&["audit", "verify", log.to_str().unwrap()]);
    assert!(intact.status.success(), "{}", text(&intact.stderr));
    assert!(text(&intact.stdout).contains("head matches"));
    // the key was made for this directory, readable by its owner only
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(a.join("audit.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let mut cases: Vec<(&str, Vec<String>, &str)> = Vec::new();
    let mut edited = original.clone();
    edited[2] = edited[2].replacen("\"approved\"", "\"blocked\"", 1);
    assert_ne!(edited[2], original[2]);
    cases.push(("edited", edited.clone(), "line 3"));
    let mut removed = original.clone();
    removed.remove(1);
    cases.push(("removed", removed, "line 2"));
    let mut reordered = original.clone();
    reordered.swap(3, 4);
    cases.push(("reordered", reordered, "line 4"));
    // the edit with every hash after it recomputed, as the unkeyed chain allowed
    let mut forged = edited;
    recompute_plain_chain(&mut forged, 2);
    cases.push(("forged", forged, "line 3"));
    let mut rewritten = original.clone();
    recompute_plain_chain(&mut rewritten, 0);
    cases.push(("rewritten", rewritten, "line 1"));
    let truncated = original[..original.len() - 2].to_vec();
    cases.push(("truncated", truncated, "truncated"));
    for (name, tampered, expected) in cases {
        let (code, stderr) = verify_tampered(&a, &tmp.path().join(name), &tampered);
        assert_eq!(code, Some(1), "{name}: {stderr}");
        assert!(stderr.contains(expected), "{name}: {stderr}");
    }

    // another run's log with its own key and head: nothing of it verifies here
    let b = tmp.path().join("b");
    assert!(run(&b, &[]).status.success());
    let (code, stderr) = verify_tampered(
        &a,
        &tmp.path().join("other"),
        &lines(&b.join("audit.jsonl")),
    );
    assert_eq!(code, Some(1));
    assert!(stderr.contains("line 1"), "{stderr}");

    // a head that does not match: edited to fit a cut log, or another run's
    let cut = tmp.path().join("head-edited");
    let mut head: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("audit.head.json")).unwrap()).unwrap();
    head["lines"] = (original.len() as u64 - 2).into();
    verify_tampered(&a, &cut, &original[..original.len() - 2]);
    std::fs::write(cut.join("audit.head.json"), head.to_string()).unwrap();
    let output = cpo(&["audit", "verify", cut.join("audit.jsonl").to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("signature"),
        "{}",
        text(&output.stderr)
    );
    let swapped = tmp.path().join("head-swapped");
    verify_tampered(&a, &swapped, &original);
    std::fs::copy(b.join("audit.head.json"), swapped.join("audit.head.json")).unwrap();
    let output = cpo(&[
        "audit",
        "verify",
        swapped.join("audit.jsonl").to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("signature"),
        "{}",
        text(&output.stderr)
    );
    // no head at all: the log cannot be shown complete
    std::fs::remove_file(swapped.join("audit.head.json")).unwrap();
    let output = cpo(&[
        "audit",
        "verify",
        swapped.join("audit.jsonl").to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("no head"),
        "{}",
        text(&output.stderr)
    );
    // a configured key replaces the generated one: the log does not verify with it
    let output = command(&["audit", "verify", log.to_str().unwrap()])
        .env("CPO__SECURITY__AUDIT_KEY", "another key")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
}

#[test]
fn a_second_run_on_the_same_directory_fails_at_once_and_names_the_first() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("customers.csv");
    let generated = cpo(&[
        "gen-data",
        "--customers",
        "20000",
        "--seed",
        "3",
        "--out",
        csv.to_str().unwrap(),
    ]);
    assert!(generated.status.success(), "{}", text(&generated.stderr));
    let out = tmp.path().join("out");
    let args = [
        "run",
        "--quiet",
        "--customers",
        csv.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let first = command(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // the first holds the lock once its pid is in the lock file
    let deadline = Instant::now() + Duration::from_secs(30);
    let pid = first.id().to_string();
    while std::fs::read_to_string(out.join(".cpo.lock"))
        .map(|t| t.trim().to_string())
        .ok()
        != Some(pid.clone())
    {
        assert!(
            Instant::now() < deadline,
            "the first run never took the lock"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let started = Instant::now();
    let second = cpo(&args);
    let refused_in = started.elapsed();
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert_eq!(second.status.code(), Some(1), "{}", text(&second.stdout));
    let stderr = text(&second.stderr);
    assert!(
        stderr.contains("in use") && stderr.contains(&format!("pid {pid}")),
        "{stderr}"
    );
    assert!(
        refused_in < Duration::from_secs(5),
        "refused after {refused_in:?}"
    );
    // the first run's files are its own: one message per assignment, an intact log
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let outbox = lines(&out.join("outbox.jsonl"));
    assert_eq!(
        Some(outbox.len() as u64),
        summary["customers_assigned"].as_u64()
    );
    for line in &outbox {
        serde_json::from_str::<serde_json::Value>(line).expect("whole JSON lines");
    }
    let verify = cpo(&["audit", "verify", out.join("audit.jsonl").to_str().unwrap()]);
    assert!(verify.status.success(), "{}", text(&verify.stderr));

    // afterwards: refused without --force (nothing touched), replaced with it
    let before = std::fs::read(out.join("outbox.jsonl")).unwrap();
    let again = cpo(&args);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("--force"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(std::fs::read(out.join("outbox.jsonl")).unwrap(), before);
    let mut forced = args.to_vec();
    forced.push("--force");
    let replaced = cpo(&forced);
    assert!(replaced.status.success(), "{}", text(&replaced.stderr));
    assert_eq!(lines(&out.join("outbox.jsonl")).len(), outbox.len());
    let verify = cpo(&["audit", "verify", out.join("audit.jsonl").to_str().unwrap()]);
    assert!(verify.status.success(), "{}", text(&verify.stderr));
}

fn csv_with(tmp: &Path, name: &str, edit: impl Fn(&str) -> Option<String>) -> PathBuf {
    let original = std::fs::read_to_string(repo().join("data/customers.csv")).unwrap();
    let body: Vec<String> = original.lines().filter_map(&edit).collect();
    let path = tmp.join(name);
    std::fs::write(&path, body.join("\n") + "\n").unwrap();
    path
}

/// Arguments, environment, the expected exit code and what the output says.
type ExitCase = (
    Vec<String>,
    Vec<(&'static str, &'static str)>,
    i32,
    &'static str,
);

#[test]
fn failed_runs_exit_with_the_code_of_their_failure_and_say_why() {
    let tmp = tempfile::tempdir().unwrap();
    let header = |line: &str| line.starts_with("customer_id");
    let no_consent_column = csv_with(tmp.path(), "a.csv", |l| {
        Some(l.rsplit_once(',').map_or(l, |(rest, _)| rest).to_string())
    });
    let empty = csv_with(tmp.path(), "b.csv", |l| header(l).then(|| l.to_string()));
    let nobody_consents = csv_with(tmp.path(), "c.csv", |l| {
        Some(if header(l) {
            l.to_string()
        } else {
            l.replace(",true", ",false")
        })
    });
    let campaign = std::fs::read_to_string(repo().join("data/campaign.yaml")).unwrap();
    let nan = tmp.path().join("nan.yaml");
    std::fs::write(&nan, campaign.replace("control: 1.0", "control: .nan")).unwrap();
    let path = |p: &PathBuf| p.to_str().unwrap().to_string();
    let cases: Vec<ExitCase> = vec![
        (
            vec!["--customers".into(), path(&no_consent_column)],
            vec![],
            3,
            "consent",
        ),
        (
            vec!["--customers".into(), "no/such.csv".into()],
            vec![],
            3,
            "no/such.csv",
        ),
        (
            vec!["--campaign".into(), path(&nan)],
            vec![],
            3,
            "input rejected",
        ),
        (
            vec!["--customers".into(), path(&empty)],
            vec![],
            4,
            "no customer was read",
        ),
        (
            vec![],
            vec![("CPO__RUNTIME__MAX_MESSAGE_BYTES", "8000")],
            5,
            "dead-lettered",
        ),
        (
            vec!["--customers".into(), path(&nobody_consents)],
            vec![],
            7,
            "nothing was delivered",
        ),
    ];
    for (i, (extra, env, code, why)) in cases.into_iter().enumerate() {
        let out = tmp.path().join(format!("out{i}"));
        let mut args = vec!["run", "--quiet", "--out", out.to_str().unwrap()];
        args.extend(extra.iter().map(String::as_str));
        let output = command(&args).envs(env).output().unwrap();
        let said = text(&output.stdout) + &text(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{extra:?}: {said}");
        assert!(said.contains(why), "{extra:?}: {said}");
        // a run that started ends with its summary's result line
        if !output.stdout.is_empty() {
            assert!(
                said.contains(&format!("(exit {code})")),
                "{extra:?}: {said}"
            );
        }
    }
    let help = text(&cpo(&["run", "--help"]).stdout);
    assert!(
        help.contains("Exit codes") && help.contains("7  nothing was delivered"),
        "{help}"
    );
}

/// Run `args` with stdout a pipe whose reader is gone before anything is written.
fn with_closed_stdout(args: &[&str]) -> (Option<i32>, String) {
    let mut child = command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (child.wait().unwrap().code(), stderr)
}

#[test]
fn a_closed_stdout_ends_run_and_dlq_list_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (code, stderr) = with_closed_stdout(&["run", "--quiet", "--out", out.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
    // the run itself is complete
    assert!(out.join("summary.json").exists());

    let letters = tmp.path().join("dead_letters.jsonl");
    let one = r#"{"version":1,"id":"m1","campaign_id":"c","stage":"delivery","queue":"send","kind":"permanent","reason":"r","attempts":1,"first_seen_ms":0,"dead_lettered_ms":0,"message":null,"raw":null}"#;
    std::fs::write(&letters, format!("{one}\n").repeat(5000)).unwrap();
    for json in [false, true] {
        let mut args = vec!["dlq", "list", "--file", letters.to_str().unwrap()];
        if json {
            args.push("--json");
        }
        let (code, stderr) = with_closed_stdout(&args);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{stderr}"
        );
    }
}
