//! `POST /twilio/voice` (a call arrives) and `POST /twilio/status` (call progress).
//!
//! Both are read defensively, because until the signature checks out the sender is
//! anyone: a request without `X-Twilio-Signature` is refused (403) as soon as its
//! headers arrive, before a byte of its body is read; the others are read under a
//! [`WebhookGate`] — at most `webhook_max_concurrent_reads` at once (503 beyond),
//! at most `webhook_max_body_bytes` (413), within `webhook_body_timeout_secs` (408)
//! — and then the signature is checked before anything about the form is (403
//! before 400). Values are cleaned of control characters once verified.
//! (<https://www.twilio.com/docs/usage/security#validating-requests>)

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self, ContentType};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::BytesMut;
use futures_util::StreamExt as _;
use serde_json::json;
use switchboard_actors::journal::{now_ms, CallEvent, CallOpened, Journal, JournalEntry};
use switchboard_actors::machine::Outcome;
use switchboard_actors::number::NumberHandle;
use switchboard_actors::CallId;
use tokio::sync::Semaphore;

use super::signature::{SignatureError, TwilioSignature};
use super::{twiml, verify_request};
use crate::config::TwilioSettings;
use crate::engine::Engine;
use crate::error::{ApiError, ErrorBody};
use crate::store::calls::SidClaim;

/// The bounds under which webhook bodies are read; one per engine, shared by every
/// worker.
#[derive(Clone)]
pub struct WebhookGate {
    /// Permits for bodies being read before their signature is known.
    reads: Arc<Semaphore>,
    max_body: usize,
    body_timeout: Duration,
    pub(super) max_address_chars: usize,
    /// How long the voice webhook waits for the store to reserve a CallSid before
    /// going on without it (a database outage must not stop calls).
    pub(super) store_timeout: Duration,
}

impl WebhookGate {
    pub fn new(settings: &TwilioSettings) -> Self {
        Self {
            reads: Arc::new(Semaphore::new(settings.webhook_max_concurrent_reads)),
            max_body: settings.webhook_max_body_bytes,
            body_timeout: settings.webhook_body_timeout,
            max_address_chars: settings.webhook_max_address_chars,
            store_timeout: settings.webhook_store_timeout,
        }
    }
}

/// The form of a Twilio webhook, verified and cleaned: values carry no control
/// characters (each became U+FFFD); what they were is kept, escaped, in `raw`.
pub(crate) struct Form {
    pairs: Vec<(String, String)>,
    /// Field → original value (Rust-escaped), for every field that was cleaned.
    raw: serde_json::Map<String, serde_json::Value>,
}

/// NUL and the other C0/C1 controls (tab, line feed and carriage return included:
/// no Twilio field carries them) cannot be stored in PostgreSQL TEXT (NUL) or shown
/// safely (the rest).
fn is_unwanted(c: char) -> bool {
    c.is_control()
}

