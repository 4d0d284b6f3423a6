//! The outbound-call queue's table: a call is written at submit by
//! [`Store::submit_outbound`], which counts the user's monthly budget and hourly
//! and daily quotas in the same transaction that inserts the call and its
//! consent record, so concurrent requests can never create more calls than the
//! quotas allow. Calls are read back, listed and canceled here; the dispatcher
//! (claims by `(status, run_at)`) comes later.

use std::fmt;

use sqlx::any::AnyRow;
use sqlx::Row as _;
use switchboard_actors::{UserId, Workspace};

use super::consent::{insert_consent, ConsentId, ConsentRecord};
use super::{db_text, Backend, Store, StoreError};
use crate::domain::phone::PhoneNumber;

/// One outbound call: 32 lowercase hex digits (a random UUID).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OutboundId(String);

impl OutboundId {
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }

    /// Reads an id back (from a row, a path): 32 lowercase hex digits.
    pub fn parse(raw: &str) -> Option<Self> {
        super::consent::is_hex_id(raw).then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for OutboundId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for OutboundId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an outbound call stands: its disposition. A call moves forward only
/// (see [`OutboundStatus::may_become`]): a callback that arrives late or twice
/// never takes it back, and a terminal status never changes again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboundStatus {
    /// Due now (or as soon as there is capacity).
    Queued,
    /// Waits for `run_at`: asked for later, or deferred to calling hours.
    Scheduled,
    /// Claimed by a dispatcher (a fresh attempt id); Twilio's answer pending.
    Dialing,
    /// The dial's answer never came (a timeout, a 5xx): a call may or may not
    /// exist at Twilio. Reconciled, never dialed again blindly.
    DialUnknown,
    Ringing,
    InProgress,
    Completed,
    Busy,
    NoAnswer,
    /// Refused at dial, or failed at Twilio (`reason` says why).
    Failed,
    /// Canceled by its user before it was dialed.
    Canceled,
    /// An answering machine took it (a message was left, or the call hung up).
    Voicemail,
    /// The engine stopped (or was killed) while the call was in progress.
    Interrupted,
    /// A batch's window closed before the call was dialed.
    NotDialedWindowClosed,
}

impl OutboundStatus {
    pub const ALL: [OutboundStatus; 14] = [
        OutboundStatus::Queued,
        OutboundStatus::Scheduled,
        OutboundStatus::Dialing,
        OutboundStatus::DialUnknown,
        OutboundStatus::Ringing,
        OutboundStatus::InProgress,
        OutboundStatus::Completed,
        OutboundStatus::Busy,
        OutboundStatus::NoAnswer,
        OutboundStatus::Failed,
        OutboundStatus::Canceled,
        OutboundStatus::Voicemail,
        OutboundStatus::Interrupted,
        OutboundStatus::NotDialedWindowClosed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutboundStatus::Queued => "queued",
            OutboundStatus::Scheduled => "scheduled",
            OutboundStatus::Dialing => "dialing",
            OutboundStatus::DialUnknown => "dial_unknown",
            OutboundStatus::Ringing => "ringing",
            OutboundStatus::InProgress => "in_progress",
            OutboundStatus::Completed => "completed",
            OutboundStatus::Busy => "busy",
            OutboundStatus::NoAnswer => "no_answer",
            OutboundStatus::Failed => "failed",
            OutboundStatus::Canceled => "canceled",
            OutboundStatus::Voicemail => "voicemail",
            OutboundStatus::Interrupted => "interrupted",
            OutboundStatus::NotDialedWindowClosed => "not_dialed_window_closed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Whether `DELETE` may still cancel a call in this state.
    pub fn cancelable(self) -> bool {
        matches!(self, OutboundStatus::Queued | OutboundStatus::Scheduled)
    }

    /// The call is over: this status never changes again.
    pub fn is_terminal(self) -> bool {
        self.stage() == 4
    }

    /// How far along a call in this status is: waiting (0), being dialed (1),
    /// ringing (2), talking (3), over (4).
    fn stage(self) -> u8 {
        match self {
            OutboundStatus::Queued | OutboundStatus::Scheduled => 0,
            OutboundStatus::Dialing | OutboundStatus::DialUnknown => 1,
            OutboundStatus::Ringing => 2,
            OutboundStatus::InProgress => 3,
            OutboundStatus::Completed
            | OutboundStatus::Busy
            | OutboundStatus::NoAnswer
            | OutboundStatus::Failed
            | OutboundStatus::Canceled
            | OutboundStatus::Voicemail
            | OutboundStatus::Interrupted
            | OutboundStatus::NotDialedWindowClosed => 4,
        }
    }

    /// Whether a call in `self` may move to `next`: forward only, never out of
    /// a terminal status. Two exceptions go back a stage, both the dispatcher's:
    /// `dialing → dial_unknown` (same stage) and `dial_unknown → queued`, once
    /// reconciliation has proved that no call was created.
    pub fn may_become(self, next: OutboundStatus) -> bool {
        if self.is_terminal() || self == next {
            return false;
        }
        match (self, next) {
            (OutboundStatus::DialUnknown, OutboundStatus::Queued) => true,
            (OutboundStatus::Dialing, OutboundStatus::DialUnknown) => true,
            (OutboundStatus::DialUnknown, OutboundStatus::Dialing) => false,
            (OutboundStatus::Queued, OutboundStatus::Scheduled)
            | (OutboundStatus::Scheduled, OutboundStatus::Queued) => true,
            _ => next.stage() > self.stage(),
        }
    }
}

/// An outbound call as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundCall {
    pub id: OutboundId,
    pub user_id: UserId,
    pub workspace: Workspace,
    pub to: PhoneNumber,
    pub contact_name: Option<String>,
    pub contact_company: Option<String>,
    /// The request's `purpose`, as its wire name.
    pub purpose: String,
    pub objective: String,
    /// `None`: the workspace's built-in outbound assistant.
    pub assistant_id: Option<String>,
    pub callback_url: Option<String>,
    pub consent_id: ConsentId,
    pub status: OutboundStatus,
    /// Why the call waits past the time asked for (`calling_hours`).
    pub deferred: Option<String>,
    /// Milliseconds since the epoch: not dialed before.
    pub run_at: i64,
    pub estimated_cost_usd: f64,
    /// `None` until reconciled.
    pub actual_cost_usd: Option<f64>,
    pub attempt_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// What dispatch and the call itself add (all empty at submit).
    pub progress: OutboundProgress,
}

