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
use crate::error::ApiError;
use crate::store::flags::{AuditEntry, StatusChanged};
use crate::store::users::{UserChanges, UserFields, UserRecord};
use crate::users::{self, UserError};

/// The longest name.
const MAX_NAME_CHARS: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    email: String,
    name: String,
    /// Omitted: `numbers.default_workspace`.
    #[serde(default)]
    workspace: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
    /// Omitted: `free`.
    #[serde(default)]
    plan: Option<String>,
}

/// Every field optional: absent leaves it, `null` clears an override (back to
/// the plan's) or the time zone; `name`, `plan` and `status` cannot be null.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchUser {
    #[serde(default, deserialize_with = "nullable")]
    plan: Option<Option<String>>,
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
    #[serde(default, deserialize_with = "nullable")]
    status: Option<Option<String>>,
}

#[derive(Serialize)]
struct CreatedJson {
    id: UserId,
    /// Shown here only; stored as its hash.
    api_key: String,
    /// Signs the user's callbacks (`X-Switchboard-Signature`).
    webhook_secret: String,
}

/// A user's overrides as shown: `null` is the plan's.
#[derive(Serialize)]
struct OverridesJson {
    calls_per_hour: Option<u32>,
    calls_per_day: Option<u32>,
    monthly_budget_usd: Option<f64>,
    max_call_minutes: Option<u32>,
}

#[derive(Serialize)]
struct UserJson {
    id: UserId,
    email: String,
    name: String,
    workspace: String,
    timezone: Option<String>,
    plan: String,
    status: UserStatus,
    overrides: OverridesJson,
    /// The plan merged with the overrides; `null` when the plan is no longer
    /// configured.
    limits: Option<PlanLimits>,
    created_at: String,
    updated_at: String,
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
    ApiError::bad_request("bad-field", format!("{field}: {message}"))
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

/// `201 {"id","api_key","webhook_secret"}`; 409 `duplicate` when the e-mail is
/// taken.
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

/// The user without secrets, with its effective limits. Another user's id is a
/// 404, as an unknown one.
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
async fn user_view(engine: &Engine, user: UserRecord, admin: bool) -> Result<Value, ApiError> {
    let now = engine.clock.now();
    let id = user.id.clone();
    let usage = engine
        .store
        .quota_use(
            &id,
            now.as_millisecond(),
            crate::outbound::submit::month_start(now).as_millisecond(),
        )
        .await?;
    let shown = UserJson::of(user, &engine.settings.plans);
    let limits = shown.limits;
    let mut body = serde_json::to_value(shown).map_err(|e| {
        tracing::error!(%e, "user as JSON");
        ApiError::new(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the engine's log",
        )
    })?;
    body["quota"] = serde_json::json!({
        "calls_last_hour": usage.calls_last_hour,
        "calls_per_hour": limits.as_ref().map(|l| l.calls_per_hour),
        "calls_last_day": usage.calls_last_day,
        "calls_per_day": limits.as_ref().map(|l| l.calls_per_day),
        "month_spend_usd": (usage.month_spend_usd * 100.0).round() / 100.0,
        "monthly_budget_usd": limits.as_ref().map(|l| l.monthly_budget_usd),
    });
    body["month"] = serde_json::json!({
        "calls": usage.month_calls,
        "finished": usage.month_finished,
        "completed": usage.month_completed,
        "minutes": (usage.month_talk_ms as f64 / 600.0).round() / 100.0,
    });
    if admin {
        let flags = engine.store.user_flags(&id, true).await?;
        body["open_flags"] = Value::Array(
            flags
                .iter()
                .map(|f| super::flags::flag_json(f, None, None))
                .collect(),
        );
    }
    Ok(body)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    reason: String,
}

/// The longest reason of a suspension or reinstatement.
const MAX_REASON_CHARS: usize = 2000;

/// `POST /api/users/{id}/suspend` (admin): the user can place no call until
/// reinstated; 409 `already-suspended`.
pub async fn suspend(
    admin: Admin,
    engine: web::Data<Engine>,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    change_status(admin, engine, path, body, UserStatus::Suspended).await
}

/// `POST /api/users/{id}/reinstate` (admin): a suspended or paused user is
/// active again; quotas are not touched. 409 `not-suspended` for an active user.
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

/// Changes what the body names; answers the user as `GET` does.
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
