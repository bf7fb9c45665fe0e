//! Several screens as one (`safety.backends`): every member screens the same
//! text at once; the combined report keeps the highest severity per category
//! and every finding, so a variant is approved only when every member would
//! approve it. A member's error is the ensemble's error (named after the
//! member), which `safety.on_screen_error` then handles like any screen error.
//!
//! Each member's own answer (its severities and the decision `assess` gives
//! its report alone) travels in `ScreenReport::backends` to the audit record;
//! a pair of members deciding differently moves
//! `safety_backend_disagreements_total{a,b}` (members in configured order).

use std::sync::Arc;

use async_trait::async_trait;
use cpo_shared::model::{CategorySeverities, Decision};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::config::SafetyConfig;
use crate::error::ScreenError;
use crate::metrics::safety_metrics;
use crate::screen::{SafetyScreen, ScreenReport, ScreenRequest};
use crate::verdict::assess;

/// One member's answer, as the audit record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendAnswer {
    pub backend: String,
    pub decision: Decision,
    pub categories: CategorySeverities,
    /// What blocked, as `assess` words it for this member's report alone.
    pub reasons: Vec<String>,
}

pub struct EnsembleScreen {
    members: Vec<Arc<dyn SafetyScreen>>,
    name: String,
    config: SafetyConfig,
}

impl EnsembleScreen {
    /// `members` in configured order; their disagreement counters start at 0.
    pub fn new(members: Vec<Arc<dyn SafetyScreen>>, config: SafetyConfig) -> Self {
        let name = members
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join("+");
        let screen = Self {
            members,
            name,
            config,
        };
        for (a, b) in screen.pairs() {
            safety_metrics()
                .backend_disagreements
                .with_label_values(&[a, b]);
        }
        screen
    }

    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        let names: Vec<&str> = self.members.iter().map(|m| m.name()).collect();
        (0..names.len())
            .flat_map(move |i| (i + 1..names.len()).map(move |j| (i, j)))
            .map(move |(i, j)| (self.members[i].name(), self.members[j].name()))
    }
}

/// A member's error, named after the member.
fn named(member: &str, error: ScreenError) -> ScreenError {
    match error {
        ScreenError::Backend(m) => ScreenError::Backend(format!("{member}: {m}")),
        ScreenError::Rejected(m) => ScreenError::Rejected(format!("{member}: {m}")),
        ScreenError::Malformed(m) => ScreenError::Malformed(format!("{member}: {m}")),
        other => other,
    }
}

#[async_trait]
impl SafetyScreen for EnsembleScreen {
    fn name(&self) -> &str {
        &self.name
    }

    async fn screen(&self, request: &ScreenRequest<'_>) -> Result<ScreenReport, ScreenError> {
        // Tasks need owned text; dropping the set (the caller's timeout) aborts them.
        let (subject, body): (Arc<str>, Arc<str>) = (request.subject.into(), request.body.into());
        let mut set = JoinSet::new();
        for (index, member) in self.members.iter().enumerate() {
            let (member, subject, body) = (member.clone(), subject.clone(), body.clone());
            set.spawn(async move {
                let request = ScreenRequest {
                    subject: &subject,
                    body: &body,
                };
                (index, member.screen(&request).await)
            });
        }
        let mut answers: Vec<Option<Result<ScreenReport, ScreenError>>> =
            vec![None; self.members.len()];
        while let Some(joined) = set.join_next().await {
            // A panicking member is a permanent error like any panic.
            let (index, answer) = joined.map_err(|_| ScreenError::Panicked)?;
            answers[index] = Some(answer);
        }
        let mut reports = Vec::with_capacity(answers.len());
        for (member, answer) in self.members.iter().zip(answers) {
            match answer {
                Some(Ok(report)) => reports.push(report),
                Some(Err(error)) => return Err(named(member.name(), error)),
                None => return Err(ScreenError::Panicked),
            }
        }
        let mut combined = ScreenReport::default();
        for (member, report) in self.members.iter().zip(&reports) {
            let assessment = assess(report, &self.config);
            combined.backends.push(BackendAnswer {
                backend: member.name().to_string(),
                decision: assessment.decision,
                categories: report.categories.clone(),
                reasons: assessment.reasons,
            });
        }
        for (i, j) in (0..reports.len()).flat_map(|i| (i + 1..reports.len()).map(move |j| (i, j))) {
            if combined.backends[i].decision != combined.backends[j].decision {
                safety_metrics()
                    .backend_disagreements
                    .with_label_values(&[self.members[i].name(), self.members[j].name()])
                    .inc();
            }
        }
        for report in reports {
            combined.merge(report);
        }
        Ok(combined)
    }
}
