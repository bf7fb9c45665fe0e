//! `schemas/` must match the Rust types. Regenerate with `make schemas`
//! (runs this test with `UPDATE_SCHEMAS=1`).

use std::path::PathBuf;

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("schemas")
}

#[test]
fn committed_schemas_are_current() {
    let dir = schema_dir();
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
    let mut stale = Vec::new();
    for (name, schema) in cpo_shared::schema::all() {
        let path = dir.join(name);
        let expected = cpo_shared::schema::render(&schema);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, expected).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(committed) if committed == expected => {}
            _ => stale.push(name),
        }
    }
    assert!(
        stale.is_empty(),
        "stale schemas {stale:?}: run `make schemas` and commit schemas/"
    );
}

#[test]
fn every_schema_declares_the_envelope_metadata() {
    for (name, schema) in cpo_shared::schema::all() {
        let text = schema.to_string();
        if name.starts_with("campaign") || name.starts_with("variant") || name.starts_with("send") {
            for field in ["\"campaign_id\"", "\"version\"", "\"attempt\"", "\"id\""] {
                assert!(text.contains(field), "{name} lacks {field}");
            }
        }
    }
}
