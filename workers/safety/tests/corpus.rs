//! The bundled approved-content corpus must pass the screen: generation builds
//! copy from these snippets, so a false positive here would block the demo.

mod common;

use std::path::Path;

use common::EMBEDDED;
use cpo_safety::{SafetyConfig, ScreenRequest, assess};
use cpo_shared::model::Decision;

/// The body of a content file: everything after the front matter.
fn body(markdown: &str) -> &str {
    markdown
        .strip_prefix("---")
        .and_then(|rest| rest.split_once("\n---"))
        .map_or(markdown, |(_, body)| body)
}

#[test]
fn every_approved_snippet_passes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/content");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return; // the corpus is optional for this crate's tests
    };
    let config = SafetyConfig::default();
    let mut screened = 0;
    let mut blocked = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let report = EMBEDDED.screen_text(&ScreenRequest {
            subject: "",
            body: body(&text),
        });
        let assessment = assess(&report, &config);
        screened += 1;
        if assessment.decision == Decision::Blocked {
            blocked.push(format!("{}: {:?}", path.display(), assessment.reasons));
        }
    }
    assert!(screened > 0);
    assert!(blocked.is_empty(), "{}", blocked.join("\n"));
}
