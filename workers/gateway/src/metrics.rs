//! The gateway's metrics, registered on the process registry (`cpo_shared::metrics`)
//! so `/metrics` shows them beside the shared ones. Labels are bounded: routes,
//! providers, outcomes and reasons are fixed lists, never ids.

use std::sync::OnceLock;

use cpo_shared::metrics::metrics as shared;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};

pub struct GatewayMetrics {
    /// `route`, `outcome`.
    pub requests: IntCounterVec,
    /// `provider`, `reason`.
    pub rejected: IntCounterVec,
    /// `provider`, `outcome` (published, duplicate, unmatched, ignored).
    pub events: IntCounterVec,
    /// `route`.
    pub seconds: HistogramVec,
}

pub const ROUTES: &[&str] = &[
    "sendgrid",
    "ses",
    "mailgun",
    "cpo",
    "unsubscribe",
    "campaigns",
];
pub const OUTCOMES: &[&str] = &[
    "ok",
    "bad_request",
    "unauthorized",
    "not_found",
    "too_large",
    "unsupported_media_type",
    "unprocessable",
    "unavailable",
];
pub const PROVIDERS: &[&str] = &["sendgrid", "ses", "mailgun", "cpo", "unsubscribe", "api"];
pub const EVENT_OUTCOMES: &[&str] = &["published", "duplicate", "unmatched", "ignored"];
/// Rejections that are not signature problems.
pub const INPUT_REASONS: &[&str] = &[
    "malformed_json",
    "malformed_event",
    "unknown_type",
    "content_type",
    "too_large",
];

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    // Registration fails only for a duplicate name, which the OnceLock rules out.
    let _ = shared().registry.register(Box::new(c.clone()));
    c
}

pub fn metrics() -> &'static GatewayMetrics {
    static METRICS: OnceLock<GatewayMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let seconds = HistogramVec::new(
            HistogramOpts::new(
                "gateway_request_seconds",
                "Time to answer one gateway request",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0,
            ]),
            &["route"],
        )
        .unwrap_or_else(|e| panic!("metric gateway_request_seconds: {e}"));
        let _ = shared().registry.register(Box::new(seconds.clone()));
        let m = GatewayMetrics {
            requests: counter(
                "gateway_requests_total",
                "Gateway requests by route and outcome",
                &["route", "outcome"],
            ),
            rejected: counter(
                "gateway_webhook_rejected_total",
                "Requests refused: bad signature, replay, stale, malformed input",
                &["provider", "reason"],
            ),
            events: counter(
                "gateway_events_total",
                "Verified provider events by what became of them",
                &["provider", "outcome"],
            ),
            seconds,
        };
        // Every series at 0 from the start, so a first burst shows in increase().
        for route in ROUTES {
            m.seconds.with_label_values(&[route]);
            for outcome in OUTCOMES {
                m.requests.with_label_values(&[route, outcome]);
            }
        }
        for provider in PROVIDERS {
            for reason in crate::verify::REASONS.iter().chain(INPUT_REASONS) {
                m.rejected.with_label_values(&[provider, reason]);
            }
            for outcome in EVENT_OUTCOMES {
                m.events.with_label_values(&[provider, outcome]);
            }
        }
        m
    })
}
