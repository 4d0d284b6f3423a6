//! `POST /twilio/voice` (a call arrives) and `POST /twilio/status` (call progress).

use actix_web::http::header::ContentType;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use switchboard_actors::journal::{now_ms, CallEvent, CallOpened, Journal, JournalEntry};
use switchboard_actors::machine::Outcome;
use switchboard_actors::CallId;

use super::{twiml, verify_request};
use crate::api::error::ApiError;
use crate::startup::Engine;

/// The form of a Twilio webhook, checked and decoded.
struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn require(&self, name: &'static str) -> Result<&str, ApiError> {
        match self.get(name) {
            Some(value) if !value.is_empty() => Ok(value),
            _ => Err(ApiError::bad_request(
                "missing-field",
                format!("the form has no {name}"),
            )),
        }
    }

    fn call_sid(&self) -> Result<&str, ApiError> {
        let sid = self.require("CallSid")?;
        let valid = sid.len() == 34
            && sid.starts_with("CA")
            && sid[2..].bytes().all(|b| b.is_ascii_hexdigit());
        if valid {
            Ok(sid)
        } else {
            Err(ApiError::bad_request(
                "bad-field",
                "CallSid is not CA followed by 32 hex digits",
            ))
        }
    }
}

/// Signature first (an unsigned request learns nothing, not even what is malformed),
/// then the form's shape.
fn signed_form(engine: &Engine, req: &HttpRequest, body: &[u8]) -> Result<Form, ApiError> {
    if req.headers().get("X-Twilio-Signature").is_none() {
        return Err(ApiError::forbidden("X-Twilio-Signature is missing"));
    }
    let form_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        return Err(ApiError::bad_request(
            "bad-form",
            "expected an application/x-www-form-urlencoded body",
        ));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("bad-form", "the form is not UTF-8"))?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(text)
        .map_err(|e| ApiError::bad_request("bad-form", format!("the form does not parse: {e}")))?;
    verify_request(engine, req, &engine.public_url, &pairs).map_err(|err| {
        tracing::warn!(%err, path = req.path(), "refused a Twilio request");
        ApiError::forbidden(err.to_string())
    })?;
    Ok(Form { pairs })
}

fn twiml(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::xml())
        .body(body)
}

#[tracing::instrument(skip_all, fields(call_sid))]
pub async fn voice(
    engine: web::Data<Engine>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let form = signed_form(&engine, &req, &body)?;
    let call_sid = form.call_sid()?.to_owned();
    let from = form.require("From")?.to_owned();
    let to = form.require("To")?.to_owned();
    tracing::Span::current().record("call_sid", call_sid.as_str());

    // Twilio retries a webhook that timed out: the same CallSid gets the same call.
    if let Some(call) = engine.registry.lookup_sid(call_sid.clone()).await? {
        return Ok(twiml(stream_twiml(&engine, call.id())));
    }

    let Some(number) = engine.directory.lookup(to.clone()).await? else {
        record_unknown_number(&engine, call_sid, from, to);
        return Ok(twiml(twiml::say_and_hang_up(
            "The number you have called is not in service. Goodbye.",
        )));
    };
    let call = number.incoming(CallId::new(), Some(call_sid), from).await?;
    tracing::info!(call_id = %call.id(), "incoming call");
    Ok(twiml(stream_twiml(&engine, call.id())))
}

fn stream_twiml(engine: &Engine, call_id: &CallId) -> String {
    twiml::connect_stream(&engine.stream_url(), &[("call_id", call_id.as_str())])
}

/// A call to a number the engine does not know is still a call: it gets a record.
fn record_unknown_number(engine: &Engine, call_sid: String, from: String, to: String) {
    let id = CallId::new();
    let at = now_ms();
    let journal = &engine.journal;
    journal.append(JournalEntry::Opened(CallOpened {
        id: id.clone(),
        call_sid: Some(call_sid),
        from: from.clone(),
        to: to.clone(),
        workspace: None,
        direction: "inbound",
        started_at: at,
    }));
    let events = [
        ("created", json!({ "from": from, "to": to })),
        ("rejected", json!({ "reason": "unknown_number" })),
        (
            "ended",
            json!({ "outcome": "failed", "reason": "unknown_number" }),
        ),
    ];
    for (seq, (kind, detail)) in events.into_iter().enumerate() {
        journal.append(JournalEntry::Event(CallEvent {
            call_id: id.clone(),
            seq: seq as i64 + 1,
            at,
            kind,
            agent_id: None,
            detail,
        }));
    }
    journal.append(JournalEntry::Closed {
        call_id: id.clone(),
        outcome: Outcome::Failed,
        reason: "unknown_number".into(),
        agent_id: None,
        ended_at: at,
    });
    engine
        .stats
        .outcome_failed
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::warn!(call_id = %id, %to, "call to an unknown number");
}

#[tracing::instrument(skip_all, fields(call_sid))]
pub async fn status(
    engine: web::Data<Engine>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let form = signed_form(&engine, &req, &body)?;
    let call_sid = form.call_sid()?.to_owned();
    let status = form.require("CallStatus")?.to_owned();
    tracing::Span::current().record("call_sid", call_sid.as_str());
    let detail = json!({
        "sequence_number": form.get("SequenceNumber"),
        "call_duration": form.get("CallDuration"),
        "timestamp": form.get("Timestamp"),
        "sip_response_code": form.get("SipResponseCode"),
    });
    if let Some(call) = engine.registry.lookup_sid(call_sid.clone()).await? {
        call.twilio_status(status, detail);
        return Ok(HttpResponse::NoContent().finish());
    }
    // The call is over here. The callback still belongs at the end of its trail,
    // and goes there through the journal like every other event: after the call's
    // own entries, and taken (204) even while the database is away.
    let known = engine.journal.knows_sid(&call_sid)
        || match tokio::time::timeout(
            STATUS_LOOKUP_TIMEOUT,
            engine.store.call_id_by_sid(&call_sid),
        )
        .await
        {
            Ok(Ok(found)) => found.is_some(),
            Ok(Err(error)) if error.is_unavailable() => {
                tracing::warn!(%error, "database unavailable; status callback journaled");
                true
            }
            Ok(Err(error)) => return Err(error.into()),
            Err(_) => {
                tracing::warn!("database slow; status callback journaled");
                true
            }
        };
    if !known {
        return Err(ApiError::not_found(format!(
            "no call has CallSid {call_sid}"
        )));
    }
    engine.journal.append(JournalEntry::LateEvent {
        call_sid,
        at: now_ms(),
        kind: "twilio_status",
        detail: json!({ "status": status, "detail": detail }),
    });
    Ok(HttpResponse::NoContent().finish())
}

/// How long a status callback for an ended call waits for the database to say
/// whether the CallSid is known; past it the callback is journaled regardless.
const STATUS_LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