impl Form {
    fn verified(pairs: Vec<(String, String)>) -> Form {
        let mut raw = serde_json::Map::new();
        let pairs = pairs
            .into_iter()
            .map(|(name, value)| {
                if value.chars().any(is_unwanted) {
                    raw.insert(name.clone(), value.escape_debug().to_string().into());
                    let cleaned = value
                        .chars()
                        .map(|c| if is_unwanted(c) { '\u{FFFD}' } else { c })
                        .collect();
                    (name, cleaned)
                } else {
                    (name, value)
                }
            })
            .collect();
        Form { pairs, raw }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn require(&self, name: &'static str) -> Result<&str, ApiError> {
        match self.get(name) {
            Some(value) if !value.is_empty() => Ok(value),
            _ => Err(ApiError::bad_request(
                "missing-field",
                format!("the form has no {name}"),
            )),
        }
    }

    /// `From` or `To`: E.164, a SIP URI or `client:` + an identity — short
    /// (<https://www.twilio.com/docs/voice/twiml#request-parameters>).
    pub(super) fn address(&self, name: &'static str, max_chars: usize) -> Result<&str, ApiError> {
        let value = self.require(name)?;
        if value.chars().count() > max_chars {
            return Err(ApiError::bad_request(
                "bad-field",
                format!("{name} is longer than {max_chars} characters"),
            ));
        }
        Ok(value)
    }

    pub(crate) fn call_sid(&self) -> Result<&str, ApiError> {
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

    /// What was cleaned, for the trail (`None` when nothing was).
    pub(crate) fn raw(&self) -> Option<serde_json::Value> {
        (!self.raw.is_empty()).then(|| serde_json::Value::Object(self.raw.clone()))
    }
}

fn forbidden(req: &HttpRequest, err: &SignatureError) -> ApiError {
    tracing::warn!(%err, path = req.path(), "refused a Twilio request");
    ApiError::forbidden(err.to_string())
}

/// Signature first (an unsigned request learns nothing, not even what is malformed),
/// then the form's shape.
pub(crate) async fn signed_form(
    engine: &Engine,
    gate: &WebhookGate,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Form, ApiError> {
    // Refused on the headers alone: nothing of the body is read.
    if engine.settings.twilio.auth_token.is_none() {
        return Err(forbidden(req, &SignatureError::NoToken));
    }
    let header = req
        .headers()
        .get("X-Twilio-Signature")
        .ok_or(SignatureError::Missing)
        .and_then(|v| v.to_str().map_err(|_| SignatureError::Malformed))
        .and_then(TwilioSignature::parse);
    if let Err(err) = header {
        return Err(forbidden(req, &err));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > gate.max_body as u64) {
        return Err(too_large(gate.max_body));
    }
    let body = {
        let _permit = gate.reads.clone().try_acquire_owned().map_err(|_| {
            ApiError::unavailable(
                "busy",
                "too many webhook bodies are being read; retry shortly",
                1,
            )
        })?;
        tokio::time::timeout(gate.body_timeout, read_body(payload, gate.max_body))
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body-timeout",
                    format!(
                        "the body did not arrive within {} s",
                        gate.body_timeout.as_secs_f64()
                    ),
                )
            })??
    };

    let form_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    let parsed: Result<Vec<(String, String)>, ApiError> = if form_type {
        std::str::from_utf8(&body)
            .map_err(|_| ApiError::bad_request("bad-form", "the form is not UTF-8"))
            .and_then(|text| {
                serde_urlencoded::from_str(text).map_err(|e| {
                    ApiError::bad_request("bad-form", format!("the form does not parse: {e}"))
                })
            })
    } else {
        Err(ApiError::bad_request(
            "bad-form",
            "expected an application/x-www-form-urlencoded body",
        ))
    };
    // A body that is no form has no parameters to sign: Twilio's signature is then
    // over the URL alone, and only a request signed so learns that its form is bad.
    let params = parsed.as_deref().unwrap_or(&[]);
    verify_request(engine, req, &engine.public_url, params).map_err(|err| forbidden(req, &err))?;
    Ok(Form::verified(parsed?))
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body-too-large",
        format!("a webhook body is at most {limit} bytes"),
    )
}

/// Reads the body, refusing it past `limit` bytes without buffering more.
async fn read_body(mut payload: web::Payload, limit: usize) -> Result<BytesMut, ApiError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request("bad-form", format!("the body could not be read: {e}"))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

pub(super) fn twiml(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::xml())
        .body(body)
}

/// The form of Twilio's voice webhook, as the engine reads it (Twilio's field
/// names; other fields are kept in the call's trail). Read from the signed form,
/// never deserialised: the signature covers every parameter as sent.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "PascalCase")]
pub struct VoiceForm {
    /// `CA` + 32 hex digits.
    pub call_sid: String,
    /// The caller (at most `twilio.webhook_max_address_chars`).
    pub from: String,
    /// The number called.
    pub to: String,
}

/// The form of Twilio's status callback (`StatusCallback`).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "PascalCase")]
pub struct StatusForm {
    /// `CA` + 32 hex digits.
    pub call_sid: String,
    /// `queued`, `ringing`, `in-progress`, `completed`, `busy`, `failed`,
    /// `no-answer`, `canceled`.
    pub call_status: String,
    pub sequence_number: Option<String>,
    pub call_duration: Option<String>,
    pub timestamp: Option<String>,
    pub sip_response_code: Option<String>,
}

