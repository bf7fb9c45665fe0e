//! Tests of the canonical sort: every path (one run, merge, split merge, chunk
//! sort) against a plain sort of the lines.

use super::*;

fn line(id: &str, body: &str) -> String {
    format!("{{\"message_id\":\"{id}\",\"body\":\"{body}\"}}")
}

#[test]
fn sorts_by_id_and_keeps_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.jsonl");
    let lines = [
        line("msg-c", "3"),
        line("msg-a", "1"),
        line("msg-b", "2 with \\n escaped"),
        line("msg-a", "0 duplicate"),
    ];
    // no trailing newline and a blank line: both normalized
    std::fs::write(
        &path,
        format!("{}\n{}\n\n{}\n{}", lines[0], lines[1], lines[2], lines[3]),
    )
    .unwrap();
    canonicalize_outbox(&path).unwrap();
    let expected = format!("{}\n{}\n{}\n{}\n", lines[3], lines[1], lines[2], lines[0]);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
    // idempotent, and no temporary file left behind
    canonicalize_outbox(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn two_orders_of_the_same_lines_give_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (0..500)
        .map(|i| line(&format!("msg-{:04}", (i * 7919) % 500), "x"))
        .collect();
    let forward = dir.path().join("a.jsonl");
    let backward = dir.path().join("b.jsonl");
    std::fs::write(&forward, lines.join("\n") + "\n").unwrap();
    let reversed: Vec<String> = lines.iter().rev().cloned().collect();
    std::fs::write(&backward, reversed.join("\n") + "\n").unwrap();
    canonicalize_outbox(&forward).unwrap();
    canonicalize_outbox(&backward).unwrap();
    let a = std::fs::read(&forward).unwrap();
    assert_eq!(a, std::fs::read(&backward).unwrap());
    assert_eq!(String::from_utf8(a).unwrap().lines().count(), 500);
}

#[test]
fn fast_id_path_agrees_with_the_parser() {
    assert_eq!(
        leading_id(br#"{"message_id":"msg-1","x":1}"#),
        Some("msg-1")
    );
    // escaped ids, other key orders and bare ids go through serde
    assert_eq!(leading_id(br#"{"message_id":"a\"b","x":1}"#), None);
    assert_eq!(leading_id(br#"{"x":1,"message_id":"msg-1"}"#), None);
    assert_eq!(leading_id(br#"{"message_id":"msg-1"}"#), None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.jsonl");
    let lines = [
        r#"{"message_id":"b\"q","n":1}"#,
        r#"{"n":2,"message_id":"a"}"#,
        r#"{"message_id":"ab","n":3}"#,
    ];
    std::fs::write(&path, lines.join("\n")).unwrap();
    canonicalize_outbox(&path).unwrap();
    let expected = format!("{}\n{}\n{}\n", lines[1], lines[2], lines[0]);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
    assert!(prefix_key(b"ab") < prefix_key(b"ab\x01"));
    assert!(prefix_key(b"msg-0") < prefix_key(b"msg-1"));
}

/// Tiny buffers: lines longer than a buffer, and more runs than one merge takes.
const TINY: Limits = Limits {
    scan_buffer: 7,
    merge_budget: 64,
    max_fan_in: 3,
    min_run_buffer: 5,
    max_run_buffer: 9,
    chunk_bytes: 100,
    checkpoint_every: 1,
    split_from_bytes: 0,
};

/// Two threads merge halves even of a small file, split at checkpoints.
const SPLIT: Limits = Limits {
    checkpoint_every: 2,
    split_from_bytes: 0,
    ..LIMITS
};

/// The definition: non-blank lines sorted by (id, bytes), each with a newline.
fn reference(text: &str) -> String {
    let mut lines: Vec<(String, &str)> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let id: serde_json::Value = serde_json::from_str(l).unwrap();
            (id["message_id"].as_str().unwrap().to_string(), l)
        })
        .collect();
    lines.sort();
    lines.into_iter().map(|(_, l)| format!("{l}\n")).collect()
}

fn canonical_with(text: &str, limits: Limits) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.jsonl");
    std::fs::write(&path, text).unwrap();
    let lines = canonicalize_with(&path, limits).unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no scratch left"
    );
    assert_eq!(lines as usize, reference(text).lines().count());
    std::fs::read_to_string(&path).unwrap()
}

#[test]
fn sorted_runs_are_merged_and_many_runs_go_through_chunks() {
    // three runs as the file outbox writes them, plus an escaped id and a duplicate
    let runs = [
        vec![line("msg-b", "1"), line("msg-d", "2"), line("msg-f", "3")],
        vec![line("msg-a", "4"), line("msg-e", "5")],
        vec![
            r#"{"message_id":"msg-c\"q","n":6}"#.to_string(),
            line("msg-d", "0"),
        ],
    ];
    let text: String = runs.iter().flatten().map(|l| format!("{l}\n")).collect();
    let expected = reference(&text);
    assert_eq!(canonical_with(&text, LIMITS), expected);
    // tiny buffers: lines outgrow them, and 3 runs exceed nothing yet
    assert_eq!(canonical_with(&text, TINY), expected);
    assert_eq!(canonical_with(&text, SPLIT), expected);
    // reversed, every line is its own run: more than the fan-in of 3
    let reversed: String = text.lines().rev().map(|l| format!("{l}\n")).collect();
    assert_eq!(canonical_with(&reversed, TINY), expected);
    assert_eq!(canonical_with(&reversed, LIMITS), expected);
    assert_eq!(canonical_with(&reversed, SPLIT), expected);
}

#[cfg(unix)]
#[test]
fn an_outbox_already_in_order_is_not_rewritten() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.jsonl");
    std::fs::write(
        &path,
        format!("{}\n{}\n", line("msg-a", "1"), line("msg-b", "2")),
    )
    .unwrap();
    let inode = std::fs::metadata(&path).unwrap().ino();
    assert_eq!(canonicalize_outbox(&path).unwrap(), 2);
    assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode);
    // a missing final newline is fixed, which needs a rewrite
    std::fs::write(
        &path,
        format!("{}\n{}", line("msg-a", "1"), line("msg-b", "2")),
    )
    .unwrap();
    canonicalize_outbox(&path).unwrap();
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .ends_with("\"2\"}\n")
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    #[test]
    fn any_order_of_any_lines_gives_the_reference(
        lines in proptest::collection::vec(("[a-d]{0,3}", "[x-z]{0,2}", proptest::bool::ANY), 0..40),
        blank_every in proptest::option::of(2usize..9),
        limits in 0usize..3,
    ) {
        let mut text = String::new();
        for (i, (id, body, escaped)) in lines.iter().enumerate() {
            let id = if *escaped { format!("{id}\\\"") } else { id.clone() };
            text.push_str(&format!("{{\"message_id\":\"{id}\",\"body\":\"{body}\"}}\n"));
            // without blank lines the file is clean, and SPLIT merges halves
            if blank_every.is_some_and(|every| i % every == 0) {
                text.push_str("  \n");
            }
        }
        let limits = [LIMITS, TINY, SPLIT][limits];
        proptest::prop_assert_eq!(canonical_with(&text, limits), reference(&text));
    }
}

#[test]
fn a_bad_line_is_named_and_the_file_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.jsonl");
    let text = format!("{}\n{{\"no_id\":1}}\n", line("msg-b", "1"));
    std::fs::write(&path, &text).unwrap();
    let err = canonicalize_outbox(&path).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("line 2"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}
