//! The phone-number pool and directory: `POST /api/numbers/sync`, `POST
//! /api/numbers/import`, `PUT /api/numbers/{e164}/route`, `POST
//! /api/numbers/migrate` and `…/rollback`, `GET /api/directory` (+ `/numbers/{e164}`,
//! `/agents/{id}`, `/validate`, `/diff`), `POST /api/directory/assign`; and the
//! assignment steps agents use (claim, provider, record — with compensation).

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use switchboard_actors::number::Route;
use switchboard_actors::{AgentId, Workspace};

use crate::auth::Admin;
use crate::directory::checks;
use crate::directory::model::{DirectoryEntry, LiveNumber};
use crate::domain::phone::PhoneNumber;
use crate::domain::provider::ProviderKind;
use crate::engine::Engine;
use crate::error::ApiError;
use crate::providers::twilio::Hooks;
use crate::providers::{ProviderAccount, Repointed};
use crate::store::pool::{
    MigrationEntry, PoolFilter, PoolNumber, PoolStatus, RouteMigration, SyncCounts, VoiceRouting,
};

fn workspace_field(raw: &str, field: &str) -> Result<Workspace, ApiError> {
    Workspace::parse(raw).map_err(|e| ApiError::bad_request("bad-field", format!("{field}: {e}")))
}

fn e164_field(raw: &str, field: &str) -> Result<PhoneNumber, ApiError> {
    PhoneNumber::parse(raw).map_err(|e| ApiError::bad_request("bad-field", format!("{field} {e}")))
}

fn provider_field(raw: &str) -> Result<ProviderKind, ApiError> {
    ProviderKind::parse(raw).ok_or_else(|| {
        ApiError::bad_request(
            "unknown-provider",
            format!("provider: unknown provider {raw:?} (twilio, vapi or retell)"),
        )
    })
}

fn account<'a>(
    engine: &'a Engine,
    provider: &str,
    workspace: &Workspace,
) -> Option<&'a ProviderAccount> {
    engine
        .providers
        .iter()
        .find(|a| a.kind.as_str() == provider && &a.workspace == workspace)
}

fn provider_failed(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_GATEWAY, "provider-failed", message)
}

/// The directory's entries that `filter` selects.
async fn entries(engine: &Engine, filter: &PoolFilter) -> Result<Vec<DirectoryEntry>, ApiError> {
    Ok(engine
        .store
        .directory(filter)
        .await?
        .into_iter()
        .map(DirectoryEntry::from)
        .collect())
}

/// The pool rows that `filter` selects.
async fn pool_rows(engine: &Engine, filter: &PoolFilter) -> Result<Vec<PoolNumber>, ApiError> {
    Ok(engine
        .store
        .directory(filter)
        .await?
        .into_iter()
        .map(|r| r.number)
        .collect())
}

/// Parses an optional JSON body (empty = all defaults).
fn optional_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("bad-json", format!("the request body is not valid: {e}"))
    })
}

// ---- sync ----------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SyncRequest {
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    workspace: Option<String>,
}

#[derive(Serialize)]
struct AccountResult {
    provider: &'static str,
    workspace: String,
    #[serde(flatten)]
    counts: SyncCounts,
    pages: usize,
    /// Time spent fetching and parsing the provider's pages, and applying them.
    fetch_ms: u64,
    store_ms: u64,
}

#[derive(Serialize)]
struct AccountFailure {
    provider: &'static str,
    workspace: String,
    error: String,
}

