//! `/api/numbers…`: `POST /api/numbers` (create or re-route), `GET /api/numbers`,
//! `GET /api/numbers/{e164}`, `PUT /api/numbers/{e164}/route`, `POST
//! /api/numbers/sync`, `POST /api/numbers/import`, `POST /api/numbers/migrate` and
//! `…/rollback`. Each handler parses the request, calls the numbers service
//! ([`crate::numbers`]) and maps its answer; the workflows live there.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use switchboard_actors::number::Route;
use switchboard_actors::Workspace;

use super::admin::Admin;
use crate::domain::phone::PhoneNumber;
use crate::domain::provider::ProviderKind;
use crate::engine::Engine;
use crate::error::ApiError;
use crate::numbers::migrate::cleared;
use crate::numbers::{NumberService, NumbersError};
use crate::providers::retell::Import;
use crate::store::numbers::NumberRecord;

/// The numbers service over the engine's store, provider accounts and number book.
pub(crate) fn service(engine: &Engine) -> NumberService<'_> {
    NumberService {
        store: &engine.store,
        accounts: &engine.providers,
        book: &engine.numbers,
        public_url: &engine.public_url,
    }
}

impl From<NumbersError> for ApiError {
    fn from(err: NumbersError) -> Self {
        match err {
            NumbersError::Refused { code, message } => ApiError::bad_request(code, message),
            NumbersError::NotFound(what) => ApiError::not_found(what),
            NumbersError::Conflict { code, message } => {
                ApiError::new(StatusCode::CONFLICT, code, message)
            }
            NumbersError::ProviderFailed(message) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "provider-failed", message)
            }
            NumbersError::Store(e) => e.into(),
            NumbersError::Engine(e) => e.into(),
        }
    }
}

pub(super) fn workspace_field(raw: &str, field: &str) -> Result<Workspace, ApiError> {
    Workspace::parse(raw).map_err(|e| ApiError::bad_request("bad-field", format!("{field}: {e}")))
}

pub(super) fn e164_field(raw: &str, field: &str) -> Result<PhoneNumber, ApiError> {
    PhoneNumber::parse(raw).map_err(|e| ApiError::bad_request("bad-field", format!("{field} {e}")))
}

pub(super) fn provider_field(raw: &str) -> Result<ProviderKind, ApiError> {
    ProviderKind::parse(raw).ok_or_else(|| {
        ApiError::bad_request(
            "unknown-provider",
            format!("provider: unknown provider {raw:?} (twilio, vapi or retell)"),
        )
    })
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

// ---- live numbers --------------------------------------------------------------

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

pub async fn create(
    _admin: Admin,
    engine: web::Data<Engine>,
    body: web::Json<CreateNumber>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let e164 = e164_field(&body.e164, "e164")?;
    let workspace = workspace_field(&body.workspace, "workspace")?;
    let (record, existed) = service(&engine)
        .put_number(&e164, &workspace, body.route)
        .await?;
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
    let e164 = e164_field(&path, "e164")?;
    let number = engine
        .store
        .get_number(e164.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no number {e164}")))?;
    Ok(HttpResponse::Ok().json(NumberJson::from(number)))
}

#[derive(Deserialize)]
pub struct RouteQuery {
    #[serde(default)]
    workspace: Option<String>,
}

/// Re-routes one number; the number's actor takes the route for its next call.
pub async fn set_route(
    _admin: Admin,
    engine: web::Data<Engine>,
    path: web::Path<String>,
    query: web::Query<RouteQuery>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let e164 = e164_field(&path, "e164")?;
    let workspace = query
        .workspace
        .as_deref()
        .map(|w| workspace_field(w, "workspace"))
        .transpose()?;
    let record = service(&engine)
        .set_route(&e164, workspace, body.into_inner())
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "e164": record.e164,
        "workspace": record.workspace.to_string(),
        "route": record.route,
    })))
}

// ---- the pool: sync and import ---------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SyncRequest {
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    workspace: Option<String>,
}

/// Syncs every configured account (or those of one provider / workspace): 200, or
/// 502 `provider-failed` with the same counts when an account failed.
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
    let report = service(&engine).sync(provider, workspace.as_ref()).await?;
    let message = report
        .failed
        .iter()
        .map(|f| f.error.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let mut body = serde_json::to_value(&report).unwrap_or_default();
    if report.failed.is_empty() {
        Ok(HttpResponse::Ok().json(body))
    } else {
        body["code"] = "provider-failed".into();
        body["message"] = message.into();
        Ok(HttpResponse::BadGateway().json(body))
    }
}

/// A number imported into Retell over a SIP trunk.
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
    let import = Import {
        phone_number: e164.to_string(),
        termination_uri: uri.to_owned(),
        sip_trunk_auth_username: body.sip_trunk_auth_username,
        sip_trunk_auth_password: body.sip_trunk_auth_password,
        nickname: body.nickname,
    };
    let entry = service(&engine)
        .import(provider, &workspace, &import)
        .await?;
    Ok(HttpResponse::Created().json(entry))
}

// ---- cut-over and rollback -------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrateRequest {
    workspace: String,
    route: serde_json::Value,
    percent: i64,
    /// Answer the numbers that would move, changing nothing.
    #[serde(default)]
    dry_run: bool,
}

/// Moves `percent` % of a workspace's live numbers to `route`: 201 with what moved
/// and what each had, or 200 with `id: null` when nothing had to move.
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
    if body.dry_run {
        let (target, moving) = service(&engine)
            .migration_plan(&workspace, body.route, body.percent)
            .await?;
        return Ok(HttpResponse::Ok().json(json!({
            "dry_run": true,
            "workspace": workspace.to_string(),
            "percent": body.percent,
            "route": target,
            "would_move": moving.iter().map(|n| json!({
                "e164": n.e164,
                "previous_route": n.route,
            })).collect::<Vec<_>>(),
        })));
    }
    let Some(migration) = service(&engine)
        .migrate(&workspace, body.route, body.percent)
        .await?
    else {
        return Ok(HttpResponse::Ok().json(json!({ "id": null, "moved": [] })));
    };
    Ok(HttpResponse::Created().json(json!({
        "id": migration.id,
        "workspace": migration.workspace.to_string(),
        "percent": migration.percent,
        "route": migration.target_route,
        "moved": migration.entries.iter().map(|e| json!({
            "e164": e.e164,
            "previous_route": e.previous_route,
            "repointed": e.twilio_sid.is_some(),
            "previous_twilio": e.previous_twilio,
            "cleared": e.previous_twilio.as_ref().map(cleared).unwrap_or_default(),
        })).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    workspace: String,
    /// Default: the workspace's latest migration not rolled back yet.
    #[serde(default)]
    id: Option<String>,
    /// Answer the numbers that would be restored, changing nothing.
    #[serde(default)]
    dry_run: bool,
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
    if body.dry_run {
        let migration = service(&engine)
            .rollback_plan(&workspace, body.id.as_deref())
            .await?;
        return Ok(HttpResponse::Ok().json(json!({
            "dry_run": true,
            "id": migration.id,
            "would_restore": migration.entries.iter().map(|e| json!({
                "e164": e.e164,
                "route": e.previous_route,
            })).collect::<Vec<_>>(),
        })));
    }
    let migration = service(&engine)
        .rollback(&workspace, body.id.as_deref())
        .await?;
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
