//! Safety flags and the audit trail (issue 12). A flag is a finding about a user
//! or one of their calls (a screened objective, a velocity rule, a transcript, a
//! telephony pattern); [`Store::raise_flags`] stores findings and, when one is
//! critical, pauses the user in the same transaction and writes the pause to the
//! audit trail. The trail is append-only: this module writes it with
//! [`append_audit`] and reads it; nothing in the code updates or deletes it.

use std::collections::HashMap;

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row as _;
use switchboard_actors::UserId;

use super::{db_text, placeholders, Store, StoreError};
use crate::domain::safety::Severity;

/// A finding about to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFlag {
    /// What found it: `objective_screen`, `velocity_same_number`, `transcript`…
    pub kind: String,
    pub severity: Severity,
    pub reason: String,
    /// Quoted turns, counts, matched words.
    pub evidence: Value,
    /// Raised by the engine (`false`: by an admin).
    pub auto_detected: bool,
}

/// A stored flag.
#[derive(Debug, Clone, PartialEq)]
pub struct Flag {
    pub id: String,
    pub user_id: UserId,
    pub outbound_id: Option<String>,
    pub kind: String,
    pub severity: Severity,
    pub reason: String,
    pub evidence: Value,
    pub auto_detected: bool,
    pub created_at: i64,
    pub resolution: Option<Resolution>,
}

/// How an admin resolved a flag.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    pub at: i64,
    pub by: String,
    /// `dismiss`, `warn`, `suspend`, `block_number`.
    pub action: String,
    pub notes: Option<String>,
}

/// One line of the audit trail.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: String,
    pub at: i64,
    /// `admin` or `system`.
    pub actor: String,
    pub action: String,
    pub user_id: Option<String>,
    pub subject: Option<String>,
    pub detail: Value,
}

impl AuditEntry {
    /// A new entry, with a fresh id: entries of the same instant are read back
    /// in the order they were made on one node (see [`audit_id`]).
    pub fn new(at: i64, actor: &str, action: &str, user_id: Option<&UserId>) -> Self {
        Self {
            id: audit_id(),
            at,
            actor: actor.to_owned(),
            action: action.to_owned(),
            user_id: user_id.map(|u| u.as_str().to_owned()),
            subject: None,
            detail: Value::Object(Default::default()),
        }
    }

    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }
}

/// 32 hex digits: 16 of a per-process counter that starts at the wall clock's
/// microseconds and only goes up (so ids sort in the order this node made them,
/// across restarts too), then 16 random ones (so two nodes never collide). The
/// trail is read by `(at, id)`: two entries of one transaction — a resolution
/// and the suspension it causes — come back in the order they were written.
fn audit_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let mut prev = LAST.load(Ordering::Relaxed);
    let seq = loop {
        let next = wall.max(prev + 1);
        match LAST.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break next,
            Err(actual) => prev = actual,
        }
    };
    let random = uuid::Uuid::new_v4().as_u64_pair().0;
    format!("{seq:016x}{random:016x}")
}

/// What [`Store::raise_flags`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Raised {
    pub flags: Vec<Flag>,
    /// A critical flag paused the user (who was active until then).
    pub paused: bool,
}

const FLAG_COLUMNS: &str = "id, user_id, outbound_id, type, severity, reason, evidence, \
                            auto_detected, created_at, resolved_at, resolved_by, action, notes";

impl Store {
    /// Stores `findings` about `user` (and the call `outbound_id`, if any). When
    /// one is critical and the user is active, the user is paused and the pause
    /// written to the audit trail, in the same transaction: a critical finding
    /// stops the user's next call even if the engine stops right after.
    #[tracing::instrument(skip_all, fields(user_id = %user, n = findings.len()))]
    pub async fn raise_flags(
        &self,
        user: &UserId,
        outbound_id: Option<&str>,
        findings: &[NewFlag],
        now_ms: i64,
    ) -> Result<Raised, StoreError> {
        if findings.is_empty() {
            return Ok(Raised {
                flags: Vec::new(),
                paused: false,
            });
        }
        let mut tx = self.begin().await?;
        let raised = raise_flags_in(&mut tx, user, outbound_id, findings, now_ms).await?;
        tx.commit().await?;
        Ok(raised)
    }

