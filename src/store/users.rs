//! Users: who asks switchboard to place calls, on which plan, with which
//! per-user overrides of its limits; found by the hash of their API key. The key
//! itself is never stored; the webhook secret is (it signs the user's callbacks)
//! and is read apart from the record, so a record never carries a secret.

use secrecy::SecretString;
use sqlx::any::AnyRow;
use sqlx::Row as _;
use switchboard_actors::journal::now_ms;
use switchboard_actors::{UserId, Workspace};

use super::{db_text, Store, StoreError};
use crate::domain::user::{EmailAddress, PlanName, TimeZoneName, UserStatus};

/// A user's fields as parsed at the edge.
pub struct UserFields {
    pub email: EmailAddress,
    pub name: String,
    pub workspace: Workspace,
    pub timezone: Option<TimeZoneName>,
    pub plan: PlanName,
}

/// A user to create: active, with no overrides.
pub struct NewUser {
    pub id: UserId,
    pub fields: UserFields,
    /// [`crate::auth::token_hash`] of the API key.
    pub api_key_hash: String,
    pub webhook_secret: SecretString,
}

/// A user as stored, without secrets.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub id: UserId,
    pub email: EmailAddress,
    pub name: String,
    pub workspace: Workspace,
    pub timezone: Option<TimeZoneName>,
    pub plan: PlanName,
    pub status: UserStatus,
    pub overrides: LimitOverrides,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A user's own limits, each replacing its plan's; `None`: the plan's.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LimitOverrides {
    pub calls_per_hour: Option<u32>,
    pub calls_per_day: Option<u32>,
    pub monthly_budget_usd: Option<f64>,
    pub max_call_minutes: Option<u32>,
}

/// What an update changes: `None` leaves a field as it is; for the optional
/// ones, `Some(None)` clears it (an override back to the plan's).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserChanges {
    pub name: Option<String>,
    pub timezone: Option<Option<TimeZoneName>>,
    pub plan: Option<PlanName>,
    pub status: Option<UserStatus>,
    pub calls_per_hour: Option<Option<u32>>,
    pub calls_per_day: Option<Option<u32>>,
    pub monthly_budget_usd: Option<Option<f64>>,
    pub max_call_minutes: Option<Option<u32>>,
}

/// One value of an update, bound in the `SET` list.
enum Value {
    Text(Option<String>),
    Int(Option<i64>),
    Real(Option<f64>),
}

impl UserChanges {
    /// `(column, value)` of every field that changes; the column names are fixed
    /// here, never taken from input.
    fn columns(&self) -> Vec<(&'static str, Value)> {
        let int = |v: &Option<u32>| Value::Int(v.map(i64::from));
        let mut set = Vec::new();
        if let Some(name) = &self.name {
            set.push(("name", Value::Text(Some(db_text(name)))));
        }
        if let Some(timezone) = &self.timezone {
            let tz = timezone.as_ref().map(|t| t.as_str().to_owned());
            set.push(("timezone", Value::Text(tz)));
        }
        if let Some(plan) = &self.plan {
            set.push(("plan", Value::Text(Some(plan.as_str().to_owned()))));
        }
        if let Some(status) = self.status {
            set.push(("status", Value::Text(Some(status.as_str().to_owned()))));
        }
        if let Some(v) = &self.calls_per_hour {
            set.push(("calls_per_hour", int(v)));
        }
        if let Some(v) = &self.calls_per_day {
            set.push(("calls_per_day", int(v)));
        }
        if let Some(v) = self.monthly_budget_usd {
            set.push(("monthly_budget_usd", Value::Real(v)));
        }
        if let Some(v) = &self.max_call_minutes {
            set.push(("max_call_minutes", int(v)));
        }
        set
    }
}

const USER_COLUMNS: &str = "id, email, name, workspace, timezone, plan, status, calls_per_hour, \
                            calls_per_day, monthly_budget_usd, max_call_minutes, created_at, \
                            updated_at";

impl Store {
    /// Fails with [`StoreError::Duplicate`] when the e-mail (or id, or key hash)
    /// is taken.
    #[tracing::instrument(skip_all, fields(user_id = %user.id))]
    pub async fn create_user(&self, user: &NewUser) -> Result<UserRecord, StoreError> {
        use secrecy::ExposeSecret as _;
        let sql = format!(
            "INSERT INTO users (id, email, name, workspace, timezone, plan, status, \
                 api_key_hash, webhook_secret, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
             RETURNING {USER_COLUMNS}"
        );
        let fields = &user.fields;
        let row = sqlx::query(&sql)
            .bind(user.id.as_str())
            .bind(fields.email.as_str())
            .bind(db_text(&fields.name))
            .bind(fields.workspace.as_str())
            .bind(fields.timezone.as_ref().map(TimeZoneName::as_str))
            .bind(fields.plan.as_str())
            .bind(UserStatus::Active.as_str())
            .bind(user.api_key_hash.as_str())
            .bind(user.webhook_secret.expose_secret())
            .bind(now_ms())
            .fetch_one(self.pool())
            .await
            .map_err(|e| {
                StoreError::unique(e, || format!("a user with e-mail {}", fields.email))
            })?;
        user_from_row(&row)
    }

