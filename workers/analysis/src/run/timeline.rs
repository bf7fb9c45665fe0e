//! Cumulative lift day by day, with the fixed-horizon interval next to the
//! always-valid confidence sequence: the chart shows why peeking at the former
//! is unsafe and the latter is not.

use super::tally::NEVER;
use crate::analysis::{Timeline, TimelinePoint};
use crate::compare::AnalysisOptions;
use crate::events::time::format_date;
use crate::stats::Counts;
use crate::stats::lift::{relative_lift, relative_moments};
use crate::stats::sequential::confidence_sequence;

/// Beyond this many days the tail is folded into the last day, to keep the
/// chart readable and the document small.
const MAX_DAYS: usize = 180;
const DAY: i64 = 86_400;

/// Builds the timeline of `metric_name` from first-success times per recipient.
///
/// `arm_of[i]` is recipient i's position in `arm_names` (control at 0), and
/// `users[a]` the recipients of arm a; every day's rate keeps all recipients in
/// the denominator (intention to treat), as the final analysis does.
pub fn build(
    metric_name: &str,
    first_time: &[i64],
    arm_of: &[usize],
    arm_names: &[String],
    users: &[u64],
    options: &AnalysisOptions,
) -> Option<Timeline> {
    let start = first_time.iter().copied().filter(|&t| t != NEVER).min()?;
    let start = start.div_euclid(DAY) * DAY;
    let last = first_time.iter().copied().filter(|&t| t != NEVER).max()?;
    let days = (((last - start) / DAY) as usize + 1).min(MAX_DAYS);

    let mut new_per_day = vec![vec![0u64; days]; arm_names.len()];
    for (&time, &arm) in first_time.iter().zip(arm_of) {
        if time != NEVER {
            let day = (((time - start) / DAY) as usize).min(days - 1);
            new_per_day[arm][day] += 1;
        }
    }
    let cumulative: Vec<Vec<u64>> = new_per_day
        .iter()
        .map(|daily| {
            daily
                .iter()
                .scan(0u64, |total, &n| {
                    *total += n;
                    Some(*total)
                })
                .collect()
        })
        .collect();

    let mut points = Vec::new();
    for (day, &control_successes) in cumulative[0].iter().enumerate() {
        let control = Counts::new(users[0], control_successes);
        for arm in 1..arm_names.len() {
            if users[arm] == 0 || users[0] == 0 {
                continue;
            }
            let treatment = Counts::new(users[arm], cumulative[arm][day]);
            let fixed = relative_lift(treatment, control, options.alpha).ok();
            let seq_rel_ci = relative_moments(treatment, control)
                .ok()
                .and_then(|(e, v)| {
                    confidence_sequence(
                        e,
                        v,
                        users[0] + users[arm],
                        options.alpha,
                        options.sequential_tuning,
                    )
                    .ok()
                });
            points.push(TimelinePoint {
                day: day as u32 + 1,
                date: format_date(start + day as i64 * DAY),
                arm: arm_names[arm].clone(),
                control_successes: control.successes,
                successes: treatment.successes,
                rel_lift: (control.successes > 0).then(|| treatment.rate() / control.rate() - 1.0),
                rel_ci: fixed.map(|f| f.effect.ci),
                seq_rel_ci,
            });
        }
    }
    Some(Timeline {
        metric: metric_name.to_string(),
        points,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_counts_grow_day_by_day() {
        let day0 = 1_735_689_600; // 2025-01-01
        let first = [day0 + 10, NEVER, day0 + DAY + 5, day0 + 2 * DAY, day0 + 3];
        let arm_of = [0, 0, 1, 1, 1];
        let names = vec!["control".to_string(), "friendly".to_string()];
        let timeline = build(
            "opened",
            &first,
            &arm_of,
            &names,
            &[2, 3],
            &AnalysisOptions::default(),
        )
        .unwrap();
        let successes: Vec<u64> = timeline.points.iter().map(|p| p.successes).collect();
        assert_eq!(successes, [1, 2, 3]);
        assert_eq!(timeline.points[0].date, "2025-01-01");
        assert!(timeline.points.iter().all(|p| p.control_successes == 1));
    }

    #[test]
    fn no_events_means_no_timeline() {
        let names = vec!["control".to_string(), "b".to_string()];
        assert!(
            build(
                "opened",
                &[NEVER, NEVER],
                &[0, 1],
                &names,
                &[1, 1],
                &AnalysisOptions::default()
            )
            .is_none()
        );
    }
}
