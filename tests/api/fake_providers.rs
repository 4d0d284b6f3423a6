//! Fake Twilio, Vapi and Retell: one actix-web server on port 0 that speaks each
//! provider's current phone-number API, with each one's auth (Basic for Twilio,
//! Bearer keys for Vapi and Retell) and error bodies:
//!
//! - Twilio IncomingPhoneNumbers
//!   (https://www.twilio.com/docs/phone-numbers/api/incomingphonenumber-resource;
//!   twilio/twilio-python `twilio/rest/api/v2010/account/incoming_phone_number/__init__.py`):
//!   list pages (`next_page_uri`, relative), fetch, and update by form POST of
//!   `VoiceUrl`, `VoiceMethod`, `VoiceApplicationSid`, `TrunkSid`,
//!   `StatusCallback`, `StatusCallbackMethod` (an empty value clears a field;
//!   setting `TrunkSid` deletes `VoiceApplicationSid` and vice versa).
//! - Vapi (https://docs.vapi.ai/api-reference/phone-numbers/list;
//!   VapiAI/server-sdk-typescript `src/api/resources/phoneNumbers/client/requests/ListPhoneNumbersRequest.ts`):
//!   `GET /phone-number` with `limit` (0–1,000, default 100) and
//!   `createdAtGt/Ge/Lt/Le`, a plain array in an order the docs do not promise
//!   (newest first by default; tests may choose another); `PATCH /phone-number/{id}`.
//! - Retell (https://docs.retellai.com/api-references/list-phone-numbers,
//!   …/update-phone-number, …/import-phone-number; RetellAI/retell-typescript-sdk
//!   `src/resources/phone-number.ts`): `GET /v2/list-phone-numbers` (`limit`,
//!   `pagination_key`, `sort_order`; answer `{items, has_more, pagination_key}`),
//!   agents as weighted lists `inbound_agents`/`outbound_agents` (the single
//!   `inbound_agent_id`/`outbound_agent_id` are refused: not supported after
//!   03/31/2026, https://docs.retellai.com/deprecation-notice/2026/03-31_phone_number_agent_fields),
//!   the trunk under `sip_outbound_trunk_config`. The deprecated
//!   `GET /list-phone-numbers` is gone (404).
//!
//! - Twilio Calls: [`calls`]; Twilio Messages (texts and their status
//!   callbacks): [`messages`].
//!
//! Tests turn on failures (401 with a wrong key, a status for every list request,
//! a malformed page, a page that never comes in time, refusals, broken Retell
//! paging) and read the requests it received.

use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use secrecy::SecretString;
use serde_json::{json, Value};
use switchboard::config::AccountSettings;
use switchboard::domain::provider::ProviderKind;
use switchboard_actors::Workspace;

pub mod calls;
pub mod messages;

pub const TWILIO_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const TWILIO_SECRET: &str = "fake-twilio-token";
pub const VAPI_KEY: &str = "fake-vapi-key";
pub const RETELL_KEY: &str = "fake-retell-key";

