//! Typed settings: `config/default.toml` (embedded in the binary, so the engine runs
//! from anywhere), optionally a file given with `--config`, then the environment
//! variables of the external contract.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use secrecy::SecretString;
use serde::Deserialize;

/// The defaults, compiled in.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub bind: String,
    /// Empty: derived from the bound address.
    pub public_url: String,
    pub database_url: String,
    pub redis_url: String,
    pub node_id: String,
    pub workers: usize,
    /// Bearer token of the admin API and the supervisor socket; generated if unset.
    #[serde(default)]
    pub admin_token: Option<SecretString>,
    pub twilio: TwilioSettings,
    pub openai: OpenAiSettings,
    pub calls: CallSettings,
    pub websocket: WebSocketSettings,
    /// Prices for each call's cost breakdown.
    pub pricing: Pricing,
    /// The post-call summary model.
    pub summary: SummarySettings,
    pub numbers: NumbersSettings,
    /// How the journal holds records the database has not taken yet.
    pub journal: JournalSettings,
}

/// The journal writer's bounds (see `store::journal`).
#[derive(Debug, Clone, Deserialize)]
pub struct JournalSettings {
    /// Entries waiting for the database stay in memory up to about this many bytes;
    /// later ones go to the spill file.
    pub memory_limit_bytes: usize,
    /// The spill file (`{node_id}` is replaced by this node's id); written out
    /// first on the next start.
    pub spill_path: String,
    /// A shutdown waits at most this long for the database to take the journal;
    /// what is left goes to the spill file.
    pub shutdown_timeout_secs: f64,
    /// Tries of an entry the database refuses as data before it is left out.
    pub reject_after_attempts: u32,
}

impl JournalSettings {
    pub fn spill_path(&self, node_id: &str) -> std::path::PathBuf {
        self.spill_path.replace("{node_id}", node_id).into()
    }
}

/// The phone-number pool: provider accounts and how to talk to them.
#[derive(Debug, Clone, Deserialize)]
pub struct NumbersSettings {
    /// Every provider request gives up after this long.
    pub request_timeout_secs: f64,
    /// Numbers asked per page of providers that page (Twilio: at most 1,000).
    pub page_size: usize,
    /// The workspace of the accounts set by environment variables.
    pub default_workspace: String,
    pub vapi: ApiKeySettings,
    pub retell: ApiKeySettings,
    /// Further accounts (another workspace, another Twilio account…).
    #[serde(default)]
    pub accounts: Vec<AccountSettings>,
}

/// Vapi or Retell: a base URL and a bearer API key.
#[derive(Debug, Clone, Deserialize)]
pub struct ApiKeySettings {
    pub api_base: String,
    #[serde(default)]
    pub api_key: Option<SecretString>,
}

