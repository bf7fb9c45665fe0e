//! Metrics of the delivery stage, registered in the shared registry. The only
//! label is the outcome; never an id or an address.

use std::sync::OnceLock;

use cpo_shared::metrics::metrics;
use prometheus::{IntCounterVec, Opts};

pub struct DeliveryMetrics {
    /// Messages by outcome: `sent`, `duplicate` (already sent, skipped), `rejected` (dead-lettered).
    pub messages: IntCounterVec,
}

/// Every `outcome` the stage counts.
pub const OUTCOMES: [&str; 3] = ["sent", "duplicate", "rejected"];

pub fn delivery_metrics() -> &'static DeliveryMetrics {
    static METRICS: OnceLock<DeliveryMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let messages = IntCounterVec::new(
            Opts::new(
                "delivery_messages_total",
                "Messages the delivery stage handled, by outcome",
            ),
            &["outcome"],
        )
        .unwrap_or_else(|e| panic!("metric delivery_messages_total: {e}"));
        // Registration only fails on a duplicate name, which the OnceLock rules out.
        let _ = metrics().registry.register(Box::new(messages.clone()));
        // At 0 from the start, so a first burst is a rise (see cpo_shared::metrics).
        for outcome in OUTCOMES {
            messages.with_label_values(&[outcome]);
        }
        DeliveryMetrics { messages }
    })
}