/// What an outbound call gathers after submit: its Twilio call, the
/// answering-machine verdict, why it ended, its batch, and its result. Written
/// by the dispatcher, Twilio's callbacks and the after-call work; empty
/// (`Default`) at submit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutboundProgress {
    pub call_sid: Option<String>,
    pub from: Option<String>,
    /// Attempts started.
    pub attempts: i64,
    /// When the current attempt was claimed (ms).
    pub dialed_at: Option<i64>,
    pub answered_by: Option<String>,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub reason: Option<String>,
    /// Refused at dial: no longer counted against the quotas.
    pub quota_refunded: bool,
    pub batch_id: Option<String>,
    /// A batch's window closes then (ms): not dialed by then, never dialed.
    pub window_end_at: Option<i64>,
    pub summary: Option<String>,
    /// JSON `{"objective_met","key_findings","evidence"}`.
    pub task_outcome: Option<serde_json::Value>,
    /// JSON: the cost breakdown, estimated and actual.
    pub cost_detail: Option<serde_json::Value>,
    pub analyzed_at: Option<i64>,
    pub reconciled_at: Option<i64>,
    pub result_sent_at: Option<i64>,
}

/// The limits [`Store::submit_outbound`] checks in its transaction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SubmitLimits {
    pub calls_per_hour: u32,
    pub calls_per_day: u32,
    pub monthly_budget_usd: f64,
    /// Where the month the budget is for began, in milliseconds since the epoch.
    pub month_start_ms: i64,
}

/// What [`Store::submit_outbound`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Submitted {
    Created(Box<OutboundCall>),
    /// The estimate does not fit: what was left of the month's budget.
    OverBudget {
        remaining_usd: f64,
    },
    /// A quota is used up: the instant (ms) the oldest call that counts leaves
    /// its window, so that one more fits.
    RateLimited {
        retry_at_ms: i64,
    },
}

/// The quota windows.
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// A canceled call, or one refused at dial (refunded), counts against neither the
/// quotas nor the budget; nor does a batch's call its window closed on.
pub(super) const COUNTS: &str =
    "status NOT IN ('canceled', 'not_dialed_window_closed') AND quota_refunded = 0";

/// The statuses of a call that was placed and is over (canceled and
/// never-dialed calls are not counted at all).
pub(super) const FINISHED: &str =
    "'completed', 'busy', 'no_answer', 'failed', 'voicemail', 'interrupted'";

