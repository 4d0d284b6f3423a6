//! REST clients of the phone-number providers: Twilio (IncomingPhoneNumbers, and
//! Calls for placing outbound calls: [`twilio::calls`]), Vapi (phone numbers and
//! their assistant) and Retell (phone numbers, their inbound/outbound agent,
//! import over a SIP trunk).
//!
//! # Layout
//!
//! - this module: [`ProviderAccount`] (one configured account: a
//!   [`ProviderKind`], the workspace its numbers belong to, a base URL and
//!   credentials), [`ProviderError`] and the shared HTTP plumbing (timeouts, error
//!   bodies).
//! - [`twilio`], [`vapi`], [`retell`]: one client per provider, each speaking that
//!   provider's documented JSON, paging included.
//!
//! Every request has a timeout (`numbers.request_timeout_secs`); a provider's 401
//! is [`ProviderError::Unauthorized`], never retried.

use std::time::Duration;

use secrecy::SecretString;
use serde::de::DeserializeOwned;
use switchboard_actors::Workspace;

use crate::domain::phone::PhoneNumber;
use crate::domain::provider::ProviderKind;
use crate::store::pool::{PoolNumber, SipTrunk, SyncedNumber, VoiceRouting, UNPARSEABLE};

pub mod retell;
pub mod twilio;
pub mod vapi;

/// Why a provider request failed. Messages name the provider account and never
/// carry credentials.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{account}: bad credentials (the provider answered 401)")]
    Unauthorized { account: String },
    #[error("{account} refused: HTTP {status}: {message}")]
    Refused {
        account: String,
        status: u16,
        message: String,
    },
    #[error("{account}: no answer within {secs} s")]
    Timeout { account: String, secs: f64 },
    #[error("{account}: malformed answer: {detail}")]
    Malformed { account: String, detail: String },
    #[error("{account}: unreachable: {detail}")]
    Unreachable { account: String, detail: String },
    #[error("{account}: {what} is not supported by this provider")]
    Unsupported { account: String, what: &'static str },
}

/// A Twilio number re-pointed at switchboard: its routing just before, and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repointed {
    pub before: VoiceRouting,
    pub now: VoiceRouting,
}

/// One configured provider account: whose numbers belong to `workspace`.
#[derive(Clone)]
pub struct ProviderAccount {
    pub kind: ProviderKind,
    pub workspace: Workspace,
    client: Client,
}

#[derive(Clone)]
enum Client {
    Twilio(twilio::TwilioClient),
    Vapi(vapi::VapiClient),
    Retell(retell::RetellClient),
}

/// What every client needs: the HTTP client, where, and how long to wait.
#[derive(Clone)]
pub(crate) struct Http {
    pub client: reqwest::Client,
    /// `twilio (production)`: how errors name this account.
    pub account: String,
    pub base: String,
    pub timeout: Duration,
    pub page_size: usize,
}

/// How to reach one account, from the configuration.
pub struct AccountConfig {
    pub kind: ProviderKind,
    pub workspace: Workspace,
    pub api_base: String,
    /// Twilio only: the `AC…` account.
    pub account_sid: String,
    /// Twilio's auth token, Vapi's or Retell's API key.
    pub secret: SecretString,
    pub timeout: Duration,
    pub page_size: usize,
}

impl ProviderAccount {
    pub fn new(http: &reqwest::Client, config: AccountConfig) -> ProviderAccount {
        let shared = Http {
            client: http.clone(),
            account: format!("{} ({})", config.kind, config.workspace),
            base: config.api_base.trim_end_matches('/').to_owned(),
            timeout: config.timeout,
            page_size: config.page_size.max(1),
        };
        let client = match config.kind {
            ProviderKind::Twilio => Client::Twilio(twilio::TwilioClient::new(
                shared,
                config.account_sid,
                config.secret,
            )),
            ProviderKind::Vapi => Client::Vapi(vapi::VapiClient::new(shared, config.secret)),
            ProviderKind::Retell => {
                Client::Retell(retell::RetellClient::new(shared, config.secret))
            }
        };
        ProviderAccount {
            kind: config.kind,
            workspace: config.workspace,
            client,
        }
    }

    /// `twilio (production)`.
    pub fn label(&self) -> String {
        format!("{} ({})", self.kind, self.workspace)
    }

