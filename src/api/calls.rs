//! `GET /api/calls/{id}`, `GET /api/calls/{id}/recording` and
//! `GET /api/calls/{id}/transcript`.
//!
//! `GET /api/calls/{id}` serves the admin any call, and a user (their API key)
//! their own outbound calls: an outbound id answers the outbound view
//! (`outbound::view`), with the call's record when it was answered; another
//! user's call, or an inbound call, is a 404 for a user.

use actix_web::{web, HttpResponse};
use serde_json::json;
use switchboard_actors::CallId;

use super::admin::Admin;
use super::caller::Caller;
use crate::engine::Engine;
use crate::error::ApiError;
pub use crate::outbound::view::rfc3339;
use crate::outbound::view::{call_record_json, outbound_view};
use crate::store::outbound::OutboundId;

fn call_id(raw: &str) -> Result<CallId, ApiError> {
    CallId::parse(raw).map_err(|e| ApiError::bad_request("bad-id", e.to_string()))
}

pub async fn get(
    caller: Caller,
    engine: web::Data<Engine>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = call_id(&path)?;
    let missing = || ApiError::not_found(format!("no call {id}"));
    let outbound = match OutboundId::parse(id.as_str()) {
        Some(outbound_id) => engine.store.get_outbound(&outbound_id).await?,
        None => None,
    };
    if let Some(call) = outbound {
        if !caller.may_see(&call.user_id) {
            return Err(missing());
        }
        let view = outbound_view(
            &engine.store,
            &engine.settings.pricing,
            &engine.public_url,
            &call,
        )
        .await?;
        return Ok(HttpResponse::Ok().json(view));
    }
    if caller.user().is_some() {
        // A user's calls are outbound ones: anything else is not theirs.
        return Err(missing());
    }
    let call = call_json(&engine, &id).await?.ok_or_else(missing)?;
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
    Ok(engine
        .store
        .get_call(id)
        .await?
        .map(|call| call_record_json(&engine.public_url, &call)))
}

/// `GET /api/calls/{id}/recording`: the admin any call's, a user their own
/// outbound call's (another's, or an inbound call, is a 404 as for the call).
pub async fn recording(
    caller: Caller,
    engine: web::Data<Engine>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = call_id(&path)?;
    if caller.user().is_some() {
        let owner = match OutboundId::parse(id.as_str()) {
            Some(outbound_id) => engine.store.get_outbound(&outbound_id).await?,
            None => None,
        };
        if !owner.is_some_and(|call| caller.may_see(&call.user_id)) {
            return Err(ApiError::not_found(format!("no call {id}")));
        }
    }
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
