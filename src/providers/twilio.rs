//! Twilio's IncomingPhoneNumbers
//! (https://www.twilio.com/docs/phone-numbers/api/incomingphonenumber-resource;
//! twilio/twilio-python `twilio/rest/api/v2010/account/incoming_phone_number/__init__.py`):
//! `GET /2010-04-01/Accounts/{AC}/IncomingPhoneNumbers.json` (pages of up to
//! 1,000, following `next_page_uri`, relative to the API base, until it is null),
//! `GET …/IncomingPhoneNumbers/{PN}.json` and `POST …/IncomingPhoneNumbers/{PN}.json`.
//!
//! Twilio ignores `VoiceUrl` while a number has a `TrunkSid` or a
//! `VoiceApplicationSid` (setting one deletes the other). Pointing a number at
//! switchboard therefore reads the number first, clears whichever of the two it
//! has (a field is cleared by POSTing it empty), sets `VoiceUrl`/`VoiceMethod` and
//! `StatusCallback`/`StatusCallbackMethod`, and hands back what it replaced, so an
//! undo or a rollback restores every one of those fields exactly.
//! Basic auth: account SID and auth token.
//!
//! The same client places and reads calls: [`calls`]; and sends texts: [`messages`].

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{synced, Http, ProviderError};

pub mod calls;
pub mod messages;
use crate::domain::url::path_segment;
use crate::store::pool::{SipTrunk, SyncedNumber, VoiceRouting};

/// Twilio's largest page (`PageSize`), for every list this client reads.
const MAX_PAGE_SIZE: usize = 1000;

#[derive(Clone)]
pub struct TwilioClient {
    pub(crate) http: Http,
    account_sid: String,
    auth_token: SecretString,
}

#[derive(Deserialize)]
struct Page {
    incoming_phone_numbers: Vec<IncomingNumber>,
    #[serde(default)]
    next_page_uri: Option<String>,
}

#[derive(Deserialize)]
struct IncomingNumber {
    sid: String,
    phone_number: String,
    #[serde(default)]
    friendly_name: Option<String>,
    #[serde(default)]
    voice_url: Option<String>,
    #[serde(default)]
    trunk_sid: Option<String>,
    #[serde(default)]
    voice_method: Option<String>,
    #[serde(default)]
    voice_application_sid: Option<String>,
    #[serde(default)]
    status_callback: Option<String>,
    #[serde(default)]
    status_callback_method: Option<String>,
}

/// Twilio writes an unset field as `null` or `""`.
fn set(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

impl IncomingNumber {
    fn routing(&self) -> VoiceRouting {
        VoiceRouting {
            voice_url: set(self.voice_url.clone()),
            voice_method: set(self.voice_method.clone()),
            voice_application_sid: set(self.voice_application_sid.clone()),
            trunk_sid: set(self.trunk_sid.clone()),
            status_callback: set(self.status_callback.clone()),
            status_callback_method: set(self.status_callback_method.clone()),
        }
    }
}

/// Where switchboard wants a number's calls and status callbacks.
pub struct Hooks<'a> {
    pub voice_url: &'a str,
    pub status_callback: &'a str,
}

impl VoiceRouting {
    /// Whether Twilio sends this number's calls and status callbacks (by POST) to
    /// `hooks` and nowhere else.
    pub fn points_at(&self, hooks: &Hooks<'_>) -> bool {
        self.voice_url.as_deref() == Some(hooks.voice_url)
            && self.voice_method.as_deref().is_none_or(|m| m == "POST")
            && self.status_callback.as_deref() == Some(hooks.status_callback)
            && self
                .status_callback_method
                .as_deref()
                .is_none_or(|m| m == "POST")
            && self.voice_application_sid.is_none()
            && self.trunk_sid.is_none()
    }
}
impl TwilioClient {
    pub(crate) fn new(http: Http, account_sid: String, auth_token: SecretString) -> Self {
        Self {
            http,
            account_sid,
            auth_token,
        }
    }