    #[tracing::instrument(skip_all, fields(flag_id = id))]
    pub async fn get_flag(&self, id: &str) -> Result<Option<Flag>, StoreError> {
        let sql = format!("SELECT {FLAG_COLUMNS} FROM flags WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(flag_from_row).transpose()
    }

    /// The flags of `user`, oldest first (every one when `open_only` is false).
    #[tracing::instrument(skip_all, fields(user_id = %user))]
    pub async fn user_flags(
        &self,
        user: &UserId,
        open_only: bool,
    ) -> Result<Vec<Flag>, StoreError> {
        let open = if open_only {
            " AND resolved_at IS NULL"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {FLAG_COLUMNS} FROM flags WHERE user_id = $1{open} ORDER BY created_at, id"
        );
        let rows = sqlx::query(&sql)
            .bind(user.as_str())
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(flag_from_row).collect()
    }

    /// The open flags of each of `users` (oldest first), in one query; a user
    /// with none is absent.
    #[tracing::instrument(skip_all, fields(users = users.len()))]
    pub async fn open_flags_of(
        &self,
        users: &[UserId],
    ) -> Result<HashMap<String, Vec<Flag>>, StoreError> {
        let mut by_user: HashMap<String, Vec<Flag>> = HashMap::new();
        if users.is_empty() {
            return Ok(by_user);
        }
        let sql = format!(
            "SELECT {FLAG_COLUMNS} FROM flags WHERE user_id IN ({}) AND resolved_at IS NULL \
             ORDER BY created_at, id",
            placeholders(1, users.len())
        );
        let mut query = sqlx::query(&sql);
        for user in users {
            query = query.bind(user.as_str());
        }
        for row in query.fetch_all(self.pool()).await? {
            let flag = flag_from_row(&row)?;
            by_user
                .entry(flag.user_id.as_str().to_owned())
                .or_default()
                .push(flag);
        }
        Ok(by_user)
    }

    /// Writes one audit entry on its own.
    pub async fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let mut conn = self.pool().acquire().await?;
        append_audit(&mut conn, entry).await
    }

    /// The audit trail, oldest first: of `user` if given, from `since_ms` on.
    #[tracing::instrument(skip_all)]
    pub async fn audit_trail(
        &self,
        user: Option<&UserId>,
        since_ms: i64,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = match user {
            Some(user) => {
                sqlx::query(
                    "SELECT id, at, actor, action, user_id, subject, detail FROM audit_log \
                     WHERE user_id = $1 AND at >= $2 ORDER BY at, id LIMIT $3",
                )
                .bind(user.as_str())
                .bind(since_ms)
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query(
                    "SELECT id, at, actor, action, user_id, subject, detail FROM audit_log \
                     WHERE at >= $1 ORDER BY at, id LIMIT $2",
                )
                .bind(since_ms)
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?
            }
        };
        rows.iter()
            .map(|row| {
                let detail: String = row.try_get("detail")?;
                Ok(AuditEntry {
                    id: row.try_get("id")?,
                    at: row.try_get("at")?,
                    actor: row.try_get("actor")?,
                    action: row.try_get("action")?,
                    user_id: row.try_get("user_id")?,
                    subject: row.try_get("subject")?,
                    detail: serde_json::from_str(&detail)
                        .map_err(|_| StoreError::Corrupt(format!("audit_log.detail {detail:?}")))?,
                })
            })
            .collect()
    }
}

