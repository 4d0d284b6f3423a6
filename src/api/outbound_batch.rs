//! `POST /api/calls/outbound/batch` (a user's API key): many outbound calls
//! from one objective template, each target gated exactly as a single request
//! (`super::outbound::place`), and `GET /api/calls/outbound/batch/{id}` (the
//! user their own, the admin all): the batch and its calls counted by status.
//!
//! The body is read whole first (JSON, or CSV with the other fields in the
//! query string: `outbound::batch`); anything wrong with it — a field, a bad CSV
//! line, more than `outbound.batch_max_targets` targets, a placeholder a target
//! has no value for — is a `400` naming it, and nothing is stored. Then the
//! batch is stored and each target placed in turn: a target's own refusal (its
//! number, the do-not-call lists, the budget, the quotas) lists it under
//! `refused`, the others are `accepted`.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt as _;
use serde::Serialize;
use serde_json::Value;

use super::caller::Caller;
use super::calls::rfc3339;
use super::outbound::{
    place, rate_limited, requesting_user, BatchSlot, Origin, Placed, QUOTA_USED_UP,
};
use super::outbound::{AttestationBody, AttestationOutdated, RateLimited};
use crate::domain::user::UserStatus;
use crate::engine::Engine;
use crate::error::{ApiError, ErrorBody};
use crate::outbound::batch::{json_from_csv, BatchRequest};
use crate::outbound::clock::to_offset_date_time;
use crate::outbound::request::{check_shared, OutboundRequest};
use crate::store::outbound_batch::BatchRecord;

/// The largest batch body read: 1,000 targets with room for their variables.
pub const MAX_BATCH_BYTES: usize = 4 << 20;

/// Fields of a single request that belong to one target: a refusal of one of
/// them refuses that target, not the batch.
const TARGET_FIELDS: [&str; 3] = ["to", "contact_name", "contact_company"];

async fn read_body(mut payload: web::Payload) -> Result<web::BytesMut, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request("bad-body", e.to_string()))?;
        if body.len() + chunk.len() > MAX_BATCH_BYTES {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                format!("a batch body is at most {MAX_BATCH_BYTES} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn is_csv(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("text/csv"))
}

/// A batch's JSON body (`outbound::batch` parses it, naming each refused field).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // described only: the batch parser reads the JSON itself
pub struct BatchBody {
    /// As a single request's `purpose`.
    purpose: String,
    /// A template: `{contact_name}`, `{contact_company}` and the target's
    /// `variables`; `{{`/`}}` are literal braces. Rendered: 10–500 characters.
    objective: String,
    attestation: AttestationBody,
    callback_url: Option<String>,
    assistant_id: Option<String>,
    /// `HH:MM`, each callee's local time.
    window_start: Option<String>,
    /// `HH:MM`, after `window_start`.
    window_end: Option<String>,
    /// 1 to `outbound.batch_max_concurrency`.
    max_concurrency: Option<u32>,
    /// At most `outbound.batch_max_targets` (1,000).
    targets: Vec<BatchTarget>,
}

/// One target of a batch.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // described only: the batch parser reads the JSON itself
pub struct BatchTarget {
    to: String,
    contact_name: Option<String>,
    contact_company: Option<String>,
    /// The template's other placeholders.
    variables: Option<std::collections::BTreeMap<String, String>>,
}

/// A target the batch placed.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchAccepted {
    index: usize,
    id: String,
    to: String,
    /// `queued` or `scheduled`.
    status: String,
    /// RFC 3339.
    scheduled_for: String,
    /// The end of its window's stretch: not dialed by then, it ends
    /// `not_dialed_window_closed`.
    window_end_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deferred: Option<String>,
}

/// A target the batch refused, and why (as a single request would be).
#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchRefused {
    index: usize,
    /// The target's `to` as sent.
    #[schema(value_type = Object)]
    to: Value,
    /// `bad-field`, `do-not-call`, `budget-exceeded`, `rate-limited`,
    /// `account-suspended`, `objective-refused`…
    code: String,
    reason: String,
    /// With `rate-limited`: RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<String>,
}

/// Why a target is refused, before its index and `to` are known to it.
struct Refusal {
    code: String,
    reason: String,
    retry_after: Option<String>,
}

impl Refusal {
    fn new(code: impl Into<String>, reason: impl Into<String>) -> Refusal {
        Refusal {
            code: code.into(),
            reason: reason.into(),
            retry_after: None,
        }
    }
}

/// `POST /api/calls/outbound/batch`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchAnswer {
    id: String,
    max_concurrency: u32,
    window_start: String,
    window_end: String,
    accepted: Vec<BatchAccepted>,
    refused: Vec<BatchRefused>,
}

