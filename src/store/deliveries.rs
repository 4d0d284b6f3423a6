//! Callback deliveries: the outbox of events a user's `callback_url` receives.
//! A row is written once ([`enqueue_delivery`], on the caller's connection or
//! transaction), claimed by a delivery worker under a lease
//! ([`Store::claim_due_deliveries`]), then acknowledged, rescheduled or given up
//! ([`Store::finish_delivery`]) — only by the claim that holds it. What goes into
//! the body, how it is signed and when it is tried again is decided by
//! `outbound::notify`.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};
use switchboard_actors::UserId;

use super::{db_text, Backend, Store, StoreError};

/// An event to deliver, as enqueued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub event_id: String,
    pub user_id: UserId,
    pub url: String,
    /// The JSON body: exactly the bytes signed and posted, on every attempt.
    pub body: String,
    /// Milliseconds since the epoch: enqueued then, due at once.
    pub created_at: i64,
    /// Deliveries sharing a key (the events of one call) are claimed one at a
    /// time, oldest first (`created_at`, then `event_id`).
    pub ordering_key: Option<String>,
}

/// A delivery claimed for one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedDelivery {
    pub event_id: String,
    pub user_id: UserId,
    pub url: String,
    pub body: String,
    /// Attempts started, this one included.
    pub attempts: u32,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Acknowledged (2xx): never posted again.
    Delivered,
    /// Failed; due again at this instant (milliseconds).
    Retry { error: String, next_attempt_at: i64 },
    /// Failed for the last time.
    GiveUp { error: String },
}

/// A delivery as stored (for operators and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub event_id: String,
    pub user_id: String,
    pub url: String,
    pub body: String,
    pub attempts: u32,
    pub next_attempt_at: i64,
    pub delivered_at: Option<i64>,
    pub gave_up_at: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
}

const INSERT_DELIVERY: &str = "INSERT INTO callback_deliveries \
     (event_id, user_id, url, body, attempts, next_attempt_at, created_at, ordering_key) \
     VALUES ($1, $2, $3, $4, 0, $5, $5, $6)";

/// Writes `delivery` on `conn` — a transaction's connection, so the event is
/// recorded together with what it reports, or not at all.
pub async fn enqueue_delivery(
    conn: &mut AnyConnection,
    delivery: &NewDelivery,
) -> Result<(), StoreError> {
    sqlx::query(INSERT_DELIVERY)
        .bind(delivery.event_id.as_str())
        .bind(delivery.user_id.as_str())
        .bind(db_text(&delivery.url))
        .bind(db_text(&delivery.body))
        .bind(delivery.created_at)
        .bind(delivery.ordering_key.as_deref())
        .execute(conn)
        .await
        .map_err(|e| StoreError::unique(e, || format!("callback event {}", delivery.event_id)))?;
    Ok(())
}

