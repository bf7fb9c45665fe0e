//! `cpo screen` end to end: JSONL in, one verdict per record out, bad lines blocked.

mod common;

use common::{EMBEDDED, FailingScreen};
use cpo_safety::{SafetyConfig, ScreenStats, screen_jsonl};
use serde_json::{Value, json};

async fn run(input: &str) -> (ScreenStats, Vec<Value>) {
    let mut out = Vec::new();
    let stats = screen_jsonl(
        input.as_bytes(),
        &mut out,
        &*EMBEDDED,
        &SafetyConfig::default(),
    )
    .await
    .unwrap();
    let lines = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (stats, lines)
}

#[tokio::test]
async fn records_are_screened_in_order_and_a_malformed_line_does_not_stop_the_run() {
    let input = [
        r#"{"id":"a","subject":"Double points","body":"Earn double points in March."}"#,
        r#"{"id":"b","subject":"Hey","body":"f u c k this"}"#,
        r#"{"id":"c","subject":"Hey","body": oops"#,
        "",
        r#"{"id":"d","subject":"Hi","body":"Earn points [doc-1]","citations":["doc-1"],"snippets":{"doc-1":"Points double in March."}}"#,
        r#"{"id":"e","subject":"Hi","body":"Earn points [doc-7]","snippets":{"doc-1":"Points double in March."}}"#,
        r#"{"id":"f","subject":"Hi"}"#,
    ]
    .join("\n");
    let (stats, lines) = run(&input).await;
    assert_eq!(
        stats,
        ScreenStats {
            records: 6,
            approved: 2,
            blocked: 4,
            malformed: 2
        }
    );
    let ids: Vec<&Value> = lines.iter().map(|l| &l["id"]).collect();
    assert_eq!(
        ids,
        [
            &json!("a"),
            &json!("b"),
            &Value::Null,
            &json!("d"),
            &json!("e"),
            &json!("f")
        ]
    );

    assert_eq!(
        lines[0],
        json!({"id":"a","decision":"approved","categories":{"hate":0,"violence":0,"self_harm":0,"sexual":0},"reasons":[]})
    );
    assert_eq!(lines[1]["decision"], "blocked");
    assert_eq!(lines[1]["reasons"], json!(["profanity: 'fuck'"]));

    assert_eq!(lines[2]["decision"], "blocked");
    let reason = lines[2]["reasons"][0].as_str().unwrap();
    assert!(reason.starts_with("line 3: invalid JSON: "), "{reason}");

    // Citation rules run only when snippets are given.
    assert_eq!(lines[3]["decision"], "approved");
    assert_eq!(
        lines[4]["reasons"],
        json!(["citation [doc-7] does not match any snippet retrieved for this segment"])
    );
    // Line 7 (after a blank line 4) is JSON but not a record: its id is kept.
    let reason = lines[5]["reasons"][0].as_str().unwrap();
    assert!(
        reason.starts_with("line 7: invalid record: missing field `body`"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_backend_error_blocks_every_record_and_the_run_still_completes() {
    let mut out = Vec::new();
    let input = "{\"id\":\"a\",\"subject\":\"Hi\",\"body\":\"Hello\"}\n";
    let stats = screen_jsonl(
        input.as_bytes(),
        &mut out,
        &FailingScreen,
        &SafetyConfig::default(),
    )
    .await
    .unwrap();
    assert_eq!(stats.blocked, 1);
    let line: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        line["reasons"],
        json!(["screen error: backend: connection refused"])
    );
}

#[tokio::test]
async fn output_is_byte_identical_across_runs() {
    let input =
        "{\"id\":\"a\",\"subject\":\"Hi\",\"body\":\"I will kill you, call 555-123-4567\"}\n";
    let mut first = Vec::new();
    let mut second = Vec::new();
    let config = SafetyConfig::default();
    screen_jsonl(input.as_bytes(), &mut first, &*EMBEDDED, &config)
        .await
        .unwrap();
    screen_jsonl(input.as_bytes(), &mut second, &*EMBEDDED, &config)
        .await
        .unwrap();
    assert_eq!(first, second);
    assert!(
        String::from_utf8(first)
            .unwrap()
            .contains("personal data: phone number")
    );
}

#[tokio::test]
async fn with_snippets_every_sentence_must_be_phrasing_or_supported_by_its_citation() {
    let snippets = r#""snippets":{"prod-x":"Boots cost $169."}"#;
    let input = [
        format!(r#"{{"id":"price","subject":"Boots","body":"Boots cost $1, 95 percent off. [prod-x]",{snippets}}}"#),
        format!(r#"{{"id":"tail","subject":"Boots","body":"Boots cost $169. [prod-x] Everything ships free.",{snippets}}}"#),
        format!(r#"{{"id":"same","subject":"Boots","body":"Hello,\n\nBoots cost 169 dollars. [prod-x]\n\nRegards,\nThe Northwind team",{snippets}}}"#),
        // Without snippets there is nothing to check a claim against.
        r#"{"id":"unchecked","subject":"Boots","body":"Boots cost $1, 95 percent off. [prod-x]"}"#.to_string(),
    ]
    .join("\n");
    let (stats, lines) = run(&input).await;
    assert_eq!((stats.approved, stats.blocked), (2, 2), "{lines:?}");
    assert_eq!(lines[0]["decision"], "blocked");
    assert_eq!(
        lines[0]["reasons"],
        json!([
            "unsupported_claim: sentence \"Boots cost $1, 95 percent off.\" states what [prod-x] does not: $1, 95 percent"
        ])
    );
    assert_eq!(
        lines[1]["reasons"],
        json!([
            "unsupported_claim: sentence \"Everything ships free.\" cites no snippet and is not tone phrasing"
        ])
    );
    assert_eq!(lines[2]["decision"], "approved", "{}", lines[2]);
    assert_eq!(lines[3]["decision"], "approved");
}
