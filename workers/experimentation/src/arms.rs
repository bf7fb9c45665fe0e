//! The arms of an experiment, their weights, and the salted hash that maps a
//! customer to one of them.
//!
//! Assignment is a pure function of (campaign id, customer id): the same pair
//! always lands in the same arm, whatever the batch order or the worker.

use cpo_shared::campaign::CampaignError;
use cpo_shared::model::CampaignContext;
use sha2::{Digest, Sha256};

/// Domain tag of the assignment hash; changing it would reshuffle every campaign.
const ASSIGNMENT_SALT: &[u8] = b"cpo-assign-v1";

/// Why a campaign's arms or weights cannot be used: the shared arms rule.
pub type PlanError = CampaignError;

/// The arms of one campaign (control first, then one per tone) and where each
/// arm's share of [0, 1) ends.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmPlan {
    arms: Vec<String>,
    weights: Vec<f64>,
    /// Upper bound of each arm's interval in [0, 1]; zero-weight arms get an empty one.
    cumulative: Vec<f64>,
    /// Arm that catches a `u` above the last bound after float rounding.
    last_positive: usize,
}

impl ArmPlan {
    /// The campaign's arms and weights by the rule every stage shares
    /// (`cpo_shared::campaign::Arms`).
    pub fn from_campaign(campaign: &CampaignContext) -> Result<Self, PlanError> {
        let arms = campaign.arms()?;
        Self::new(arms.names().to_vec(), arms.weights().to_vec())
    }

    fn new(arms: Vec<String>, weights: Vec<f64>) -> Result<Self, PlanError> {
        let total: f64 = weights.iter().sum();
        let last_positive = weights
            .iter()
            .rposition(|w| *w > 0.0)
            .ok_or(PlanError::AllZero)?;
        if !(total.is_finite() && total > 0.0) {
            return Err(PlanError::AllZero);
        }
        let mut running = 0.0;
        let cumulative = weights
            .iter()
            .map(|w| {
                running += w;
                running / total
            })
            .collect();
        Ok(Self {
            arms,
            weights,
            cumulative,
            last_positive,
        })
    }

    pub fn arms(&self) -> &[String] {
        &self.arms
    }

    /// The arm's intended share of customers, in [0, 1].
    pub fn share(&self, arm: usize) -> f64 {
        let total: f64 = self.weights.iter().sum();
        self.weights.get(arm).map_or(0.0, |w| w / total)
    }

    /// Index of the arm whose interval holds `u` (a point of [0, 1)).
    ///
    /// Strict `<` gives a zero-weight arm an empty interval, so it is never picked.
    pub fn pick(&self, u: f64) -> usize {
        self.cumulative
            .iter()
            .position(|bound| u < *bound)
            .unwrap_or(self.last_positive)
    }
}

/// The salted hash of (campaign id, customer id), with the campaign part
/// hashed once per batch rather than once per customer.
#[derive(Clone)]
pub struct AssignmentHasher {
    campaign_state: Sha256,
}

impl AssignmentHasher {
    pub fn new(campaign_id: &str) -> Self {
        let mut campaign_state = Sha256::new();
        length_prefixed(&mut campaign_state, ASSIGNMENT_SALT);
        length_prefixed(&mut campaign_state, campaign_id.as_bytes());
        Self { campaign_state }
    }

