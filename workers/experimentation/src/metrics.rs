//! Metrics of the experimentation stage, registered in the shared registry.
//! Labels are bounded: the outcome only, never an arm name (arms come from
//! campaign requests) or an id.

use std::sync::OnceLock;

use cpo_shared::metrics::metrics;
use prometheus::{IntCounterVec, Opts};

pub struct ExperimentMetrics {
    /// Customers by outcome: `assigned`, `fallback` (assigned, control message sent), `excluded`.
    pub customers: IntCounterVec,
    /// Merge values replaced by their fallback, by field (`first_name`, `location`, `tier`).
    pub replaced_values: IntCounterVec,
}

/// Every `outcome` the stage counts.
pub const OUTCOMES: [&str; 3] = ["assigned", "fallback", "excluded"];

pub fn experiment_metrics() -> &'static ExperimentMetrics {
    static METRICS: OnceLock<ExperimentMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let customers = IntCounterVec::new(
            Opts::new(
                "experimentation_customers_total",
                "Customers the experimentation stage assigned, by outcome",
            ),
            &["outcome"],
        )
        .unwrap_or_else(|e| panic!("metric experimentation_customers_total: {e}"));
        // Registration only fails on a duplicate name, which the OnceLock rules out.
        let _ = metrics().registry.register(Box::new(customers.clone()));
        // At 0 from the start, so a first burst is a rise (see cpo_shared::metrics).
        for outcome in OUTCOMES {
            customers.with_label_values(&[outcome]);
        }
        let replaced_values = IntCounterVec::new(
            Opts::new(
                "experimentation_merge_values_replaced_total",
                "Merge values that failed the screen and were replaced by their fallback, by field",
            ),
            &["field"],
        )
        .unwrap_or_else(|e| panic!("metric experimentation_merge_values_replaced_total: {e}"));
        let _ = metrics()
            .registry
            .register(Box::new(replaced_values.clone()));
        for field in crate::merge::FIELDS {
            replaced_values.with_label_values(&[field]);
        }
        ExperimentMetrics {
            customers,
            replaced_values,
        }
    })
}
