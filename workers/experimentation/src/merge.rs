//! Merge values are screened before a batch is signed: a first name, city or
//! tier that fails the embedded profanity, slur and personal-data screen is
//! replaced by its field's fallback (a first name by "there", so "Hi
//! {{first_name}}," reads "Hi there,") and recorded, never sent. See design.md
//! for why this happens here rather than in delivery.

use cpo_safety::MergeValueScreen;
use cpo_shared::model::ReplacedValue;

use crate::output::OutboundMessageOut;

/// The merge fields screened (metric labels, pre-initialised at 0).
pub const FIELDS: [&str; 3] = ["first_name", "location", "tier"];

/// What a refused first name becomes: the greeting's fallback ("Hi there,").
pub const FIRST_NAME_FALLBACK: &str = "there";
/// What a refused location becomes.
pub const LOCATION_FALLBACK: &str = "your area";
/// What a refused tier becomes.
pub const TIER_FALLBACK: &str = "member";

/// Screen every merge value of `messages` (each distinct value once), replace
/// the refused ones by their fallback, and list them (customer, field, reason).
pub fn screen_merge_values(
    screen: &MergeValueScreen,
    messages: &mut [OutboundMessageOut<'_>],
) -> Vec<ReplacedValue> {
    let values = messages.iter().flat_map(|m| {
        let r = &m.recipient;
        [r.first_name, r.location, r.tier]
    });
    let verdicts = screen.check_many(values);
    if verdicts.values().all(Option::is_none) {
        return Vec::new();
    }
    let mut replaced = Vec::new();
    for message in messages.iter_mut() {
        let r = &mut message.recipient;
        let customer_id = r.customer_id;
        for (field, value, fallback) in [
            ("first_name", &mut r.first_name, FIRST_NAME_FALLBACK),
            ("location", &mut r.location, LOCATION_FALLBACK),
            ("tier", &mut r.tier, TIER_FALLBACK),
        ] {
            if let Some(Some(reason)) = verdicts.get(*value) {
                replaced.push(ReplacedValue {
                    customer_id: customer_id.to_string(),
                    field: field.to_string(),
                    reason: reason.clone(),
                });
                *value = fallback;
            }
        }
    }
    replaced
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::arms::ArmPlan;
    use crate::assign::{assign_batch, segment_routes};
    use crate::join::tests::decision;
    use crate::join::{JoinStatus, SegmentArms, evaluate, for_join};
    use crate::tests::batch;

    fn decided(segment: &str) -> SegmentArms {
        let control = decision(segment, "control", true, 1);
        let field = serde_json::to_vec(&for_join(&control)).unwrap();
        match evaluate(&[(control.variant.variant_id.clone(), field)]).unwrap() {
            JoinStatus::Decided(arms) => arms,
            waiting => panic!("expected a decided segment, got {waiting:?}"),
        }
    }

    #[test]
    fn refused_values_are_replaced_by_their_fallback_and_listed() {
        let mut batch = batch(4, &["s"]);
        batch.customers[1].customer.first_name = "Fuck you, idiot".into();
        batch.customers[2].customer.location = "ada@example.com".into();
        batch.customers[3].customer.first_name = "Fuck".into();
        let plan = ArmPlan::from_campaign(&batch.campaign).unwrap();
        let arms = decided("s");
        let routes = HashMap::from([("s", segment_routes(&plan, &arms))]);
        let mut out = assign_batch(&batch, &plan, &routes);
        let screen = MergeValueScreen::new().unwrap();
        let replaced = screen_merge_values(&screen, &mut out.messages);
        let names: Vec<(&str, &str, &str)> = out
            .messages
            .iter()
            .map(|m| {
                (
                    m.recipient.first_name,
                    m.recipient.location,
                    m.recipient.tier,
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("Ada", "Oslo", "gold"),
                ("there", "Oslo", "gold"),
                ("Ada", "your area", "gold"),
                ("there", "Oslo", "gold"),
            ]
        );
        let listed: Vec<(&str, &str)> = replaced
            .iter()
            .map(|r| (r.customer_id.as_str(), r.field.as_str()))
            .collect();
        assert_eq!(
            listed,
            [
                ("C000001", "first_name"),
                ("C000002", "location"),
                ("C000003", "first_name")
            ]
        );
        assert!(replaced[0].reason.contains("profanity"), "{replaced:?}");
        assert!(replaced[1].reason.contains("personal data"), "{replaced:?}");
        assert!(replaced.iter().all(|r| !r.reason.contains("Fuck")));
    }
}
