//! The dispatcher's side of the outbound queue (`outbound::dispatch`): claiming
//! due calls, the attempts and what became of them, the calls whose dial must
//! be reconciled, and start-up recovery.
//!
//! A claim moves a due call (`queued` or `scheduled` with `run_at <= now`) to
//! `dialing` with a fresh attempt id, one compare-and-set `UPDATE` per row, and
//! records the attempt in `outbound_attempts`, all in one transaction. The caps
//! are counted in that same transaction from the database (the calls dialing,
//! in doubt, ringing or in progress), so they hold across every engine sharing
//! it: on SQLite `BEGIN IMMEDIATE` makes claimers take turns; on PostgreSQL a
//! transaction-scoped advisory lock does (the counts must not be read by two
//! claimers at once), and the candidates are read `FOR UPDATE SKIP LOCKED`, so
//! a row another transaction holds (a cancel, a callback) is passed over, not
//! waited for.

use std::collections::HashMap;

use sqlx::Row as _;
use switchboard_actors::Workspace;

use super::outbound::{
    outbound_from_row, Advanced, OutboundCall, OutboundId, OutboundStatus, Transition,
    OUTBOUND_COLUMNS,
};
use super::{Backend, Store, StoreError};

/// The statuses that hold a slot of the caps: a call being dialed, in doubt,
/// ringing or talking.
const ACTIVE: &str = "'dialing', 'dial_unknown', 'ringing', 'in_progress'";

/// The advisory lock claimers take on PostgreSQL (any constant; "sbclaim").
const CLAIM_LOCK: i64 = 0x0073_6263_6c61_696d;

/// How many due calls one claim looks at, at least: enough that calls of users
/// (or batches) at their cap do not hide those behind them.
const MIN_CANDIDATES: u32 = 200;

/// The caps a claim honours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimCaps {
    /// Calls dialing, in doubt, ringing or in progress across the database.
    pub max_concurrent: u32,
    /// …of one user.
    pub max_per_user: u32,
    /// Calls this claim may take at most (the round's size, the node's room).
    pub max_claims: u32,
}

/// What one claim did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claims {
    /// Now `dialing`, each with its fresh `attempt_id`, claimed by this node.
    pub claimed: Vec<OutboundCall>,
    /// The status each of `claimed` had (same order): `queued` or `scheduled`.
    pub claimed_from: Vec<OutboundStatus>,
    /// Batch calls whose window closed before they were dialed: now
    /// `not_dialed_window_closed` (each was `queued` or `scheduled`).
    pub window_closed: Vec<(OutboundStatus, OutboundCall)>,
}

/// What became of an attempt's create request (`outbound_attempts.outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Twilio created the call (its sid is known).
    Created,
    /// Twilio refused it: no call exists.
    Refused,
    /// No answer says what became of it: reconciled before any new attempt.
    Unknown,
    /// Reconciliation proved that no call was created.
    Absent,
    /// Never sent: a gate at dispatch stopped it, or Twilio was not reached.
    NotSent,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Created => "created",
            AttemptOutcome::Refused => "refused",
            AttemptOutcome::Unknown => "unknown",
            AttemptOutcome::Absent => "absent",
            AttemptOutcome::NotSent => "not_sent",
        }
    }
}

/// One row of `outbound_attempts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub attempt_id: String,
    pub outbound_id: OutboundId,
    pub started_at: i64,
    pub call_sid: Option<String>,
    pub outcome: Option<String>,
}

/// What start-up recovery changed: each call with the status it left.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recovered {
    /// Were `dialing`: now `dial_unknown`, to reconcile (never dialed blindly).
    pub in_doubt: Vec<(OutboundStatus, OutboundCall)>,
    /// Were `ringing` or `in_progress`: now `interrupted`.
    pub interrupted: Vec<(OutboundStatus, OutboundCall)>,
}

