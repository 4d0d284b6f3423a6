//! `POST /api/users` (admin), `GET /api/users/{id}` (the admin, or the user
//! itself), `PATCH /api/users/{id}` (admin): users, their plan, their limit
//! overrides and their status.

use std::ops::RangeInclusive;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_actors::UserId;

use super::admin::Admin;
use super::caller::Caller;
use super::input::{fields, nullable};
use super::numbers::workspace_field;
use crate::config::{PlanLimits, Plans};
use crate::domain::user::{EmailAddress, PlanName, TimeZoneName, UserStatus};
use crate::engine::Engine;
use crate::error::{ApiError, ErrorBody};
use crate::store::flags::{AuditEntry, Flag, QuotaUse, StatusChanged};
use crate::store::users::{UserChanges, UserFields, UserRecord};
use crate::users::{self, UserError};

/// The longest name.
const MAX_NAME_CHARS: usize = 100;

/// The body of `POST /api/users`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// One address; lowercased.
    email: String,
    /// 1 to 100 characters.
    name: String,
    /// Omitted: `numbers.default_workspace`.
    #[serde(default)]
    workspace: Option<String>,
    /// An IANA name (`America/New_York`).
    #[serde(default)]
    timezone: Option<String>,
    /// A key of `[plans.*]`. Omitted: `free`.
    #[serde(default)]
    plan: Option<String>,
}

/// Every field optional: absent leaves it, `null` clears an override (back to
/// the plan's) or the time zone; `name`, `plan` and `status` cannot be null.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchUser {
    #[serde(default, deserialize_with = "nullable")]
    plan: Option<Option<String>>,
    /// 0–10000; `null`: the plan's.
    #[serde(default, deserialize_with = "nullable")]
    calls_per_hour: Option<Option<u32>>,
    #[serde(default, deserialize_with = "nullable")]
    calls_per_day: Option<Option<u32>>,
    #[serde(default, deserialize_with = "nullable")]
    monthly_budget_usd: Option<Option<f64>>,
    #[serde(default, deserialize_with = "nullable")]
    max_call_minutes: Option<Option<u32>>,
    #[serde(default, deserialize_with = "nullable")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    timezone: Option<Option<String>>,
    /// `active`, `paused` or `suspended`.
    #[serde(default, deserialize_with = "nullable")]
    status: Option<Option<String>>,
}

/// `POST /api/users`'s answer: the secrets, shown only here.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CreatedUser)]
pub struct CreatedJson {
    #[schema(value_type = String)]
    id: UserId,
    /// Shown here only; stored as its hash.
    api_key: String,
    /// Signs the user's callbacks (`X-Switchboard-Signature`).
    webhook_secret: String,
}

/// A user's overrides as shown: `null` is the plan's.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = UserOverrides)]
pub struct OverridesJson {
    calls_per_hour: Option<u32>,
    calls_per_day: Option<u32>,
    monthly_budget_usd: Option<f64>,
    max_call_minutes: Option<u32>,
}

/// A user without secrets.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = UserFields)]
pub struct UserJson {
    #[schema(value_type = String)]
    id: UserId,
    email: String,
    name: String,
    workspace: String,
    timezone: Option<String>,
    plan: String,
    /// `active`, `paused` or `suspended`.
    #[schema(value_type = String)]
    status: UserStatus,
    overrides: OverridesJson,
    /// The plan merged with the overrides; `null` when the plan is no longer
    /// configured.
    #[schema(value_type = Option<UserLimits>)]
    limits: Option<PlanLimits>,
    /// RFC 3339.
    created_at: String,
    /// RFC 3339.
    updated_at: String,
}

/// A user's effective limits (`crate::config::PlanLimits` on the wire).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // described only: `PlanLimits` is what is sent
pub struct UserLimits {
    calls_per_hour: u32,
    calls_per_day: u32,
    monthly_budget_usd: f64,
    max_call_minutes: u32,
}