/// The columns a submit writes; the rest start empty.
const SUBMIT_COLUMNS: &str = "id, user_id, workspace, to_e164, contact_name, contact_company, \
                              purpose, objective, assistant_id, callback_url, consent_id, \
                              status, deferred, run_at, estimated_cost_usd, actual_cost_usd, \
                              attempt_id, created_at, updated_at, batch_id, window_end_at";

pub(super) const OUTBOUND_COLUMNS: &str =
    "id, user_id, workspace, to_e164, contact_name, contact_company, \
                                purpose, objective, assistant_id, callback_url, consent_id, \
                                status, deferred, run_at, estimated_cost_usd, actual_cost_usd, \
                                attempt_id, created_at, updated_at, call_sid, from_e164, \
                                attempts, dialed_at, answered_by, answered_at, ended_at, reason, \
                                quota_refunded, batch_id, window_end_at, summary, task_outcome, \
                                cost_detail, analyzed_at, reconciled_at, result_sent_at";

/// What [`Store::cancel_outbound`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Canceled {
    Canceled(Box<OutboundCall>),
    /// Past queued or scheduled: the call as it is.
    TooLate(Box<OutboundCall>),
    Missing,
}

/// One page of [`Store::list_outbound`].
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundPage {
    pub calls: Vec<OutboundCall>,
    /// Every call the filter matches, on all pages.
    pub total: u64,
}

impl Store {
    /// Stores `call` (its `created_at` is the submit instant) and its consent
    /// record, if the user's budget and quotas allow, all in one transaction:
    /// on SQLite `BEGIN IMMEDIATE` holds the write lock, on PostgreSQL the
    /// user's row is locked (`FOR UPDATE`) first, so the submits of one user
    /// take turns and each counts the calls the others created.
    #[tracing::instrument(skip_all, fields(user_id = %call.user_id, outbound_id = %call.id))]
    pub async fn submit_outbound(
        &self,
        call: &OutboundCall,
        consent: &ConsentRecord,
        limits: &SubmitLimits,
    ) -> Result<Submitted, StoreError> {
        let user = call.user_id.as_str();
        let now = call.created_at;
        let mut tx = self.begin().await?;
        if self.backend() == Backend::Postgres {
            sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
                .bind(user)
                .fetch_optional(&mut *tx)
                .await?;
        }

        let committed: f64 = sqlx::query(&format!(
            "SELECT COALESCE(SUM(COALESCE(actual_cost_usd, estimated_cost_usd)), 0.0) AS spent \
             FROM outbound_calls WHERE user_id = $1 AND created_at >= $2 AND {COUNTS}"
        ))
        .bind(user)
        .bind(limits.month_start_ms)
        .fetch_one(&mut *tx)
        .await?
        .try_get("spent")?;
        let remaining_usd = limits.monthly_budget_usd - committed;
        if call.estimated_cost_usd > remaining_usd {
            return Ok(Submitted::OverBudget {
                remaining_usd: remaining_usd.max(0.0),
            });
        }

        let mut retry_at_ms = None;
        for (window, limit) in [
            (HOUR_MS, limits.calls_per_hour),
            (DAY_MS, limits.calls_per_day),
        ] {
            if let Some(at) = quota_full(&mut tx, user, now, window, limit).await? {
                retry_at_ms = retry_at_ms.max(Some(at));
            }
        }
        if let Some(retry_at_ms) = retry_at_ms {
            return Ok(Submitted::RateLimited { retry_at_ms });
        }

        insert_consent(&mut tx, consent).await?;
        let sql = format!(
            "INSERT INTO outbound_calls ({SUBMIT_COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
              $20, $21) \
             RETURNING {OUTBOUND_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(call.id.as_str())
            .bind(user)
            .bind(call.workspace.as_str())
            .bind(call.to.as_str())
            .bind(call.contact_name.as_deref().map(db_text))
            .bind(call.contact_company.as_deref().map(db_text))
            .bind(db_text(&call.purpose))
            .bind(db_text(&call.objective))
            .bind(call.assistant_id.as_deref())
            .bind(call.callback_url.as_deref().map(db_text))
            .bind(call.consent_id.as_str())
            .bind(call.status.as_str())
            .bind(call.deferred.as_deref())
            .bind(call.run_at)
            .bind(call.estimated_cost_usd)
            .bind(call.actual_cost_usd)
            .bind(call.attempt_id.as_deref())
            .bind(call.created_at)
            .bind(call.updated_at)
            .bind(call.progress.batch_id.as_deref())
            .bind(call.progress.window_end_at)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| StoreError::unique(e, || format!("outbound call {}", call.id)))?;
        let created = outbound_from_row(&row)?;
        tx.commit().await?;
        Ok(Submitted::Created(Box::new(created)))
    }

