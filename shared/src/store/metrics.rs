//! Metrics of store use, shared by every caller of the store: failed calls
//! by operation (a static name per call site, never an id).

use std::sync::OnceLock;

use prometheus::{IntCounterVec, Opts};

use crate::metrics::metrics;

pub struct StoreMetrics {
    /// `cpo_store_errors_total{op}`: store calls that failed, by operation.
    pub errors: IntCounterVec,
}

pub fn store_metrics() -> &'static StoreMetrics {
    static METRICS: OnceLock<StoreMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let errors = IntCounterVec::new(
            Opts::new(
                "store_errors_total",
                "Store calls that failed, by operation",
            ),
            &["op"],
        )
        .unwrap_or_else(|e| panic!("metric store_errors_total: {e}"));
        // Registration only fails on a duplicate name, which the OnceLock rules out.
        let _ = metrics().registry.register(Box::new(errors.clone()));
        StoreMetrics { errors }
    })
}

/// Create the series of `ops` at 0, so a first failure is a rise.
pub fn preset_store_ops(ops: &[&str]) {
    for op in ops {
        store_metrics().errors.with_label_values(&[op]);
    }
}
