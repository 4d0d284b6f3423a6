//! `POST /twilio/missed-call-text/status?call={call_id}`: the `StatusCallback`
//! of a missed-call text
//! (https://www.twilio.com/docs/messaging/guides/track-outbound-message-status:
//! `MessageSid`, `MessageStatus`, and on a failure `ErrorCode`).
//!
//! Signed like every Twilio request (over the full URL, query included): a
//! forged or unsigned one is refused (403) before anything is read or changed. A
//! call that claimed no text is 404; a status Twilio does not send is 400. The
//! status is kept on the text's row and goes at the end of the call's trail as a
//! `missed_call_text_status` event (through the journal, after the call's own
//! entries); a repeated callback is recorded again (Twilio's retries are rare,
//! and the trail says what Twilio said).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use switchboard_actors::journal::{now_ms, Journal as _, JournalEntry};
use switchboard_actors::CallId;

use crate::engine::Engine;
use crate::error::{ApiError, ErrorBody};
use crate::twilio::webhook::{signed_form, WebhookGate};

/// The trail event of each status callback.
pub const STATUS_EVENT: &str = "missed_call_text_status";

/// The statuses an outbound message's callback carries
/// (https://www.twilio.com/docs/messaging/api/message-resource#message-status-values).
const STATUSES: &[&str] = &[
    "accepted",
    "scheduled",
    "canceled",
    "queued",
    "sending",
    "sent",
    "failed",
    "delivered",
    "undelivered",
    "read",
];

#[derive(Deserialize)]
struct Query {
    call: String,
}

/// The form of a message's `StatusCallback`.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "PascalCase")]
pub struct MessageStatusForm {
    /// One of Twilio's message statuses (`queued`, `sent`, `delivered`…).
    pub message_status: String,
    pub message_sid: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

/// Status of a missed-call text (its `StatusCallback`)
///
/// Kept on the text's row and appended to the call's trail
/// (`missed_call_text_status`).
#[utoipa::path(post, path = "/twilio/missed-call-text/status", tag = "twilio", operation_id = "missed_call_text_status",
    security(("twilio_signature" = [])),
    params(("call" = String, Query, description = "The call whose text this is")),
    request_body(content = MessageStatusForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 204, description = "Taken"),
        (status = 400, description = "A signed request that is not a form, or lacks a required field; `bad-field` (`call` missing, an unknown `MessageStatus`)", body = ErrorBody),
        (status = 403, description = "A missing, malformed or wrong `X-Twilio-Signature` (nothing changed)", body = ErrorBody),
        (status = 408, description = "`body-timeout`: the body did not arrive in time", body = ErrorBody),
        (status = 413, description = "`body-too-large`", body = ErrorBody),
        (status = 404, description = "The call sent no text", body = ErrorBody),
        (status = 503, description = "`busy`: too many bodies being read at once (`Retry-After: 1`)", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(call_id))]
pub async fn status(
    engine: web::Data<Engine>,
    gate: web::Data<WebhookGate>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let form = signed_form(&engine, &gate, &req, payload).await?;
    let query = web::Query::<Query>::from_query(req.query_string())
        .map_err(|_| ApiError::bad_request("bad-field", "call is required"))?;
    let call_id = CallId::parse(&query.call)
        .map_err(|_| ApiError::bad_request("bad-field", "call is not a call id"))?;
    tracing::Span::current().record("call_id", call_id.as_str());
    let status = form.require("MessageStatus")?;
    let Some(status) = STATUSES.iter().copied().find(|s| *s == status) else {
        return Err(ApiError::bad_request(
            "bad-field",
            format!("MessageStatus {status:?} is not a message status"),
        ));
    };
    let sid = form.get("MessageSid").filter(|s| !s.is_empty());
    let error_code = form.get("ErrorCode").filter(|s| !s.is_empty());
    let error_message = form.get("ErrorMessage").filter(|s| !s.is_empty());
    if engine.store.missed_call_text_of(&call_id).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "call {call_id} sent no missed-call text"
        )));
    }
    let error = error_code.map(|code| match error_message {
        Some(message) => format!("Twilio error {code}: {message}"),
        None => format!("Twilio error {code}"),
    });
    engine
        .store
        .record_missed_call_text(&call_id, status, sid, error.as_deref())
        .await?;
    engine.journal.append(JournalEntry::AfterEvent {
        call_id,
        at: now_ms(),
        kind: STATUS_EVENT,
        detail: json!({
            "status": status,
            "sid": sid,
            "error_code": error_code,
            "error_message": error_message,
        }),
    });
    Ok(HttpResponse::NoContent().finish())
}
