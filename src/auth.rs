//! Secrets: agent and admin tokens (made, hashed, compared in constant time),
//! the bearer scheme, and the cache of agents by token hash. Below the engine:
//! it knows the store, never the adapters (the admin extractor is
//! [`crate::api::admin::Admin`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use switchboard_actors::AgentId;

use crate::store::{AgentRecord, Store, StoreError};

/// A fresh secret token: `prefix` + 32 random bytes, base64url.
pub fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).expect("the OS random source is available");
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Tokens are stored hashed: a leaked database opens no softphone.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Equal-time comparison of two secrets.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// How long a softphone connect waits for the database before it trusts the
/// [`TokenCache`] instead.
const TOKEN_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// Agents by the hash of their token, as last read from the database: loaded at
/// start, kept up to date by every lookup, creation and deletion. Softphones are
/// checked against the database while it answers and against this cache while it
/// does not, so an outage does not lock agents out.
#[derive(Clone, Default)]
pub struct TokenCache {
    agents: Arc<RwLock<HashMap<String, AgentRecord>>>,
}

impl TokenCache {
    pub async fn load(store: &Store) -> Result<TokenCache, StoreError> {
        let cache = TokenCache::default();
        for (hash, agent) in store.agents_by_token_hash().await? {
            cache.insert(hash, agent);
        }
        Ok(cache)
    }

    pub fn insert(&self, hash: String, agent: AgentRecord) {
        if let Ok(mut agents) = self.agents.write() {
            agents.insert(hash, agent);
        }
    }

    /// The agent is gone: its token opens nothing, also during an outage.
    pub fn remove_agent(&self, id: &AgentId) {
        if let Ok(mut agents) = self.agents.write() {
            agents.retain(|_, agent| agent.id != *id);
        }
    }

    fn get(&self, hash: &str) -> Option<AgentRecord> {
        self.agents.read().ok()?.get(hash).cloned()
    }

    fn forget(&self, hash: &str) {
        if let Ok(mut agents) = self.agents.write() {
            agents.remove(hash);
        }
    }

    /// The agent whose token this is: the database's answer when it gives one in
    /// time (the cache follows it), the cache's when it is unavailable.
    pub async fn agent_for_token(
        &self,
        store: &Store,
        token: &str,
    ) -> Result<Option<AgentRecord>, StoreError> {
        let hash = token_hash(token);
        let looked_up =
            tokio::time::timeout(TOKEN_LOOKUP_TIMEOUT, store.agent_by_token_hash(&hash)).await;
        match looked_up {
            Ok(Ok(Some(agent))) => {
                self.insert(hash, agent.clone());
                Ok(Some(agent))
            }
            Ok(Ok(None)) => {
                self.forget(&hash);
                Ok(None)
            }
            Ok(Err(error)) if !error.is_unavailable() => Err(error),
            Ok(Err(error)) => {
                tracing::warn!(%error, "database unavailable; agent token checked against the cache");
                Ok(self.get(&hash))
            }
            Err(_) => {
                tracing::warn!(
                    timeout_ms = TOKEN_LOOKUP_TIMEOUT.as_millis() as u64,
                    "database slow; agent token checked against the cache"
                );
                Ok(self.get(&hash))
            }
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is
/// case-insensitive (RFC 9110 §11.1, RFC 6750 §2.1): `bearer`, `BEARER` too.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Query parameters whose values are secrets (the softphone's and the console's
/// `?token=`): never written to a log.
const SECRET_PARAMETERS: &[&str] = &["token", "access_token", "api_key", "key", "secret"];

/// A request's query string fit for a log line: the value of every secret
/// parameter (`token=…`, matched case-insensitively, percent-encoded or not) is
/// replaced with `[redacted]`; everything else is kept as sent.
pub fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| {
            let (name, _) = pair.split_once('=').unwrap_or((pair, ""));
            let plain = name.replace("%5F", "_").replace("%5f", "_");
            if SECRET_PARAMETERS
                .iter()
                .any(|secret| plain.eq_ignore_ascii_case(secret))
            {
                format!("{name}=[redacted]")
            } else {
                pair.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_query_values_are_redacted() {
        assert_eq!(redact_query("token=sb_abc"), "token=[redacted]");
        assert_eq!(
            redact_query("a=1&TOKEN=x&access%5Ftoken=y&b=2&token"),
            "a=1&TOKEN=[redacted]&access%5Ftoken=[redacted]&b=2&token=[redacted]"
        );
        assert_eq!(redact_query("call=c1&attempt=2"), "call=c1&attempt=2");
        assert_eq!(redact_query(""), "");
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        // RFC 9110 §11.1: "It uses a case-insensitive token to identify the
        // authentication scheme"; RFC 6750 §2.1 defines `Bearer`.
        for value in ["Bearer abc", "bearer abc", "BEARER abc", "bEaReR   abc "] {
            assert_eq!(bearer_token(value), Some("abc"), "{value:?}");
        }
        for value in ["Basic abc", "Bearer", "Bearer ", "Bearerabc", "abc"] {
            assert_eq!(bearer_token(value), None, "{value:?}");
        }
    }

    #[test]
    fn tokens_are_unique_and_hash_stably() {
        let (a, b) = (new_token("t_"), new_token("t_"));
        assert_ne!(a, b);
        assert!(a.starts_with("t_") && a.len() > 40);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_eq!(token_hash("abc").len(), 64);
        assert!(secrets_equal("same", "same"));
        assert!(!secrets_equal("same", "diff"));
    }
}