/// One more provider account, e.g. the staging Twilio account.
#[derive(Debug, Clone, Deserialize)]
pub struct AccountSettings {
    /// `twilio`, `vapi` or `retell`.
    pub provider: String,
    pub workspace: String,
    /// Empty: the provider's own.
    #[serde(default)]
    pub api_base: String,
    /// Twilio only.
    #[serde(default)]
    pub account_sid: String,
    /// The environment variable holding the auth token or API key: credentials
    /// stay out of files.
    #[serde(default)]
    pub secret_env: String,
    /// Filled from `secret_env` at load (or set directly by embedders and tests).
    #[serde(skip)]
    pub secret: Option<SecretString>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TwilioSettings {
    pub account_sid: String,
    /// Signs every webhook and stream; without it every Twilio request is refused.
    #[serde(default)]
    pub auth_token: Option<SecretString>,
    pub api_base: String,
    /// The largest webhook body read (Twilio's forms are a few KiB); larger is 413.
    pub webhook_max_body_bytes: usize,
    /// A webhook body must arrive within this long after its headers; slower is 408.
    pub webhook_body_timeout_secs: f64,
    /// Webhook bodies read at once before their signature is known; more is 503.
    pub webhook_max_concurrent_reads: usize,
    /// The longest `From`/`To` (E.164, a SIP URI or `client:` + an identity of at
    /// most 256 characters); longer is 400.
    pub webhook_max_address_chars: usize,
    /// How long the voice webhook waits for the store to reserve a new CallSid
    /// before taking the call without it (a database outage must not stop calls).
    pub webhook_store_timeout_secs: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OpenAiSettings {
    #[serde(default)]
    pub api_key: Option<SecretString>,
    pub realtime_url: String,
    /// From the start of an AI call until the realtime session is configured;
    /// past it the caller goes to the assistant's failure route.
    pub connect_timeout_ms: u64,
    /// Transcribes the caller's side.
    pub transcription_model: String,
    /// How long `transfer_to_human` and `end_call` wait for the assistant's last
    /// words to finish playing.
    pub exit_grace_secs: f64,
    /// A Twilio mark follows the assistant's audio at least this often (0: after
    /// every delta); barge-in truncation is exact to this.
    pub mark_interval_ms: u64,
    /// Realtime WebSocket connections open at once on this node, at most: every
    /// AI call holds one for its whole length. A call past it goes to its
    /// assistant's failure route at once instead of queueing for a free one.
    pub max_connections: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CallSettings {
    pub ring_timeout_secs: f64,
    pub media_timeout_secs: f64,
    pub voicemail_max_secs: f64,
    pub voicemail_prompt: String,
    pub ringback_chunk_ms: u64,
    pub parking_timeout_secs: f64,
    pub wrap_up_secs: f64,
    pub reconnect_grace_secs: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WebSocketSettings {
    pub heartbeat_interval_secs: f64,
    pub client_timeout_secs: f64,
    pub max_frame_bytes: usize,
    pub audio_queue_frames: usize,
    pub control_queue_messages: usize,
}

/// Prices in USD: telephony per minute (each leg rounded up to whole minutes) and
/// model tokens per million. Models missing from a table are priced 0 and flagged.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Pricing {
    pub inbound_local_per_min: f64,
    pub inbound_toll_free_per_min: f64,
    pub outbound_per_min: f64,
    pub media_stream_per_min: f64,
    /// Realtime models by name.
    pub realtime: BTreeMap<String, RealtimeRates>,
    /// Summary models by name.
    pub summary: BTreeMap<String, TokenRates>,
    /// Transcription models (the caller's side of AI calls) by name.
    #[serde(default)]
    pub transcription: BTreeMap<String, TranscriptionRates>,
}

/// A realtime model's prices, USD per million tokens; cached input is part of the
/// input and billed at the cached rate instead.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealtimeRates {
    pub text_in: f64,
    pub text_cached: f64,
    pub text_out: f64,
    pub audio_in: f64,
    pub audio_cached: f64,
    pub audio_out: f64,
}

/// A text model's prices, USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRates {
    pub input: f64,
    pub output: f64,
    /// Cached prompt tokens (part of the input); unset: the full input rate.
    #[serde(default)]
    pub cached_input: Option<f64>,
}

/// A transcription model's prices: USD per million tokens for models billed by
/// tokens (`gpt-4o-transcribe`, `gpt-4o-mini-transcribe`), USD per minute of
/// audio for those billed by duration (`whisper-1`). Unset rates are 0.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TranscriptionRates {
    pub text_in: f64,
    pub audio_in: f64,
    pub text_out: f64,
    pub per_minute: f64,
}

/// The reasoning model that writes each AI call's summary and outcome.
#[derive(Debug, Clone, Deserialize)]
pub struct SummarySettings {
    /// `anthropic`, `openai` or `off`.
    pub provider: String,
    /// Empty: the provider's own API (`https://api.anthropic.com`,
    /// `https://api.openai.com`).
    pub base_url: String,
    /// Empty: `claude-haiku-4-5` (Anthropic) or `gpt-4.1-mini` (OpenAI).
    pub model: String,
    pub timeout_secs: f64,
    pub max_tokens: u32,
    /// From `ANTHROPIC_API_KEY` or `OPENAI_API_KEY`, by provider; no key, no summary.
    #[serde(default)]
    pub api_key: Option<SecretString>,
}

impl SummarySettings {
    pub fn base_url(&self) -> &str {
        match (self.base_url.trim_end_matches('/'), self.provider.as_str()) {
            ("", "openai") => "https://api.openai.com",
            ("", _) => "https://api.anthropic.com",
            (url, _) => url,
        }
    }

    pub fn model(&self) -> &str {
        match (self.model.as_str(), self.provider.as_str()) {
            ("", "openai") => "gpt-4.1-mini",
            ("", _) => "claude-haiku-4-5",
            (model, _) => model,
        }
    }
}

/// Durations from fractional seconds, refusing negative or absurd values.
pub fn secs(value: f64) -> Duration {
    Duration::from_secs_f64(value.clamp(0.0, 86_400.0))
}

