//! The fake Twilio's Call resource, written from Twilio's published API
//! (https://www.twilio.com/docs/voice/api/call-resource; twilio/twilio-python
//! `twilio/rest/api/v2010/account/call/__init__.py` for the field names):
//!
//! - `POST /2010-04-01/Accounts/{AC}/Calls.json` (form): Basic auth (401, code
//!   20003, otherwise), `To` and `From` required and E.164 (400, codes 21211 and
//!   21212, https://www.twilio.com/docs/api/errors/21211), `Url` required (400,
//!   21205); answers `201` with the call resource, `queued`.
//! - `GET …/Calls.json`: newest first, filtered by `To` and `StartTime>` (on or
//!   after; a date or an instant), in pages of `PageSize` (default 50) with a
//!   relative `next_page_uri` that keeps the filters.
//! - `GET …/Calls/{CA}.json` (404, code 20404, for an unknown sid).
//! - `POST …/Calls/{CA}/Recordings.json` (form; "Create a Recording",
//!   https://www.twilio.com/docs/voice/api/recording#create-a-recording-resource):
//!   starts recording a call that is `in-progress` — `400` code 21220 ("Invalid
//!   call state", https://www.twilio.com/docs/api/errors/21220) otherwise, 404
//!   (20404) for an unknown call —, answers `201` with the Recording resource
//!   (`RE…`, `status` `in-progress`, `source` `StartCallRecordingAPI`); every
//!   start is kept in [`Calls::recordings`].
//!
//! Failure modes tests switch on in [`Calls`]: every create refused with a
//! Twilio error (a 21216-style 400), answered with a 5xx (nothing created), or
//! answered only after a hang (the call *is* created: the client's "unknown"
//! case). [`Calls::dials`] counts create requests per `To`, so a test can assert
//! that nothing dialed twice.
//!
//! Opt-in ([`Calls::like_twilio`]): after a create the fake goes on like Twilio,
//! each request signed with `X-Twilio-Signature` under the account's auth token
//! ([`TWILIO_SECRET`]): the `initiated` and `ringing` status callbacks (when
//! asked for in `StatusCallbackEvent`), a POST to `Url` once "answered"
//! (`CallStatus=in-progress`), the `answered` callback, and with `AsyncAmd` the
//! verdict to `AsyncAmdStatusCallback`. [`FakeProvider::complete_call`] ends a
//! call (duration, price) and sends `completed`. Every delivery is recorded.
//!
//! With [`Calls::open_streams`], an answer to `Url` that is `<Connect><Stream
//! url="…">` (https://www.twilio.com/docs/voice/twiml/stream) makes the fake open
//! that Media Stream as Twilio does: the WebSocket handshake signed over the
//! stream URL, `connected`, then `start` with the `callSid` and the TwiML's
//! `<Parameter>`s as `customParameters`
//! (https://www.twilio.com/docs/voice/media-streams/websocket-messages). The
//! test takes the stream ([`FakeProvider::media_stream`]) and plays the callee
//! through it: media frames in, the engine's media, marks and clears out. With
//! [`Calls::hold_amd`] the AMD verdict waits for [`FakeProvider::send_amd`], so a
//! test decides when the machine is detected. With [`Calls::unanswered`] the
//! call rings and ends `busy` or `no-answer` instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use switchboard::twilio::signature::sign;
use time::format_description::well_known::{Iso8601, Rfc2822, Rfc3339};
use time::OffsetDateTime;

use crate::helpers::{TwilioStream, PATIENCE};

use super::{log, server_error, twilio_401, twilio_auth_ok, FakeProvider, Shared, State};
use super::{TWILIO_SECRET, TWILIO_SID};

/// What Twilio charges per started minute in these tests (USD).
pub const PER_MINUTE: f64 = 0.014;

