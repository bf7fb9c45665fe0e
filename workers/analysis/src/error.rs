//! Errors of the analysis crate. Callers match on these; the CLI wraps them in anyhow.

use std::path::PathBuf;

/// Everything that can go wrong while analysing, ingesting or simulating.
///
/// Statistics errors describe input that has no meaningful answer (an empty arm, a
/// relative lift against a zero rate); they are returned instead of NaN.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error("arm `{arm}` has no users: rates and tests are undefined")]
    EmptyArm { arm: String },
    #[error("arm `{arm}` has {successes} successes but only {users} users")]
    SuccessesExceedUsers {
        arm: String,
        successes: u64,
        users: u64,
    },
    #[error("an experiment needs a control arm and at least one treatment, got {0} arm(s)")]
    TooFewArms(usize),
    #[error("alpha must lie strictly between 0 and 1, got {0}")]
    InvalidAlpha(f64),
    #[error("power must lie strictly between 0 and 1, got {0}")]
    InvalidPower(f64),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("expected {expected} weights (one per arm), got {got}")]
    WeightCount { expected: usize, got: usize },
    #[error("arm weights must be finite and positive, got {0}")]
    InvalidWeight(f64),
    #[error("the control rate is zero: a relative lift is undefined")]
    ZeroControlRate,
    #[error(
        "an arm's rate is 0 or 1, so the delta-method variance of the relative lift degenerates"
    )]
    ZeroVariance,
    #[error(
        "a relative lift of {lift} on a control rate of {control_rate} gives a rate outside (0, 1)"
    )]
    LiftOutOfRange { lift: f64, control_rate: f64 },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path} line {line}: {message}")]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{0}")]
    Refused(String),
}

impl AnalysisError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        AnalysisError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn parse(path: &std::path::Path, message: impl Into<String>) -> Self {
        AnalysisError::Parse {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, AnalysisError>;
