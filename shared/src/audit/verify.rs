//! Checking a log: every line's MAC and link, then the log against its head.

use std::io::{BufRead, BufReader, Read};

use serde::Deserialize;

use super::head::SignedHead;
use super::{AuditError, AuditKey, GENESIS};

#[derive(Deserialize)]
struct AuditLine {
    seq: u64,
    ts_ms: u64,
    prev: String,
    /// Only checked to be JSON here: the MAC covers its text in the line.
    #[serde(rename = "event")]
    _event: serde::de::IgnoredAny,
    hash: String,
}

/// What stands before and after the event's text in a line.
pub(super) fn line_frame(seq: u64, ts_ms: u64, prev: &str, hash: &str) -> (String, String) {
    (
        format!(r#"{{"seq":{seq},"ts_ms":{ts_ms},"prev":"{prev}","event":"#),
        format!(r#","hash":"{hash}"}}"#),
    )
}

fn line_message(seq: u64, ts_ms: u64, prev: &str) -> Vec<u8> {
    let mut message = seq.to_le_bytes().to_vec();
    message.extend_from_slice(&ts_ms.to_le_bytes());
    message.extend_from_slice(prev.as_bytes());
    message
}

/// HMAC-SHA256 of one line: without the key, nobody can compute a line that
/// verifies, so a forged line or a rewritten log fails at its first line.
pub(super) fn line_hash(key: &AuditKey, seq: u64, ts_ms: u64, prev: &str, event: &[u8]) -> String {
    key.mac_hex(&[&line_message(seq, ts_ms, prev), event])
}

/// What a successful verification saw.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditSummary {
    pub lines: u64,
    pub last_hash: String,
    /// Lines after the head's count: written, but the process stopped before
    /// it updated the head. Their MACs verified, so only the key's holder
    /// wrote them.
    pub after_head: u64,
}

/// Check every line's MAC and link; the error names the first bad line
/// (1-based). With a head, also check that the log is as long as the head
/// says and that its line there is the one the head signed.
pub fn verify(
    reader: impl Read,
    key: &AuditKey,
    head: Option<&SignedHead>,
) -> Result<AuditSummary, AuditError> {
    if let Some(head) = head
        && !head.is_signed_by(key)
    {
        return Err(AuditError::Head(
            "the head's signature does not match (head edited, or signed with another key)".into(),
        ));
    }
    let mut prev = GENESIS.to_string();
    let mut expected_seq = 1u64;
    let mut at_head: Option<String> = None;
    for (index, line) in BufReader::new(reader).lines().enumerate() {
        let number = index as u64 + 1;
        let line = line?;
        let broken = |reason: String| AuditError::Broken {
            line: number,
            reason,
        };
        let parsed: AuditLine =
            serde_json::from_str(&line).map_err(|e| broken(format!("not an audit record: {e}")))?;
        if parsed.seq != expected_seq {
            return Err(broken(format!(
                "sequence {} where {} was expected (line removed or reordered)",
                parsed.seq, expected_seq
            )));
        }
        if parsed.prev != prev {
            return Err(broken(
                "does not link to the previous line (line removed or reordered)".into(),
            ));
        }
        let (before, after) = line_frame(parsed.seq, parsed.ts_ms, &parsed.prev, &parsed.hash);
        let event_json = line
            .strip_prefix(&before)
            .and_then(|rest| rest.strip_suffix(&after))
            .ok_or_else(|| broken("not laid out as the log writes lines (line edited)".into()))?;
        let expected = line_hash(
            key,
            parsed.seq,
            parsed.ts_ms,
            &parsed.prev,
            event_json.as_bytes(),
        );
        if expected != parsed.hash {
            return Err(broken(
                "content does not match its MAC (line edited, forged or rewritten, or another key)"
                    .into(),
            ));
        }
        if head.is_some_and(|h| h.lines == number) {
            at_head = Some(parsed.hash.clone());
        }
        prev = parsed.hash;
        expected_seq += 1;
    }
    let lines = expected_seq - 1;
    let mut after_head = 0;
    if let Some(head) = head {
        if lines < head.lines {
            return Err(AuditError::Head(format!(
                "the log has {lines} lines, its head records {}: the last {} were cut off (log truncated)",
                head.lines,
                head.lines - lines
            )));
        }
        let signed = if head.lines == 0 {
            Some(GENESIS.to_string())
        } else {
            at_head
        };
        if signed.as_deref() != Some(head.last_hash.as_str()) {
            return Err(AuditError::Head(format!(
                "line {} is not the line the head signed (log rewritten)",
                head.lines
            )));
        }
        after_head = lines - head.lines;
    }
    Ok(AuditSummary {
        lines,
        last_hash: prev,
        after_head,
    })
}
