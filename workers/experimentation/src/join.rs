//! The join of the creative flow (one decision per variant) with the audience
//! flow (customer batches), kept in the shared cache so any worker of the fleet
//! can pick up where another stopped.
//!
//! Layout: one hash per (campaign, segment) at `cpo:v1:join:<campaign>:<segment>`,
//! one field per variant id, the decision (snippets stripped) as JSON.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cpo_shared::cache::Cache;
use cpo_shared::model::{ApprovedTemplate, Decision, VariantDecision};
use cpo_shared::signing::content_hash;

use crate::error::ExperimentError;

/// Decided segments kept in-process before the map is reset; a decided segment
/// never changes, so forgetting one only costs a cache read.
const MAX_DECIDED_SEGMENTS: usize = 10_000;

pub fn join_key(campaign_id: &str, segment: &str) -> String {
    format!("cpo:v1:join:{campaign_id}:{segment}")
}

/// What one arm of a segment can send.
#[derive(Debug, Clone, PartialEq)]
pub enum ArmVariant {
    Approved(ApprovedTemplate),
    Blocked { variant_id: String, reason: String },
}

/// The decided variants of one segment, by arm.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SegmentArms {
    by_arm: BTreeMap<String, ArmVariant>,
}

impl SegmentArms {
    pub fn get(&self, arm: &str) -> Option<&ArmVariant> {
        self.by_arm.get(arm)
    }
}

/// Where a segment's join stands.
#[derive(Debug, Clone, PartialEq)]
pub enum JoinStatus {
    Decided(SegmentArms),
    /// `expected` is unknown until the first decision arrives.
    Waiting {
        have: usize,
        expected: Option<u32>,
    },
}

/// The decision as stored in the join: snippets are only needed by safety.
pub fn for_join(decision: &VariantDecision) -> VariantDecision {
    let mut stored = decision.clone();
    stored.variant.snippets = Vec::new();
    stored
}

/// The template a decision allows, or why it allows none. Fail-closed: only an
/// approval whose hash matches the content it travels with makes a template.
pub fn arm_variant(decision: &VariantDecision) -> ArmVariant {
    let variant = &decision.variant;
    let blocked = |reason: String| ArmVariant::Blocked {
        variant_id: variant.variant_id.clone(),
        reason,
    };
    match (decision.verdict.decision, &decision.approval) {
        (Decision::Blocked, _) => blocked(
            decision
                .verdict
                .reasons
                .first()
                .cloned()
                .unwrap_or_else(|| "blocked by safety".into()),
        ),
        (Decision::Approved, None) => blocked("approved without a signed approval".into()),
        (Decision::Approved, Some(approval)) => {
            let hash = content_hash(
                &variant.variant_id,
                &variant.subject,
                &variant.body,
                &variant.citations,
            );
            if hash != approval.content_hash {
                return blocked("approval does not match the variant's content".into());
            }
            ArmVariant::Approved(ApprovedTemplate {
                variant_id: variant.variant_id.clone(),
                subject: variant.subject.clone(),
                body: variant.body.clone(),
                citations: variant.citations.clone(),
                approval: approval.clone(),
            })
        }
    }
}

