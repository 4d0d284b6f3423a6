//! AI assistants: what each says and does on a call. A call reads its assistant
//! when it starts, so an update takes effect on the next call.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::Row as _;
use switchboard_actors::journal::now_ms;
use switchboard_actors::number::Route;
use switchboard_actors::{AssistantId, Workspace};

use super::{Store, StoreError};
use crate::domain::assistant::ToolSpec;

/// An assistant as stored (and as the API shows it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssistantRecord {
    pub id: AssistantId,
    pub name: String,
    pub workspace: Workspace,
    /// The system instructions: who the assistant is and what its goal is.
    pub instructions: String,
    /// A GA realtime voice.
    pub voice: String,
    /// The realtime model.
    pub model: String,
    /// Said first, before the caller speaks; `None`: the model opens as it likes.
    pub greeting: Option<String>,
    pub tools: Vec<ToolSpec>,
    /// Where the call goes when the assistant cannot take or keep it (`agents` or
    /// `voicemail`).
    pub on_failure: Route,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The editable fields of an assistant (create, or full replace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssistantFields {
    pub name: String,
    pub workspace: Workspace,
    pub instructions: String,
    pub voice: String,
    pub model: String,
    pub greeting: Option<String>,
    pub tools: Vec<ToolSpec>,
    pub on_failure: Route,
}

/// What [`Store::delete_assistant`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteAssistant {
    Deleted,
    NotFound,
    /// A number routes to the assistant (the first such number, E.164).
    InUse(String),
}

const ASSISTANT_COLUMNS: &str = "id, name, workspace, instructions, voice, model, greeting, \
                                 tools, on_failure, created_at, updated_at";

impl Store {
    /// Fails with [`StoreError::Duplicate`] when the id is taken.
    #[tracing::instrument(skip_all, fields(assistant_id = %id))]
    pub async fn create_assistant(
        &self,
        id: &AssistantId,
        fields: &AssistantFields,
    ) -> Result<AssistantRecord, StoreError> {
        let (tools, on_failure) = encode(id, fields)?;
        let sql = format!(
            "INSERT INTO assistants ({ASSISTANT_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
             RETURNING {ASSISTANT_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .bind(fields.name.as_str())
            .bind(fields.workspace.as_str())
            .bind(fields.instructions.as_str())
            .bind(fields.voice.as_str())
            .bind(fields.model.as_str())
            .bind(fields.greeting.as_deref())
            .bind(tools)
            .bind(on_failure)
            .bind(now_ms())
            .fetch_one(self.pool())
            .await
            .map_err(|e| StoreError::unique(e, || format!("assistant {id}")))?;
        assistant_from_row(&row)
    }

    #[tracing::instrument(skip_all, fields(assistant_id = %id))]
    pub async fn get_assistant(
        &self,
        id: &AssistantId,
    ) -> Result<Option<AssistantRecord>, StoreError> {
        let sql = format!("SELECT {ASSISTANT_COLUMNS} FROM assistants WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(assistant_from_row).transpose()
    }

    /// Every assistant, by name.
    #[tracing::instrument(skip_all)]
    pub async fn list_assistants(&self) -> Result<Vec<AssistantRecord>, StoreError> {
        let sql = format!("SELECT {ASSISTANT_COLUMNS} FROM assistants ORDER BY name, id");
        let rows = sqlx::query(&sql).fetch_all(self.pool()).await?;
        rows.iter().map(assistant_from_row).collect()
    }

    /// Replaces every editable field; `None` when there is no such assistant.
    /// `created_at` is kept.
    #[tracing::instrument(skip_all, fields(assistant_id = %id))]
    pub async fn update_assistant(
        &self,
        id: &AssistantId,
        fields: &AssistantFields,
    ) -> Result<Option<AssistantRecord>, StoreError> {
        let (tools, on_failure) = encode(id, fields)?;
        let sql = format!(
            "UPDATE assistants SET name = $2, workspace = $3, instructions = $4, voice = $5, \
                 model = $6, greeting = $7, tools = $8, on_failure = $9, updated_at = $10 \
             WHERE id = $1 \
             RETURNING {ASSISTANT_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .bind(fields.name.as_str())
            .bind(fields.workspace.as_str())
            .bind(fields.instructions.as_str())
            .bind(fields.voice.as_str())
            .bind(fields.model.as_str())
            .bind(fields.greeting.as_deref())
            .bind(tools)
            .bind(on_failure)
            .bind(now_ms())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(assistant_from_row).transpose()
    }

    /// Deletes the assistant unless a number routes to it; the check and the
    /// delete are one statement.
    #[tracing::instrument(skip_all, fields(assistant_id = %id))]
    pub async fn delete_assistant(&self, id: &AssistantId) -> Result<DeleteAssistant, StoreError> {
        let route = ai_route(id)?;
        let deleted = sqlx::query(
            "DELETE FROM assistants WHERE id = $1 \
             AND NOT EXISTS (SELECT 1 FROM numbers WHERE route = $2)",
        )
        .bind(id.as_str())
        .bind(route.as_str())
        .execute(self.pool())
        .await?
        .rows_affected();
        if deleted > 0 {
            return Ok(DeleteAssistant::Deleted);
        }
        if let Some(e164) = self.number_routed_to(id).await? {
            return Ok(DeleteAssistant::InUse(e164));
        }
        Ok(DeleteAssistant::NotFound)
    }

    /// Every live number (E.164 form) whose route is this assistant.
    #[tracing::instrument(skip_all, fields(assistant_id = %id))]
    pub async fn numbers_routed_to(&self, id: &AssistantId) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT e164 FROM numbers WHERE route = $1 ORDER BY e164")
            .bind(ai_route(id)?)
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .iter()
            .map(|row| row.try_get("e164"))
            .collect::<Result<_, _>>()?)
    }

    /// Assistant id → the (first, by E.164 form) pool number it holds.
    #[tracing::instrument(skip_all)]
    pub async fn assistant_numbers(&self) -> Result<HashMap<String, String>, StoreError> {
        let rows = sqlx::query(
            "SELECT assistant_id, MIN(e164) AS e164 FROM phone_numbers \
             WHERE assistant_id IS NOT NULL AND status = 'ASSIGNED' GROUP BY assistant_id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("assistant_id")?, row.try_get("e164")?)))
            .collect()
    }

    /// The first number (by E.164 form) whose route is this assistant.
    #[tracing::instrument(skip_all, fields(assistant_id = %id))]
    pub async fn number_routed_to(&self, id: &AssistantId) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT e164 FROM numbers WHERE route = $1 ORDER BY e164 LIMIT 1")
            .bind(ai_route(id)?)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|row| row.try_get("e164")).transpose()?)
    }
}

