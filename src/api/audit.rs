//! `GET /api/audit` (admin): the audit trail — every admin action and every
//! automatic pause, oldest first. Read only: the trail is append-only, and no
//! route (nor any store function) updates or deletes it.

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::admin::Admin;
use super::calls::rfc3339;
use super::flags::{bad_param, number_param, query_params, user_param};
use crate::engine::Engine;
use crate::error::ApiError;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// `200 {"entries": [...]}`; `since` is an RFC 3339 instant.
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
    let entries: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "id": e.id,
                "at": rfc3339(e.at),
                "actor": e.actor,
                "action": e.action,
                "user_id": e.user_id,
                "subject": e.subject,
                "detail": e.detail,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "entries": entries })))
}
