//! Twilio's Call resource (https://www.twilio.com/docs/voice/api/call-resource;
//! twilio/twilio-python `twilio/rest/api/v2010/account/call/__init__.py`), on the
//! same [`TwilioClient`] as the numbers (base URL `TWILIO_API_BASE` /
//! `twilio.api_base`, Basic auth with the account SID and auth token):
//!
//! - [`TwilioClient::create_call`]: `POST /2010-04-01/Accounts/{AC}/Calls.json`,
//!   form-encoded with the SDK's parameter names (`StatusCallbackEvent` repeated
//!   once per event), answered `201` with the call;
//! - [`TwilioClient::list_calls_to`]: `GET …/Calls.json?To=…&StartTime>=…`,
//!   every page (`next_page_uri`, relative to the API base);
//! - [`TwilioClient::fetch_call`]: `GET …/Calls/{CA}.json` (status, price,
//!   duration, `answered_by`).
//!
//! Every request has `outbound.dial_timeout_secs` and fails with a [`DialError`],
//! which says what the failure tells about the call: refused (surely not created),
//! unknown (it may exist) or not sent (surely not created).

use std::fmt::Display;
use std::str::FromStr;

use secrecy::SecretString;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;

use super::{TwilioClient, MAX_PAGE_SIZE};
use crate::domain::url::path_segment;
use crate::providers::{error_message, http_client, without_url, Http};

/// How a request to the Calls resource failed, by what that says about the call.
///
/// This is the heart of dialing exactly once. After a create:
/// - [`DialError::Refused`]: Twilio answered and created nothing. Dialing again
///   cannot make a second call, but it would be refused again unless the reason
///   (`code`) went away: 20003 bad credentials, 21216 a blocked destination,
///   21215 geographic permissions, 20429 too many requests.
/// - [`DialError::Unknown`]: the request was sent and no answer says what became
///   of it (no answer within `outbound.dial_timeout_secs`, a 5xx, the connection
///   dropped after the request went out, a 2xx that could not be read). The call
///   may exist and ring: it must be reconciled (a status callback carrying the
///   attempt, or [`TwilioClient::list_calls_to`]) before any new dial.
/// - [`DialError::Transport`]: no connection was made (refused, DNS, TLS, connect
///   timeout), so nothing was sent and no call exists: dialing again is safe.
///
/// For a list or a fetch, `Refused` and `Transport` mean the same, and `Unknown`
/// only that nothing was learned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialError {
    /// A 4xx with Twilio's error body `{code, message, more_info, status}`.
    #[error("Twilio refused: HTTP {status}, code {code:?}: {message}")]
    Refused {
        status: u16,
        /// Twilio's error code (https://www.twilio.com/docs/api/errors), when the
        /// body had one.
        code: Option<u32>,
        message: String,
    },
    #[error("Twilio's answer is unknown (the call may exist): {detail}")]
    Unknown { detail: String },
    #[error("Twilio was not reached (nothing was sent): {detail}")]
    Transport { detail: String },
}

/// Twilio's error body.
#[derive(Deserialize)]
struct TwilioError {
    #[serde(default)]
    code: Option<u32>,
    #[serde(default)]
    message: Option<String>,
}

/// A call status callback event Twilio can send (`StatusCallbackEvent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEvent {
    Initiated,
    Ringing,
    Answered,
    Completed,
}

impl CallEvent {
    pub const ALL: [CallEvent; 4] = [
        CallEvent::Initiated,
        CallEvent::Ringing,
        CallEvent::Answered,
        CallEvent::Completed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CallEvent::Initiated => "initiated",
            CallEvent::Ringing => "ringing",
            CallEvent::Answered => "answered",
            CallEvent::Completed => "completed",
        }
    }
}

/// `MachineDetection`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmdMode {
    /// The verdict as soon as Twilio knows who answered.
    Enable,
    /// For a machine, waits for the end of the greeting (to leave a message).
    DetectMessageEnd,
}

/// Answering machine detection (https://www.twilio.com/docs/voice/answering-machine-detection):
/// `MachineDetection`, and with a callback `AsyncAmd=true`: the call goes on
/// while detection runs, and the verdict is POSTed to `async_callback`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineDetection {
    pub mode: AmdMode,
    pub async_callback: Option<String>,
}