/// `GET /api/calls/outbound/batch/{id}`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchView {
    id: String,
    user_id: String,
    objective: String,
    window_start: String,
    window_end: String,
    max_concurrency: u32,
    /// RFC 3339.
    created_at: String,
    total: i64,
    /// The batch's calls by disposition.
    counts: std::collections::BTreeMap<String, i64>,
}

/// Places a batch of outbound calls
///
/// `202 {"id","max_concurrency","window_start","window_end","accepted":[{"index",
/// "id","to","status","scheduled_for","window_end_at","deferred"?}],
/// "refused":[{"index","to","code","reason","retry_after"?}]}`. The body is JSON,
/// or CSV (`Content-Type: text/csv`: a header row naming `to` and the other
/// columns) with the other fields in the query string.
#[utoipa::path(post, path = "/api/calls/outbound/batch", tag = "outbound", operation_id = "submit_batch",
    security(("user_api_key" = [])),
    params(
        ("purpose" = Option<String>, Query, description = "CSV only: as in the JSON body"),
        ("objective" = Option<String>, Query, description = "CSV only"),
        ("callback_url" = Option<String>, Query, description = "CSV only"),
        ("assistant_id" = Option<String>, Query, description = "CSV only"),
        ("window_start" = Option<String>, Query, description = "CSV only"),
        ("window_end" = Option<String>, Query, description = "CSV only"),
        ("max_concurrency" = Option<u32>, Query, description = "CSV only"),
        ("wording_version" = Option<String>, Query, description = "CSV only: the attestation's"),
        ("signature_full_name" = Option<String>, Query, description = "CSV only: the attestation's"),
        ("signature_organization" = Option<String>, Query, description = "CSV only: the attestation's"),
    ),
    request_body(description = "The batch: JSON, or CSV with the other fields in the query",
        content((BatchBody = "application/json"), (String = "text/csv"))),
    responses(
        (status = 202, description = "Each target accepted or refused", body = BatchAnswer),
        (status = 400, description = "`bad-field` naming what is wrong; nothing stored", body = ErrorBody),
        (status = 401, description = "No token or a wrong one", body = ErrorBody),
        (status = 403, description = "The admin token (`forbidden`), or `account-suspended`", body = ErrorBody),
        (status = 409, description = "`attestation-outdated` with the wording", body = AttestationOutdated),
        (status = 413, description = "`too-large`: more than 4 MiB", body = ErrorBody),
        (status = 429, description = "`rate-limited`: the burst limiter", body = RateLimited),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn submit(
    caller: Caller,
    engine: web::Data<Engine>,
    req: HttpRequest,
    query: web::Query<HashMap<String, String>>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let user = requesting_user(&caller)?;
    let now = engine.clock.now();
    let now_ms = now.as_millisecond();
    if let Err(wait) = engine.outbound_burst.check(user.id.as_str()).await {
        let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
        return Ok(rate_limited(
            now_ms,
            now_ms.saturating_add(wait_ms),
            "too many requests at once; slow down",
        ));
    }
    let raw = read_body(payload).await?;
    let body: Value = if is_csv(&req) {
        let text = std::str::from_utf8(&raw)
            .map_err(|_| ApiError::bad_request("bad-field", "csv: not UTF-8 text"))?;
        json_from_csv(text, &query)?
    } else {
        if let Some(key) = query.keys().next() {
            return Err(ApiError::bad_request(
                "bad-field",
                format!("{key}: query parameters are for a CSV batch; put it in the JSON body"),
            ));
        }
        serde_json::from_slice(&raw)
            .map_err(|e| ApiError::bad_request("bad-field", format!("body: not JSON: {e}")))?
    };
    let settings = &engine.settings.outbound;
    let batch = BatchRequest::parse(
        &body,
        &engine.calling_hours,
        settings.batch_max_targets,
        settings.batch_max_concurrency,
    )?;
    check_shared(&batch.shared)?;
    if matches!(user.status, UserStatus::Paused | UserStatus::Suspended) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "account-suspended",
            format!(
                "the account is {}: it places no calls",
                user.status.as_str()
            ),
        ));
    }

    // Every target read before anything is stored.
    let mut requests = Vec::with_capacity(batch.targets.len());
    for index in 0..batch.targets.len() {
        let single = batch.target_body(index)?;
        match OutboundRequest::parse(&single, &settings.allowed_regions, to_offset_date_time(now)) {
            Ok(request) => requests.push(Ok(request)),
            Err(e) if TARGET_FIELDS.contains(&e.field.as_str()) => {
                requests.push(Err(Refusal::new(
                    "bad-field",
                    format!("{}: {}", e.field, e.message),
                )));
            }
            Err(e) => {
                return Err(ApiError::bad_request(
                    "bad-field",
                    format!("targets[{index}].{}: {}", e.field, e.message),
                ))
            }
        }
    }

    // One attestation for the whole batch: its wording's version is checked once.
    if let Some(Ok(first)) = requests.iter().find(|r| r.is_ok()) {
        if let Some(outdated) =
            super::outbound::outdated_attestation(&engine, user, &first.attestation).await?
        {
            return Ok(outdated);
        }
    }

    let record = BatchRecord {
        id: uuid::Uuid::new_v4().simple().to_string(),
        user_id: user.id.clone(),
        objective: batch.objective.clone(),
        window_start: hh_mm(batch.window_start),
        window_end: hh_mm(batch.window_end),
        max_concurrency: batch.max_concurrency,
        created_at: now_ms,
    };
    engine.store.create_batch(&record).await?;
    let origin = Origin::of(&engine, &req);
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    // Read again after a refused objective: its critical flag may have paused
    // the user, and the batch's next targets must see it (403).
    let mut current: Option<crate::store::users::UserRecord> = None;
    for (index, request) in requests.into_iter().enumerate() {
        let user = current.as_ref().unwrap_or(user);
        let to = batch.targets[index].to.clone();
        let refusal = |why: Refusal| BatchRefused {
            index,
            to: to.clone(),
            code: why.code,
            reason: why.reason,
            retry_after: why.retry_after,
        };
        let request = match request {
            Ok(request) => request,
            Err(why) => {
                refused.push(refusal(why));
                continue;
            }
        };
        let slot = BatchSlot {
            batch_id: &record.id,
            hours: &batch.hours,
        };
        match place(&engine, user, request, &origin, now, Some(slot)).await {
            Ok(Placed::Created(call)) => {
                accepted.push(BatchAccepted {
                    index,
                    id: call.id.as_str().to_owned(),
                    to: call.to.as_str().to_owned(),
                    status: call.status.as_str().to_owned(),
                    scheduled_for: rfc3339(call.run_at),
                    window_end_at: call.progress.window_end_at.map(rfc3339),
                    deferred: call.deferred.clone(),
                });
            }
            Ok(Placed::RateLimited { retry_at_ms }) => refused.push(refusal(Refusal {
                retry_after: Some(rfc3339(retry_at_ms)),
                ..Refusal::new("rate-limited", QUOTA_USED_UP)
            })),
            Err(e) if e.status.is_client_error() => {
                if e.code == crate::safety::predial::OBJECTIVE_REFUSED {
                    current = engine.store.get_user(&user.id).await?;
                }
                refused.push(refusal(Refusal::new(e.code, e.message)));
            }
            Err(e) => return Err(e),
        }
    }
    tracing::info!(
        batch_id = %record.id,
        user_id = %user.id,
        accepted = accepted.len(),
        refused = refused.len(),
        "outbound batch submitted"
    );
    Ok(HttpResponse::Accepted().json(BatchAnswer {
        id: record.id,
        max_concurrency: record.max_concurrency,
        window_start: record.window_start,
        window_end: record.window_end,
        accepted,
        refused,
    }))
}