impl Settings {
    /// Defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&std::path::Path>) -> anyhow::Result<Settings> {
        let mut table: toml::Table = DEFAULT_TOML.parse().context("embedded default.toml")?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let overlay: toml::Table = text
                .parse()
                .with_context(|| format!("parsing {}", path.display()))?;
            merge(&mut table, overlay);
        }
        let mut settings: Settings = toml::Value::Table(table)
            .try_into()
            .context("invalid configuration")?;
        settings.apply_env(|name| std::env::var(name).ok());
        settings.validate()?;
        Ok(settings)
    }

    /// The embedded defaults alone (tests and benches start here).
    pub fn defaults() -> Settings {
        let table: toml::Table = DEFAULT_TOML.parse().expect("embedded default.toml parses");
        toml::Value::Table(table)
            .try_into()
            .expect("embedded default.toml matches Settings")
    }

    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) {
        let set = |target: &mut String, name: &str| {
            if let Some(value) = var(name) {
                *target = value;
            }
        };
        set(&mut self.bind, "SWITCHBOARD_BIND");
        set(&mut self.public_url, "SWITCHBOARD_PUBLIC_URL");
        set(&mut self.database_url, "DATABASE_URL");
        set(&mut self.redis_url, "REDIS_URL");
        set(&mut self.node_id, "SWITCHBOARD_NODE_ID");
        set(&mut self.twilio.account_sid, "TWILIO_ACCOUNT_SID");
        set(&mut self.twilio.api_base, "TWILIO_API_BASE");
        set(&mut self.openai.realtime_url, "OPENAI_REALTIME_URL");
        let secret = |name: &str| var(name).filter(|v| !v.is_empty()).map(SecretString::from);
        if let Some(token) = secret("SWITCHBOARD_ADMIN_TOKEN") {
            self.admin_token = Some(token);
        }
        if let Some(token) = secret("TWILIO_AUTH_TOKEN") {
            self.twilio.auth_token = Some(token);
        }
        if let Some(key) = secret("OPENAI_API_KEY") {
            self.openai.api_key = Some(key);
        }
        set(&mut self.summary.provider, "SWITCHBOARD_SUMMARY_PROVIDER");
        set(&mut self.summary.base_url, "SWITCHBOARD_SUMMARY_BASE_URL");
        set(&mut self.summary.model, "SWITCHBOARD_SUMMARY_MODEL");
        let summary_key = match self.summary.provider.as_str() {
            "anthropic" => secret("ANTHROPIC_API_KEY"),
            "openai" => secret("OPENAI_API_KEY"),
            _ => None,
        };
        if let Some(key) = summary_key {
            self.summary.api_key = Some(key);
        }
        set(&mut self.numbers.vapi.api_base, "VAPI_API_BASE");
        set(&mut self.numbers.retell.api_base, "RETELL_API_BASE");
        if let Some(key) = secret("VAPI_API_KEY") {
            self.numbers.vapi.api_key = Some(key);
        }
        if let Some(key) = secret("RETELL_API_KEY") {
            self.numbers.retell.api_key = Some(key);
        }
        for account in &mut self.numbers.accounts {
            if !account.secret_env.is_empty() {
                if let Some(value) = secret(&account.secret_env) {
                    account.secret = Some(value);
                }
            }
        }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let openai = &self.openai;
        anyhow::ensure!(
            openai.realtime_url.starts_with("ws://") || openai.realtime_url.starts_with("wss://"),
            "openai.realtime_url (OPENAI_REALTIME_URL) must start with ws:// or wss://"
        );
        anyhow::ensure!(
            (100..=60_000).contains(&openai.connect_timeout_ms),
            "openai.connect_timeout_ms must be between 100 and 60000"
        );
        anyhow::ensure!(
            openai.exit_grace_secs.is_finite() && openai.exit_grace_secs >= 0.0,
            "openai.exit_grace_secs must be a number ≥ 0"
        );
        anyhow::ensure!(
            openai.max_connections >= 1,
            "openai.max_connections must be at least 1"
        );
        let ws = &self.websocket;
        anyhow::ensure!(
            ws.client_timeout_secs >= 2.0 * ws.heartbeat_interval_secs,
            "websocket.client_timeout_secs must be at least twice heartbeat_interval_secs"
        );
        anyhow::ensure!(
            ws.max_frame_bytes >= 1024,
            "websocket.max_frame_bytes is too small"
        );
        anyhow::ensure!(
            ws.audio_queue_frames >= 1,
            "websocket.audio_queue_frames must be ≥ 1"
        );
        anyhow::ensure!(
            self.calls.ringback_chunk_ms >= 20,
            "calls.ringback_chunk_ms must be at least one 20 ms frame"
        );
        anyhow::ensure!(
            self.public_url.is_empty()
                || self.public_url.starts_with("http://")
                || self.public_url.starts_with("https://"),
            "SWITCHBOARD_PUBLIC_URL must start with http:// or https://"
        );
        let summary = &self.summary;
        anyhow::ensure!(
            matches!(summary.provider.as_str(), "anthropic" | "openai" | "off"),
            "summary.provider must be \"anthropic\", \"openai\" or \"off\""
        );
        anyhow::ensure!(
            summary.base_url.is_empty()
                || summary.base_url.starts_with("http://")
                || summary.base_url.starts_with("https://"),
            "summary.base_url must start with http:// or https://"
        );
        anyhow::ensure!(
            summary.timeout_secs > 0.0 && summary.max_tokens > 0,
            "summary.timeout_secs and summary.max_tokens must be positive"
        );
        let p = &self.pricing;
        let rates = [
            p.inbound_local_per_min,
            p.inbound_toll_free_per_min,
            p.outbound_per_min,
            p.media_stream_per_min,
        ]
        .into_iter()
        .chain(p.realtime.values().flat_map(|r| {
            [
                r.text_in,
                r.text_cached,
                r.text_out,
                r.audio_in,
                r.audio_cached,
                r.audio_out,
            ]
        }))
        .chain(
            p.summary
                .values()
                .flat_map(|r| [r.input, r.output, r.cached_input.unwrap_or(0.0)]),
        )
        .chain(
            p.transcription
                .values()
                .flat_map(|r| [r.text_in, r.audio_in, r.text_out, r.per_minute]),
        );
        for rate in rates {
            anyhow::ensure!(
                rate.is_finite() && rate >= 0.0,
                "pricing: every rate must be a number ≥ 0"
            );
        }
        let twilio = &self.twilio;
        anyhow::ensure!(
            twilio.webhook_max_body_bytes >= 1024
                && twilio.webhook_body_timeout_secs > 0.0
                && twilio.webhook_max_concurrent_reads >= 1
                && twilio.webhook_max_address_chars >= 16
                && twilio.webhook_store_timeout_secs > 0.0,
            "twilio.webhook_*: the body limit must be at least 1024 bytes, the timeout \
             positive, at least one concurrent read, addresses at least 16 characters, \
             the store timeout positive"
        );
        anyhow::ensure!(
            self.numbers.request_timeout_secs > 0.0,
            "numbers.request_timeout_secs must be positive"
        );
        for account in &self.numbers.accounts {
            anyhow::ensure!(
                crate::domain::provider::ProviderKind::parse(&account.provider).is_some(),
                "numbers.accounts: unknown provider {:?} (twilio, vapi or retell)",
                account.provider
            );
        }
        let journal = &self.journal;
        anyhow::ensure!(
            journal.shutdown_timeout_secs.is_finite() && journal.shutdown_timeout_secs >= 0.0,
            "journal.shutdown_timeout_secs must be a number ≥ 0"
        );
        anyhow::ensure!(
            !journal.spill_path.trim().is_empty(),
            "journal.spill_path must name a file"
        );
        anyhow::ensure!(
            journal.reject_after_attempts >= 1,
            "journal.reject_after_attempts must be ≥ 1"
        );
        Ok(())
    }
}

fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base)), toml::Value::Table(overlay)) => merge(base, overlay),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn defaults_match_the_contract() {
        let s = Settings::defaults();
        assert_eq!(s.bind, "127.0.0.1:8080");
        assert!(s.database_url.starts_with("sqlite:"));
        assert_eq!(s.calls.ring_timeout_secs, 30.0);
        assert_eq!(s.calls.voicemail_max_secs, 120.0);
        assert!(s.validate().is_ok());
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut s = Settings::defaults();
        s.apply_env(|name| match name {
            "SWITCHBOARD_BIND" => Some("0.0.0.0:9000".into()),
            "DATABASE_URL" => Some("postgres://db/x".into()),
            "TWILIO_AUTH_TOKEN" => Some("secret".into()),
            _ => None,
        });
        assert_eq!(s.bind, "0.0.0.0:9000");
        assert_eq!(s.database_url, "postgres://db/x");
        assert_eq!(
            s.twilio
                .auth_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned()),
            Some("secret".to_owned())
        );
        assert!(!format!("{s:?}").contains("secret"), "secrets never print");
    }

    #[test]
    fn the_summary_model_is_configured_from_the_environment() {
        let mut s = Settings::defaults();
        assert_eq!(s.summary.provider, "anthropic");
        assert_eq!(s.summary.base_url(), "https://api.anthropic.com");
        assert_eq!(s.summary.model(), "claude-haiku-4-5");
        assert!(s.summary.api_key.is_none());
        s.apply_env(|name| match name {
            "SWITCHBOARD_SUMMARY_PROVIDER" => Some("openai".into()),
            "OPENAI_API_KEY" => Some("sk-test".into()),
            "ANTHROPIC_API_KEY" => Some("not-this-one".into()),
            _ => None,
        });
        assert_eq!(s.summary.base_url(), "https://api.openai.com");
        assert_eq!(s.summary.model(), "gpt-4.1-mini");
        assert_eq!(
            s.summary
                .api_key
                .as_ref()
                .map(|k| k.expose_secret().to_owned()),
            Some("sk-test".to_owned())
        );
        s.apply_env(|name| match name {
            "SWITCHBOARD_SUMMARY_BASE_URL" => Some("http://127.0.0.1:9/".into()),
            "SWITCHBOARD_SUMMARY_MODEL" => Some("gpt-4o-mini".into()),
            _ => None,
        });
        assert_eq!(s.summary.base_url(), "http://127.0.0.1:9");
        assert_eq!(s.summary.model(), "gpt-4o-mini");
        assert!(s.validate().is_ok());
        s.summary.provider = "carrier-pigeon".into();
        assert!(s.validate().is_err());
    }

    #[test]
    fn negative_prices_are_refused() {
        let mut s = Settings::defaults();
        s.pricing.media_stream_per_min = -1.0;
        assert!(s.validate().is_err());
    }

    #[test]
    fn provider_accounts_come_from_the_environment() {
        let mut s = Settings::defaults();
        s.numbers.accounts.push(AccountSettings {
            provider: "twilio".into(),
            workspace: "staging".into(),
            api_base: String::new(),
            account_sid: "AC2".into(),
            secret_env: "TWILIO_STAGING_AUTH_TOKEN".into(),
            secret: None,
        });
        s.apply_env(|name| match name {
            "VAPI_API_KEY" => Some("vapi-key".into()),
            "RETELL_API_BASE" => Some("http://127.0.0.1:9/retell".into()),
            "TWILIO_STAGING_AUTH_TOKEN" => Some("staging-token".into()),
            _ => None,
        });
        assert_eq!(
            s.numbers
                .vapi
                .api_key
                .as_ref()
                .map(|k| k.expose_secret().to_owned()),
            Some("vapi-key".to_owned())
        );
        assert_eq!(s.numbers.retell.api_base, "http://127.0.0.1:9/retell");
        assert!(s.numbers.retell.api_key.is_none());
        assert_eq!(
            s.numbers.accounts[0]
                .secret
                .as_ref()
                .map(|k| k.expose_secret().to_owned()),
            Some("staging-token".to_owned())
        );
        let accounts = crate::providers::accounts_from(&s).expect("valid accounts");
        let labels: Vec<String> = accounts.iter().map(|a| a.label()).collect();
        assert_eq!(labels, ["vapi (production)", "twilio (staging)"]);
        assert!(
            !format!("{s:?}").contains("staging-token"),
            "secrets never print"
        );

        s.numbers.accounts[0].provider = "plivo".into();
        assert!(
            s.validate().is_err(),
            "an unknown provider is refused at start-up"
        );
    }

    #[test]
    fn a_realtime_url_that_is_not_a_websocket_is_refused() {
        let mut s = Settings::defaults();
        assert!(s.validate().is_ok());
        s.openai.realtime_url = "https://api.openai.com/v1/realtime".into();
        assert!(s.validate().is_err());
        let mut s = Settings::defaults();
        s.openai.connect_timeout_ms = 0;
        assert!(s.validate().is_err());
    }

    #[test]
    fn a_node_carries_well_over_a_thousand_realtime_sessions_by_default() {
        let mut s = Settings::defaults();
        assert!(
            s.openai.max_connections >= 5_000,
            "{}",
            s.openai.max_connections
        );
        s.openai.max_connections = 0;
        assert!(s.validate().is_err());
    }
}