/// Syncs every configured account (or those of one provider / workspace). A
/// provider that fails changes nothing of its own numbers; the others still sync.
pub async fn sync(
    _admin: Admin,
    engine: web::Data<Engine>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let request: SyncRequest = optional_body(&body)?;
    let provider = request
        .provider
        .as_deref()
        .map(provider_field)
        .transpose()?;
    let workspace = request
        .workspace
        .as_deref()
        .map(|w| workspace_field(w, "workspace"))
        .transpose()?;
    let accounts: Vec<&ProviderAccount> = engine
        .providers
        .iter()
        .filter(|a| provider.is_none_or(|p| a.kind == p))
        .filter(|a| workspace.as_ref().is_none_or(|w| &a.workspace == w))
        .collect();
    if accounts.is_empty() {
        return Err(ApiError::bad_request(
            "no-provider-account",
            format!(
                "no provider account is configured{}{}",
                provider.map(|p| format!(" for {p}")).unwrap_or_default(),
                workspace
                    .as_ref()
                    .map(|w| format!(" in workspace {w}"))
                    .unwrap_or_default()
            ),
        ));
    }
    let mut total = SyncCounts::default();
    let (mut done, mut failed) = (Vec::new(), Vec::new());
    for account in accounts {
        let mut pages = 0usize;
        let started = std::time::Instant::now();
        let listed = account.list_numbers(&mut |_| pages += 1).await;
        let fetched = started.elapsed();
        let result = match listed {
            Ok(numbers) => engine
                .store
                .sync_pool(account.kind.as_str(), &account.workspace, &numbers)
                .await
                .map_err(|e| {
                    tracing::error!(err = %e, account = %account.label(), "storing a sync failed");
                    format!("{}: the pool could not be updated", account.label())
                }),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(counts) => {
                tracing::info!(
                    account = %account.label(),
                    pages,
                    ?counts,
                    fetch_ms = fetched.as_millis() as u64,
                    store_ms = (started.elapsed() - fetched).as_millis() as u64,
                    "numbers synced"
                );
                total.added += counts.added;
                total.updated += counts.updated;
                total.released += counts.released;
                done.push(AccountResult {
                    provider: account.kind.as_str(),
                    workspace: account.workspace.to_string(),
                    counts,
                    pages,
                    fetch_ms: fetched.as_millis() as u64,
                    store_ms: (started.elapsed() - fetched).as_millis() as u64,
                });
            }
            Err(error) => {
                tracing::warn!(account = %account.label(), %error, "sync failed");
                failed.push(AccountFailure {
                    provider: account.kind.as_str(),
                    workspace: account.workspace.to_string(),
                    error,
                });
            }
        }
    }
    let mut body = json!({
        "added": total.added,
        "updated": total.updated,
        "released": total.released,
        "accounts": done,
        "failed": failed,
    });
    if failed.is_empty() {
        Ok(HttpResponse::Ok().json(body))
    } else {
        body["code"] = "provider-failed".into();
        body["message"] = failed
            .iter()
            .map(|f| f.error.as_str())
            .collect::<Vec<_>>()
            .join("; ")
            .into();
        Ok(HttpResponse::BadGateway().json(body))
    }
}

// ---- import (Retell over a SIP trunk) ------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    provider: String,
    workspace: String,
    phone_number: String,
    termination_uri: String,
    #[serde(default)]
    sip_trunk_auth_username: Option<String>,
    #[serde(default)]
    sip_trunk_auth_password: Option<String>,
    #[serde(default)]
    nickname: Option<String>,
}

pub async fn import(
    _admin: Admin,
    engine: web::Data<Engine>,
    body: web::Json<ImportRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let provider = provider_field(&body.provider)?;
    let workspace = workspace_field(&body.workspace, "workspace")?;
    let e164 = e164_field(&body.phone_number, "phone_number")?;
    let uri = body.termination_uri.trim();
    if uri.is_empty() || uri.contains(char::is_whitespace) {
        return Err(ApiError::bad_request(
            "bad-field",
            "termination_uri must be a SIP URI or host, e.g. sip.example.com",
        ));
    }
    let account = account(&engine, provider.as_str(), &workspace).ok_or_else(|| {
        ApiError::bad_request(
            "no-provider-account",
            format!("no {provider} account is configured in workspace {workspace}"),
        )
    })?;
    let imported = account
        .import(&crate::providers::retell::Import {
            phone_number: e164.to_string(),
            termination_uri: uri.to_owned(),
            sip_trunk_auth_username: body.sip_trunk_auth_username,
            sip_trunk_auth_password: body.sip_trunk_auth_password,
            nickname: body.nickname,
        })
        .await
        .map_err(|e| provider_failed(e.to_string()))?;
    let number = engine
        .store
        .add_to_pool(provider.as_str(), &workspace, &imported)
        .await?;
    let rows = engine
        .store
        .directory(&PoolFilter {
            e164: Some(number.e164.clone()),
            workspace: Some(workspace.to_string()),
            ..PoolFilter::default()
        })
        .await?;
    let entry = rows
        .into_iter()
        .map(DirectoryEntry::from)
        .find(|e| e.id == number.id);
    Ok(HttpResponse::Created().json(entry))
}

// ---- assignment ----------------------------------------------------------------