/// Appends `entry` to the audit trail on `conn` (inside the caller's
/// transaction when it has one). The only write of the table.
pub async fn append_audit(
    conn: &mut sqlx::AnyConnection,
    entry: &AuditEntry,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (id, at, actor, action, user_id, subject, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(entry.id.as_str())
    .bind(entry.at)
    .bind(entry.actor.as_str())
    .bind(entry.action.as_str())
    .bind(entry.user_id.as_deref())
    .bind(entry.subject.as_deref().map(db_text))
    .bind(db_text(&entry.detail.to_string()))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn corrupt(column: &str, raw: &str) -> StoreError {
    StoreError::Corrupt(format!("flags.{column} {raw:?}"))
}

pub(crate) fn flag_from_row(row: &AnyRow) -> Result<Flag, StoreError> {
    let user_id: String = row.try_get("user_id")?;
    let severity: String = row.try_get("severity")?;
    let evidence: String = row.try_get("evidence")?;
    let resolved_at: Option<i64> = row.try_get("resolved_at")?;
    let resolution = match resolved_at {
        Some(at) => Some(Resolution {
            at,
            by: row
                .try_get::<Option<String>, _>("resolved_by")?
                .unwrap_or_default(),
            action: row
                .try_get::<Option<String>, _>("action")?
                .unwrap_or_default(),
            notes: row.try_get("notes")?,
        }),
        None => None,
    };
    Ok(Flag {
        id: row.try_get("id")?,
        user_id: UserId::parse(&user_id).map_err(|_| corrupt("user_id", &user_id))?,
        outbound_id: row.try_get("outbound_id")?,
        kind: row.try_get("type")?,
        severity: severity
            .parse()
            .map_err(|_| corrupt("severity", &severity))?,
        reason: row.try_get("reason")?,
        evidence: serde_json::from_str(&evidence).map_err(|_| corrupt("evidence", &evidence))?,
        auto_detected: row.try_get::<i64, _>("auto_detected")? != 0,
        created_at: row.try_get("created_at")?,
        resolution,
    })
}

/// [`Store::raise_flags`] inside the caller's transaction (the post-call review
/// marks its call reviewed in the same one).
pub(crate) async fn raise_flags_in(
    tx: &mut sqlx::AnyConnection,
    user: &UserId,
    outbound_id: Option<&str>,
    findings: &[NewFlag],
    now_ms: i64,
) -> Result<Raised, StoreError> {
    if findings.is_empty() {
        return Ok(Raised {
            flags: Vec::new(),
            paused: false,
        });
    }
    let mut flags = Vec::with_capacity(findings.len());
    for finding in findings {
        let sql = format!(
            "INSERT INTO flags (id, user_id, outbound_id, type, severity, reason, evidence, \
             auto_detected, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             RETURNING {FLAG_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(uuid::Uuid::new_v4().simple().to_string())
            .bind(user.as_str())
            .bind(outbound_id)
            .bind(db_text(&finding.kind))
            .bind(finding.severity.as_str())
            .bind(db_text(&finding.reason))
            .bind(db_text(&finding.evidence.to_string()))
            .bind(i64::from(finding.auto_detected))
            .bind(now_ms)
            .fetch_one(&mut *tx)
            .await?;
        flags.push(flag_from_row(&row)?);
    }
    let critical: Vec<&Flag> = flags
        .iter()
        .filter(|f| f.severity == Severity::Critical)
        .collect();
    let mut paused = false;
    if !critical.is_empty() {
        paused = sqlx::query(
            "UPDATE users SET status = 'paused', updated_at = $2 \
             WHERE id = $1 AND status = 'active'",
        )
        .bind(user.as_str())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if paused {
            let entry = AuditEntry::new(now_ms, "system", "user_paused", Some(user))
                .subject(critical[0].id.clone())
                .detail(serde_json::json!({
                    "reason": critical[0].reason,
                    "flags": critical.iter().map(|f| &f.id).collect::<Vec<_>>(),
                    "outbound_id": outbound_id,
                }));
            append_audit(&mut *tx, &entry).await?;
        }
    }
    Ok(Raised { flags, paused })
}

/// Which flags [`Store::list_flags`] returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlagFilter {
    /// `Some(false)`: open flags only; `Some(true)`: resolved only.
    pub resolved: Option<bool>,
    /// Empty: every severity.
    pub severities: Vec<Severity>,
    pub user: Option<UserId>,
    pub limit: u32,
    pub offset: u32,
}

/// A flag as the admin reviews it: with its call's summary and callee.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagForReview {
    pub flag: Flag,
    pub summary: Option<String>,
    pub callee: Option<String>,
}

/// How an admin resolves a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagAction {
    Dismiss,
    Warn,
    /// Suspends the flag's user.
    Suspend,
    /// Puts the flag's call's callee on the global do-not-call list.
    BlockNumber,
}

