//! Reports: `analysis.json`, `report.md` and a self-contained `report.html`.
//! Both human reports lead with the verdict and carry the SIMULATED banner and
//! the sample-ratio warning whenever they apply.

pub mod format;
pub mod html;
mod html_details;
pub mod markdown;
pub mod svg;
pub mod verdict;

use std::path::{Path, PathBuf};

use crate::analysis::{Analysis, Source};
use crate::compare::{Comparison, MetricAnalysis};
use crate::error::{AnalysisError, Result};
use crate::summary::SummaryJson;
use svg::Tone;

/// Where the reports were written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportPaths {
    pub json: PathBuf,
    pub markdown: PathBuf,
    pub html: PathBuf,
}

/// The colour of a comparison: only significant results get a direction.
pub(crate) fn tone(comparison: &Comparison) -> Tone {
    match (comparison.significant, comparison.abs_diff > 0.0) {
        (true, true) => Tone::Better,
        (true, false) => Tone::Worse,
        (false, _) => Tone::Neutral,
    }
}

/// "opens" -> "Opens".
pub(crate) fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The minimum detectable lift for tables: a percentage, or why there is none.
pub(crate) fn detectable_lift(metric: &MetricAnalysis) -> String {
    match metric.minimum_detectable_lift {
        Some(lift) => format::signed_percent(lift),
        None if metric.control.successes == 0 => "unknown (control has no successes)".into(),
        None => "none at this size".into(),
    }
}

/// A metric's notes, then its comparisons' notes with the arms that share each
/// one listed together ("friendly, urgent: ..."), so five arms with the same
/// caveat read as one line.
pub(crate) fn grouped_notes(metric: &MetricAnalysis) -> Vec<String> {
    let mut shared: Vec<(&str, Vec<&str>)> = Vec::new();
    for comparison in &metric.comparisons {
        for note in &comparison.notes {
            match shared.iter_mut().find(|(text, _)| text == note) {
                Some((_, arms)) => arms.push(&comparison.arm),
                None => shared.push((note, vec![&comparison.arm])),
            }
        }
    }
    metric
        .notes
        .iter()
        .cloned()
        .chain(
            shared
                .into_iter()
                .map(|(note, arms)| format!("{}: {note}", arms.join(", "))),
        )
        .collect()
}

/// The JSON document of an analysis: summary mode flattens its single metric to
/// the top level, run mode writes the whole structure.
pub fn analysis_json(analysis: &Analysis) -> Result<String> {
    let text = match (analysis.source, SummaryJson::from_analysis(analysis)) {
        (Source::Summary, Some(summary)) => serde_json::to_string_pretty(&summary),
        _ => serde_json::to_string_pretty(analysis),
    };
    text.map_err(|e| AnalysisError::Refused(format!("cannot serialize the analysis: {e}")))
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| AnalysisError::io(path, e))
}

/// Writes `analysis.json`, `report.md` and `report.html` into `out_dir`.
pub fn write_reports(analysis: &Analysis, out_dir: &Path) -> Result<ReportPaths> {
    std::fs::create_dir_all(out_dir).map_err(|e| AnalysisError::io(out_dir, e))?;
    let paths = ReportPaths {
        json: out_dir.join("analysis.json"),
        markdown: out_dir.join("report.md"),
        html: out_dir.join("report.html"),
    };
    write(&paths.json, &analysis_json(analysis)?)?;
    write(&paths.markdown, &markdown::render(analysis))?;
    write(&paths.html, &html::render(analysis))?;
    Ok(paths)
}