/// The quotas' use now.
#[derive(Serialize, utoipa::ToSchema)]
pub struct QuotaJson {
    calls_last_hour: i64,
    calls_per_hour: Option<u32>,
    calls_last_day: i64,
    calls_per_day: Option<u32>,
    /// The month's committed spend (actual cost, else the estimate), USD.
    month_spend_usd: f64,
    monthly_budget_usd: Option<f64>,
}

/// This calendar month (UTC).
#[derive(Serialize, utoipa::ToSchema)]
pub struct MonthJson {
    calls: i64,
    finished: i64,
    completed: i64,
    /// Answered to ended, to 2 decimals.
    minutes: f64,
}

/// A user as `GET /api/users/{id}` shows it.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = User)]
pub struct UserView {
    #[serde(flatten)]
    user: UserJson,
    quota: QuotaJson,
    month: MonthJson,
    /// The admin's view only: the user's unresolved flags, oldest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    open_flags: Option<Vec<super::flags::FlagJson>>,
}

/// `GET /api/users`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserList {
    users: Vec<UserView>,
    total: i64,
    has_more: bool,
}

impl UserJson {
    fn of(user: UserRecord, plans: &Plans) -> Self {
        let limits = users::effective_limits(plans, &user)
            .inspect_err(|err| tracing::warn!(user_id = %user.id, %err, "user without limits"))
            .ok();
        let o = user.overrides;
        Self {
            id: user.id,
            email: user.email.to_string(),
            name: user.name,
            workspace: user.workspace.to_string(),
            timezone: user.timezone.map(|tz| tz.to_string()),
            plan: user.plan.to_string(),
            status: user.status,
            overrides: OverridesJson {
                calls_per_hour: o.calls_per_hour,
                calls_per_day: o.calls_per_day,
                monthly_budget_usd: o.monthly_budget_usd,
                max_call_minutes: o.max_call_minutes,
            },
            limits,
            created_at: super::calls::rfc3339(user.created_at),
            updated_at: super::calls::rfc3339(user.updated_at),
        }
    }
}

fn bad_field(field: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::bad_field(field, message)
}

