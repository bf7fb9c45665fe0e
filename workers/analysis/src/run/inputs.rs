//! The run's other inputs: `summary.json` (arm weights, the customer file) and
//! the customer CSV that supplies CUPED covariates.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use foldhash::HashMap as FastMap;
use serde::Deserialize;

use super::outbox::Outbox;
use crate::error::{AnalysisError, Result};

/// The fields of the run's `summary.json` the analysis uses; others are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RunSummary {
    #[serde(default)]
    pub campaign_id: Option<String>,
    #[serde(default)]
    pub customers_total: Option<u64>,
    #[serde(default)]
    pub customers_assigned: Option<u64>,
    /// Arm name -> configured weight; absent means equal weights.
    #[serde(default)]
    pub arm_weights: Option<BTreeMap<String, f64>>,
    #[serde(default)]
    pub customers_file: Option<String>,
}

impl RunSummary {
    /// Reads `summary.json`; `Ok(None)` when the run has none.
    pub fn load(run_dir: &Path) -> Result<Option<RunSummary>> {
        let path = run_dir.join("summary.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(AnalysisError::io(&path, e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| AnalysisError::parse(&path, format!("malformed summary: {e}")))
    }

    /// The customer CSV: as written if it exists, else relative to the run dir.
    pub fn customers_path(&self, run_dir: &Path) -> Option<PathBuf> {
        let name = self.customers_file.as_deref()?;
        let direct = PathBuf::from(name);
        if direct.is_file() {
            return Some(direct);
        }
        let in_run = run_dir.join(name);
        in_run.is_file().then_some(in_run)
    }
}

/// Pre-experiment covariates per recipient, aligned with [`Outbox::recipients`].
#[derive(Debug, Clone)]
pub struct Covariates {
    pub historical_open_rate: Vec<f64>,
    pub historical_click_rate: Vec<f64>,
    /// Recipients without a usable row, given the mean instead. Any constant keeps
    /// CUPED unbiased (the covariate only has to be fixed before treatment).
    pub imputed: usize,
}

fn column(headers: &csv::StringRecord, name: &str, path: &Path) -> Result<usize> {
    headers
        .iter()
        .position(|h| h.trim() == name)
        .ok_or_else(|| AnalysisError::parse(path, format!("customer file has no `{name}` column")))
}

fn parse_rate(record: &csv::ByteRecord, index: usize) -> Option<f64> {
    std::str::from_utf8(record.get(index)?)
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

impl Covariates {
    pub fn load(path: &Path, outbox: &Outbox) -> Result<Covariates> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_path(path)
            .map_err(|e| AnalysisError::parse(path, e.to_string()))?;
        let headers = reader
            .headers()
            .map_err(|e| AnalysisError::parse(path, e.to_string()))?
            .clone();
        let id_column = column(&headers, "customer_id", path)?;
        let open_column = column(&headers, "historical_open_rate", path)?;
        let click_column = column(&headers, "historical_click_rate", path)?;

        let mut locate = CustomerLocator::new(outbox);
        let mut open: Vec<Option<f64>> = vec![None; outbox.len()];
        let mut click: Vec<Option<f64>> = vec![None; outbox.len()];
        // One reused byte record: a million rows without a million allocations.
        let mut record = csv::ByteRecord::new();
        loop {
            match reader.read_byte_record(&mut record) {
                Ok(true) => {}
                Ok(false) => break,
                // A broken row only costs that customer their covariate (imputed below).
                Err(_) => continue,
            }
            let Some(index) = record
                .get(id_column)
                .and_then(|id| locate.find(id.trim_ascii()))
            else {
                continue;
            };
            open[index] = parse_rate(&record, open_column);
            click[index] = parse_rate(&record, click_column);
        }
        let imputed = open
            .iter()
            .zip(&click)
            .filter(|(o, c)| o.is_none() || c.is_none())
            .count();
        Ok(Covariates {
            historical_open_rate: impute(open),
            historical_click_rate: impute(click),
            imputed,
        })
    }
}

/// Finds customers of the outbox by id. The outbox is usually written in the
/// customer file's order, so the next recipient is tried first; the hash index
/// is only built on the first row that breaks the order.
struct CustomerLocator<'a> {
    outbox: &'a Outbox,
    next: usize,
    index: Option<FastMap<&'a [u8], usize>>,
}

impl<'a> CustomerLocator<'a> {
    fn new(outbox: &'a Outbox) -> Self {
        CustomerLocator {
            outbox,
            next: 0,
            index: None,
        }
    }

    fn find(&mut self, id: &[u8]) -> Option<usize> {
        let ids = &self.outbox.customer_ids;
        if self.next < ids.len() && ids.get(self.next).as_bytes() == id {
            self.next += 1;
            return Some(self.next - 1);
        }
        let index = self.index.get_or_insert_with(|| {
            let mut map = FastMap::default();
            map.reserve(ids.len());
            for (position, customer) in ids.iter().enumerate() {
                // The first row of a customer wins, as in the outbox itself.
                map.entry(customer.as_bytes()).or_insert(position);
            }
            map
        });
        let found = index.get(id).copied();
        if let Some(position) = found {
            self.next = position + 1;
        }
        found
    }
}

fn impute(values: Vec<Option<f64>>) -> Vec<f64> {
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    let mean = if present.is_empty() {
        0.0
    } else {
        present.iter().sum::<f64>() / present.len() as f64
    };
    values.into_iter().map(|v| v.unwrap_or(mean)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covariates_align_with_the_outbox_and_impute_gaps() {
        let outbox = Outbox::parse(
            Path::new("outbox.jsonl"),
            br#"{"message_id": "m1", "customer_id": "C1", "arm": "control"}
{"message_id": "m2", "customer_id": "C2", "arm": "friendly"}
{"message_id": "m3", "customer_id": "C3", "arm": "friendly"}
"#,
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("customers.csv");
        std::fs::write(
            &path,
            "customer_id,first_name,historical_open_rate,historical_click_rate\n\
             C2,Bo,0.4,0.1\nC1,Al,0.2,0.05\nC3,Cy,n/a,0.2\nC9,Zed,0.9,0.9\n",
        )
        .unwrap();
        let covariates = Covariates::load(&path, &outbox).unwrap();
        assert_eq!(
            covariates.historical_open_rate,
            [0.2, 0.4, 0.30000000000000004]
        );
        assert_eq!(covariates.historical_click_rate, [0.05, 0.1, 0.2]);
        assert_eq!(covariates.imputed, 1);
    }
}
