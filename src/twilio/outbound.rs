//! The webhooks of a call the engine placed (issue 11, item 6), on the URLs the
//! dispatcher gives Twilio when it dials, each carrying the outbound call's id
//! and the attempt: Twilio signs them over the full URL, query included, and
//! they are read under the same [`WebhookGate`] as `/twilio/voice`.
//!
//! - `POST /twilio/outbound/answer?call=&attempt=` (the call's `Url`, fetched
//!   when the callee answers): a stale attempt or a call already over gets
//!   `<Hangup/>`; otherwise a CallActor is launched with the outbound id as its
//!   `CallId`, routed to the outbound assistant (`outbound-<id>`), and Twilio is
//!   told to `<Connect><Stream>` with `call_id`. A retried webhook (the same
//!   CallSid) gets the same call.
//! - `POST /twilio/outbound/amd?call=&attempt=` (`AsyncAmdStatusCallback`): the
//!   verdict (`AnsweredBy`) is noted on the row once, and passed to the live call,
//!   whose assistant acts on it. A replay changes nothing. The status is never
//!   changed here (the status callback does that).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use switchboard_actors::call::{CallActor, CallSetup};
use switchboard_actors::journal::{now_ms, CallOpened};
use switchboard_actors::number::Route;
use switchboard_actors::{AssistantId, CallId};

use super::twiml;
use super::webhook::{reserve_call_sid, signed_form, stream_twiml, twiml, WebhookGate};
use crate::engine::Engine;
use crate::error::{ApiError, ErrorBody};
use crate::store::outbound::{OutboundCall, OutboundId};

/// The prefix of an outbound call's assistant id (as `ai::outbound::PREFIX`).
const ASSISTANT_PREFIX: &str = "outbound-";

/// `AnsweredBy` as Twilio's AMD reports it
/// (<https://www.twilio.com/docs/voice/answering-machine-detection>).
const VERDICTS: &[&str] = &[
    "human",
    "machine_start",
    "machine_end_beep",
    "machine_end_silence",
    "machine_end_other",
    "fax",
    "unknown",
];

#[derive(Deserialize)]
struct Attempt {
    call: String,
    attempt: String,
}

/// `?call=&attempt=`, read once the signature checked out.
fn attempt_of(req: &HttpRequest) -> Result<(OutboundId, String), ApiError> {
    let query: Attempt = serde_urlencoded::from_str(req.query_string()).map_err(|e| {
        ApiError::bad_request("bad-query", format!("call and attempt are required: {e}"))
    })?;
    let id = OutboundId::parse(&query.call)
        .ok_or_else(|| ApiError::bad_request("bad-query", "call is not an outbound call id"))?;
    if query.attempt.is_empty() || query.attempt.len() > 64 {
        return Err(ApiError::bad_request(
            "bad-query",
            "attempt must be 1 to 64 characters",
        ));
    }
    Ok((id, query.attempt))
}

/// The row, if this request is for its current attempt and the call is not over.
fn current<'a>(call: &'a Option<OutboundCall>, attempt: &str) -> Option<&'a OutboundCall> {
    call.as_ref()
        .filter(|c| c.attempt_id.as_deref() == Some(attempt) && !c.status.is_terminal())
}

/// An outbound call is answered (its `Url`)
///
/// For the call's current attempt, the engine starts the call (routed to its
/// outbound assistant) and answers `<Connect><Stream>`; a stale attempt, an
/// unknown or finished call is answered `<Hangup/>`.
#[utoipa::path(post, path = "/twilio/outbound/answer", tag = "twilio",
    security(("twilio_signature" = [])),
    params(
        ("call" = String, Query, description = "The outbound call's id (32 hex)"),
        ("attempt" = String, Query, description = "The dial attempt (1–64 characters)"),
    ),
    request_body(content = crate::twilio::webhook::VoiceForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "TwiML", content_type = "text/xml", body = String),
        (status = 400, description = "A signed request that is not a form, or lacks a required field; `bad-query` (after the signature check)", body = ErrorBody),
        (status = 403, description = "A missing, malformed or wrong `X-Twilio-Signature` (nothing changed)", body = ErrorBody),
        (status = 408, description = "`body-timeout`: the body did not arrive in time", body = ErrorBody),
        (status = 413, description = "`body-too-large`", body = ErrorBody),        (status = 503, description = "`busy`: too many bodies being read at once (`Retry-After: 1`)", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(call_sid, outbound_id))]
