//! How store failures of the events stage map onto the runtime's outcomes.

use cpo_shared::StageError;
use cpo_shared::store::StoreError;

/// A store call of the events stage failed.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// The store is down, busy or timed out: the events wait for it.
    #[error("store unavailable ({op}): {reason}; events paused")]
    Unavailable { op: &'static str, reason: String },
    /// The store refused the data itself (a value it cannot hold): retrying
    /// the same event cannot help.
    #[error("store refused the event ({op}): {reason}")]
    Refused { op: &'static str, reason: String },
}

impl EventsError {
    pub fn from_store(op: &'static str, error: StoreError) -> Self {
        match error {
            StoreError::Transient(reason) => EventsError::Unavailable { op, reason },
            StoreError::Permanent(reason) => EventsError::Refused { op, reason },
        }
    }

    pub fn op(&self) -> &'static str {
        match self {
            EventsError::Unavailable { op, .. } | EventsError::Refused { op, .. } => op,
        }
    }
}

impl From<EventsError> for StageError {
    fn from(error: EventsError) -> Self {
        match error {
            // Paused, not retried: an outage must not use up the attempts
            // (and so dead-letter events) however long it lasts.
            EventsError::Unavailable { .. } => StageError::Unavailable(error.to_string()),
            EventsError::Refused { .. } => StageError::Permanent(error.to_string()),
        }
    }
}
