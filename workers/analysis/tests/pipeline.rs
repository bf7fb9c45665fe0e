//! End to end: synthetic run -> simulate or ingest -> analyze -> reports, and the
//! honesty rules on the way (SIMULATED labels, no mixing of simulated and
//! observed events, SRM warnings, clear errors on degenerate input).

use std::path::Path;

use cpo_analysis::cli::{AnalyzeArgs, CorrectionArg, IngestArgs, run_analyze, run_ingest};
use cpo_analysis::events::ingest::ingest;
use cpo_analysis::events::{Event, EventType, InputFormat};
use cpo_analysis::metric::Metric;
use cpo_analysis::run::outbox::Outbox;
use cpo_analysis::synth::{SyntheticRun, write_run};
use cpo_analysis::{AnalysisError, RunOptions, analyze_run, simulate_and_report};
use serde_json::{Value, json};

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json")
}

fn analyze_args() -> AnalyzeArgs {
    AnalyzeArgs {
        summary: None,
        run: None,
        campaign: None,
        events: None,
        out: None,
        alpha: None,
        power: 0.8,
        target_lift: None,
        correction: CorrectionArg::Holm,
        sequential_tuning: 5000.0,
        primary_metric: Metric::Opened,
        seed: 0,
    }
}

#[test]
fn simulate_and_report_labels_everything_simulated() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_run(
        dir.path(),
        &SyntheticRun {
            customers: 4000,
            ..SyntheticRun::default()
        },
    )
    .expect("run");
    let paths = simulate_and_report(dir.path(), 11).expect("simulate and report");

    let events = std::fs::read_to_string(dir.path().join("events.jsonl")).expect("events");
    assert!(events.lines().count() > 4000);
    assert!(events.lines().all(|l| l.contains("\"simulated\":true")));

    let analysis = read_json(&paths.json);
    assert_eq!(analysis["simulated"], true);
    assert!(
        analysis["verdict"][0]
            .as_str()
            .is_some_and(|v| v.starts_with("SIMULATED"))
    );
    assert!(
        analysis["simulation"]["true_relative_lift"]["opened"]["friendly"]
            .as_f64()
            .is_some_and(|l| (l - 0.1).abs() < 1e-9)
    );
    assert_eq!(analysis["metrics"].as_array().map(Vec::len), Some(3));
    assert_eq!(analysis["cuped"]["applied"], true);
    // The historical open rate drives simulated opens, so CUPED must remove variance.
    let reduction = analysis["metrics"][0]["comparisons"][0]["cuped"]["variance_reduction"]
        .as_f64()
        .expect("cuped");
    assert!(reduction > 0.05, "variance reduction {reduction}");
    assert!(
        analysis["timeline"]["points"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
    );
    assert!(
        analysis["segments"]
            .as_array()
            .is_some_and(|s| s.len() == 9)
    );
    assert!(analysis["srm_p_value"].as_f64().is_some_and(|p| p > 0.001));

    let markdown = std::fs::read_to_string(&paths.markdown).expect("markdown");
    assert!(markdown.starts_with("# ⚠ SIMULATED ⚠"));
    let html = std::fs::read_to_string(&paths.html).expect("html");
    assert!(html.contains("class=\"simulated-banner\""));
    assert!(html.contains("<title>SIMULATED"));
    assert_eq!(
        html.matches("<svg").count(),
        3 + 3 + 3,
        "rates per metric, lift per segment per metric, one timeline per treatment"
    );
}

#[test]
fn a_large_true_effect_is_found_and_a_null_one_is_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_run(
        dir.path(),
        &SyntheticRun {
            customers: 20_000,
            ..SyntheticRun::default()
        },
    )
    .expect("run");
    let mut config = cpo_analysis::SimulationConfig::default();
    config.arm_effects.clear();
    config.arm_effects.insert(
        "friendly".into(),
        cpo_analysis::simulate::Effects {
            open: 0.3,
            ..Default::default()
        },
    );
    cpo_analysis::simulate_run(dir.path(), &config, Some(5), None).expect("simulate");
    let analysis = analyze_run(dir.path(), &RunOptions::default()).expect("analysis");
    let opens = &analysis.metrics[0];
    for comparison in &opens.comparisons {
        assert_eq!(
            comparison.significant,
            comparison.arm == "friendly",
            "{}: {:?}",
            comparison.arm,
            comparison.p_value_holm
        );
    }
    assert!(
        analysis
            .verdict
            .iter()
            .any(|v| v.starts_with("friendly beats control on opens by")),
        "{:?}",
        analysis.verdict
    );
}

