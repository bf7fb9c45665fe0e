//! Metrics of the delivery stage, registered in the shared registry. Labels
//! are the outcome and the sink (five names); never an id or an address.

use std::sync::OnceLock;

use cpo_shared::metrics::metrics;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};

pub struct DeliveryMetrics {
    /// Messages by outcome: `sent`, `duplicate` (already sent, skipped), `rejected` (dead-lettered).
    pub messages: IntCounterVec,
    /// Answers of the sink per email: `sent`, `retry`, `failed`; and, decided
    /// before the sink was asked, `suppressed` and `unconfirmed_skipped`.
    pub sends: IntCounterVec,
    /// Time of one `MailSink::send` call.
    pub send_seconds: HistogramVec,
    /// Times a send waited for the shared rate limit (`reason`: `throttled`, `quota`).
    pub limiter_waits: IntCounterVec,
    /// Claims found unconfirmed (their worker stopped), by the policy applied.
    pub unconfirmed: IntCounterVec,
    /// Until when (Unix seconds) the sink's daily quota is spent and its
    /// campaigns paused; in the past (or 0) while sending.
    pub paused_until: IntGaugeVec,
}

/// Every `outcome` of `delivery_messages_total`.
pub const OUTCOMES: [&str; 3] = ["sent", "duplicate", "rejected"];
/// Every `outcome` of `delivery_sends_total`.
pub const SEND_OUTCOMES: [&str; 5] = [
    "sent",
    "retry",
    "failed",
    "suppressed",
    "unconfirmed_skipped",
];

fn register<T: prometheus::core::Collector + Clone + 'static>(metric: T) -> T {
    // Registration only fails on a duplicate name, which the OnceLock rules out.
    let _ = metrics().registry.register(Box::new(metric.clone()));
    metric
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        IntCounterVec::new(Opts::new(name, help), labels)
            .unwrap_or_else(|e| panic!("metric {name}: {e}")),
    )
}

pub fn delivery_metrics() -> &'static DeliveryMetrics {
    static METRICS: OnceLock<DeliveryMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let messages = counter(
            "delivery_messages_total",
            "Messages the delivery stage handled, by outcome",
            &["outcome"],
        );
        let sends = counter(
            "delivery_sends_total",
            "Emails per sink and outcome (sent, retry, failed, suppressed, unconfirmed_skipped)",
            &["sink", "outcome"],
        );
        let send_seconds = register(
            HistogramVec::new(
                HistogramOpts::new(
                    "delivery_send_seconds",
                    "Time of one call to the mail sink (one email or one provider batch)",
                )
                .buckets(vec![
                    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ]),
                &["sink"],
            )
            .unwrap_or_else(|e| panic!("metric delivery_send_seconds: {e}")),
        );
        let limiter_waits = counter(
            "delivery_rate_limit_waits_total",
            "Times a send waited for the shared rate limit, by reason",
            &["sink", "reason"],
        );
        let unconfirmed = counter(
            "delivery_unconfirmed_total",
            "Claims found unconfirmed after their worker stopped, by policy",
            &["policy"],
        );
        let paused_until = register(
            IntGaugeVec::new(
                Opts::new(
                    "delivery_paused_until_seconds",
                    "Until when (Unix seconds) the sink's daily quota is spent and sending paused",
                ),
                &["sink"],
            )
            .unwrap_or_else(|e| panic!("metric delivery_paused_until_seconds: {e}")),
        );
        // At 0 from the start, so a first burst is a rise (see cpo_shared::metrics).
        for outcome in OUTCOMES {
            messages.with_label_values(&[outcome]);
        }
        for policy in ["resend", "skip"] {
            unconfirmed.with_label_values(&[policy]);
        }
        DeliveryMetrics {
            messages,
            sends,
            send_seconds,
            limiter_waits,
            unconfirmed,
            paused_until,
        }
    })
}

/// Series of `sink` at 0, so dashboards and alerts see the sink before its first send.
pub fn preset_sink(sink: &str) {
    let m = delivery_metrics();
    for outcome in SEND_OUTCOMES {
        m.sends.with_label_values(&[sink, outcome]);
    }
    for reason in ["throttled", "quota"] {
        m.limiter_waits.with_label_values(&[sink, reason]);
    }
    m.send_seconds.with_label_values(&[sink]);
    m.paused_until.with_label_values(&[sink]);
}