    #[tracing::instrument(skip_all, fields(user_id = %id))]
    pub async fn get_user(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// A page of users, newest first (`status` narrows it), and how many match.
    #[tracing::instrument(skip_all)]
    pub async fn list_users(
        &self,
        status: Option<UserStatus>,
        limit: u32,
        offset: u64,
    ) -> Result<(Vec<UserRecord>, i64), StoreError> {
        let filter = if status.is_some() {
            "WHERE status = $1"
        } else {
            "WHERE $1 IS NULL"
        };
        let total: i64 = sqlx::query(&format!("SELECT COUNT(*) AS total FROM users {filter}"))
            .bind(status.map(UserStatus::as_str))
            .fetch_one(self.pool())
            .await?
            .try_get("total")?;
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users {filter} \
             ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
        );
        let rows = sqlx::query(&sql)
            .bind(status.map(UserStatus::as_str))
            .bind(i64::from(limit))
            .bind(i64::try_from(offset).unwrap_or(i64::MAX))
            .fetch_all(self.pool())
            .await?;
        let users = rows.iter().map(user_from_row).collect::<Result<_, _>>()?;
        Ok((users, total))
    }

    /// The user whose API key hashes to `hash`.
    #[tracing::instrument(skip_all)]
    pub async fn user_by_key_hash(&self, hash: &str) -> Result<Option<UserRecord>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE api_key_hash = $1");
        let row = sqlx::query(&sql)
            .bind(hash)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// The secret that signs the user's callbacks.
    #[tracing::instrument(skip_all, fields(user_id = %id))]
    pub async fn user_webhook_secret(
        &self,
        id: &UserId,
    ) -> Result<Option<SecretString>, StoreError> {
        let row = sqlx::query("SELECT webhook_secret FROM users WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?;
        let secret: Option<String> = row.map(|row| row.try_get("webhook_secret")).transpose()?;
        Ok(secret.map(SecretString::from))
    }

    /// Applies `changes` in one statement (concurrent updates of different fields
    /// both land); `None` when there is no such user.
    #[tracing::instrument(skip_all, fields(user_id = %id))]
    pub async fn update_user(
        &self,
        id: &UserId,
        changes: &UserChanges,
    ) -> Result<Option<UserRecord>, StoreError> {
        let columns = changes.columns();
        let set: String = columns
            .iter()
            .enumerate()
            .map(|(i, (column, _))| format!("{column} = ${}, ", i + 3))
            .collect();
        let sql =
            format!("UPDATE users SET {set}updated_at = $2 WHERE id = $1 RETURNING {USER_COLUMNS}");
        let mut query = sqlx::query(&sql).bind(id.as_str()).bind(now_ms());
        for (_, value) in columns {
            query = match value {
                Value::Text(v) => query.bind(v),
                Value::Int(v) => query.bind(v),
                Value::Real(v) => query.bind(v),
            };
        }
        let row = query.fetch_optional(self.pool()).await?;
        row.as_ref().map(user_from_row).transpose()
    }
}

fn corrupt(column: &str, raw: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("users.{column} {raw:?}: {err}"))
}

/// A stored count back as a `u32` (they are written from one).
fn count(row: &AnyRow, column: &str) -> Result<Option<u32>, StoreError> {
    let value: Option<i64> = row.try_get(column)?;
    value
        .map(|v| u32::try_from(v).map_err(|e| corrupt(column, &v.to_string(), e)))
        .transpose()
}

fn user_from_row(row: &AnyRow) -> Result<UserRecord, StoreError> {
    let id: String = row.try_get("id")?;
    let email: String = row.try_get("email")?;
    let workspace: String = row.try_get("workspace")?;
    let timezone: Option<String> = row.try_get("timezone")?;
    let plan: String = row.try_get("plan")?;
    let status: String = row.try_get("status")?;
    Ok(UserRecord {
        id: UserId::parse(&id).map_err(|e| corrupt("id", &id, e))?,
        email: EmailAddress::parse(&email).map_err(|e| corrupt("email", &email, e))?,
        name: row.try_get("name")?,
        workspace: Workspace::parse(&workspace).map_err(|e| corrupt("workspace", &workspace, e))?,
        timezone: timezone
            .map(|tz| TimeZoneName::parse(&tz).map_err(|e| corrupt("timezone", &tz, e)))
            .transpose()?,
        plan: PlanName::parse(&plan).map_err(|e| corrupt("plan", &plan, e))?,
        status: UserStatus::parse(&status).map_err(|e| corrupt("status", &status, e))?,
        overrides: LimitOverrides {
            calls_per_hour: count(row, "calls_per_hour")?,
            calls_per_day: count(row, "calls_per_day")?,
            monthly_budget_usd: row.try_get("monthly_budget_usd")?,
            max_call_minutes: count(row, "max_call_minutes")?,
        },
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
