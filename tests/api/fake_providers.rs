//! Fake Twilio, Vapi and Retell: one actix-web server on port 0 that speaks each
//! provider's documented phone-number JSON — Twilio's IncomingPhoneNumbers pages
//! (`next_page_uri`, relative), Vapi's `GET /phone-number` (newest first, paged by
//! `createdAtLt`) and `PATCH /phone-number/{id}`, Retell's `list-phone-numbers`,
//! `update-phone-number/{n}` and `import-phone-number` — with each one's auth
//! (Basic for Twilio, Bearer keys for Vapi and Retell) and error bodies. Tests
//! turn on failures (a malformed page, a page that never comes in time, refusals)
//! and read the requests it received.

use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use secrecy::SecretString;
use serde_json::{json, Value};
use switchboard::config::AccountSettings;

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
    /// `METHOD path body`, in order.
    pub requests: Vec<String>,
    /// Passwords Retell was given on import (to check they went to Retell only).
    pub retell_passwords: Vec<String>,
    /// Vapi's createdAt clock.
    vapi_clock: u64,
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
                .route("/phone-number", web::get().to(vapi_list))
                .route("/phone-number/{id}", web::patch().to(vapi_update))
                .route("/list-phone-numbers", web::get().to(retell_list))
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
            "status_callback": "",
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
        let mut state = self.state();
        state.vapi_clock += 1;
        let created = format!(
            "2024-01-01T00:{:02}:{:02}.000Z",
            state.vapi_clock / 60,
            state.vapi_clock % 60
        );
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
            .push(retell_number(e164, Some(nickname), None, None));
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
        provider: provider.into(),
        workspace: workspace.into(),
        api_base: fake.base.clone(),
        account_sid: TWILIO_SID.into(),
        secret_env: String::new(),
        secret: Some(SecretString::from(secret)),
    }
}

fn retell_number(
    e164: &str,
    nickname: Option<&str>,
    termination_uri: Option<&str>,
    user: Option<&str>,
) -> Value {
    let digits = &e164[2..];
    json!({
        "phone_number": e164,
        "phone_number_type": if termination_uri.is_some() { "custom" } else { "retell-twilio" },
        "phone_number_pretty": format!("+1 ({}) {}-{}", &digits[..3], &digits[3..6], &digits[6..]),
        "inbound_agent_id": null,
        "outbound_agent_id": null,
        "inbound_agent_version": null,
        "outbound_agent_version": null,
        "area_code": digits[..3].parse::<u32>().unwrap_or(0),
        "nickname": nickname,
        "inbound_webhook_url": null,
        "termination_uri": termination_uri,
        "sip_trunk_auth_username": user,
        "last_modification_timestamp": 1703413636133_u64,
    })
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
    if state.refuse_updates {
        return HttpResponse::BadRequest().json(json!({
            "code": 21452, "message": "This number cannot be updated right now", "status": 400,
        }));
    }
    let Some(number) = state.twilio.iter_mut().find(|n| n["sid"] == pn.as_str()) else {
        return HttpResponse::NotFound().json(json!({
            "code": 20404, "message": format!("The requested resource {pn} was not found"), "status": 404,
        }));
    };
    for (key, value) in &form.0 {
        match key.as_str() {
            "VoiceUrl" => number["voice_url"] = value.clone().into(),
            "VoiceMethod" => number["voice_method"] = value.clone().into(),
            "FriendlyName" => number["friendly_name"] = value.clone().into(),
            _ => {}
        }
    }
    HttpResponse::Ok().json(number.clone())
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
    let limit = query
        .iter()
        .find(|(k, _)| k == "limit")
        .and_then(|(_, v)| v.parse::<f64>().ok())
        .unwrap_or(100.0) as usize;
    let before = query
        .iter()
        .find(|(k, _)| k == "createdAtLt")
        .map(|(_, v)| v.clone());
    let mut state = state.lock().expect("state");
    log(&mut state, &req, "");
    let mut numbers: Vec<Value> = state
        .vapi
        .iter()
        .filter(|n| {
            before
                .as_deref()
                .is_none_or(|b| n["createdAt"].as_str().unwrap_or_default() < b)
        })
        .cloned()
        .collect();
    numbers.sort_by(|a, b| b["createdAt"].as_str().cmp(&a["createdAt"].as_str()));
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
    let mut state = state.lock().expect("state");
    log(&mut state, &req, "");
    HttpResponse::Ok().json(state.retell.clone())
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
    if state.refuse_updates {
        return HttpResponse::BadRequest()
            .json(json!({ "status": "error", "message": "agent not found" }));
    }
    let number = path.into_inner();
    let Some(entry) = state
        .retell
        .iter_mut()
        .find(|n| n["phone_number"] == number.as_str())
    else {
        return HttpResponse::NotFound()
            .json(json!({ "status": "error", "message": "phone number not found" }));
    };
    for key in ["inbound_agent_id", "outbound_agent_id", "nickname"] {
        if let Some(value) = body.get(key) {
            entry[key] = value.clone();
        }
    }
    HttpResponse::Ok().json(entry.clone())
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
    if let Some(password) = body["sip_trunk_auth_password"].as_str() {
        state.retell_passwords.push(password.to_owned());
    }
    let entry = retell_number(
        number,
        body["nickname"].as_str(),
        Some(uri),
        body["sip_trunk_auth_username"].as_str(),
    );
    state.retell.push(entry.clone());
    HttpResponse::Created().json(entry)
}
