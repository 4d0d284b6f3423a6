//! `GET /api/flags` and `POST /api/flags/{id}/resolve` (admin): the review of
//! the safety flags raised on users and their calls (issue 12).

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_actors::UserId;

use super::admin::Admin;
use super::calls::rfc3339;
use super::input::fields;
use crate::domain::safety::Severity;
use crate::engine::Engine;
use crate::error::{ApiError, ErrorBody};
use crate::store::flags::{Flag, FlagAction, FlagFilter, FlagResolved};

/// Who resolves: there is one admin token, so every admin action is `admin`'s.
pub(super) const ADMIN_ACTOR: &str = "admin";
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;
const MAX_NOTES_CHARS: usize = 2000;

pub(super) fn bad_param(name: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("bad-parameter", format!("{name}: {message}"))
}

/// A query's parameters, each named once; one not in `known` is refused.
pub(super) fn query_params(
    query: &str,
    known: &[&str],
) -> Result<HashMap<String, String>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|e| ApiError::bad_request("bad-parameter", format!("the query: {e}")))?;
    let mut params = HashMap::new();
    for (name, value) in pairs {
        if !known.contains(&name.as_str()) {
            return Err(bad_param(
                &name,
                format!("unknown parameter (known: {})", known.join(", ")),
            ));
        }
        if params.insert(name.clone(), value).is_some() {
            return Err(bad_param(&name, "given twice"));
        }
    }
    Ok(params)
}

pub(super) fn number_param(
    params: &HashMap<String, String>,
    name: &str,
    default: u32,
    max: u32,
) -> Result<u32, ApiError> {
    match params.get(name) {
        None => Ok(default),
        Some(raw) => match raw.parse::<u32>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(bad_param(
                name,
                format!("must be a whole number 0 to {max}"),
            )),
        },
    }
}

pub(super) fn user_param(params: &HashMap<String, String>) -> Result<Option<UserId>, ApiError> {
    match params.get("user").map(String::as_str) {
        None | Some("") => Ok(None),
        Some(raw) => UserId::parse(raw)
            .map(Some)
            .map_err(|e| bad_param("user", e)),
    }
}

/// A flag as the admin sees it; `call` when it is about an outbound call.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Flag)]
pub struct FlagJson {
    id: String,
    user_id: String,
    /// `objective_screen`, `velocity_same_number`, `transcript_screen`…
    #[serde(rename = "type")]
    kind: String,
    /// `low`, `medium`, `high` or `critical`.
    severity: &'static str,
    reason: String,
    /// What raised it (the rule's own shape).
    #[schema(value_type = Object)]
    evidence: Value,
    auto_detected: bool,
    /// RFC 3339.
    created_at: String,
    resolved: bool,
    resolution: Option<ResolutionJson>,
    call: Option<FlagCall>,
}

/// How a flag was resolved.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ResolutionJson {
    /// RFC 3339.
    at: String,
    /// `admin`.
    by: String,
    /// `dismiss`, `warn`, `suspend` or `block_number`.
    action: String,
    notes: Option<String>,
}

/// The outbound call a flag is about.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FlagCall {
    id: String,
    /// The callee (`null` on a single flag: read the call).
    to: Option<String>,
    /// The call's summary, after its after-call work.
    summary: Option<String>,
    /// `/api/calls/{id}`.
    link: String,
}

pub(super) fn flag_json(flag: &Flag, summary: Option<&str>, callee: Option<&str>) -> FlagJson {
    FlagJson {
        id: flag.id.clone(),
        user_id: flag.user_id.to_string(),
        kind: flag.kind.clone(),
        severity: flag.severity.as_str(),
        reason: flag.reason.clone(),
        evidence: flag.evidence.clone(),
        auto_detected: flag.auto_detected,
        created_at: rfc3339(flag.created_at),
        resolved: flag.resolution.is_some(),
        resolution: flag.resolution.as_ref().map(|r| ResolutionJson {
            at: rfc3339(r.at),
            by: r.by.clone(),
            action: r.action.clone(),
            notes: r.notes.clone(),
        }),
        call: flag.outbound_id.as_ref().map(|id| FlagCall {
            id: id.clone(),
            to: callee.map(str::to_owned),
            summary: summary.map(str::to_owned),
            link: format!("/api/calls/{id}"),
        }),
    }
}

/// `GET /api/flags`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FlagList {
    flags: Vec<FlagJson>,
}

/// `409 already-resolved`: the error, with the flag as first resolved.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AlreadyResolved {
    #[serde(flatten)]
    error: ErrorBody,
    flag: FlagJson,
}