fn webhook_files(dir: &Path, outbox: &Outbox) -> Vec<std::path::PathBuf> {
    let ids: Vec<&str> = (0..5).map(|i| outbox.message_id(i)).collect();
    let sendgrid = json!([
        {"email": "a@example.com", "timestamp": 1_736_154_000, "event": "delivered", "sg_event_id": "sg-1", "message_id": ids[0]},
        {"email": "a@example.com", "timestamp": 1_736_157_600, "event": "open", "sg_event_id": "sg-2", "message_id": ids[0]},
        {"email": "a@example.com", "timestamp": 1_736_157_600, "event": "open", "sg_event_id": "sg-2", "message_id": ids[0]},
        {"email": "b@example.com", "timestamp": 1_736_157_700, "event": "processed", "sg_event_id": "sg-3", "message_id": ids[1]},
        {"email": "c@example.com", "timestamp": 1_736_157_800, "event": "click", "sg_event_id": "sg-4", "message_id": "not-ours"}
    ]);
    let ses_message = json!({"eventType": "Open", "mail": {"messageId": "ses-x", "tags": {"message_id": [ids[2]]}}, "open": {"timestamp": "2025-01-06T10:00:00.000Z"}});
    let ses_line = json!({"Type": "Notification", "MessageId": "sns-1", "Message": ses_message.to_string(), "Timestamp": "2025-01-06T10:00:01.000Z"}).to_string();
    let mailgun = json!({"signature": {}, "event-data": {"id": "mg-1", "event": "clicked", "timestamp": 1_736_160_000.5, "user-variables": {"message_id": ids[3]}}}).to_string();
    let own = json!({"event_id": "own-1", "message_id": ids[4], "type": "conversion", "timestamp": "2025-01-07T00:00:00Z"}).to_string();
    let files = [
        (
            "sendgrid.json",
            serde_json::to_string_pretty(&sendgrid).expect("json"),
        ),
        (
            "ses.jsonl",
            format!(
                "{ses_line}\n{ses_line}\n{{\"Type\": \"Notification\", \"Message\": \"{{broken\"}}\n"
            ),
        ),
        (
            "mixed.jsonl",
            format!("{mailgun}\nthis is not json\n{own}\n{{\"hello\": 1}}\n"),
        ),
    ];
    files
        .into_iter()
        .map(|(name, text)| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write");
            path
        })
        .collect()
}

#[test]
fn ingest_normalizes_every_format_dedupes_and_reports_problems() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_run(
        dir.path(),
        &SyntheticRun {
            customers: 50,
            ..SyntheticRun::default()
        },
    )
    .expect("run");
    let outbox = Outbox::load(&dir.path().join("outbox.jsonl")).expect("outbox");
    let inputs = webhook_files(dir.path(), &outbox);
    let out = dir.path().join("events.jsonl");
    let report = ingest(&inputs, InputFormat::Auto, &outbox, &out).expect("ingest");
    assert_eq!(report.written, 5, "{report:?}");
    assert_eq!(report.duplicates, 2, "sendgrid retry and SNS redelivery");
    assert_eq!(report.ignored.values().sum::<usize>(), 1, "processed");
    assert_eq!(report.unmatched_count, 1);
    assert_eq!(report.malformed_count, 3, "{:?}", report.malformed);
    let locations: Vec<String> = report
        .malformed
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                Path::new(&p.file)
                    .file_name()
                    .and_then(|f| f.to_str())
                    .unwrap_or(""),
                p.location
            )
        })
        .collect();
    assert_eq!(
        locations,
        [
            "ses.jsonl line 3",
            "mixed.jsonl line 2",
            "mixed.jsonl line 4"
        ]
    );

    let events: Vec<Event> = std::fs::read_to_string(&out)
        .expect("out")
        .lines()
        .map(|l| serde_json::from_str(l).expect("own format"))
        .collect();
    assert_eq!(events.len(), 5);
    assert!(events.iter().all(|e| !e.simulated));
    let types: Vec<EventType> = events.iter().map(|e| e.event_type).collect();
    assert_eq!(
        types,
        [
            EventType::Delivered,
            EventType::Open,
            EventType::Open,
            EventType::Click,
            EventType::Conversion
        ]
    );

    // Re-ingesting the same files adds nothing.
    let again = ingest(&inputs, InputFormat::Auto, &outbox, &out).expect("ingest again");
    assert_eq!(again.written, 0);
    assert_eq!(again.kept_from_existing, 5);

    // Observed events give an unlabelled report.
    let analysis = analyze_run(dir.path(), &RunOptions::default()).expect("analysis");
    assert!(!analysis.simulated);
    assert_eq!(analysis.events.as_ref().map(|e| e.used), Some(5));
    assert!(!analysis.verdict.iter().any(|v| v.contains("SIMULATED")));
}

