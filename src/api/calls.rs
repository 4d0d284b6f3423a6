//! `GET /api/calls/{id}`, `GET /api/calls/{id}/recording` and
//! `GET /api/calls/{id}/transcript`.
//!
//! `GET /api/calls/{id}` serves the admin any call, and a user (their API key)
//! their own outbound calls: an outbound id answers the outbound view
//! (`outbound::view`), with the call's record when it was answered; another
//! user's call, or an inbound call, is a 404 for a user.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::Value;
use switchboard_actors::CallId;

use super::admin::Admin;
use super::caller::Caller;
use crate::engine::Engine;
use crate::error::{ApiError, ErrorBody};
pub use crate::outbound::view::rfc3339;
use crate::outbound::view::{call_record_json, outbound_view};
use crate::store::outbound::OutboundId;

fn call_id(raw: &str) -> Result<CallId, ApiError> {
    CallId::parse(raw).map_err(|e| ApiError::bad_request("bad-id", e.to_string()))
}

// A call's JSON is built by `outbound::view` (`call_record_json` for the
// record, `outbound_view` for an outbound call: the same JSON its `call.result`
// callback carries), shared with the callbacks; these types describe it.

/// One entry of a call's trail.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CallEvent {
    pub seq: i64,
    /// RFC 3339.
    pub at: String,
    /// `created`, `ring`, `claimed`, `parked`, `transcript`, `ended`… (docs/protocol.md §4).
    pub kind: String,
    pub agent_id: Option<String>,
    #[schema(value_type = Object)]
    pub detail: Value,
}

/// A call's record (inbound, or an outbound call once answered).
#[derive(Serialize, utoipa::ToSchema)]
pub struct CallRecord {
    pub id: String,
    pub call_sid: Option<String>,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// `starting`, `assistant`, `ringing`, `connected`, `parked`, `consulting`,
    /// `voicemail` or `ended`.
    pub status: String,
    /// `answered`, `voicemail`, `abandoned`, `interrupted` or `failed`.
    pub outcome: Option<String>,
    pub end_reason: Option<String>,
    pub agent_id: Option<String>,
    pub from: String,
    pub to: String,
    pub workspace: String,
    /// RFC 3339.
    pub started_at: String,
    pub answered_at: Option<String>,
    pub ended_at: Option<String>,
    pub events: Vec<CallEvent>,
    pub recording_url: Option<String>,
    /// AI calls.
    pub assistant_id: Option<String>,
    /// AI calls: the summary model's summary.
    pub summary: Option<String>,
    /// AI calls: `goal_achieved`, `transferred`, `caller_hung_up`, `no_answer`,
    /// `error`, `unresolved`.
    pub ai_outcome: Option<String>,
    /// Once ended: telephony, realtime, transcription, summary, total (USD).
    #[schema(value_type = Option<Object>)]
    pub cost: Option<Value>,
}

/// An outbound call as its user sees it (`GET /api/calls/{id}` with an
/// outbound id), with the record's fields once answered.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OutboundCallView {
    pub id: String,
    /// `outbound`.
    pub direction: String,
    /// `queued`, `scheduled`, `dialing`, `ringing`, `in_progress`, `completed`,
    /// `busy`, `no_answer`, `failed`, `canceled`, `voicemail`…
    pub disposition: String,
    /// The call record's status when there is one, else the disposition.
    pub status: String,
    pub user_id: String,
    pub workspace: String,
    pub to: String,
    pub from: Option<String>,
    pub contact_name: Option<String>,
    pub contact_company: Option<String>,
    pub purpose: String,
    pub objective: String,
    pub assistant_id: Option<String>,
    pub callback_url: Option<String>,
    pub batch_id: Option<String>,
    pub call_sid: Option<String>,
    pub attempts: i64,
    pub deferred: Option<String>,
    /// Twilio's answering-machine verdict.
    pub answered_by: Option<String>,
    pub reason: Option<String>,
    /// `[{"seq","at","role","text"}]`, empty until answered.
    pub transcript: Vec<Turn>,
    pub summary: Option<String>,
    /// `{"objective_met","key_findings","evidence"}` or `null`.
    #[schema(value_type = Option<Object>)]
    pub task_outcome: Option<Value>,
    pub task_outcome_error: Option<String>,
    /// The consent record of the signed attestation.
    #[schema(value_type = Object)]
    pub consent: Value,
    /// `{"currency","estimated","actual","detail"}`: the estimate beside the actual cost.
    #[schema(value_type = Object)]
    pub cost: Value,
    pub created_at: String,
    pub scheduled_for: Option<String>,
    pub dialed_at: Option<String>,
    pub answered_at: Option<String>,
    pub ended_at: Option<String>,
    pub analyzed_at: Option<String>,
    pub reconciled_at: Option<String>,
    /// The record's fields once answered.
    pub events: Option<Vec<CallEvent>>,
    pub started_at: Option<String>,
    pub outcome: Option<String>,
    pub end_reason: Option<String>,
    pub agent_id: Option<String>,
    pub recording_url: Option<String>,
    pub ai_outcome: Option<String>,
}