/// The Calls resource's state, and what tests switch on.
#[derive(Default)]
pub struct Calls {
    /// Newest last.
    pub calls: Vec<FakeCall>,
    /// Create requests (authenticated) per `To`, whatever their outcome.
    pub dials: HashMap<String, usize>,
    /// The form body of every authenticated create, in order.
    pub create_bodies: Vec<String>,
    /// Every create is answered with this Twilio error, nothing created.
    pub refusal: Option<Refusal>,
    /// Every create is answered with this 5xx status, nothing created.
    pub fail_status: Option<u16>,
    /// Creates are answered only after this long (the call is created at once).
    pub hang_for: Option<Duration>,
    /// Pages hold at most this many calls, whatever `PageSize` asks.
    pub page_limit: Option<usize>,
    /// After a create, behave like Twilio (see the module doc).
    pub like_twilio: Option<LikeTwilio>,
    /// Requests the fake made to switchboard, in order.
    pub deliveries: Vec<Delivery>,
    /// Open the Media Stream a `<Connect><Stream>` answer names.
    pub open_streams: bool,
    /// The AMD verdict is sent only by [`FakeProvider::send_amd`].
    pub hold_amd: bool,
    /// The Media Streams opened, by CallSid, until a test takes them.
    pub streams: HashMap<String, TwilioStream>,
    /// With [`Calls::like_twilio`]: nobody answers; after `ringing` the call
    /// ends with this `CallStatus` (`busy`, `no-answer`), sent with the
    /// `completed` event as Twilio does
    /// (https://www.twilio.com/docs/voice/api/call-resource#statuscallbackevent),
    /// and the `Url` is never fetched.
    pub unanswered: Option<String>,
    /// With [`Calls::unanswered`]: how long the call rings first.
    pub ring_for: Option<Duration>,
    /// Recordings started through the API, in order.
    pub recordings: Vec<StartedRecording>,
    /// Calls created and not yet ended (by the fake's terminal callback or
    /// [`FakeProvider::complete_call`]), and the most there ever were at once.
    pub live: usize,
    pub peak_live: usize,
    next_sid: u64,
}

/// A Twilio error body: `{code, message, more_info, status}`.
#[derive(Clone)]
pub struct Refusal {
    pub status: u16,
    pub code: u32,
    pub message: String,
}

impl Refusal {
    /// Twilio's answer to a destination on its block list.
    pub fn blocked_destination() -> Refusal {
        Refusal {
            status: 400,
            code: 21216,
            message: "Account not allowed to call +14155550123".into(),
        }
    }
}

/// How the fake plays the call after creating it.
#[derive(Clone)]
pub struct LikeTwilio {
    /// The machine-detection verdict (`human`, `machine_end_beep`, …).
    pub answered_by: String,
}

/// A recording started with `POST …/Calls/{CA}/Recordings.json`.
#[derive(Debug, Clone)]
pub struct StartedRecording {
    pub sid: String,
    pub call_sid: String,
    pub form: Vec<(String, String)>,
}

pub struct FakeCall {
    pub resource: Value,
    pub started_at: OffsetDateTime,
    /// The create's form (empty for calls a test added).
    pub request: Vec<(String, String)>,
}

/// A request the fake made to a URL it was given, and the answer.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub url: String,
    pub params: Vec<(String, String)>,
    pub status: u16,
    pub body: String,
}

impl Delivery {
    pub fn param(&self, name: &str) -> Option<&str> {
        param(&self.params, name)
    }
}

pub(super) fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub(super) fn routes(app: &mut web::ServiceConfig) {
    app.route(
        "/2010-04-01/Accounts/{sid}/Calls.json",
        web::post().to(create),
    )
    .route("/2010-04-01/Accounts/{sid}/Calls.json", web::get().to(list))
    .route(
        "/2010-04-01/Accounts/{sid}/Calls/{ca}.json",
        web::get().to(fetch),
    )
    .route(
        "/2010-04-01/Accounts/{sid}/Calls/{ca}/Recordings.json",
        web::post().to(start_recording),
    );
}

pub(super) fn twilio_error(status: u16, code: u32, message: &str) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
    )
    .json(json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    }))
}