/// How long the voice webhook waits for the store's copy of a number (cluster
/// mode) before it goes by this node's own book.
const NUMBER_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// The number's actor, current. On a single node the book is the truth: every
/// change goes through this node's API. In a cluster a number may have been
/// created or re-routed through another node, so the store's row (one indexed
/// read) is brought into this node's book first; if the database does not answer
/// in time, the book as it is decides.
async fn live_number(engine: &Engine, e164: &str) -> Result<Option<NumberHandle>, ApiError> {
    if engine.cluster.is_some() {
        match tokio::time::timeout(NUMBER_READ_TIMEOUT, engine.store.get_number(e164)).await {
            Ok(Ok(Some(number))) => {
                engine
                    .numbers
                    .upsert(number.e164, number.workspace, number.route)
                    .await?;
            }
            Ok(Ok(None)) => {}
            Ok(Err(err)) => {
                tracing::warn!(%err, "the number could not be read; using this node's book")
            }
            Err(_) => tracing::warn!("the number's read timed out; using this node's book"),
        }
    }
    Ok(engine.numbers.lookup(e164.to_owned()).await?)
}

/// A call arrives (Twilio's voice webhook)
///
/// Answered with TwiML: `<Connect><Stream>` to `/twilio/stream` for a known
/// number, a spoken refusal for an unknown one, `<Hangup/>` for a CallSid whose
/// call is over. The same CallSid posted again gets the same call.
#[utoipa::path(post, path = "/twilio/voice", tag = "twilio",
    security(("twilio_signature" = [])),
    request_body(content = VoiceForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "TwiML", content_type = "text/xml", body = String),
        (status = 400, description = "A signed request that is not a form, or lacks a required field; `bad-field`", body = ErrorBody),
        (status = 403, description = "A missing, malformed or wrong `X-Twilio-Signature` (nothing changed)", body = ErrorBody),
        (status = 408, description = "`body-timeout`: the body did not arrive in time", body = ErrorBody),
        (status = 413, description = "`body-too-large`", body = ErrorBody),        (status = 503, description = "`busy`: too many bodies being read at once (`Retry-After: 1`)", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(call_sid))]
pub async fn voice(
    engine: web::Data<Engine>,
    gate: web::Data<WebhookGate>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let form = signed_form(&engine, &gate, &req, payload).await?;
    let call_sid = form.call_sid()?.to_owned();
    let from = form.address("From", gate.max_address_chars)?.to_owned();
    let to = form.address("To", gate.max_address_chars)?.to_owned();
    let raw = form.raw();
    tracing::Span::current().record("call_sid", call_sid.as_str());

    // Twilio retries a webhook that timed out: the same CallSid gets the same call.
    if let Some(call) = engine.registry.lookup_sid(call_sid.clone()).await? {
        return Ok(twiml(stream_twiml(&engine, call.id())));
    }
    let number = live_number(&engine, &to).await?;
    let id = CallId::new();
    // The store's unique CallSid decides, not the lookup above: a retry after the
    // call ended, after a restart, or racing the first delivery gets no new record.
    let opened = CallOpened {
        id: id.clone(),
        call_sid: Some(call_sid.clone()),
        from: from.clone(),
        to: to.clone(),
        workspace: None,
        direction: "inbound",
        started_at: now_ms(),
    };
    if let Some(known) = reserve_call_sid(&engine, &gate, &opened).await? {
        return Ok(twiml(known));
    }

    let Some(number) = number else {
        record_unknown_number(&engine, id, call_sid, from, to, raw);
        return Ok(twiml(twiml::say_and_hang_up(NOT_IN_SERVICE)));
    };
    let call = number.incoming(id, Some(call_sid), from, raw).await?;
    tracing::info!(call_id = %call.id(), "incoming call");
    Ok(twiml(stream_twiml(&engine, call.id())))
}

const NOT_IN_SERVICE: &str = "The number you have called is not in service. Goodbye.";

/// How long a retried webhook waits for the first delivery of its CallSid, which
/// holds the store's record but is not live yet, to start its call.
const FIRST_DELIVERY_GRACE: Duration = Duration::from_secs(2);

