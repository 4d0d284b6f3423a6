//! `GET /api/audit` (admin): the audit trail — every admin action and every
//! automatic pause, oldest first. Read only: the trail is append-only, and no
//! route (nor any store function) updates or deletes it.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::Value;

use super::admin::Admin;
use super::calls::rfc3339;
use super::flags::{bad_param, number_param, query_params, user_param};
use crate::engine::Engine;
use crate::error::{ApiError, ErrorBody};

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// One entry of the audit trail.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditJson {
    id: String,
    /// RFC 3339.
    at: String,
    /// `admin` or `system`.
    actor: String,
    /// `flag_resolved`, `user_suspended`, `user_reinstated`, `number_blocked`,
    /// `user_status_changed`, `user_paused`.
    action: String,
    user_id: Option<String>,
    subject: Option<String>,
    #[schema(value_type = Object)]
    detail: Value,
}

/// `GET /api/audit`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditTrail {
    entries: Vec<AuditJson>,
}

/// Reads the audit trail
///
/// `200 {"entries": [...]}` oldest first; `since` is an RFC 3339 instant. The
/// trail is append-only.
#[utoipa::path(get, path = "/api/audit", tag = "safety", operation_id = "list_audit",
    security(("admin_token" = [])),
    params(
        ("user" = Option<String>, Query, description = "A user id"),
        ("since" = Option<String>, Query, description = "An RFC 3339 instant: entries at or after it"),
        ("limit" = Option<u32>, Query, description = "0–1000, default 100"),
    ),
    responses(
        (status = 200, description = "The entries", body = AuditTrail),
        (status = 400, description = "`bad-parameter`", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn list(
    _admin: Admin,
    engine: web::Data<Engine>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let params = query_params(req.query_string(), &["user", "since", "limit"])?;
    let since_ms = match params.get("since").filter(|raw| !raw.is_empty()) {
        None => i64::MIN,
        Some(raw) => raw
            .parse::<jiff::Timestamp>()
            .map_err(|e| bad_param("since", format!("not an RFC 3339 instant: {e}")))?
            .as_millisecond(),
    };
    let user = user_param(&params)?;
    let limit = number_param(&params, "limit", DEFAULT_LIMIT, MAX_LIMIT)?;
    let entries = engine
        .store
        .audit_trail(user.as_ref(), since_ms, limit)
        .await?;
    let entries = entries
        .into_iter()
        .map(|e| AuditJson {
            id: e.id,
            at: rfc3339(e.at),
            actor: e.actor,
            action: e.action,
            user_id: e.user_id,
            subject: e.subject,
            detail: e.detail,
        })
        .collect();
    Ok(HttpResponse::Ok().json(AuditTrail { entries }))
}
