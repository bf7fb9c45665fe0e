//! `cpo suppress` and `cpo forget` through the real binary, on the real
//! PostgreSQL (a database per test, dropped after) and on SQLite: output,
//! exit codes, errors that name the line or key, and no address ever printed.

use std::path::Path;
use std::process::{Command, Output};

use cpo_shared::privacy::AddressHasher;
use cpo_shared::store::{self, Assignment, Contact, EventRecord, StoreConfig, SuppressionKey};
use serde_json::Value;
use sqlx::Connection;

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const KEY: &str = "cli-test-address-key";

struct Db {
    name: String,
}

impl Db {
    fn create(tag: &str) -> Self {
        let name = format!("cpo_cli_{tag}_{}", std::process::id());
        block(async {
            let mut admin = sqlx::PgConnection::connect(PG_ADMIN)
                .await
                .unwrap_or_else(|e| {
                    panic!("PostgreSQL must run on 127.0.0.1:5432 (user postgres, trust auth): {e}")
                });
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin)
                .await
                .unwrap();
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .await
                .unwrap();
        });
        Self { name }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let name = self.name.clone();
        block(async move {
            if let Ok(mut admin) = sqlx::PgConnection::connect(PG_ADMIN).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await;
            }
        });
    }
}

fn block<T>(work: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(work)
}

fn cpo(url: &str, key: Option<&str>, args: &[&str], cwd: &Path) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cpo"));
    command
        .args(args)
        .current_dir(cwd)
        .env_remove("CPO_CONFIG")
        .env_remove("CPO__SECURITY__ADDRESS_KEY")
        .env("CPO__STORE__URL", url)
        .env("CPO__STORE__ACQUIRE_TIMEOUT_MS", "2000");
    if let Some(key) = key {
        command.env("CPO__SECURITY__ADDRESS_KEY", key);
    }
    command.output().expect("cpo runs")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "cpo failed: {}{}", out(&o), err(&o));
    out(&o)
}

fn failed(o: Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected exit 1: {}{}",
        out(&o),
        err(&o)
    );
    err(&o)
}

fn suppress_suite(url: &str, dir: &Path) {
    let run = |args: &[&str]| cpo(url, Some(KEY), args, dir);
    let hash = AddressHasher::new(KEY).hash("ada@example.com");

    let added = ok(run(&["suppress", "add", "--email", " Ada@Example.com "]));
    assert_eq!(
        added.trim(),
        format!("suppressed address {hash} (suppressed)")
    );
    let again = ok(run(&["suppress", "add", "--email", "ada@example.com"]));
    assert_eq!(
        again.trim(),
        format!("already suppressed: address {hash} (suppressed)")
    );
    ok(run(&[
        "suppress",
        "add",
        "--customer",
        "C1",
        "--reason",
        "bounced",
    ]));
    let bad = failed(run(&[
        "suppress",
        "add",
        "--customer",
        "C2",
        "--reason",
        "vip",
    ]));
    assert!(bad.contains("unknown reason `vip`"), "{bad}");
    let both = cpo(
        url,
        Some(KEY),
        &["suppress", "add", "--email", "a@x.io", "--customer", "C"],
        dir,
    );
    assert!(
        !both.status.success(),
        "--email and --customer together are refused"
    );
    let no_key = failed(cpo(
        url,
        None,
        &["suppress", "add", "--email", "a@x.io"],
        dir,
    ));
    assert!(no_key.contains("security.address_key"), "{no_key}");
    let not_address = failed(run(&["suppress", "add", "--email", "ada"]));
    assert!(
        not_address.contains("--email is not one plain address"),
        "{not_address}"
    );

    let listed = ok(run(&["suppress", "list", "--json"]));
    assert!(
        !listed.contains('@'),
        "no address is ever printed: {listed}"
    );
    let list: Vec<Value> = serde_json::from_str(&listed).unwrap();
    let entries: Vec<(String, String, String)> = list
        .iter()
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap().to_string();
            (s("kind"), s("value"), s("reason"))
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("address".into(), hash.clone(), "suppressed".into()),
            ("customer".into(), "C1".into(), "bounced".into())
        ]
    );
    let table = ok(run(&["suppress", "list"]));
    assert_eq!(table.lines().count(), 3, "{table}");
    assert!(table.starts_with("kind\tvalue\treason\tsource\tcreated_at_ms"));

    ok(run(&["suppress", "remove", "--customer", "C1"]));
    let gone = failed(run(&["suppress", "remove", "--customer", "C1"]));
    assert!(gone.contains("customer C1 is not suppressed"), "{gone}");

    // A bad row anywhere fails the whole import, naming its line; nothing is written.
    let csv = dir.join("suppress.csv");
    std::fs::write(
        &csv,
        "email,customer_id,reason\nb@x.io,,\n,C7,complained\nnot-an-address,,\n",
    )
    .unwrap();
    let bad_line = failed(run(&["suppress", "import", csv.to_str().unwrap()]));
    assert!(bad_line.contains("line 4"), "{bad_line}");
    assert!(
        !bad_line.contains("not-an-address"),
        "the file's address is not echoed: {bad_line}"
    );
    assert_eq!(count(&run(&["suppress", "list", "--json"])), 1);
    let rows: String = (0..12_000)
        .map(|i| format!("{i}@bulk.example,C{i},\n"))
        .collect();
    std::fs::write(&csv, format!("email,customer_id,reason\n{rows}")).unwrap();
    let imported = ok(run(&["suppress", "import", csv.to_str().unwrap()]));
    assert!(
        imported.starts_with(
            "imported 24000 suppressions: 24000 new, 0 already present (5 statements)"
        ),
        "{imported}"
    );
    assert_eq!(count(&run(&["suppress", "list", "--json"])), 24_001);

    // forget leaves the tombstone, which only --force lifts.
    let forgot = ok(run(&["forget", "--email", "ada@example.com"]));
    assert!(
        forgot.contains(&format!("tombstone: address {hash} (reason erased)")),
        "{forgot}"
    );
    let kept = failed(run(&["suppress", "remove", "--email", "ada@example.com"]));
    assert!(kept.contains("erasure tombstone"), "{kept}");
    ok(run(&[
        "suppress",
        "remove",
        "--email",
        "ada@example.com",
        "--force",
    ]));
}