    /// Every number the account holds, all pages; `page` is told each page's size.
    pub async fn list_numbers(
        &self,
        page: &mut (dyn FnMut(usize) + Send),
    ) -> Result<Vec<SyncedNumber>, ProviderError> {
        let (raw, http) = match &self.client {
            Client::Twilio(c) => (c.list_numbers(page).await?, &c.http),
            Client::Vapi(c) => (c.list_numbers(page).await?, &c.http),
            Client::Retell(c) => (c.list_numbers(page).await?, &c.http),
        };
        classify(http, raw).await
    }

    /// Hands `number` to an agent at the provider: Vapi's assistant, Retell's
    /// inbound and outbound agent; at Twilio, which has no agents, the number's
    /// calls and status callbacks are pointed at switchboard (`hooks`), which rings
    /// the agent. At Twilio the answer tells what was replaced and what is now.
    pub async fn assign(
        &self,
        number: &PoolNumber,
        provider_agent: &str,
        hooks: &twilio::Hooks<'_>,
    ) -> Result<Option<Repointed>, ProviderError> {
        match &self.client {
            Client::Twilio(c) => {
                let (before, now) = c.point_at(&number.provider_id, hooks).await?;
                Ok(Some(Repointed { before, now }))
            }
            Client::Vapi(c) => c
                .set_assistant(&number.provider_id, Some(provider_agent))
                .await
                .map(|()| None),
            Client::Retell(c) => c
                .set_agent(&number.e164, Some(provider_agent))
                .await
                .map(|()| None),
        }
    }

    /// Puts the provider back as it was before an assignment: at Twilio every
    /// routing field of `replaced` (or, without it, of the pool row); elsewhere the
    /// agent the pool row names.
    pub async fn restore(
        &self,
        number: &PoolNumber,
        replaced: Option<&VoiceRouting>,
    ) -> Result<(), ProviderError> {
        match &self.client {
            Client::Twilio(c) => {
                let previous = replaced
                    .cloned()
                    .unwrap_or_else(|| VoiceRouting::of(number));
                c.restore(&number.provider_id, &previous).await.map(|_| ())
            }
            Client::Vapi(c) => {
                c.set_assistant(&number.provider_id, number.provider_agent.as_deref())
                    .await
            }
            Client::Retell(c) => {
                c.set_agent(&number.e164, number.provider_agent.as_deref())
                    .await
            }
        }
    }

    /// Takes the agent off `number` at the provider. At Twilio the number keeps
    /// pointing at switchboard, which sends its calls to voicemail.
    pub async fn unassign(&self, number: &PoolNumber) -> Result<(), ProviderError> {
        match &self.client {
            Client::Twilio(_) => Ok(()),
            Client::Vapi(c) => c.set_assistant(&number.provider_id, None).await,
            Client::Retell(c) => c.set_agent(&number.e164, None).await,
        }
    }

    /// Twilio only: points a number's calls and status callbacks at `hooks`,
    /// clearing its trunk or application.
    pub async fn repoint(
        &self,
        sid: &str,
        hooks: &twilio::Hooks<'_>,
    ) -> Result<Repointed, ProviderError> {
        match &self.client {
            Client::Twilio(c) => {
                let (before, now) = c.point_at(sid, hooks).await?;
                Ok(Repointed { before, now })
            }
            _ => Err(ProviderError::Unsupported {
                account: self.label(),
                what: "re-pointing a voice webhook",
            }),
        }
    }

    /// Twilio only: restores every routing field of a number to `previous`;
    /// answers what Twilio now has.
    pub async fn restore_routing(
        &self,
        sid: &str,
        previous: &VoiceRouting,
    ) -> Result<VoiceRouting, ProviderError> {
        match &self.client {
            Client::Twilio(c) => c.restore(sid, previous).await,
            _ => Err(ProviderError::Unsupported {
                account: self.label(),
                what: "restoring a voice webhook",
            }),
        }
    }

    /// Retell only: imports a number reached over a SIP trunk.
    pub async fn import(&self, import: &retell::Import) -> Result<SyncedNumber, ProviderError> {
        match &self.client {
            Client::Retell(c) => {
                let raw = c.import(import).await?;
                classify(&c.http, vec![raw])
                    .await?
                    .pop()
                    .ok_or_else(|| c.http.malformed("the import answered no number"))
            }
            _ => Err(ProviderError::Unsupported {
                account: self.label(),
                what: "importing a number over a SIP trunk",
            }),
        }
    }
}

