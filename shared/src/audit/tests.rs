//! Tests of the chain, its head and reopening a log.

use super::*;
use serde_json::json;
use std::fs::File;

fn key() -> AuditKey {
    AuditKey::new(b"test audit key".to_vec())
}

fn open(path: &Path) -> FileAuditLog {
    FileAuditLog::open(path, key(), Box::new(FileHead::beside(path))).unwrap()
}

fn head_of(path: &Path) -> SignedHead {
    FileHead::beside(path).load().unwrap().unwrap()
}

fn write_log(dir: &Path, n: u64) -> std::path::PathBuf {
    let path = dir.join("audit.jsonl");
    let log = open(&path);
    for i in 0..n {
        log.append(&json!({"event": "safety_decision", "variant": i, "decision": "approved"}))
            .unwrap();
    }
    log.flush().unwrap();
    path
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn verify_lines(lines: &[String]) -> Result<AuditSummary, AuditError> {
    verify(lines.join("\n").as_bytes(), &key(), None)
}

#[test]
fn intact_log_verifies_and_reopen_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), 3);
    assert_eq!(
        verify(File::open(&path).unwrap(), &key(), Some(&head_of(&path)))
            .unwrap()
            .lines,
        3
    );
    open(&path).append(&json!({"more": 1})).unwrap();
    assert_eq!(
        verify(File::open(&path).unwrap(), &key(), Some(&head_of(&path)))
            .unwrap()
            .lines,
        4
    );
}

#[test]
fn edit_removal_and_reorder_name_the_first_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let original = lines(&write_log(dir.path(), 5));

    let mut edited = original.clone();
    edited[2] = edited[2].replace("approved", "blocked");
    assert!(matches!(
        verify_lines(&edited),
        Err(AuditError::Broken { line: 3, .. })
    ));

    let mut removed = original.clone();
    removed.remove(1);
    assert!(matches!(
        verify_lines(&removed),
        Err(AuditError::Broken { line: 2, .. })
    ));

    let mut reordered = original.clone();
    reordered.swap(3, 4);
    assert!(matches!(
        verify_lines(&reordered),
        Err(AuditError::Broken { line: 4, .. })
    ));
}