/// What the fake holds, and what tests switch on.
#[derive(Default)]
pub struct State {
    pub twilio: Vec<Value>,
    pub vapi: Vec<Value>,
    pub retell: Vec<Value>,
    /// Twilio: this page (0-based) is answered with malformed JSON.
    pub malformed_page: Option<usize>,
    /// Twilio: this page is answered only after `slow_for`.
    pub slow_page: Option<usize>,
    pub slow_for: Duration,
    /// Assignments (Twilio VoiceUrl, Vapi assistantId, Retell agents) are refused.
    pub refuse_updates: bool,
    /// Twilio refuses updates of this number only.
    pub refuse_twilio_sid: Option<String>,
    /// Every list request of that provider is answered with this status (e.g.
    /// 500, 503) and the provider's error body.
    pub twilio_fail: Option<u16>,
    pub vapi_fail: Option<u16>,
    pub retell_fail: Option<u16>,
    /// The order Vapi lists numbers in (undocumented: newest first by default).
    pub vapi_order: VapiOrder,
    /// Retell numbers also carry the deprecated single-agent fields.
    pub retell_legacy_fields: bool,
    /// Retell's pages go wrong this way.
    pub retell_paging: RetellPaging,
    /// `METHOD path body`, in order.
    pub requests: Vec<String>,
    /// Passwords Retell was given on import (to check they went to Retell only).
    pub retell_passwords: Vec<String>,
    /// Vapi's createdAt clock.
    vapi_clock: u64,
    /// Twilio's Call resource.
    pub calls: calls::Calls,
    /// Twilio's Message resource.
    pub messages: messages::Messages,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
pub enum VapiOrder {
    #[default]
    NewestFirst,
    OldestFirst,
    /// Neither: numbers sorted by their id.
    ById,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
pub enum RetellPaging {
    #[default]
    Correct,
    /// `has_more` is true but no `pagination_key` comes with it.
    MissingKey,
    /// The first page's key comes back on every page.
    RepeatedKey,
}

pub struct FakeProvider {
    pub base: String,
    pub state: Arc<Mutex<State>>,
}

type Shared = web::Data<Arc<Mutex<State>>>;

impl FakeProvider {
    pub async fn start() -> FakeProvider {
        let state = Arc::new(Mutex::new(State::default()));
        let data = web::Data::new(Arc::clone(&state));
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("bound").port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route(
                    "/2010-04-01/Accounts/{sid}/IncomingPhoneNumbers.json",
                    web::get().to(twilio_list),
                )
                .route(
                    "/2010-04-01/Accounts/{sid}/IncomingPhoneNumbers/{pn}.json",
                    web::post().to(twilio_update),
                )
                .route(
                    "/2010-04-01/Accounts/{sid}/IncomingPhoneNumbers/{pn}.json",
                    web::get().to(twilio_fetch),
                )
                .configure(calls::routes)
                .configure(messages::routes)
                .route("/phone-number", web::get().to(vapi_list))
                .route("/phone-number/{id}", web::patch().to(vapi_update))
                .route("/v2/list-phone-numbers", web::get().to(retell_list))
                .route(
                    "/update-phone-number/{number}",
                    web::patch().to(retell_update),
                )
                .route("/import-phone-number", web::post().to(retell_import))
        })
        .workers(1)
        .listen(listener)
        .expect("the fake listens")
        .run();
        actix_rt::spawn(server);
        FakeProvider {
            base: format!("http://127.0.0.1:{port}"),
            state,
        }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("the fake's state")
    }

    /// A Twilio number (`PN…` sid from `n`), pointing its webhook at `voice_url`.
    pub fn add_twilio(&self, n: usize, e164: &str, friendly_name: &str, voice_url: &str) -> String {
        let sid = format!("PN{n:032x}");
        self.state().twilio.push(json!({
            "sid": sid,
            "account_sid": TWILIO_SID,
            "phone_number": e164,
            "friendly_name": friendly_name,
            "voice_url": voice_url,
            "voice_method": "POST",
            "voice_fallback_url": null,
            "voice_application_sid": null,
            "status_callback": "",
            "status_callback_method": "POST",
            "capabilities": { "voice": true, "sms": true, "mms": false, "fax": false },
            "trunk_sid": null,
            "api_version": "2010-04-01",
            "origin": "twilio",
            "status": "in-use",
            "date_created": "Mon, 16 Aug 2021 20:32:06 +0000",
            "date_updated": "Mon, 16 Aug 2021 20:32:06 +0000",
            "uri": format!("/2010-04-01/Accounts/{TWILIO_SID}/IncomingPhoneNumbers/{sid}.json"),
        }));
        sid
    }

    pub fn add_vapi(&self, id: &str, e164: &str, name: &str) {
        let created = {
            let mut state = self.state();
            state.vapi_clock += 1;
            vapi_instant(state.vapi_clock)
        };
        self.add_vapi_at(id, e164, name, &created);
    }

    /// A Vapi number created at `created` (several may share one).
    pub fn add_vapi_at(&self, id: &str, e164: &str, name: &str, created: &str) {
        let mut state = self.state();
        state.vapi.push(json!({
            "id": id,
            "orgId": "org-1",
            "provider": "vapi",
            "number": e164,
            "name": name,
            "assistantId": null,
            "status": "active",
            "createdAt": created,
            "updatedAt": created,
        }));
    }

    pub fn add_retell(&self, e164: &str, nickname: &str) {
        self.state()
            .retell
            .push(retell_number(e164, Some(nickname), None, None, None));
    }

    pub fn requests(&self) -> Vec<String> {
        self.state().requests.clone()
    }
}