impl Store {
    /// Claims up to `limit` deliveries due at `now` (milliseconds) that nobody
    /// holds, until `lease_until`, under `claim`; each claim counts an attempt.
    /// PostgreSQL skips the rows another engine is claiming (`FOR UPDATE SKIP
    /// LOCKED`), and the outer condition is checked again on the locked row;
    /// SQLite takes the write lock first (`BEGIN IMMEDIATE`): two engines never
    /// hold one delivery at once. A delivery with an ordering key is claimed
    /// only when no older one with that key is pending and due or in flight
    /// (held by any engine), so a call's events are posted in order, one at a
    /// time; an older one waiting for its retry does not hold the others back.
    #[tracing::instrument(skip_all)]
    pub async fn claim_due_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        claim: &str,
        limit: usize,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let free = "delivered_at IS NULL AND gave_up_at IS NULL AND next_attempt_at <= $1 \
                    AND (claimed_until IS NULL OR claimed_until <= $1)";
        let older_first = "NOT EXISTS (SELECT 1 FROM callback_deliveries o \
                 WHERE o.ordering_key = d.ordering_key \
                 AND o.delivered_at IS NULL AND o.gave_up_at IS NULL AND o.next_attempt_at <= $1 \
                 AND (o.created_at < d.created_at \
                      OR (o.created_at = d.created_at AND o.event_id < d.event_id)))";
        let sql = format!(
            "UPDATE callback_deliveries \
             SET claimed_until = $2, claim = $3, attempts = attempts + 1 \
             WHERE {free} AND event_id IN (\
                 SELECT d.event_id FROM callback_deliveries d WHERE {free} AND {older_first} \
                 ORDER BY d.next_attempt_at, d.created_at, d.event_id LIMIT $4{lock}) \
             RETURNING event_id, user_id, url, body, attempts"
        );
        // Most polls find nothing due: a plain read says so without taking a
        // write transaction (on SQLite, the database's one write lock).
        let due = format!("SELECT 1 FROM callback_deliveries WHERE {free} LIMIT 1");
        let any_due = sqlx::query(&due)
            .bind(now)
            .fetch_optional(self.pool())
            .await?;
        if any_due.is_none() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let rows = sqlx::query(&sql)
            .bind(now)
            .bind(lease_until)
            .bind(claim)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.iter().map(claimed_from_row).collect()
    }

    /// Records how the attempt under `claim` ended, at `now` (milliseconds), and
    /// releases the claim. `false` when the claim was lost meanwhile (its lease
    /// ran out and another engine took the delivery): nothing is changed.
    #[tracing::instrument(skip_all, fields(event_id = %event_id))]
    pub async fn finish_delivery(
        &self,
        event_id: &str,
        claim: &str,
        now: i64,
        outcome: &DeliveryOutcome,
    ) -> Result<bool, StoreError> {
        let (delivered_at, gave_up_at, next_attempt_at, error) = match outcome {
            DeliveryOutcome::Delivered => (Some(now), None, None, None),
            DeliveryOutcome::Retry {
                error,
                next_attempt_at,
            } => (None, None, Some(*next_attempt_at), Some(db_text(error))),
            DeliveryOutcome::GiveUp { error } => (None, Some(now), None, Some(db_text(error))),
        };
        let done = sqlx::query(
            "UPDATE callback_deliveries \
             SET claimed_until = NULL, claim = NULL, delivered_at = $3, gave_up_at = $4, \
                 next_attempt_at = COALESCE($5, next_attempt_at), \
                 last_error = COALESCE($6, last_error) \
             WHERE event_id = $1 AND claim = $2",
        )
        .bind(event_id)
        .bind(claim)
        .bind(delivered_at)
        .bind(gave_up_at)
        .bind(next_attempt_at)
        .bind(error)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all, fields(event_id = %event_id))]
    pub async fn get_delivery(&self, event_id: &str) -> Result<Option<DeliveryRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT event_id, user_id, url, body, attempts, next_attempt_at, delivered_at, \
                    gave_up_at, last_error, created_at \
             FROM callback_deliveries WHERE event_id = $1",
        )
        .bind(event_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(record_from_row).transpose()
    }
}

fn attempts_from(row: &AnyRow) -> Result<u32, StoreError> {
    let attempts: i64 = row.try_get("attempts")?;
    u32::try_from(attempts)
        .map_err(|_| StoreError::Corrupt(format!("callback_deliveries.attempts {attempts}")))
}

fn claimed_from_row(row: &AnyRow) -> Result<ClaimedDelivery, StoreError> {
    let user_id: String = row.try_get("user_id")?;
    Ok(ClaimedDelivery {
        user_id: UserId::parse(&user_id).map_err(|e| {
            StoreError::Corrupt(format!("callback_deliveries.user_id {user_id:?}: {e}"))
        })?,
        event_id: row.try_get("event_id")?,
        url: row.try_get("url")?,
        body: row.try_get("body")?,
        attempts: attempts_from(row)?,
    })
}

fn record_from_row(row: &AnyRow) -> Result<DeliveryRecord, StoreError> {
    Ok(DeliveryRecord {
        event_id: row.try_get("event_id")?,
        user_id: row.try_get("user_id")?,
        url: row.try_get("url")?,
        body: row.try_get("body")?,
        attempts: attempts_from(row)?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        delivered_at: row.try_get("delivered_at")?,
        gave_up_at: row.try_get("gave_up_at")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
    })
}