/// `+` then 2 to 15 digits, the first not 0.
pub(super) fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|digits| {
        (2..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

pub(super) fn rfc2822(at: OffsetDateTime) -> String {
    at.format(&Rfc2822).unwrap_or_default()
}

/// A call resource as Twilio answers it (twilio-python's `CallInstance`).
fn call_resource(sid: &str, to: &str, from: &str, at: OffsetDateTime) -> Value {
    json!({
        "sid": sid,
        "date_created": rfc2822(at),
        "date_updated": rfc2822(at),
        "parent_call_sid": null,
        "account_sid": TWILIO_SID,
        "to": to,
        "to_formatted": to,
        "from": from,
        "from_formatted": from,
        "phone_number_sid": null,
        "status": "queued",
        "start_time": rfc2822(at),
        "end_time": null,
        "duration": null,
        "price": null,
        "price_unit": "USD",
        "direction": "outbound-api",
        "answered_by": null,
        "api_version": "2010-04-01",
        "forwarded_from": null,
        "group_sid": null,
        "caller_name": null,
        "queue_time": "0",
        "trunk_sid": null,
        "uri": format!("/2010-04-01/Accounts/{TWILIO_SID}/Calls/{sid}.json"),
        "subresource_uris": {
            "notifications": format!("/2010-04-01/Accounts/{TWILIO_SID}/Calls/{sid}/Notifications.json"),
            "recordings": format!("/2010-04-01/Accounts/{TWILIO_SID}/Calls/{sid}/Recordings.json"),
        },
    })
}

impl Calls {
    fn new_sid(&mut self) -> String {
        self.next_sid += 1;
        format!("CA{:032x}", self.next_sid)
    }

    fn find(&mut self, sid: &str) -> Option<&mut FakeCall> {
        self.calls.iter_mut().find(|c| c.resource["sid"] == sid)
    }
}

async fn create(
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
    state: Shared,
) -> HttpResponse {
    let sid = path.into_inner();
    if !twilio_auth_ok(&req, &sid) {
        return twilio_401();
    }
    let form = form.into_inner();
    let (call, hang, like) = {
        let mut state = state.lock().expect("state");
        let body = serde_urlencoded::to_string(&form).unwrap_or_default();
        log(&mut state, &req, &body);
        let calls = &mut state.calls;
        calls.create_bodies.push(body);
        let to = param(&form, "To").unwrap_or_default().to_owned();
        *calls.dials.entry(to.clone()).or_default() += 1;
        let from = param(&form, "From").unwrap_or_default().to_owned();
        if !is_e164(&to) {
            return twilio_error(400, 21211, &format!("Invalid 'To' Phone Number: {to}"));
        }
        if !is_e164(&from) {
            return twilio_error(400, 21212, &format!("Invalid 'From' Phone Number: {from}"));
        }
        if param(&form, "Url").is_none_or(str::is_empty) {
            return twilio_error(400, 21205, "Url is not a valid URL");
        }
        if let Some(r) = &calls.refusal {
            return twilio_error(r.status, r.code, &r.message);
        }
        if let Some(status) = calls.fail_status {
            return server_error(
                status,
                json!({ "code": 20500, "message": "Internal Server Error", "status": status }),
            );
        }
        let call_sid = calls.new_sid();
        let now = OffsetDateTime::now_utc();
        let resource = call_resource(&call_sid, &to, &from, now);
        calls.live += 1;
        calls.peak_live = calls.peak_live.max(calls.live);
        calls.calls.push(FakeCall {
            resource: resource.clone(),
            started_at: now,
            request: form.clone(),
        });
        (resource, calls.hang_for, calls.like_twilio.clone())
    };
    if let Some(like) = like {
        let state = Arc::clone(state.get_ref());
        let sid = call["sid"].as_str().unwrap_or_default().to_owned();
        actix_rt::spawn(play(state, sid, form, like));
    }
    if let Some(hang) = hang {
        actix_rt::time::sleep(hang).await;
    }
    HttpResponse::Created().json(call)
}

/// `StartTime>`'s value: an instant (RFC 3339) or a date (midnight UTC).
fn parse_bound(value: &str) -> Option<OffsetDateTime> {
    if let Ok(at) = OffsetDateTime::parse(value, &Rfc3339) {
        return Some(at);
    }
    time::Date::parse(value, &Iso8601::DATE)
        .ok()
        .map(|d| d.midnight().assume_utc())
}

/// A list request of account `sid`, authenticated: its query, and the `Page`
/// (from 0) and `PageSize` (default 50, 1 to 1,000) it asks for.
pub(super) struct ListRequest {
    pub query: Vec<(String, String)>,
    pub page: usize,
    pub size: usize,
}

impl ListRequest {
    /// `None` when the request's Basic auth is not the account's (Twilio's 401).
    pub fn read(req: &HttpRequest, sid: &str) -> Option<ListRequest> {
        if !twilio_auth_ok(req, sid) {
            return None;
        }
        let query: Vec<(String, String)> =
            serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
        let number = |name: &str| param(&query, name).and_then(|v| v.parse::<usize>().ok());
        let page = number("Page").unwrap_or(0);
        let size = number("PageSize").unwrap_or(50).clamp(1, 1000);
        Some(ListRequest { query, page, size })
    }
}

async fn list(req: HttpRequest, path: web::Path<String>, state: Shared) -> HttpResponse {
    let sid = path.into_inner();
    let Some(ListRequest { query, page, size }) = ListRequest::read(&req, &sid) else {
        return twilio_401();
    };
    let mut state = state.lock().expect("state");
    log(&mut state, &req, "");
    let size = size.min(state.calls.page_limit.unwrap_or(1000));
    let to = param(&query, "To");
    let after = match param(&query, "StartTime>").map(parse_bound) {
        Some(None) => return twilio_error(400, 20001, "Invalid StartTime>"),
        Some(Some(at)) => Some(at),
        None => None,
    };
    let matching: Vec<Value> = state
        .calls
        .calls
        .iter()
        .rev()
        .filter(|c| to.is_none_or(|to| c.resource["to"] == to))
        .filter(|c| after.is_none_or(|after| c.started_at >= after))
        .map(|c| c.resource.clone())
        .collect();
    HttpResponse::Ok().json(list_page(
        &format!("/2010-04-01/Accounts/{sid}/Calls.json"),
        "calls",
        &matching,
        &query,
        &["To", "StartTime>"],
        (page, size),
    ))
}

/// One page of a Twilio list resource (`key` holding the `items` of page
/// `page` of `size`), with the paging fields twilio-python's `Page` reads:
/// relative `first_page_uri`, `next_page_uri` (`null` on the last page),
/// `previous_page_uri` and `uri`, each keeping the request's `filters`.
pub(super) fn list_page(
    path: &str,
    key: &str,
    items: &[Value],
    query: &[(String, String)],
    filters: &[&str],
    (page, size): (usize, usize),
) -> Value {
    let start = page * size;
    let listed: Vec<Value> = items.iter().skip(start).take(size).cloned().collect();
    let last = start + listed.len() >= items.len();
    let kept: Vec<(&str, &str)> = query
        .iter()
        .filter(|(k, _)| filters.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let uri = |p: usize| {
        let mut q = kept.clone();
        let (size, p_text, token) = (size.to_string(), p.to_string(), format!("PA{}", p * size));
        q.extend([("PageSize", size.as_str()), ("Page", p_text.as_str())]);
        q.push(("PageToken", token.as_str()));
        format!(
            "{path}?{}",
            serde_urlencoded::to_string(&q).unwrap_or_default()
        )
    };
    json!({
        key: listed,
        "end": start + listed.len().saturating_sub(1),
        "first_page_uri": uri(0),
        "next_page_uri": if last { Value::Null } else { uri(page + 1).into() },
        "page": page,
        "page_size": size,
        "previous_page_uri": if page == 0 { Value::Null } else { uri(page - 1).into() },
        "start": start,
        "uri": uri(page),
    })
}

async fn fetch(req: HttpRequest, path: web::Path<(String, String)>, state: Shared) -> HttpResponse {
    let (sid, ca) = path.into_inner();
    if !twilio_auth_ok(&req, &sid) {
        return twilio_401();
    }
    let mut state = state.lock().expect("state");
    log(&mut state, &req, "");
    match state.calls.find(&ca) {
        Some(call) => HttpResponse::Ok().json(call.resource.clone()),
        None => twilio_error(
            404,
            20404,
            &format!(
                "The requested resource /2010-04-01/Accounts/{sid}/Calls/{ca}.json was not found"
            ),
        ),
    }
}

async fn start_recording(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<Vec<(String, String)>>,
    state: Shared,
) -> HttpResponse {
    let (sid, call_sid) = path.into_inner();
    if !twilio_auth_ok(&req, &sid) {
        return twilio_401();
    }
    let form = form.into_inner();
    let mut state = state.lock().expect("state");
    let body = serde_urlencoded::to_string(&form).unwrap_or_default();
    log(&mut state, &req, &body);
    let calls = &mut state.calls;
    let Some(call) = calls.find(&call_sid) else {
        return twilio_error(
            404,
            20404,
            &format!("The requested resource /2010-04-01/Accounts/{sid}/Calls/{call_sid}/Recordings.json was not found"),
        );
    };
    if call.resource["status"] != "in-progress" {
        return twilio_error(400, 21220, "Invalid call state");
    }
    let recording_sid = format!("RE{:032x}", calls.recordings.len() + 1);
    let now = OffsetDateTime::now_utc();
    let channels = if param(&form, "RecordingChannels") == Some("dual") {
        2
    } else {
        1
    };
    let resource = json!({
        "account_sid": TWILIO_SID,
        "api_version": "2010-04-01",
        "call_sid": call_sid,
        "conference_sid": null,
        "channels": channels,
        "date_created": rfc2822(now),
        "date_updated": rfc2822(now),
        "start_time": rfc2822(now),
        "duration": "-1",
        "price": null,
        "price_unit": "USD",
        "sid": recording_sid,
        "source": "StartCallRecordingAPI",
        "status": "in-progress",
        "error_code": null,
        "track": param(&form, "RecordingTrack").unwrap_or("both"),
        "uri": format!("/2010-04-01/Accounts/{sid}/Calls/{call_sid}/Recordings/{recording_sid}.json"),
    });
    calls.recordings.push(StartedRecording {
        sid: recording_sid,
        call_sid,
        form,
    });
    HttpResponse::Created().json(resource)
}

/// What Twilio sends about a call in every request (its webhook parameters).
fn call_params(sid: &str, request: &[(String, String)], status: &str) -> Vec<(String, String)> {
    let to = param(request, "To").unwrap_or_default();
    let from = param(request, "From").unwrap_or_default();
    [
        ("AccountSid", TWILIO_SID),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", sid),
        ("CallStatus", status),
        ("Called", to),
        ("Caller", from),
        ("Direction", "outbound-api"),
        ("From", from),
        ("To", to),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// A `StatusCallback` request for `event` (`CallStatus`), if it was asked for.
fn progress(
    request: &[(String, String)],
    sid: &str,
    event: &str,
    status: &str,
    sequence: u32,
) -> Option<(String, Vec<(String, String)>)> {
    let asked = request
        .iter()
        .any(|(k, v)| k == "StatusCallbackEvent" && v == event);
    let url = param(request, "StatusCallback").filter(|u| !u.is_empty())?;
    // Without StatusCallbackEvent Twilio sends `completed` only.
    let default = event == "completed" && !request.iter().any(|(k, _)| k == "StatusCallbackEvent");
    (asked || default).then(|| {
        let mut params = call_params(sid, request, status);
        params.push(("CallbackSource".into(), "call-progress-events".into()));
        params.push(("SequenceNumber".into(), sequence.to_string()));
        params.push(("Timestamp".into(), rfc2822(OffsetDateTime::now_utc())));
        (url.to_owned(), params)
    })
}

/// POSTs `params` to `url` signed as Twilio signs it, and records the delivery;
/// the answer's body.
pub(super) async fn deliver(
    state: &Arc<Mutex<State>>,
    url: String,
    params: Vec<(String, String)>,
) -> String {
    let signature = sign(TWILIO_SECRET, &url, &params);
    let answer = reqwest::Client::new()
        .post(&url)
        .header("X-Twilio-Signature", signature)
        .form(&params)
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    let (status, body) = match answer {
        Ok(res) => (res.status().as_u16(), res.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    };
    let mut state = state.lock().expect("state");
    state.calls.deliveries.push(Delivery {
        url,
        params,
        status,
        body: body.clone(),
    });
    body
}

fn xml_unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of `name="…"` in `tag`.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
    let end = tag[start..].find('"')? + start;
    Some(xml_unescape(&tag[start..end]))
}

/// `<Connect><Stream url>`'s URL and its `<Parameter>`s, if the TwiML has them.
fn stream_of(twiml: &str) -> Option<(String, Value)> {
    let connect = twiml.find("<Connect>")?;
    let stream = twiml[connect..].find("<Stream ")? + connect;
    let tag_end = twiml[stream..].find('>')? + stream;
    let url = attribute(&twiml[stream..tag_end], "url")?;
    let mut parameters = serde_json::Map::new();
    let mut rest = &twiml[tag_end..];
    while let Some(at) = rest.find("<Parameter ") {
        let end = rest[at..].find("/>").map_or(rest.len(), |e| e + at);
        let tag = &rest[at..end];
        if let (Some(name), Some(value)) = (attribute(tag, "name"), attribute(tag, "value")) {
            parameters.insert(name, Value::String(value));
        }
        rest = &rest[end..];
    }
    Some((url, Value::Object(parameters)))
}

/// The AMD callback, if the create asked for asynchronous AMD.
async fn send_verdict(
    state: &Arc<Mutex<State>>,
    sid: &str,
    request: &[(String, String)],
    answered_by: &str,
) {
    let async_amd = param(request, "AsyncAmd") == Some("true");
    if let (true, Some(url)) = (async_amd, param(request, "AsyncAmdStatusCallback")) {
        let params = [
            ("AccountSid", TWILIO_SID),
            ("CallSid", sid),
            ("AnsweredBy", answered_by),
            ("MachineDetectionDuration", "1840"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        deliver(state, url.to_owned(), params).await;
    }
}

fn set_status(state: &Arc<Mutex<State>>, sid: &str, status: &str) {
    let mut state = state.lock().expect("state");
    if let Some(call) = state.calls.find(sid) {
        call.resource["status"] = status.into();
    }
}

/// The call after its create, like Twilio plays it: initiated, ringing, the TwiML
/// fetched on answer, answered, and the asynchronous AMD verdict.
async fn play(
    state: Arc<Mutex<State>>,
    sid: String,
    request: Vec<(String, String)>,
    like: LikeTwilio,
) {
    if let Some((url, params)) = progress(&request, &sid, "initiated", "initiated", 0) {
        deliver(&state, url, params).await;
    }
    set_status(&state, &sid, "ringing");
    if let Some((url, params)) = progress(&request, &sid, "ringing", "ringing", 1) {
        deliver(&state, url, params).await;
    }
    let (unanswered, ring_for) = {
        let state = state.lock().expect("state");
        (state.calls.unanswered.clone(), state.calls.ring_for)
    };
    if let Some(status) = unanswered {
        if let Some(ring_for) = ring_for {
            tokio::time::sleep(ring_for).await;
        }
        set_status(&state, &sid, &status);
        {
            let mut state = state.lock().expect("state");
            state.calls.live = state.calls.live.saturating_sub(1);
        }
        if let Some((url, mut params)) = progress(&request, &sid, "completed", &status, 2) {
            params.push(("CallDuration".into(), "0".into()));
            deliver(&state, url, params).await;
        }
        return;
    }
    set_status(&state, &sid, "in-progress");
    let amd = param(&request, "MachineDetection").is_some();
    let async_amd = param(&request, "AsyncAmd") == Some("true");
    {
        let mut state = state.lock().expect("state");
        if let Some(call) = state.calls.find(&sid) {
            if amd {
                call.resource["answered_by"] = like.answered_by.clone().into();
            }
        }
    }
    if let Some(url) = param(&request, "Url") {
        let mut params = call_params(&sid, &request, "in-progress");
        if amd && !async_amd {
            params.push(("AnsweredBy".into(), like.answered_by.clone()));
        }
        let twiml = deliver(&state, url.to_owned(), params).await;
        let open = state.lock().expect("state").calls.open_streams;
        if let Some((stream_url, parameters)) = stream_of(&twiml).filter(|_| open) {
            let stream = TwilioStream::open(&stream_url, TWILIO_SECRET, &sid, parameters)
                .await
                .expect("the fake Twilio opens the media stream its TwiML names");
            state
                .lock()
                .expect("state")
                .calls
                .streams
                .insert(sid.clone(), stream);
        }
    }
    if let Some((url, params)) = progress(&request, &sid, "answered", "in-progress", 2) {
        deliver(&state, url, params).await;
    }
    let hold = state.lock().expect("state").calls.hold_amd;
    if !hold {
        send_verdict(&state, &sid, &request, &like.answered_by).await;
    }
}

impl FakeProvider {
    /// Create requests the fake received for `to`.
    pub fn dials(&self, to: &str) -> usize {
        self.state().calls.dials.get(to).copied().unwrap_or(0)
    }

    /// A `queued` call placed earlier (not through the API), started at `at`.
    pub fn add_call(&self, to: &str, from: &str, at: OffsetDateTime) -> String {
        let mut state = self.state();
        let sid = state.calls.new_sid();
        let resource = call_resource(&sid, to, from, at);
        state.calls.calls.push(FakeCall {
            resource,
            started_at: at,
            request: Vec::new(),
        });
        sid
    }

    /// Ends the call after `duration_secs`: `completed`, priced per started
    /// minute at [`PER_MINUTE`], and (like Twilio) the `completed` callback if
    /// asked for.
    pub async fn complete_call(&self, sid: &str, duration_secs: u32) {
        let (request, like) = {
            let mut state = self.state();
            let call = state.calls.find(sid).expect("a call of the fake");
            let minutes = duration_secs.div_ceil(60);
            call.resource["status"] = "completed".into();
            call.resource["duration"] = duration_secs.to_string().into();
            call.resource["end_time"] = rfc2822(OffsetDateTime::now_utc()).into();
            call.resource["price"] = format!("-{:.5}", f64::from(minutes) * PER_MINUTE).into();
            let request = call.request.clone();
            state.calls.live = state.calls.live.saturating_sub(1);
            (request, state.calls.like_twilio.is_some())
        };
        let callback = progress(&request, sid, "completed", "completed", 3).filter(|_| like);
        if let Some((url, mut params)) = callback {
            params.push(("CallDuration".into(), duration_secs.to_string()));
            deliver(&self.state, url, params).await;
        }
    }

    /// The Media Stream the fake opened for call `sid` (waiting for it).
    pub async fn media_stream(&self, sid: &str) -> TwilioStream {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(stream) = self.state().calls.streams.remove(sid) {
                return stream;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the fake opened no media stream for {sid}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Sends the AMD verdict of call `sid` now (with [`Calls::hold_amd`]), signed,
    /// to the create's `AsyncAmdStatusCallback`; the delivery is recorded.
    pub async fn send_amd(&self, sid: &str, answered_by: &str) {
        let request = {
            let mut state = self.state();
            let call = state.calls.find(sid).expect("a call of the fake");
            call.resource["answered_by"] = answered_by.into();
            call.request.clone()
        };
        send_verdict(&self.state, sid, &request, answered_by).await;
    }

    /// The recordings started so far.
    pub fn recordings(&self) -> Vec<StartedRecording> {
        self.state().calls.recordings.clone()
    }

    /// The deliveries so far, once there are at least `n` (or after 10 s).
    pub async fn deliveries(&self, n: usize) -> Vec<Delivery> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let deliveries = self.state().calls.deliveries.clone();
            if deliveries.len() >= n || tokio::time::Instant::now() > deadline {
                return deliveries;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