/// A number's stored route to the assistant `id`: numbers store their route as
/// `serde_json::to_string(&Route)`, so the same call gives the same text.
fn ai_route(id: &AssistantId) -> Result<String, StoreError> {
    serde_json::to_string(&Route::Ai {
        assistant_id: id.clone(),
    })
    .map_err(|e| StoreError::Corrupt(format!("route to assistant {id}: {e}")))
}

fn encode(id: &AssistantId, fields: &AssistantFields) -> Result<(String, String), StoreError> {
    let tools = serde_json::to_string(&fields.tools)
        .map_err(|e| StoreError::Corrupt(format!("tools of assistant {id}: {e}")))?;
    let on_failure = serde_json::to_string(&fields.on_failure)
        .map_err(|e| StoreError::Corrupt(format!("on_failure of assistant {id}: {e}")))?;
    Ok((tools, on_failure))
}

fn assistant_from_row(row: &AnyRow) -> Result<AssistantRecord, StoreError> {
    let id: String = row.try_get("id")?;
    let id = AssistantId::parse(&id)
        .map_err(|e| StoreError::Corrupt(format!("assistants.id {id:?}: {e}")))?;
    let workspace: String = row.try_get("workspace")?;
    let tools: String = row.try_get("tools")?;
    let on_failure: String = row.try_get("on_failure")?;
    Ok(AssistantRecord {
        workspace: Workspace::parse(&workspace)
            .map_err(|e| StoreError::Corrupt(format!("assistants.workspace of {id}: {e}")))?,
        tools: serde_json::from_str(&tools)
            .map_err(|e| StoreError::Corrupt(format!("assistants.tools of {id}: {e}")))?,
        on_failure: serde_json::from_str(&on_failure)
            .map_err(|e| StoreError::Corrupt(format!("assistants.on_failure of {id}: {e}")))?,
        name: row.try_get("name")?,
        instructions: row.try_get("instructions")?,
        voice: row.try_get("voice")?,
        model: row.try_get("model")?,
        greeting: row.try_get("greeting")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        id,
    })
}