    fn numbers_url(&self) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/IncomingPhoneNumbers",
            self.http.base, self.account_sid
        )
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.http
            .client
            .request(method, url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
    }

    pub(crate) async fn list_numbers(
        &self,
        progress: &mut (dyn FnMut(usize) + Send),
    ) -> Result<Vec<SyncedNumber>, ProviderError> {
        let mut numbers = Vec::new();
        let mut url = format!(
            "{}.json?PageSize={}",
            self.numbers_url(),
            self.http.page_size.min(MAX_PAGE_SIZE)
        );
        loop {
            let page: Page = self
                .http
                .send(self.request(reqwest::Method::GET, &url))
                .await?;
            progress(page.incoming_phone_numbers.len());
            for n in page.incoming_phone_numbers {
                let routing = n.routing();
                let trunk = routing.trunk_sid.clone().map(|trunk_sid| SipTrunk {
                    trunk_sid: Some(trunk_sid),
                    ..SipTrunk::default()
                });
                let mut number = synced(
                    n.sid,
                    &n.phone_number,
                    n.friendly_name,
                    n.voice_url,
                    None,
                    trunk,
                );
                number.twilio = routing.voice();
                numbers.push(number);
            }
            match self.next_page(page.next_page_uri) {
                Ok(Some(next)) => url = next,
                Ok(None) => return Ok(numbers),
                Err(detail) => return Err(self.http.malformed(detail)),
            }
        }
    }

    /// The URL of the page after this one, from a list page's `next_page_uri`
    /// (null or empty on the last page); the error says why it is unusable.
    fn next_page(&self, next_page_uri: Option<String>) -> Result<Option<String>, String> {
        match next_page_uri.filter(|u| !u.is_empty()) {
            // Relative to the API's base, as twilio-python's Page does it.
            Some(next) if next.starts_with('/') => Ok(Some(format!("{}{next}", self.http.base))),
            Some(next) => Err(format!("next_page_uri {next:?} is not a relative URI")),
            None => Ok(None),
        }
    }

    fn number_url(&self, sid: &str) -> String {
        format!("{}/{}.json", self.numbers_url(), path_segment(sid))
    }

    /// How Twilio routes the number now.
    pub(crate) async fn routing(&self, sid: &str) -> Result<VoiceRouting, ProviderError> {
        let number: IncomingNumber = self
            .http
            .send(self.request(reqwest::Method::GET, &self.number_url(sid)))
            .await?;
        Ok(number.routing())
    }

    async fn update(
        &self,
        sid: &str,
        form: &[(&str, &str)],
    ) -> Result<VoiceRouting, ProviderError> {
        let number: IncomingNumber = self
            .http
            .send(
                self.request(reqwest::Method::POST, &self.number_url(sid))
                    .form(form),
            )
            .await?;
        Ok(number.routing())
    }

    /// Points the number's calls and status callbacks at `hooks`, clearing the
    /// trunk or application that would make Twilio ignore them. Returns what it
    /// replaced (read just before) and what Twilio now has.
    pub(crate) async fn point_at(
        &self,
        sid: &str,
        hooks: &Hooks<'_>,
    ) -> Result<(VoiceRouting, VoiceRouting), ProviderError> {
        let before = self.routing(sid).await?;
        let mut form = vec![
            ("VoiceUrl", hooks.voice_url),
            ("VoiceMethod", "POST"),
            ("StatusCallback", hooks.status_callback),
            ("StatusCallbackMethod", "POST"),
        ];
        if before.voice_application_sid.is_some() {
            form.push(("VoiceApplicationSid", ""));
        }
        if before.trunk_sid.is_some() {
            form.push(("TrunkSid", ""));
        }
        let now = self.update(sid, &form).await?;
        Ok((before, now))
    }

    /// Puts back every routing field of `previous`: empty ones are cleared, a
    /// trunk or an application is set again.
    pub(crate) async fn restore(
        &self,
        sid: &str,
        previous: &VoiceRouting,
    ) -> Result<VoiceRouting, ProviderError> {
        let or_empty = |v: &Option<String>| v.clone().unwrap_or_default();
        let mut form: Vec<(&str, String)> = vec![
            ("VoiceUrl", or_empty(&previous.voice_url)),
            ("StatusCallback", or_empty(&previous.status_callback)),
        ];
        if let Some(method) = &previous.voice_method {
            form.push(("VoiceMethod", method.clone()));
        }
        if let Some(method) = &previous.status_callback_method {
            form.push(("StatusCallbackMethod", method.clone()));
        }
        // Setting one of these deletes the other; a number has at most one.
        if let Some(app) = &previous.voice_application_sid {
            form.push(("VoiceApplicationSid", app.clone()));
        } else if let Some(trunk) = &previous.trunk_sid {
            form.push(("TrunkSid", trunk.clone()));
        }
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.update(sid, &form).await
    }
}
