//! Twilio's IncomingPhoneNumbers: `GET /2010-04-01/Accounts/{AC}/IncomingPhoneNumbers.json`
//! (pages of up to 1,000, following `next_page_uri`, relative to the API base,
//! until it is null) and `POST …/IncomingPhoneNumbers/{PN}.json` with `VoiceUrl`.
//! Basic auth: account SID and auth token.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{synced, Http, ProviderError};
use crate::store::pool::{SipTrunk, SyncedNumber};

/// Twilio's largest page.
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
                let trunk = n
                    .trunk_sid
                    .filter(|t| !t.is_empty())
                    .map(|trunk_sid| SipTrunk {
                        trunk_sid: Some(trunk_sid),
                        ..SipTrunk::default()
                    });
                numbers.push(synced(
                    n.sid,
                    &n.phone_number,
                    n.friendly_name,
                    n.voice_url,
                    None,
                    trunk,
                ));
            }
            match page.next_page_uri.filter(|u| !u.is_empty()) {
                // Relative to the API's base, as twilio-python's Page does it.
                Some(next) if next.starts_with('/') => url = format!("{}{next}", self.http.base),
                Some(next) => {
                    return Err(self
                        .http
                        .malformed(format!("next_page_uri {next:?} is not a relative URI")))
                }
                None => return Ok(numbers),
            }
        }
    }

    pub(crate) async fn set_voice_url(&self, sid: &str, url: &str) -> Result<(), ProviderError> {
        let endpoint = format!("{}/{sid}.json", self.numbers_url());
        let _: serde_json::Value = self
            .http
            .send(
                self.request(reqwest::Method::POST, &endpoint)
                    .form(&[("VoiceUrl", url), ("VoiceMethod", "POST")]),
            )
            .await?;
        Ok(())
    }
}
