//! Vapi's phone numbers: `GET /phone-number?limit=N` (newest first; the next page
//! is asked with `createdAtLt` = the oldest `createdAt` seen) and
//! `PATCH /phone-number/{id}` with `assistantId`. Bearer API key.

use std::collections::HashSet;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{synced, Http, ProviderError};
use crate::store::pool::{SipTrunk, SyncedNumber};

#[derive(Clone)]
pub struct VapiClient {
    pub(crate) http: Http,
    api_key: SecretString,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VapiNumber {
    id: String,
    /// Absent on SIP-only numbers, which have no E.164 form.
    #[serde(default)]
    number: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    assistant_id: Option<String>,
    #[serde(default)]
    credential_id: Option<String>,
    #[serde(default)]
    sip_uri: Option<String>,
    created_at: String,
}

impl VapiClient {
    pub(crate) fn new(http: Http, api_key: SecretString) -> Self {
        Self { http, api_key }
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.http
            .client
            .request(method, url)
            .bearer_auth(self.api_key.expose_secret())
    }

    pub(crate) async fn list_numbers(
        &self,
        progress: &mut (dyn FnMut(usize) + Send),
    ) -> Result<Vec<SyncedNumber>, ProviderError> {
        let url = format!("{}/phone-number", self.http.base);
        let limit = self.http.page_size.to_string();
        let mut numbers = Vec::new();
        let mut seen = HashSet::new();
        let mut before: Option<String> = None;
        loop {
            let mut query = vec![("limit", limit.clone())];
            if let Some(before) = &before {
                query.push(("createdAtLt", before.clone()));
            }
            let page: Vec<VapiNumber> = self
                .http
                .send(self.request(reqwest::Method::GET, &url).query(&query))
                .await?;
            progress(page.len());
            let full = page.len() >= self.http.page_size;
            let oldest = page.iter().map(|n| n.created_at.clone()).min();
            for n in page {
                if !seen.insert(n.id.clone()) {
                    continue;
                }
                let Some(raw) = n.number.as_deref().filter(|r| !r.is_empty()) else {
                    tracing::warn!(id = %n.id, "skipping a Vapi SIP-only number: it has no E.164 form");
                    continue;
                };
                let trunk = (n.credential_id.is_some() || n.sip_uri.is_some()).then(|| SipTrunk {
                    credential_id: n.credential_id.clone(),
                    sip_uri: n.sip_uri.clone(),
                    ..SipTrunk::default()
                });
                numbers.push(synced(n.id, raw, n.name, None, n.assistant_id, trunk));
            }
            match oldest {
                Some(oldest) if full && before.as_ref() != Some(&oldest) => before = Some(oldest),
                _ => return Ok(numbers),
            }
        }
    }

    pub(crate) async fn set_assistant(
        &self,
        id: &str,
        assistant: Option<&str>,
    ) -> Result<(), ProviderError> {
        let url = format!("{}/phone-number/{id}", self.http.base);
        let _: serde_json::Value = self
            .http
            .send(
                self.request(reqwest::Method::PATCH, &url)
                    .json(&serde_json::json!({ "assistantId": assistant })),
            )
            .await?;
        Ok(())
    }
}
