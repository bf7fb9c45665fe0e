//! `cpo migrate`, the deployment's init step, against the real PostgreSQL on
//! 127.0.0.1:5432 (a database of its own, dropped after): several at once
//! migrate once and all succeed; an unreachable store fails with the URL
//! redacted.

use std::process::{Command, Output};

fn psql(sql: &str) {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-qAtc",
            sql,
        ])
        .output()
        .expect("psql must be installed (PostgreSQL client)");
    assert!(
        out.status.success(),
        "PostgreSQL must run on 127.0.0.1:5432 (user postgres, trust auth): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn migrate(url: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_cpo"))
        .arg("migrate")
        .env("CPO__STORE__URL", url)
        .env("CPO__STORE__ACQUIRE_TIMEOUT_MS", "3000")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn four_migrations_at_once_apply_the_schema_once() {
    let db = format!("cpo_migrate_test_{}", std::process::id());
    psql(&format!("DROP DATABASE IF EXISTS {db}"));
    psql(&format!("CREATE DATABASE {db}"));
    let url = format!("postgres://postgres@127.0.0.1:5432/{db}");
    let children: Vec<_> = (0..4).map(|_| migrate(&url)).collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("latest schema"), "{}", text(&out));
    }
    let count = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", &db, "-qAtc"])
        .arg("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .output()
        .unwrap();
    let applied: u32 = String::from_utf8_lossy(&count.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(applied >= 1, "no migration recorded");
    let versions = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", &db, "-qAtc"])
        .arg("SELECT count(*) - count(DISTINCT version) FROM _sqlx_migrations")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&versions.stdout).trim(), "0");
    psql(&format!("DROP DATABASE {db} WITH (FORCE)"));
}

#[test]
fn an_unreachable_store_fails_without_showing_the_password() {
    let out = migrate("postgres://postgres:hunter2@127.0.0.1:1/none")
        .wait_with_output()
        .unwrap();
    assert!(!out.status.success());
    let shown = text(&out);
    assert!(shown.contains("127.0.0.1:1"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
}
