//! The statistics against golden values computed by statsmodels, scipy and
//! gbstats (`scripts/gen_fixtures.py`): every number must match to 1e-6.

use std::path::PathBuf;

use cpo_analysis::analysis::Analysis;
use cpo_analysis::compare::AnalysisOptions;
use cpo_analysis::stats::cuped::{CupedArm, cuped};
use cpo_analysis::stats::multiple::{benjamini_hochberg, holm};
use cpo_analysis::summary::{SummaryInput, analyze_summary};
use serde_json::Value;

const TOLERANCE: f64 = 1e-6;

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Compares two JSON values field by field: numbers to 1e-6 (relative above 1),
/// nulls, booleans and strings exactly. Returns the mismatches.
fn compare(path: &str, expected: &Value, actual: &Value, mismatches: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Number(e), Value::Number(a)) => {
            let (e, a) = (
                e.as_f64().unwrap_or(f64::NAN),
                a.as_f64().unwrap_or(f64::NAN),
            );
            // Written so that a NaN on either side counts as a mismatch.
            let close = (e - a).abs() <= TOLERANCE * e.abs().max(1.0);
            if !close {
                mismatches.push(format!("{path}: expected {e}, got {a}"));
            }
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            for (index, (e, a)) in e.iter().zip(a).enumerate() {
                compare(&format!("{path}[{index}]"), e, a, mismatches);
            }
        }
        (Value::Object(e), Value::Object(a)) => {
            for (key, e) in e {
                match a.get(key) {
                    Some(a) => compare(&format!("{path}.{key}"), e, a, mismatches),
                    // An absent optional is the same as null in the golden file.
                    None if e.is_null() => {}
                    None => mismatches.push(format!("{path}.{key}: missing")),
                }
            }
        }
        (e, a) if e == a => {}
        (e, a) => mismatches.push(format!("{path}: expected {e}, got {a}")),
    }
}

fn analysis_json(analysis: &Analysis) -> Value {
    let metric = &analysis.metrics[0];
    serde_json::json!({
        "srm_p_value": analysis.srm_p_value,
        "required_users_per_arm": metric.required_users_per_arm,
        "minimum_detectable_lift": metric.minimum_detectable_lift,
        "comparisons": metric.comparisons,
    })
}

#[test]
fn summary_analyses_match_statsmodels_scipy_and_gbstats() {
    let document = fixture("summary_cases.json");
    let cases = document["cases"].as_array().expect("cases");
    assert!(
        cases.len() >= 20,
        "need at least 20 golden cases, have {}",
        cases.len()
    );
    let options = AnalysisOptions {
        power: document["power"].as_f64().expect("power"),
        sequential_tuning: document["sequential_tuning"].as_f64().expect("tuning"),
        ..AnalysisOptions::default()
    };
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap_or("?");
        let input: SummaryInput = serde_json::from_value(case["input"].clone()).expect("input");
        let analysis = analyze_summary(&input, &options).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut expected = case["expected"].clone();
        // The exact (unrounded) size is checked separately below.
        let exact = expected
            .as_object_mut()
            .and_then(|o| o.remove("required_users_per_arm_exact"));
        let mut mismatches = Vec::new();
        compare("", &expected, &analysis_json(&analysis), &mut mismatches);
        if let (Some(exact), Some(target)) =
            (exact.and_then(|e| e.as_f64()), input.target_relative_lift)
        {
            let control = &input.arms[0];
            let p0 = control.successes as f64 / control.users as f64;
            let alpha = input.alpha.unwrap_or(0.05);
            let n = cpo_analysis::stats::power::sample_size_two_proportions(
                p0 * target,
                p0,
                options.power,
                1.0,
                alpha,
            )
            .expect("sample size");
            if (n - exact).abs() > TOLERANCE * exact {
                mismatches.push(format!(
                    "required_users_per_arm_exact: expected {exact}, got {n}"
                ));
            }
        }
        if !mismatches.is_empty() {
            failures.push(format!("{name}:\n  {}", mismatches.join("\n  ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn golden_cases_cover_the_hard_inputs() {
    let document = fixture("summary_cases.json");
    let cases = document["cases"].as_array().expect("cases");
    let arms = |case: &Value| {
        case["input"]["arms"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let count = |predicate: &dyn Fn(&Value) -> bool| cases.iter().filter(|c| predicate(c)).count();
    assert!(
        count(&|c| arms(c).iter().any(|a| a["users"].as_u64() < Some(20))) >= 3,
        "small samples"
    );
    assert!(
        count(&|c| arms(c).iter().any(|a| a["successes"] == 0)) >= 3,
        "zero successes"
    );
    assert!(
        count(&|c| arms(c).windows(2).any(|w| w[0]["users"] != w[1]["users"])) >= 4,
        "unequal arms"
    );
    assert!(
        count(&|c| arms(c).len() > 3) >= 3,
        "more than two treatments"
    );
}

#[test]
fn cuped_matches_gbstats_regression_adjustment() {
    let document = fixture("cuped_cases.json");
    let arm = |v: &Value| CupedArm {
        n: v["n"].as_u64().expect("n"),
        sum_y: v["sum_y"].as_f64().expect("sum_y"),
        sum_x: v["sum_x"].as_f64().expect("sum_x"),
        sum_x2: v["sum_x2"].as_f64().expect("sum_x2"),
        sum_xy: v["sum_xy"].as_f64().expect("sum_xy"),
    };
    let cases = document["cases"].as_array().expect("cases");
    assert!(cases.len() >= 4);
    let mut mismatches = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap_or("?");
        let alpha = case["alpha"].as_f64().expect("alpha");
        let result = cuped(&arm(&case["control"]), &arm(&case["treatment"]), alpha)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let relative = result
            .relative
            .unwrap_or_else(|| panic!("{name}: no relative effect"));
        let actual = serde_json::json!({
            "theta": result.theta,
            "absolute": {"estimate": result.absolute.estimate, "ci": result.absolute.ci, "p_value": result.absolute.p_value},
            "relative": {"estimate": relative.estimate, "ci": relative.ci, "p_value": relative.p_value},
        });
        compare(name, &case["expected"], &actual, &mut mismatches);
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn holm_and_bh_match_statsmodels_multipletests() {
    let document = fixture("multiple_cases.json");
    let mut mismatches = Vec::new();
    for (index, case) in document["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .enumerate()
    {
        let p: Vec<f64> = serde_json::from_value(case["p_values"].clone()).expect("p-values");
        let actual = serde_json::json!({"holm": holm(&p), "bh": benjamini_hochberg(&p)});
        let expected = serde_json::json!({"holm": case["holm"], "bh": case["bh"]});
        compare(
            &format!("case {index}"),
            &expected,
            &actual,
            &mut mismatches,
        );
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
