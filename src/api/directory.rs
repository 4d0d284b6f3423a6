//! `/api/directory…`: `GET /api/directory` (the pool's entries across workspaces),
//! `GET /api/directory/numbers/{e164}`, `GET /api/directory/agents/{id}`, `GET
//! /api/directory/validate`, `GET /api/directory/diff`, `POST
//! /api/directory/assign`. Each handler parses the request, calls the numbers
//! service ([`crate::numbers`]) and maps its answer.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use switchboard_actors::number::Route;
use switchboard_actors::AgentId;

use super::admin::Admin;
use super::numbers::{e164_field, provider_field, service, workspace_field, NumberRoute};
use crate::domain::phone::PhoneNumber;
use crate::engine::Engine;
use crate::error::{ApiError, ErrorBody};
use crate::numbers::model::{Diff, DirectoryEntry, Validation};
use crate::store::pool::{PoolFilter, PoolStatus};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// One workspace (absent: all).
    #[serde(default)]
    workspace: Option<String>,
    /// `AVAILABLE`, `ASSIGNED` or `RELEASED`.
    #[serde(default)]
    status: Option<String>,
    /// An agent's id.
    #[serde(default)]
    agent: Option<String>,
}

/// A number's live route, in `GET /api/directory/numbers/{e164}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LiveRoute {
    workspace: String,
    #[schema(value_type = super::schema::RouteJson)]
    route: Route,
}

/// `GET /api/directory/numbers/{e164}`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NumberDirectory {
    e164: String,
    /// `+1 415-555-0100`.
    pretty: String,
    /// `(415) 555-0100`.
    national: String,
    /// `local`, `toll-free`, `mobile`…
    #[serde(rename = "type")]
    number_type: &'static str,
    area_code: Option<String>,
    /// ISO 3166 region.
    region: Option<String>,
    /// The live number, when the engine answers it.
    live: Option<LiveRoute>,
    /// Every pool entry of the number (per workspace and provider).
    entries: Vec<DirectoryEntry>,
}

/// An agent as the directory names it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AgentBrief {
    id: String,
    name: String,
    workspace: String,
}

/// `GET /api/directory/agents/{id}`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AgentDirectory {
    /// `null` when the agent no longer exists (its numbers may still name it).
    agent: Option<AgentBrief>,
    /// The pool numbers assigned to it.
    numbers: Vec<DirectoryEntry>,
    /// The live numbers whose route rings it.
    routes: Vec<NumberRoute>,
}

/// `POST /api/directory/assign`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Assigned {
    e164: String,
    workspace: String,
    provider: String,
    agent_id: String,
    /// `ASSIGNED`.
    status: &'static str,
}