/// What [`TwilioClient::create_call`] asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateCall {
    /// E.164.
    pub to: String,
    /// A number of the account, E.164.
    pub from: String,
    /// Where Twilio fetches the call's TwiML (by POST) once it is answered.
    pub url: String,
    /// Where Twilio POSTs `status_callback_events`.
    pub status_callback: String,
    pub status_callback_events: Vec<CallEvent>,
    pub machine_detection: Option<MachineDetection>,
    /// Seconds to let it ring (`Timeout`).
    pub timeout_secs: u32,
    /// The longest the call may last, in seconds (`TimeLimit`).
    pub time_limit_secs: u32,
    /// DTMF digits played once the call is answered (`SendDigits`; `w` waits
    /// half a second).
    pub send_digits: Option<String>,
    /// Record the call from the start (`Record=true`; Twilio's "Create a Call"
    /// parameter, https://www.twilio.com/docs/voice/api/call-resource#create-a-call-resource).
    pub record: bool,
}

impl CreateCall {
    /// The form, in twilio-python's order.
    pub fn form(&self) -> Vec<(&'static str, String)> {
        let mut form = vec![
            ("To", self.to.clone()),
            ("From", self.from.clone()),
            ("Method", "POST".to_owned()),
            ("StatusCallback", self.status_callback.clone()),
        ];
        for event in &self.status_callback_events {
            form.push(("StatusCallbackEvent", event.as_str().to_owned()));
        }
        form.push(("StatusCallbackMethod", "POST".to_owned()));
        if let Some(digits) = &self.send_digits {
            form.push(("SendDigits", digits.clone()));
        }
        form.push(("Timeout", self.timeout_secs.to_string()));
        if let Some(amd) = &self.machine_detection {
            let mode = match amd.mode {
                AmdMode::Enable => "Enable",
                AmdMode::DetectMessageEnd => "DetectMessageEnd",
            };
            form.push(("MachineDetection", mode.to_owned()));
            if let Some(callback) = &amd.async_callback {
                form.push(("AsyncAmd", "true".to_owned()));
                form.push(("AsyncAmdStatusCallback", callback.clone()));
                form.push(("AsyncAmdStatusCallbackMethod", "POST".to_owned()));
            }
        }
        if self.record {
            form.push(("Record", "true".to_owned()));
        }
        form.push(("TimeLimit", self.time_limit_secs.to_string()));
        form.push(("Url", self.url.clone()));
        form
    }
}

/// A Recording resource, the fields the engine reads
/// (https://www.twilio.com/docs/voice/api/recording#recording-properties).
#[derive(Debug, Clone, Deserialize)]
pub struct Recording {
    /// `RE…`.
    pub sid: String,
    #[serde(default)]
    pub call_sid: Option<String>,
    /// `in-progress` once started.
    #[serde(default)]
    pub status: Option<String>,
}

/// A call's `status` (twilio-python's `CallInstance.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallStatus {
    Queued,
    Ringing,
    InProgress,
    Completed,
    Busy,
    Failed,
    NoAnswer,
    Canceled,
}

impl CallStatus {
    /// Whether the call is over.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            CallStatus::Completed
                | CallStatus::Busy
                | CallStatus::Failed
                | CallStatus::NoAnswer
                | CallStatus::Canceled
        )
    }
}

/// Who answered, by answering machine detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnsweredBy {
    Human,
    MachineStart,
    MachineEndBeep,
    MachineEndSilence,
    MachineEndOther,
    Fax,
    Unknown,
}

/// A call as Twilio shows it (the fields switchboard reads).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Call {
    /// `CA…`.
    pub sid: String,
    pub status: CallStatus,
    pub to: String,
    pub from: String,
    /// RFC 2822; empty until the call is dialed.
    #[serde(default, deserialize_with = "non_empty")]
    pub start_time: Option<String>,
    /// What Twilio charged, in `price_unit`, as Twilio writes it (a charge is
    /// negative: `-0.01400`); unset until some time after the call ended.
    #[serde(default, deserialize_with = "text_number")]
    pub price: Option<f64>,
    #[serde(default, deserialize_with = "non_empty")]
    pub price_unit: Option<String>,
    /// Seconds; unset for calls not answered or not over.
    #[serde(default, deserialize_with = "text_number")]
    pub duration: Option<u32>,
    /// Set when the call was placed with machine detection.
    #[serde(default, deserialize_with = "answered_by")]
    pub answered_by: Option<AnsweredBy>,
}