/// Reserves the call's CallSid in the store, whose unique id and CallSid decide
/// whether this webhook starts a call: `Some(TwiML)` when the CallSid is taken
/// (a retry, or a race with the first delivery: the known call's answer). A
/// store that fails or is slow does not stop the call; it goes on unrecorded.
pub(super) async fn reserve_call_sid(
    engine: &Engine,
    gate: &WebhookGate,
    opened: &CallOpened,
) -> Result<Option<String>, ApiError> {
    match tokio::time::timeout(gate.store_timeout, engine.store.claim_call_sid(opened)).await {
        Ok(Ok(SidClaim::Claimed)) => Ok(None),
        Ok(Ok(SidClaim::Taken { call_id, ended })) => {
            let call_sid = opened.call_sid.as_deref().unwrap_or_default();
            Ok(Some(known_call(engine, call_sid, &call_id, ended).await?))
        }
        Ok(Err(err)) => {
            tracing::warn!(%err, "could not reserve the CallSid; going on without the store");
            Ok(None)
        }
        Err(_) => {
            tracing::warn!("the store did not reserve the CallSid in time; going on");
            Ok(None)
        }
    }
}

/// The answer to a webhook whose CallSid the store already holds: the live call's
/// stream, or — the call is over — a hang-up.
pub(super) async fn known_call(
    engine: &Engine,
    call_sid: &str,
    call_id: &CallId,
    ended: bool,
) -> Result<String, ApiError> {
    tracing::info!(%call_id, ended, "webhook for a CallSid already recorded: no new call");
    if !ended {
        let deadline = tokio::time::Instant::now() + FIRST_DELIVERY_GRACE;
        loop {
            if let Some(call) = engine.registry.lookup_sid(call_sid.to_owned()).await? {
                return Ok(stream_twiml(engine, call.id()));
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(twiml::hang_up())
}

/// `<Connect><Stream>` to this node's stream URL; in cluster mode followed by the
/// `<Redirect>` to `/twilio/resume` on the public URL (issue 16, item 5).
pub(super) fn stream_twiml(engine: &Engine, call_id: &CallId) -> String {
    let resume = engine
        .cluster
        .is_some()
        .then(|| super::resume::resume_url(engine, call_id));
    twiml::connect_stream_then(
        &engine.stream_url(),
        &[("call_id", call_id.as_str())],
        resume.as_deref(),
    )
}

/// A call to a number the engine does not know is still a call: it gets a record.
fn record_unknown_number(
    engine: &Engine,
    id: CallId,
    call_sid: String,
    from: String,
    to: String,
    raw: Option<serde_json::Value>,
) {
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
    let mut created = json!({ "from": from, "to": to });
    if let Some(raw) = raw {
        created["raw"] = raw;
    }
    let events = [
        ("created", created),
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

/// Call progress (Twilio's status callback)
///
/// Lands in the call's trail as a `twilio_status` event; `completed` /
/// `canceled` / `failed` / `busy` / `no-answer` end a call the engine holds.
#[utoipa::path(post, path = "/twilio/status", tag = "twilio", operation_id = "call_status",
    security(("twilio_signature" = [])),
    request_body(content = StatusForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 204, description = "Taken (also while the database is away: the journal keeps it)"),
        (status = 400, description = "A signed request that is not a form, or lacks a required field; `bad-field`", body = ErrorBody),
        (status = 403, description = "A missing, malformed or wrong `X-Twilio-Signature` (nothing changed)", body = ErrorBody),
        (status = 408, description = "`body-timeout`: the body did not arrive in time", body = ErrorBody),
        (status = 413, description = "`body-too-large`", body = ErrorBody),
        (status = 404, description = "No call has that CallSid", body = ErrorBody),
        (status = 503, description = "`busy`: too many bodies being read at once (`Retry-After: 1`)", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(call_sid))]
pub async fn status(
    engine: web::Data<Engine>,
    gate: web::Data<WebhookGate>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let form = signed_form(&engine, &gate, &req, payload).await?;
    let call_sid = form.call_sid()?.to_owned();
    let status = form.require("CallStatus")?.to_owned();
    tracing::Span::current().record("call_sid", call_sid.as_str());
    let mut detail = json!({
        "sequence_number": form.get("SequenceNumber"),
        "call_duration": form.get("CallDuration"),
        "timestamp": form.get("Timestamp"),
        "sip_response_code": form.get("SipResponseCode"),
    });
    if let Some(raw) = form.raw() {
        detail["raw"] = raw;
    }
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
