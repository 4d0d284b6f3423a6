//! Vapi's phone numbers (https://docs.vapi.ai/api-reference/phone-numbers/list;
//! VapiAI/server-sdk-typescript `src/api/resources/phoneNumbers/client/Client.ts`,
//! `ListPhoneNumbersRequest.ts`): `GET /phone-number` with `limit` (0–1,000,
//! default 100) and the filters `createdAtGt`/`Ge`/`Lt`/`Le`, answering a plain
//! array; `PATCH /phone-number/{id}` with `assistantId`. Bearer API key.
//!
//! The list has no page token and its order is not documented (it happens to be
//! newest first), and several numbers may share a `createdAt`. So paging relies
//! only on what is documented — the filters and the limit: a `createdAt` window
//! whose answer is shorter than the limit is complete; a full one is split at the
//! oldest `createdAt` it showed into the part above (exclusive) and the part up to
//! it (inclusive), each of which holds fewer numbers, until every window is
//! complete. An instant shared by a whole page is listed on its own with the
//! largest limit. Whatever the order, no number is skipped; newest first, this
//! costs two requests per full page.

use std::collections::HashMap;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{synced, Http, ProviderError};
use crate::domain::url::path_segment;
use crate::store::pool::{SipTrunk, SyncedNumber};

/// Vapi's largest `limit`.
const MAX_LIMIT: usize = 1000;
/// A bound on the requests of one listing (a server that answers windows wrongly
/// must not keep a sync going forever).
const MAX_REQUESTS: usize = 100_000;

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

/// One end of a `createdAt` window: Vapi's own text of an instant, and whether
/// the instant belongs to the window.
#[derive(Clone, Debug)]
struct Bound {
    at: OffsetDateTime,
    text: String,
    inclusive: bool,
}

/// The numbers created within `(lower, upper)`; `None` is unbounded.
#[derive(Clone, Debug, Default)]
struct Window {
    lower: Option<Bound>,
    upper: Option<Bound>,
}

impl Window {
    fn query(&self, limit: usize) -> Vec<(&'static str, String)> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(b) = &self.lower {
            let key = if b.inclusive {
                "createdAtGe"
            } else {
                "createdAtGt"
            };
            query.push((key, b.text.clone()));
        }
        if let Some(b) = &self.upper {
            let key = if b.inclusive {
                "createdAtLe"
            } else {
                "createdAtLt"
            };
            query.push((key, b.text.clone()));
        }
        query
    }

    fn contains(&self, at: OffsetDateTime) -> bool {
        let above = self
            .lower
            .as_ref()
            .is_none_or(|b| at > b.at || (b.inclusive && at == b.at));
        let below = self
            .upper
            .as_ref()
            .is_none_or(|b| at < b.at || (b.inclusive && at == b.at));
        above && below
    }

    /// A single instant (`createdAtGe` = `createdAtLe`).
    fn is_instant(&self) -> bool {
        matches!((&self.lower, &self.upper), (Some(l), Some(u)) if l.inclusive && u.inclusive && l.at == u.at)
    }
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

    fn instant(&self, text: &str) -> Result<OffsetDateTime, ProviderError> {
        OffsetDateTime::parse(text, &Rfc3339)
            .map_err(|e| self.http.malformed(format!("createdAt {text:?}: {e}")))
    }

    pub(crate) async fn list_numbers(
        &self,
        progress: &mut (dyn FnMut(usize) + Send),
    ) -> Result<Vec<SyncedNumber>, ProviderError> {
        let url = format!("{}/phone-number", self.http.base);
        let page_limit = self.http.page_size.clamp(1, MAX_LIMIT);
        let mut found: HashMap<String, VapiNumber> = HashMap::new();
        let mut windows = vec![Window::default()];
        let mut requests = 0usize;
        while let Some(window) = windows.pop() {
            requests += 1;
            if requests > MAX_REQUESTS {
                return Err(self.http.malformed(format!(
                    "the listing did not settle within {MAX_REQUESTS} requests"
                )));
            }
            let limit = if window.is_instant() {
                MAX_LIMIT
            } else {
                page_limit
            };
            let page: Vec<VapiNumber> = self
                .http
                .send(
                    self.request(reqwest::Method::GET, &url)
                        .query(&window.query(limit)),
                )
                .await?;
            progress(page.len());
            let full = page.len() >= limit;
            let mut oldest: Option<(OffsetDateTime, String)> = None;
            let mut one_instant = true;
            for n in page {
                let at = self.instant(&n.created_at)?;
                if !window.contains(at) {
                    return Err(self.http.malformed(format!(
                        "number {} (createdAt {}) is outside the createdAt window asked for",
                        n.id, n.created_at
                    )));
                }
                match &oldest {
                    Some((o, _)) if *o == at => {}
                    Some((o, _)) if *o < at => one_instant = false,
                    Some(_) => {
                        one_instant = false;
                        oldest = Some((at, n.created_at.clone()));
                    }
                    None => oldest = Some((at, n.created_at.clone())),
                }
                found.insert(n.id.clone(), n);
            }
            let Some((at, text)) = oldest.filter(|_| full) else {
                continue; // shorter than the limit: the window is complete
            };
            if window.is_instant() {
                return Err(self.http.malformed(format!(
                    "more than {MAX_LIMIT} numbers share createdAt {text}: they cannot all be listed"
                )));
            }
            let bound = |inclusive| Bound {
                at,
                text: text.clone(),
                inclusive,
            };
            // Above the oldest instant shown: fewer numbers (not those at it).
            if window.upper.as_ref().is_none_or(|u| u.at != at) {
                windows.push(Window {
                    lower: Some(bound(false)),
                    upper: window.upper.clone(),
                });
            }
            if one_instant {
                // A whole page at one instant: that instant alone, then below it.
                windows.push(Window {
                    lower: Some(bound(true)),
                    upper: Some(bound(true)),
                });
                windows.push(Window {
                    lower: window.lower,
                    upper: Some(bound(false)),
                });
            } else {
                // Up to it: fewer numbers (not the newest shown).
                windows.push(Window {
                    lower: window.lower,
                    upper: Some(bound(true)),
                });
            }
        }
        let mut listed: Vec<VapiNumber> = found.into_values().collect();
        listed.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        let mut numbers = Vec::with_capacity(listed.len());
        for n in listed {
            let Some(raw) = n.number.as_deref().filter(|r| !r.is_empty()) else {
                tracing::warn!(id = %n.id, "skipping a Vapi SIP-only number: it has no E.164 form");
                continue;
            };
            let trunk = (n.credential_id.is_some() || n.sip_uri.is_some()).then(|| SipTrunk {
                credential_id: n.credential_id.clone(),
                sip_uri: n.sip_uri.clone(),
                ..SipTrunk::default()
            });
            numbers.push(synced(
                n.id.clone(),
                raw,
                n.name,
                None,
                n.assistant_id,
                trunk,
            ));
        }
        Ok(numbers)
    }

    pub(crate) async fn set_assistant(
        &self,
        id: &str,
        assistant: Option<&str>,
    ) -> Result<(), ProviderError> {
        let url = format!("{}/phone-number/{}", self.http.base, path_segment(id));
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
