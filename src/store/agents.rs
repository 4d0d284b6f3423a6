//! Agents: who may connect a softphone, found by the hash of their token.

use sqlx::any::AnyRow;
use sqlx::Row as _;
use switchboard_actors::journal::now_ms;
use switchboard_actors::{AgentId, Workspace};

use super::{Store, StoreError};

/// Most ids bound in one `IN (…)` list: far below every backend's parameter limit.
const IDS_PER_QUERY: usize = 500;

/// An agent to create. The token itself is never stored, only its hash.
pub struct NewAgent {
    pub id: AgentId,
    pub name: String,
    pub workspace: Workspace,
    pub token_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRecord {
    pub id: AgentId,
    pub name: String,
    pub workspace: Workspace,
    pub created_at: i64,
}

const AGENT_COLUMNS: &str = "id, name, workspace, created_at";

impl Store {
    /// Fails with [`StoreError::Duplicate`] when the id or the token hash is taken.
    #[tracing::instrument(skip_all, fields(agent_id = %agent.id))]
    pub async fn create_agent(&self, agent: &NewAgent) -> Result<AgentRecord, StoreError> {
        let created_at = now_ms();
        sqlx::query(
            "INSERT INTO agents (id, name, workspace, token_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(agent.id.as_str())
        .bind(agent.name.as_str())
        .bind(agent.workspace.as_str())
        .bind(agent.token_hash.as_str())
        .bind(created_at)
        .execute(self.pool())
        .await
        .map_err(|e| StoreError::unique(e, || format!("agent {} or its token", agent.id)))?;
        Ok(AgentRecord {
            id: agent.id.clone(),
            name: agent.name.clone(),
            workspace: agent.workspace.clone(),
            created_at,
        })
    }

    #[tracing::instrument(skip_all)]
    pub async fn agent_by_token_hash(&self, hash: &str) -> Result<Option<AgentRecord>, StoreError> {
        let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE token_hash = $1");
        let row = sqlx::query(&sql)
            .bind(hash)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(agent_from_row).transpose()
    }

    #[tracing::instrument(skip_all, fields(agent_id = %id))]
    pub async fn get_agent(&self, id: &AgentId) -> Result<Option<AgentRecord>, StoreError> {
        let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(agent_from_row).transpose()
    }

    /// The agents among `ids` that exist, ordered by id; unknown ids are left out.
    #[tracing::instrument(skip_all, fields(ids = ids.len()))]
    pub async fn get_agents(&self, ids: &[AgentId]) -> Result<Vec<AgentRecord>, StoreError> {
        let mut agents = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let placeholders = (1..=chunk.len())
                .map(|n| format!("${n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id IN ({placeholders})");
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(id.as_str());
            }
            for row in query.fetch_all(self.pool()).await? {
                agents.push(agent_from_row(&row)?);
            }
        }
        agents.sort_by(|a, b| a.id.cmp(&b.id));
        agents.dedup_by(|a, b| a.id == b.id);
        Ok(agents)
    }

    /// Removes an agent; `false` when there was none. Its calls keep their record.
    #[tracing::instrument(skip_all, fields(agent_id = %id))]
    pub async fn delete_agent(&self, id: &AgentId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM agents WHERE id = $1")
            .bind(id.as_str())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Renames an agent; `None` when there is none.
    #[tracing::instrument(skip_all, fields(agent_id = %id))]
    pub async fn rename_agent(
        &self,
        id: &AgentId,
        name: &str,
    ) -> Result<Option<AgentRecord>, StoreError> {
        sqlx::query("UPDATE agents SET name = $1 WHERE id = $2")
            .bind(name)
            .bind(id.as_str())
            .execute(self.pool())
            .await?;
        self.get_agent(id).await
    }

    /// Every agent, by name.
    #[tracing::instrument(skip_all)]
    pub async fn list_agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        let sql = format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY name, id");
        let rows = sqlx::query(&sql).fetch_all(self.pool()).await?;
        rows.iter().map(agent_from_row).collect()
    }

    /// Every agent with its token hash: what a softphone connect is checked
    /// against when the database is unavailable.
    #[tracing::instrument(skip_all)]
    pub async fn agents_by_token_hash(&self) -> Result<Vec<(String, AgentRecord)>, StoreError> {
        let sql = format!("SELECT token_hash, {AGENT_COLUMNS} FROM agents");
        let rows = sqlx::query(&sql).fetch_all(self.pool()).await?;
        rows.iter()
            .map(|row| Ok((row.try_get("token_hash")?, agent_from_row(row)?)))
            .collect()
    }
}

fn agent_from_row(row: &AnyRow) -> Result<AgentRecord, StoreError> {
    let id: String = row.try_get("id")?;
    let workspace: String = row.try_get("workspace")?;
    Ok(AgentRecord {
        id: AgentId::parse(&id)
            .map_err(|e| StoreError::Corrupt(format!("agents.id {id:?}: {e}")))?,
        name: row.try_get("name")?,
        workspace: Workspace::parse(&workspace)
            .map_err(|e| StoreError::Corrupt(format!("agents.workspace {workspace:?}: {e}")))?,
        created_at: row.try_get("created_at")?,
    })
}
