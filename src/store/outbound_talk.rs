//! What the outbound conversation writes on its call's row: the answering-machine
//! verdict (`answered_by`). The status is never changed here: that is
//! `Store::advance_outbound`'s, driven by Twilio's status callbacks.

use super::outbound::OutboundId;
use super::{Store, StoreError};

impl Store {
    /// Notes AMD's verdict on the call's current attempt, once: `true` when it
    /// was written now; `false` for a replay, a verdict already noted, a stale
    /// attempt or an unknown call.
    #[tracing::instrument(skip_all, fields(outbound_id = %id))]
    pub async fn note_answered_by(
        &self,
        id: &OutboundId,
        attempt_id: &str,
        answered_by: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let written = sqlx::query(
            "UPDATE outbound_calls SET answered_by = $1, updated_at = $2 \
             WHERE id = $3 AND attempt_id = $4 AND answered_by IS NULL",
        )
        .bind(answered_by)
        .bind(now_ms)
        .bind(id.as_str())
        .bind(attempt_id)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(written > 0)
    }
}