/// What `GET /api/calls/{id}` answers: a call's record, or an outbound call's view.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum CallView {
    Outbound(Box<OutboundCallView>),
    Record(Box<CallRecord>),
}

/// Reads a call
///
/// The admin any call; a user (their API key) their own outbound calls, which
/// answer the outbound view. Another user's call, or an inbound call, is a 404
/// for a user.
#[utoipa::path(get, path = "/api/calls/{id}", tag = "calls",
    security(("admin_token" = []), ("user_api_key" = [])),
    params(("id" = String, Path, description = "The call's id (an outbound call's id is its call id)")),
    responses(
        (status = 200, description = "The call", body = CallView),
        (status = 400, description = "`bad-id`", body = ErrorBody),
        (status = 404, description = "No such call, or not the user's", body = ErrorBody),
        (status = 401, description = "No token or a wrong one", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
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

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallQuery {
    /// Twilio's CallSid (`CA…`): required.
    call_sid: Option<String>,
}

/// Finds a call by its Twilio CallSid
///
/// `GET /api/calls?call_sid=CA…`: the engine's call for a Twilio CallSid (a list of
/// zero or one).
#[utoipa::path(get, path = "/api/calls", tag = "calls",
    security(("admin_token" = [])),
    params(CallQuery),
    responses(
        (status = 200, description = "The call, or none", body = Vec<CallRecord>),
        (status = 400, description = "`missing-field`: no `call_sid`", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
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

/// A call's recording
///
/// `GET /api/calls/{id}/recording`: the admin any call's, a user their own
/// outbound call's (another's, or an inbound call, is a 404 as for the call).
/// WAV, mu-law, 8 kHz, mono.
#[utoipa::path(get, path = "/api/calls/{id}/recording", tag = "calls",
    security(("admin_token" = []), ("user_api_key" = [])),
    params(("id" = String, Path, description = "The call's id (an outbound call's id is its call id)")),
    responses(
        (status = 200, description = "The audio", content_type = "audio/wav", body = Vec<u8>),
        (status = 400, description = "`bad-id`", body = ErrorBody),
        (status = 404, description = "No such call, not the user's, or no recording", body = ErrorBody),
        (status = 401, description = "No token or a wrong one", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
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

/// One turn of an AI call's conversation.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Turn {
    pub seq: i64,
    /// RFC 3339.
    pub at: String,
    /// `caller` or `assistant`.
    pub role: String,
    pub text: String,
}

/// `GET /api/calls/{id}/transcript`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Transcript {
    call_id: String,
    turns: Vec<Turn>,
}

/// A call's transcript
///
/// The turns of an AI call, in order: `{"call_id", "turns": [{"seq", "at", "role",
/// "text"}]}` (empty for a call without AI).
#[utoipa::path(get, path = "/api/calls/{id}/transcript", tag = "calls",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "The call's id (an outbound call's id is its call id)")),
    responses(
        (status = 200, description = "The transcript", body = Transcript),
        (status = 400, description = "`bad-id`", body = ErrorBody),
        (status = 404, description = "No such call", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
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
        .map(|t| Turn {
            seq: t.seq,
            at: rfc3339(t.at),
            role: t.role,
            text: t.text,
        })
        .collect();
    Ok(HttpResponse::Ok().json(Transcript {
        call_id: id.as_str().to_owned(),
        turns,
    }))
}