#[test]
fn json_text_is_hashed_as_written_and_any_byte_change_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = open(&path);
    // keys in the writer's order, not sorted: the bytes are what counts
    log.append_json(r#"{"event":"send_batch","sends":[["m1","cust_1"]],"batch_seq":1}"#)
        .unwrap();
    log.append(&json!({"event": "after"})).unwrap();
    assert!(log.append_json("{\"a\":\n1}").is_err(), "two lines");
    assert!(log.append_json(r#"{"a":"#).is_err(), "not JSON");
    log.flush().unwrap();
    let written = lines(&path);
    assert_eq!(written.len(), 2);
    assert!(written[0].contains(
        r#""event":{"event":"send_batch","sends":[["m1","cust_1"]],"batch_seq":1},"hash""#
    ));
    assert_eq!(
        verify(File::open(&path).unwrap(), &key(), Some(&head_of(&path)))
            .unwrap()
            .lines,
        2
    );
    // the same JSON with a space, or keys reordered: still a change
    for edit in [
        written[0].replace(r#""sends":"#, r#""sends": "#),
        written[0].replace(
            r#"{"event":"send_batch","sends":[["m1","cust_1"]],"batch_seq":1}"#,
            r#"{"batch_seq":1,"event":"send_batch","sends":[["m1","cust_1"]]}"#,
        ),
        written[0].replace("cust_1", "cust_2"),
    ] {
        assert_ne!(edit, written[0]);
        let edited = vec![edit, written[1].clone()];
        assert!(matches!(
            verify_lines(&edited),
            Err(AuditError::Broken { line: 1, .. })
        ));
    }
    // a memory log reads the text back as a value
    let memory = MemoryAuditLog::default();
    memory.append_json(r#"{"b":1,"a":[true]}"#).unwrap();
    assert_eq!(
        memory.events.lock().unwrap()[0],
        json!({"a": [true], "b": 1})
    );
}

#[test]
fn batches_chain_like_single_appends_and_lines_keep_their_layout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = open(&path);
    log.append(&json!({"event": "first"})).unwrap();
    let batch: Vec<_> = (0..3)
        .map(|i| json!({"z": i, "event": "send", "a": [1.5, "x\"y\n"]}))
        .collect();
    log.append_batch(&batch).unwrap();
    log.append_batch(&[]).unwrap();
    log.flush().unwrap();
    let written = lines(&path);
    assert_eq!(written.len(), 4);
    assert_eq!(
        verify(File::open(&path).unwrap(), &key(), Some(&head_of(&path)))
            .unwrap()
            .lines,
        4
    );
    // each line is the serialization of its fields in this order, the
    // event with sorted keys: what `verify` re-serializes and hashes
    let line: serde_json::Value = serde_json::from_str(&written[2]).unwrap();
    let expected = format!(
        r#"{{"seq":3,"ts_ms":{},"prev":"{}","event":{},"hash":"{}"}}"#,
        line["ts_ms"],
        line["prev"].as_str().unwrap(),
        serde_json::to_string(&batch[1]).unwrap(),
        line["hash"].as_str().unwrap()
    );
    assert_eq!(written[2], expected);
    assert!(written[2].contains(r#""event":{"a":[1.5,"x\"y\n"],"event":"send","z":1}"#));

    let mut edited = written.clone();
    edited[3] = edited[3].replace(r#""z":2"#, r#""z":7"#);
    assert!(matches!(
        verify_lines(&edited),
        Err(AuditError::Broken { line: 4, .. })
    ));
}

#[test]
fn forged_lines_rewritten_logs_and_cut_tails_fail() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), 4);
    let original = lines(&path);
    let head = head_of(&path);
    assert_eq!(head.lines, 4);
    // the same log written with another key: every line recomputed, none verifies
    let other = dir.path().join("other.jsonl");
    let forger = FileAuditLog::open(
        &other,
        AuditKey::new(b"guess".to_vec()),
        Box::new(FileHead::beside(&other)),
    )
    .unwrap();
    for i in 0..4 {
        forger
            .append(&json!({"event": "safety_decision", "variant": i, "decision": "approved"}))
            .unwrap();
    }
    drop(forger);
    assert!(matches!(
        verify(File::open(&other).unwrap(), &key(), Some(&head)),
        Err(AuditError::Broken { line: 1, .. })
    ));
    // cut after line 2: the chain is whole, the head says 4
    let cut = original[..2].join("\n");
    let err = verify(cut.as_bytes(), &key(), Some(&head)).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    // a head signed with another key, or edited
    let mut edited = head.clone();
    edited.lines = 2;
    assert!(matches!(
        verify(cut.as_bytes(), &key(), Some(&edited)),
        Err(AuditError::Head(_))
    ));
    // lines written after the last head update (an interrupted process) verify
    let older = SignedHead::sign(
        &key(),
        3,
        original[2]
            .split("\"hash\":\"")
            .nth(1)
            .unwrap()
            .trim_end_matches("\"}"),
    );
    let summary = verify(File::open(&path).unwrap(), &key(), Some(&older)).unwrap();
    assert_eq!((summary.lines, summary.after_head), (4, 1));
    // a head that signed another line 3
    let wrong = SignedHead::sign(&key(), 3, GENESIS);
    let err = verify(File::open(&path).unwrap(), &key(), Some(&wrong)).unwrap_err();
    assert!(err.to_string().contains("rewritten"), "{err}");
}

#[test]
fn a_log_without_its_head_or_shorter_than_it_is_not_continued() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), 3);
    let kept = std::fs::read_to_string(&path).unwrap();
    let cut: String = kept.lines().take(2).map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, cut).unwrap();
    let refused = FileAuditLog::open(&path, key(), Box::new(FileHead::beside(&path)));
    assert!(matches!(refused, Err(AuditError::Head(_))));
    std::fs::write(&path, &kept).unwrap();
    std::fs::remove_file(head_path(&path)).unwrap();
    let refused = FileAuditLog::open(&path, key(), Box::new(FileHead::beside(&path)));
    assert!(matches!(refused, Err(AuditError::Head(_))));
    assert_eq!(head_path(&path), dir.path().join("audit.head.json"));
}