impl FlagAction {
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "dismiss" => Self::Dismiss,
            "warn" => Self::Warn,
            "suspend" => Self::Suspend,
            "block_number" => Self::BlockNumber,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dismiss => "dismiss",
            Self::Warn => "warn",
            Self::Suspend => "suspend",
            Self::BlockNumber => "block_number",
        }
    }
}

/// What [`Store::resolve_flag`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum FlagResolved {
    Resolved(Box<Flag>),
    /// Resolved before: the flag as it is, its first resolution kept.
    AlreadyResolved(Box<Flag>),
    /// `block_number` on a flag about no call: nothing to block.
    NoCallee,
    Missing,
}

/// What [`Store::change_user_status`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusChanged {
    Changed,
    /// The user has that status already: nothing written.
    Unchanged,
    Missing,
}

/// The calls a user's quotas and budget count now.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct QuotaUse {
    pub calls_last_hour: i64,
    pub calls_last_day: i64,
    pub month_spend_usd: f64,
    /// This calendar month's counted calls, those of them over, and those
    /// `completed` (answered and ended normally).
    pub month_calls: i64,
    pub month_finished: i64,
    pub month_completed: i64,
    /// The month's talk time: answered to ended, summed over its calls.
    pub month_talk_ms: i64,
}

/// Critical first.
const SEVERITY_RANK: &str = "CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 \
                             WHEN 'medium' THEN 2 ELSE 3 END";

impl Store {
    /// The flags `filter` selects, most severe first, then oldest first; each
    /// with its call's summary and callee (when it is about a call).
    #[tracing::instrument(skip_all)]
    pub async fn list_flags(&self, filter: &FlagFilter) -> Result<Vec<FlagForReview>, StoreError> {
        let mut clauses = Vec::new();
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        match filter.resolved {
            Some(false) => clauses.push("f.resolved_at IS NULL".to_owned()),
            Some(true) => clauses.push("f.resolved_at IS NOT NULL".to_owned()),
            None => {}
        }
        if !filter.severities.is_empty() {
            let marks: Vec<String> = filter.severities.iter().map(|_| next()).collect();
            clauses.push(format!("f.severity IN ({})", marks.join(", ")));
        }
        if filter.user.is_some() {
            clauses.push(format!("f.user_id = {}", next()));
        }
        let limit = next();
        let offset = next();
        let filter_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let columns = FLAG_COLUMNS
            .split(", ")
            .map(|c| format!("f.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {columns}, o.summary AS call_summary, o.to_e164 AS call_callee \
             FROM flags f LEFT JOIN outbound_calls o ON o.id = f.outbound_id {filter_sql} \
             ORDER BY {rank}, f.created_at, f.id LIMIT {limit} OFFSET {offset}",
            rank = SEVERITY_RANK.replace("severity", "f.severity"),
        );
        let mut query = sqlx::query(&sql);
        for severity in &filter.severities {
            query = query.bind(severity.as_str());
        }
        if let Some(user) = &filter.user {
            query = query.bind(user.as_str());
        }
        let rows = query
            .bind(i64::from(filter.limit))
            .bind(i64::from(filter.offset))
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|row| {
                Ok(FlagForReview {
                    flag: flag_from_row(row)?,
                    summary: row.try_get("call_summary")?,
                    callee: row.try_get("call_callee")?,
                })
            })
            .collect()
    }

