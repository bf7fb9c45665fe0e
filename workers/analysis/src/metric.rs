//! The binary metrics of a campaign and the events that define them.

use std::fmt;

use crate::events::EventType;

/// A customer-level binary outcome: did the customer ever do this?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, clap::ValueEnum)]
pub enum Metric {
    #[default]
    Opened,
    Clicked,
    Converted,
}

impl Metric {
    pub const ALL: [Metric; 3] = [Metric::Opened, Metric::Clicked, Metric::Converted];

    /// The name used in `analysis.json`.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Opened => "opened",
            Metric::Clicked => "clicked",
            Metric::Converted => "converted",
        }
    }

    /// The plural noun used in sentences ("beats control on opens").
    pub fn label(self) -> &'static str {
        match self {
            Metric::Opened => "opens",
            Metric::Clicked => "clicks",
            Metric::Converted => "conversions",
        }
    }

    pub fn event(self) -> EventType {
        match self {
            Metric::Opened => EventType::Open,
            Metric::Clicked => EventType::Click,
            Metric::Converted => EventType::Conversion,
        }
    }

    /// The customer file column used as CUPED covariate: past opens predict opens,
    /// past clicks predict clicks and the conversions that follow them.
    pub fn covariate(self) -> &'static str {
        match self {
            Metric::Opened => "historical_open_rate",
            Metric::Clicked | Metric::Converted => "historical_click_rate",
        }
    }

    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The sentence noun for a metric name; unknown names (summary mode) are used as is.
pub fn label_of(metric_name: &str) -> &str {
    match Metric::from_name(metric_name) {
        Some(metric) => metric.label(),
        None => metric_name,
    }
}