/// Lists the directory
///
/// Every pool entry across workspaces and providers, filtered.
#[utoipa::path(get, path = "/api/directory", tag = "directory",
    security(("admin_token" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "The entries", body = Vec<DirectoryEntry>),
        (status = 400, description = "`bad-field` (status, workspace); `bad-query`", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn list(
    _admin: Admin,
    engine: web::Data<Engine>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let status = query
        .status
        .as_deref()
        .map(|s| {
            PoolStatus::parse(s).ok_or_else(|| {
                ApiError::bad_request(
                    "bad-field",
                    format!("status must be AVAILABLE, ASSIGNED or RELEASED, not {s:?}"),
                )
            })
        })
        .transpose()?;
    let workspace = query
        .workspace
        .as_deref()
        .map(|w| workspace_field(w, "workspace"))
        .transpose()?;
    let entries = service(&engine)
        .entries(&PoolFilter {
            workspace: workspace.map(|w| w.to_string()),
            status,
            agent_id: query.agent,
            e164: None,
        })
        .await?;
    Ok(HttpResponse::Ok().json(entries))
}

/// One number in the directory
///
/// One number: its printed forms, type and area code, its live route and every
/// pool entry (per workspace and provider).
#[utoipa::path(get, path = "/api/directory/numbers/{e164}", tag = "directory",
    security(("admin_token" = [])),
    params(("e164" = String, Path, description = "The number, E.164")),
    responses(
        (status = 200, description = "The number", body = NumberDirectory),
        (status = 400, description = "`bad-field`: not a phone number", body = ErrorBody),
        (status = 404, description = "Not in the directory", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn show(
    _admin: Admin,
    engine: web::Data<Engine>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (e164, info) = PhoneNumber::parse_with_info(&path)
        .map_err(|e| ApiError::bad_request("bad-field", format!("e164 {e}")))?;
    let number = service(&engine).number(&e164).await?;
    Ok(HttpResponse::Ok().json(NumberDirectory {
        e164: e164.as_str().to_owned(),
        pretty: info.international,
        national: info.national,
        number_type: info.number_type,
        area_code: info.area_code,
        region: info.region,
        live: number.live.map(|n| LiveRoute {
            workspace: n.workspace.to_string(),
            route: n.route,
        }),
        entries: number.entries,
    }))
}

/// An agent's numbers
///
/// An agent's numbers in every workspace: those assigned to it, and the live
/// numbers whose route rings it.
#[utoipa::path(get, path = "/api/directory/agents/{id}", tag = "directory",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "The agent's id")),
    responses(
        (status = 200, description = "The agent's numbers", body = AgentDirectory),
        (status = 400, description = "`bad-id`", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn agent_numbers(
    _admin: Admin,
    engine: web::Data<Engine>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = AgentId::parse(&path).map_err(|e| ApiError::bad_request("bad-id", e.to_string()))?;
    let found = service(&engine).agent_numbers(&id).await?;
    Ok(HttpResponse::Ok().json(AgentDirectory {
        agent: found.agent.map(|a| AgentBrief {
            id: a.id.to_string(),
            name: a.name,
            workspace: a.workspace.to_string(),
        }),
        numbers: found.numbers,
        routes: found.routes.into_iter().map(NumberRoute::from).collect(),
    }))
}

/// Checks the directory
///
/// Errors (a number assigned twice, an agent that is gone…) and warnings
/// (numbers kept as `unparseable`…).
#[utoipa::path(get, path = "/api/directory/validate", tag = "directory",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The findings", body = Validation),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn validate(_admin: Admin, engine: web::Data<Engine>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(service(&engine).validate().await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// A workspace.
    a: String,
    /// Another workspace.
    b: String,
}

/// Compares two workspaces' numbers
///
/// The numbers only one has, those that differ (field by field), and how many
/// are the same.
#[utoipa::path(get, path = "/api/directory/diff", tag = "directory",
    security(("admin_token" = [])),
    params(DiffQuery),
    responses(
        (status = 200, description = "The difference", body = Diff),
        (status = 400, description = "`bad-field`, `a` or `b` missing", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn diff(
    _admin: Admin,
    engine: web::Data<Engine>,
    query: web::Query<DiffQuery>,
) -> Result<HttpResponse, ApiError> {
    let a = workspace_field(&query.a, "a")?;
    let b = workspace_field(&query.b, "b")?;
    Ok(HttpResponse::Ok().json(service(&engine).diff(&a, &b).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    e164: String,
    workspace: String,
    agent_id: String,
    #[serde(default)]
    provider: Option<String>,
    /// The agent or assistant id at the provider; default the agent's id.
    #[serde(default)]
    provider_agent_id: Option<String>,
}

/// Assigns a number to an agent
///
/// One given AVAILABLE number, to an agent of the same workspace: assigned at
/// its provider and recorded.
#[utoipa::path(post, path = "/api/directory/assign", tag = "directory",
    security(("admin_token" = [])),
    request_body = AssignRequest,
    responses(
        (status = 200, description = "Assigned", body = Assigned),
        (status = 400, description = "`bad-field`, `unknown-provider`, `wrong-workspace`", body = ErrorBody),
        (status = 404, description = "No such number or agent", body = ErrorBody),
        (status = 409, description = "`not-available`", body = ErrorBody),
        (status = 502, description = "`provider-failed`", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn assign(
    _admin: Admin,
    engine: web::Data<Engine>,
    body: web::Json<AssignRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let e164 = e164_field(&body.e164, "e164")?;
    let workspace = workspace_field(&body.workspace, "workspace")?;
    let provider = body.provider.as_deref().map(provider_field).transpose()?;
    let agent_id = AgentId::parse(&body.agent_id)
        .map_err(|e| ApiError::bad_request("bad-field", format!("agent_id: {e}")))?;
    let provider_agent = body
        .provider_agent_id
        .unwrap_or_else(|| agent_id.to_string());
    let number = service(&engine)
        .assign_number(&e164, &workspace, provider, &agent_id, &provider_agent)
        .await?;
    Ok(HttpResponse::Ok().json(Assigned {
        e164: number.e164,
        workspace: number.workspace.to_string(),
        provider: number.provider,
        agent_id: agent_id.to_string(),
        status: number.status.as_str(),
    }))
}