    /// Resolves flag `id` once (compare-and-set on its open state), and does
    /// what `action` says, with the audit entries, all in one transaction:
    /// `suspend` suspends the user, `block_number` lists the callee of the
    /// flag's call on the global do-not-call list.
    #[tracing::instrument(skip_all, fields(flag_id = id, action = action.as_str()))]
    pub async fn resolve_flag(
        &self,
        id: &str,
        by: &str,
        action: FlagAction,
        notes: Option<&str>,
        now_ms: i64,
    ) -> Result<FlagResolved, StoreError> {
        let mut tx = self.begin().await?;
        let sql = format!("SELECT {FLAG_COLUMNS} FROM flags WHERE id = $1");
        let Some(row) = sqlx::query(&sql).bind(id).fetch_optional(&mut *tx).await? else {
            return Ok(FlagResolved::Missing);
        };
        let before = flag_from_row(&row)?;
        if before.resolution.is_some() {
            return Ok(FlagResolved::AlreadyResolved(Box::new(before)));
        }
        let callee: Option<String> = match (&before.outbound_id, action) {
            (Some(outbound), FlagAction::BlockNumber) => {
                sqlx::query("SELECT to_e164 FROM outbound_calls WHERE id = $1")
                    .bind(outbound.as_str())
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|row| row.try_get("to_e164"))
                    .transpose()?
            }
            _ => None,
        };
        if action == FlagAction::BlockNumber && callee.is_none() {
            return Ok(FlagResolved::NoCallee);
        }
        let sql = format!(
            "UPDATE flags SET resolved_at = $2, resolved_by = $3, action = $4, notes = $5 \
             WHERE id = $1 AND resolved_at IS NULL RETURNING {FLAG_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(now_ms)
            .bind(by)
            .bind(action.as_str())
            .bind(notes.map(db_text))
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            // Resolved by someone else between the read and the write.
            drop(tx);
            return Ok(match self.get_flag(id).await? {
                Some(flag) => FlagResolved::AlreadyResolved(Box::new(flag)),
                None => FlagResolved::Missing,
            });
        };
        let flag = flag_from_row(&row)?;
        let entry = AuditEntry::new(now_ms, by, "flag_resolved", Some(&flag.user_id))
            .subject(flag.id.clone())
            .detail(serde_json::json!({
                "action": action.as_str(),
                "notes": notes,
                "flag_type": flag.kind,
                "severity": flag.severity.as_str(),
                "outbound_id": flag.outbound_id,
            }));
        append_audit(&mut tx, &entry).await?;
        match action {
            FlagAction::Suspend => {
                let reason = notes.unwrap_or(&flag.reason).to_owned();
                set_status(
                    &mut tx,
                    &flag.user_id,
                    "suspended",
                    by,
                    "user_suspended",
                    &reason,
                    Some(&flag.id),
                    now_ms,
                )
                .await?;
            }
            FlagAction::BlockNumber => {
                let callee = callee.unwrap_or_default();
                let reason = format!("flag {}: {}", flag.id, flag.reason);
                sqlx::query(
                    "INSERT INTO do_not_call (e164, user_id, reason, created_at) \
                     VALUES ($1, NULL, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(callee.as_str())
                .bind(db_text(&reason))
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
                let entry = AuditEntry::new(now_ms, by, "number_blocked", Some(&flag.user_id))
                    .subject(callee.clone())
                    .detail(serde_json::json!({ "flag_id": flag.id, "notes": notes }));
                append_audit(&mut tx, &entry).await?;
            }
            FlagAction::Dismiss | FlagAction::Warn => {}
        }
        tx.commit().await?;
        Ok(FlagResolved::Resolved(Box::new(flag)))
    }

