//! The bundled sample data stays what the generator and the rule file say it is.

use std::collections::BTreeMap;
use std::path::PathBuf;

use cpo_segmentation::scan::{CsvFile, CsvText, Plan, pass_one};
use cpo_segmentation::screen::Suppressions;
use cpo_segmentation::{DEFAULT_RULES_YAML, RuleSet, generate_customers};
use cpo_shared::model::ExclusionReason;

fn repo_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(name)
}

fn plan() -> Plan {
    Plan {
        rules: RuleSet::bundled().unwrap(),
        suppressions: Suppressions::default(),
        batch_size: 1000,
    }
}

#[test]
fn bundled_customers_are_the_generator_output_for_seed_42() {
    let mut expected = Vec::new();
    generate_customers(250, 42, &mut expected).unwrap();
    let bundled = std::fs::read(repo_file("customers.csv")).unwrap();
    assert!(
        bundled == expected,
        "data/customers.csv is stale: regenerate it with `cpo gen-data --customers 250 --seed 42 --out data/customers.csv`"
    );
}

#[test]
fn bundled_customers_fill_every_default_segment() {
    let one = pass_one(&CsvFile::new(repo_file("customers.csv")), &plan()).unwrap();
    assert_eq!(one.customers_total, 250);
    let sizes: BTreeMap<&str, u64> = one
        .profiles
        .iter()
        .map(|p| (p.name.as_str(), p.size))
        .collect();
    assert_eq!(sizes.len(), 5, "{sizes:?}");
    assert!(sizes.values().all(|&n| n > 0));
    assert!(
        one.exclusions
            .iter()
            .all(|e| e.reason == ExclusionReason::NoConsent)
    );
    assert!(
        !one.exclusions.is_empty(),
        "the sample shows consent handling"
    );
}

#[test]
fn generated_files_parse_without_invalid_or_duplicate_rows() {
    for seed in [1, 7, 1234] {
        let mut csv = Vec::new();
        generate_customers(5_000, seed, &mut csv).unwrap();
        let one = pass_one(&CsvText(&csv), &plan()).unwrap();
        assert_eq!(one.customers_total, 5_000);
        let not_consent: Vec<_> = one
            .exclusions
            .iter()
            .filter(|e| e.reason != ExclusionReason::NoConsent)
            .collect();
        assert!(not_consent.is_empty(), "seed {seed}: {not_consent:?}");
        let share = one.exclusions.len() as f64 / 5_000.0;
        assert!(
            (0.035..0.065).contains(&share),
            "seed {seed}: {share} without consent"
        );
        assert_eq!(one.profiles.len(), 5, "seed {seed}");
    }
}

#[test]
fn the_rule_file_is_what_the_crate_embeds() {
    let on_disk = RuleSet::load(&repo_file("segments.yaml")).unwrap();
    assert_eq!(on_disk, RuleSet::from_yaml(DEFAULT_RULES_YAML).unwrap());
}