    /// The customer's point in [0, 1): the top 53 bits of the hash, so every
    /// value is an exact f64 and the mapping has no bias beyond 2^-53.
    pub fn unit(&self, customer_id: &str) -> f64 {
        let mut state = self.campaign_state.clone();
        length_prefixed(&mut state, customer_id.as_bytes());
        let digest = state.finalize();
        let mut head = [0u8; 8];
        head.copy_from_slice(&digest[..8]);
        (u64::from_be_bytes(head) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Length prefixes keep ("ab", "c") and ("a", "bc") apart.
fn length_prefixed(state: &mut Sha256, bytes: &[u8]) {
    state.update((bytes.len() as u64).to_le_bytes());
    state.update(bytes);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn campaign(tones: &[&str], weights: &[(&str, f64)]) -> CampaignContext {
        CampaignContext {
            campaign_id: "camp-1".into(),
            name: "Spring".into(),
            objective: "win back".into(),
            call_to_action_url: None,
            tones: tones.iter().map(|t| t.to_string()).collect(),
            arm_weights: weights
                .iter()
                .map(|(a, w)| (a.to_string(), *w))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn missing_weights_default_to_equal_shares() {
        let plan = ArmPlan::from_campaign(&campaign(&["urgent", "friendly"], &[])).unwrap();
        assert_eq!(plan.arms(), ["control", "urgent", "friendly"]);
        for arm in 0..3 {
            assert!((plan.share(arm) - 1.0 / 3.0).abs() < 1e-12);
        }
        let weighted = ArmPlan::from_campaign(&campaign(&["urgent"], &[("control", 3.0)])).unwrap();
        assert!((weighted.share(0) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn invalid_weights_are_rejected_with_the_arm_named() {
        let negative = ArmPlan::from_campaign(&campaign(&["urgent"], &[("urgent", -1.0)]));
        assert!(
            matches!(&negative, Err(PlanError::InvalidWeight { arm, .. }) if arm == "urgent"),
            "{negative:?}"
        );
        let nan = ArmPlan::from_campaign(&campaign(&["urgent"], &[("control", f64::NAN)]));
        assert!(matches!(nan, Err(PlanError::InvalidWeight { .. })));
        let zero =
            ArmPlan::from_campaign(&campaign(&["urgent"], &[("control", 0.0), ("urgent", 0.0)]));
        assert_eq!(zero, Err(PlanError::AllZero));
        // the rule generation applies too: no tones is no experiment
        assert!(matches!(
            ArmPlan::from_campaign(&campaign(&[], &[])),
            Err(PlanError::NoTones { .. })
        ));
        let unknown = ArmPlan::from_campaign(&campaign(&["urgent"], &[("bold", 1.0)]));
        let message = unknown.unwrap_err().to_string();
        assert!(message.contains("`bold`") && message.contains("control, urgent"));
        assert_eq!(
            ArmPlan::from_campaign(&campaign(&["urgent", "urgent"], &[])),
            Err(PlanError::DuplicateTone {
                tone: "urgent".into()
            })
        );
        assert!(matches!(
            ArmPlan::from_campaign(&campaign(&["control"], &[])),
            Err(PlanError::ToneIsControl { .. })
        ));
    }

    #[test]
    fn pick_follows_the_cumulative_bounds() {
        let plan = ArmPlan::from_campaign(&campaign(
            &["a", "b", "c"],
            &[("control", 1.0), ("a", 0.0), ("b", 2.0), ("c", 1.0)],
        ))
        .unwrap();
        assert_eq!(plan.pick(0.0), 0);
        assert_eq!(plan.pick(0.2499), 0);
        assert_eq!(
            plan.pick(0.25),
            2,
            "zero-weight arm `a` has an empty interval"
        );
        assert_eq!(plan.pick(0.7499), 2);
        assert_eq!(plan.pick(0.75), 3);
        assert_eq!(plan.pick(0.999_999_999), 3);
    }

    #[test]
    fn hash_depends_on_campaign_and_customer() {
        let a = AssignmentHasher::new("c1");
        let b = AssignmentHasher::new("c2");
        assert_eq!(a.unit("42"), AssignmentHasher::new("c1").unit("42"));
        assert_ne!(a.unit("42"), b.unit("42"));
        assert_ne!(a.unit("42"), a.unit("43"));
        // length prefixing: ("c1", "42") and ("c14", "2") are different inputs
        assert_ne!(a.unit("42"), AssignmentHasher::new("c14").unit("2"));
    }

    fn weights_strategy() -> impl Strategy<Value = Vec<f64>> {
        prop::collection::vec(prop_oneof![Just(0.0), 0.01f64..10.0], 1..6)
            .prop_filter("one positive weight", |w| w.iter().any(|x| *x > 0.0))
    }

    proptest! {
        #[test]
        fn same_input_same_arm(campaign_id in "[a-z0-9-]{1,20}", customer in "[A-Za-z0-9]{1,12}") {
            let first = AssignmentHasher::new(&campaign_id).unit(&customer);
            let again = AssignmentHasher::new(&campaign_id).unit(&customer);
            prop_assert_eq!(first.to_bits(), again.to_bits());
            prop_assert!((0.0..1.0).contains(&first));
        }

        #[test]
        fn picked_arm_has_positive_weight_and_holds_u(weights in weights_strategy(), u in 0.0f64..1.0) {
            let arms = (0..weights.len()).map(|i| format!("arm{i}")).collect();
            let plan = ArmPlan::new(arms, weights.clone()).unwrap();
            let picked = plan.pick(u);
            prop_assert!(weights[picked] > 0.0);
            let lower = if picked == 0 { 0.0 } else { plan.cumulative[picked - 1] };
            prop_assert!(u >= lower || picked == plan.last_positive);
            prop_assert!(u < plan.cumulative[picked] || picked == plan.last_positive);
        }
    }

    proptest! {
        // Each case hashes 4000 customers; fewer cases keep the debug build quick.
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn shares_follow_weights(weights in weights_strategy(), seed in "[a-z]{4}") {
            let arms: Vec<String> = (0..weights.len()).map(|i| format!("arm{i}")).collect();
            let plan = ArmPlan::new(arms, weights.clone()).unwrap();
            let hasher = AssignmentHasher::new(&seed);
            let n = 4000;
            let mut counts = vec![0u32; weights.len()];
            for i in 0..n {
                counts[plan.pick(hasher.unit(&i.to_string()))] += 1;
            }
            for (arm, count) in counts.iter().enumerate() {
                let observed = f64::from(*count) / f64::from(n);
                // five standard errors of a share at n = 4000 is under 0.04
                prop_assert!((observed - plan.share(arm)).abs() < 0.04,
                    "arm {} observed {} expected {}", arm, observed, plan.share(arm));
            }
        }
    }
}
