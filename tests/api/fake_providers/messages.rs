//! The fake Twilio's Message resource, written from Twilio's current docs
//! ("Create a Message resource",
//! https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource;
//! twilio/twilio-python `twilio/rest/api/v2010/account/message/__init__.py` for
//! the field names):
//!
//! - `POST /2010-04-01/Accounts/{AC}/Messages.json` (form): Basic auth (401, code
//!   20003, https://www.twilio.com/docs/api/errors/20003, otherwise); `To`
//!   required and E.164 (400, code 21211 "Invalid 'To' Phone Number",
//!   https://www.twilio.com/docs/api/errors/21211), `From` E.164 (400, 21212),
//!   `Body` required (400, 21602) and at most 1,600 characters (400, 21617); a
//!   `To` that replied STOP ([`Messages::unsubscribed`]) is 400, code 21610
//!   "Attempt to send to unsubscribed recipient"
//!   (https://www.twilio.com/docs/api/errors/21610). Otherwise `201` with the
//!   Message resource: `sid` `SM…`, `status` `queued`, `direction`
//!   `outbound-api`, `num_segments`, `price` null until sent.
//! - Status callbacks ([`FakeProvider::send_message_status`]): a signed
//!   `POST` of `MessageSid`, `MessageStatus` (and the legacy `SmsSid`,
//!   `SmsStatus`), `AccountSid`, `From`, `To`, `ApiVersion`, and `ErrorCode`
//!   on `failed`/`undelivered`, to the create's `StatusCallback`, as Twilio
//!   sends them (https://www.twilio.com/docs/messaging/guides/track-outbound-message-status).
//!
//! - `GET /2010-04-01/Accounts/{AC}/Messages.json` ("Read multiple Message
//!   resources",
//!   https://www.twilio.com/docs/messaging/api/message-resource#read-multiple-message-resources):
//!   Basic auth; the `To` and `From` filters, most recent first, in pages of
//!   `PageSize` (default 50, at most 1,000) with a relative `next_page_uri` that
//!   keeps the filters (`null` on the last page), as twilio-python's `Page` reads it.
//!
//! Failure modes tests script in [`Messages::faults`], one per create request in
//! order, before the normal answer: a 5xx with Twilio's error body (nothing
//! created; Twilio's 500s are `{"code": 20500, …}`), or a hang (the message *is*
//! created and `201` comes only after the wait: the client's "no answer in
//! time" case). [`Messages::list_faults`] do the same to list requests (a hang
//! there answers the list late).

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::calls::{deliver, is_e164, list_page, param, rfc2822, twilio_error, ListRequest};
use super::TWILIO_SID;
use super::{log, server_error, twilio_401, twilio_auth_ok, FakeProvider, Shared};

/// Twilio's limit on `Body`, in characters.
const MAX_BODY_CHARS: usize = 1600;

/// The Message resource's state, and what tests switch on.
#[derive(Default)]
pub struct Messages {
    /// Messages created, oldest first.
    pub messages: Vec<Value>,
    /// The form of every authenticated create request, in order, whatever its
    /// answer.
    pub creates: Vec<Vec<(String, String)>>,
    /// Recipients that replied STOP: a create to them is 400, code 21610.
    pub unsubscribed: HashSet<String>,
    /// What the next create requests meet, one each, before normal answers.
    pub faults: VecDeque<Fault>,
    /// What the next list requests meet, one each.
    pub list_faults: VecDeque<Fault>,
    /// List requests that came (authenticated).
    pub lists: usize,
    next_sid: u64,
}

/// A scripted answer to one create request.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// This 5xx, with Twilio's error body; nothing is created.
    Status(u16),
    /// The message is created, and `201` comes after this long.
    Hang(Duration),
}

pub(super) fn routes(app: &mut web::ServiceConfig) {
    app.route(
        "/2010-04-01/Accounts/{sid}/Messages.json",
        web::post().to(create),
    )
    .route(
        "/2010-04-01/Accounts/{sid}/Messages.json",
        web::get().to(list),
    );
}

/// Twilio's 500 with its error body.
fn twilio_500(status: u16) -> HttpResponse {
    server_error(
        status,
        json!({
            "code": 20500,
            "message": "An internal server error has occurred",
            "more_info": "https://www.twilio.com/docs/errors/20500",
            "status": status,
        }),
    )
}

async fn list(req: HttpRequest, path: web::Path<String>, state: Shared) -> HttpResponse {
    let sid = path.into_inner();
    let Some(ListRequest { query, page, size }) = ListRequest::read(&req, &sid) else {
        return twilio_401();
    };
    let (to, from) = (param(&query, "To"), param(&query, "From"));
    let (body, hang) = {
        let mut state = state.lock().expect("state");
        log(&mut state, &req, "");
        let messages = &mut state.messages;
        messages.lists += 1;
        let hang = match messages.list_faults.pop_front() {
            Some(Fault::Status(status)) => return twilio_500(status),
            Some(Fault::Hang(wait)) => Some(wait),
            None => None,
        };
        // Most recent first: the fake creates them in time order.
        let matching: Vec<Value> = messages
            .messages
            .iter()
            .rev()
            .filter(|m| to.is_none_or(|to| m["to"] == to))
            .filter(|m| from.is_none_or(|from| m["from"] == from))
            .cloned()
            .collect();
        let body = list_page(
            &format!("/2010-04-01/Accounts/{sid}/Messages.json"),
            "messages",
            &matching,
            &query,
            &["To", "From"],
            (page, size),
        );
        (body, hang)
    };
    if let Some(wait) = hang {
        actix_rt::time::sleep(wait).await;
    }
    HttpResponse::Ok().json(body)
}

