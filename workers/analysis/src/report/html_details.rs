//! The supporting sections of the HTML report: power, CUPED, the next wave's
//! split, data quality and method.

use std::fmt::Write;

use super::capitalized;
use super::format::{
    count, escape, lift_interval, p_value, percent, points, points_interval, signed_percent,
};
use crate::analysis::Analysis;
use crate::metric::label_of;

pub(super) fn power(out: &mut String, analysis: &Analysis) {
    let _ = write!(
        out,
        "<section><h2>Power</h2><table><thead><tr><th>Metric</th><th>Control rate</th><th>Customers per arm</th><th>Minimum detectable lift ({:.0}% power)</th><th>Needed per arm for target</th></tr></thead><tbody>",
        analysis.power * 100.0
    );
    for m in &analysis.metrics {
        let needed = match (m.target_relative_lift, m.required_users_per_arm) {
            (Some(t), Some(n)) => format!("{} for {}", count(n), signed_percent(t)),
            (Some(_), None) => "cannot be sized".into(),
            _ => "no target given".into(),
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&capitalized(label_of(&m.metric))),
            percent(m.control.rate),
            count(m.control.users),
            super::detectable_lift(m),
            needed
        );
    }
    out.push_str("</tbody></table></section>");
}

pub(super) fn cuped(out: &mut String, analysis: &Analysis) {
    let Some(status) = &analysis.cuped else {
        return;
    };
    let _ = write!(
        out,
        "<section><h2>Variance reduction (CUPED)</h2><p class=\"lede\">{}</p>",
        escape(&status.note)
    );
    if status.applied {
        out.push_str("<table><thead><tr><th>Metric</th><th>Arm</th><th>Difference, points (plain)</th><th>Difference, points (CUPED)</th><th>CUPED p</th><th>Variance removed</th></tr></thead><tbody>");
        for m in &analysis.metrics {
            for c in &m.comparisons {
                let Some(cu) = &c.cuped else { continue };
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{} <small>{}</small></td><td>{} <small>{}</small></td><td>{}</td><td>{:.0}%</td></tr>",
                    escape(&capitalized(label_of(&m.metric))),
                    escape(&c.arm),
                    points(c.abs_diff),
                    points_interval(c.abs_ci),
                    points(cu.abs_diff),
                    points_interval(cu.abs_ci),
                    p_value(cu.abs_p_value),
                    cu.variance_reduction * 100.0
                );
            }
        }
        out.push_str("</tbody></table><p class=\"small\">CUPED p-values are shown for information; significance above uses the unadjusted test.</p>");
    }
    out.push_str("</section>");
}

pub(super) fn next_wave(out: &mut String, analysis: &Analysis) {
    let Some(wave) = &analysis.next_wave_weights else {
        return;
    };
    let _ = write!(
        out,
        "<section><h2>Next wave</h2><p class=\"lede\">Thompson-sampling split on {}: each arm's probability of being best (seed {}, {} draws). A proposal for the next wave, not a conclusion.</p><div class=\"bars\">",
        escape(label_of(&wave.metric)),
        wave.seed,
        count(u64::from(wave.draws))
    );
    for (arm, weight) in &wave.weights {
        let _ = write!(
            out,
            "<div class=\"bar\"><span class=\"name\">{}</span><span class=\"track\"><span class=\"fill\" style=\"width:{:.1}%\"></span></span><span class=\"value\">{:.1}%</span></div>",
            escape(arm),
            weight * 100.0,
            weight * 100.0
        );
    }
    out.push_str("</div></section>");
}

pub(super) fn data_section(out: &mut String, analysis: &Analysis) {
    if analysis.events.is_none() && analysis.notes.is_empty() && analysis.simulation.is_none() {
        return;
    }
    out.push_str("<section><h2>Data</h2><ul class=\"notes\">");
    if let Some(events) = &analysis.events {
        let by_type: Vec<String> = events
            .by_type
            .iter()
            .map(|(k, v)| format!("{k} {}", count(*v as u64)))
            .collect();
        let _ = write!(
            out,
            "<li>{} event lines read, {} used ({}); {} simulated, {} malformed, {} not in the outbox.</li>",
            count(events.lines as u64),
            count(events.used as u64),
            by_type.join(", "),
            count(events.simulated as u64),
            count(events.malformed as u64),
            count(events.unmatched as u64)
        );
        for example in &events.malformed_examples {
            let _ = write!(out, "<li class=\"mono\">{}</li>", escape(example));
        }
    }
    for note in &analysis.notes {
        let _ = write!(out, "<li>{}</li>", escape(note));
    }
    out.push_str("</ul>");
    if let Some(lifts) = analysis
        .simulation
        .as_ref()
        .and_then(|s| s.get("true_relative_lift"))
        .and_then(|v| v.as_object())
    {
        out.push_str("<h3>Simulated ground truth</h3><p class=\"small\">The effects the simulator injected, beside what the analysis estimated. About one interval in twenty misses the truth by design; a significant result where the true lift is zero is a false positive.</p><table><thead><tr><th>Metric</th><th>Arm</th><th>True relative lift</th><th>Estimated (CI)</th><th>Interval covers truth</th></tr></thead><tbody>");
        for (metric, arms) in lifts {
            for (arm, lift) in arms.as_object().into_iter().flatten() {
                let truth = lift.as_f64();
                let estimate = analysis
                    .metrics
                    .iter()
                    .filter(|m| m.metric == *metric)
                    .flat_map(|m| &m.comparisons)
                    .find(|c| c.arm == *arm);
                let estimated = estimate.map_or("n/a".into(), |c| {
                    format!(
                        "{} <small>{}</small>",
                        c.rel_lift.map_or("n/a".into(), signed_percent),
                        lift_interval(c.rel_ci)
                    )
                });
                let covered = match (truth, estimate.and_then(|c| c.rel_ci)) {
                    (Some(t), Some([lo, hi])) if lo <= t && t <= hi => "yes",
                    (Some(_), Some(_)) => "<strong>no</strong>",
                    _ => "n/a",
                };
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{estimated}</td><td>{covered}</td></tr>",
                    escape(metric),
                    escape(arm),
                    truth.map_or("n/a".into(), signed_percent)
                );
            }
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");
}

pub(super) fn method(out: &mut String, analysis: &Analysis) {
    let _ = write!(
        out,
        "<footer><h2>Method</h2><p>Each treatment arm is compared with control: pooled two-proportion z-test; Wald and Newcombe intervals of the difference; Wilson intervals of rates; relative lift with a delta-method interval; chance to beat control under a flat prior. A result is called significant only when its {}-adjusted p-value is below {}. Intervals are per comparison and not adjusted. The always-valid interval is an asymptotic confidence sequence (Waudby-Smith et al.). Customers stay in their assigned arm whatever happened to their message (intention to treat).</p></footer>",
        analysis.correction.label(),
        analysis.alpha
    );
}
