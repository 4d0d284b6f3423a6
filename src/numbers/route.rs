//! A live number's route (`agents`, `ai`, `voicemail`): checked against the agents
//! and assistants that exist, recorded in the store, handed to the number's actor,
//! which takes it for the number's next call.

use switchboard_actors::number::Route;
use switchboard_actors::{AgentId, AssistantId, Workspace};

use super::{NumberService, NumbersError};
use crate::domain::phone::PhoneNumber;
use crate::store::numbers::NumberRecord;
use crate::store::pool::{PoolFilter, PoolStatus};
use crate::store::Store;

/// Parses a route and checks it against the agents and assistants that exist.
pub async fn parse_route(
    store: &Store,
    raw: serde_json::Value,
    workspace: &Workspace,
) -> Result<Route, NumbersError> {
    let kind = raw.get("kind").and_then(|k| k.as_str()).unwrap_or_default();
    if !matches!(kind, "agents" | "voicemail" | "ai") {
        return Err(NumbersError::refused(
            "bad-field",
            format!("route.kind must be \"agents\", \"ai\" or \"voicemail\", not {kind:?}"),
        ));
    }
    // An assistant id that cannot be one names no assistant: the same refusal as
    // an id that names none.
    if let Some(id) = raw.get("assistant_id").and_then(|id| id.as_str()) {
        if kind == "ai" && AssistantId::parse(id).is_err() {
            return Err(unknown_assistant(id));
        }
    }
    let route: Route = serde_json::from_value(raw)
        .map_err(|e| NumbersError::refused("bad-field", format!("route: {e}")))?;
    match &route {
        Route::Agents { agent_ids } => check_agents(store, agent_ids, workspace, "route").await?,
        Route::Ai { assistant_id } => check_assistant(store, assistant_id, workspace).await?,
        Route::Voicemail => {}
    }
    Ok(route)
}

/// Every agent of a route (`field` names it in refusals) exists and belongs to
/// `workspace`.
pub async fn check_agents(
    store: &Store,
    agent_ids: &[AgentId],
    workspace: &Workspace,
    field: &str,
) -> Result<(), NumbersError> {
    let found = store.get_agents(agent_ids).await?;
    for id in agent_ids {
        match found.iter().find(|a| &a.id == id) {
            None => {
                return Err(NumbersError::refused(
                    "unknown-agent",
                    format!("{field}: no agent {id}"),
                ))
            }
            Some(agent) if &agent.workspace != workspace => {
                return Err(NumbersError::refused(
                    "wrong-workspace",
                    format!(
                        "{field}: agent {id} belongs to workspace {}",
                        agent.workspace
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The assistant of an `ai` route exists and belongs to the number's workspace.
async fn check_assistant(
    store: &Store,
    assistant_id: &AssistantId,
    workspace: &Workspace,
) -> Result<(), NumbersError> {
    let assistant = store
        .get_assistant(assistant_id)
        .await?
        .ok_or_else(|| unknown_assistant(assistant_id.as_str()))?;
    if &assistant.workspace != workspace {
        return Err(NumbersError::refused(
            "wrong-workspace",
            format!(
                "route: assistant {assistant_id} belongs to workspace {}",
                assistant.workspace
            ),
        ));
    }
    Ok(())
}

fn unknown_assistant(id: &str) -> NumbersError {
    NumbersError::refused("unknown-assistant", format!("route: no assistant {id:?}"))
}

impl NumberService<'_> {
    /// Records a number's route (the store is the record), then hands it to the
    /// number's actor, which takes it for its next call.
    pub async fn save_route(
        &self,
        e164: &str,
        workspace: &Workspace,
        route: &Route,
    ) -> Result<NumberRecord, NumbersError> {
        let record = self.store.upsert_number(e164, workspace, route).await?;
        self.book
            .upsert(record.e164.clone(), workspace.clone(), route.clone())
            .await?;
        Ok(record)
    }

    /// Creates a live number or re-routes it (and moves it to `workspace`); whether
    /// it existed before.
    pub async fn put_number(
        &self,
        e164: &PhoneNumber,
        workspace: &Workspace,
        raw_route: serde_json::Value,
    ) -> Result<(NumberRecord, bool), NumbersError> {
        let route = parse_route(self.store, raw_route, workspace).await?;
        let existed = self.store.get_number(e164.as_str()).await?.is_some();
        let record = self.save_route(e164.as_str(), workspace, &route).await?;
        tracing::info!(e164 = %record.e164, existed, "number saved");
        Ok((record, existed))
    }

    /// Re-routes one number; the number's actor takes the route for its next call.
    /// Its workspace is `workspace`, else the live number's, else the one pool
    /// workspace holding it.
    pub async fn set_route(
        &self,
        e164: &PhoneNumber,
        workspace: Option<Workspace>,
        raw_route: serde_json::Value,
    ) -> Result<NumberRecord, NumbersError> {
        let workspace = match workspace {
            Some(w) => w,
            None => self.workspace_of(e164).await?,
        };
        let route = parse_route(self.store, raw_route, &workspace).await?;
        let record = self.save_route(e164.as_str(), &workspace, &route).await?;
        tracing::info!(e164 = %e164, "number re-routed");
        Ok(record)
    }

    /// The live number's workspace, else the one pool workspace holding it.
    async fn workspace_of(&self, e164: &PhoneNumber) -> Result<Workspace, NumbersError> {
        if let Some(live) = self.store.get_number(e164.as_str()).await? {
            return Ok(live.workspace);
        }
        let mut workspaces: Vec<Workspace> = self
            .pool_rows(&PoolFilter {
                e164: Some(e164.to_string()),
                ..PoolFilter::default()
            })
            .await?
            .into_iter()
            .filter(|n| n.status != PoolStatus::Released)
            .map(|n| n.workspace)
            .collect();
        workspaces.dedup();
        match workspaces.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(NumbersError::NotFound(format!("no number {e164}"))),
            _ => Err(NumbersError::refused(
                "ambiguous-workspace",
                format!("{e164} is in several workspaces: name one with ?workspace="),
            )),
        }
    }
}