/// A Message resource as Twilio answers a create (twilio-python's
/// `MessageInstance`).
fn message_resource(sid: &str, form: &[(String, String)], at: OffsetDateTime) -> Value {
    let body = param(form, "Body").unwrap_or_default();
    let segments = body.chars().count().div_ceil(153).max(1);
    json!({
        "account_sid": TWILIO_SID,
        "api_version": "2010-04-01",
        "body": body,
        "date_created": rfc2822(at),
        "date_sent": null,
        "date_updated": rfc2822(at),
        "direction": "outbound-api",
        "error_code": null,
        "error_message": null,
        "from": param(form, "From"),
        "messaging_service_sid": null,
        "num_media": "0",
        "num_segments": segments.to_string(),
        "price": null,
        "price_unit": "USD",
        "sid": sid,
        "status": "queued",
        "subresource_uris": {
            "media": format!("/2010-04-01/Accounts/{TWILIO_SID}/Messages/{sid}/Media.json"),
            "feedback": format!("/2010-04-01/Accounts/{TWILIO_SID}/Messages/{sid}/Feedback.json"),
        },
        "to": param(form, "To"),
        "uri": format!("/2010-04-01/Accounts/{TWILIO_SID}/Messages/{sid}.json"),
    })
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
    let (message, hang) = {
        let mut state = state.lock().expect("state");
        let body = serde_urlencoded::to_string(&form).unwrap_or_default();
        log(&mut state, &req, &body);
        let messages = &mut state.messages;
        messages.creates.push(form.clone());
        let to = param(&form, "To").unwrap_or_default().to_owned();
        let from = param(&form, "From").unwrap_or_default();
        let text = param(&form, "Body").unwrap_or_default();
        if !is_e164(&to) {
            return twilio_error(400, 21211, &format!("Invalid 'To' Phone Number: {to}"));
        }
        if !is_e164(from) {
            return twilio_error(400, 21212, &format!("Invalid 'From' Phone Number: {from}"));
        }
        if text.is_empty() {
            return twilio_error(400, 21602, "Message body is required.");
        }
        if text.chars().count() > MAX_BODY_CHARS {
            return twilio_error(
                400,
                21617,
                "The concatenated message body exceeds the 1600 character limit.",
            );
        }
        if messages.unsubscribed.contains(&to) {
            return twilio_error(400, 21610, "Attempt to send to unsubscribed recipient");
        }
        let hang = match messages.faults.pop_front() {
            Some(Fault::Status(status)) => return twilio_500(status),
            Some(Fault::Hang(wait)) => Some(wait),
            None => None,
        };
        messages.next_sid += 1;
        let sid = format!("SM{:032x}", messages.next_sid);
        let message = message_resource(&sid, &form, OffsetDateTime::now_utc());
        messages.messages.push(message.clone());
        (message, hang)
    };
    if let Some(wait) = hang {
        actix_rt::time::sleep(wait).await;
    }
    HttpResponse::Created().json(message)
}

impl FakeProvider {
    /// The Messages created so far.
    pub fn messages(&self) -> Vec<Value> {
        self.state().messages.messages.clone()
    }

    /// How many create requests (authenticated) came, whatever their answer.
    pub fn message_creates(&self) -> usize {
        self.state().messages.creates.len()
    }

    /// How many list requests (authenticated) came.
    pub fn message_lists(&self) -> usize {
        self.state().messages.lists
    }

    /// Message `sid` moves to `status` (`sent`, `delivered`, `undelivered`,
    /// `failed`, with `error_code` for the last two): the signed status
    /// callback goes to the create's `StatusCallback`; the engine's answer
    /// status.
    pub async fn send_message_status(
        &self,
        sid: &str,
        status: &str,
        error_code: Option<&str>,
    ) -> u16 {
        let (url, mut params) = {
            let mut state = self.state();
            let messages = &mut state.messages;
            let message = messages
                .messages
                .iter_mut()
                .find(|m| m["sid"] == sid)
                .expect("a message of the fake");
            message["status"] = status.into();
            message["error_code"] = error_code.map_or(Value::Null, |c| c.into());
            let creates = &messages.creates;
            let url = creates
                .iter()
                .rev()
                .find(|f| {
                    param(f, "To") == message["to"].as_str()
                        && param(f, "Body") == message["body"].as_str()
                })
                .and_then(|f| param(f, "StatusCallback"))
                .expect("the message was created with a StatusCallback")
                .to_owned();
            let params: Vec<(String, String)> = [
                ("AccountSid", TWILIO_SID),
                ("ApiVersion", "2010-04-01"),
                ("From", message["from"].as_str().unwrap_or_default()),
                ("MessageSid", sid),
                ("MessageStatus", status),
                ("SmsSid", sid),
                ("SmsStatus", status),
                ("To", message["to"].as_str().unwrap_or_default()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
            (url, params)
        };
        if let Some(code) = error_code {
            params.push(("ErrorCode".into(), code.into()));
        }
        deliver(&self.state, url, params).await;
        let state = self.state();
        state.calls.deliveries.last().map_or(0, |d| d.status)
    }
}