/// An account of `provider` in `workspace` on this fake, for `numbers.accounts`.
pub fn account(fake: &FakeProvider, provider: &str, workspace: &str) -> AccountSettings {
    let secret = match provider {
        "twilio" => TWILIO_SECRET,
        "vapi" => VAPI_KEY,
        _ => RETELL_KEY,
    };
    AccountSettings {
        provider: ProviderKind::parse(provider).expect("a provider"),
        workspace: Workspace::parse(workspace).expect("a workspace"),
        api_base: Some(fake.base.parse().expect("the fake's URL")),
        account_sid: TWILIO_SID.into(),
        secret_env: String::new(),
        secret: Some(SecretString::from(secret)),
    }
}

/// `2024-01-01T00:MM:SS.000Z`, the `n`-th second.
pub fn vapi_instant(n: u64) -> String {
    format!("2024-01-01T00:{:02}:{:02}.000Z", n / 60, n % 60)
}

/// Retell's `PhoneNumberResponse` (retell-typescript-sdk `src/resources/phone-number.ts`).
fn retell_number(
    e164: &str,
    nickname: Option<&str>,
    termination_uri: Option<&str>,
    user: Option<&str>,
    transport: Option<&str>,
) -> Value {
    let digits: String = e164.chars().filter(char::is_ascii_digit).collect();
    let pretty = if e164.starts_with("+1") && digits.len() == 11 {
        format!("+1 ({}) {}-{}", &digits[1..4], &digits[4..7], &digits[7..])
    } else {
        e164.to_owned()
    };
    json!({
        "phone_number": e164,
        "phone_number_type": if termination_uri.is_some() { "custom" } else { "retell-twilio" },
        "phone_number_pretty": pretty,
        "inbound_agents": null,
        "outbound_agents": null,
        "inbound_sms_agents": null,
        "outbound_sms_agents": null,
        "area_code": digits.get(1..4).and_then(|d| d.parse::<u32>().ok()).unwrap_or(0),
        "nickname": nickname,
        "inbound_webhook_url": null,
        "allowed_inbound_country_list": null,
        "allowed_outbound_country_list": null,
        "fallback_number": null,
        "sip_outbound_trunk_config": termination_uri.map(|uri| json!({
            "termination_uri": uri,
            "auth_username": user,
            "transport": transport.unwrap_or("TCP"),
        })),
        "last_modification_timestamp": 1703413636133_u64,
    })
}

/// A number as Retell shows it: with the deprecated single-agent fields only when
/// the test asks for them (the first agent of each weighted list).
fn retell_view(number: &Value, legacy: bool) -> Value {
    let mut shown = number.clone();
    if legacy {
        for (list, single) in [
            ("inbound_agents", "inbound_agent_id"),
            ("outbound_agents", "outbound_agent_id"),
        ] {
            shown[single] = number[list][0]["agent_id"].clone();
        }
    }
    shown
}

/// The body of a provider's 5xx.
fn server_error(status: u16, body: Value) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
    )
    .json(body)
}

fn log(state: &mut State, req: &HttpRequest, body: &str) {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or_default();
    state.requests.push(
        format!("{} {path} {body}", req.method())
            .trim_end()
            .to_owned(),
    );
}

fn bearer_is(req: &HttpRequest, key: &str) -> bool {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {key}"))
}

fn twilio_auth_ok(req: &HttpRequest, sid: &str) -> bool {
    let expected = format!(
        "Basic {}",
        STANDARD.encode(format!("{TWILIO_SID}:{TWILIO_SECRET}"))
    );
    sid == TWILIO_SID
        && req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == expected)
}

fn twilio_401() -> HttpResponse {
    HttpResponse::Unauthorized().json(json!({
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }))
}

async fn twilio_list(req: HttpRequest, path: web::Path<String>, state: Shared) -> HttpResponse {
    let sid = path.into_inner();
    if !twilio_auth_ok(&req, &sid) {
        return twilio_401();
    }
    let query: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let get = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse::<usize>().ok())
    };
    let size = get("PageSize").unwrap_or(50).clamp(1, 1000);
    let page = get("Page").unwrap_or(0);
    let (body, delay) = {
        let mut state = state.lock().expect("state");
        log(&mut state, &req, "");
        if let Some(status) = state.twilio_fail {
            return server_error(
                status,
                json!({ "code": 20500, "message": "Internal Server Error", "status": status }),
            );
        }
        let start = page * size;
        let numbers: Vec<Value> = state
            .twilio
            .iter()
            .skip(start)
            .take(size)
            .cloned()
            .collect();
        let last = start + numbers.len() >= state.twilio.len();
        let uri = |p: usize| {
            format!(
                "/2010-04-01/Accounts/{sid}/IncomingPhoneNumbers.json?PageSize={size}&Page={p}&PageToken=PA{}",
                p * size
            )
        };
        let body = if state.malformed_page == Some(page) {
            "{\"incoming_phone_numbers\": [{\"sid\": \"PN".to_owned()
        } else {
            json!({
                "first_page_uri": uri(0),
                "next_page_uri": if last { Value::Null } else { uri(page + 1).into() },
                "previous_page_uri": if page == 0 { Value::Null } else { uri(page - 1).into() },
                "page": page,
                "page_size": size,
                "start": start,
                "end": start + numbers.len().saturating_sub(1),
                "uri": uri(page),
                "incoming_phone_numbers": numbers,
            })
            .to_string()
        };
        let delay = (state.slow_page == Some(page)).then_some(state.slow_for);
        (body, delay)
    };
    if let Some(delay) = delay {
        actix_rt::time::sleep(delay).await;
    }
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body)
}