fn hh_mm(time: jiff::civil::Time) -> String {
    format!("{:02}:{:02}", time.hour(), time.minute())
}

/// Reads a batch
///
/// `200 {"id","user_id","objective","window_start","window_end",
/// "max_concurrency","created_at","total","counts":{status: n}}`; another
/// user's batch is a 404.
#[utoipa::path(get, path = "/api/calls/outbound/batch/{id}", tag = "outbound", operation_id = "get_batch",
    security(("admin_token" = []), ("user_api_key" = [])),
    params(("id" = String, Path, description = "The batch's id")),
    responses(
        (status = 200, description = "The batch and its calls counted", body = BatchView),
        (status = 404, description = "No such batch, or another user's", body = ErrorBody),
        (status = 401, description = "No token or a wrong one", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn get(
    caller: Caller,
    engine: web::Data<Engine>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let missing = || ApiError::not_found(format!("no batch {path}"));
    let batch = match engine.store.get_batch(&path).await? {
        Some(batch) if caller.may_see(&batch.user_id) => batch,
        _ => return Err(missing()),
    };
    let counts = engine.store.batch_counts(&batch.id).await?;
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    Ok(HttpResponse::Ok().json(BatchView {
        id: batch.id,
        user_id: batch.user_id.as_str().to_owned(),
        objective: batch.objective,
        window_start: batch.window_start,
        window_end: batch.window_end,
        max_concurrency: batch.max_concurrency,
        created_at: rfc3339(batch.created_at),
        total,
        counts: counts.into_iter().collect(),
    }))
}