    #[tracing::instrument(skip_all, fields(outbound_id = %id))]
    pub async fn get_outbound(&self, id: &OutboundId) -> Result<Option<OutboundCall>, StoreError> {
        let sql = format!("SELECT {OUTBOUND_COLUMNS} FROM outbound_calls WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(outbound_from_row).transpose()
    }

    /// The calls of `user` (every user's when `None`), of `status` if given,
    /// newest first: `limit` of them from `offset`, and how many match in all.
    #[tracing::instrument(skip_all)]
    pub async fn list_outbound(
        &self,
        user: Option<&UserId>,
        status: Option<OutboundStatus>,
        limit: u32,
        offset: u64,
    ) -> Result<OutboundPage, StoreError> {
        let mut filters = Vec::new();
        let mut binds = Vec::new();
        if let Some(user) = user {
            binds.push(user.as_str());
            filters.push(format!("user_id = ${}", binds.len()));
        }
        if let Some(status) = status {
            binds.push(status.as_str());
            filters.push(format!("status = ${}", binds.len()));
        }
        let filter = if filters.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", filters.join(" AND "))
        };
        let count_sql = format!("SELECT COUNT(*) AS total FROM outbound_calls {filter}");
        let mut count = sqlx::query(&count_sql);
        for bind in &binds {
            count = count.bind(*bind);
        }
        let total: i64 = count.fetch_one(self.pool()).await?.try_get("total")?;

        let page_sql = format!(
            "SELECT {OUTBOUND_COLUMNS} FROM outbound_calls {filter} \
             ORDER BY created_at DESC, id DESC LIMIT ${} OFFSET ${}",
            binds.len() + 1,
            binds.len() + 2
        );
        let mut page = sqlx::query(&page_sql);
        for bind in &binds {
            page = page.bind(*bind);
        }
        let rows = page
            .bind(i64::from(limit))
            .bind(i64::try_from(offset).unwrap_or(i64::MAX))
            .fetch_all(self.pool())
            .await?;
        Ok(OutboundPage {
            calls: rows
                .iter()
                .map(outbound_from_row)
                .collect::<Result<_, _>>()?,
            total: u64::try_from(total).unwrap_or(0),
        })
    }

    /// Cancels a queued or scheduled call (compare-and-set on its status, so a
    /// call the dispatcher claimed meanwhile is not canceled under it).
    #[tracing::instrument(skip_all, fields(outbound_id = %id))]
    pub async fn cancel_outbound(
        &self,
        id: &OutboundId,
        now_ms: i64,
    ) -> Result<Canceled, StoreError> {
        let sql = format!(
            "UPDATE outbound_calls SET status = 'canceled', updated_at = $2 \
             WHERE id = $1 AND status IN ('queued', 'scheduled') RETURNING {OUTBOUND_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .bind(now_ms)
            .fetch_optional(self.pool())
            .await?;
        if let Some(row) = row {
            return Ok(Canceled::Canceled(Box::new(outbound_from_row(&row)?)));
        }
        Ok(match self.get_outbound(id).await? {
            Some(call) => Canceled::TooLate(Box::new(call)),
            None => Canceled::Missing,
        })
    }
}

/// What a status change writes besides the status (`None`: left as it is).
#[derive(Debug, Clone, Copy, Default)]
pub struct Transition<'a> {
    /// The change only applies to this attempt (a callback's `attempt`); `None`:
    /// whatever the current attempt.
    pub attempt_id: Option<&'a str>,
    pub call_sid: Option<&'a str>,
    pub answered_by: Option<&'a str>,
    pub reason: Option<&'a str>,
    /// Refused at dial: no longer counted against the quotas.
    pub refund_quota: bool,
}

/// What [`Store::advance_outbound`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Advanced {
    /// Moved from the status given to the call's new one.
    Moved {
        from: OutboundStatus,
        call: Box<OutboundCall>,
    },
    /// Not allowed from where the call is (late, replayed, or another attempt's):
    /// the call as it is, unchanged.
    Unchanged(Box<OutboundCall>),
    Missing,
}

