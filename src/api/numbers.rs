//! `/api/numbers…`: `POST /api/numbers` (create or re-route), `GET /api/numbers`,
//! `GET /api/numbers/{e164}`, `PUT /api/numbers/{e164}/route`, `POST
//! /api/numbers/sync`, `POST /api/numbers/import`, `POST /api/numbers/migrate` and
//! `…/rollback`. Each handler parses the request, calls the numbers service
//! ([`crate::numbers`]) and maps its answer; the workflows live there.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use switchboard_actors::number::Route;
use switchboard_actors::Workspace;

use super::admin::Admin;
use crate::domain::phone::PhoneNumber;
use crate::domain::provider::ProviderKind;
use crate::engine::Engine;
use crate::error::{ApiError, ErrorBody};
use crate::numbers::migrate::cleared;
use crate::numbers::model::DirectoryEntry;
use crate::numbers::sync::SyncReport;
use crate::numbers::{NumberService, NumbersError};
use crate::providers::retell::Import;
use crate::store::numbers::NumberRecord;
use crate::store::pool::VoiceRouting;

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

/// The body of `POST /api/numbers`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNumber {
    /// Parsed with libphonenumber and normalised.
    e164: String,
    workspace: String,
    /// Parsed by the numbers service, so a refusal names the agent or assistant.
    #[schema(value_type = super::schema::RouteJson)]
    route: serde_json::Value,
}

/// A live number and its route.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Number)]
pub struct NumberJson {
    e164: String,
    workspace: String,
    #[schema(value_type = super::schema::RouteJson)]
    route: Route,
    /// RFC 3339.
    created_at: String,
    /// RFC 3339.
    updated_at: String,
}

/// `PUT /api/numbers/{e164}/route`'s answer; a live number's route.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NumberRoute {
    e164: String,
    workspace: String,
    #[schema(value_type = super::schema::RouteJson)]
    route: Route,
}

