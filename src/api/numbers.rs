//! `POST /api/numbers` (create or re-route), `GET /api/numbers`, `GET /api/numbers/{e164}`.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use switchboard_actors::number::Route;
use switchboard_actors::{AgentId, AssistantId, Workspace};

use crate::auth::Admin;
use crate::domain::phone::PhoneNumber;
use crate::engine::Engine;
use crate::error::ApiError;
use crate::store::numbers::NumberRecord;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateNumber {
    e164: String,
    workspace: String,
    route: serde_json::Value,
}

#[derive(Serialize)]
struct NumberJson {
    e164: String,
    workspace: String,
    route: Route,
    created_at: String,
    updated_at: String,
}

impl From<NumberRecord> for NumberJson {
    fn from(n: NumberRecord) -> Self {
        Self {
            e164: n.e164,
            workspace: n.workspace.to_string(),
            route: n.route,
            created_at: super::calls::rfc3339(n.created_at),
            updated_at: super::calls::rfc3339(n.updated_at),
        }
    }
}

/// Parses a route and checks it against the agents and assistants that exist.
pub(crate) async fn parse_route(
    engine: &Engine,
    raw: serde_json::Value,
    workspace: &Workspace,
) -> Result<Route, ApiError> {
    let kind = raw.get("kind").and_then(|k| k.as_str()).unwrap_or_default();
    if !matches!(kind, "agents" | "voicemail" | "ai") {
        return Err(ApiError::bad_request(
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
        .map_err(|e| ApiError::bad_request("bad-field", format!("route: {e}")))?;
    match &route {
        Route::Agents { agent_ids } => check_agents(engine, agent_ids, workspace, "route").await?,
        Route::Ai { assistant_id } => {
            check_assistant(engine, assistant_id, workspace).await?;
        }
        Route::Voicemail => {}
    }
    Ok(route)
}

/// Every agent of a route (`field` names it in refusals) exists and belongs to
/// `workspace`.
pub(crate) async fn check_agents(
    engine: &Engine,
    agent_ids: &[AgentId],
    workspace: &Workspace,
    field: &str,
) -> Result<(), ApiError> {
    let found = engine.store.get_agents(agent_ids).await?;
    for id in agent_ids {
        match found.iter().find(|a| &a.id == id) {
            None => {
                return Err(ApiError::bad_request(
                    "unknown-agent",
                    format!("{field}: no agent {id}"),
                ))
            }
            Some(agent) if &agent.workspace != workspace => {
                return Err(ApiError::bad_request(
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
    engine: &Engine,
    assistant_id: &AssistantId,
    workspace: &Workspace,
) -> Result<(), ApiError> {
    let assistant = engine
        .store
        .get_assistant(assistant_id)
        .await?
        .ok_or_else(|| unknown_assistant(assistant_id.as_str()))?;
    if &assistant.workspace != workspace {
        return Err(ApiError::bad_request(
            "wrong-workspace",
            format!(
                "route: assistant {assistant_id} belongs to workspace {}",
                assistant.workspace
            ),
        ));
    }
    Ok(())
}

fn unknown_assistant(id: &str) -> ApiError {
    ApiError::bad_request("unknown-assistant", format!("route: no assistant {id:?}"))
}

/// Records a number's route (the store is the record), then hands it to the
/// number's actor, which takes it for its next call.
pub(crate) async fn save_route(
    engine: &Engine,
    e164: &str,
    workspace: &Workspace,
    route: &Route,
) -> Result<NumberRecord, ApiError> {
    let record = engine.store.upsert_number(e164, workspace, route).await?;
    engine
        .directory
        .upsert(record.e164.clone(), workspace.clone(), route.clone())
        .await?;
    Ok(record)
}

pub async fn create(
    _admin: Admin,
    engine: web::Data<Engine>,
    body: web::Json<CreateNumber>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let e164 = PhoneNumber::parse(&body.e164)
        .map_err(|e| ApiError::bad_request("bad-field", format!("e164 {e}")))?;
    let workspace = Workspace::parse(&body.workspace)
        .map_err(|e| ApiError::bad_request("bad-field", format!("workspace: {e}")))?;
    let route = parse_route(&engine, body.route, &workspace).await?;
    let existed = engine.store.get_number(e164.as_str()).await?.is_some();
    let record = save_route(&engine, e164.as_str(), &workspace, &route).await?;
    tracing::info!(e164 = %record.e164, existed, "number saved");
    let status = if existed {
        HttpResponse::Ok()
    } else {
        HttpResponse::Created()
    };
    Ok({ status }.json(NumberJson::from(record)))
}

pub async fn list(_admin: Admin, engine: web::Data<Engine>) -> Result<HttpResponse, ApiError> {
    let numbers: Vec<NumberJson> = engine
        .store
        .list_numbers()
        .await?
        .into_iter()
        .map(NumberJson::from)
        .collect();
    Ok(HttpResponse::Ok().json(numbers))
}

pub async fn get(
    _admin: Admin,
    engine: web::Data<Engine>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let e164 = PhoneNumber::parse(&path)
        .map_err(|e| ApiError::bad_request("bad-field", format!("e164 {e}")))?;
    let number = engine
        .store
        .get_number(e164.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no number {e164}")))?;
    Ok(HttpResponse::Ok().json(NumberJson::from(number)))
}