#[derive(Deserialize)]
struct CallPage {
    calls: Vec<Call>,
    #[serde(default)]
    next_page_uri: Option<String>,
}

/// Twilio writes an unset field as `null` or `""`.
fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|v| !v.is_empty()))
}

/// A number Twilio writes as text (`"-0.01400"`, `"42"`), or as a number.
fn text_number<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr + Deserialize<'de>,
    T::Err: Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw<T> {
        Number(T),
        Text(String),
    }
    match Option::<Raw<T>>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Number(n)) => Ok(Some(n)),
        Some(Raw::Text(t)) if t.is_empty() => Ok(None),
        Some(Raw::Text(t)) => t.parse().map(Some).map_err(D::Error::custom),
    }
}

fn answered_by<'de, D: Deserializer<'de>>(d: D) -> Result<Option<AnsweredBy>, D::Error> {
    non_empty(d)?
        .map(|v| AnsweredBy::deserialize(serde::de::value::StrDeserializer::<D::Error>::new(&v)))
        .transpose()
}

impl TwilioClient {
    /// The client of the `[twilio]` account (`TWILIO_ACCOUNT_SID`,
    /// `TWILIO_AUTH_TOKEN`, `TWILIO_API_BASE`) for placing calls: every request
    /// gives up after `outbound.dial_timeout_secs`, and redirects are not
    /// followed (a redirected POST would turn into a GET). `None` without
    /// credentials.
    pub fn for_calls(settings: &crate::config::Settings) -> anyhow::Result<Option<TwilioClient>> {
        use anyhow::Context as _;
        let twilio = &settings.twilio;
        let (false, Some(token)) = (twilio.account_sid.is_empty(), &twilio.auth_token) else {
            return Ok(None);
        };
        let timeout = settings.outbound.dial_timeout;
        let client = http_client(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("building the Twilio calls HTTP client")?;
        let http = Http {
            client,
            account: "twilio calls".to_owned(),
            base: twilio.api_base.as_str().trim_end_matches('/').to_owned(),
            timeout,
            page_size: MAX_PAGE_SIZE,
        };
        Ok(Some(TwilioClient::new(
            http,
            twilio.account_sid.clone(),
            SecretString::clone(token),
        )))
    }

    fn calls_url(&self) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/Calls",
            self.http.base, self.account_sid
        )
    }

    /// Places a call. Answers the call Twilio created (`queued`, with its sid);
    /// see [`DialError`] for what each failure means.
    pub async fn create_call(&self, call: &CreateCall) -> Result<Call, DialError> {
        let url = format!("{}.json", self.calls_url());
        self.send_calls(self.request(reqwest::Method::POST, &url).form(&call.form()))
            .await
    }

    /// Every call to `to` that started at or after `started_after` (Twilio's
    /// `StartTime>` filter, which twilio-python writes `%Y-%m-%dT%H:%M:%SZ`), all
    /// pages. A call Twilio has not dialed yet has no start time and may be
    /// missing here; its status callbacks still come.
    pub async fn list_calls_to(
        &self,
        to: &str,
        started_after: OffsetDateTime,
    ) -> Result<Vec<Call>, DialError> {
        let t = started_after.to_offset(time::UtcOffset::UTC);
        let after = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
        let page_size = self.http.page_size.min(MAX_PAGE_SIZE).to_string();
        let query = serde_urlencoded::to_string([
            ("To", to),
            ("StartTime>", after.as_str()),
            ("PageSize", page_size.as_str()),
        ])
        .unwrap_or_default();
        let mut url = format!("{}.json?{query}", self.calls_url());
        let mut calls = Vec::new();
        loop {
            let page: CallPage = self
                .send_calls(self.request(reqwest::Method::GET, &url))
                .await?;
            calls.extend(page.calls);
            match self.next_page(page.next_page_uri) {
                Ok(Some(next)) => url = next,
                Ok(None) => return Ok(calls),
                Err(detail) => return Err(DialError::Unknown { detail }),
            }
        }
    }

    /// One call by its sid.
    pub async fn fetch_call(&self, sid: &str) -> Result<Call, DialError> {
        let url = format!("{}/{}.json", self.calls_url(), path_segment(sid));
        self.send_calls(self.request(reqwest::Method::GET, &url))
            .await
    }

    /// Starts recording call `call_sid` now, both parties (Twilio's "Create a
    /// Recording", `POST …/Calls/{CallSid}/Recordings.json`,
    /// https://www.twilio.com/docs/voice/api/recording#create-a-recording-resource):
    /// `RecordingChannels=dual` keeps the callee and the assistant apart.
    pub async fn start_recording(&self, call_sid: &str) -> Result<Recording, DialError> {
        let url = format!(
            "{}/{}/Recordings.json",
            self.calls_url(),
            path_segment(call_sid)
        );
        let form = [("RecordingChannels", "dual"), ("RecordingTrack", "both")];
        self.send_calls(self.request(reqwest::Method::POST, &url).form(&form))
            .await
    }

    /// Sends `request` with the dial timeout; classifies its failure by whether
    /// Twilio could have acted on it.
    pub(super) async fn send_calls<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, DialError> {
        let response = request
            .timeout(self.http.timeout)
            .send()
            .await
            .map_err(|e| self.not_answered(&e))?;
        let status = response.status();
        let body = response.bytes().await;
        if status.is_client_error() {
            let body = body.unwrap_or_default();
            let error = serde_json::from_slice::<TwilioError>(&body).ok();
            let (code, message) = match error {
                Some(TwilioError {
                    code,
                    message: Some(message),
                }) => (code, message),
                Some(TwilioError { code, .. }) => (code, error_message(&body)),
                None => (None, error_message(&body)),
            };
            return Err(DialError::Refused {
                status: status.as_u16(),
                code,
                message,
            });
        }
        let body = body.map_err(|e| self.not_answered(&e))?;
        if !status.is_success() {
            return Err(DialError::Unknown {
                detail: format!(
                    "{}: HTTP {status}: {}",
                    self.http.account,
                    error_message(&body)
                ),
            });
        }
        serde_json::from_slice(&body).map_err(|e| DialError::Unknown {
            detail: format!("{}: malformed answer: {e}", self.http.account),
        })
    }

    /// A request that got no answer: not sent when no connection was made.
    fn not_answered(&self, err: &reqwest::Error) -> DialError {
        let account = &self.http.account;
        if err.is_connect() || err.is_builder() {
            DialError::Transport {
                detail: format!("{account}: {}", without_url(err)),
            }
        } else if err.is_timeout() {
            DialError::Unknown {
                detail: format!(
                    "{account}: no answer within {} s",
                    self.http.timeout.as_secs_f64()
                ),
            }
        } else {
            DialError::Unknown {
                detail: format!("{account}: {}", without_url(err)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_is_no_calls_client_without_the_account_and_its_token() {
        let mut settings = crate::config::Settings::defaults();
        settings.twilio.auth_token = None;
        settings.twilio.account_sid = "AC1".into();
        assert!(TwilioClient::for_calls(&settings).expect("valid").is_none());
        settings.twilio.auth_token = Some(SecretString::from("token"));
        settings.twilio.account_sid = String::new();
        assert!(TwilioClient::for_calls(&settings).expect("valid").is_none());
        settings.twilio.account_sid = "AC1".into();
        assert!(TwilioClient::for_calls(&settings).expect("valid").is_some());
    }

    #[test]
    fn twilios_text_numbers_and_empty_fields_are_read() {
        let call: Call = serde_json::from_str(
            r#"{"sid":"CA1","status":"completed","to":"+14155550100","from":"+14155550199",
                "start_time":"Thu, 01 Jan 2026 10:00:00 +0000","price":"-0.01400",
                "price_unit":"USD","duration":"42","answered_by":"machine_end_beep"}"#,
        )
        .expect("a call");
        assert_eq!(call.price, Some(-0.014));
        assert_eq!(call.duration, Some(42));
        assert_eq!(call.answered_by, Some(AnsweredBy::MachineEndBeep));
        assert!(call.status.is_final());

        let queued: Call = serde_json::from_str(
            r#"{"sid":"CA2","status":"queued","to":"+1","from":"+2","start_time":null,
                "price":null,"price_unit":"USD","duration":null,"answered_by":""}"#,
        )
        .expect("a queued call");
        assert_eq!(
            (
                queued.start_time,
                queued.price,
                queued.duration,
                queued.answered_by
            ),
            (None, None, None, None)
        );
        assert!(!queued.status.is_final());
    }
}