async fn twilio_update(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<Vec<(String, String)>>,
    state: Shared,
) -> HttpResponse {
    let (sid, pn) = path.into_inner();
    if !twilio_auth_ok(&req, &sid) {
        return twilio_401();
    }
    let mut state = state.lock().expect("state");
    let body = serde_urlencoded::to_string(&form.0).unwrap_or_default();
    log(&mut state, &req, &body);
    if state.refuse_updates || state.refuse_twilio_sid.as_deref() == Some(pn.as_str()) {
        return HttpResponse::BadRequest().json(json!({
            "code": 21452, "message": "This number cannot be updated right now", "status": 400,
        }));
    }
    let Some(number) = state.twilio.iter_mut().find(|n| n["sid"] == pn.as_str()) else {
        return HttpResponse::NotFound().json(json!({
            "code": 20404, "message": format!("The requested resource {pn} was not found"), "status": 404,
        }));
    };
    let nullable = |v: &str| {
        if v.is_empty() {
            Value::Null
        } else {
            v.into()
        }
    };
    for (key, value) in &form.0 {
        match key.as_str() {
            "VoiceMethod" | "StatusCallbackMethod"
                if !["GET", "POST"].contains(&value.as_str()) =>
            {
                return HttpResponse::BadRequest().json(json!({
                    "code": 21211, "message": format!("{key} must be GET or POST"), "status": 400,
                }));
            }
            "VoiceUrl" => number["voice_url"] = value.clone().into(),
            "VoiceMethod" => number["voice_method"] = value.clone().into(),
            "StatusCallback" => number["status_callback"] = value.clone().into(),
            "StatusCallbackMethod" => number["status_callback_method"] = value.clone().into(),
            "FriendlyName" => number["friendly_name"] = value.clone().into(),
            // Setting one of the two deletes the other.
            "VoiceApplicationSid" => {
                number["voice_application_sid"] = nullable(value);
                if !value.is_empty() {
                    number["trunk_sid"] = Value::Null;
                }
            }
            "TrunkSid" => {
                number["trunk_sid"] = nullable(value);
                if !value.is_empty() {
                    number["voice_application_sid"] = Value::Null;
                }
            }
            _ => {}
        }
    }
    HttpResponse::Ok().json(number.clone())
}

async fn twilio_fetch(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: Shared,
) -> HttpResponse {
    let (sid, pn) = path.into_inner();
    if !twilio_auth_ok(&req, &sid) {
        return twilio_401();
    }
    let mut state = state.lock().expect("state");
    log(&mut state, &req, "");
    match state.twilio.iter().find(|n| n["sid"] == pn.as_str()) {
        Some(number) => HttpResponse::Ok().json(number.clone()),
        None => HttpResponse::NotFound().json(json!({
            "code": 20404, "message": format!("The requested resource {pn} was not found"), "status": 404,
        })),
    }
}

fn vapi_401() -> HttpResponse {
    HttpResponse::Unauthorized().json(json!({
        "message": "Invalid Key. Hot tip, you may be using the private key instead of the public key, or vice versa.",
        "error": "Unauthorized",
        "statusCode": 401,
    }))
}

