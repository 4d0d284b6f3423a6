//! Batches of outbound calls (`outbound_batches`, migration 0011): one row per
//! batch; its calls are ordinary `outbound_calls` rows carrying `batch_id`.

use sqlx::Row as _;
use switchboard_actors::UserId;

use super::{db_text, Store, StoreError};

/// A batch as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRecord {
    /// 32 lowercase hex digits.
    pub id: String,
    pub user_id: UserId,
    /// The objective template.
    pub objective: String,
    /// `"HH:MM"`, local to each callee.
    pub window_start: String,
    pub window_end: String,
    /// The batch's calls in progress at once, at most (the dispatcher's cap).
    pub max_concurrency: u32,
    pub created_at: i64,
}

impl Store {
    #[tracing::instrument(skip_all, fields(batch_id = %batch.id))]
    pub async fn create_batch(&self, batch: &BatchRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO outbound_batches \
             (id, user_id, objective, window_start, window_end, max_concurrency, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(batch.id.as_str())
        .bind(batch.user_id.as_str())
        .bind(db_text(&batch.objective))
        .bind(batch.window_start.as_str())
        .bind(batch.window_end.as_str())
        .bind(i64::from(batch.max_concurrency))
        .bind(batch.created_at)
        .execute(self.pool())
        .await
        .map_err(|e| StoreError::unique(e, || format!("batch {}", batch.id)))?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(batch_id = %id))]
    pub async fn get_batch(&self, id: &str) -> Result<Option<BatchRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, user_id, objective, window_start, window_end, max_concurrency, \
             created_at FROM outbound_batches WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let user_id: String = row.try_get("user_id")?;
        let max_concurrency: i64 = row.try_get("max_concurrency")?;
        Ok(Some(BatchRecord {
            id: row.try_get("id")?,
            user_id: UserId::parse(&user_id).map_err(|_| {
                StoreError::Corrupt(format!("outbound_batches.user_id {user_id:?}"))
            })?,
            objective: row.try_get("objective")?,
            window_start: row.try_get("window_start")?,
            window_end: row.try_get("window_end")?,
            max_concurrency: u32::try_from(max_concurrency).unwrap_or(u32::MAX),
            created_at: row.try_get("created_at")?,
        }))
    }

    /// How many of the batch's calls are in each status.
    #[tracing::instrument(skip_all, fields(batch_id = %id))]
    pub async fn batch_counts(&self, id: &str) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM outbound_calls WHERE batch_id = $1 \
             GROUP BY status ORDER BY status",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("status")?, row.try_get("n")?)))
            .collect()
    }
}
