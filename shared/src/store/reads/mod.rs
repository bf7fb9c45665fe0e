//! The campaign-record methods of each backend, kept apart from the write paths
//! so each backend file stays readable. The `Store` impls delegate here.

pub(crate) mod postgres;
pub(crate) mod sqlite;

use super::{StoreResult, Suppression, SuppressionKey};

pub(super) fn suppression_from(
    kind: &str,
    value: String,
    reason: String,
    source: String,
    created_at_ms: i64,
) -> StoreResult<Suppression> {
    Ok(Suppression {
        key: SuppressionKey::from_parts(kind, value)?,
        reason,
        source,
        created_at_ms,
    })
}