/// Hands an AVAILABLE number of the agent's workspace to the agent: claim it in
/// the database, assign it at the provider, record it as the agent's live route.
/// `Err` is the warning to show: no number, the provider refused (the claim is
/// given back), or recording failed (the provider assignment is undone too).
pub(crate) async fn assign_any(
    engine: &Engine,
    agent_id: &AgentId,
    workspace: &Workspace,
    provider_agent: &str,
) -> Result<PoolNumber, String> {
    let claimed = engine
        .store
        .claim_available(workspace, agent_id)
        .await
        .map_err(|e| {
            tracing::error!(err = %e, "claiming a number failed");
            "no number was assigned: the pool could not be read".to_owned()
        })?;
    let number = claimed.ok_or_else(|| {
        format!("no number was assigned: workspace {workspace} has no AVAILABLE number")
    })?;
    assign_claimed(engine, number, agent_id, provider_agent).await
}

/// The provider and record steps of an assignment, for a number already claimed.
pub(crate) async fn assign_claimed(
    engine: &Engine,
    number: PoolNumber,
    agent_id: &AgentId,
    provider_agent: &str,
) -> Result<PoolNumber, String> {
    let (claim_id, claim_e164) = (number.id.clone(), number.e164.clone());
    let give_back = |why: String| {
        let (claim_id, claim_e164) = (claim_id.clone(), claim_e164.clone());
        async move {
            if let Err(e) = engine.store.release_claim(&claim_id, agent_id).await {
                tracing::error!(err = %e, e164 = %claim_e164, "giving a claimed number back failed");
            }
            why
        }
    };
    let Some(account) = account(engine, &number.provider, &number.workspace) else {
        return Err(give_back(format!(
            "no number was assigned: {} is held by {} ({}), which is not configured",
            number.e164, number.provider, number.workspace
        ))
        .await);
    };
    if number.note.is_some() {
        return Err(give_back(format!(
            "no number was assigned: {} is not an E.164 number ({})",
            number.e164,
            number.note.as_deref().unwrap_or_default()
        ))
        .await);
    }
    let (webhook, status) = (engine.voice_webhook_url(), status_callback_url(engine));
    let hooks = Hooks {
        voice_url: &webhook,
        status_callback: &status,
    };
    let repointed = match account.assign(&number, provider_agent, &hooks).await {
        Ok(repointed) => repointed,
        Err(e) => {
            return Err(give_back(format!(
                "no number was assigned: {} refused {}: {e}",
                account.label(),
                number.e164
            ))
            .await)
        }
    };
    let route = Route::Agents {
        agent_ids: vec![agent_id.clone()],
    };
    let (voice_url, held_by) = match &repointed {
        Some(r) => (r.now.voice_url.as_deref(), number.provider_agent.as_deref()),
        None => (number.voice_url.as_deref(), Some(provider_agent)),
    };
    let recorded = engine
        .store
        .record_assignment(&number, agent_id, &route, voice_url, held_by)
        .await;
    if let Err(e) = recorded {
        tracing::warn!(err = %e, e164 = %number.e164, "recording an assignment failed; undoing it at the provider");
        let replaced = repointed.as_ref().map(|r| &r.before);
        let undone = match account.restore(&number, replaced).await {
            Ok(()) => "the assignment at the provider was undone".to_owned(),
            Err(undo) => {
                tracing::error!(err = %undo, e164 = %number.e164, "undoing a provider assignment failed");
                format!("undoing it at the provider failed too ({undo})")
            }
        };
        let why = match e {
            crate::store::StoreError::Conflict(what) => what,
            _ => "the database refused it".to_owned(),
        };
        return Err(give_back(format!(
            "no number was assigned: recording {} failed ({why}); {undone}",
            number.e164
        ))
        .await);
    }
    if let Some(r) = &repointed {
        // What Twilio has now (trunk or application cleared): the next sync finds
        // nothing changed.
        if let Err(e) = engine.store.set_twilio_routing(&number.id, &r.now).await {
            tracing::warn!(err = %e, e164 = %number.e164, "remembering the Twilio routing failed");
        }
    }
    if let Err(e) = engine
        .directory
        .upsert(number.e164.clone(), number.workspace.clone(), route)
        .await
    {
        tracing::error!(err = %e, e164 = %number.e164, "the number's actor did not take its route");
    }
    tracing::info!(e164 = %number.e164, agent_id = %agent_id, "number assigned");
    Ok(PoolNumber {
        status: PoolStatus::Assigned,
        agent_id: Some(agent_id.to_string()),
        ..number
    })
}

