//! `POST /twilio/outbound/status?call={outbound_id}&attempt={attempt_id}`: the
//! `StatusCallback` of an outbound call (`initiated`, `ringing`, `answered`,
//! `completed`), set by the dispatcher when it dials.
//!
//! Signed like every Twilio request (over the full URL, query included): a
//! forged or unsigned one is refused (403) before anything is read or changed.
//! Twilio's `CallStatus` becomes a disposition (`outbound::progress`) through
//! `Store::advance_outbound` for that attempt only, so a replay, a late or
//! out-of-order callback, or one of an older attempt changes nothing and is
//! still answered 200 (Twilio stops retrying); a terminal status never
//! regresses. A change enqueues a `call.status` event; a terminal one is also
//! forwarded to the call's live `CallActor` by CallSid, as `/twilio/status`
//! does for inbound calls.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::webhook::{signed_form, WebhookGate};
use crate::engine::Engine;
use crate::error::{ApiError, ErrorBody};
use crate::outbound::progress::{announce, disposition};
use crate::store::outbound::{Advanced, OutboundId, OutboundStatus, Transition};
use crate::store::outbound_dispatch::AttemptOutcome;

#[derive(Deserialize)]
struct Query {
    call: String,
    attempt: String,
}

/// The form of an outbound call's `StatusCallback`.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "PascalCase")]
pub struct OutboundStatusForm {
    /// `CA` + 32 hex digits.
    pub call_sid: String,
    /// `queued`, `initiated`, `ringing`, `in-progress`, `completed`, `busy`,
    /// `no-answer`, `failed`, `canceled`: becomes the call's disposition.
    pub call_status: String,
    pub answered_by: Option<String>,
    pub sip_response_code: Option<String>,
}

/// Status of an outbound call (its `StatusCallback`)
///
/// Moves the call's disposition forward, for its current attempt only; a
/// replayed, late or older attempt's callback changes nothing.
#[utoipa::path(post, path = "/twilio/outbound/status", tag = "twilio", operation_id = "outbound_status",
    security(("twilio_signature" = [])),
    params(
        ("call" = String, Query, description = "The outbound call's id (32 hex)"),
        ("attempt" = String, Query, description = "The dial attempt (1–64 characters)"),
    ),
    request_body(content = OutboundStatusForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Taken (empty body)"),
        (status = 400, description = "A signed request that is not a form, or lacks a required field; `call`/`attempt` missing", body = ErrorBody),
        (status = 403, description = "A missing, malformed or wrong `X-Twilio-Signature` (nothing changed)", body = ErrorBody),
        (status = 408, description = "`body-timeout`: the body did not arrive in time", body = ErrorBody),
        (status = 413, description = "`body-too-large`", body = ErrorBody),
        (status = 404, description = "No such outbound call", body = ErrorBody),
        (status = 503, description = "`busy`: too many bodies being read at once (`Retry-After: 1`)", body = ErrorBody),
    ))]
pub async fn status(
    engine: web::Data<Engine>,
    gate: web::Data<WebhookGate>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let form = signed_form(&engine, &gate, &req, payload).await?;
    let query = web::Query::<Query>::from_query(req.query_string())
        .map_err(|_| ApiError::bad_request("bad-field", "call and attempt are required"))?;
    let id = OutboundId::parse(&query.call)
        .ok_or_else(|| ApiError::bad_request("bad-field", "call is not an outbound call id"))?;
    let attempt = query.attempt.as_str();
    let call_sid = form.call_sid()?.to_owned();
    let call_status = form.require("CallStatus")?.to_owned();
    tracing::Span::current().record("call_sid", call_sid.as_str());

    let store = &engine.store;
    let Some(current) = store.get_outbound(&id).await? else {
        return Err(ApiError::not_found(format!("no outbound call {id}")));
    };
    if current.attempt_id.as_deref() == Some(attempt) {
        store
            .record_attempt(&id, attempt, AttemptOutcome::Created, Some(&call_sid), None)
            .await?;
    }
    let answered_by = form
        .get("AnsweredBy")
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .or(current.progress.answered_by.clone());
    let Some(next) = disposition(&call_status, answered_by.as_deref()) else {
        return Ok(HttpResponse::Ok().finish());
    };
    let reason = (next == OutboundStatus::Failed).then(|| match form.get("SipResponseCode") {
        Some(code) if !code.is_empty() => format!("twilio-failed: SIP {code}"),
        _ => "twilio-failed".to_owned(),
    });
    let change = Transition {
        attempt_id: Some(attempt),
        call_sid: Some(&call_sid),
        answered_by: answered_by.as_deref(),
        reason: reason.as_deref(),
        refund_quota: false,
    };
    let now = engine.clock.now().as_millisecond();
    match store.advance_outbound(&id, next, change, now).await? {
        Advanced::Moved { from, call } => {
            tracing::info!(
                outbound_id = %id,
                from = from.as_str(),
                to = call.status.as_str(),
                "outbound call moved"
            );
            announce(store, &engine.clock, from, &call).await;
            if next.is_terminal() {
                if let Some(live) = engine.registry.lookup_sid(call_sid.clone()).await? {
                    let mut detail = json!({
                        "sequence_number": form.get("SequenceNumber"),
                        "call_duration": form.get("CallDuration"),
                        "timestamp": form.get("Timestamp"),
                        "sip_response_code": form.get("SipResponseCode"),
                    });
                    if let Some(raw) = form.raw() {
                        detail["raw"] = raw;
                    }
                    live.twilio_status(call_status, detail);
                }
            }
        }
        Advanced::Unchanged(call) => tracing::debug!(
            outbound_id = %id,
            status = call.status.as_str(),
            callback = %call_status,
            "outbound status callback changes nothing (replayed, late or another attempt's)"
        ),
        Advanced::Missing => return Err(ApiError::not_found(format!("no outbound call {id}"))),
    }
    Ok(HttpResponse::Ok().finish())
}
