//! The safety stage: `variants` in; a signed approval or a blocked decision out.
//!
//! When the screen fails, `on_screen_error` decides: `block` publishes the
//! blocked decision `evaluate` made; `hold` publishes nothing, audits the
//! error and returns it to the runtime as `Unavailable` when it is transient
//! (the variant waits out the outage, tried again with a growing delay without
//! using up attempts, and is dead-lettered as exhausted after
//! `runtime.outage_timeout_ms`) or `Permanent` (dead-lettered at once), so the
//! segment stays undecided and nothing is sent until the variant is screened
//! or replayed.

use std::sync::Arc;
use std::time::Instant;

use cpo_shared::audit::AuditSink;
use cpo_shared::envelope::derive_id;
use cpo_shared::model::{Approval, Decision, LedgerEntry, SafetyVerdict, Variant, VariantDecision};
use cpo_shared::signing::{Signer, content_hash};
use cpo_shared::{Emitter, Envelope, Outgoing, Stage, StageError, StageResult, queues};
use tracing::{info, warn};

use crate::audit::{decision_event, screen_error_event};
use crate::config::{OnScreenError, SafetyConfig};
use crate::error::{SafetyError, ScreenErrorKind};
use crate::metrics::safety_metrics;
use crate::screen::{EmbeddedScreen, SafetyScreen};
use crate::verdict::{Content, evaluate};

pub struct SafetyStage {
    screen: Arc<dyn SafetyScreen>,
    signer: Signer,
    audit: Arc<dyn AuditSink>,
    config: SafetyConfig,
    on_screen_error: OnScreenError,
}

impl SafetyStage {
    /// The stage with `screen` (whatever `config.backend` says). A screen error
    /// is handled as `config.on_screen_error`, `hold` when unset: set it
    /// before calling to choose another default (the embedded mode picks
    /// `block`). Fails only on an invalid config (the error names the key).
    pub fn new(
        screen: Arc<dyn SafetyScreen>,
        signer: Signer,
        audit: Arc<dyn AuditSink>,
        config: SafetyConfig,
    ) -> Result<Self, SafetyError> {
        config.validate()?;
        Ok(Self {
            screen,
            signer,
            audit,
            on_screen_error: config.on_screen_error.unwrap_or_default(),
            config,
        })
    }

    /// The stage with the configured screen (`safety.backend` or `safety.backends`).
    pub fn from_config(
        signer: Signer,
        audit: Arc<dyn AuditSink>,
        config: SafetyConfig,
    ) -> Result<Self, SafetyError> {
        let screen = config.screen()?;
        Self::new(screen, signer, audit, config)
    }

    /// What a screen error does in this stage.
    pub fn on_screen_error(&self) -> OnScreenError {
        self.on_screen_error
    }

    /// The stage with the embedded screen (the offline default).
    pub fn embedded(
        signer: Signer,
        audit: Arc<dyn AuditSink>,
        config: SafetyConfig,
    ) -> Result<Self, SafetyError> {
        let screen = Arc::new(EmbeddedScreen::new(&config)?);
        Self::new(screen, signer, audit, config)
    }
}

impl Stage for SafetyStage {
    type Input = Variant;

    fn name(&self) -> &'static str {
        "safety"
    }

    fn inputs(&self) -> &'static [&'static str] {
        &[queues::VARIANTS]
    }

    fn preset_metrics(&self) {
        crate::metrics::safety_metrics();
    }

    async fn handle(&self, message: Envelope<Variant>, emit: &Emitter) -> StageResult {
        let started = Instant::now();
        let campaign_id = message.campaign_id;
        let attempt = message.attempt;
        let variant = message.payload;
        let assessment = evaluate(
            &*self.screen,
            &Content::from_variant(&variant),
            &self.config,
        )
        .await;
        let hash = content_hash(
            &variant.variant_id,
            &variant.subject,
            &variant.body,
            &variant.citations,
        );

        if let (OnScreenError::Hold, Some(error), true) = (
            self.on_screen_error,
            &assessment.screen_error,
            assessment.undecided(),
        ) {
            safety_metrics().record_held(error, started.elapsed().as_secs_f64());
            // Audited like a decision, before the runtime acts on it.
            let event = screen_error_event(&variant, &hash, self.screen.name(), error, attempt);
            self.audit.append(&event).map_err(StageError::from)?;
            let reason = format!("screen error: {error}");
            warn!(
                variant_id = %variant.variant_id,
                attempt,
                kind = error.kind().as_str(),
                %reason,
                "variant held without a decision"
            );
            return Err(match error.kind() {
                // An outage or throttling of the screen is a dependency being
                // down, not a fault of this variant: it must not use up the
                // attempts within seconds (429 under load, a short outage).
                ScreenErrorKind::Transient => StageError::Unavailable(reason),
                ScreenErrorKind::Permanent => StageError::Permanent(reason),
            });
        }
        safety_metrics().record(&assessment, started.elapsed().as_secs_f64());

        let verdict = SafetyVerdict {
            variant_id: variant.variant_id.clone(),
            decision: assessment.decision,
            categories: assessment.categories,
            reasons: assessment.reasons,
            content_hash: hash.clone(),
            screened_by: self.screen.name().to_string(),
        };
        // Audited before anything is published: a decision must not go unaudited.
        self.audit
            .append(&decision_event(&variant, &verdict, &assessment.backends))
            .map_err(StageError::from)?;
        info!(
            variant_id = %variant.variant_id,
            decision = ?verdict.decision,
            reasons = verdict.reasons.len(),
            "variant screened"
        );

        let approval = (verdict.decision == Decision::Approved).then(|| Approval {
            signature: self.signer.sign(&hash),
            content_hash: hash.clone(),
        });
        // The decision is part of the ids: a blocked variant replayed and then
        // approved must not be deduplicated against its earlier block.
        let decision = verdict.decision;
        let tag = match decision {
            Decision::Approved => "approved",
            Decision::Blocked => "blocked",
        };
        let id = |kind: &str| {
            let parts = ["safety", kind, &variant.variant_id, &hash, tag];
            format!("{kind}-{}", derive_id(&parts))
        };
        let (decision_id, verdict_id) = (id("decision"), id("verdict"));
        let reasons = verdict.reasons.clone();
        let ledger = LedgerEntry::Verdict {
            verdict: verdict.clone(),
            segment: variant.segment.clone(),
            arm: variant.arm.clone(),
        };
        let ledger = Envelope::new(verdict_id, campaign_id.clone(), ledger);
        let decision_message = VariantDecision {
            variant,
            verdict,
            approval,
        };
        let decision_message = Envelope::new(decision_id, campaign_id, decision_message);
        let outputs = vec![
            Outgoing::new(queues::DECISIONS, &decision_message)?,
            Outgoing::new(queues::LEDGER, &ledger)?,
        ];
        emit.count(
            match decision {
                Decision::Approved => cpo_shared::progress::VARIANTS_APPROVED,
                Decision::Blocked => cpo_shared::progress::VARIANTS_BLOCKED,
            },
            1,
        );
        match decision {
            Decision::Approved => Ok(outputs),
            Decision::Blocked => Err(StageError::Blocked {
                reasons,
                notify: outputs,
            }),
        }
    }
}
