//! The do-not-call list: numbers no outbound call may dial. One global list, kept
//! by the admin, and one per user; a number on either stops that user's calls.

use sqlx::any::AnyRow;
use sqlx::Row as _;
use switchboard_actors::journal::now_ms;
use switchboard_actors::UserId;

use super::{db_text, Store, StoreError};
use crate::domain::phone::PhoneNumber;

/// Which list an entry is on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DncScope {
    /// The admin's: it applies to every user.
    Global,
    /// One user's own.
    User(UserId),
}

impl DncScope {
    fn user_id(&self) -> Option<&str> {
        match self {
            DncScope::Global => None,
            DncScope::User(id) => Some(id.as_str()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DncEntry {
    pub e164: PhoneNumber,
    pub scope: DncScope,
    /// Why the number was listed, as given (an opt-out, a complaint…).
    pub reason: Option<String>,
    pub created_at: i64,
}

/// What [`Store::add_do_not_call`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DncAdded {
    Added(DncEntry),
    /// The number was on that list already: the entry as it was (its reason
    /// kept).
    Already(DncEntry),
}

impl Store {
    /// Puts `e164` on the list of `scope`; adding a listed number again changes
    /// nothing.
    #[tracing::instrument(skip_all, fields(e164 = %e164))]
    pub async fn add_do_not_call(
        &self,
        scope: &DncScope,
        e164: &PhoneNumber,
        reason: Option<&str>,
    ) -> Result<DncAdded, StoreError> {
        let added = sqlx::query(
            "INSERT INTO do_not_call (e164, user_id, reason, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(e164.as_str())
        .bind(scope.user_id())
        .bind(reason.map(db_text))
        .bind(now_ms())
        .execute(self.pool())
        .await?
        .rows_affected()
            > 0;
        let entry = self
            .do_not_call_entry(scope, e164)
            .await?
            .ok_or_else(|| StoreError::Conflict(format!("{e164} left the list meanwhile")))?;
        Ok(if added {
            DncAdded::Added(entry)
        } else {
            DncAdded::Already(entry)
        })
    }

    /// The entry of `e164` on the list of `scope`, if it is listed there.
    #[tracing::instrument(skip_all, fields(e164 = %e164))]
    pub async fn do_not_call_entry(
        &self,
        scope: &DncScope,
        e164: &PhoneNumber,
    ) -> Result<Option<DncEntry>, StoreError> {
        let row = sqlx::query(
            "SELECT e164, user_id, reason, created_at FROM do_not_call \
             WHERE e164 = $1 AND user_id IS NOT DISTINCT FROM $2",
        )
        .bind(e164.as_str())
        .bind(scope.user_id())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(entry_from_row).transpose()
    }

    /// The global list when `user` is `None`; else the user's own entries and the
    /// global ones. By number, global first.
    #[tracing::instrument(skip_all)]
    pub async fn list_do_not_call(
        &self,
        user: Option<&UserId>,
    ) -> Result<Vec<DncEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT e164, user_id, reason, created_at FROM do_not_call \
             WHERE user_id IS NULL OR user_id = $1 \
             ORDER BY e164, user_id IS NOT NULL",
        )
        .bind(user.map(UserId::as_str))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(entry_from_row).collect()
    }

    /// Takes `e164` off the list of `scope`; whether it was there.
    #[tracing::instrument(skip_all, fields(e164 = %e164))]
    pub async fn remove_do_not_call(
        &self,
        scope: &DncScope,
        e164: &PhoneNumber,
    ) -> Result<bool, StoreError> {
        let removed = sqlx::query(
            "DELETE FROM do_not_call WHERE e164 = $1 AND user_id IS NOT DISTINCT FROM $2",
        )
        .bind(e164.as_str())
        .bind(scope.user_id())
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(removed > 0)
    }

    /// Whether `user` may not call `e164`: the number is on the global list or on
    /// the user's own. What the outbound gates ask, at submit and at dispatch.
    #[tracing::instrument(skip_all, fields(user_id = %user, e164 = %e164))]
    pub async fn is_do_not_call(
        &self,
        user: &UserId,
        e164: &PhoneNumber,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT 1 AS listed FROM do_not_call \
             WHERE e164 = $1 AND (user_id IS NULL OR user_id = $2) LIMIT 1",
        )
        .bind(e164.as_str())
        .bind(user.as_str())
        .fetch_optional(self.pool())
        .await?;
        Ok(row.is_some())
    }
}

impl Store {
    /// Whether `e164` is on the global (the admin's) list: what applies to a
    /// message the engine sends on no user's behalf (the missed-call text, from an
    /// inbound number, which no user owns).
    #[tracing::instrument(skip_all, fields(e164 = %e164))]
    pub async fn is_globally_do_not_call(&self, e164: &PhoneNumber) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT 1 AS listed FROM do_not_call WHERE e164 = $1 AND user_id IS NULL LIMIT 1",
        )
        .bind(e164.as_str())
        .fetch_optional(self.pool())
        .await?;
        Ok(row.is_some())
    }
}

fn entry_from_row(row: &AnyRow) -> Result<DncEntry, StoreError> {
    let e164: String = row.try_get("e164")?;
    let user_id: Option<String> = row.try_get("user_id")?;
    let scope = match user_id {
        None => DncScope::Global,
        Some(id) => DncScope::User(
            UserId::parse(&id)
                .map_err(|e| StoreError::Corrupt(format!("do_not_call.user_id {id:?}: {e}")))?,
        ),
    };
    Ok(DncEntry {
        e164: PhoneNumber::parse(&e164)
            .map_err(|e| StoreError::Corrupt(format!("do_not_call.e164 {e164:?}: {e}")))?,
        scope,
        reason: row.try_get("reason")?,
        created_at: row.try_get("created_at")?,
    })
}
