//! Errors of the safety crate. A screen error never escapes `verdict::evaluate`
//! as an error: it becomes a blocked assessment that names it (fail-closed).
//! The stage then either publishes that block or, under
//! `safety.on_screen_error: hold`, publishes nothing and hands the error to the
//! runtime as a dependency outage (`StageError::Unavailable`) or permanent,
//! as `ScreenError::kind` says.

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

/// Why a screen could not produce a usable report. None ever approves;
/// `kind` says whether trying again later can help.
///
/// Messages never carry the screened text or a credential: they reach logs,
/// dead letters and the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScreenError {
    /// The backend could not answer now (unreachable, refused, reset, HTTP 408,
    /// 429 or 5xx). Transient.
    #[error("backend: {0}")]
    Backend(String),
    /// The backend refused the request and will refuse it again (HTTP 400, 401,
    /// 403, 404...): a wrong key, endpoint, API version or blocklist. Permanent.
    #[error("backend rejected the request: {0}")]
    Rejected(String),
    /// The backend answered with something outside the contract (a category
    /// missing, a severity outside 0-7, not JSON). Permanent.
    #[error("malformed verdict: {0}")]
    Malformed(String),
    /// No answer within `safety.timeout_ms`. Transient.
    #[error("timed out after {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The backend panicked; caught so the stage can still block and go on.
    /// Permanent: a bug does not go away on retry.
    #[error("backend panicked")]
    Panicked,
}

/// Whether a screen error may go away on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScreenErrorKind {
    /// An outage or overload: the same request may succeed later.
    Transient,
    /// Misconfiguration, a broken contract or a bug: retrying cannot help
    /// until someone fixes it (then `cpo dlq replay`).
    Permanent,
}

impl ScreenErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ScreenErrorKind::Transient => "transient",
            ScreenErrorKind::Permanent => "permanent",
        }
    }
}

impl ScreenError {
    pub fn kind(&self) -> ScreenErrorKind {
        match self {
            ScreenError::Backend(_) | ScreenError::Timeout(_) => ScreenErrorKind::Transient,
            ScreenError::Rejected(_) | ScreenError::Malformed(_) | ScreenError::Panicked => {
                ScreenErrorKind::Permanent
            }
        }
    }

    pub fn is_transient(&self) -> bool {
        self.kind() == ScreenErrorKind::Transient
    }
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
