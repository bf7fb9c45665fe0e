//! Assignment of one customer batch: each customer to exactly one arm (by the
//! salted hash), the message that arm may send, or a listed exclusion.

use std::collections::{BTreeMap, HashMap, HashSet};

use cpo_shared::model::{ApprovedTemplate, CONTROL_ARM, CustomerBatch, Exclusion, ExclusionReason};

use crate::arms::{ArmPlan, AssignmentHasher};
use crate::ids::MessageIds;
use crate::join::{ArmVariant, SegmentArms};
use crate::output::{OutboundMessageOut, RecipientOut};

/// What a customer assigned to one arm of one segment receives.
#[derive(Debug, Clone, PartialEq)]
pub enum Route<'a> {
    Send {
        template: &'a ApprovedTemplate,
        /// Why the control message stands in for the assigned arm's.
        fallback: Option<String>,
    },
    Exclude {
        detail: String,
    },
}

/// The route of one arm in a decided segment.
///
/// A blocked (or missing) treatment falls back to the approved control message;
/// a blocked control never falls back to a treatment, because the control arm
/// must only ever receive the control message.
pub fn route_arm<'a>(arm: &str, arms: &'a SegmentArms) -> Route<'a> {
    let why = match arms.get(arm) {
        Some(ArmVariant::Approved(template)) => {
            return Route::Send {
                template,
                fallback: None,
            };
        }
        Some(ArmVariant::Blocked { reason, .. }) => format!("{arm} variant blocked: {reason}"),
        None => format!("{arm} variant missing: none was generated for this segment"),
    };
    if arm == CONTROL_ARM {
        return Route::Exclude { detail: why };
    }
    match arms.get(CONTROL_ARM) {
        Some(ArmVariant::Approved(template)) => Route::Send {
            template,
            fallback: Some(why),
        },
        Some(ArmVariant::Blocked { reason, .. }) => Route::Exclude {
            detail: format!("{why}; control variant blocked: {reason}"),
        },
        None => Route::Exclude {
            detail: format!("{why}; no control variant"),
        },
    }
}

/// Routes of every arm of `plan`, in plan order.
pub fn segment_routes<'a>(plan: &ArmPlan, arms: &'a SegmentArms) -> Vec<Route<'a>> {
    plan.arms().iter().map(|arm| route_arm(arm, arms)).collect()
}

/// The outcome of one batch.
#[derive(Debug)]
pub struct Assigned<'a> {
    pub messages: Vec<OutboundMessageOut<'a>>,
    /// Customers per assigned arm (intent to treat: fallbacks count in their assigned arm).
    pub per_arm: BTreeMap<String, u64>,
    pub fallbacks: u64,
    pub exclusions: Vec<Exclusion>,
}

/// Assign every customer of `batch`; `routes` holds the routes of each of its segments.
pub fn assign_batch<'a>(
    batch: &'a CustomerBatch,
    plan: &'a ArmPlan,
    routes: &'a HashMap<&'a str, Vec<Route<'a>>>,
) -> Assigned<'a> {
    assign_batch_except(batch, plan, routes, &HashMap::new())
}

/// Customers the record excludes before assignment (suppressed, over the
/// frequency cap), by customer id, with the reason and its detail.
pub type RecordExclusions = HashMap<String, (ExclusionReason, String)>;

/// `assign_batch`, with the customers of `excluded` listed as exclusions instead.
pub fn assign_batch_except<'a>(
    batch: &'a CustomerBatch,
    plan: &'a ArmPlan,
    routes: &'a HashMap<&'a str, Vec<Route<'a>>>,
    excluded: &RecordExclusions,
) -> Assigned<'a> {
    let campaign_id = batch.campaign.campaign_id.as_str();
    let hasher = AssignmentHasher::new(campaign_id);
    let message_ids = MessageIds::new(campaign_id);
    let mut per_arm = vec![0u64; plan.arms().len()];
    let mut fallbacks = 0;
    let mut exclusions = Vec::new();
    let mut messages = Vec::with_capacity(batch.customers.len());
    let mut seen: HashSet<&str> = HashSet::with_capacity(batch.customers.len());
    for entry in &batch.customers {
        let customer = &entry.customer;
        let exclude = |reason, detail: String| Exclusion {
            line: None,
            customer_id: Some(customer.customer_id.clone()),
            reason,
            detail,
        };
        if !seen.insert(&customer.customer_id) {
            exclusions.push(exclude(
                ExclusionReason::Duplicate,
                "customer appears twice in the batch".into(),
            ));
            continue;
        }
        if let Some((reason, detail)) = excluded.get(&customer.customer_id) {
            exclusions.push(exclude(*reason, detail.clone()));
            continue;
        }
        let arm = plan.pick(hasher.unit(&customer.customer_id));
        let route = routes.get(entry.segment.as_str()).and_then(|r| r.get(arm));
        let (template, fallback) = match route {
            Some(Route::Send { template, fallback }) => (*template, fallback.as_deref()),
            Some(Route::Exclude { detail }) => {
                exclusions.push(exclude(ExclusionReason::NoApprovedMessage, detail.clone()));
                continue;
            }
            None => {
                exclusions.push(exclude(
                    ExclusionReason::NoApprovedMessage,
                    format!("segment `{}` has no decided variants", entry.segment),
                ));
                continue;
            }
        };
        per_arm[arm] += 1;
        fallbacks += u64::from(fallback.is_some());
        messages.push(OutboundMessageOut {
            message_id: message_ids.id(&customer.customer_id),
            recipient: RecipientOut::of(customer),
            segment: &entry.segment,
            arm: &plan.arms()[arm],
            variant_id: &template.variant_id,
            fallback,
            template,
        });
    }
    Assigned {
        messages,
        per_arm: plan.arms().iter().cloned().zip(per_arm).collect(),
        fallbacks,
        exclusions,
    }
}

