//! Safety flags and the audit trail (issue 12). A flag is a finding about a user
//! or one of their calls (a screened objective, a velocity rule, a transcript, a
//! telephony pattern); [`Store::raise_flags`] stores findings and, when one is
//! critical, pauses the user in the same transaction and writes the pause to the
//! audit trail. The trail is append-only: this module writes it with
//! [`append_audit`] and reads it; nothing in the code updates or deletes it.

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row as _;
use switchboard_actors::UserId;

use super::{db_text, Store, StoreError};
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
    /// A new entry, with a fresh id.
    pub fn new(at: i64, actor: &str, action: &str, user_id: Option<&UserId>) -> Self {
        Self {
            id: uuid::Uuid::new_v4().simple().to_string(),
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
