//! Errors of the experimentation stage and whether a retry can help.

use cpo_shared::StageError;

use crate::arms::PlanError;

#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error("campaign arms: {0}")]
    Plan(#[from] PlanError),
    /// The join store could not be reached; the next attempt may succeed.
    #[error("join store: {0}")]
    Cache(String),
    /// The join store holds something that is not a decision; a retry reads the same.
    #[error("join state is corrupt: {0}")]
    CorruptJoin(String),
    #[error("cannot encode output: {0}")]
    Encode(String),
    /// Two different approved templates carry one variant id, which messages
    /// use to name their template.
    #[error("two different approved templates share the variant id `{0}`")]
    AmbiguousTemplate(String),
    /// The merge-value screen could not be built (its patterns did not compile).
    #[error("merge-value screen: {0}")]
    Screen(String),
    /// The system of record is unreachable or busy: batches wait, as for the cache.
    #[error("store: {0}")]
    Store(String),
    /// The store refused a read or write (a constraint, a failed migration).
    #[error("store refused: {0}")]
    StoreRefused(String),
}

impl From<ExperimentError> for StageError {
    fn from(error: ExperimentError) -> Self {
        match error {
            // The join state lives in the cache: while it is down, batches and
            // decisions wait (without using up attempts) instead of failing.
            ExperimentError::Cache(_) | ExperimentError::Store(_) => {
                StageError::Unavailable(error.to_string())
            }
            ExperimentError::Plan(_)
            | ExperimentError::CorruptJoin(_)
            | ExperimentError::Encode(_)
            | ExperimentError::AmbiguousTemplate(_)
            | ExperimentError::Screen(_)
            | ExperimentError::StoreRefused(_) => StageError::Permanent(error.to_string()),
        }
    }
}
