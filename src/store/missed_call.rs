//! The missed-call texts (migration 0021): one row per caller, number called and
//! UTC day. [`Store::claim_missed_call_text`] is the once-a-day rule, made atomic
//! by the table's key (an insert that does nothing when the row exists, never a
//! read-then-write); the others record what became of the text.

use sqlx::Row as _;
use switchboard_actors::journal::now_ms;
use switchboard_actors::CallId;

use super::{db_text, Store, StoreError};
use crate::domain::phone::PhoneNumber;

/// One day's text from `number` to `caller`, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissedCallText {
    pub caller: String,
    pub number: String,
    /// UTC, `YYYY-MM-DD`.
    pub day: String,
    /// `sending`, then Twilio's status.
    pub status: String,
    pub message_sid: Option<String>,
    pub error: Option<String>,
}

impl Store {
    /// Claims the text of `day` (UTC, `YYYY-MM-DD`) from `number` to `caller` for
    /// call `call_id`: `true` if this call took it, `false` if that caller was
    /// already texted from that number that day (by any call, on any node).
    #[tracing::instrument(skip_all, fields(call_id = %call_id, day = %day))]
    pub async fn claim_missed_call_text(
        &self,
        caller: &PhoneNumber,
        number: &PhoneNumber,
        day: &str,
        call_id: &CallId,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO missed_call_texts \
                 (caller, number, day, call_id, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'sending', $5, $5) ON CONFLICT DO NOTHING",
        )
        .bind(caller.as_str())
        .bind(number.as_str())
        .bind(day)
        .bind(call_id.as_str())
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    /// What became of the text call `call_id` claimed: Twilio's `status` (and
    /// the Message sid once known), or the failure. A status callback for a text
    /// that failed meanwhile, or a stale one, still updates: Twilio's latest word
    /// is kept.
    #[tracing::instrument(skip_all, fields(call_id = %call_id, status = %status))]
    pub async fn record_missed_call_text(
        &self,
        call_id: &CallId,
        status: &str,
        message_sid: Option<&str>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE missed_call_texts SET status = $2, \
                 message_sid = COALESCE($3, message_sid), \
                 error = COALESCE($4, error), updated_at = $5 \
             WHERE call_id = $1",
        )
        .bind(call_id.as_str())
        .bind(db_text(status))
        .bind(message_sid.map(db_text))
        .bind(error.map(db_text))
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The text call `call_id` claimed, if it claimed one.
    #[tracing::instrument(skip_all, fields(call_id = %call_id))]
    pub async fn missed_call_text_of(
        &self,
        call_id: &CallId,
    ) -> Result<Option<MissedCallText>, StoreError> {
        let row = sqlx::query(
            "SELECT caller, number, day, status, message_sid, error FROM missed_call_texts \
             WHERE call_id = $1",
        )
        .bind(call_id.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| {
            Ok(MissedCallText {
                caller: row.try_get("caller")?,
                number: row.try_get("number")?,
                day: row.try_get("day")?,
                status: row.try_get("status")?,
                message_sid: row.try_get("message_sid")?,
                error: row.try_get("error")?,
            })
        })
        .transpose()
    }
}
