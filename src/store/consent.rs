//! Consent records: the attestation a user signed for an outbound call, as
//! evidence. Written once ([`Store::create_consent`]), never updated, read back
//! by id. What goes into one (the wording, its hash, the client address) is
//! decided by `outbound::consent`.

use std::fmt;

use sqlx::any::AnyRow;
use sqlx::Row as _;

use super::{db_text, Store, StoreError};

/// One consent record: 32 lowercase hex digits (a random UUID).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConsentId(String);

impl ConsentId {
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }

    /// Reads an id back (from a row, a path): 32 lowercase hex digits.
    pub fn parse(raw: &str) -> Option<Self> {
        is_hex_id(raw).then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for ConsentId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ConsentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `raw` is an id of the form random ids are made in: 32 lowercase hex
/// digits (a UUID's simple form).
pub(crate) fn is_hex_id(raw: &str) -> bool {
    raw.len() == 32 && raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A signed attestation, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    pub id: ConsentId,
    /// Who signed: the user whose key made the request.
    pub user_id: String,
    /// Which wording the signer saw, and its hex SHA-256: the text can be proved.
    pub wording_version: String,
    pub wording_hash: String,
    /// The boxes affirmed, by their field names (`legitimate_purpose`…).
    pub affirmed: Vec<String>,
    pub signature_full_name: String,
    pub signature_organization: Option<String>,
    /// The client's address, as text.
    pub ip: String,
    pub user_agent: Option<String>,
    /// Milliseconds since the epoch.
    pub created_at: i64,
}

const CONSENT_COLUMNS: &str = "id, user_id, wording_version, wording_hash, affirmed, \
                               signature_full_name, signature_organization, ip, user_agent, \
                               created_at";

impl Store {
    /// Stores a new record; fails with [`StoreError::Duplicate`] when its id is
    /// taken.
    #[tracing::instrument(skip_all, fields(consent_id = %record.id))]
    pub async fn create_consent(&self, record: &ConsentRecord) -> Result<(), StoreError> {
        let mut conn = self.pool().acquire().await?;
        insert_consent(&mut conn, record).await
    }

    #[tracing::instrument(skip_all, fields(consent_id = %id))]
    pub async fn get_consent(&self, id: &ConsentId) -> Result<Option<ConsentRecord>, StoreError> {
        let sql = format!("SELECT {CONSENT_COLUMNS} FROM consent_records WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(consent_from_row).transpose()
    }
}

/// Inserts `record` on `conn` (a transaction's, to store it with the call that
/// references it).
pub(crate) async fn insert_consent(
    conn: &mut sqlx::AnyConnection,
    record: &ConsentRecord,
) -> Result<(), StoreError> {
    let affirmed = serde_json::to_string(&record.affirmed)
        .map_err(|e| StoreError::Corrupt(format!("affirmed of consent {}: {e}", record.id)))?;
    let sql = format!(
        "INSERT INTO consent_records ({CONSENT_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    );
    sqlx::query(&sql)
        .bind(record.id.as_str())
        .bind(db_text(&record.user_id))
        .bind(db_text(&record.wording_version))
        .bind(db_text(&record.wording_hash))
        .bind(affirmed)
        .bind(db_text(&record.signature_full_name))
        .bind(record.signature_organization.as_deref().map(db_text))
        .bind(db_text(&record.ip))
        .bind(record.user_agent.as_deref().map(db_text))
        .bind(record.created_at)
        .execute(conn)
        .await
        .map_err(|e| StoreError::unique(e, || format!("consent record {}", record.id)))?;
    Ok(())
}

fn consent_from_row(row: &AnyRow) -> Result<ConsentRecord, StoreError> {
    let id: String = row.try_get("id")?;
    let id = ConsentId::parse(&id)
        .ok_or_else(|| StoreError::Corrupt(format!("consent_records.id {id:?}")))?;
    let affirmed: String = row.try_get("affirmed")?;
    Ok(ConsentRecord {
        affirmed: serde_json::from_str(&affirmed)
            .map_err(|e| StoreError::Corrupt(format!("consent_records.affirmed of {id}: {e}")))?,
        user_id: row.try_get("user_id")?,
        wording_version: row.try_get("wording_version")?,
        wording_hash: row.try_get("wording_hash")?,
        signature_full_name: row.try_get("signature_full_name")?,
        signature_organization: row.try_get("signature_organization")?,
        ip: row.try_get("ip")?,
        user_agent: row.try_get("user_agent")?,
        created_at: row.try_get("created_at")?,
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consent_ids_are_random_hex() {
        let id = ConsentId::new();
        assert_eq!(ConsentId::parse(id.as_str()), Some(id.clone()));
        assert_ne!(ConsentId::new(), id);
        for bad in [
            "",
            "abc",
            "gggggggggggggggggggggggggggggggg",
            "0123456789ABCDEF0123456789abcdef",
            "0123456789abcdef0123456789abcdef0",
        ] {
            assert_eq!(ConsentId::parse(bad), None, "{bad}");
        }
    }
}

/// What [`Store::pin_consent_wording`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WordingPin {
    /// The version is pinned to this wording (now, or since an earlier run).
    Pinned,
    /// The version was pinned to another wording (its hash as stored).
    Changed { stored_hash: String },
}

impl Store {
    /// Pins `version` to the wording of hash `hash` (and keeps its text), unless
    /// it is pinned already; then says whether the stored wording is this one.
    /// Records signed before the pin exists count too: a record of `version`
    /// with another hash means the wording changed.
    #[tracing::instrument(skip_all, fields(version))]
    pub async fn pin_consent_wording(
        &self,
        version: &str,
        hash: &str,
        wording: &str,
        now_ms: i64,
    ) -> Result<WordingPin, StoreError> {
        sqlx::query(
            "INSERT INTO consent_versions (version, wording_hash, wording, first_used_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(version)
        .bind(hash)
        .bind(db_text(wording))
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        let pinned: String =
            sqlx::query("SELECT wording_hash FROM consent_versions WHERE version = $1")
                .bind(version)
                .fetch_one(self.pool())
                .await?
                .try_get("wording_hash")?;
        if pinned != hash {
            return Ok(WordingPin::Changed {
                stored_hash: pinned,
            });
        }
        let signed_other = sqlx::query(
            "SELECT wording_hash FROM consent_records \
             WHERE wording_version = $1 AND wording_hash <> $2 LIMIT 1",
        )
        .bind(version)
        .bind(hash)
        .fetch_optional(self.pool())
        .await?;
        Ok(match signed_other {
            Some(row) => WordingPin::Changed {
                stored_hash: row.try_get("wording_hash")?,
            },
            None => WordingPin::Pinned,
        })
    }

    /// Whether `user` has signed any wording before.
    #[tracing::instrument(skip_all, fields(user_id = user))]
    pub async fn has_any_consent(&self, user: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("SELECT 1 AS signed FROM consent_records WHERE user_id = $1 LIMIT 1")
                .bind(user)
                .fetch_optional(self.pool())
                .await?
                .is_some(),
        )
    }

    /// Whether `user` has signed the wording `version` of hash `hash` before.
    #[tracing::instrument(skip_all, fields(user_id = user, version))]
    pub async fn has_accepted_wording(
        &self,
        user: &str,
        version: &str,
        hash: &str,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "SELECT 1 AS signed FROM consent_records \
             WHERE user_id = $1 AND wording_version = $2 AND wording_hash = $3 LIMIT 1",
        )
        .bind(user)
        .bind(version)
        .bind(hash)
        .fetch_optional(self.pool())
        .await?
        .is_some())
    }
}