fn count(o: &Output) -> usize {
    serde_json::from_slice::<Vec<Value>>(&o.stdout)
        .unwrap()
        .len()
}

#[test]
fn suppress_commands_on_postgres_and_sqlite() {
    let db = Db::create("suppress");
    let dir = tempfile::tempdir().unwrap();
    suppress_suite(&db.url(), dir.path());
    let lite = dir.path().join("lite");
    std::fs::create_dir_all(&lite).unwrap();
    // The default URL: `out/cpo.sqlite` under the working directory.
    suppress_suite("sqlite://out/cpo.sqlite", &lite);
    assert!(lite.join("out/cpo.sqlite").exists());
}

#[test]
fn a_store_that_is_down_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let o = cpo(
        "postgres://postgres:hunter2@127.0.0.1:1/none",
        Some(KEY),
        &["suppress", "list"],
        dir.path(),
    );
    let e = failed(o);
    assert!(e.contains("cannot open the store"), "{e}");
    assert!(!e.contains("hunter2"), "the password is never printed: {e}");
}

#[test]
fn forget_erases_what_the_store_held_about_the_person() {
    let db = Db::create("forget");
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        url: db.url(),
        ..StoreConfig::default()
    };
    block(async {
        let store = store::connect(&config).await.unwrap();
        let assignment = |m: &str, c: &str| Assignment {
            message_id: m.into(),
            campaign_id: "spring".into(),
            customer_id: c.into(),
            segment: "s".into(),
            arm: "a".into(),
            variant: "v".into(),
        };
        store
            .insert_assignments(&[assignment("m1", "C1"), assignment("m2", "C2")])
            .await
            .unwrap();
        let event = |id: &str, m: &str, raw: &str| EventRecord {
            provider: "sendgrid".into(),
            provider_event_id: id.into(),
            event_type: "open".into(),
            message_id: Some(m.into()),
            occurred_at_ms: 1,
            raw: raw.into(),
        };
        store
            .record_events(&[
                event("e1", "m1", r#"{"email":"ada@example.com"}"#),
                event("e2", "m2", r#"{"email":"bob@example.com"}"#),
            ])
            .await
            .unwrap();
        store
            .record_contacts(&[Contact {
                message_id: "m1".into(),
                customer_id: "C1".into(),
                campaign_id: "spring".into(),
                contacted_at_ms: 1,
            }])
            .await
            .unwrap();
    });
    let report = ok(cpo(
        &db.url(),
        Some(KEY),
        &["forget", "--email", "Ada@Example.com"],
        dir.path(),
    ));
    assert!(
        report.starts_with(
            "erased 1 customer(s) (C1): 1 assignment(s) unlinked, 1 event payload(s) erased, \
             0 send error(s) cleared, 1 contact(s) deleted"
        ),
        "{report}"
    );
    assert!(!report.contains("ada@"), "{report}");
    block(async {
        let store = store::connect(&config).await.unwrap();
        let left = store
            .assignments_for_messages(&["m1".into(), "m2".into()])
            .await
            .unwrap();
        assert_eq!(left["m1"].customer_id, "erased");
        assert_eq!(left["m2"].customer_id, "C2");
        let tombstone =
            SuppressionKey::AddressHash(AddressHasher::new(KEY).hash("ada@example.com"));
        let listed = store.list_suppressions().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (&listed[0].key, listed[0].reason.as_str()),
            (&tombstone, "erased")
        );
        assert!(
            store
                .contacts_since(&["C1".into()], 0)
                .await
                .unwrap()
                .is_empty()
        );
    });
    let no_email = failed(cpo(
        &db.url(),
        Some(KEY),
        &["forget", "--email", "not-an-address"],
        dir.path(),
    ));
    assert!(no_email.contains("--email"), "{no_email}");
}
