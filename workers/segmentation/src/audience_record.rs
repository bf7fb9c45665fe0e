//! The audience on record: with `with_record`, segmentation writes what it read
//! (the customer total, and every customer it excluded with the reason) to the
//! store, so the store accounts for every customer of a campaign, with the
//! assignments and exclusions experimentation adds. Rows of an audience file
//! are keyed `line:N` (a customer id may repeat over rows, each row counts).

use cpo_shared::StageError;
use cpo_shared::model::Exclusion;
use cpo_shared::store::{ExclusionRecord, Store, StoreError};

fn stage_error(error: StoreError) -> StageError {
    match error {
        // Like a Redis outage: the campaign waits without using up attempts.
        StoreError::Transient(m) => StageError::Unavailable(format!("store: {m}")),
        StoreError::Permanent(m) => StageError::Permanent(format!("store refused: {m}")),
    }
}

/// The store key of one excluded row: its line, else its customer id, else its position.
fn key(exclusion: &Exclusion, index: usize) -> String {
    match (exclusion.line, &exclusion.customer_id) {
        (Some(line), _) => format!("line:{line}"),
        (None, Some(id)) => id.clone(),
        (None, None) => format!("row:{index}"),
    }
}

/// Write the audience and its exclusions; a replay writes nothing new.
pub async fn write_audience(
    store: &dyn Store,
    campaign_id: &str,
    customers_total: u64,
    batches: u64,
    exclusions: &[Exclusion],
    now_ms: i64,
) -> Result<(), StageError> {
    let rows: Vec<ExclusionRecord> = exclusions
        .iter()
        .enumerate()
        .map(|(i, e)| ExclusionRecord {
            campaign_id: campaign_id.to_string(),
            customer_id: key(e, i),
            reason: serde_json::to_value(e.reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "invalid".into()),
            // The position only ("line 4"): a rejected row's detail may quote its
            // values; `exclusions.jsonl` and the ledger keep the whole reason.
            detail: e
                .detail
                .split_once(": ")
                .map_or_else(|| e.detail.clone(), |(at, _)| at.to_string()),
        })
        .collect();
    if !rows.is_empty() {
        store.record_exclusions(&rows).await.map_err(stage_error)?;
    }
    store
        .record_audience(campaign_id, customers_total, batches, now_ms)
        .await
        .map_err(stage_error)
}
