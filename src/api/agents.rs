//! `POST /api/agents` (optionally with an automatically assigned number), `GET
//! /api/agents`, `GET /api/agents/{id}`, `PATCH /api/agents/{id}` (never its
//! number), `DELETE /api/agents/{id}` (its numbers go back to the pool).

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use switchboard_actors::{AgentId, Workspace};

use super::admin::Admin;
use crate::auth::{new_token, token_hash};
use crate::engine::Engine;
use crate::error::{ApiError, ErrorBody};
use crate::store::agents::{AgentRecord, NewAgent};
use crate::store::pool::Holder;

/// The body of `POST /api/agents`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgent {
    /// 1 to 100 characters.
    name: String,
    /// The agent's workspace, for its life.
    workspace: String,
    /// Take an AVAILABLE number of the workspace for this agent.
    #[serde(default)]
    assign_number: bool,
    /// The agent (Retell) or assistant (Vapi) id at the provider; default the
    /// agent's own id.
    #[serde(default)]
    provider_agent_id: Option<String>,
}

/// An agent as the API shows it (never its token).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Agent)]
pub struct AgentJson {
    id: String,
    name: String,
    workspace: String,
    /// RFC 3339.
    created_at: String,
}

/// `POST /api/agents`'s answer: the agent, its token (shown only here) and,
/// when `assign_number` was asked for, the number it got.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedAgent {
    #[serde(flatten)]
    agent: AgentJson,
    /// Opens the agent's softphone; stored hashed, never shown again.
    token: String,
    /// With `assign_number`: the E.164 number assigned, or `null` when none could
    /// be (the reason is in `warnings`). Absent without `assign_number`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    number: Option<Option<String>>,
    /// With `assign_number`: why no number was assigned (empty when one was).
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings: Option<Vec<String>>,
}

/// The body of `PATCH /api/agents/{id}`: only the name may change.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // described only: the handler reads the fields one by one to name the refused ones
pub struct RenameAgent {
    /// 1 to 100 characters.
    name: String,
}

/// `DELETE /api/agents/{id}`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeletedAgent {
    id: String,
    /// The E.164 numbers it held, AVAILABLE again.
    released_numbers: Vec<String>,
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

/// Creates an agent
///
/// Answers the agent's softphone token, shown only here (`Cache-Control:
/// no-store`). With `assign_number`, an AVAILABLE number of the workspace is
/// claimed, assigned at its provider and routed to the agent; failing that the
/// agent is still created, with the reason in `warnings`.
#[utoipa::path(post, path = "/api/agents", tag = "agents",
    security(("admin_token" = [])),
    request_body = CreateAgent,
    responses(
        (status = 201, description = "The agent and its token", body = CreatedAgent),
        (status = 400, description = "`bad-field`, `bad-json`", body = ErrorBody),
        (status = 409, description = "`duplicate`", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
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
    engine.tokens.insert(token_hash(&token), agent.clone());
    tracing::info!(agent_id = %agent.id, "agent created");
    let assigned = if body.assign_number {
        let provider_agent = body
            .provider_agent_id
            .clone()
            .unwrap_or_else(|| agent.id.to_string());
        Some(
            super::numbers::service(&engine)
                .assign_any(
                    &Holder::Agent(agent.id.clone()),
                    &agent.workspace,
                    &provider_agent,
                )
                .await,
        )
    } else {
        None
    };
    let (number, warnings) = match assigned {
        Some(Ok(number)) => (Some(Some(number.e164)), Some(Vec::new())),
        Some(Err(warning)) => (Some(None), Some(vec![warning])),
        None => (None, None),
    };
    let json = CreatedAgent {
        agent: AgentJson::from(agent),
        token,
        number,
        warnings,
    };
    // The token is shown only here: no cache (browser, proxy) may keep a copy, as
    // for OAuth token responses (RFC 6749 §5.1; RFC 9111 §5.2.2.5 `no-store`).
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(json))
}