fn name_field(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(bad_field(
            "name",
            format!("must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    Ok(name.to_owned())
}

fn timezone_field(raw: &str) -> Result<TimeZoneName, ApiError> {
    TimeZoneName::parse(raw).map_err(|e| bad_field("timezone", e))
}

fn plan_field(raw: &str) -> Result<PlanName, ApiError> {
    PlanName::parse(raw).map_err(|e| {
        ApiError::bad_request("unknown-plan", format!("plan: {raw:?} is not a plan: {e}"))
    })
}

/// An override within the range a plan may set.
fn check_override<T: PartialOrd + std::fmt::Display>(
    field: &str,
    value: Option<Option<T>>,
    range: &RangeInclusive<T>,
) -> Result<Option<Option<T>>, ApiError> {
    match &value {
        Some(Some(v)) if !range.contains(v) => Err(bad_field(
            field,
            format!("must be {} to {}", range.start(), range.end()),
        )),
        _ => Ok(value),
    }
}

fn user_id(raw: &str) -> Result<UserId, ApiError> {
    UserId::parse(raw).map_err(|e| ApiError::bad_request("bad-id", e.to_string()))
}

impl From<UserError> for ApiError {
    fn from(err: UserError) -> Self {
        match err {
            UserError::UnknownPlan { .. } => {
                ApiError::bad_request("unknown-plan", format!("plan: {err}"))
            }
            UserError::Store(err) => err.into(),
        }
    }
}

/// Creates a user
///
/// `201 {"id","api_key","webhook_secret"}` (`Cache-Control: no-store`); 409
/// `duplicate` when the e-mail is taken.
#[utoipa::path(post, path = "/api/users", tag = "users",
    security(("admin_token" = [])),
    request_body = CreateUser,
    responses(
        (status = 201, description = "The user's id and secrets, shown only here", body = CreatedJson),
        (status = 400, description = "`bad-field`, `unknown-plan`", body = ErrorBody),
        (status = 409, description = "`duplicate`: the e-mail is taken", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn create(
    _admin: Admin,
    engine: web::Data<Engine>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let body: CreateUser = fields(body.into_inner())?;
    let email = EmailAddress::parse(&body.email).map_err(|e| bad_field("email", e))?;
    let name = name_field(&body.name)?;
    let workspace = match &body.workspace {
        Some(raw) => workspace_field(raw, "workspace")?,
        None => engine.settings.numbers.default_workspace.clone(),
    };
    let timezone = body.timezone.as_deref().map(timezone_field).transpose()?;
    let plan = plan_field(body.plan.as_deref().unwrap_or(Plans::DEFAULT))?;
    let fields = UserFields {
        email,
        name,
        workspace,
        timezone,
        plan,
    };
    let created = users::create_user(&engine.store, &engine.settings.plans, fields).await?;
    // The key and the secret are shown only here: no cache may keep a copy (as
    // for an agent's token, RFC 6749 §5.1).
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(CreatedJson {
            id: created.user.id,
            api_key: created.api_key.expose_secret().to_owned(),
            webhook_secret: created.webhook_secret.expose_secret().to_owned(),
        }))
}

/// The most users `GET /api/users` answers at once: each carries its quota use.
const MAX_USERS_PAGE: u32 = 100;

/// Lists the users
///
/// `GET /api/users?status=&limit=&offset=` (admin): `{"users","total","has_more"}`,
/// newest first, each user as the admin's `GET /api/users/{id}` shows it.
#[utoipa::path(get, path = "/api/users", tag = "users",
    security(("admin_token" = [])),
    params(
        ("status" = Option<String>, Query, description = "`active`, `paused` or `suspended`"),
        ("limit" = Option<u32>, Query, description = "0–100, default 50"),
        ("offset" = Option<u32>, Query, description = "Default 0"),
    ),
    responses(
        (status = 200, description = "A page of users", body = UserList),
        (status = 400, description = "`bad-parameter`", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn list(
    _admin: Admin,
    engine: web::Data<Engine>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    use super::flags::{bad_param, number_param, query_params};
    let params = query_params(req.query_string(), &["status", "limit", "offset"])?;
    let status = match params.get("status").map(String::as_str) {
        None | Some("") => None,
        Some(raw) => Some(UserStatus::parse(raw).map_err(|e| bad_param("status", e))?),
    };
    let limit = number_param(&params, "limit", 50, MAX_USERS_PAGE)?;
    let offset = number_param(&params, "offset", 0, u32::MAX)?;
    let (users, total) = engine
        .store
        .list_users(status, limit, u64::from(offset))
        .await?;
    // Two queries for the page, whatever its length: the quotas and the open
    // flags of all its users at once.
    let ids: Vec<UserId> = users.iter().map(|u| u.id.clone()).collect();
    let now = engine.clock.now();
    let mut usage = engine
        .store
        .quota_use_of(
            &ids,
            now.as_millisecond(),
            crate::outbound::submit::month_start(now).as_millisecond(),
        )
        .await?;
    let mut flags = engine.store.open_flags_of(&ids).await?;
    let shown: Vec<UserView> = users
        .into_iter()
        .map(|user| {
            let id = user.id.as_str();
            let (usage, flags) = (usage.remove(id), flags.remove(id));
            view_of(
                &engine,
                user,
                usage.unwrap_or_default(),
                Some(flags.unwrap_or_default()),
            )
        })
        .collect();
    let has_more = i64::from(offset) + (shown.len() as i64) < total;
    Ok(HttpResponse::Ok().json(UserList {
        users: shown,
        total,
        has_more,
    }))
}

/// Reads a user
///
/// The user without secrets, with its effective limits, quota use and month.
/// Another user's id is a 404, as an unknown one.
#[utoipa::path(get, path = "/api/users/{id}", tag = "users",
    security(("admin_token" = []), ("user_api_key" = [])),
    params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The user (`open_flags` for the admin only)", body = UserView),
        (status = 400, description = "`bad-id`", body = ErrorBody),
        (status = 404, description = "No such user, or another user's", body = ErrorBody),
        (status = 401, description = "No token or a wrong one", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn get(
    caller: Caller,
    engine: web::Data<Engine>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = user_id(&path)?;
    let not_found = || ApiError::not_found(format!("no user {id}"));
    if !caller.may_see(&id) {
        return Err(not_found());
    }
    let user = engine.store.get_user(&id).await?.ok_or_else(not_found)?;
    let admin = matches!(caller, Caller::Admin);
    Ok(HttpResponse::Ok().json(user_view(&engine, user, admin).await?))
}

/// A user as `GET` shows it, with the quota use now (`quota`: the user's own
/// dashboard shows it too); the admin also gets the open flags (`open_flags`,
/// oldest first).
async fn user_view(engine: &Engine, user: UserRecord, admin: bool) -> Result<UserView, ApiError> {
    let now = engine.clock.now();
    let usage = engine
        .store
        .quota_use(
            &user.id,
            now.as_millisecond(),
            crate::outbound::submit::month_start(now).as_millisecond(),
        )
        .await?;
    let open_flags = if admin {
        Some(engine.store.user_flags(&user.id, true).await?)
    } else {
        None
    };
    Ok(view_of(engine, user, usage, open_flags))
}

/// The user as shown, from its quota use and (for the admin) its open flags.
fn view_of(
    engine: &Engine,
    user: UserRecord,
    usage: QuotaUse,
    open_flags: Option<Vec<Flag>>,
) -> UserView {
    let shown = UserJson::of(user, &engine.settings.plans);
    let limits = shown.limits;
    let quota = QuotaJson {
        calls_last_hour: usage.calls_last_hour,
        calls_per_hour: limits.as_ref().map(|l| l.calls_per_hour),
        calls_last_day: usage.calls_last_day,
        calls_per_day: limits.as_ref().map(|l| l.calls_per_day),
        month_spend_usd: (usage.month_spend_usd * 100.0).round() / 100.0,
        monthly_budget_usd: limits.as_ref().map(|l| l.monthly_budget_usd),
    };
    let month = MonthJson {
        calls: usage.month_calls,
        finished: usage.month_finished,
        completed: usage.month_completed,
        minutes: (usage.month_talk_ms as f64 / 600.0).round() / 100.0,
    };
    let open_flags = open_flags.map(|flags| {
        flags
            .iter()
            .map(|f| super::flags::flag_json(f, None, None))
            .collect()
    });
    UserView {
        user: shown,
        quota,
        month,
        open_flags,
    }
}

/// The body of `suspend` and `reinstate`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    /// 1–2000 characters; goes to the audit trail.
    reason: String,
}

/// The longest reason of a suspension or reinstatement.
const MAX_REASON_CHARS: usize = 2000;

/// Suspends a user
///
/// `POST /api/users/{id}/suspend` (admin): the user can place no call until
/// reinstated; 409 `already-suspended`.
#[utoipa::path(post, path = "/api/users/{id}/suspend", tag = "users",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "The user's id")),
    request_body = StatusBody,
    responses(
        (status = 200, description = "The user, now `suspended`", body = UserView),
        (status = 400, description = "`bad-field` (`reason`), `bad-id`", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "`already-suspended`", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn suspend(
    admin: Admin,
    engine: web::Data<Engine>,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    change_status(admin, engine, path, body, UserStatus::Suspended).await
}

/// Reinstates a user
///
/// `POST /api/users/{id}/reinstate` (admin): a suspended or paused user is
/// active again; quotas are not touched. 409 `not-suspended` for an active user.
#[utoipa::path(post, path = "/api/users/{id}/reinstate", tag = "users",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "The user's id")),
    request_body = StatusBody,
    responses(
        (status = 200, description = "The user, now `active`", body = UserView),
        (status = 400, description = "`bad-field` (`reason`), `bad-id`", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "`not-suspended`", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn reinstate(
    admin: Admin,
    engine: web::Data<Engine>,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    change_status(admin, engine, path, body, UserStatus::Active).await
}

async fn change_status(
    _admin: Admin,
    engine: web::Data<Engine>,
    path: web::Path<String>,
    body: web::Json<Value>,
    to: UserStatus,
) -> Result<HttpResponse, ApiError> {
    let id = user_id(&path)?;
    let body: StatusBody = fields(body.into_inner())?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(bad_field(
            "reason",
            format!("must be 1 to {MAX_REASON_CHARS} characters"),
        ));
    }
    let action = match to {
        UserStatus::Active => "user_reinstated",
        _ => "user_suspended",
    };
    let now_ms = engine.clock.now().as_millisecond();
    match engine
        .store
        .change_user_status(
            &id,
            to.as_str(),
            super::flags::ADMIN_ACTOR,
            action,
            reason,
            now_ms,
        )
        .await?
    {
        StatusChanged::Changed => {}
        StatusChanged::Unchanged => {
            let (code, what) = match to {
                UserStatus::Active => ("not-suspended", "is active"),
                _ => ("already-suspended", "is suspended already"),
            };
            return Err(ApiError::new(
                actix_web::http::StatusCode::CONFLICT,
                code,
                format!("user {id} {what}"),
            ));
        }
        StatusChanged::Missing => return Err(ApiError::not_found(format!("no user {id}"))),
    }
    let user = engine
        .store
        .get_user(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no user {id}")))?;
    Ok(HttpResponse::Ok().json(user_view(&engine, user, true).await?))
}

/// Changes a user
///
/// Changes what the body names (plan, limit overrides, name, time zone,
/// status); answers the user as `GET` does. A status change is audited.
#[utoipa::path(patch, path = "/api/users/{id}", tag = "users",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "The user's id")),
    request_body = PatchUser,
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 400, description = "`bad-field`, `unknown-plan`, `bad-id`", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn update(
    _admin: Admin,
    engine: web::Data<Engine>,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let id = user_id(&path)?;
    let body: PatchUser = fields(body.into_inner())?;
    let not_null = |field: &str| bad_field(field, "cannot be null");
    let changes = UserChanges {
        name: match body.name {
            Some(Some(raw)) => Some(name_field(&raw)?),
            Some(None) => return Err(not_null("name")),
            None => None,
        },
        timezone: body
            .timezone
            .map(|tz| tz.as_deref().map(timezone_field).transpose())
            .transpose()?,
        plan: match body.plan {
            Some(Some(raw)) => Some(plan_field(&raw)?),
            Some(None) => return Err(not_null("plan")),
            None => None,
        },
        status: match body.status {
            Some(Some(raw)) => Some(UserStatus::parse(&raw).map_err(|e| bad_field("status", e))?),
            Some(None) => return Err(not_null("status")),
            None => None,
        },
        calls_per_hour: check_override(
            "calls_per_hour",
            body.calls_per_hour,
            &PlanLimits::CALLS_PER_HOUR,
        )?,
        calls_per_day: check_override(
            "calls_per_day",
            body.calls_per_day,
            &PlanLimits::CALLS_PER_DAY,
        )?,
        monthly_budget_usd: check_override(
            "monthly_budget_usd",
            body.monthly_budget_usd,
            &PlanLimits::MONTHLY_BUDGET_USD,
        )?,
        max_call_minutes: check_override(
            "max_call_minutes",
            body.max_call_minutes,
            &PlanLimits::MAX_CALL_MINUTES,
        )?,
    };
    let before = match changes.status {
        Some(_) => engine.store.get_user(&id).await?.map(|u| u.status),
        None => None,
    };
    let user = users::update_user(&engine.store, &engine.settings.plans, &id, &changes)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no user {id}")))?;
    // A status set here is an admin action too: it goes to the audit trail
    // (after the change; `suspend`/`reinstate` write both in one transaction).
    if let Some(from) = before.filter(|from| *from != user.status) {
        let entry = AuditEntry::new(
            engine.clock.now().as_millisecond(),
            super::flags::ADMIN_ACTOR,
            "user_status_changed",
            Some(&id),
        )
        .detail(serde_json::json!({ "from": from.as_str(), "to": user.status.as_str() }));
        engine.store.audit(&entry).await?;
    }
    Ok(HttpResponse::Ok().json(user_view(&engine, user, true).await?))
}