/// A fresh attempt id: 32 hex digits.
pub fn new_attempt_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl Store {
    /// Claims due calls within `caps` (see the module doc); closes the batch
    /// calls whose window has passed in the same transaction.
    #[tracing::instrument(skip_all)]
    pub async fn claim_due_outbound(
        &self,
        caps: &ClaimCaps,
        now_ms: i64,
    ) -> Result<Claims, StoreError> {
        let postgres = self.backend() == Backend::Postgres;
        let mut tx = self.begin().await?;
        if postgres {
            sqlx::query("SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock($1)) AS l")
                .bind(CLAIM_LOCK)
                .fetch_one(&mut *tx)
                .await?;
        }
        let mut claims = Claims::default();

        let passed = sqlx::query(
            "SELECT id, status FROM outbound_calls \
             WHERE status IN ('queued', 'scheduled') AND window_end_at IS NOT NULL \
             AND window_end_at <= $1",
        )
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await?;
        let close_sql = format!(
            "UPDATE outbound_calls SET status = 'not_dialed_window_closed', updated_at = $1, \
             ended_at = $1 WHERE id = $2 AND status = $3 RETURNING {OUTBOUND_COLUMNS}"
        );
        for row in &passed {
            let id: String = row.try_get("id")?;
            let status: String = row.try_get("status")?;
            let Some(was) = OutboundStatus::parse(&status) else {
                continue;
            };
            let closed = sqlx::query(&close_sql)
                .bind(now_ms)
                .bind(&id)
                .bind(&status)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(row) = closed {
                claims.window_closed.push((was, outbound_from_row(&row)?));
            }
        }

        let active: i64 = sqlx::query(&format!(
            "SELECT COUNT(*) AS n FROM outbound_calls WHERE status IN ({ACTIVE})"
        ))
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        let room = (i64::from(caps.max_concurrent) - active).min(i64::from(caps.max_claims));
        if room <= 0 {
            tx.commit().await?;
            return Ok(claims);
        }

        let window = caps.max_claims.saturating_mul(8).max(MIN_CANDIDATES);
        let lock = if postgres {
            "FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let candidates = sqlx::query(&format!(
            "SELECT id, status, user_id, batch_id, \
             (SELECT b.max_concurrency FROM outbound_batches b \
              WHERE b.id = outbound_calls.batch_id) AS batch_cap \
             FROM outbound_calls \
             WHERE status IN ('queued', 'scheduled') AND run_at <= $1 \
             ORDER BY run_at, created_at, id LIMIT $2 {lock}"
        ))
        .bind(now_ms)
        .bind(i64::from(window))
        .fetch_all(&mut *tx)
        .await?;
        if candidates.is_empty() {
            tx.commit().await?;
            return Ok(claims);
        }

        let mut per_user = counts(&mut tx, "user_id").await?;
        let mut per_batch = counts(&mut tx, "batch_id").await?;
        // The calls to claim, within the caps, oldest first; then one UPDATE
        // (each row its own attempt id, still a compare-and-set on its status)
        // and one INSERT of their attempts.
        let mut chosen: Vec<(String, String, OutboundStatus)> = Vec::new();
        for candidate in &candidates {
            if chosen.len() as i64 >= room {
                break;
            }
            let id: String = candidate.try_get("id")?;
            let status: String = candidate.try_get("status")?;
            let user: String = candidate.try_get("user_id")?;
            let batch: Option<String> = candidate.try_get("batch_id")?;
            let batch_cap: Option<i64> = candidate.try_get("batch_cap")?;
            if per_user.get(&user).copied().unwrap_or(0) >= i64::from(caps.max_per_user) {
                continue;
            }
            if let (Some(batch), Some(cap)) = (&batch, batch_cap) {
                if per_batch.get(batch).copied().unwrap_or(0) >= cap {
                    continue;
                }
            }
            *per_user.entry(user).or_default() += 1;
            if let Some(batch) = batch {
                *per_batch.entry(batch).or_default() += 1;
            }
            let was = OutboundStatus::parse(&status).unwrap_or(OutboundStatus::Queued);
            chosen.push((id, new_attempt_id(), was));
        }
        if chosen.is_empty() {
            tx.commit().await?;
            return Ok(claims);
        }
        // $1 now, $2 node, then (id, attempt) pairs from $3.
        let cases: String = (0..chosen.len())
            .map(|i| format!(" WHEN ${} THEN ${}", 3 + 2 * i, 4 + 2 * i))
            .collect();
        let ids: Vec<String> = (0..chosen.len())
            .map(|i| format!("${}", 3 + 2 * i))
            .collect();
        let sql = format!(
            "UPDATE outbound_calls SET status = 'dialing', attempt_id = CASE id{cases} END, \
             attempts = attempts + 1, dialed_at = $1, updated_at = $1, call_sid = NULL, \
             node_id = $2 \
             WHERE id IN ({}) AND status IN ('queued', 'scheduled') AND run_at <= $1 \
             RETURNING {OUTBOUND_COLUMNS}",
            ids.join(", ")
        );
        let mut update = sqlx::query(&sql).bind(now_ms).bind(self.node_id());
        for (id, attempt, _) in &chosen {
            update = update.bind(id.as_str()).bind(attempt.as_str());
        }
        let rows = update.fetch_all(&mut *tx).await?;
        let mut claimed: HashMap<String, OutboundCall> = HashMap::new();
        for row in &rows {
            let call = outbound_from_row(row)?;
            claimed.insert(call.id.to_string(), call);
        }
        let mut inserted = Vec::new();
        for (id, attempt, was) in chosen {
            // Missing: canceled (or claimed) since it was read: not ours.
            if let Some(call) = claimed.remove(&id) {
                inserted.push((attempt, id));
                claims.claimed.push(call);
                claims.claimed_from.push(was);
            }
        }
        if !inserted.is_empty() {
            let values: Vec<String> = (0..inserted.len())
                .map(|i| format!("(${}, ${}, $1)", 2 + 2 * i, 3 + 2 * i))
                .collect();
            let sql = format!(
                "INSERT INTO outbound_attempts (attempt_id, outbound_id, started_at) VALUES {}",
                values.join(", ")
            );
            let mut insert = sqlx::query(&sql).bind(now_ms);
            for (attempt, id) in &inserted {
                insert = insert.bind(attempt.as_str()).bind(id.as_str());
            }
            insert.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(claims)
    }

    /// Gives back a claim that was never dialed (a gate at dispatch deferred
    /// it, or Twilio was not reached): `dialing` (this attempt only) → `next`
    /// (`queued` or `scheduled`) at `run_at`. The one way back from `dialing`
    /// besides `dial_unknown`, and only for an attempt whose create was never
    /// sent: the attempt is uncounted and noted `not_sent`. False when the call
    /// is no longer this attempt's `dialing`.
    #[tracing::instrument(skip_all, fields(outbound_id = %id))]
    pub async fn release_outbound_claim(
        &self,
        id: &OutboundId,
        attempt_id: &str,
        next: OutboundStatus,
        run_at: i64,
        deferred: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        if !matches!(next, OutboundStatus::Queued | OutboundStatus::Scheduled) {
            return Err(StoreError::Conflict(format!(
                "a claim is given back to queued or scheduled, not {}",
                next.as_str()
            )));
        }
        let mut tx = self.begin().await?;
        let released = sqlx::query(
            "UPDATE outbound_calls SET status = $1, run_at = $2, \
             deferred = COALESCE($3, deferred), updated_at = $4, \
             attempts = attempts - 1, dialed_at = NULL \
             WHERE id = $5 AND status = 'dialing' AND attempt_id = $6",
        )
        .bind(next.as_str())
        .bind(run_at)
        .bind(deferred)
        .bind(now_ms)
        .bind(id.as_str())
        .bind(attempt_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if released > 0 {
            sqlx::query("UPDATE outbound_attempts SET outcome = $1 WHERE attempt_id = $2")
                .bind(AttemptOutcome::NotSent.as_str())
                .bind(attempt_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(released > 0)
    }

    /// Notes what became of an attempt's create (and its `CallSid`, once
    /// known); while it is the call's current attempt, the call gets the sid
    /// and the number it is placed `from`. The status is not touched: that
    /// goes through [`Store::advance_outbound`].
    #[tracing::instrument(skip_all, fields(outbound_id = %id))]
    pub async fn record_attempt(
        &self,
        id: &OutboundId,
        attempt_id: &str,
        outcome: AttemptOutcome,
        call_sid: Option<&str>,
        from: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE outbound_attempts SET outcome = $1, call_sid = COALESCE($2, call_sid) \
             WHERE attempt_id = $3 AND outbound_id = $4",
        )
        .bind(outcome.as_str())
        .bind(call_sid)
        .bind(attempt_id)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE outbound_calls SET call_sid = COALESCE($1, call_sid), \
             from_e164 = COALESCE($2, from_e164) WHERE id = $3 AND attempt_id = $4",
        )
        .bind(call_sid)
        .bind(from)
        .bind(id.as_str())
        .bind(attempt_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every attempt of a call, oldest first.
    #[tracing::instrument(skip_all, fields(outbound_id = %id))]
    pub async fn outbound_attempts(
        &self,
        id: &OutboundId,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT attempt_id, outbound_id, started_at, call_sid, outcome \
             FROM outbound_attempts WHERE outbound_id = $1 ORDER BY started_at, attempt_id",
        )
        .bind(id.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let raw: String = row.try_get("outbound_id")?;
                Ok(AttemptRecord {
                    attempt_id: row.try_get("attempt_id")?,
                    outbound_id: OutboundId::parse(&raw).ok_or_else(|| {
                        StoreError::Corrupt(format!("outbound_attempts.outbound_id {raw:?}"))
                    })?,
                    started_at: row.try_get("started_at")?,
                    call_sid: row.try_get("call_sid")?,
                    outcome: row.try_get("outcome")?,
                })
            })
            .collect()
    }

    /// The `dial_unknown` calls due for reconciliation: claimed at or before
    /// `dialed_before_ms` (no status callback came since), their Twilio call
    /// not known yet; oldest first, at most `limit`.
    #[tracing::instrument(skip_all)]
    pub async fn outbound_to_reconcile(
        &self,
        dialed_before_ms: i64,
        limit: u32,
    ) -> Result<Vec<OutboundCall>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {OUTBOUND_COLUMNS} FROM outbound_calls \
             WHERE status = 'dial_unknown' AND call_sid IS NULL AND dialed_at <= $1 \
             ORDER BY dialed_at, id LIMIT $2"
        ))
        .bind(dialed_before_ms)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(outbound_from_row).collect()
    }

    /// Calls whose Twilio call is known but whose status has not moved for
    /// long: `dialing` (or `dial_unknown` with an adopted sid) claimed at or
    /// before `dialed_before_ms`, `ringing` unchanged since `ringing_before_ms`,
    /// `in_progress` since `talking_before_ms`. A status callback lost on the
    /// way would leave them holding a slot for ever: the dispatcher asks Twilio.
    #[tracing::instrument(skip_all)]
    pub async fn outbound_to_check(
        &self,
        dialed_before_ms: i64,
        ringing_before_ms: i64,
        talking_before_ms: i64,
        limit: u32,
    ) -> Result<Vec<OutboundCall>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {OUTBOUND_COLUMNS} FROM outbound_calls WHERE call_sid IS NOT NULL AND ( \
             (status IN ('dialing', 'dial_unknown') AND dialed_at <= $1) \
             OR (status = 'ringing' AND updated_at <= $2) \
             OR (status = 'in_progress' AND updated_at <= $3)) \
             ORDER BY updated_at, id LIMIT $4"
        ))
        .bind(dialed_before_ms)
        .bind(ringing_before_ms)
        .bind(talking_before_ms)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(outbound_from_row).collect()
    }

    /// `dialing` calls with no Twilio call known, claimed at or before
    /// `dialed_before_ms` (by any engine): a dial lasts at most
    /// `outbound.dial_timeout_secs` and then writes its outcome, so these were
    /// left by an engine that died mid-dial (or could not write the outcome).
    #[tracing::instrument(skip_all)]
    pub async fn orphaned_dials(
        &self,
        dialed_before_ms: i64,
        limit: u32,
    ) -> Result<Vec<OutboundCall>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {OUTBOUND_COLUMNS} FROM outbound_calls \
             WHERE status = 'dialing' AND call_sid IS NULL AND dialed_at <= $1 \
             ORDER BY dialed_at, id LIMIT $2"
        ))
        .bind(dialed_before_ms)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(outbound_from_row).collect()
    }

    /// Calls this node claimed that will need a realtime connection soon, or
    /// might: dialing, in doubt or ringing (a call in progress already holds
    /// one, counted by the relay).
    #[tracing::instrument(skip_all)]
    pub async fn outbound_pending_on_node(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM outbound_calls \
             WHERE node_id = $1 AND status IN ('dialing', 'dial_unknown', 'ringing')",
        )
        .bind(self.node_id())
        .fetch_one(self.pool())
        .await?
        .try_get("n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The Twilio numbers of `workspace`'s pool a call may be placed from
    /// (not released, E.164), sorted.
    #[tracing::instrument(skip_all, fields(workspace = %workspace))]
    pub async fn twilio_numbers_of(
        &self,
        workspace: &Workspace,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT e164 FROM phone_numbers \
             WHERE workspace = $1 AND provider = 'twilio' AND status <> 'RELEASED' \
             AND note IS NULL AND e164 LIKE '+%' ORDER BY e164",
        )
        .bind(workspace.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<String, _>("e164")?))
            .collect()
    }

    /// Start-up recovery of the calls this node claimed before it stopped (or
    /// was killed): `dialing` ones → `dial_unknown`, reconciled and never
    /// dialed blindly (the create may have reached Twilio); `ringing` and
    /// `in_progress` ones → `interrupted` (their call actor is gone). Queued
    /// and scheduled calls are left to the dispatcher. Each change goes through
    /// [`Store::advance_outbound`].
    #[tracing::instrument(skip_all)]
    pub async fn recover_outbound(&self, now_ms: i64) -> Result<Recovered, StoreError> {
        let rows = sqlx::query(
            "SELECT id, status FROM outbound_calls \
             WHERE node_id = $1 AND status IN ('dialing', 'ringing', 'in_progress')",
        )
        .bind(self.node_id())
        .fetch_all(self.pool())
        .await?;
        let mut recovered = Recovered::default();
        for row in &rows {
            let raw: String = row.try_get("id")?;
            let status: String = row.try_get("status")?;
            let Some(id) = OutboundId::parse(&raw) else {
                continue;
            };
            let (next, reason) = if status == "dialing" {
                (OutboundStatus::DialUnknown, None)
            } else {
                (OutboundStatus::Interrupted, Some("engine-restart"))
            };
            let change = Transition {
                reason,
                ..Transition::default()
            };
            if let Advanced::Moved { from, call } =
                self.advance_outbound(&id, next, change, now_ms).await?
            {
                if next == OutboundStatus::DialUnknown {
                    recovered.in_doubt.push((from, *call));
                } else {
                    recovered.interrupted.push((from, *call));
                }
            }
        }
        Ok(recovered)
    }
}

/// Active calls per value of `column` (`user_id`, `batch_id`).
async fn counts(
    conn: &mut sqlx::AnyConnection,
    column: &str,
) -> Result<HashMap<String, i64>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {column} AS k, COUNT(*) AS n FROM outbound_calls \
         WHERE status IN ({ACTIVE}) AND {column} IS NOT NULL GROUP BY {column}"
    ))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("k")?, row.try_get("n")?)))
        .collect()
}