impl Http {
    /// Sends `request` with the timeout and turns the answer into `T` or an error
    /// that names this account.
    pub(crate) async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ProviderError> {
        let response = request
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| self.transport(e))?;
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(ProviderError::Unauthorized {
                account: self.account.clone(),
            });
        }
        if !status.is_success() {
            return Err(ProviderError::Refused {
                account: self.account.clone(),
                status: status.as_u16(),
                message: error_message(&body),
            });
        }
        serde_json::from_slice(&body).map_err(|e| ProviderError::Malformed {
            account: self.account.clone(),
            detail: e.to_string(),
        })
    }

    fn transport(&self, err: reqwest::Error) -> ProviderError {
        if err.is_timeout() {
            ProviderError::Timeout {
                account: self.account.clone(),
                secs: self.timeout.as_secs_f64(),
            }
        } else if err.is_decode() || err.is_body() {
            ProviderError::Malformed {
                account: self.account.clone(),
                detail: err.to_string(),
            }
        } else {
            ProviderError::Unreachable {
                account: self.account.clone(),
                detail: without_url(&err),
            }
        }
    }

    pub(crate) fn malformed(&self, detail: impl Into<String>) -> ProviderError {
        ProviderError::Malformed {
            account: self.account.clone(),
            detail: detail.into(),
        }
    }
}

/// The `message` of a provider's JSON error body (all three use that key), or the
/// start of the body.
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned())
}

/// reqwest's error text without the URL (which could carry an account id).
fn without_url(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    if let Some(url) = err.url() {
        text = text.replace(url.as_str(), "…");
    }
    text
}

/// A number as the provider listed it, before libphonenumber has looked at it.
pub(crate) fn synced(
    provider_id: String,
    raw_number: &str,
    nickname: Option<String>,
    voice_url: Option<String>,
    provider_agent: Option<String>,
    sip_trunk: Option<SipTrunk>,
) -> SyncedNumber {
    SyncedNumber {
        provider_id,
        e164: raw_number.to_owned(),
        number_type: String::new(),
        nickname: nickname.filter(|n| !n.is_empty()),
        voice_url: voice_url.filter(|u| !u.is_empty()),
        provider_agent: provider_agent.filter(|a| !a.is_empty()),
        sip_trunk,
        note: None,
        twilio: None,
    }
}

/// Parses every listed number (E.164 checked, type from the metadata), on the
/// blocking threads and split over the cores: libphonenumber's parsing is the
/// costly part of a large sync, and it must not hold up the engine's event loop.
/// A number that is not E.164 (Vapi BYO numbers with the E.164 check off, Retell
/// imports with `ignore_e164_validation`) is kept as the provider wrote it, with
/// the [`UNPARSEABLE`] note: it never fails the rest of the account's sync.
async fn classify(
    http: &Http,
    numbers: Vec<SyncedNumber>,
) -> Result<Vec<SyncedNumber>, ProviderError> {
    let account = http.account.clone();
    let parsed = tokio::task::spawn_blocking(move || {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = numbers.len().div_ceil(threads).max(1);
        let mut numbers = numbers;
        std::thread::scope(|scope| {
            let workers: Vec<_> = numbers
                .chunks_mut(chunk)
                .map(|part| scope.spawn(move || part.iter_mut().try_for_each(classify_one)))
                .collect();
            workers.into_iter().try_for_each(|w| {
                w.join()
                    .unwrap_or_else(|_| Err("a parser thread panicked".to_owned()))
            })
        })
        .map(|()| numbers)
    })
    .await
    .map_err(|e| ProviderError::Malformed {
        account: account.clone(),
        detail: format!("parsing the numbers failed: {e}"),
    })?;
    parsed.map_err(|detail| http.malformed(detail))
}

fn classify_one(number: &mut SyncedNumber) -> Result<(), String> {
    match PhoneNumber::parse_with_type(&number.e164) {
        Ok((e164, number_type)) => {
            number.e164 = e164.into_string();
            number.number_type = number_type.to_owned();
        }
        Err(e) => {
            tracing::warn!(
                provider_id = %number.provider_id,
                number = ?number.e164,
                err = %e,
                "keeping a number that is not E.164 as unparseable"
            );
            number.e164 = number.e164.trim().to_owned();
            number.number_type = UNKNOWN_TYPE.to_owned();
            number.note = Some(UNPARSEABLE.to_owned());
        }
    }
    Ok(())
}