impl From<NumberRecord> for NumberRoute {
    fn from(n: NumberRecord) -> Self {
        Self {
            e164: n.e164,
            workspace: n.workspace.to_string(),
            route: n.route,
        }
    }
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

/// Creates or re-routes a live number
///
/// `201` new, `200` re-routed; a changed route applies from the number's next call.
#[utoipa::path(post, path = "/api/numbers", tag = "numbers",
    security(("admin_token" = [])),
    request_body = CreateNumber,
    responses(
        (status = 201, description = "Created", body = NumberJson),
        (status = 200, description = "Re-routed", body = NumberJson),
        (status = 400, description = "`bad-field`, `unknown-agent`, `unknown-assistant`, `wrong-workspace`", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
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

/// Lists the live numbers
///
/// Every number the engine answers, with its route.
#[utoipa::path(get, path = "/api/numbers", tag = "numbers",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The live numbers", body = Vec<NumberJson>),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
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

/// Reads a live number
///
/// The number and its route.
#[utoipa::path(get, path = "/api/numbers/{e164}", tag = "numbers",
    security(("admin_token" = [])),
    params(("e164" = String, Path, description = "The number, E.164 (`+` may be sent as `%2B`)")),
    responses(
        (status = 200, description = "The number", body = NumberJson),
        (status = 400, description = "`bad-field`: not a phone number", body = ErrorBody),
        (status = 404, description = "No such live number", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RouteQuery {
    /// The number's workspace, when it is new to the engine.
    #[serde(default)]
    workspace: Option<String>,
}

/// Re-routes a number
///
/// The number's actor takes the route for its next call.
#[utoipa::path(put, path = "/api/numbers/{e164}/route", tag = "numbers",
    security(("admin_token" = [])),
    params(("e164" = String, Path, description = "The number, E.164"), RouteQuery),
    request_body(content = super::schema::RouteJson, description = "The new route"),
    responses(
        (status = 200, description = "The number's route", body = NumberRoute),
        (status = 400, description = "`bad-field`, `unknown-agent`, `unknown-assistant`, `wrong-workspace`", body = ErrorBody),
        (status = 404, description = "No such number", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
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
    Ok(HttpResponse::Ok().json(NumberRoute::from(record)))
}

// ---- the pool: sync and import ---------------------------------------------------

/// The optional body of `POST /api/numbers/sync` (empty: every account).
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// `twilio`, `vapi` or `retell`.
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    workspace: Option<String>,
}

/// `POST /api/numbers/sync`'s answer when an account failed: the report, with
/// the error's `code` (`provider-failed`) and `message`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SyncFailed {
    #[serde(flatten)]
    error: ErrorBody,
    #[serde(flatten)]
    report: SyncReport,
}

/// Syncs the pool with the providers
///
/// Every configured account (or those of one provider / workspace): 200, or
/// 502 `provider-failed` with the same counts when an account failed.
#[utoipa::path(post, path = "/api/numbers/sync", tag = "numbers",
    security(("admin_token" = [])),
    request_body(content = Option<SyncRequest>, description = "Optional: empty syncs every account"),
    responses(
        (status = 200, description = "Every account synced", body = SyncReport),
        (status = 400, description = "`unknown-provider`, `no-provider-account`, `bad-json`", body = ErrorBody),
        (status = 502, description = "`provider-failed`: the failed accounts changed nothing of their own", body = SyncFailed),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
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
    if report.failed.is_empty() {
        Ok(HttpResponse::Ok().json(report))
    } else {
        Ok(HttpResponse::BadGateway().json(SyncFailed {
            error: ErrorBody {
                code: "provider-failed".to_owned(),
                message,
                field: None,
            },
            report,
        }))
    }
}

/// A number imported into Retell over a SIP trunk.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// `retell`.
    provider: String,
    workspace: String,
    phone_number: String,
    termination_uri: String,
    #[serde(default)]
    sip_trunk_auth_username: Option<String>,
    /// Goes to Retell only.
    #[serde(default)]
    sip_trunk_auth_password: Option<String>,
    #[serde(default)]
    nickname: Option<String>,
}

/// Imports a number into Retell over a SIP trunk
///
/// `201` with the directory entry; the password goes to Retell only.
#[utoipa::path(post, path = "/api/numbers/import", tag = "numbers",
    security(("admin_token" = [])),
    request_body = ImportRequest,
    responses(
        (status = 201, description = "The directory entry", body = DirectoryEntry),
        (status = 400, description = "`bad-field`, `unknown-provider`, `no-provider-account`", body = ErrorBody),
        (status = 502, description = "`provider-failed`", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrateRequest {
    workspace: String,
    /// Where the moved numbers' calls go.
    #[schema(value_type = super::schema::RouteJson)]
    route: serde_json::Value,
    /// 1 to 100: the share of the workspace's live numbers to have on `route`.
    percent: i64,
    /// Answer the numbers that would move, changing nothing.
    #[serde(default)]
    dry_run: bool,
}

/// One number a migration moved.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Moved {
    e164: String,
    #[schema(value_type = super::schema::RouteJson)]
    previous_route: Route,
    /// Its Twilio webhook was re-pointed at switchboard.
    repointed: bool,
    /// The Twilio routing replaced, restored by a rollback.
    previous_twilio: Option<VoiceRouting>,
    /// What re-pointing cleared (`TrunkSid TK…`, `VoiceApplicationSid AP…`).
    cleared: Vec<String>,
}

/// `POST /api/numbers/migrate`'s answer: what moved (`201`), or `id: null` and
/// nothing moved (`200`) when that share is there already.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Migrated {
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workspace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    percent: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<super::schema::RouteJson>)]
    route: Option<Route>,
    moved: Vec<Moved>,
}

/// A number a migration would move, and its route now.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WouldMove {
    e164: String,
    #[schema(value_type = super::schema::RouteJson)]
    previous_route: Route,
}

/// `POST /api/numbers/migrate` with `dry_run`: what would move, nothing changed.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MigrationPlan {
    /// `true`.
    dry_run: bool,
    workspace: String,
    percent: i64,
    #[schema(value_type = super::schema::RouteJson)]
    route: Route,
    /// In the order a real migration moves them.
    would_move: Vec<WouldMove>,
}