/// Renames an agent
///
/// Its number and workspace are not changed here: the number is the agent's for
/// its life (delete the agent to give it back).
#[utoipa::path(patch, path = "/api/agents/{id}", tag = "agents",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "The agent's id")),
    request_body = RenameAgent,
    responses(
        (status = 200, description = "The agent", body = AgentJson),
        (status = 400, description = "`bad-id`, `bad-field`, `number-immutable`, `workspace-immutable`", body = ErrorBody),
        (status = 404, description = "No such agent", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn update(
    _admin: Admin,
    engine: web::Data<Engine>,
    path: web::Path<String>,
    body: web::Json<serde_json::Map<String, serde_json::Value>>,
) -> Result<HttpResponse, ApiError> {
    let id = AgentId::parse(&path).map_err(|e| ApiError::bad_request("bad-id", e.to_string()))?;
    let mut name = None;
    for (field, value) in body.into_inner() {
        match field.as_str() {
            "name" => name = Some(value),
            "number" | "numbers" | "e164" | "phone_number" | "assign_number" => {
                return Err(ApiError::bad_request(
                    "number-immutable",
                    format!(
                        "{field}: an agent's number cannot be changed; delete the agent to \
                         return its number to the pool"
                    ),
                ))
            }
            "workspace" => {
                return Err(ApiError::bad_request(
                    "workspace-immutable",
                    "workspace: an agent cannot move to another workspace",
                ))
            }
            other => {
                return Err(ApiError::bad_request(
                    "bad-field",
                    format!("{other}: unknown field (only name can be changed)"),
                ))
            }
        }
    }
    let name = name
        .as_ref()
        .and_then(|n| n.as_str())
        .map(str::trim)
        .filter(|n| !n.is_empty() && n.chars().count() <= 100)
        .ok_or_else(|| ApiError::bad_request("bad-field", "name must be 1 to 100 characters"))?;
    let agent = engine
        .store
        .rename_agent(&id, name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no agent {id}")))?;
    Ok(HttpResponse::Ok().json(AgentJson::from(agent)))
}

/// Deletes an agent
///
/// Its numbers are taken off it at their provider and go back to the pool
/// (AVAILABLE). A provider that refuses leaves everything as it was.
#[utoipa::path(delete, path = "/api/agents/{id}", tag = "agents",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "The agent's id")),
    responses(
        (status = 200, description = "The agent's id and the numbers released", body = DeletedAgent),
        (status = 400, description = "`bad-id`", body = ErrorBody),
        (status = 404, description = "No such agent", body = ErrorBody),
        (status = 502, description = "`provider-failed`: nothing changed", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn delete(
    _admin: Admin,
    engine: web::Data<Engine>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = AgentId::parse(&path).map_err(|e| ApiError::bad_request("bad-id", e.to_string()))?;
    if engine.store.get_agent(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("no agent {id}")));
    }
    let released = super::numbers::service(&engine)
        .unassign_all(&Holder::Agent(id.clone()))
        .await?;
    engine.store.delete_agent(&id).await?;
    engine.tokens.remove_agent(&id);
    tracing::info!(agent_id = %id, numbers = released.len(), "agent deleted");
    Ok(HttpResponse::Ok().json(DeletedAgent {
        id: id.to_string(),
        released_numbers: released,
    }))
}

/// Lists the agents
///
/// Every agent of every workspace, without their tokens.
#[utoipa::path(get, path = "/api/agents", tag = "agents",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Every agent (no tokens)", body = Vec<AgentJson>),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
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

/// Reads an agent
///
/// The agent's id, name, workspace and creation time; never its token.
#[utoipa::path(get, path = "/api/agents/{id}", tag = "agents",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "The agent's id")),
    responses(
        (status = 200, description = "The agent (no token)", body = AgentJson),
        (status = 400, description = "`bad-id`", body = ErrorBody),
        (status = 404, description = "No such agent", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
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
