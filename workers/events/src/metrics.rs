//! Metrics of the events stage, registered in the shared registry (prefix
//! `cpo_`). Labels are bounded: provider and type are mapped onto known
//! values (`other` for the rest), reasons are the closed set of `reasons`.

use std::sync::OnceLock;

use cpo_shared::metrics::metrics;
use cpo_shared::store::metrics::preset_store_ops;
use cpo_shared::store::reasons;
use prometheus::{IntCounter, IntCounterVec, Opts};

use crate::plan::{EVENT_TYPES, PROVIDERS};

pub struct EventsMetrics {
    /// `cpo_events_stored_total{provider,type}`: events new to the store.
    pub stored: IntCounterVec,
    /// `cpo_events_unmatched_total`: stored events that name no message of ours.
    pub unmatched: IntCounter,
    /// `cpo_suppressions_added_total{reason}`: suppressions new to the store.
    pub suppressions_added: IntCounterVec,
}

/// The store operations the stage counts failures of (`cpo_store_errors_total{op}`).
pub const STORE_OPS: [&str; 4] = [
    "lookup_sends",
    "lookup_assignments",
    "suppress",
    "record_events",
];

pub fn events_metrics() -> &'static EventsMetrics {
    static METRICS: OnceLock<EventsMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let registry = &metrics().registry;
        let stored = IntCounterVec::new(
            Opts::new("events_stored_total", "Provider events new to the store"),
            &["provider", "type"],
        )
        .unwrap_or_else(|e| panic!("metric events_stored_total: {e}"));
        let unmatched = IntCounter::new(
            "events_unmatched_total",
            "Stored provider events that name no message of ours",
        )
        .unwrap_or_else(|e| panic!("metric events_unmatched_total: {e}"));
        let suppressions_added = IntCounterVec::new(
            Opts::new(
                "suppressions_added_total",
                "Suppressions new to the store, by reason",
            ),
            &["reason"],
        )
        .unwrap_or_else(|e| panic!("metric suppressions_added_total: {e}"));
        // Registration only fails on a duplicate name, which the OnceLock rules out.
        let _ = registry.register(Box::new(stored.clone()));
        let _ = registry.register(Box::new(unmatched.clone()));
        let _ = registry.register(Box::new(suppressions_added.clone()));
        // At 0 from the start, so a first burst is a rise (see cpo_shared::metrics).
        for provider in PROVIDERS {
            for event_type in EVENT_TYPES {
                stored.with_label_values(&[provider, event_type]);
            }
        }
        for reason in reasons::ALL {
            suppressions_added.with_label_values(&[reason]);
        }
        preset_store_ops(&STORE_OPS);
        EventsMetrics {
            stored,
            unmatched,
            suppressions_added,
        }
    })
}