async fn vapi_list(req: HttpRequest, state: Shared) -> HttpResponse {
    if !bearer_is(&req, VAPI_KEY) {
        return vapi_401();
    }
    let query: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let limit = match param("limit").map(|v| v.parse::<f64>()) {
        None => 100,
        Some(Ok(n)) if (0.0..=1000.0).contains(&n) => n as usize,
        Some(_) => {
            return HttpResponse::BadRequest().json(json!({
                "message": ["limit must not be greater than 1000"],
                "error": "Bad Request",
                "statusCode": 400,
            }))
        }
    };
    let mut state = state.lock().expect("state");
    log(&mut state, &req, "");
    if let Some(status) = state.vapi_fail {
        return server_error(
            status,
            json!({ "message": "Internal server error", "statusCode": status }),
        );
    }
    // ISO 8601 instants of one format compare as text.
    type Keep = fn(&str, &str) -> bool;
    let filters: Vec<(String, Keep)> = [
        (
            "createdAtGt",
            (|a: &str, b: &str| a > b) as fn(&str, &str) -> bool,
        ),
        ("createdAtGe", |a, b| a >= b),
        ("createdAtLt", |a, b| a < b),
        ("createdAtLe", |a, b| a <= b),
    ]
    .into_iter()
    .filter_map(|(name, keep)| param(name).map(|v| (v, keep)))
    .collect();
    let mut numbers: Vec<Value> = state
        .vapi
        .iter()
        .filter(|n| {
            let at = n["createdAt"].as_str().unwrap_or_default();
            filters.iter().all(|(bound, keep)| keep(at, bound))
        })
        .cloned()
        .collect();
    let key = |n: &Value, field: &str| n[field].as_str().unwrap_or_default().to_owned();
    match state.vapi_order {
        // Within one instant, the order of insertion (stable sort).
        VapiOrder::NewestFirst => numbers.sort_by_key(|n| std::cmp::Reverse(key(n, "createdAt"))),
        VapiOrder::OldestFirst => numbers.sort_by_key(|n| key(n, "createdAt")),
        VapiOrder::ById => numbers.sort_by_key(|n| key(n, "id")),
    }
    numbers.truncate(limit);
    HttpResponse::Ok().json(numbers)
}

async fn vapi_update(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<Value>,
    state: Shared,
) -> HttpResponse {
    if !bearer_is(&req, VAPI_KEY) {
        return vapi_401();
    }
    let mut state = state.lock().expect("state");
    log(&mut state, &req, &body.to_string());
    if state.refuse_updates {
        return HttpResponse::BadRequest().json(json!({
            "message": "Couldn't Find Assistant",
            "error": "Bad Request",
            "statusCode": 400,
        }));
    }
    let id = path.into_inner();
    let Some(number) = state.vapi.iter_mut().find(|n| n["id"] == id.as_str()) else {
        return HttpResponse::NotFound().json(json!({ "message": "Not Found", "statusCode": 404 }));
    };
    if let Some(assistant) = body.get("assistantId") {
        number["assistantId"] = assistant.clone();
    }
    HttpResponse::Ok().json(number.clone())
}

fn retell_401() -> HttpResponse {
    HttpResponse::Unauthorized().json(json!({ "status": "error", "message": "Invalid API key" }))
}

async fn retell_list(req: HttpRequest, state: Shared) -> HttpResponse {
    if !bearer_is(&req, RETELL_KEY) {
        return retell_401();
    }
    let query: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let limit = match param("limit").map(|v| v.parse::<usize>()) {
        None => 1000,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        Some(_) => {
            return HttpResponse::BadRequest()
                .json(json!({ "status": "error", "message": "limit must be between 1 and 1000" }))
        }
    };
    let mut state = state.lock().expect("state");
    log(&mut state, &req, "");
    if let Some(status) = state.retell_fail {
        return server_error(
            status,
            json!({ "status": "error", "message": "Internal server error" }),
        );
    }
    let mut numbers: Vec<Value> = state.retell.clone();
    numbers.sort_by_key(|n| n["phone_number"].as_str().unwrap_or_default().to_owned());
    if param("sort_order").as_deref() == Some("descending") {
        numbers.reverse();
    }
    // The key is the last number of the previous page, exclusive.
    let start = match param("pagination_key") {
        None => 0,
        Some(key) => match numbers
            .iter()
            .position(|n| n["phone_number"] == key.as_str())
        {
            Some(i) => i + 1,
            None => {
                return HttpResponse::BadRequest()
                    .json(json!({ "status": "error", "message": "invalid pagination_key" }))
            }
        },
    };
    let items: Vec<Value> = numbers
        .iter()
        .skip(start)
        .take(limit)
        .map(|n| retell_view(n, state.retell_legacy_fields))
        .collect();
    let has_more = start + items.len() < numbers.len();
    let next = items.last().map(|n| n["phone_number"].clone());
    let key = match state.retell_paging {
        RetellPaging::Correct => next.unwrap_or(Value::Null),
        RetellPaging::MissingKey => Value::Null,
        RetellPaging::RepeatedKey => numbers
            .get(limit.saturating_sub(1))
            .map(|n| n["phone_number"].clone())
            .unwrap_or(Value::Null),
    };
    let mut body = json!({ "items": items, "has_more": has_more });
    if has_more && !key.is_null() {
        body["pagination_key"] = key;
    }
    HttpResponse::Ok().json(body)
}

