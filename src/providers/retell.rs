//! Retell's phone numbers: `GET /list-phone-numbers`, `PATCH
//! /update-phone-number/{phone_number}` with `inbound_agent_id` and
//! `outbound_agent_id`, `POST /import-phone-number` for a number reached over a SIP
//! trunk (`termination_uri`, `sip_trunk_auth_username`/`_password`). Bearer API key.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{synced, Http, ProviderError};
use crate::store::pool::{SipTrunk, SyncedNumber};

#[derive(Clone)]
pub struct RetellClient {
    pub(crate) http: Http,
    api_key: SecretString,
}

#[derive(Deserialize)]
struct RetellNumber {
    phone_number: String,
    #[serde(default)]
    nickname: Option<String>,
    #[serde(default)]
    inbound_agent_id: Option<String>,
    #[serde(default)]
    outbound_agent_id: Option<String>,
    #[serde(default)]
    termination_uri: Option<String>,
    #[serde(default)]
    sip_trunk_auth_username: Option<String>,
}

/// A number to import over a SIP trunk. The password goes to Retell and nowhere else.
#[derive(Serialize)]
pub struct Import {
    pub phone_number: String,
    pub termination_uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sip_trunk_auth_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sip_trunk_auth_password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
}

impl RetellClient {
    pub(crate) fn new(http: Http, api_key: SecretString) -> Self {
        Self { http, api_key }
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.http
            .client
            .request(method, url)
            .bearer_auth(self.api_key.expose_secret())
    }

    fn to_synced(&self, n: RetellNumber, has_password: bool) -> SyncedNumber {
        let trunk = n.termination_uri.clone().map(|uri| SipTrunk {
            termination_uri: Some(uri),
            auth_username: n.sip_trunk_auth_username.clone(),
            has_password,
            ..SipTrunk::default()
        });
        // Retell identifies a number by its E.164 form.
        let agent = n.inbound_agent_id.or(n.outbound_agent_id);
        synced(
            n.phone_number.clone(),
            &n.phone_number,
            n.nickname,
            None,
            agent,
            trunk,
        )
    }

    pub(crate) async fn list_numbers(
        &self,
        progress: &mut (dyn FnMut(usize) + Send),
    ) -> Result<Vec<SyncedNumber>, ProviderError> {
        let url = format!("{}/list-phone-numbers", self.http.base);
        let page: Vec<RetellNumber> = self
            .http
            .send(self.request(reqwest::Method::GET, &url))
            .await?;
        progress(page.len());
        Ok(page
            .into_iter()
            .map(|n| {
                let has_password = n.sip_trunk_auth_username.is_some();
                self.to_synced(n, has_password)
            })
            .collect())
    }

    pub(crate) async fn set_agent(
        &self,
        e164: &str,
        agent: Option<&str>,
    ) -> Result<(), ProviderError> {
        let url = format!(
            "{}/update-phone-number/{}",
            self.http.base,
            e164.replace('+', "%2B")
        );
        let _: serde_json::Value = self
            .http
            .send(
                self.request(reqwest::Method::PATCH, &url)
                    .json(&serde_json::json!({
                        "inbound_agent_id": agent,
                        "outbound_agent_id": agent,
                    })),
            )
            .await?;
        Ok(())
    }

    pub(crate) async fn import(&self, import: &Import) -> Result<SyncedNumber, ProviderError> {
        let url = format!("{}/import-phone-number", self.http.base);
        let number: RetellNumber = self
            .http
            .send(self.request(reqwest::Method::POST, &url).json(import))
            .await?;
        Ok(self.to_synced(number, import.sip_trunk_auth_password.is_some()))
    }
}