#[cfg(test)]
mod tests {
    use cpo_shared::envelope::message_id;
    use cpo_shared::model::SendBatch;

    use super::*;
    use crate::join::tests::decision;
    use crate::join::{JoinStatus, evaluate, for_join};
    use crate::output::{SendBatchOut, templates_of};
    use crate::tests::batch;

    fn decided(decisions: &[cpo_shared::model::VariantDecision]) -> SegmentArms {
        let fields: Vec<_> = decisions
            .iter()
            .map(|d| {
                (
                    d.variant.variant_id.clone(),
                    serde_json::to_vec(&for_join(d)).unwrap(),
                )
            })
            .collect();
        match evaluate(&fields).unwrap() {
            JoinStatus::Decided(arms) => arms,
            waiting => panic!("expected a decided segment, got {waiting:?}"),
        }
    }

    fn plan() -> ArmPlan {
        ArmPlan::from_campaign(&batch(0, &[]).campaign).unwrap()
    }

    #[test]
    fn blocked_treatment_falls_back_to_control_and_keeps_its_arm() {
        let arms = decided(&[
            decision("s", "control", true, 2),
            decision("s", "urgent", false, 2),
        ]);
        let route = route_arm("urgent", &arms);
        assert!(
            matches!(&route, Route::Send { template, fallback: Some(why) }
            if template.variant_id == "v-s-control" && why == "urgent variant blocked: violence severity 4 >= 4")
        );
        // "friendly" produced no variant at all: same fallback, its own reason
        assert!(
            matches!(route_arm("friendly", &arms), Route::Send { fallback: Some(why), .. } if why.contains("missing"))
        );
    }

    #[test]
    fn blocked_control_excludes_even_when_treatments_are_approved() {
        let arms = decided(&[
            decision("s", "control", false, 2),
            decision("s", "urgent", true, 2),
        ]);
        assert!(matches!(route_arm("control", &arms), Route::Exclude { .. }));
        assert!(matches!(
            route_arm("urgent", &arms),
            Route::Send { fallback: None, .. }
        ));
        assert!(
            matches!(route_arm("friendly", &arms), Route::Exclude { detail } if detail.contains("control variant blocked"))
        );
    }

    #[test]
    fn every_customer_is_assigned_or_listed() {
        let batch = batch(2000, &["s"]);
        let arms = decided(&[
            decision("s", "control", false, 4),
            decision("s", "urgent", true, 4),
            decision("s", "informational", false, 4),
            decision("s", "friendly", true, 4),
        ]);
        let plan = plan();
        let routes = HashMap::from([("s", segment_routes(&plan, &arms))]);
        let out = assign_batch(&batch, &plan, &routes);
        let assigned: u64 = out.per_arm.values().sum();
        assert_eq!(assigned as usize, out.messages.len());
        assert_eq!(out.messages.len() + out.exclusions.len(), 2000);
        // control blocked: the control arm and the blocked treatment are excluded
        assert_eq!(out.per_arm["control"], 0);
        assert_eq!(out.per_arm["informational"], 0);
        assert!(
            out.exclusions
                .iter()
                .all(|e| e.reason == ExclusionReason::NoApprovedMessage)
        );
        assert!(
            out.messages
                .iter()
                .all(|m| m.variant_id == m.template.variant_id)
        );
    }