/// Takes every number of an agent off it at the provider and gives them back to
/// the pool. A provider that refuses stops it: the numbers already taken off are
/// assigned again at their provider, and nothing is recorded.
pub(crate) async fn unassign_agent(
    engine: &Engine,
    agent_id: &AgentId,
) -> Result<Vec<String>, ApiError> {
    let numbers = engine.store.numbers_of_agent(agent_id).await?;
    let mut done: Vec<(&ProviderAccount, &PoolNumber)> = Vec::new();
    for number in &numbers {
        let Some(account) = account(engine, &number.provider, &number.workspace) else {
            continue;
        };
        if let Err(e) = account.unassign(number).await {
            for (account, number) in done {
                if let Err(redo) = account.restore(number, None).await {
                    tracing::error!(err = %redo, e164 = %number.e164, "re-assigning at the provider failed");
                }
            }
            return Err(provider_failed(format!(
                "{} could not be taken off the agent: {e}",
                number.e164
            )));
        }
        if account.kind != ProviderKind::Twilio {
            // Nothing changed at Twilio (the number keeps pointing at switchboard).
            done.push((account, number));
        }
    }
    let mut released = Vec::new();
    for number in &numbers {
        let clear_provider_agent = number.provider != ProviderKind::Twilio.as_str();
        if let Some(route) = engine
            .store
            .unassign(number, agent_id, clear_provider_agent)
            .await?
        {
            engine
                .directory
                .upsert(number.e164.clone(), number.workspace.clone(), route)
                .await?;
        }
        released.push(number.e164.clone());
    }
    Ok(released)
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
    let agent = engine.store.get_agent(&agent_id).await?.ok_or_else(|| {
        ApiError::bad_request("unknown-agent", format!("agent_id: no agent {agent_id}"))
    })?;
    if agent.workspace != workspace {
        return Err(ApiError::bad_request(
            "wrong-workspace",
            format!(
                "agent {agent_id} belongs to workspace {}; {e164} is a number of workspace {workspace}",
                agent.workspace
            ),
        ));
    }
    let rows = engine
        .store
        .directory(&PoolFilter {
            e164: Some(e164.to_string()),
            workspace: Some(workspace.to_string()),
            status: Some(PoolStatus::Available),
            ..PoolFilter::default()
        })
        .await?;
    let candidate = rows
        .into_iter()
        .map(|r| r.number)
        .find(|n| provider.is_none_or(|p| n.provider == p.as_str()))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "not-available",
                format!("{e164} is not an AVAILABLE number of workspace {workspace}"),
            )
        })?;
    let claimed = engine
        .store
        .claim_number(&candidate.id, &agent_id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "not-available",
                format!("{e164} was taken meanwhile"),
            )
        })?;
    let provider_agent = body
        .provider_agent_id
        .unwrap_or_else(|| agent_id.to_string());
    let number = assign_claimed(&engine, claimed, &agent_id, &provider_agent)
        .await
        .map_err(provider_failed)?;
    Ok(HttpResponse::Ok().json(json!({
        "e164": number.e164,
        "workspace": number.workspace.to_string(),
        "provider": number.provider,
        "agent_id": agent_id.to_string(),
        "status": number.status.as_str(),
    })))
}