    /// Sets `user`'s status to `status` (`suspended` or `active`) with an audit
    /// entry `action` by `actor` giving `reason`, in one transaction. Quotas and
    /// limits are not touched.
    #[tracing::instrument(skip_all, fields(user_id = %user, status))]
    pub async fn change_user_status(
        &self,
        user: &UserId,
        status: &str,
        actor: &str,
        action: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<StatusChanged, StoreError> {
        let mut tx = self.begin().await?;
        let current: Option<String> = sqlx::query("SELECT status FROM users WHERE id = $1")
            .bind(user.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| row.try_get("status"))
            .transpose()?;
        let Some(current) = current else {
            return Ok(StatusChanged::Missing);
        };
        if current == status {
            return Ok(StatusChanged::Unchanged);
        }
        set_status(&mut tx, user, status, actor, action, reason, None, now_ms).await?;
        tx.commit().await?;
        Ok(StatusChanged::Changed)
    }

    /// What `user`'s hourly and daily quotas and month's budget count at
    /// `now_ms` — the calls `submit_outbound` counts.
    #[tracing::instrument(skip_all, fields(user_id = %user))]
    pub async fn quota_use(
        &self,
        user: &UserId,
        now_ms: i64,
        month_start_ms: i64,
    ) -> Result<QuotaUse, StoreError> {
        let mut of = self
            .quota_use_of(std::slice::from_ref(user), now_ms, month_start_ms)
            .await?;
        Ok(of.remove(user.as_str()).unwrap_or_default())
    }

    /// [`Store::quota_use`] of each of `users`, in one query; a user who has
    /// no counted call is absent (all zeros).
    #[tracing::instrument(skip_all, fields(users = users.len()))]
    pub async fn quota_use_of(
        &self,
        users: &[UserId],
        now_ms: i64,
        month_start_ms: i64,
    ) -> Result<HashMap<String, QuotaUse>, StoreError> {
        if users.is_empty() {
            return Ok(HashMap::new());
        }
        let counts = super::outbound::COUNTS;
        // The call record (same id) holds when the call was answered and ended.
        let sql = format!(
            "SELECT o.user_id AS user_id, \
               COALESCE(SUM(CASE WHEN o.created_at > $1 THEN 1 ELSE 0 END), 0) AS last_hour, \
               COALESCE(SUM(CASE WHEN o.created_at > $2 THEN 1 ELSE 0 END), 0) AS last_day, \
               COALESCE(SUM(CASE WHEN o.created_at >= $3 \
                 THEN COALESCE(o.actual_cost_usd, o.estimated_cost_usd) ELSE 0.0 END), 0.0) AS spent, \
               COALESCE(SUM(CASE WHEN o.created_at >= $3 THEN 1 ELSE 0 END), 0) AS month_calls, \
               COALESCE(SUM(CASE WHEN o.created_at >= $3 AND o.status IN ({finished}) \
                 THEN 1 ELSE 0 END), 0) AS month_finished, \
               COALESCE(SUM(CASE WHEN o.created_at >= $3 AND o.status = 'completed' \
                 THEN 1 ELSE 0 END), 0) AS month_completed, \
               CAST(COALESCE(SUM(CASE WHEN o.created_at >= $3 AND c.answered_at IS NOT NULL \
                 AND c.ended_at IS NOT NULL THEN c.ended_at - c.answered_at ELSE 0 END), 0) \
                 AS BIGINT) AS month_talk_ms \
             FROM (SELECT user_id, id, created_at, status, actual_cost_usd, estimated_cost_usd \
                   FROM outbound_calls WHERE user_id IN ({users}) AND {counts}) o \
             LEFT JOIN calls c ON c.id = o.id \
             GROUP BY o.user_id",
            finished = super::outbound::FINISHED,
            users = placeholders(4, users.len()),
        );
        let mut query = sqlx::query(&sql)
            .bind(now_ms - 3_600_000)
            .bind(now_ms - 86_400_000)
            .bind(month_start_ms);
        for user in users {
            query = query.bind(user.as_str());
        }
        let mut of = HashMap::with_capacity(users.len());
        for row in query.fetch_all(self.pool()).await? {
            let user: String = row.try_get("user_id")?;
            of.insert(
                user,
                QuotaUse {
                    calls_last_hour: row.try_get("last_hour")?,
                    calls_last_day: row.try_get("last_day")?,
                    month_spend_usd: row.try_get("spent")?,
                    month_calls: row.try_get("month_calls")?,
                    month_finished: row.try_get("month_finished")?,
                    month_completed: row.try_get("month_completed")?,
                    month_talk_ms: row.try_get("month_talk_ms")?,
                },
            );
        }
        Ok(of)
    }
}

#[allow(clippy::too_many_arguments)]
async fn set_status(
    conn: &mut sqlx::AnyConnection,
    user: &UserId,
    status: &str,
    actor: &str,
    action: &str,
    reason: &str,
    flag_id: Option<&str>,
    now_ms: i64,
) -> Result<(), StoreError> {
    let before: Option<String> = sqlx::query("SELECT status FROM users WHERE id = $1")
        .bind(user.as_str())
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| row.try_get("status"))
        .transpose()?;
    sqlx::query("UPDATE users SET status = $2, updated_at = $3 WHERE id = $1")
        .bind(user.as_str())
        .bind(status)
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    let mut entry = AuditEntry::new(now_ms, actor, action, Some(user)).detail(serde_json::json!({
        "reason": reason,
        "from": before,
        "to": status,
    }));
    if let Some(flag_id) = flag_id {
        entry = entry.subject(flag_id);
    }
    append_audit(conn, &entry).await
}
