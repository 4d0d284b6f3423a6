//! Retell's phone numbers, as its current API has them (Retell SDK 3.0.0; docs
//! https://docs.retellai.com/api-references/list-phone-numbers and
//! …/update-phone-number; RetellAI/retell-typescript-sdk
//! `src/resources/phone-number.ts`):
//!
//! - `GET /v2/list-phone-numbers?limit=N&pagination_key=K`, answering
//!   `{items, has_more, pagination_key}`; the next page is asked with the
//!   `pagination_key` of the last answer while `has_more`.
//! - `PATCH /update-phone-number/{phone_number}` with `inbound_agents` and
//!   `outbound_agents`, weighted lists `[{agent_id, weight}]` whose weights add up
//!   to 1 (`null` unbinds). The single `inbound_agent_id` / `outbound_agent_id`
//!   fields are not supported after 03/31/2026
//!   (https://docs.retellai.com/deprecation-notice/2026/03-31_phone_number_agent_fields):
//!   they are never sent, and read only when an answer still carries them.
//! - `POST /import-phone-number` for a number reached over a SIP trunk
//!   (`termination_uri`, `sip_trunk_auth_username`/`_password`, `transport`); a
//!   number reports its trunk under `sip_outbound_trunk_config` (`termination_uri`,
//!   `auth_username`, `transport`).
//!
//! Bearer API key.

use std::collections::HashSet;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{synced, Http, ProviderError};
use crate::domain::url::path_segment;
use crate::store::pool::{SipTrunk, SyncedNumber};

#[derive(Clone)]
pub struct RetellClient {
    pub(crate) http: Http,
    api_key: SecretString,
}

/// `PhoneNumberListResponse`.
#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    items: Vec<RetellNumber>,
    #[serde(default)]
    has_more: bool,
    #[serde(default)]
    pagination_key: Option<String>,
}

/// `PhoneNumberResponse` (the fields switchboard uses).
#[derive(Deserialize)]
struct RetellNumber {
    phone_number: String,
    #[serde(default)]
    nickname: Option<String>,
    #[serde(default)]
    inbound_agents: Option<Vec<WeightedAgent>>,
    #[serde(default)]
    outbound_agents: Option<Vec<WeightedAgent>>,
    /// Deprecated single-agent fields: read only if an answer still has them.
    #[serde(default)]
    inbound_agent_id: Option<String>,
    #[serde(default)]
    outbound_agent_id: Option<String>,
    #[serde(default)]
    sip_outbound_trunk_config: Option<TrunkConfig>,
}

#[derive(Deserialize, Serialize)]
struct WeightedAgent {
    agent_id: String,
    weight: f64,
}

#[derive(Deserialize)]
struct TrunkConfig {
    #[serde(default)]
    termination_uri: Option<String>,
    #[serde(default)]
    auth_username: Option<String>,
    #[serde(default)]
    transport: Option<String>,
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

/// The agent a weighted list gives most calls to (the first of equals).
fn main_agent(agents: Option<&[WeightedAgent]>) -> Option<String> {
    agents?
        .iter()
        .filter(|a| !a.agent_id.is_empty())
        .fold(None::<&WeightedAgent>, |best, a| match best {
            Some(b) if b.weight >= a.weight => Some(b),
            _ => Some(a),
        })
        .map(|a| a.agent_id.clone())
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
        let trunk = n
            .sip_outbound_trunk_config
            .filter(|t| t.termination_uri.as_deref().is_some_and(|u| !u.is_empty()))
            .map(|t| SipTrunk {
                termination_uri: t.termination_uri,
                has_password: has_password || t.auth_username.is_some(),
                auth_username: t.auth_username,
                transport: t.transport,
                ..SipTrunk::default()
            });
        let agent = main_agent(n.inbound_agents.as_deref())
            .or_else(|| main_agent(n.outbound_agents.as_deref()))
            .or(n.inbound_agent_id)
            .or(n.outbound_agent_id);
        // Retell identifies a number by its E.164 form.
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
        let url = format!("{}/v2/list-phone-numbers", self.http.base);
        let limit = self.http.page_size.to_string();
        let mut numbers = Vec::new();
        let mut keys = HashSet::new();
        let mut key: Option<String> = None;
        loop {
            let mut query = vec![("limit", limit.clone())];
            if let Some(key) = &key {
                query.push(("pagination_key", key.clone()));
            }
            let page: Page = self
                .http
                .send(self.request(reqwest::Method::GET, &url).query(&query))
                .await?;
            progress(page.items.len());
            numbers.extend(page.items.into_iter().map(|n| self.to_synced(n, false)));
            if !page.has_more {
                return Ok(numbers);
            }
            match page.pagination_key.filter(|k| !k.is_empty()) {
                None => {
                    return Err(self
                        .http
                        .malformed("has_more is true but no pagination_key was given"))
                }
                Some(next) if !keys.insert(next.clone()) => {
                    return Err(self.http.malformed(format!(
                        "pagination_key {next:?} came back a second time (the pages loop)"
                    )))
                }
                Some(next) => key = Some(next),
            }
        }
    }

    /// Binds `agent` (weight 1) for inbound and outbound calls, or unbinds both.
    pub(crate) async fn set_agent(
        &self,
        e164: &str,
        agent: Option<&str>,
    ) -> Result<(), ProviderError> {
        let url = format!(
            "{}/update-phone-number/{}",
            self.http.base,
            path_segment(e164)
        );
        let agents = agent.map(|id| {
            vec![WeightedAgent {
                agent_id: id.to_owned(),
                weight: 1.0,
            }]
        });
        let _: serde_json::Value = self
            .http
            .send(
                self.request(reqwest::Method::PATCH, &url)
                    .json(&serde_json::json!({
                        "inbound_agents": agents,
                        "outbound_agents": agents,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn agents(list: &[(&str, f64)]) -> Vec<WeightedAgent> {
        list.iter()
            .map(|(id, weight)| WeightedAgent {
                agent_id: (*id).to_owned(),
                weight: *weight,
            })
            .collect()
    }

    #[test]
    fn the_main_agent_of_a_weighted_list_is_the_heaviest_and_the_first_of_equals() {
        assert_eq!(main_agent(None), None);
        assert_eq!(main_agent(Some(&[])), None);
        assert_eq!(
            main_agent(Some(&agents(&[("a", 0.3), ("b", 0.7)]))).as_deref(),
            Some("b")
        );
        assert_eq!(
            main_agent(Some(&agents(&[("a", 0.5), ("b", 0.5)]))).as_deref(),
            Some("a")
        );
    }
}