/// Decide a segment from the fields of its join hash (pure).
///
/// The segment is decided once it holds `variants_in_segment` decisions. Should
/// two variants serve one arm, an approved one wins, then the smallest variant
/// id, so every worker reads the same answer from the same hash.
pub fn evaluate(fields: &[(String, Vec<u8>)]) -> Result<JoinStatus, ExperimentError> {
    let mut decisions = fields
        .iter()
        .map(|(field, raw)| {
            serde_json::from_slice::<VariantDecision>(raw).map_err(|e| {
                ExperimentError::CorruptJoin(format!("field `{field}` is not a decision: {e}"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let expected = decisions
        .iter()
        .map(|d| d.variant.variants_in_segment)
        .max();
    let have = decisions.len();
    match expected {
        Some(want) if have >= want as usize => {}
        _ => return Ok(JoinStatus::Waiting { have, expected }),
    }
    decisions.sort_by(|a, b| a.variant.variant_id.cmp(&b.variant.variant_id));
    let mut by_arm: BTreeMap<String, ArmVariant> = BTreeMap::new();
    for decision in &decisions {
        let candidate = arm_variant(decision);
        let replace = match by_arm.get(&decision.variant.arm) {
            None => true,
            Some(ArmVariant::Blocked { .. }) => matches!(candidate, ArmVariant::Approved(_)),
            Some(ArmVariant::Approved(_)) => false,
        };
        if replace {
            by_arm.insert(decision.variant.arm.clone(), candidate);
        }
    }
    Ok(JoinStatus::Decided(SegmentArms { by_arm }))
}

/// Join state: the shared cache, fronted by an in-process map of decided segments.
pub struct JoinState {
    cache: Arc<dyn Cache>,
    ttl: Duration,
    decided: Mutex<HashMap<String, Arc<SegmentArms>>>,
}

/// A segment's join, as a batch sees it.
pub enum SegmentJoin {
    Decided(Arc<SegmentArms>),
    Waiting { have: usize, expected: Option<u32> },
}

impl JoinState {
    /// Decisions expire `ttl` after a segment's last one.
    pub fn new(cache: Arc<dyn Cache>, ttl: Duration) -> Self {
        Self {
            cache,
            ttl,
            decided: Mutex::new(HashMap::new()),
        }
    }

    /// Store one decision. Redelivery rewrites the same field with the same value.
    pub async fn record(&self, decision: &VariantDecision) -> Result<(), ExperimentError> {
        let key = join_key(&decision.variant.campaign_id, &decision.variant.segment);
        let value = serde_json::to_vec(&for_join(decision))
            .map_err(|e| ExperimentError::Encode(e.to_string()))?;
        self.cache
            .hash_set(&key, &decision.variant.variant_id, &value, Some(self.ttl))
            .await
            .map_err(|e| ExperimentError::Cache(e.to_string()))
    }

    /// The segment's decided arms, from memory when another batch already saw them.
    pub async fn segment(
        &self,
        campaign_id: &str,
        segment: &str,
    ) -> Result<SegmentJoin, ExperimentError> {
        let key = join_key(campaign_id, segment);
        if let Some(arms) = self.lock().get(&key) {
            return Ok(SegmentJoin::Decided(arms.clone()));
        }
        let fields = self
            .cache
            .hash_get_all(&key)
            .await
            .map_err(|e| ExperimentError::Cache(e.to_string()))?;
        match evaluate(&fields)? {
            JoinStatus::Waiting { have, expected } => Ok(SegmentJoin::Waiting { have, expected }),
            JoinStatus::Decided(arms) => {
                let arms = Arc::new(arms);
                let mut decided = self.lock();
                if decided.len() >= MAX_DECIDED_SEGMENTS {
                    decided.clear();
                }
                decided.insert(key, arms.clone());
                Ok(SegmentJoin::Decided(arms))
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<SegmentArms>>> {
        // The map only ever holds complete entries, so a poisoned lock is still consistent.
        self.decided.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use cpo_shared::model::{Approval, CategorySeverities, SafetyVerdict, Snippet, Variant};
    use cpo_shared::signing::Signer;

    use super::*;

    pub(crate) fn decision(segment: &str, arm: &str, approved: bool, of: u32) -> VariantDecision {
        let variant = Variant {
            variant_id: format!("v-{segment}-{arm}"),
            campaign_id: "camp-1".into(),
            segment: segment.into(),
            arm: arm.into(),
            subject: format!("{arm} news for {{{{first_name}}}}"),
            body: format!("Hello {{{{ first_name }}}}, {arm} offer [doc-1]. {{{{cta_url}}}}"),
            citations: vec!["doc-1".into()],
            snippets: vec![Snippet {
                id: "doc-1".into(),
                title: "t".into(),
                category: "c".into(),
                text: "snippet text".into(),
                relevance: 0.9,
            }],
            variants_in_segment: of,
            segments_total: 1,
            generator: "offline".into(),
        };
        let hash = content_hash(
            &variant.variant_id,
            &variant.subject,
            &variant.body,
            &variant.citations,
        );
        let approval = approved.then(|| Approval {
            content_hash: hash.clone(),
            signature: Signer::new(b"test-key".to_vec()).sign(&hash),
        });
        VariantDecision {
            verdict: SafetyVerdict {
                variant_id: variant.variant_id.clone(),
                decision: if approved {
                    Decision::Approved
                } else {
                    Decision::Blocked
                },
                categories: CategorySeverities::default(),
                reasons: if approved {
                    vec![]
                } else {
                    vec!["violence severity 4 >= 4".into(), "second".into()]
                },
                content_hash: hash,
                screened_by: "embedded".into(),
            },
            variant,
            approval,
        }
    }

    fn fields(decisions: &[VariantDecision]) -> Vec<(String, Vec<u8>)> {
        decisions
            .iter()
            .map(|d| {
                (
                    d.variant.variant_id.clone(),
                    serde_json::to_vec(&for_join(d)).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn segment_waits_until_every_variant_is_decided() {
        assert_eq!(
            evaluate(&[]).unwrap(),
            JoinStatus::Waiting {
                have: 0,
                expected: None
            }
        );
        let partial = fields(&[
            decision("s", "control", true, 3),
            decision("s", "urgent", true, 3),
        ]);
        assert_eq!(
            evaluate(&partial).unwrap(),
            JoinStatus::Waiting {
                have: 2,
                expected: Some(3)
            }
        );
    }

    #[test]
    fn only_signed_matching_approvals_become_templates() {
        let mut unsigned = decision("s", "urgent", true, 3);
        unsigned.approval = None;
        let mut altered = decision("s", "friendly", true, 3);
        altered.variant.body.push_str(" (edited)");
        let all = fields(&[decision("s", "control", true, 3), unsigned, altered]);
        let JoinStatus::Decided(arms) = evaluate(&all).unwrap() else {
            panic!("three of three decisions should decide the segment");
        };
        assert!(
            matches!(arms.get("control"), Some(ArmVariant::Approved(t)) if t.variant_id == "v-s-control")
        );
        assert!(
            matches!(arms.get("urgent"), Some(ArmVariant::Blocked { reason, .. }) if reason.contains("without a signed approval"))
        );
        assert!(
            matches!(arms.get("friendly"), Some(ArmVariant::Blocked { reason, .. }) if reason.contains("does not match"))
        );
    }

    #[test]
    fn blocked_reason_is_the_first_reason_and_snippets_are_not_stored() {
        let blocked = decision("s", "urgent", false, 1);
        assert!(for_join(&blocked).variant.snippets.is_empty());
        let JoinStatus::Decided(arms) = evaluate(&fields(&[blocked])).unwrap() else {
            panic!("one of one decisions should decide the segment");
        };
        assert_eq!(
            arms.get("urgent"),
            Some(&ArmVariant::Blocked {
                variant_id: "v-s-urgent".into(),
                reason: "violence severity 4 >= 4".into()
            })
        );
    }

    #[test]
    fn an_approved_variant_wins_over_a_blocked_one_of_the_same_arm() {
        let mut approved = decision("s", "urgent", true, 2);
        approved.variant.variant_id = "v-b".into();
        let hash = content_hash(
            "v-b",
            &approved.variant.subject,
            &approved.variant.body,
            &approved.variant.citations,
        );
        approved.approval = Some(Approval {
            signature: Signer::new(b"k".to_vec()).sign(&hash),
            content_hash: hash,
        });
        let mut blocked = decision("s", "urgent", false, 2);
        blocked.variant.variant_id = "v-a".into();
        let JoinStatus::Decided(arms) = evaluate(&fields(&[blocked, approved])).unwrap() else {
            panic!("decided");
        };
        assert!(
            matches!(arms.get("urgent"), Some(ArmVariant::Approved(t)) if t.variant_id == "v-b")
        );
    }

    #[test]
    fn a_corrupt_field_is_reported_not_ignored() {
        let err = evaluate(&[("v1".into(), b"not json".to_vec())]).unwrap_err();
        assert!(err.to_string().contains("`v1`"), "{err}");
    }
}