#[test]
fn simulated_and_observed_events_never_mix() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_run(
        dir.path(),
        &SyntheticRun {
            customers: 50,
            ..SyntheticRun::default()
        },
    )
    .expect("run");
    let outbox = Outbox::load(&dir.path().join("outbox.jsonl")).expect("outbox");
    let inputs = webhook_files(dir.path(), &outbox);
    // Observed events first: the simulator must refuse to overwrite them.
    run_ingest(IngestArgs {
        inputs: inputs.clone(),
        run: dir.path().to_path_buf(),
        format: InputFormat::Auto,
        out: None,
        report: None,
    })
    .expect("ingest");
    let refused = simulate_and_report(dir.path(), 1).expect_err("must refuse");
    assert!(matches!(refused, AnalysisError::Refused(_)), "{refused}");
    // Simulated events first: ingest must refuse to append observed ones.
    let sim = tempfile::tempdir().expect("tempdir");
    write_run(
        sim.path(),
        &SyntheticRun {
            customers: 50,
            ..SyntheticRun::default()
        },
    )
    .expect("run");
    simulate_and_report(sim.path(), 1).expect("simulate");
    let err = ingest(
        &inputs,
        InputFormat::Auto,
        &outbox,
        &sim.path().join("events.jsonl"),
    )
    .expect_err("must refuse");
    assert!(err.to_string().contains("simulated"), "{err}");
}

#[test]
fn summary_mode_writes_the_documented_analysis() {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = dir.path().join("summary.json");
    std::fs::write(&summary, r#"{"alpha": 0.05, "target_relative_lift": 0.1, "arms": [
        {"name": "control", "users": 62, "successes": 19}, {"name": "friendly", "users": 62, "successes": 24}]}"#).expect("write");
    let out = dir.path().join("out");
    run_analyze(AnalyzeArgs {
        summary: Some(summary),
        out: Some(out.clone()),
        ..analyze_args()
    })
    .expect("analyze");
    let analysis = read_json(&out.join("analysis.json"));
    assert_eq!(analysis["required_users_per_arm"], 3647);
    assert_eq!(analysis["simulated"], false);
    let comparison = &analysis["comparisons"][0];
    assert_eq!(comparison["significant"], false);
    assert!(
        (comparison["abs_p_value"].as_f64().expect("p") - 0.345_467_193_617_111_3).abs() < 1e-9
    );
    let markdown = std::fs::read_to_string(out.join("report.md")).expect("md");
    assert!(markdown.contains("No arm differs from control on success rate; with 62 customers per arm the test could only detect lifts above"));
    assert!(!markdown.contains("SIMULATED"));
    assert!(out.join("report.html").is_file());
}

#[test]
fn degenerate_input_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = dir.path().join("summary.json");
    std::fs::write(&summary, r#"{"arms": [{"name": "control", "users": 0, "successes": 0}, {"name": "friendly", "users": 10, "successes": 2}]}"#).expect("write");
    let err = run_analyze(AnalyzeArgs {
        summary: Some(summary.clone()),
        out: Some(dir.path().to_path_buf()),
        ..analyze_args()
    })
    .expect_err("zero users");
    assert!(
        format!("{err:#}").contains("arm `control` has no users"),
        "{err:#}"
    );
    std::fs::write(&summary, r#"{"arms": [{"name": "control", "users": 10, "successes": 12}, {"name": "b", "users": 10, "successes": 2}]}"#).expect("write");
    let err = run_analyze(AnalyzeArgs {
        summary: Some(summary),
        out: Some(dir.path().to_path_buf()),
        ..analyze_args()
    })
    .expect_err("impossible");
    assert!(
        format!("{err:#}").contains("12 successes but only 10 users"),
        "{err:#}"
    );
}

#[test]
fn run_without_customer_file_skips_cuped_and_says_so_and_flags_srm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = SyntheticRun {
        customers: 3000,
        with_customer_file: false,
        // Configured 50/50 but assigned 70/30: a broken split.
        arms: vec![("control".into(), 0.7), ("friendly".into(), 0.3)],
        ..SyntheticRun::default()
    };
    write_run(dir.path(), &spec).expect("run");
    let summary = dir.path().join("summary.json");
    let mut doc = read_json(&summary);
    doc["arm_weights"] = json!({"control": 0.5, "friendly": 0.5});
    std::fs::write(&summary, doc.to_string()).expect("write");
    simulate_and_report(dir.path(), 3).expect("report");
    let analysis = read_json(&dir.path().join("analysis.json"));
    assert_eq!(analysis["cuped"]["applied"], false);
    assert!(
        analysis["cuped"]["note"]
            .as_str()
            .is_some_and(|n| n.contains("CUPED skipped"))
    );
    assert_eq!(analysis["srm"]["flagged"], true);
    let html = std::fs::read_to_string(dir.path().join("report.html")).expect("html");
    assert!(html.contains("Sample ratio mismatch"));
    assert!(html.contains("CUPED skipped"));
}