    #[test]
    fn duplicate_customers_are_listed_once() {
        let mut batch = batch(3, &["s"]);
        batch.customers.push(batch.customers[0].clone());
        let arms = decided(&[decision("s", "control", true, 1)]);
        let plan = plan();
        let routes = HashMap::from([("s", segment_routes(&plan, &arms))]);
        let out = assign_batch(&batch, &plan, &routes);
        assert_eq!(out.messages.len(), 3);
        assert_eq!(out.exclusions.len(), 1);
        assert_eq!(out.exclusions[0].reason, ExclusionReason::Duplicate);
    }

    #[test]
    fn borrowed_output_encodes_exactly_like_the_model() {
        let batch = batch(50, &["s", "t"]);
        let arms_s = decided(&[
            decision("s", "control", true, 2),
            decision("s", "urgent", false, 2),
        ]);
        let arms_t = decided(&[decision("t", "control", true, 1)]);
        let plan = plan();
        let routes = HashMap::from([
            ("s", segment_routes(&plan, &arms_s)),
            ("t", segment_routes(&plan, &arms_t)),
        ]);
        let out = assign_batch(&batch, &plan, &routes);
        let mut borrowed = SendBatchOut {
            campaign_id: "camp-1",
            batch_seq: 7,
            call_to_action_url: batch.campaign.call_to_action_url.as_deref(),
            templates: templates_of(&out.messages).unwrap(),
            messages: out.messages,
            signature: None,
        };
        let signer = cpo_shared::signing::Signer::new(b"batch-key".to_vec());
        borrowed.sign(&signer);
        let bytes = serde_json::to_vec(&borrowed).unwrap();
        let owned: SendBatch = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(serde_json::to_vec(&owned).unwrap(), bytes);
        // the borrowed signature is the one delivery recomputes from the owned batch
        assert_eq!(
            cpo_shared::batch_signing::verify_batch(&signer, &owned),
            Ok(())
        );
        assert_eq!(owned.messages.len(), 50);
        // each template once: the two segments' control variants
        let ids: Vec<&str> = owned
            .templates
            .iter()
            .map(|t| t.variant_id.as_str())
            .collect();
        assert_eq!(ids, ["v-s-control", "v-t-control"]);
        assert!(
            owned
                .messages
                .iter()
                .all(|m| owned.template(&m.variant_id).is_some())
        );
        let first = &owned.messages[0];
        assert_eq!(
            first.message_id,
            message_id("camp-1", &first.recipient.customer_id)
        );
        assert_eq!(
            owned.call_to_action_url.as_deref(),
            Some("https://example.com/spring")
        );
        assert!(owned.messages.iter().any(|m| m.fallback.is_some()));
    }
}

#[cfg(test)]
mod template_tests {
    use super::*;
    use crate::error::ExperimentError;
    use crate::join::tests::decision;
    use crate::join::{JoinStatus, evaluate, for_join};
    use crate::output::templates_of;
    use crate::tests::batch;

    fn arms_of(decisions: &[cpo_shared::model::VariantDecision]) -> SegmentArms {
        let fields: Vec<_> = decisions
            .iter()
            .map(|d| {
                (
                    d.variant.variant_id.clone(),
                    serde_json::to_vec(&for_join(d)).unwrap(),
                )
            })
            .collect();
        match evaluate(&fields).unwrap() {
            JoinStatus::Decided(arms) => arms,
            waiting => panic!("expected a decided segment, got {waiting:?}"),
        }
    }

    #[test]
    fn one_variant_id_with_two_contents_is_an_error() {
        let batch = batch(40, &["s", "t"]);
        let plan = ArmPlan::from_campaign(&batch.campaign).unwrap();
        let arms_s = arms_of(&[decision("s", "control", true, 1)]);
        // segment t's control variant claims segment s's variant id, with other content
        let mut clash = decision("t", "control", true, 1);
        clash.variant.variant_id = "v-s-control".into();
        clash.variant.body.push_str(" Segment t only.");
        let hash = cpo_shared::signing::content_hash(
            &clash.variant.variant_id,
            &clash.variant.subject,
            &clash.variant.body,
            &clash.variant.citations,
        );
        clash.approval.as_mut().unwrap().content_hash = hash;
        let arms_t = arms_of(&[clash]);
        let routes = HashMap::from([
            ("s", segment_routes(&plan, &arms_s)),
            ("t", segment_routes(&plan, &arms_t)),
        ]);
        let out = assign_batch(&batch, &plan, &routes);
        assert!(matches!(
            templates_of(&out.messages),
            Err(ExperimentError::AmbiguousTemplate(id)) if id == "v-s-control"
        ));
    }
}
