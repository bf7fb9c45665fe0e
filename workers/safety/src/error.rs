//! Errors of the safety crate. A screen error never escapes as an error of the
//! stage: `verdict::evaluate` turns it into a blocked verdict (fail-closed).

use std::time::Duration;

/// Building the screen or the stage failed; raised at startup, never per message.
#[derive(Debug, thiserror::Error)]
pub enum SafetyError {
    /// A config value is out of range; `key` is the full dotted key.
    #[error("config key `{key}`: {message}")]
    Config { key: String, message: String },
    /// A built-in lexicon pattern does not parse (a bug caught by the unit tests).
    #[error("lexicon pattern `{pattern}`: {message}")]
    Pattern { pattern: String, message: String },
    #[error("built-in regex: {0}")]
    Regex(#[from] regex::Error),
}

/// Why a screen could not produce a usable report. Every variant blocks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScreenError {
    /// The backend failed (unreachable, refused, bad response).
    #[error("backend: {0}")]
    Backend(String),
    /// The backend answered with something outside the contract (severity > 7).
    #[error("malformed verdict: {0}")]
    Malformed(String),
    #[error("timed out after {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The backend panicked; caught so the stage can still block and go on.
    #[error("backend panicked")]
    Panicked,
}

/// `screen_jsonl` could not read its input or write its output. Bad records
/// are not errors: they become blocked verdicts naming their line.
#[derive(Debug, thiserror::Error)]
pub enum ScreenIoError {
    #[error("read input: {0}")]
    Read(std::io::Error),
    #[error("write output: {0}")]
    Write(std::io::Error),
    #[error("encode verdict: {0}")]
    Encode(serde_json::Error),
}
