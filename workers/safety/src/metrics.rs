//! Safety metrics, registered in the process-wide registry (prefix `cpo_`).
//! Labels are bounded: the decision and the block cause, never ids.

use std::sync::OnceLock;

use cpo_shared::metrics::metrics;
use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts};

use crate::error::{ScreenError, ScreenErrorKind};
use crate::screen::{FindingKind, HarmCategory};
use crate::verdict::{Assessment, BlockCause};

pub struct SafetyMetrics {
    /// Decisions by `decision` (approved, blocked).
    pub decisions: IntCounterVec,
    /// Blocks by `cause` (hate, violence, ..., citation, screen_error); one decision may have several.
    pub block_causes: IntCounterVec,
    pub screen_seconds: Histogram,
    /// Screen errors by `kind` (transient, permanent) and `action` (blocked, held).
    pub screen_errors: IntCounterVec,
    /// Ensemble members deciding differently about one variant, by pair
    /// (`a` before `b` in `safety.backends`); preset when an ensemble is built.
    pub backend_disagreements: IntCounterVec,
}

fn counter(name: &str, help: &str, label: &str) -> IntCounterVec {
    counter_with(name, help, &[label])
}

fn counter_with(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let counter = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    // Registration only fails for a duplicate name, which the OnceLock rules out.
    let _ = metrics().registry.register(Box::new(counter.clone()));
    counter
}

pub fn safety_metrics() -> &'static SafetyMetrics {
    static METRICS: OnceLock<SafetyMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let screen_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "safety_screen_seconds",
                "Time to screen and assess one variant",
            )
            .buckets(vec![
                0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.05, 0.5, 5.0,
            ]),
        )
        .unwrap_or_else(|e| panic!("metric safety_screen_seconds: {e}"));
        let _ = metrics()
            .registry
            .register(Box::new(screen_seconds.clone()));
        let safety = SafetyMetrics {
            decisions: counter(
                "safety_decisions_total",
                "Safety decisions by outcome",
                "decision",
            ),
            block_causes: counter(
                "safety_block_causes_total",
                "Causes of blocked variants",
                "cause",
            ),
            screen_seconds,
            screen_errors: counter_with(
                "safety_screen_errors_total",
                "Screen errors (backend down, timeout, malformed report, panic)",
                &["kind", "action"],
            ),
            backend_disagreements: counter_with(
                "safety_backend_disagreements_total",
                "Variants two ensemble members decided differently about",
                &["a", "b"],
            ),
        };
        safety.preset();
        safety
    })
}

/// Every block cause, each a `cause` label.
fn block_causes() -> impl Iterator<Item = BlockCause> {
    const POLICY: [FindingKind; 9] = [
        FindingKind::Profanity,
        FindingKind::MildProfanity,
        FindingKind::PersonalData,
        FindingKind::PromptInjection,
        FindingKind::UnsubstantiatedClaim,
        FindingKind::TemplateExpression,
        FindingKind::Blocklist,
        FindingKind::Phishing,
        FindingKind::ExternalPolicy,
    ];
    HarmCategory::ALL
        .into_iter()
        .map(BlockCause::Harm)
        .chain(POLICY.into_iter().map(BlockCause::Policy))
        .chain([BlockCause::Citation, BlockCause::ScreenError])
}

impl SafetyMetrics {
    /// Every known label value at 0, so a first burst is a rise (see cpo_shared::metrics).
    fn preset(&self) {
        for decision in ["approved", "blocked"] {
            self.decisions.with_label_values(&[decision]);
        }
        for cause in block_causes() {
            self.block_causes.with_label_values(&[cause.as_str()]);
        }
        for kind in [ScreenErrorKind::Transient, ScreenErrorKind::Permanent] {
            for action in ["blocked", "held"] {
                self.screen_errors
                    .with_label_values(&[kind.as_str(), action]);
            }
        }
    }

    pub fn record(&self, assessment: &Assessment, seconds: f64) {
        let decision = match assessment.decision {
            cpo_shared::model::Decision::Approved => "approved",
            cpo_shared::model::Decision::Blocked => "blocked",
        };
        self.decisions.with_label_values(&[decision]).inc();
        for cause in &assessment.causes {
            self.block_causes.with_label_values(&[cause.as_str()]).inc();
        }
        if let Some(error) = &assessment.screen_error {
            self.screen_errors
                .with_label_values(&[error.kind().as_str(), "blocked"])
                .inc();
        }
        self.screen_seconds.observe(seconds);
    }

    /// A screen error that held the variant without a decision.
    pub fn record_held(&self, error: &ScreenError, seconds: f64) {
        self.screen_errors
            .with_label_values(&[error.kind().as_str(), "held"])
            .inc();
        self.screen_seconds.observe(seconds);
    }
}
