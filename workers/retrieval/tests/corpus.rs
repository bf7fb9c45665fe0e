//! The bundled corpus loads and meets the content rules; bad documents are refused
//! with the file and field named.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use cpo_retrieval::{Category, Corpus, CorpusError, Date};

#[test]
fn bundled_corpus_loads_with_every_category() {
    let corpus = common::bundled_corpus();
    assert!(corpus.len() >= 25, "only {} documents", corpus.len());
    let categories: BTreeSet<Category> = corpus.documents().iter().map(|d| d.category).collect();
    assert_eq!(categories, Category::ALL.into_iter().collect());
    assert!(corpus.get("prod-ridgeline-trail-jacket").is_some());
}

#[test]
fn bundled_corpus_exercises_expiry_and_every_target_group() {
    let corpus = common::bundled_corpus();
    let today = common::run_date();
    let expired: Vec<&str> = corpus
        .documents()
        .iter()
        .filter(|d| d.expires_at.is_some_and(|e| e <= today))
        .map(|d| d.id.as_str())
        .collect();
    assert!(
        !expired.is_empty(),
        "no expired document to exercise the filter"
    );
    for group in [
        "all",
        "high-value",
        "premium",
        "new",
        "at-risk",
        "lapsed",
        "win-back",
    ] {
        assert!(
            corpus
                .documents()
                .iter()
                .any(|d| d.audience.iter().any(|a| a == group)),
            "no document for {group}"
        );
    }
}

/// Generation quotes body sentences verbatim into emails, so each must stand on its own.
#[test]
fn bundled_copy_is_quotable() {
    let banned = ["guarantee", "risk-free", "risk free", "{{", "}}", "@"];
    for doc in common::bundled_corpus().documents() {
        let lower = doc.body.to_lowercase();
        for word in banned {
            assert!(!lower.contains(word), "{}: contains `{word}`", doc.id);
        }
        let plain = doc.body.replace("a.m.", "am").replace("p.m.", "pm");
        let sentences = plain.matches(". ").count() + 1;
        assert!(
            (2..=5).contains(&sentences),
            "{}: {sentences} sentences",
            doc.id
        );
        assert!(
            doc.body.ends_with('.'),
            "{}: last sentence unfinished",
            doc.id
        );
    }
}

#[test]
fn fingerprint_is_stable_across_loads() {
    assert_eq!(
        common::bundled_corpus().fingerprint(),
        Corpus::load(common::content_dir()).unwrap().fingerprint()
    );
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("retrieval-{name}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_bad_document_names_its_file_and_field() {
    let dir = scratch_dir("bad-front-matter");
    let good = fs::read_to_string(common::content_dir().join("policy-returns.md")).unwrap();
    fs::write(dir.join("policy-returns.md"), &good).unwrap();
    let bad = good
        .replace("id: policy-returns", "id: policy-broken")
        .replace("approved_at: 2026-01-15", "approved_at: 15/01/2026");
    fs::write(dir.join("policy-broken.md"), bad).unwrap();

    let err = Corpus::load(&dir).unwrap_err();
    match &err {
        CorpusError::Field { file, field, .. } => {
            assert!(file.ends_with("policy-broken.md"), "{file}");
            assert_eq!(field, "approved_at");
        }
        other => panic!("expected a field error, got {other}"),
    }
    let message = err.to_string();
    assert!(message.contains("policy-broken.md") && message.contains("approved_at"));
}

#[test]
fn unreadable_front_matter_and_empty_dirs_are_errors() {
    let dir = scratch_dir("no-front-matter");
    fs::write(dir.join("loose-note.md"), "Just some text.\n").unwrap();
    let err = Corpus::load(&dir).unwrap_err().to_string();
    assert!(err.contains("loose-note.md"), "{err}");

    let empty = scratch_dir("empty");
    assert!(matches!(Corpus::load(&empty), Err(CorpusError::Dir { .. })));
    assert!(matches!(
        Corpus::load(empty.join("missing")),
        Err(CorpusError::Dir { .. })
    ));
}

#[test]
fn documents_are_ordered_by_id_whatever_the_directory_order() {
    let corpus = common::bundled_corpus();
    let ids: Vec<&str> = corpus.documents().iter().map(|d| d.id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    assert!(
        corpus
            .documents()
            .iter()
            .all(|d| d.approved_at <= Date::parse("2026-11-24").unwrap())
    );
}