impl Store {
    /// Moves an outbound call to `next` if [`OutboundStatus::may_become`] allows
    /// it from its current status (and, given `change.attempt_id`, only while that
    /// is the call's current attempt): one compare-and-set `UPDATE`, so of two
    /// racing changes only an allowed one lands and a terminal status never
    /// changes. `in_progress` notes `answered_at`, a terminal status `ended_at`.
    #[tracing::instrument(skip_all, fields(outbound_id = %id, next = next.as_str()))]
    pub async fn advance_outbound(
        &self,
        id: &OutboundId,
        next: OutboundStatus,
        change: Transition<'_>,
        now_ms: i64,
    ) -> Result<Advanced, StoreError> {
        for _ in 0..4 {
            let Some(current) = self.get_outbound(id).await? else {
                return Ok(Advanced::Missing);
            };
            let wrong_attempt = change
                .attempt_id
                .is_some_and(|a| current.attempt_id.as_deref() != Some(a));
            if wrong_attempt || !current.status.may_become(next) {
                return Ok(Advanced::Unchanged(Box::new(current)));
            }
            let sql = format!(
                "UPDATE outbound_calls SET status = $1, updated_at = $2, \
                 call_sid = COALESCE($3, call_sid), answered_by = COALESCE($4, answered_by), \
                 reason = COALESCE($5, reason), \
                 quota_refunded = CASE WHEN $6 = 1 THEN 1 ELSE quota_refunded END, \
                 answered_at = CASE WHEN $1 = 'in_progress' AND answered_at IS NULL \
                               THEN $2 ELSE answered_at END, \
                 ended_at = CASE WHEN $7 = 1 AND ended_at IS NULL THEN $2 ELSE ended_at END \
                 WHERE id = $8 AND status = $9 AND COALESCE(attempt_id, '') = $10 \
                 RETURNING {OUTBOUND_COLUMNS}"
            );
            let row = sqlx::query(&sql)
                .bind(next.as_str())
                .bind(now_ms)
                .bind(change.call_sid)
                .bind(change.answered_by)
                .bind(change.reason.map(db_text))
                .bind(i64::from(change.refund_quota))
                .bind(i64::from(next.is_terminal()))
                .bind(id.as_str())
                .bind(current.status.as_str())
                .bind(current.attempt_id.as_deref().unwrap_or(""))
                .fetch_optional(self.pool())
                .await?;
            if let Some(row) = row {
                return Ok(Advanced::Moved {
                    from: current.status,
                    call: Box::new(outbound_from_row(&row)?),
                });
            }
            // Someone else changed the call between the read and the write:
            // read it again and decide again.
        }
        Err(StoreError::Corrupt(format!(
            "outbound call {id} kept changing under advance_outbound"
        )))
    }
}

/// When the calls of `user` in the `window` before `now` reach `limit`: the
/// instant the call whose leaving the window makes room for one more leaves it.
async fn quota_full(
    conn: &mut sqlx::AnyConnection,
    user: &str,
    now: i64,
    window: i64,
    limit: u32,
) -> Result<Option<i64>, StoreError> {
    let since = now - window;
    let counted: i64 = sqlx::query(&format!(
        "SELECT COUNT(*) AS counted FROM outbound_calls \
         WHERE user_id = $1 AND created_at > $2 AND {COUNTS}"
    ))
    .bind(user)
    .bind(since)
    .fetch_one(&mut *conn)
    .await?
    .try_get("counted")?;
    if counted < i64::from(limit) {
        return Ok(None);
    }
    let leaving = sqlx::query(&format!(
        "SELECT created_at FROM outbound_calls \
         WHERE user_id = $1 AND created_at > $2 AND {COUNTS} \
         ORDER BY created_at LIMIT 1 OFFSET $3"
    ))
    .bind(user)
    .bind(since)
    .bind(counted - i64::from(limit))
    .fetch_optional(&mut *conn)
    .await?;
    Ok(Some(match leaving {
        Some(row) => row.try_get::<i64, _>("created_at")? + window,
        // A quota of 0: nothing leaves to make room; a whole window from now.
        None => now + window,
    }))
}

fn corrupt(column: &str, raw: &str) -> StoreError {
    StoreError::Corrupt(format!("outbound_calls.{column} {raw:?}"))
}

