//! Segment profiles: sizes and feature means, accumulated in one streaming pass.

use cpo_shared::model::SegmentProfile;

use crate::record::CustomerRow;
use crate::rules::RuleSet;

#[derive(Debug, Clone, Default)]
struct Sums {
    size: u64,
    avg_order_value: f64,
    purchase_frequency: f64,
    last_engagement_days: f64,
    engagement: f64,
}

/// Running sums per segment, indexed like `RuleSet::segments`.
#[derive(Debug, Clone)]
pub struct ProfileBuilder {
    sums: Vec<Sums>,
}

impl ProfileBuilder {
    pub fn new(rules: &RuleSet) -> Self {
        Self {
            sums: vec![Sums::default(); rules.segments().len()],
        }
    }

    pub fn add(&mut self, segment: usize, row: &CustomerRow) {
        if let Some(sums) = self.sums.get_mut(segment) {
            sums.size += 1;
            sums.avg_order_value += row.avg_order_value;
            sums.purchase_frequency += f64::from(row.purchase_frequency);
            sums.last_engagement_days += f64::from(row.last_engagement_days);
            sums.engagement += row.features().engagement();
        }
    }

    /// Size of every segment, empty ones included.
    pub fn sizes(&self) -> Vec<u64> {
        self.sums.iter().map(|s| s.size).collect()
    }

    /// Profiles of the non-empty segments, in rule order (the default last).
    pub fn finish(&self, rules: &RuleSet) -> Vec<SegmentProfile> {
        rules
            .segments()
            .iter()
            .zip(&self.sums)
            .filter(|(_, sums)| sums.size > 0)
            .map(|(segment, sums)| {
                let n = sums.size as f64;
                SegmentProfile {
                    name: segment.name.clone(),
                    description: segment.description.clone(),
                    traits: segment.traits.clone(),
                    size: sums.size,
                    mean_avg_order_value: rounded(sums.avg_order_value / n),
                    mean_purchase_frequency: rounded(sums.purchase_frequency / n),
                    mean_last_engagement_days: rounded(sums.last_engagement_days / n),
                    mean_engagement: rounded(sums.engagement / n),
                }
            })
            .collect()
    }
}

/// Four decimals: enough for a profile, and keeps messages free of float noise.
fn rounded(value: f64) -> f64 {
    (value * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(aov: f64, freq: u32, days: u32, open: f64, click: f64) -> CustomerRow<'static> {
        CustomerRow {
            customer_id: "C",
            first_name: "A",
            email: "a@example.com",
            age: 30,
            location: "X",
            tier: "gold",
            purchase_frequency: freq,
            avg_order_value: aov,
            last_engagement_days: days,
            historical_open_rate: open,
            historical_click_rate: click,
            consent: true,
        }
    }

    #[test]
    fn means_are_per_segment_and_empty_segments_are_left_out() {
        let rules = RuleSet::bundled().unwrap();
        let mut builder = ProfileBuilder::new(&rules);
        let standard = rules.segments().len() - 1;
        builder.add(standard, &row(100.0, 4, 10, 0.3, 0.1));
        builder.add(standard, &row(50.0, 5, 20, 0.5, 0.1));
        builder.add(0, &row(300.0, 5, 2, 0.2, 0.0));
        let profiles = builder.finish(&rules);
        assert_eq!(profiles.len(), 2);
        assert_eq!(profiles[0].name, "High-Value Recent");
        assert_eq!(profiles[0].size, 1);
        let s = &profiles[1];
        assert_eq!((s.name.as_str(), s.size), ("Standard", 2));
        assert_eq!(s.mean_avg_order_value, 75.0);
        assert_eq!(s.mean_purchase_frequency, 4.5);
        assert_eq!(s.mean_last_engagement_days, 15.0);
        assert_eq!(s.mean_engagement, 0.25);
        assert_eq!(builder.sizes(), [1, 0, 0, 0, 2]);
    }
}
