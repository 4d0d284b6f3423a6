//! Phone numbers: which workspace owns each one and where its calls go.

use sqlx::any::AnyRow;
use sqlx::Row as _;
use switchboard_actors::journal::now_ms;
use switchboard_actors::number::Route;
use switchboard_actors::Workspace;

use super::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberRecord {
    /// The number in E.164 form, as the caller parsed it.
    pub e164: String,
    pub workspace: Workspace,
    pub route: Route,
    pub created_at: i64,
    pub updated_at: i64,
}

const NUMBER_COLUMNS: &str = "e164, workspace, route, created_at, updated_at";

impl Store {
    /// Creates the number or replaces its workspace and route; `created_at` is kept.
    #[tracing::instrument(skip_all, fields(e164 = %e164))]
    pub async fn upsert_number(
        &self,
        e164: &str,
        workspace: &Workspace,
        route: &Route,
    ) -> Result<NumberRecord, StoreError> {
        let route = serde_json::to_string(route)
            .map_err(|e| StoreError::Corrupt(format!("route of {e164}: {e}")))?;
        let sql = format!(
            "INSERT INTO numbers (e164, workspace, route, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (e164) DO UPDATE SET \
                 workspace = excluded.workspace, \
                 route = excluded.route, \
                 updated_at = excluded.updated_at \
             RETURNING {NUMBER_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(e164)
            .bind(workspace.as_str())
            .bind(route)
            .bind(now_ms())
            .fetch_one(self.pool())
            .await?;
        number_from_row(&row)
    }

    #[tracing::instrument(skip_all, fields(e164 = %e164))]
    pub async fn get_number(&self, e164: &str) -> Result<Option<NumberRecord>, StoreError> {
        let sql = format!("SELECT {NUMBER_COLUMNS} FROM numbers WHERE e164 = $1");
        let row = sqlx::query(&sql)
            .bind(e164)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(number_from_row).transpose()
    }

    /// Every number, by E.164 form.
    #[tracing::instrument(skip_all)]
    pub async fn list_numbers(&self) -> Result<Vec<NumberRecord>, StoreError> {
        let sql = format!("SELECT {NUMBER_COLUMNS} FROM numbers ORDER BY e164");
        let rows = sqlx::query(&sql).fetch_all(self.pool()).await?;
        rows.iter().map(number_from_row).collect()
    }
}

fn number_from_row(row: &AnyRow) -> Result<NumberRecord, StoreError> {
    let e164: String = row.try_get("e164")?;
    let workspace: String = row.try_get("workspace")?;
    let route: String = row.try_get("route")?;
    Ok(NumberRecord {
        workspace: Workspace::parse(&workspace)
            .map_err(|e| StoreError::Corrupt(format!("numbers.workspace of {e164}: {e}")))?,
        route: serde_json::from_str(&route)
            .map_err(|e| StoreError::Corrupt(format!("numbers.route of {e164}: {e}")))?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        e164,
    })
}