pub async fn answer(
    engine: web::Data<Engine>,
    gate: web::Data<WebhookGate>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let form = signed_form(&engine, &gate, &req, payload).await?;
    let call_sid = form.call_sid()?.to_owned();
    let (id, attempt) = attempt_of(&req)?;
    let span = tracing::Span::current();
    span.record("call_sid", call_sid.as_str());
    span.record("outbound_id", id.as_str());

    // Twilio retries a webhook that timed out: the same CallSid, the same call.
    if let Some(call) = engine.registry.lookup_sid(call_sid.clone()).await? {
        return Ok(twiml(stream_twiml(&engine, call.id())));
    }
    let row = engine.store.get_outbound(&id).await?;
    let Some(row) = current(&row, &attempt) else {
        tracing::info!(%attempt, "answer for a stale attempt or a call that is over: hang up");
        return Ok(twiml(twiml::hang_up()));
    };
    let (Ok(call_id), Ok(assistant_id)) = (
        CallId::parse(id.as_str()),
        AssistantId::parse(&format!("{ASSISTANT_PREFIX}{id}")),
    ) else {
        return Err(ApiError::new(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an outbound id is not a call id",
        ));
    };
    let from = match (&row.progress.from, form.get("From")) {
        (Some(ours), _) => ours.clone(),
        (None, Some(from)) if !from.is_empty() => from.to_owned(),
        _ => String::new(),
    };
    let opened = CallOpened {
        id: call_id.clone(),
        call_sid: Some(call_sid.clone()),
        from: from.clone(),
        to: row.to.as_str().to_owned(),
        workspace: Some(row.workspace.clone()),
        direction: "outbound",
        started_at: now_ms(),
    };
    // The store's unique id and CallSid decide, as for `/twilio/voice`: a retry
    // after the call ended, or racing the first delivery, starts no second call.
    if let Some(known) = reserve_call_sid(&engine, &gate, &opened).await? {
        return Ok(twiml(known));
    }
    let setup = CallSetup {
        id: call_id,
        call_sid: Some(call_sid),
        from,
        to: row.to.as_str().to_owned(),
        workspace: row.workspace.clone(),
        route: Route::Ai { assistant_id },
        raw: form.raw(),
        direction: "outbound",
    };
    let call = CallActor::launch(setup, engine.call_deps.clone());
    // A verdict noted before the call was live still reaches its assistant.
    if let Some(verdict) = &row.progress.answered_by {
        call.machine_verdict(verdict.clone());
    }
    tracing::info!(call_id = %call.id(), "outbound call answered");
    Ok(twiml(stream_twiml(&engine, call.id())))
}

/// The form of Twilio's `AsyncAmdStatusCallback`.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "PascalCase")]
pub struct AmdForm {
    /// `CA` + 32 hex digits.
    pub call_sid: String,
    /// `human`, `machine_start`, `machine_end_beep`, `machine_end_silence`,
    /// `machine_end_other`, `fax` or `unknown`.
    pub answered_by: String,
}

/// Answering-machine verdict of an outbound call
///
/// Written once to the call and passed to its assistant (leave a message, hang
/// up). A replay, a second verdict, a stale attempt or a finished call changes
/// nothing.
#[utoipa::path(post, path = "/twilio/outbound/amd", tag = "twilio",
    security(("twilio_signature" = [])),
    params(
        ("call" = String, Query, description = "The outbound call's id (32 hex)"),
        ("attempt" = String, Query, description = "The dial attempt (1–64 characters)"),
    ),
    request_body(content = AmdForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Taken (empty body)"),
        (status = 400, description = "A signed request that is not a form, or lacks a required field; `bad-field`", body = ErrorBody),
        (status = 403, description = "A missing, malformed or wrong `X-Twilio-Signature` (nothing changed)", body = ErrorBody),
        (status = 408, description = "`body-timeout`: the body did not arrive in time", body = ErrorBody),
        (status = 413, description = "`body-too-large`", body = ErrorBody),
        (status = 404, description = "No such outbound call", body = ErrorBody),
        (status = 503, description = "`busy`: too many bodies being read at once (`Retry-After: 1`)", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(call_sid, outbound_id))]
pub async fn amd(
    engine: web::Data<Engine>,
    gate: web::Data<WebhookGate>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let form = signed_form(&engine, &gate, &req, payload).await?;
    let call_sid = form.call_sid()?.to_owned();
    let answered_by = form.require("AnsweredBy")?.to_owned();
    if !VERDICTS.contains(&answered_by.as_str()) {
        return Err(ApiError::bad_request(
            "bad-field",
            format!("AnsweredBy is not one of {}", VERDICTS.join(", ")),
        ));
    }
    let (id, attempt) = attempt_of(&req)?;
    let span = tracing::Span::current();
    span.record("call_sid", call_sid.as_str());
    span.record("outbound_id", id.as_str());

    let row = engine.store.get_outbound(&id).await?;
    if row.is_none() {
        return Err(ApiError::not_found(format!("no outbound call {id}")));
    }
    let now = engine.clock.now().as_millisecond();
    let noted = current(&row, &attempt).is_some()
        && engine
            .store
            .note_answered_by(&id, &attempt, &answered_by, now)
            .await?;
    if !noted {
        tracing::info!(%attempt, %answered_by, "AMD verdict replayed, stale or late: no change");
        return Ok(HttpResponse::Ok().finish());
    }
    tracing::info!(%answered_by, "AMD verdict");
    if let Some(call) = engine.registry.lookup_sid(call_sid).await? {
        call.machine_verdict(answered_by);
    }
    Ok(HttpResponse::Ok().finish())
}