// ---- the directory -------------------------------------------------------------

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
    let entries: Vec<DirectoryEntry> = entries(
        &engine,
        &PoolFilter {
            workspace: workspace.map(|w| w.to_string()),
            status,
            agent_id: query.agent,
            e164: None,
        },
    )
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
    let entries: Vec<DirectoryEntry> = entries(
        &engine,
        &PoolFilter {
            e164: Some(e164.to_string()),
            ..PoolFilter::default()
        },
    )
    .await?;
    let live = engine.store.get_number(e164.as_str()).await?;
    if entries.is_empty() && live.is_none() {
        return Err(ApiError::not_found(format!("no number {e164}")));
    }
    Ok(HttpResponse::Ok().json(json!({
        "e164": e164.as_str(),
        "pretty": info.international,
        "national": info.national,
        "type": info.number_type,
        "area_code": info.area_code,
        "region": info.region,
        "live": live.map(|n| json!({ "workspace": n.workspace.to_string(), "route": n.route })),
        "entries": entries,
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
    let agent = engine.store.get_agent(&id).await?;
    let entries: Vec<DirectoryEntry> = entries(
        &engine,
        &PoolFilter {
            agent_id: Some(id.to_string()),
            ..PoolFilter::default()
        },
    )
    .await?
    .into_iter()
    .filter(|e| e.status == "ASSIGNED")
    .collect();
    let routes: Vec<serde_json::Value> = engine
        .store
        .list_numbers()
        .await?
        .into_iter()
        .filter(|n| matches!(&n.route, Route::Agents { agent_ids } if agent_ids.contains(&id)))
        .map(|n| json!({ "e164": n.e164, "workspace": n.workspace.to_string(), "route": n.route }))
        .collect();
    if agent.is_none() && entries.is_empty() && routes.is_empty() {
        return Err(ApiError::not_found(format!("no agent {id}")));
    }
    Ok(HttpResponse::Ok().json(json!({
        "agent": agent.map(|a| json!({ "id": a.id.to_string(), "name": a.name, "workspace": a.workspace.to_string() })),
        "numbers": entries,
        "routes": routes,
    })))
}

async fn everything(
    engine: &Engine,
) -> Result<
    (
        Vec<DirectoryEntry>,
        Vec<LiveNumber>,
        HashMap<String, String>,
    ),
    ApiError,
> {
    let entries: Vec<DirectoryEntry> = entries(engine, &PoolFilter::default()).await?;
    let live = engine
        .store
        .list_numbers()
        .await?
        .into_iter()
        .map(|n| LiveNumber {
            route: serde_json::to_value(&n.route).unwrap_or_default(),
            e164: n.e164,
            workspace: n.workspace.to_string(),
        })
        .collect();
    let agents = engine
        .store
        .list_agents()
        .await?
        .into_iter()
        .map(|a| (a.id.to_string(), a.workspace.to_string()))
        .collect();
    Ok((entries, live, agents))
}

pub async fn validate(_admin: Admin, engine: web::Data<Engine>) -> Result<HttpResponse, ApiError> {
    let (entries, live, agents) = everything(&engine).await?;
    Ok(HttpResponse::Ok().json(checks::validate(&entries, &live, &agents)))
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
    let entries: Vec<DirectoryEntry> = entries(&engine, &PoolFilter::default()).await?;
    Ok(HttpResponse::Ok().json(checks::diff(&entries, a.as_str(), b.as_str())))
}

// ---- routes, cut-over and rollback ----------------------------------------------

#[derive(Deserialize)]
pub struct RouteQuery {
    #[serde(default)]
    workspace: Option<String>,
}

/// Re-routes one number; the number's actor takes the route for its next call.
/// Its workspace is the live number's, else the one pool workspace holding it.
pub async fn set_route(
    _admin: Admin,
    engine: web::Data<Engine>,
    path: web::Path<String>,
    query: web::Query<RouteQuery>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let e164 = e164_field(&path, "e164")?;
    let workspace = match query.workspace.as_deref() {
        Some(w) => workspace_field(w, "workspace")?,
        None => match engine.store.get_number(e164.as_str()).await? {
            Some(live) => live.workspace,
            None => {
                let mut workspaces: Vec<Workspace> = engine
                    .store
                    .directory(&PoolFilter {
                        e164: Some(e164.to_string()),
                        ..PoolFilter::default()
                    })
                    .await?
                    .into_iter()
                    .filter(|r| r.number.status != PoolStatus::Released)
                    .map(|r| r.number.workspace)
                    .collect();
                workspaces.dedup();
                match workspaces.as_slice() {
                    [one] => one.clone(),
                    [] => return Err(ApiError::not_found(format!("no number {e164}"))),
                    _ => {
                        return Err(ApiError::bad_request(
                            "ambiguous-workspace",
                            format!("{e164} is in several workspaces: name one with ?workspace="),
                        ))
                    }
                }
            }
        },
    };
    let route = super::numbers::parse_route(&engine, body.into_inner(), &workspace).await?;
    let record = super::numbers::save_route(&engine, e164.as_str(), &workspace, &route).await?;
    tracing::info!(e164 = %e164, "number re-routed");
    Ok(HttpResponse::Ok().json(json!({
        "e164": record.e164,
        "workspace": workspace.to_string(),
        "route": route,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrateRequest {
    workspace: String,
    route: serde_json::Value,
    percent: i64,
}

/// Moves `percent` % of a workspace's live numbers to `route` (counting those
/// already on it), re-pointing Twilio numbers whose webhook points elsewhere at
/// switchboard, and records what each had so a rollback restores it exactly.
pub async fn migrate(
    _admin: Admin,
    engine: web::Data<Engine>,
    body: web::Json<MigrateRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let workspace = workspace_field(&body.workspace, "workspace")?;
    if !(1..=100).contains(&body.percent) {
        return Err(ApiError::bad_request(
            "bad-field",
            "percent must be between 1 and 100",
        ));
    }
    let target = super::numbers::parse_route(&engine, body.route, &workspace).await?;
    let live: Vec<_> = engine
        .store
        .list_numbers()
        .await?
        .into_iter()
        .filter(|n| n.workspace == workspace)
        .collect();
    let share = ((live.len() as i64 * body.percent + 99) / 100) as usize;
    let already = live.iter().filter(|n| n.route == target).count();
    let moving: Vec<_> = live
        .into_iter()
        .filter(|n| n.route != target)
        .take(share.saturating_sub(already))
        .collect();
    if moving.is_empty() {
        return Ok(HttpResponse::Ok().json(json!({ "id": null, "moved": [] })));
    }
    let pool: Vec<PoolNumber> = twilio_rows(&engine, &workspace)
        .await?
        .into_iter()
        .filter(|n| n.status != PoolStatus::Released)
        .collect();
    let (webhook, status) = (engine.voice_webhook_url(), status_callback_url(&engine));
    let hooks = Hooks {
        voice_url: &webhook,
        status_callback: &status,
    };
    let twilio = account(&engine, ProviderKind::Twilio.as_str(), &workspace);
    let mut entries = Vec::new();
    let mut repointed: Vec<(&PoolNumber, Repointed)> = Vec::new();
    for number in &moving {
        let held = pool.iter().find(|p| p.e164 == number.e164);
        let mut entry = MigrationEntry {
            e164: number.e164.clone(),
            previous_route: number.route.clone(),
            twilio_sid: None,
            previous_voice_url: None,
            previous_twilio: None,
        };
        if let (Some(held), Some(twilio)) = (held, twilio) {
            // The pool row may be as old as the last sync: Twilio itself is read
            // (by `repoint`) before anything is changed.
            if !VoiceRouting::of(held).points_at(&hooks) {
                match twilio.repoint(&held.provider_id, &hooks).await {
                    Err(e) => {
                        undo_repoints(&engine, twilio, &repointed).await;
                        return Err(provider_failed(format!(
                            "re-pointing {} at switchboard failed: {e}; nothing was moved",
                            held.e164
                        )));
                    }
                    Ok(r) if r.before.points_at(&hooks) => {}
                    Ok(r) => {
                        entry.twilio_sid = Some(held.provider_id.clone());
                        entry.previous_voice_url = r.before.voice_url.clone();
                        entry.previous_twilio = Some(r.before.clone());
                        repointed.push((held, r));
                    }
                }
            }
        }
        entries.push(entry);
    }
    let migration = RouteMigration {
        id: uuid::Uuid::new_v4().simple().to_string(),
        workspace: workspace.clone(),
        target_route: target.clone(),
        percent: body.percent,
        created_at: switchboard_actors::journal::now_ms(),
        rolled_back_at: None,
        entries,
    };
    if let Err(e) = engine.store.save_route_migration(&migration).await {
        if let Some(twilio) = twilio {
            undo_repoints(&engine, twilio, &repointed).await;
        }
        return Err(e.into());
    }
    for (held, r) in &repointed {
        engine.store.set_twilio_routing(&held.id, &r.now).await?;
    }
    for entry in &migration.entries {
        super::numbers::save_route(&engine, &entry.e164, &workspace, &target).await?;
    }
    tracing::info!(id = %migration.id, moved = migration.entries.len(), "numbers migrated");
    Ok(HttpResponse::Created().json(json!({
        "id": migration.id,
        "workspace": workspace.to_string(),
        "percent": body.percent,
        "route": target,
        "moved": migration.entries.iter().map(|e| json!({
            "e164": e.e164,
            "previous_route": e.previous_route,
            "repointed": e.twilio_sid.is_some(),
            "previous_twilio": e.previous_twilio,
            "cleared": e.previous_twilio.as_ref().map(cleared).unwrap_or_default(),
        })).collect::<Vec<_>>(),
    })))
}

/// What re-pointing a number cleared so that Twilio would use switchboard's
/// webhook: `TrunkSid TK…`, `VoiceApplicationSid AP…`.
fn cleared(previous: &VoiceRouting) -> Vec<String> {
    [
        ("TrunkSid", &previous.trunk_sid),
        ("VoiceApplicationSid", &previous.voice_application_sid),
    ]
    .iter()
    .filter_map(|(field, value)| value.as_ref().map(|v| format!("{field} {v}")))
    .collect()
}

/// Where switchboard wants Twilio's call status callbacks.
fn status_callback_url(engine: &Engine) -> String {
    format!("{}/twilio/status", engine.public_url)
}

/// Restores the numbers a failed migration had already re-pointed.
async fn undo_repoints(
    engine: &Engine,
    twilio: &ProviderAccount,
    repointed: &[(&PoolNumber, Repointed)],
) {
    for (held, r) in repointed {
        match twilio.restore_routing(&held.provider_id, &r.before).await {
            Ok(now) => {
                if let Err(e) = engine.store.set_twilio_routing(&held.id, &now).await {
                    tracing::warn!(err = %e, e164 = %held.e164, "remembering a restored routing failed");
                }
            }
            Err(e) => {
                tracing::error!(err = %e, e164 = %held.e164, "restoring a Twilio routing failed")
            }
        }
    }
}

/// The Twilio numbers of a workspace's pool: their sids and webhooks.
async fn twilio_rows(engine: &Engine, workspace: &Workspace) -> Result<Vec<PoolNumber>, ApiError> {
    let rows = pool_rows(
        engine,
        &PoolFilter {
            workspace: Some(workspace.to_string()),
            ..PoolFilter::default()
        },
    )
    .await?;
    Ok(rows
        .into_iter()
        .filter(|n| n.provider == ProviderKind::Twilio.as_str())
        .collect())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    workspace: String,
    /// Default: the workspace's latest migration not rolled back yet.
    #[serde(default)]
    id: Option<String>,
}

/// Puts every number of a migration back on its previous route and its Twilio
/// webhook back where it pointed.
pub async fn rollback(
    _admin: Admin,
    engine: web::Data<Engine>,
    body: web::Json<RollbackRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let workspace = workspace_field(&body.workspace, "workspace")?;
    let migration = engine
        .store
        .route_migration(body.id.as_deref(), &workspace)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no migration to roll back in workspace {workspace}"
            ))
        })?;
    if migration.rolled_back_at.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "rolled-back",
            format!("migration {} was rolled back already", migration.id),
        ));
    }
    let pool = twilio_rows(&engine, &workspace).await?;
    let twilio = account(&engine, ProviderKind::Twilio.as_str(), &workspace);
    for entry in &migration.entries {
        let Some(sid) = &entry.twilio_sid else {
            continue;
        };
        let twilio = twilio.ok_or_else(|| {
            provider_failed(format!(
                "no Twilio account of {workspace} to restore {}",
                entry.e164
            ))
        })?;
        // Entries recorded before the whole routing was kept restore the voice
        // URL (POST), as they were made.
        let previous = entry
            .previous_twilio
            .clone()
            .unwrap_or_else(|| VoiceRouting {
                voice_url: entry.previous_voice_url.clone(),
                voice_method: Some("POST".to_owned()),
                ..VoiceRouting::default()
            });
        let now = twilio.restore_routing(sid, &previous).await.map_err(|e| {
            provider_failed(format!("restoring the webhook of {}: {e}", entry.e164))
        })?;
        if let Some(held) = pool.iter().find(|p| &p.provider_id == sid) {
            engine.store.set_twilio_routing(&held.id, &now).await?;
        }
    }
    for entry in &migration.entries {
        super::numbers::save_route(&engine, &entry.e164, &workspace, &entry.previous_route).await?;
    }
    engine.store.mark_rolled_back(&migration.id).await?;
    tracing::info!(id = %migration.id, "migration rolled back");
    Ok(HttpResponse::Ok().json(json!({
        "id": migration.id,
        "restored": migration.entries.iter().map(|e| json!({
            "e164": e.e164,
            "route": e.previous_route,
            "voice_url": e.previous_voice_url,
            "twilio": e.previous_twilio,
        })).collect::<Vec<_>>(),
    })))
}
