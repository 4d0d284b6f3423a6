//! What the velocity rules count (issue 12): a user's recent accepted outbound
//! requests, dialed or not, read by `(user_id, created_at)` (the index
//! `outbound_calls_by_user` of migration 0009).

use sqlx::Row as _;
use switchboard_actors::UserId;

use super::{Store, StoreError};

/// One accepted request: the number called and when it was accepted (ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentCall {
    pub to: String,
    pub created_at: i64,
}

impl Store {
    /// The calls `user` placed since `since_ms` (inclusive), any status.
    #[tracing::instrument(skip_all, fields(user_id = %user))]
    pub async fn recent_outbound(
        &self,
        user: &UserId,
        since_ms: i64,
    ) -> Result<Vec<RecentCall>, StoreError> {
        let rows = sqlx::query(
            "SELECT to_e164, created_at FROM outbound_calls \
             WHERE user_id = $1 AND created_at >= $2",
        )
        .bind(user.as_str())
        .bind(since_ms)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(RecentCall {
                    to: row.try_get("to_e164")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }
}