/// Moves a share of a workspace's numbers to a route (the cut-over)
///
/// Moves `percent` % of a workspace's live numbers to `route`: 201 with what moved
/// and what each had, or 200 with `id: null` when nothing had to move. With
/// `dry_run`: 200 with what would move, nothing changed.
#[utoipa::path(post, path = "/api/numbers/migrate", tag = "numbers",
    security(("admin_token" = [])),
    request_body = MigrateRequest,
    responses(
        (status = 201, description = "Numbers moved", body = Migrated),
        (status = 200, description = "Nothing had to move (`id: null`), or the dry run's plan", body = inline(MigrateAnswer)),
        (status = 400, description = "`bad-field` (route, percent), `unknown-agent`, `unknown-assistant`", body = ErrorBody),
        (status = 502, description = "`provider-failed`", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
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
        return Ok(HttpResponse::Ok().json(MigrationPlan {
            dry_run: true,
            workspace: workspace.to_string(),
            percent: body.percent,
            route: target,
            would_move: moving
                .into_iter()
                .map(|n| WouldMove {
                    e164: n.e164,
                    previous_route: n.route,
                })
                .collect(),
        }));
    }
    let Some(migration) = service(&engine)
        .migrate(&workspace, body.route, body.percent)
        .await?
    else {
        return Ok(HttpResponse::Ok().json(Migrated {
            id: None,
            workspace: None,
            percent: None,
            route: None,
            moved: Vec::new(),
        }));
    };
    Ok(HttpResponse::Created().json(Migrated {
        id: Some(migration.id),
        workspace: Some(migration.workspace.to_string()),
        percent: Some(migration.percent),
        route: Some(migration.target_route),
        moved: migration
            .entries
            .into_iter()
            .map(|e| Moved {
                cleared: e.previous_twilio.as_ref().map(cleared).unwrap_or_default(),
                e164: e.e164,
                previous_route: e.previous_route,
                repointed: e.twilio_sid.is_some(),
                previous_twilio: e.previous_twilio,
            })
            .collect(),
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
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

/// What `200` from `POST /api/numbers/migrate` is: nothing moved, or a dry run.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum MigrateAnswer {
    Nothing(Migrated),
    Plan(MigrationPlan),
}

/// A number a rollback put back.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Restored {
    e164: String,
    #[schema(value_type = super::schema::RouteJson)]
    route: Route,
    voice_url: Option<String>,
    twilio: Option<VoiceRouting>,
}

/// `POST /api/numbers/rollback`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RolledBack {
    id: String,
    restored: Vec<Restored>,
}

/// A number a rollback would put back, and the route it would get.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WouldRestore {
    e164: String,
    #[schema(value_type = super::schema::RouteJson)]
    route: Route,
}

/// `POST /api/numbers/rollback` with `dry_run`: nothing changed.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RollbackPlan {
    /// `true`.
    dry_run: bool,
    id: String,
    would_restore: Vec<WouldRestore>,
}

/// What `200` from `POST /api/numbers/rollback` is.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum RollbackAnswer {
    Done(RolledBack),
    Plan(RollbackPlan),
}

/// Undoes a migration
///
/// Puts every number of a migration back on its previous route and its Twilio
/// webhook back where it pointed. With `dry_run`: what would be restored.
#[utoipa::path(post, path = "/api/numbers/rollback", tag = "numbers",
    security(("admin_token" = [])),
    request_body = RollbackRequest,
    responses(
        (status = 200, description = "Rolled back, or the dry run's plan", body = inline(RollbackAnswer)),
        (status = 400, description = "`bad-field`", body = ErrorBody),
        (status = 404, description = "No migration to roll back", body = ErrorBody),
        (status = 409, description = "`rolled-back` already", body = ErrorBody),
        (status = 502, description = "`provider-failed`", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
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
        return Ok(HttpResponse::Ok().json(RollbackPlan {
            dry_run: true,
            id: migration.id,
            would_restore: migration
                .entries
                .into_iter()
                .map(|e| WouldRestore {
                    e164: e.e164,
                    route: e.previous_route,
                })
                .collect(),
        }));
    }
    let migration = service(&engine)
        .rollback(&workspace, body.id.as_deref())
        .await?;
    Ok(HttpResponse::Ok().json(RolledBack {
        id: migration.id,
        restored: migration
            .entries
            .into_iter()
            .map(|e| Restored {
                e164: e.e164,
                route: e.previous_route,
                voice_url: e.previous_voice_url,
                twilio: e.previous_twilio,
            })
            .collect(),
    }))
}
