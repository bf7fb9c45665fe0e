//! Synthetic campaign runs (outbox, summary, customer file) for tests, the
//! benchmark and demos, in the formats the other stages write. Nothing here is
//! used by the analysis itself.

use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{AnalysisError, Result};

/// Shape of a synthetic run.
#[derive(Debug, Clone)]
pub struct SyntheticRun {
    pub customers: usize,
    /// Arm names and weights; the first must be `control`.
    pub arms: Vec<(String, f64)>,
    pub segments: Vec<String>,
    pub seed: u64,
    /// Characters of message body per outbox row (real bodies are a few hundred).
    pub body_len: usize,
    pub with_customer_file: bool,
}

impl Default for SyntheticRun {
    fn default() -> Self {
        SyntheticRun {
            customers: 2000,
            arms: ["control", "urgent", "informational", "friendly"]
                .iter()
                .map(|a| (a.to_string(), 0.25))
                .collect(),
            segments: ["High-Value Recent", "At-Risk Lapsed", "New Customers"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            seed: 1,
            body_len: 400,
            with_customer_file: true,
        }
    }
}

fn pick(rng: &mut ChaCha8Rng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut u = rng.r#gen::<f64>() * total;
    for (index, w) in weights.iter().enumerate() {
        if u < *w {
            return index;
        }
        u -= w;
    }
    weights.len() - 1
}

fn create(path: &Path) -> Result<BufWriter<std::fs::File>> {
    std::fs::File::create(path)
        .map(BufWriter::new)
        .map_err(|e| AnalysisError::io(path, e))
}

/// Writes `outbox.jsonl`, `summary.json` and (optionally) `customers.csv` into `dir`.
pub fn write_run(dir: &Path, spec: &SyntheticRun) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| AnalysisError::io(dir, e))?;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let weights: Vec<f64> = spec.arms.iter().map(|(_, w)| *w).collect();
    let body: String = "Thanks for being with us. Here is what is new this week, picked for you. "
        .chars()
        .cycle()
        .take(spec.body_len)
        .collect();
    let outbox_path = dir.join("outbox.jsonl");
    let mut outbox = create(&outbox_path)?;
    let customers_path = dir.join("customers.csv");
    let mut customers = spec
        .with_customer_file
        .then(|| create(&customers_path))
        .transpose()?;
    if let Some(file) = customers.as_mut() {
        writeln!(file, "customer_id,first_name,email,age,location,tier,purchase_frequency,avg_order_value,last_engagement_days,historical_open_rate,historical_click_rate,consent")
            .map_err(|e| AnalysisError::io(&customers_path, e))?;
    }
    let mut line = String::with_capacity(spec.body_len + 400);
    for index in 0..spec.customers {
        let arm = &spec.arms[pick(&mut rng, &weights)].0;
        let segment = &spec.segments[index % spec.segments.len().max(1)];
        line.clear();
        let _ = write!(
            line,
            "{{\"message_id\":\"msg-{index:08}\",\"campaign_id\":\"spring-sale\",\"customer_id\":\"CUST{index:08}\",\"segment\":{},\"arm\":\"{arm}\",\"variant_id\":\"var-{arm}\",\"subject\":\"A spring offer, picked for you\",\"body\":\"{body}\",\"citations\":[\"doc-12\"],\"to\":\"customer{index}@example.com\",\"fallback\":null}}",
            serde_json::Value::String(segment.clone())
        );
        writeln!(outbox, "{line}").map_err(|e| AnalysisError::io(&outbox_path, e))?;
        if let Some(file) = customers.as_mut() {
            let open: f64 = rng.gen_range(0.02..0.7);
            let click = open * rng.gen_range(0.05..0.35);
            writeln!(file, "CUST{index:08},Alex,customer{index}@example.com,41,Austin,gold,4,82.5,12,{open:.4},{click:.4},true")
                .map_err(|e| AnalysisError::io(&customers_path, e))?;
        }
    }
    outbox
        .flush()
        .map_err(|e| AnalysisError::io(&outbox_path, e))?;
    if let Some(mut file) = customers {
        file.flush()
            .map_err(|e| AnalysisError::io(&customers_path, e))?;
    }
    let arm_weights: serde_json::Map<String, serde_json::Value> = spec
        .arms
        .iter()
        .map(|(a, w)| (a.clone(), serde_json::json!(w)))
        .collect();
    let mut summary = serde_json::json!({
        "campaign_id": "spring-sale",
        "customers_total": spec.customers,
        "customers_assigned": spec.customers,
        "arm_weights": arm_weights,
    });
    if spec.with_customer_file {
        summary["customers_file"] = serde_json::json!("customers.csv");
    }
    let summary_path = dir.join("summary.json");
    std::fs::write(&summary_path, summary.to_string())
        .map_err(|e| AnalysisError::io(&summary_path, e))
}