/// A weighted agent list as Retell checks it: `null`, or entries with an
/// `agent_id` whose weights add up to 1.
fn weighted_agents_ok(list: &Value) -> bool {
    match list {
        Value::Null => true,
        Value::Array(agents) => {
            let total: f64 = agents.iter().filter_map(|a| a["weight"].as_f64()).sum();
            agents.iter().all(|a| {
                a["agent_id"].as_str().is_some_and(|id| !id.is_empty()) && a["weight"].is_number()
            }) && (agents.is_empty() || (total - 1.0).abs() < 1e-9)
        }
        _ => false,
    }
}

async fn retell_update(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<Value>,
    state: Shared,
) -> HttpResponse {
    if !bearer_is(&req, RETELL_KEY) {
        return retell_401();
    }
    let mut state = state.lock().expect("state");
    log(&mut state, &req, &body.to_string());
    for legacy in ["inbound_agent_id", "outbound_agent_id"] {
        if body.get(legacy).is_some() {
            return HttpResponse::BadRequest().json(json!({
                "status": "error",
                "message": format!("{legacy} is no longer supported: use inbound_agents / outbound_agents"),
            }));
        }
    }
    for list in ["inbound_agents", "outbound_agents"] {
        if body.get(list).is_some_and(|l| !weighted_agents_ok(l)) {
            return HttpResponse::BadRequest().json(json!({
                "status": "error",
                "message": format!("{list}: every entry needs an agent_id, and the weights must add up to 1"),
            }));
        }
    }
    if state.refuse_updates {
        return HttpResponse::BadRequest()
            .json(json!({ "status": "error", "message": "agent not found" }));
    }
    let number = path.into_inner();
    let legacy = state.retell_legacy_fields;
    let Some(entry) = state
        .retell
        .iter_mut()
        .find(|n| n["phone_number"] == number.as_str())
    else {
        return HttpResponse::NotFound()
            .json(json!({ "status": "error", "message": "phone number not found" }));
    };
    for key in ["inbound_agents", "outbound_agents", "nickname"] {
        if let Some(value) = body.get(key) {
            entry[key] = value.clone();
        }
    }
    HttpResponse::Ok().json(retell_view(entry, legacy))
}

async fn retell_import(req: HttpRequest, body: web::Json<Value>, state: Shared) -> HttpResponse {
    if !bearer_is(&req, RETELL_KEY) {
        return retell_401();
    }
    let mut state = state.lock().expect("state");
    let mut logged = body.clone();
    if logged.get("sip_trunk_auth_password").is_some() {
        logged["sip_trunk_auth_password"] = "<password>".into();
    }
    log(&mut state, &req, &logged.to_string());
    let (Some(number), Some(uri)) = (
        body["phone_number"].as_str(),
        body["termination_uri"].as_str(),
    ) else {
        return HttpResponse::BadRequest().json(
            json!({ "status": "error", "message": "phone_number and termination_uri are required" }),
        );
    };
    // "If omitted, default is true": Retell skips E.164 validation by default.
    let validate = body["ignore_e164_validation"] == false;
    let e164_like = number.starts_with('+')
        && number.len() > 7
        && number[1..].bytes().all(|b| b.is_ascii_digit());
    if validate && !e164_like {
        return HttpResponse::BadRequest().json(
            json!({ "status": "error", "message": "phone_number is not a valid E.164 number" }),
        );
    }
    if let Some(password) = body["sip_trunk_auth_password"].as_str() {
        state.retell_passwords.push(password.to_owned());
    }
    let entry = retell_number(
        number,
        body["nickname"].as_str(),
        Some(uri),
        body["sip_trunk_auth_username"].as_str(),
        body["transport"].as_str(),
    );
    state.retell.push(entry.clone());
    let legacy = state.retell_legacy_fields;
    HttpResponse::Created().json(retell_view(&entry, legacy))
}