pub(super) fn outbound_from_row(row: &AnyRow) -> Result<OutboundCall, StoreError> {
    let text = |column: &str| -> Result<String, StoreError> { Ok(row.try_get(column)?) };
    let id = text("id")?;
    let user_id = text("user_id")?;
    let workspace = text("workspace")?;
    let to = text("to_e164")?;
    let consent_id = text("consent_id")?;
    let status = text("status")?;
    Ok(OutboundCall {
        id: OutboundId::parse(&id).ok_or_else(|| corrupt("id", &id))?,
        user_id: UserId::parse(&user_id).map_err(|_| corrupt("user_id", &user_id))?,
        workspace: Workspace::parse(&workspace).map_err(|_| corrupt("workspace", &workspace))?,
        to: PhoneNumber::parse(&to).map_err(|_| corrupt("to_e164", &to))?,
        contact_name: row.try_get("contact_name")?,
        contact_company: row.try_get("contact_company")?,
        purpose: text("purpose")?,
        objective: text("objective")?,
        assistant_id: row.try_get("assistant_id")?,
        callback_url: row.try_get("callback_url")?,
        consent_id: ConsentId::parse(&consent_id)
            .ok_or_else(|| corrupt("consent_id", &consent_id))?,
        status: OutboundStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        deferred: row.try_get("deferred")?,
        run_at: row.try_get("run_at")?,
        estimated_cost_usd: row.try_get("estimated_cost_usd")?,
        actual_cost_usd: row.try_get("actual_cost_usd")?,
        attempt_id: row.try_get("attempt_id")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        progress: OutboundProgress {
            call_sid: row.try_get("call_sid")?,
            from: row.try_get("from_e164")?,
            attempts: row.try_get("attempts")?,
            dialed_at: row.try_get("dialed_at")?,
            answered_by: row.try_get("answered_by")?,
            answered_at: row.try_get("answered_at")?,
            ended_at: row.try_get("ended_at")?,
            reason: row.try_get("reason")?,
            quota_refunded: row.try_get::<i64, _>("quota_refunded")? != 0,
            batch_id: row.try_get("batch_id")?,
            window_end_at: row.try_get("window_end_at")?,
            summary: row.try_get("summary")?,
            task_outcome: json_column(row, "task_outcome")?,
            cost_detail: json_column(row, "cost_detail")?,
            analyzed_at: row.try_get("analyzed_at")?,
            reconciled_at: row.try_get("reconciled_at")?,
            result_sent_at: row.try_get("result_sent_at")?,
        },
    })
}

fn json_column(row: &AnyRow, column: &str) -> Result<Option<serde_json::Value>, StoreError> {
    let raw: Option<String> = row.try_get(column)?;
    raw.map(|raw| serde_json::from_str(&raw).map_err(|_| corrupt(column, &raw)))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_back_as_written() {
        for status in OutboundStatus::ALL {
            assert_eq!(OutboundStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(OutboundStatus::parse("in-progress"), None);
        assert!(OutboundStatus::Queued.cancelable());
        assert!(OutboundStatus::Scheduled.cancelable());
        assert!(!OutboundStatus::Canceled.cancelable());
        assert!(!OutboundStatus::Dialing.cancelable());
    }

    #[test]
    fn a_status_moves_forward_only_and_never_out_of_a_terminal_one() {
        use OutboundStatus::*;
        assert!(Queued.may_become(Dialing));
        assert!(Dialing.may_become(Ringing));
        assert!(Dialing.may_become(DialUnknown));
        assert!(DialUnknown.may_become(InProgress));
        assert!(DialUnknown.may_become(Queued));
        assert!(!Dialing.may_become(Queued));
        assert!(Ringing.may_become(InProgress));
        assert!(!InProgress.may_become(Ringing));
        assert!(InProgress.may_become(Completed));
        assert!(!Ringing.may_become(Ringing));
        for terminal in OutboundStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for next in OutboundStatus::ALL {
                assert!(!terminal.may_become(next), "{terminal:?} -> {next:?}");
            }
        }
        assert_eq!(
            OutboundStatus::ALL
                .iter()
                .filter(|s| s.is_terminal())
                .count(),
            8
        );
    }

    #[test]
    fn outbound_ids_are_random_hex() {
        let id = OutboundId::new();
        assert_eq!(OutboundId::parse(id.as_str()), Some(id.clone()));
        assert_ne!(OutboundId::new(), id);
        assert_eq!(OutboundId::parse("0123456789ABCDEF0123456789abcdef"), None);
    }
}
