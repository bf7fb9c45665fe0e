//! Multiplicity adjustment across the treatment-vs-control comparisons of a metric,
//! as `statsmodels.stats.multitest.multipletests` (`holm`, `fdr_bh`).

use serde::{Deserialize, Serialize};

/// Which adjustment decides `significant`. Holm controls the family-wise error
/// rate (the default); Benjamini-Hochberg controls the false discovery rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Correction {
    #[default]
    Holm,
    BenjaminiHochberg,
}

impl Correction {
    pub fn label(self) -> &'static str {
        match self {
            Correction::Holm => "Holm",
            Correction::BenjaminiHochberg => "Benjamini-Hochberg",
        }
    }
}

/// Indices that sort `p_values` ascending; NaN never occurs (callers pass
/// validated p-values) but `total_cmp` keeps the sort total regardless.
fn ascending_order(p_values: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..p_values.len()).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    order
}

/// Holm step-down adjusted p-values, in the input order.
pub fn holm(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut adjusted = vec![0.0; m];
    let mut running_max: f64 = 0.0;
    for (rank, &index) in ascending_order(p_values).iter().enumerate() {
        let scaled = ((m - rank) as f64 * p_values[index]).min(1.0);
        running_max = running_max.max(scaled);
        adjusted[index] = running_max;
    }
    adjusted
}

/// Benjamini-Hochberg step-up adjusted p-values, in the input order.
pub fn benjamini_hochberg(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut adjusted = vec![0.0; m];
    let mut running_min: f64 = 1.0;
    for (rank, &index) in ascending_order(p_values).iter().enumerate().rev() {
        let scaled = p_values[index] * m as f64 / (rank + 1) as f64;
        running_min = running_min.min(scaled);
        adjusted[index] = running_min;
    }
    adjusted
}

/// Adjusts with the chosen correction.
pub fn adjust(p_values: &[f64], correction: Correction) -> Vec<f64> {
    match correction {
        Correction::Holm => holm(p_values),
        Correction::BenjaminiHochberg => benjamini_hochberg(p_values),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn holm_matches_statsmodels() {
        // multipletests([0.01, 0.04, 0.03, 0.005], method="holm")[1]
        let adjusted = holm(&[0.01, 0.04, 0.03, 0.005]);
        let expected = [0.03, 0.06, 0.06, 0.02];
        for (a, e) in adjusted.iter().zip(expected) {
            assert!((a - e).abs() < 1e-12, "{adjusted:?}");
        }
    }

    #[test]
    fn bh_matches_statsmodels() {
        // multipletests([0.01, 0.04, 0.03, 0.005], method="fdr_bh")[1]
        let adjusted = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.005]);
        let expected = [0.02, 0.04, 0.04, 0.02];
        for (a, e) in adjusted.iter().zip(expected) {
            assert!((a - e).abs() < 1e-12, "{adjusted:?}");
        }
    }

    proptest! {
        #[test]
        fn adjusted_p_values_are_bounded_and_preserve_order(
            p in proptest::collection::vec(0.0f64..=1.0, 1..12)
        ) {
            for correction in [Correction::Holm, Correction::BenjaminiHochberg] {
                let adjusted = adjust(&p, correction);
                for i in 0..p.len() {
                    prop_assert!(adjusted[i] >= p[i] - 1e-15);
                    prop_assert!(adjusted[i] <= 1.0);
                    for j in 0..p.len() {
                        if p[i] <= p[j] {
                            prop_assert!(adjusted[i] <= adjusted[j] + 1e-15);
                        }
                    }
                }
            }
            // Holm is never less conservative than BH.
            let h = holm(&p);
            let b = benjamini_hochberg(&p);
            for i in 0..p.len() {
                prop_assert!(h[i] >= b[i] - 1e-15);
            }
        }
    }
}
