//! `POST /api/agents`, `GET /api/agents`, `GET /api/agents/{id}`.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use switchboard_actors::{AgentId, Workspace};

use super::auth::{new_token, token_hash, Admin};
use super::error::ApiError;
use crate::startup::Engine;
use crate::store::agents::{AgentRecord, NewAgent};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAgent {
    name: String,
    workspace: String,
}

#[derive(Serialize)]
struct AgentJson {
    id: String,
    name: String,
    workspace: String,
    created_at: String,
}

impl From<AgentRecord> for AgentJson {
    fn from(agent: AgentRecord) -> Self {
        Self {
            id: agent.id.to_string(),
            name: agent.name,
            workspace: agent.workspace.to_string(),
            created_at: super::calls::rfc3339(agent.created_at),
        }
    }
}

pub async fn create(
    _admin: Admin,
    engine: web::Data<Engine>,
    body: web::Json<CreateAgent>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::bad_request(
            "bad-field",
            "name must be 1 to 100 characters",
        ));
    }
    let workspace = Workspace::parse(&body.workspace)
        .map_err(|e| ApiError::bad_request("bad-field", format!("workspace: {e}")))?;
    let token = new_token("sbt_");
    let agent = engine
        .store
        .create_agent(&NewAgent {
            id: AgentId::new(),
            name: name.to_owned(),
            workspace,
            token_hash: token_hash(&token),
        })
        .await?;
    tracing::info!(agent_id = %agent.id, "agent created");
    let mut json = serde_json::to_value(AgentJson::from(agent)).unwrap_or_default();
    json["token"] = token.into();
    Ok(HttpResponse::Created().json(json))
}

pub async fn list(_admin: Admin, engine: web::Data<Engine>) -> Result<HttpResponse, ApiError> {
    let agents: Vec<AgentJson> = engine
        .store
        .list_agents()
        .await?
        .into_iter()
        .map(AgentJson::from)
        .collect();
    Ok(HttpResponse::Ok().json(agents))
}

pub async fn get(
    _admin: Admin,
    engine: web::Data<Engine>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = AgentId::parse(&path).map_err(|e| ApiError::bad_request("bad-id", e.to_string()))?;
    let agent = engine
        .store
        .get_agent(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no agent {id}")))?;
    Ok(HttpResponse::Ok().json(AgentJson::from(agent)))
}
