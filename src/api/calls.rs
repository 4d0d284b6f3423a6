//! `GET /api/calls/{id}`, `GET /api/calls/{id}/recording` and
//! `GET /api/calls/{id}/transcript`.

use actix_web::{web, HttpResponse};
use serde_json::json;
use switchboard_actors::CallId;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::admin::Admin;
use crate::engine::Engine;
use crate::error::ApiError;

/// Milliseconds since the epoch as RFC 3339 (UTC, millisecond precision).
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn call_id(raw: &str) -> Result<CallId, ApiError> {
    CallId::parse(raw).map_err(|e| ApiError::bad_request("bad-id", e.to_string()))
}

pub async fn get(
    _admin: Admin,
    engine: web::Data<Engine>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = call_id(&path)?;
    let call = call_json(&engine, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no call {id}")))?;
    Ok(HttpResponse::Ok().json(call))
}

#[derive(serde::Deserialize)]
pub struct CallQuery {
    call_sid: Option<String>,
}

/// `GET /api/calls?call_sid=CA…`: the engine's call for a Twilio CallSid (a list of
/// zero or one).
pub async fn find(
    _admin: Admin,
    engine: web::Data<Engine>,
    query: web::Query<CallQuery>,
) -> Result<HttpResponse, ApiError> {
    let sid = query
        .into_inner()
        .call_sid
        .ok_or_else(|| ApiError::bad_request("missing-field", "give call_sid"))?;
    let mut calls = Vec::new();
    if let Some(id) = engine.store.call_id_by_sid(&sid).await? {
        calls.extend(call_json(&engine, &id).await?);
    }
    Ok(HttpResponse::Ok().json(calls))
}

async fn call_json(engine: &Engine, id: &CallId) -> Result<Option<serde_json::Value>, ApiError> {
    let Some(call) = engine.store.get_call(id).await? else {
        return Ok(None);
    };
    let events: Vec<_> = call
        .events
        .iter()
        .map(|e| {
            json!({
                "seq": e.seq,
                "at": rfc3339(e.at),
                "kind": e.kind,
                "agent_id": e.agent_id,
                "detail": e.detail,
            })
        })
        .collect();
    let recording_url = call
        .has_recording
        .then(|| format!("{}/api/calls/{}/recording", engine.public_url, call.id));
    Ok(Some(json!({
        "id": call.id,
        "call_sid": call.call_sid,
        "direction": call.direction,
        "status": call.status,
        "outcome": call.outcome,
        "end_reason": call.end_reason,
        "agent_id": call.agent_id,
        "from": call.from,
        "to": call.to,
        "workspace": call.workspace,
        "started_at": rfc3339(call.started_at),
        "answered_at": call.answered_at.map(rfc3339),
        "ended_at": call.ended_at.map(rfc3339),
        "events": events,
        "recording_url": recording_url,
        "assistant_id": call.assistant_id,
        "summary": call.summary,
        "ai_outcome": call.ai_outcome,
        "cost": call.cost,
    })))
}

pub async fn recording(
    _admin: Admin,
    engine: web::Data<Engine>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = call_id(&path)?;
    let recording = engine
        .store
        .get_recording(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("call {id} has no recording")))?;
    Ok(HttpResponse::Ok()
        .content_type(recording.content_type)
        .body(recording.bytes))
}

/// The turns of an AI call, in order: `{"call_id", "turns": [{"seq", "at", "role",
/// "text"}]}` (empty for a call without AI).
pub async fn transcript(
    _admin: Admin,
    engine: web::Data<Engine>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = call_id(&path)?;
    if !engine.store.call_exists(&id).await? {
        return Err(ApiError::not_found(format!("no call {id}")));
    }
    let turns: Vec<_> = engine
        .store
        .turns(&id)
        .await?
        .into_iter()
        .map(|t| {
            json!({
                "seq": t.seq,
                "at": rfc3339(t.at),
                "role": t.role,
                "text": t.text,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "call_id": id.as_str(), "turns": turns })))
}
