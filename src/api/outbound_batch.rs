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
use serde_json::{json, Value};

use super::caller::Caller;
use super::calls::rfc3339;
use super::outbound::{
    place, rate_limited, requesting_user, BatchSlot, Origin, Placed, QUOTA_USED_UP,
};
use crate::domain::user::UserStatus;
use crate::engine::Engine;
use crate::error::ApiError;
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

/// `202 {"id","max_concurrency","window_start","window_end","accepted":[{"index",
/// "id","to","status","scheduled_for","window_end_at","deferred"?}],
/// "refused":[{"index","to","code","reason","retry_after"?}]}`.
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
    if let Err(wait) = engine.outbound_burst.check(user.id.as_str()) {
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
                requests.push(Err(json!({
                    "code": "bad-field",
                    "reason": format!("{}: {}", e.field, e.message),
                })));
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
        let refusal = |mut why: Value| {
            why["index"] = index.into();
            why["to"] = to.clone();
            why
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
                let mut entry = json!({
                    "index": index,
                    "id": call.id.as_str(),
                    "to": call.to.as_str(),
                    "status": call.status.as_str(),
                    "scheduled_for": rfc3339(call.run_at),
                    "window_end_at": call.progress.window_end_at.map(rfc3339),
                });
                if let Some(deferred) = &call.deferred {
                    entry["deferred"] = json!(deferred);
                }
                accepted.push(entry);
            }
            Ok(Placed::RateLimited { retry_at_ms }) => refused.push(refusal(json!({
                "code": "rate-limited",
                "reason": QUOTA_USED_UP,
                "retry_after": rfc3339(retry_at_ms),
            }))),
            Err(e) if e.status.is_client_error() => {
                if e.code == crate::safety::predial::OBJECTIVE_REFUSED {
                    current = engine.store.get_user(&user.id).await?;
                }
                refused.push(refusal(json!({
                    "code": e.code,
                    "reason": e.message,
                })));
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
    Ok(HttpResponse::Accepted().json(json!({
        "id": record.id,
        "max_concurrency": record.max_concurrency,
        "window_start": record.window_start,
        "window_end": record.window_end,
        "accepted": accepted,
        "refused": refused,
    })))
}

fn hh_mm(time: jiff::civil::Time) -> String {
    format!("{:02}:{:02}", time.hour(), time.minute())
}

/// `200 {"id","user_id","objective","window_start","window_end",
/// "max_concurrency","created_at","total","counts":{status: n}}`; another
/// user's batch is a 404.
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
    let counts: serde_json::Map<String, Value> = counts
        .into_iter()
        .map(|(status, n)| (status, Value::from(n)))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "id": batch.id,
        "user_id": batch.user_id.as_str(),
        "objective": batch.objective,
        "window_start": batch.window_start,
        "window_end": batch.window_end,
        "max_concurrency": batch.max_concurrency,
        "created_at": rfc3339(batch.created_at),
        "total": total,
        "counts": counts,
    })))
}
