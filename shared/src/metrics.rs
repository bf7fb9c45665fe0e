//! Prometheus metrics of the runtime and the shared backends. Names are static,
//! counters end in `_total`, durations are `_seconds` histograms, and labels are
//! bounded (stage names, outcome kinds, cache names): never ids.
//!
//! Every known label value is created at 0 before the first message (see
//! `preset_stage`, `preset_cache`): a counter that first appears at 20 is one
//! sample to `increase()`, so an alert on a first burst would never fire.

use std::sync::OnceLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

use crate::dead_letter::DeadLetterKind;

pub struct Metrics {
    pub registry: Registry,
    pub received: IntCounterVec,
    pub succeeded: IntCounterVec,
    pub retried: IntCounterVec,
    pub deferred: IntCounterVec,
    pub paused: IntCounterVec,
    pub dead_lettered: IntCounterVec,
    pub handle_seconds: HistogramVec,
    pub cache_requests: IntCounterVec,
    pub progress_write_errors: IntCounter,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    // Registration only fails for duplicate names, which the OnceLock below rules out.
    let _ = registry.register(Box::new(c.clone()));
    c
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new_custom(Some("cpo".into()), None).unwrap_or_default();
        let handle_seconds = HistogramVec::new(
            HistogramOpts::new(
                "stage_handle_seconds",
                "Time a stage spent handling one message",
            )
            .buckets(vec![
                0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0,
            ]),
            &["stage"],
        )
        .unwrap_or_else(|e| panic!("metric stage_handle_seconds: {e}"));
        let _ = registry.register(Box::new(handle_seconds.clone()));
        Self {
            received: counter(
                &registry,
                "stage_messages_received_total",
                "Messages a stage received",
                &["stage"],
            ),
            succeeded: counter(
                &registry,
                "stage_messages_succeeded_total",
                "Messages a stage handled and acked",
                &["stage"],
            ),
            retried: counter(
                &registry,
                "stage_messages_retried_total",
                "Messages republished for a retry",
                &["stage"],
            ),
            deferred: counter(
                &registry,
                "stage_messages_deferred_total",
                "Messages put back to wait for a join",
                &["stage"],
            ),
            paused: counter(
                &registry,
                "stage_messages_paused_total",
                "Messages put back because a dependency (Redis, a backend) was unavailable",
                &["stage"],
            ),
            dead_lettered: counter(
                &registry,
                "stage_messages_dead_lettered_total",
                "Messages sent to the dead-letter queue, by kind (blocked, permanent, undecodable, exhausted, oversized, timeout)",
                &["stage", "kind"],
            ),
            cache_requests: counter(
                &registry,
                "cache_requests_total",
                "Cache lookups by cache and result (hit, miss, error)",
                &["cache", "result"],
            ),
            progress_write_errors: {
                let c = IntCounter::new(
                    "progress_write_errors_total",
                    "Campaign progress updates lost because the store was unavailable",
                )
                .unwrap_or_else(|e| panic!("metric progress_write_errors_total: {e}"));
                let _ = registry.register(Box::new(c.clone()));
                c
            },
            handle_seconds,
            registry,
        }
    }

    /// Create every series of `stage` at 0: the runtime's counters, its handle
    /// time histogram, and one dead-letter counter per kind.
    pub fn preset_stage(&self, stage: &str) {
        for counter in [
            &self.received,
            &self.succeeded,
            &self.retried,
            &self.deferred,
            &self.paused,
        ] {
            counter.with_label_values(&[stage]);
        }
        self.handle_seconds.with_label_values(&[stage]);
        for kind in DeadLetterKind::ALL {
            self.dead_lettered
                .with_label_values(&[stage, kind.as_str()]);
        }
    }

    /// Create the `cache_requests_total` series of `cache` at 0, one per result it counts.
    pub fn preset_cache(&self, cache: &str, results: &[&str]) {
        for result in results {
            self.cache_requests.with_label_values(&[cache, result]);
        }
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if encoder.encode(&self.registry.gather(), &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preset_stage_exposes_every_dead_letter_kind_and_counter_at_zero() {
        let m = metrics();
        m.preset_stage("preset-test");
        m.preset_cache("preset-cache", &["hit", "error"]);
        let text = m.render();
        for kind in DeadLetterKind::ALL {
            let series = format!(
                "cpo_stage_messages_dead_lettered_total{{kind=\"{}\",stage=\"preset-test\"}} 0\n",
                kind.as_str()
            );
            assert!(text.contains(&series), "{series} missing:\n{text}");
        }
        for name in ["received", "succeeded", "retried", "deferred", "paused"] {
            let series = format!("cpo_stage_messages_{name}_total{{stage=\"preset-test\"}} 0\n");
            assert!(text.contains(&series), "{series} missing:\n{text}");
        }
        assert!(text.contains("cpo_stage_handle_seconds_count{stage=\"preset-test\"} 0\n"));
        assert!(
            text.contains("cpo_cache_requests_total{cache=\"preset-cache\",result=\"error\"} 0\n")
        );
    }
}