/// Lists the safety flags
///
/// `200 {"flags": [...]}`: most severe first, then oldest first. A bad, unknown or
/// repeated parameter is `400 bad-parameter`.
#[utoipa::path(get, path = "/api/flags", tag = "safety", operation_id = "list_flags",
    security(("admin_token" = [])),
    params(
        ("resolved" = Option<bool>, Query, description = "`true` or `false` (absent: both)"),
        ("severity" = Option<String>, Query, description = "Comma-separated: `high,critical`"),
        ("user" = Option<String>, Query, description = "A user id"),
        ("limit" = Option<u32>, Query, description = "0–500, default 50"),
        ("offset" = Option<u32>, Query, description = "Default 0"),
    ),
    responses(
        (status = 200, description = "The flags", body = FlagList),
        (status = 400, description = "`bad-parameter`", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn list(
    _admin: Admin,
    engine: web::Data<Engine>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let params = query_params(
        req.query_string(),
        &["resolved", "severity", "user", "limit", "offset"],
    )?;
    let resolved = match params.get("resolved").map(String::as_str) {
        None | Some("") => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(bad_param("resolved", "must be true or false")),
    };
    let mut severities = Vec::new();
    if let Some(raw) = params.get("severity").filter(|raw| !raw.is_empty()) {
        for part in raw.split(',') {
            let severity: Severity = part.trim().parse().map_err(|_| {
                bad_param(
                    "severity",
                    format!("{part:?} is not one of low, medium, high, critical"),
                )
            })?;
            if !severities.contains(&severity) {
                severities.push(severity);
            }
        }
    }
    let filter = FlagFilter {
        resolved,
        severities,
        user: user_param(&params)?,
        limit: number_param(&params, "limit", DEFAULT_LIMIT, MAX_LIMIT)?,
        offset: number_param(&params, "offset", 0, u32::MAX)?,
    };
    let flags = engine.store.list_flags(&filter).await?;
    let flags = flags
        .iter()
        .map(|f| flag_json(&f.flag, f.summary.as_deref(), f.callee.as_deref()))
        .collect();
    Ok(HttpResponse::Ok().json(FlagList { flags }))
}

/// Reads a flag
///
/// `GET /api/flags/{id}`: one flag (its call's id and link when it is about one).
#[utoipa::path(get, path = "/api/flags/{id}", tag = "safety", operation_id = "get_flag",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "The flag's id")),
    responses(
        (status = 200, description = "The flag", body = FlagJson),
        (status = 404, description = "No such flag", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn get(
    _admin: Admin,
    engine: web::Data<Engine>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let flag = engine
        .store
        .get_flag(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no flag {id}")))?;
    Ok(HttpResponse::Ok().json(flag_json(&flag, None, None)))
}

/// The body of `POST /api/flags/{id}/resolve`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    /// `dismiss`, `warn`, `suspend` or `block_number`.
    action: String,
    /// At most 2000 characters.
    #[serde(default)]
    notes: Option<String>,
}

/// Resolves a flag
///
/// `200` the resolved flag; 409 `already-resolved` (with the flag) the second
/// time; 409 `flag-without-call` for `block_number` on a flag about no call.
#[utoipa::path(post, path = "/api/flags/{id}/resolve", tag = "safety", operation_id = "resolve_flag",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "The flag's id")),
    request_body = ResolveBody,
    responses(
        (status = 200, description = "The flag, resolved", body = FlagJson),
        (status = 400, description = "`bad-field` (`action`, `notes`)", body = ErrorBody),
        (status = 404, description = "No such flag", body = ErrorBody),
        (status = 409, description = "`already-resolved` (with the flag), or `flag-without-call` (an ErrorBody)", body = AlreadyResolved),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn resolve(
    _admin: Admin,
    engine: web::Data<Engine>,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let body: ResolveBody = fields(body.into_inner())?;
    let action = FlagAction::parse(&body.action).ok_or_else(|| {
        ApiError::bad_field(
            "action",
            format!(
                "{:?} is not one of dismiss, warn, suspend, block_number",
                body.action
            ),
        )
    })?;
    let notes = body
        .notes
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    if notes.is_some_and(|n| n.chars().count() > MAX_NOTES_CHARS) {
        return Err(ApiError::bad_field(
            "notes",
            format!("at most {MAX_NOTES_CHARS} characters"),
        ));
    }
    let now_ms = engine.clock.now().as_millisecond();
    let id = path.into_inner();
    match engine
        .store
        .resolve_flag(&id, ADMIN_ACTOR, action, notes, now_ms)
        .await?
    {
        FlagResolved::Resolved(flag) => Ok(HttpResponse::Ok().json(flag_json(&flag, None, None))),
        FlagResolved::AlreadyResolved(flag) => Ok(HttpResponse::build(StatusCode::CONFLICT).json(
            AlreadyResolved {
                error: ErrorBody {
                    code: "already-resolved".to_owned(),
                    message: format!("flag {id} is resolved already"),
                    field: None,
                },
                flag: flag_json(&flag, None, None),
            },
        )),
        FlagResolved::NoCallee => Err(ApiError::new(
            StatusCode::CONFLICT,
            "flag-without-call",
            format!("flag {id} is about no call: there is no number to block"),
        )),
        FlagResolved::Missing => Err(ApiError::not_found(format!("no flag {id}"))),
    }
}
