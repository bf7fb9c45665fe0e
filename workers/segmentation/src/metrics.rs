//! Segmentation metrics, registered in the process-wide registry. Labels are
//! bounded: outcomes are the exclusion reasons plus `segmented`, never ids or
//! segment names (those come from a configurable rule set).

use std::sync::OnceLock;

use cpo_shared::metrics::metrics;
use cpo_shared::model::ExclusionReason;
use prometheus::{IntCounter, IntCounterVec, Opts};

pub struct SegmentationMetrics {
    /// Audience rows by outcome.
    pub customers: IntCounterVec,
    pub batches: IntCounter,
}

/// Every exclusion reason, each an `outcome` label.
const EXCLUSION_REASONS: [ExclusionReason; 5] = [
    ExclusionReason::Invalid,
    ExclusionReason::NoConsent,
    ExclusionReason::Suppressed,
    ExclusionReason::Duplicate,
    ExclusionReason::NoApprovedMessage,
];

pub fn segmentation_metrics() -> &'static SegmentationMetrics {
    static METRICS: OnceLock<SegmentationMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let customers = IntCounterVec::new(
            Opts::new(
                "segmentation_customers_total",
                "Audience rows read by segmentation, by outcome (segmented or the exclusion reason)",
            ),
            &["outcome"],
        )
        .unwrap_or_else(|e| panic!("metric segmentation_customers_total: {e}"));
        let batches = IntCounter::new(
            "segmentation_batches_total",
            "Customer batches published to the audience queue",
        )
        .unwrap_or_else(|e| panic!("metric segmentation_batches_total: {e}"));
        // At 0 from the start, so a first burst is a rise (see cpo_shared::metrics).
        customers.with_label_values(&["segmented"]);
        for reason in EXCLUSION_REASONS {
            customers.with_label_values(&[outcome_label(reason)]);
        }
        let registry = &metrics().registry;
        // Registration only fails for a duplicate name, which the OnceLock rules out.
        let _ = registry.register(Box::new(customers.clone()));
        let _ = registry.register(Box::new(batches.clone()));
        SegmentationMetrics { customers, batches }
    })
}

pub fn outcome_label(reason: ExclusionReason) -> &'static str {
    match reason {
        ExclusionReason::Invalid => "invalid",
        ExclusionReason::NoConsent => "no_consent",
        ExclusionReason::Suppressed => "suppressed",
        ExclusionReason::Duplicate => "duplicate",
        ExclusionReason::DuplicateEmail => "duplicate_email",
        ExclusionReason::NoApprovedMessage => "no_approved_message",
        // Set at assignment from the store, never by segmentation.
        ExclusionReason::Unsubscribed => "unsubscribed",
        ExclusionReason::Bounced => "bounced",
        ExclusionReason::Complained => "complained",
        ExclusionReason::FrequencyCap => "frequency_cap",
    }
}