/// The type of a number libphonenumber could not parse.
const UNKNOWN_TYPE: &str = "unknown";

/// The providers' HTTP client, before it is built: connections give up after
/// `connect_timeout` (each request has its own total timeout on top).
pub(crate) fn http_client(connect_timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder().connect_timeout(connect_timeout)
}

/// The provider accounts of `settings`: Twilio, Vapi and Retell from the
/// environment (in `numbers.default_workspace`) when their credentials are set,
/// then `numbers.accounts`.
pub fn accounts_from(settings: &crate::config::Settings) -> anyhow::Result<Vec<ProviderAccount>> {
    use anyhow::Context as _;
    let numbers = &settings.numbers;
    let http = http_client(numbers.request_timeout)
        .build()
        .context("building the providers' HTTP client")?;
    let timeout = numbers.request_timeout;
    let default_workspace = &numbers.default_workspace;
    let mut accounts = Vec::new();
    let mut add =
        |kind, workspace: Workspace, api_base: &str, account_sid: &str, secret: &SecretString| {
            accounts.push(ProviderAccount::new(
                &http,
                AccountConfig {
                    kind,
                    workspace,
                    api_base: api_base.to_owned(),
                    account_sid: account_sid.to_owned(),
                    secret: secret.clone(),
                    timeout,
                    page_size: numbers.page_size,
                },
            ));
        };
    if let (false, Some(token)) = (
        settings.twilio.account_sid.is_empty(),
        &settings.twilio.auth_token,
    ) {
        add(
            ProviderKind::Twilio,
            default_workspace.clone(),
            settings.twilio.api_base.as_str(),
            &settings.twilio.account_sid,
            token,
        );
    }
    if let Some(key) = &numbers.vapi.api_key {
        add(
            ProviderKind::Vapi,
            default_workspace.clone(),
            numbers.vapi.api_base.as_str(),
            "",
            key,
        );
    }
    if let Some(key) = &numbers.retell.api_key {
        add(
            ProviderKind::Retell,
            default_workspace.clone(),
            numbers.retell.api_base.as_str(),
            "",
            key,
        );
    }
    for account in &numbers.accounts {
        let (kind, workspace) = (account.provider, account.workspace.clone());
        let secret = account.secret.as_ref().with_context(|| {
            format!(
                "numbers.accounts: {kind} ({workspace}) has no credentials: set {}",
                if account.secret_env.is_empty() {
                    "secret_env"
                } else {
                    &account.secret_env
                }
            )
        })?;
        let api_base = match (&account.api_base, kind) {
            (Some(api_base), _) => api_base,
            (None, ProviderKind::Twilio) => &settings.twilio.api_base,
            (None, ProviderKind::Vapi) => &numbers.vapi.api_base,
            (None, ProviderKind::Retell) => &numbers.retell.api_base,
        };
        add(
            kind,
            workspace,
            api_base.as_str(),
            &account.account_sid,
            secret,
        );
    }
    Ok(accounts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_come_from_the_environment_then_the_accounts_table() {
        let accounts: toml::Table = "[[numbers.accounts]]\nprovider = \"twilio\"\n\
                                     workspace = \"staging\"\naccount_sid = \"AC2\"\n\
                                     secret_env = \"TWILIO_STAGING_AUTH_TOKEN\""
            .parse()
            .expect("TOML");
        let env = |name: &str| match name {
            "VAPI_API_KEY" => Some("vapi-key".to_owned()),
            "TWILIO_STAGING_AUTH_TOKEN" => Some("staging-token".to_owned()),
            _ => None,
        };
        let settings =
            crate::config::Settings::from_sources(Some(accounts.clone()), env).expect("valid");
        let labels: Vec<String> = accounts_from(&settings)
            .expect("valid accounts")
            .iter()
            .map(ProviderAccount::label)
            .collect();
        assert_eq!(labels, ["vapi (production)", "twilio (staging)"]);

        let no_secret = crate::config::Settings::from_sources(Some(accounts), |_| None)
            .expect("valid settings");
        let err = accounts_from(&no_secret).err().expect("no credentials");
        assert!(
            err.to_string().contains("set TWILIO_STAGING_AUTH_TOKEN"),
            "{err}"
        );
    }
}
