//! `/api/directory…`: `GET /api/directory` (the pool's entries across workspaces),
//! `GET /api/directory/numbers/{e164}`, `GET /api/directory/agents/{id}`, `GET
//! /api/directory/validate`, `GET /api/directory/diff`, `POST
//! /api/directory/assign`. Each handler parses the request, calls the numbers
//! service ([`crate::numbers`]) and maps its answer.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use switchboard_actors::AgentId;

use super::admin::Admin;
use super::numbers::{e164_field, provider_field, service, workspace_field};
use crate::domain::phone::PhoneNumber;
use crate::engine::Engine;
use crate::error::ApiError;
use crate::store::pool::{PoolFilter, PoolStatus};

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    workspace: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    agent: Option<String>,
}

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

/// One number: its printed forms, type and area code, its live route and every
/// pool entry (per workspace and provider).
pub async fn show(
    _admin: Admin,
    engine: web::Data<Engine>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (e164, info) = PhoneNumber::parse_with_info(&path)
        .map_err(|e| ApiError::bad_request("bad-field", format!("e164 {e}")))?;
    let number = service(&engine).number(&e164).await?;
    Ok(HttpResponse::Ok().json(json!({
        "e164": e164.as_str(),
        "pretty": info.international,
        "national": info.national,
        "type": info.number_type,
        "area_code": info.area_code,
        "region": info.region,
        "live": number.live.map(|n| json!({ "workspace": n.workspace.to_string(), "route": n.route })),
        "entries": number.entries,
    })))
}

/// An agent's numbers in every workspace: those assigned to it, and the live
/// numbers whose route rings it.
pub async fn agent_numbers(
    _admin: Admin,
    engine: web::Data<Engine>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = AgentId::parse(&path).map_err(|e| ApiError::bad_request("bad-id", e.to_string()))?;
    let found = service(&engine).agent_numbers(&id).await?;
    let routes: Vec<serde_json::Value> = found
        .routes
        .into_iter()
        .map(|n| json!({ "e164": n.e164, "workspace": n.workspace.to_string(), "route": n.route }))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "agent": found.agent.map(|a| json!({ "id": a.id.to_string(), "name": a.name, "workspace": a.workspace.to_string() })),
        "numbers": found.numbers,
        "routes": routes,
    })))
}

pub async fn validate(_admin: Admin, engine: web::Data<Engine>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(service(&engine).validate().await?))
}

#[derive(Deserialize)]
pub struct DiffQuery {
    a: String,
    b: String,
}

pub async fn diff(
    _admin: Admin,
    engine: web::Data<Engine>,
    query: web::Query<DiffQuery>,
) -> Result<HttpResponse, ApiError> {
    let a = workspace_field(&query.a, "a")?;
    let b = workspace_field(&query.b, "b")?;
    Ok(HttpResponse::Ok().json(service(&engine).diff(&a, &b).await?))
}

#[derive(Deserialize)]
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

/// Assigns one given AVAILABLE number to an agent of the same workspace.
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
    Ok(HttpResponse::Ok().json(json!({
        "e164": number.e164,
        "workspace": number.workspace.to_string(),
        "provider": number.provider,
        "agent_id": agent_id.to_string(),
        "status": number.status.as_str(),
    })))
}
