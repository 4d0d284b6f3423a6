//! Typed settings: `config/default.toml` (embedded in the binary, so the engine runs
//! from anywhere), optionally a file given with `--config`, then the environment
//! variables of the external contract.
//!
//! Parsed once, at load: durations are [`Duration`]s, providers enums, URLs
//! checked ([`HttpUrl`], [`WsUrl`]); a setting that does not parse is refused with its key
//! (and the variable that set it) named. [`Settings::call_config`],
//! [`Settings::seat_config`] and [`Settings::outbox_limits`] give the actors their
//! configuration.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use ipnet::IpNet;
use secrecy::SecretString;
use serde::Deserialize;
use switchboard_actors::call::CallConfig;
use switchboard_actors::outbox::OutboxLimits;
use switchboard_actors::seat::SeatConfig;
use switchboard_actors::Workspace;

use crate::domain::phone::Region;
use crate::domain::provider::ProviderKind;
use crate::domain::text_template::TextTemplate;
use crate::domain::user::PlanName;
pub use alerts::{
    AlertRules, AlertSettings, AlertSeverity, AlertWebhook, RuleSettings, SmtpSettings, SmtpTls,
};
pub use values::{HttpUrl, UrlError, WsUrl};

mod alerts;
mod values;

/// The defaults, compiled in.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// The spoken voicemail prompt shipped with the engine (8 kHz mu-law, espeak-ng).
const BUILTIN_PROMPT: &[u8] = include_bytes!("../../assets/voicemail-prompt.ul");

/// The environment variables of the external contract, and the keys they set.
const ENV_KEYS: &[(&str, &str)] = &[
    ("SWITCHBOARD_BIND", "bind"),
    ("SWITCHBOARD_PUBLIC_URL", "public_url"),
    ("DATABASE_URL", "database_url"),
    ("REDIS_URL", "redis_url"),
    ("SWITCHBOARD_NODE_ID", "node_id"),
    ("SWITCHBOARD_NODE_URL", "cluster.node_url"),
    ("SWITCHBOARD_REDIS_PREFIX", "cluster.redis_prefix"),
    ("TWILIO_ACCOUNT_SID", "twilio.account_sid"),
    ("TWILIO_API_BASE", "twilio.api_base"),
    ("OPENAI_REALTIME_URL", "openai.realtime_url"),
    ("SWITCHBOARD_SUMMARY_PROVIDER", "summary.provider"),
    ("SWITCHBOARD_SUMMARY_BASE_URL", "summary.base_url"),
    ("SWITCHBOARD_SUMMARY_MODEL", "summary.model"),
    ("VAPI_API_BASE", "numbers.vapi.api_base"),
    ("RETELL_API_BASE", "numbers.retell.api_base"),
];

/// Secrets from the environment, and their keys: set only when not empty. (The
/// summary model's key and the extra accounts' secrets depend on other settings:
/// [`Settings::read_secrets`].)
const SECRET_ENV_KEYS: &[(&str, &str)] = &[
    ("SWITCHBOARD_ADMIN_TOKEN", "admin_token"),
    ("TWILIO_AUTH_TOKEN", "twilio.auth_token"),
    ("OPENAI_API_KEY", "openai.api_key"),
    ("VAPI_API_KEY", "numbers.vapi.api_key"),
    ("RETELL_API_KEY", "numbers.retell.api_key"),
    ("SWITCHBOARD_CLUSTER_SECRET", "cluster.secret"),
];

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub bind: String,
    /// Unset (`""`): `http://` + the bound address.
    #[serde(deserialize_with = "values::optional")]
    pub public_url: Option<HttpUrl>,
    pub database_url: String,
    /// Unset (`""`): a single node. Set: one node of a cluster (`[cluster]`).
    pub redis_url: String,
    pub node_id: String,
    /// Cluster mode's settings, read when `redis_url` is set.
    pub cluster: ClusterSettings,
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
    /// Outbound calls on a user's behalf.
    pub outbound: OutboundSettings,
    /// The users' plans by name (`[plans.free]`, `[plans.pro]`…).
    pub plans: Plans,
    /// Outbound safety: what is screened, and how seriously.
    pub safety: SafetySettings,
    /// The text a missed caller gets (`[missed_call_text]`).
    pub missed_call_text: MissedCallTextSettings,
    /// Alert rules and where their events go (`[alerts]`).
    pub alerts: AlertSettings,
}

/// `[cluster]`: how this node joins the others when `REDIS_URL` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// This node's own URL, as the other nodes reach it (`SWITCHBOARD_NODE_URL`);
    /// required in a cluster.
    #[serde(deserialize_with = "values::optional")]
    pub node_url: Option<HttpUrl>,
    /// The start of every key the cluster writes (`SWITCHBOARD_REDIS_PREFIX`).
    pub redis_prefix: String,
    /// The cluster's shared secret (`SWITCHBOARD_CLUSTER_SECRET`); required in a
    /// cluster, never written to Redis.
    #[serde(default)]
    pub secret: Option<SecretString>,
    /// How often the membership key is refreshed.
    #[serde(rename = "heartbeat_interval_ms", deserialize_with = "values::millis")]
    pub heartbeat_interval: Duration,
    /// The membership key's time to live: how soon the others see this node gone.
    #[serde(rename = "node_ttl_ms", deserialize_with = "values::millis")]
    pub node_ttl: Duration,
    /// A node gone this long is no longer listed.
    #[serde(rename = "forget_after_secs", deserialize_with = "values::seconds")]
    pub forget_after: Duration,
    /// Redis connections kept by this node.
    pub redis_pool_size: usize,
    /// A Redis command, a connection and a wait for a pooled one give up after this.
    #[serde(rename = "redis_timeout_ms", deserialize_with = "values::millis")]
    pub redis_timeout: Duration,
    /// A dead node's call that no survivor adopted through a resume within this
    /// long after the node was seen gone is ended `interrupted` by a survivor.
    #[serde(rename = "resume_wait_secs", deserialize_with = "values::seconds")]
    pub resume_wait: Duration,
    /// How often a node looks for dead nodes' calls left unadopted.
    #[serde(rename = "reap_interval_ms", deserialize_with = "values::millis")]
    pub reap_interval: Duration,
    /// A draining node (SIGTERM) waits at most this long for its calls to be
    /// adopted by the others before it exits.
    #[serde(rename = "drain_timeout_secs", deserialize_with = "values::seconds")]
    pub drain_timeout: Duration,
    /// Audio frames a node link holds for its peer before dropping the oldest.
    pub link_audio_frames: usize,
    /// A request over a node link (a claim, a park…) fails after this long.
    #[serde(
        rename = "link_request_timeout_ms",
        deserialize_with = "values::millis"
    )]
    pub link_request_timeout: Duration,
}

/// Whether `id` is a node id: 1 to 64 ASCII letters, digits, '.', '-' or '_'
/// (a node's own, from `SWITCHBOARD_NODE_ID`, or a peer's, from a node link).
pub fn is_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// The longest a membership key lives: the others notice a dead node within it.
pub const MAX_NODE_TTL: Duration = Duration::from_secs(5);

/// The shortest cluster secret accepted, in bytes.
pub const MIN_CLUSTER_SECRET_BYTES: usize = 16;

impl Settings {
    /// Cluster mode: `REDIS_URL` is set.
    pub fn is_cluster(&self) -> bool {
        !self.redis_url.is_empty()
    }

    /// Cluster mode's settings agree with each other and name a node that can join.
    fn validate_cluster(&self) -> anyhow::Result<()> {
        let cluster = &self.cluster;
        anyhow::ensure!(
            !cluster.heartbeat_interval.is_zero()
                && cluster.node_ttl <= MAX_NODE_TTL
                && cluster.node_ttl >= 2 * cluster.heartbeat_interval,
            "cluster.node_ttl_ms must be at most {} and at least twice \
             cluster.heartbeat_interval_ms (which must be positive)",
            MAX_NODE_TTL.as_millis()
        );
        anyhow::ensure!(
            (1..=256).contains(&cluster.redis_pool_size),
            "cluster.redis_pool_size must be between 1 and 256"
        );
        anyhow::ensure!(
            (50..=1_000_000).contains(&cluster.link_audio_frames),
            "cluster.link_audio_frames must be between 50 and 1000000"
        );
        anyhow::ensure!(
            cluster.link_request_timeout >= Duration::from_millis(100)
                && cluster.link_request_timeout <= Duration::from_secs(30),
            "cluster.link_request_timeout_ms must be between 100 and 30000"
        );
        anyhow::ensure!(
            (10..=60_000).contains(&cluster.redis_timeout.as_millis()),
            "cluster.redis_timeout_ms must be between 10 and 60000"
        );
        anyhow::ensure!(
            !cluster.redis_prefix.is_empty()
                && cluster.redis_prefix.len() <= 64
                && cluster.redis_prefix.chars().all(|c| c.is_ascii_graphic()),
            "cluster.redis_prefix (SWITCHBOARD_REDIS_PREFIX) must be 1 to 64 printable \
             characters without spaces"
        );
        anyhow::ensure!(
            (Duration::from_millis(100)..=Duration::from_secs(3600)).contains(&cluster.resume_wait),
            "cluster.resume_wait_secs must be between 0.1 and 3600"
        );
        anyhow::ensure!(
            (Duration::from_millis(50)..=Duration::from_secs(60)).contains(&cluster.reap_interval),
            "cluster.reap_interval_ms must be between 50 and 60000"
        );
        anyhow::ensure!(
            (Duration::from_millis(100)..=Duration::from_secs(3600))
                .contains(&cluster.drain_timeout),
            "cluster.drain_timeout_secs must be between 0.1 and 3600"
        );
        if !self.is_cluster() {
            return Ok(());
        }
        anyhow::ensure!(
            is_node_id(&self.node_id),
            "REDIS_URL is set (cluster mode): node_id (SWITCHBOARD_NODE_ID) must be 1 to 64 \
             letters, digits, '.', '-' or '_', and each node's own"
        );
        anyhow::ensure!(
            cluster.node_url.is_some(),
            "REDIS_URL is set (cluster mode) but SWITCHBOARD_NODE_URL (cluster.node_url) is \
             not: set it to this node's own http(s) URL, as the other nodes reach it"
        );
        match &cluster.secret {
            None => anyhow::bail!(
                "REDIS_URL is set (cluster mode) but SWITCHBOARD_CLUSTER_SECRET is not: set it \
                 to the secret every node of the cluster shares (at least \
                 {MIN_CLUSTER_SECRET_BYTES} characters)"
            ),
            Some(secret) => anyhow::ensure!(
                secrecy::ExposeSecret::expose_secret(secret).len() >= MIN_CLUSTER_SECRET_BYTES,
                "SWITCHBOARD_CLUSTER_SECRET is too short: at least {MIN_CLUSTER_SECRET_BYTES} \
                 characters"
            ),
        }
        Ok(())
    }
}

/// `[missed_call_text]`: a caller who hung up while ringing or left a voicemail
/// gets a text from the number called (Twilio's Messages API), at most once per
/// caller, number and UTC day, never to a number on the global do-not-call list.
/// Templates are parsed at load ([`TextTemplate`]: `{caller}`, `{number}`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MissedCallTextSettings {
    /// Off by default: nothing is sent and nothing is recorded.
    pub enabled: bool,
    /// Every number's text, unless the number has its own; unset (`""`): only
    /// the numbers under `numbers` send one.
    #[serde(deserialize_with = "values::optional_template")]
    pub template: Option<TextTemplate>,
    /// Per-number templates, by the number's E.164 form
    /// (`[missed_call_text.numbers."+14155550100"]`).
    #[serde(default, deserialize_with = "values::number_templates")]
    pub numbers: BTreeMap<String, TextTemplate>,
    /// One request to Twilio waits this long; past it the attempt failed.
    #[serde(rename = "send_timeout_secs", deserialize_with = "values::seconds")]
    pub send_timeout: Duration,
    /// Attempts per text, the first included: a 5xx, a timeout or a connection
    /// that failed is tried again (a 4xx never is).
    pub max_attempts: u32,
    /// The wait before the second attempt; it doubles before each next one.
    #[serde(rename = "retry_backoff_ms", deserialize_with = "values::millis")]
    pub retry_backoff: Duration,
    /// Missed calls waiting for their text; past it a call's text is dropped
    /// (noted in its trail) rather than held.
    pub queue_size: usize,
    /// Texts being sent at once.
    pub concurrency: usize,
}

impl MissedCallTextSettings {
    /// The template of calls to `number` (E.164), if that number sends texts.
    pub fn template_for(&self, number: &str) -> Option<&TextTemplate> {
        self.numbers.get(number).or(self.template.as_ref())
    }
}

/// Outbound safety (`[safety]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SafetySettings {
    /// Word lists screened against objectives and transcripts.
    pub categories: Vec<SafetyCategory>,
    /// The post-call review (`[safety.review]`).
    #[serde(default)]
    pub review: ReviewSettings,
    /// Number health (`[safety.number_health]`).
    #[serde(default)]
    pub number_health: NumberHealthSettings,
    /// The velocity rules counted at submit (`[safety.velocity]`).
    pub velocity: VelocitySettings,
    /// The reasoning model's classification of objectives at submit
    /// (`[safety.classifier]`).
    pub classifier: ClassifierSettings,
    /// The attestation users sign (`[safety.consent]`).
    pub consent: ConsentSettings,
    /// Which workspaces record calls, and where only after a notice
    /// (`[safety.recording]`).
    pub recording: RecordingSettings,
}

/// The post-call review (`[safety.review]`): how often it looks for ended
/// calls, and the thresholds of a user's telephony pattern over a rolling
/// window (a flag per threshold crossed, once per window).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReviewSettings {
    #[serde(rename = "poll_secs", deserialize_with = "values::seconds")]
    pub poll: Duration,
    /// Calls reviewed per transaction.
    pub batch_size: u32,
    /// An answered call waits this long after it ended for its after-call work
    /// (`analyzed_at`) before it is reviewed without it.
    #[serde(rename = "analysis_wait_secs", deserialize_with = "values::seconds")]
    pub analysis_wait: Duration,
    #[serde(rename = "window_secs", deserialize_with = "values::seconds")]
    pub window: Duration,
    /// Fewer dialed calls in the window: no pattern is judged.
    pub min_calls: u32,
    /// An answered call shorter than this is short.
    #[serde(rename = "short_call_secs", deserialize_with = "values::seconds")]
    pub short_call: Duration,
    pub max_short_call_ratio: f64,
    pub min_answer_rate: f64,
    /// An answered call ended this soon: the callee hung up at once.
    #[serde(rename = "early_hangup_secs", deserialize_with = "values::seconds")]
    pub early_hangup: Duration,
    pub max_early_hangup_ratio: f64,
    /// Callees who opted out (`opt_out`) in the window, at most.
    pub max_opt_outs: u32,
    /// The severity of a pattern flag.
    pub pattern_severity: crate::domain::safety::Severity,
}

impl Default for ReviewSettings {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(5),
            batch_size: 500,
            analysis_wait: Duration::from_secs(300),
            window: Duration::from_secs(24 * 3600),
            min_calls: 10,
            short_call: Duration::from_secs(15),
            max_short_call_ratio: 0.6,
            min_answer_rate: 0.1,
            early_hangup: Duration::from_secs(5),
            max_early_hangup_ratio: 0.5,
            max_opt_outs: 3,
            pattern_severity: crate::domain::safety::Severity::Medium,
        }
    }
}

/// Number health (`[safety.number_health]`): each pool number's calls over a
/// rolling window; one past a threshold is rested (not used as caller ID) for
/// `rest_secs`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NumberHealthSettings {
    #[serde(rename = "window_secs", deserialize_with = "values::seconds")]
    pub window: Duration,
    /// Fewer dialed calls from the number in the window: it is not judged.
    pub min_calls: u32,
    pub min_answer_rate: f64,
    #[serde(rename = "short_call_secs", deserialize_with = "values::seconds")]
    pub short_call: Duration,
    pub max_short_call_ratio: f64,
    pub max_opt_outs: u32,
    #[serde(rename = "rest_secs", deserialize_with = "values::seconds")]
    pub rest: Duration,
}

impl Default for NumberHealthSettings {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(24 * 3600),
            min_calls: 10,
            min_answer_rate: 0.15,
            short_call: Duration::from_secs(15),
            max_short_call_ratio: 0.5,
            max_opt_outs: 3,
            rest: Duration::from_secs(24 * 3600),
        }
    }
}

/// `[safety.classifier]`: when on and a summary model is configured
/// (`[summary]`), each objective the word screen lets through is also
/// classified by that model at submit.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ClassifierSettings {
    pub enabled: bool,
    /// The model's answer is waited for this long; past it the request goes
    /// through, with a `low` flag saying the check could not run.
    #[serde(rename = "timeout_secs", deserialize_with = "values::seconds")]
    pub timeout: Duration,
}

/// The velocity rules (`[safety.velocity]`), counted over a user's accepted
/// requests (dialed or not) at submit. A rule that fires raises a flag of its
/// severity; the call still goes through (unless a critical flag paused the user).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VelocitySettings {
    /// The same number called more than `max` times in `window` by one user.
    pub same_number: VelocityRule,
    /// More than `max` distinct numbers called in `window` by one user.
    pub distinct_numbers: VelocityRule,
    /// `max` or more whole numbers in a row (…01, …02, …03) within one NPA-NXX
    /// called in `window` by one user.
    pub sequential: VelocityRule,
}

/// One velocity rule: its threshold, its window and the flag's severity.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VelocityRule {
    pub max: u32,
    #[serde(rename = "window_secs", deserialize_with = "values::seconds")]
    pub window: Duration,
    pub severity: crate::domain::safety::Severity,
}

/// Recording (`[safety.recording]`): off unless a workspace is listed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RecordingSettings {
    /// Workspaces whose outbound calls are recorded (default none).
    pub workspaces: Vec<String>,
    /// US states (USPS codes) where every party must consent: a callee there is
    /// recorded only after the recording notice.
    pub all_party_consent_states: Vec<String>,
}

impl RecordingSettings {
    /// When the call of `workspace` to `to` (E.164) may be recorded.
    pub fn plan(&self, workspace: &str, to: &str) -> crate::domain::recording::RecordingPlan {
        crate::domain::recording::RecordingPlan::for_call(
            &self.workspaces,
            &self.all_party_consent_states,
            workspace,
            to,
        )
    }
}

/// The attestation's wording and its version (`[safety.consent]`). A new
/// wording needs a new version: the engine pins each version to its wording in
/// the database the first time it runs with it, and refuses to start with a
/// different wording under a pinned version. A user's first request under a new
/// version must name it (`attestation.wording_version`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ConsentSettings {
    pub version: String,
    pub wording: String,
}

/// One category of words (`[[safety.categories]]`): any of its terms, matched as
/// whole words on normalised text, raises a flag of its severity; a critical one
/// refuses the request.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SafetyCategory {
    pub name: String,
    pub severity: crate::domain::safety::Severity,
    pub terms: Vec<String>,
}

/// The plans users are on, by name. `free` always exists: a user created without
/// a plan gets it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct Plans(BTreeMap<PlanName, PlanLimits>);

impl Plans {
    /// The plan of a user created without one.
    pub const DEFAULT: &'static str = "free";

    pub fn get(&self, name: &PlanName) -> Option<&PlanLimits> {
        self.0.get(name)
    }

    /// The plans' names, sorted (for error messages).
    pub fn names(&self) -> impl Iterator<Item = &PlanName> {
        self.0.keys()
    }
}

/// What a plan allows: quotas, a monthly budget and the longest call. Also the
/// shape of a user's effective limits (the plan with the user's overrides).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlanLimits {
    /// Calls placed in any rolling hour, at most.
    pub calls_per_hour: u32,
    /// Calls placed in any rolling 24 hours, at most.
    pub calls_per_day: u32,
    /// What the calls of a calendar month may cost, in USD.
    pub monthly_budget_usd: f64,
    /// The longest call (Twilio's `TimeLimit`), in minutes.
    pub max_call_minutes: u32,
}

impl PlanLimits {
    /// What `calls_per_hour` may be, in a plan or a user's override.
    pub const CALLS_PER_HOUR: RangeInclusive<u32> = 0..=10_000;
    pub const CALLS_PER_DAY: RangeInclusive<u32> = 0..=100_000;
    pub const MONTHLY_BUDGET_USD: RangeInclusive<f64> = 0.0..=1_000_000.0;
    /// Twilio's `TimeLimit` is at most 4 hours.
    pub const MAX_CALL_MINUTES: RangeInclusive<u32> = 1..=240;

    /// The first field out of its range, and the range, if any.
    pub fn out_of_range(&self) -> Option<(&'static str, String)> {
        fn outside<T: PartialOrd + fmt::Display>(
            field: &'static str,
            value: T,
            range: &RangeInclusive<T>,
        ) -> Option<(&'static str, String)> {
            (!range.contains(&value))
                .then(|| (field, format!("{} to {}", range.start(), range.end())))
        }
        outside("calls_per_hour", self.calls_per_hour, &Self::CALLS_PER_HOUR)
            .or_else(|| outside("calls_per_day", self.calls_per_day, &Self::CALLS_PER_DAY))
            .or_else(|| {
                outside(
                    "monthly_budget_usd",
                    self.monthly_budget_usd,
                    &Self::MONTHLY_BUDGET_USD,
                )
            })
            .or_else(|| {
                outside(
                    "max_call_minutes",
                    self.max_call_minutes,
                    &Self::MAX_CALL_MINUTES,
                )
            })
    }
}

/// Outbound calls on a user's behalf (`[outbound]`, `src/outbound`): where they
/// may go, when they may ring, whom to believe about the client's address, how
/// long a dial may take.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundSettings {
    /// Calls ring only from this local time of the callee's…
    #[serde(deserialize_with = "values::time_of_day")]
    pub calling_hours_start: jiff::civil::Time,
    /// …until this one (exclusive), in every zone the number may be in.
    #[serde(deserialize_with = "values::time_of_day")]
    pub calling_hours_end: jiff::civil::Time,
    /// A request to Twilio's Calls resource (create, list, fetch) gives up after
    /// this long. A create that times out has an unknown outcome: the call may
    /// exist (`providers::twilio::calls::DialError::Unknown`).
    #[serde(rename = "dial_timeout_secs", deserialize_with = "values::seconds")]
    pub dial_timeout: Duration,
    /// A number outside these regions (libphonenumber's, from the number itself)
    /// is refused.
    pub allowed_regions: Vec<Region>,
    /// The reverse proxies whose `X-Forwarded-For` is believed when a consent
    /// record notes the client's address (addresses or CIDR networks); empty:
    /// the peer's address is the client's.
    #[serde(deserialize_with = "values::networks")]
    pub trusted_proxies: Vec<IpNet>,
    /// The in-memory burst limiter in front of `POST /api/calls/outbound`, per
    /// user: this many requests at once…
    pub burst_size: u32,
    /// …refilled at this many per second.
    pub burst_per_second: u32,
    /// A POST to a user's `callback_url` gives up after this long (connecting
    /// included) and counts as failed (`outbound::notify`).
    #[serde(rename = "callback_timeout_secs", deserialize_with = "values::seconds")]
    pub callback_timeout: Duration,
    /// Callback POSTs in flight at once, per engine.
    pub callback_concurrency: usize,
    /// Attempts of one event before it is given up (the reason is kept).
    pub callback_max_attempts: u32,
    /// The wait after the first failed attempt; it doubles after each further
    /// one, up to `callback_retry_max_secs`, and is jittered.
    #[serde(
        rename = "callback_retry_base_secs",
        deserialize_with = "values::seconds"
    )]
    pub callback_retry_base: Duration,
    /// The longest wait between two attempts of an event.
    #[serde(
        rename = "callback_retry_max_secs",
        deserialize_with = "values::seconds"
    )]
    pub callback_retry_max: Duration,
    /// How often the delivery worker looks for due deliveries.
    #[serde(rename = "callback_poll_secs", deserialize_with = "values::seconds")]
    pub callback_poll: Duration,
    /// Deliver to loopback, private and link-local addresses too (tests, a
    /// trusted network). Off: such a URL is refused at delivery (SSRF).
    pub callback_allow_private: bool,

    // Dispatch (`outbound::dispatch`).
    /// Outbound calls being dialed, ringing or in progress at once, across every
    /// engine sharing the database.
    pub max_concurrent: u32,
    /// …and of one user.
    pub max_per_user: u32,
    /// The share (0–1) of this node's realtime connections (`openai.max_connections`)
    /// outbound calls leave to inbound ones: outbound work waits, inbound is never
    /// refused for it.
    pub reserve_inbound: f64,
    /// A dial whose outcome is unknown is dialed again only after this long
    /// without a status callback, and only if Twilio lists no call to the number.
    #[serde(rename = "reconcile_secs", deserialize_with = "values::seconds")]
    pub reconcile: Duration,
    /// How often the dispatcher looks for due calls (a submit also wakes it).
    #[serde(rename = "dispatch_poll_secs", deserialize_with = "values::seconds")]
    pub dispatch_poll: Duration,
    /// Calls claimed in one round, at most.
    pub dispatch_claim_size: u32,

    // The conversation (`outbound::conversation`).
    /// The built-in outbound assistant's realtime model and voice.
    pub assistant_model: String,
    pub assistant_voice: String,
    /// The assistant waits this long for the callee's greeting before it speaks.
    #[serde(rename = "greeting_wait_secs", deserialize_with = "values::seconds")]
    pub greeting_wait: Duration,
    /// Nobody speaks for this long: the call ends.
    #[serde(rename = "silence_timeout_secs", deserialize_with = "values::seconds")]
    pub silence_timeout: Duration,
    /// No turn from the callee for this long (a hold queue, music): the call ends.
    #[serde(rename = "max_hold_secs", deserialize_with = "values::seconds")]
    pub max_hold: Duration,
    /// What an answering machine gets: a message, or a hang-up.
    pub on_machine: OnMachine,
    /// The message left on a machine; `{user_name}`, `{organization}` and
    /// `{objective}` are filled in.
    pub voicemail_message: String,

    // Batches (`outbound::batch`).
    /// Targets of one batch, at most.
    pub batch_max_targets: usize,
    /// A batch's calls in progress at once, unless the batch asks for fewer.
    pub batch_max_concurrency: u32,

    // The result (`outbound::reconcile_cost`).
    /// How often ended calls are looked for and settled.
    #[serde(rename = "result_poll_secs", deserialize_with = "values::seconds")]
    pub result_poll: Duration,
    /// How long after a call's end Twilio's price (and the after-call work) is
    /// waited for before the estimate is kept.
    #[serde(rename = "price_wait_secs", deserialize_with = "values::seconds")]
    pub price_wait: Duration,
}

/// What an outbound call does when an answering machine picks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnMachine {
    /// Wait for the beep and leave `outbound.voicemail_message`.
    LeaveMessage,
    HangUp,
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
    #[serde(rename = "shutdown_timeout_secs", deserialize_with = "values::seconds")]
    pub shutdown_timeout: Duration,
    /// Tries of an entry the database refuses as data before it is left out.
    pub reject_after_attempts: u32,
}

impl JournalSettings {
    pub fn spill_path(&self, node_id: &str) -> PathBuf {
        self.spill_path.replace("{node_id}", node_id).into()
    }
}

/// The phone-number pool: provider accounts and how to talk to them.
#[derive(Debug, Clone, Deserialize)]
pub struct NumbersSettings {
    /// Every provider request gives up after this long.
    #[serde(rename = "request_timeout_secs", deserialize_with = "values::seconds")]
    pub request_timeout: Duration,
    /// Numbers asked per page of providers that page (Twilio: at most 1,000).
    pub page_size: usize,
    /// The workspace of the accounts set by environment variables.
    pub default_workspace: Workspace,
    pub vapi: ApiKeySettings,
    pub retell: ApiKeySettings,
    /// Further accounts (another workspace, another Twilio account…).
    #[serde(default)]
    pub accounts: Vec<AccountSettings>,
}

/// Vapi or Retell: a base URL and a bearer API key.
#[derive(Debug, Clone, Deserialize)]
pub struct ApiKeySettings {
    pub api_base: HttpUrl,
    #[serde(default)]
    pub api_key: Option<SecretString>,
}

/// One more provider account, e.g. the staging Twilio account.
#[derive(Debug, Clone, Deserialize)]
pub struct AccountSettings {
    /// `twilio`, `vapi` or `retell`.
    pub provider: ProviderKind,
    pub workspace: Workspace,
    /// Unset (`""`): the provider's own.
    #[serde(default, deserialize_with = "values::optional")]
    pub api_base: Option<HttpUrl>,
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
    pub api_base: HttpUrl,
    /// The largest webhook body read (Twilio's forms are a few KiB); larger is 413.
    pub webhook_max_body_bytes: usize,
    /// A webhook body must arrive within this long after its headers; slower is 408.
    #[serde(
        rename = "webhook_body_timeout_secs",
        deserialize_with = "values::seconds"
    )]
    pub webhook_body_timeout: Duration,
    /// Webhook bodies read at once before their signature is known; more is 503.
    pub webhook_max_concurrent_reads: usize,
    /// The longest `From`/`To` (E.164, a SIP URI or `client:` + an identity of at
    /// most 256 characters); longer is 400.
    pub webhook_max_address_chars: usize,
    /// How long the voice webhook waits for the store to reserve a new CallSid
    /// before taking the call without it (a database outage must not stop calls).
    #[serde(
        rename = "webhook_store_timeout_secs",
        deserialize_with = "values::seconds"
    )]
    pub webhook_store_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OpenAiSettings {
    #[serde(default)]
    pub api_key: Option<SecretString>,
    pub realtime_url: WsUrl,
    /// From the start of an AI call until the realtime session is configured;
    /// past it the caller goes to the assistant's failure route.
    #[serde(rename = "connect_timeout_ms", deserialize_with = "values::millis")]
    pub connect_timeout: Duration,
    /// Transcribes the caller's side.
    pub transcription_model: String,
    /// How long `transfer_to_human` and `end_call` wait for the assistant's last
    /// words to finish playing.
    #[serde(rename = "exit_grace_secs", deserialize_with = "values::seconds")]
    pub exit_grace: Duration,
    /// A Twilio mark follows each burst of the assistant's audio and, while it
    /// plays, every this much of it (default 100 ms; 0: after every delta);
    /// barge-in truncation is exact to the last mark played.
    #[serde(rename = "mark_interval_ms", deserialize_with = "values::millis")]
    pub mark_interval: Duration,
    /// Realtime WebSocket connections open at once on this node, at most: every
    /// AI call holds one for its whole length. A call past it goes to its
    /// assistant's failure route at once instead of queueing for a free one.
    pub max_connections: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CallSettings {
    #[serde(rename = "ring_timeout_secs", deserialize_with = "values::seconds")]
    pub ring_timeout: Duration,
    #[serde(rename = "media_timeout_secs", deserialize_with = "values::seconds")]
    pub media_timeout: Duration,
    #[serde(rename = "voicemail_max_secs", deserialize_with = "values::seconds")]
    pub voicemail_max: Duration,
    pub voicemail_prompt: VoicemailPrompt,
    #[serde(rename = "ringback_chunk_ms", deserialize_with = "values::millis")]
    pub ringback_chunk: Duration,
    #[serde(rename = "parking_timeout_secs", deserialize_with = "values::seconds")]
    pub parking_timeout: Duration,
    #[serde(rename = "wrap_up_secs", deserialize_with = "values::seconds")]
    pub wrap_up: Duration,
    #[serde(rename = "reconnect_grace_secs", deserialize_with = "values::seconds")]
    pub reconnect_grace: Duration,
    /// Call event streams (`GET /api/calls/{id}/events`) open at once; each
    /// reads the store once a second. Past it, `503 too-many-streams`.
    pub max_event_streams: usize,
}

/// What a caller hears before a voicemail is recorded: `builtin` (a spoken prompt
/// shipped with the engine), `none`, or a path to raw 8 kHz mu-law.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum VoicemailPrompt {
    Builtin,
    Silent,
    File(PathBuf),
}

impl From<String> for VoicemailPrompt {
    fn from(raw: String) -> Self {
        match raw.as_str() {
            "builtin" => VoicemailPrompt::Builtin,
            "none" => VoicemailPrompt::Silent,
            _ => VoicemailPrompt::File(raw.into()),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct WebSocketSettings {
    #[serde(
        rename = "heartbeat_interval_secs",
        deserialize_with = "values::seconds"
    )]
    pub heartbeat_interval: Duration,
    #[serde(rename = "client_timeout_secs", deserialize_with = "values::seconds")]
    pub client_timeout: Duration,
    pub max_frame_bytes: usize,
    pub audio_queue_frames: usize,
    pub control_queue_messages: usize,
    /// Audio pushed into a socket's queue from another thread (a bridged call's
    /// other socket on another HTTP worker) wakes that socket's writer at most
    /// this late, with every frame pushed meanwhile from the same thread: one
    /// wake-up per period instead of one per frame. 0 (the default): at once,
    /// frame by frame.
    #[serde(rename = "audio_wake_batch_ms", deserialize_with = "values::millis")]
    pub audio_wake_batch: Duration,
}

/// Prices in USD: telephony per minute (each leg rounded up to whole minutes) and
/// model tokens per million. Models missing from a table are priced 0 and flagged.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Pricing {
    pub inbound_local_per_min: f64,
    pub inbound_toll_free_per_min: f64,
    /// Outbound PSTN legs to a destination without its own rate in
    /// [`Pricing::outbound_per_min_by_region`] (never a refusal).
    pub outbound_per_min: f64,
    /// Outbound PSTN rates by the destination's region (`US`, `CA`…).
    #[serde(default)]
    pub outbound_per_min_by_region: std::collections::HashMap<Region, f64>,
    /// What the realtime model of an outbound call is expected to cost per
    /// minute, for the estimate checked against a user's budget at submit.
    pub realtime_expected_per_min: f64,
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

/// Who writes each AI call's summary and outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SummaryProvider {
    /// Anthropic's Messages API.
    Anthropic,
    /// OpenAI's Chat Completions API.
    OpenAi,
    /// No summary.
    Off,
}

/// The reasoning model that writes each AI call's summary and outcome.
#[derive(Debug, Clone, Deserialize)]
pub struct SummarySettings {
    /// `anthropic`, `openai` or `off`.
    pub provider: SummaryProvider,
    /// Unset (`""`): the provider's own API (`https://api.anthropic.com`,
    /// `https://api.openai.com`).
    #[serde(deserialize_with = "values::optional")]
    pub base_url: Option<HttpUrl>,
    /// Empty: `claude-haiku-4-5` (Anthropic) or `gpt-4.1-mini` (OpenAI).
    pub model: String,
    #[serde(rename = "timeout_secs", deserialize_with = "values::seconds")]
    pub timeout: Duration,
    pub max_tokens: u32,
    /// From `ANTHROPIC_API_KEY` or `OPENAI_API_KEY`, by provider; no key, no summary.
    #[serde(default)]
    pub api_key: Option<SecretString>,
}

impl SummarySettings {
    pub fn base_url(&self) -> &str {
        match (&self.base_url, self.provider) {
            (Some(url), _) => url.as_str(),
            (None, SummaryProvider::OpenAi) => "https://api.openai.com",
            (None, _) => "https://api.anthropic.com",
        }
    }

    pub fn model(&self) -> &str {
        match (self.model.as_str(), self.provider) {
            ("", SummaryProvider::OpenAi) => "gpt-4.1-mini",
            ("", _) => "claude-haiku-4-5",
            (model, _) => model,
        }
    }
}

impl Settings {
    /// Defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Settings> {
        let overlay = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let overlay: toml::Table = text
                    .parse()
                    .with_context(|| format!("parsing {}", path.display()))?;
                Some(overlay)
            }
            None => None,
        };
        Settings::from_sources(overlay, |name| std::env::var(name).ok())
    }

    /// The embedded defaults, `overlay` (a `--config` file) over them, then the
    /// environment as `var` reads it; refused, with the key named, unless every
    /// setting parses and they agree with each other.
    pub fn from_sources(
        overlay: Option<toml::Table>,
        var: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Settings> {
        let mut table = default_table();
        if let Some(overlay) = overlay {
            merge(&mut table, overlay);
        }
        let from_env = apply_env(&mut table, &var);
        let mut settings = parse(table, &from_env)?;
        settings.read_secrets(&var);
        settings.validate()?;
        Ok(settings)
    }

    /// The embedded defaults alone (tests and benches start here).
    pub fn defaults() -> Settings {
        parse(default_table(), &[]).expect("embedded default.toml matches Settings")
    }

    /// The secrets whose variable depends on other settings: the summary model's
    /// key (by provider) and the extra accounts' (`secret_env`).
    fn read_secrets(&mut self, var: &impl Fn(&str) -> Option<String>) {
        let secret = |name: &str| var(name).filter(|v| !v.is_empty()).map(SecretString::from);
        let summary_key = match self.summary.provider {
            SummaryProvider::Anthropic => secret("ANTHROPIC_API_KEY"),
            SummaryProvider::OpenAi => secret("OPENAI_API_KEY"),
            SummaryProvider::Off => None,
        };
        if let Some(key) = summary_key {
            self.summary.api_key = Some(key);
        }
        for account in &mut self.numbers.accounts {
            if !account.secret_env.is_empty() {
                if let Some(value) = secret(&account.secret_env) {
                    account.secret = Some(value);
                }
            }
        }
        for hook in &mut self.alerts.webhooks {
            if !hook.secret_env.is_empty() {
                if let Some(value) = secret(&hook.secret_env) {
                    hook.secret = Some(value);
                }
            }
        }
        let smtp = &mut self.alerts.smtp;
        if let Some(user) = var(alerts::SMTP_USERNAME_ENV).filter(|v| !v.is_empty()) {
            smtp.username = Some(user);
        }
        if let Some(password) = secret(alerts::SMTP_PASSWORD_ENV) {
            smtp.password = Some(password);
        }
    }

    /// What the types cannot say: bounds, and settings that must agree.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.validate_cluster()?;
        let openai = &self.openai;
        anyhow::ensure!(
            (100..=60_000).contains(&openai.connect_timeout.as_millis()),
            "openai.connect_timeout_ms must be between 100 and 60000"
        );
        anyhow::ensure!(
            openai.max_connections >= 1,
            "openai.max_connections must be at least 1"
        );
        anyhow::ensure!(
            self.calls.max_event_streams >= 1,
            "calls.max_event_streams must be at least 1"
        );
        let ws = &self.websocket;
        anyhow::ensure!(
            ws.client_timeout >= 2 * ws.heartbeat_interval,
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
            ws.audio_wake_batch <= Duration::from_millis(20),
            "websocket.audio_wake_batch_ms must be at most one 20 ms frame"
        );
        anyhow::ensure!(
            self.calls.ringback_chunk >= Duration::from_millis(20),
            "calls.ringback_chunk_ms must be at least one 20 ms frame"
        );
        let outbound = &self.outbound;
        anyhow::ensure!(
            !outbound.callback_timeout.is_zero()
                && !outbound.callback_poll.is_zero()
                && outbound.callback_concurrency >= 1
                && outbound.callback_max_attempts >= 1,
            "outbound.callback_timeout_secs, callback_poll_secs, callback_concurrency and \
             callback_max_attempts must be positive"
        );
        let texts = &self.missed_call_text;
        anyhow::ensure!(
            !texts.send_timeout.is_zero()
                && (1..=10).contains(&texts.max_attempts)
                && texts.queue_size >= 1
                && texts.concurrency >= 1,
            "missed_call_text.send_timeout_secs, queue_size and concurrency must be positive, \
             max_attempts between 1 and 10"
        );
        anyhow::ensure!(
            !texts.enabled || texts.template.is_some() || !texts.numbers.is_empty(),
            "missed_call_text.enabled needs a template (missed_call_text.template or \
             [missed_call_text.numbers.\"+1…\"] template)"
        );
        let summary = &self.summary;
        anyhow::ensure!(
            !summary.timeout.is_zero() && summary.max_tokens > 0,
            "summary.timeout_secs and summary.max_tokens must be positive"
        );
        let consent = &self.safety.consent;
        anyhow::ensure!(
            !consent.version.is_empty()
                && consent.version.len() <= 40
                && consent
                    .version
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')),
            "safety.consent.version must be 1 to 40 letters, digits, '.', '-' or '_'"
        );
        anyhow::ensure!(
            !consent.wording.trim().is_empty(),
            "safety.consent.wording must not be empty"
        );
        anyhow::ensure!(
            self.safety
                .recording
                .all_party_consent_states
                .iter()
                .all(|s| s.len() == 2 && s.chars().all(|c| c.is_ascii_uppercase())),
            "safety.recording.all_party_consent_states must be two-letter state codes (CA, WA…)"
        );
        let p = &self.pricing;
        let rates = [
            p.inbound_local_per_min,
            p.inbound_toll_free_per_min,
            p.outbound_per_min,
            p.media_stream_per_min,
            p.realtime_expected_per_min,
        ]
        .into_iter()
        .chain(p.outbound_per_min_by_region.values().copied())
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
                && !twilio.webhook_body_timeout.is_zero()
                && twilio.webhook_max_concurrent_reads >= 1
                && twilio.webhook_max_address_chars >= 16
                && !twilio.webhook_store_timeout.is_zero(),
            "twilio.webhook_*: the body limit must be at least 1024 bytes, the timeout \
             positive, at least one concurrent read, addresses at least 16 characters, \
             the store timeout positive"
        );
        anyhow::ensure!(
            !self.numbers.request_timeout.is_zero(),
            "numbers.request_timeout_secs must be positive"
        );
        anyhow::ensure!(
            !self.outbound.dial_timeout.is_zero(),
            "outbound.dial_timeout_secs must be positive"
        );
        let journal = &self.journal;
        anyhow::ensure!(
            !journal.spill_path.trim().is_empty(),
            "journal.spill_path must name a file"
        );
        anyhow::ensure!(
            journal.reject_after_attempts >= 1,
            "journal.reject_after_attempts must be ≥ 1"
        );
        anyhow::ensure!(
            self.outbound.calling_hours_start < self.outbound.calling_hours_end,
            "outbound.calling_hours_start must be before outbound.calling_hours_end \
             (calling hours are a stretch of one day)"
        );
        for (name, plan) in &self.plans.0 {
            if let Some((field, range)) = plan.out_of_range() {
                anyhow::bail!("plans.{name}.{field} must be {range}");
            }
        }
        anyhow::ensure!(
            PlanName::parse(Plans::DEFAULT).is_ok_and(|default| self.plans.get(&default).is_some()),
            "plans.{} must exist: users created without a plan are on it",
            Plans::DEFAULT
        );
        anyhow::ensure!(
            self.outbound.burst_size >= 1 && self.outbound.burst_per_second >= 1,
            "outbound.burst_size and outbound.burst_per_second must be ≥ 1"
        );
        anyhow::ensure!(
            !self.outbound.allowed_regions.is_empty(),
            "outbound.allowed_regions must name at least one region"
        );
        for category in &self.safety.categories {
            anyhow::ensure!(
                !category.name.trim().is_empty()
                    && category
                        .terms
                        .iter()
                        .all(|t| t.chars().any(char::is_alphanumeric)),
                "safety.categories: every category needs a name, and every term a letter or digit \
                 ({:?})",
                category.name
            );
        }
        let o = &self.outbound;
        anyhow::ensure!(
            o.max_concurrent >= 1 && o.max_per_user >= 1 && o.dispatch_claim_size >= 1,
            "outbound.max_concurrent, max_per_user and dispatch_claim_size must be ≥ 1"
        );
        anyhow::ensure!(
            (0.0..1.0).contains(&o.reserve_inbound),
            "outbound.reserve_inbound is a share: at least 0, below 1"
        );
        anyhow::ensure!(
            !o.dispatch_poll.is_zero() && !o.reconcile.is_zero(),
            "outbound.dispatch_poll_secs and reconcile_secs must be positive"
        );
        anyhow::ensure!(
            (1..=1000).contains(&o.batch_max_targets) && o.batch_max_concurrency >= 1,
            "outbound.batch_max_targets must be 1–1000 and batch_max_concurrency ≥ 1"
        );
        anyhow::ensure!(
            !o.result_poll.is_zero() && !o.price_wait.is_zero(),
            "outbound.result_poll_secs and price_wait_secs must be positive"
        );
        self.alerts.validate()?;
        Ok(())
    }

    /// What every call actor is configured with; reads the voicemail prompt's
    /// file, if one is set.
    pub fn call_config(&self) -> anyhow::Result<CallConfig> {
        let calls = &self.calls;
        let voicemail_prompt = match &calls.voicemail_prompt {
            VoicemailPrompt::Builtin => Bytes::from_static(BUILTIN_PROMPT),
            VoicemailPrompt::Silent => Bytes::new(),
            VoicemailPrompt::File(path) => Bytes::from(
                std::fs::read(path)
                    .with_context(|| format!("reading voicemail prompt {}", path.display()))?,
            ),
        };
        Ok(CallConfig {
            ring_timeout: calls.ring_timeout,
            media_timeout: calls.media_timeout,
            voicemail_max: calls.voicemail_max,
            voicemail_prompt,
            ringback_chunk: calls.ringback_chunk,
            parking_timeout: calls.parking_timeout,
            resume_grace: self.is_cluster().then_some(self.cluster.resume_wait),
        })
    }

    /// What every seat actor (an agent's softphone) is configured with.
    pub fn seat_config(&self) -> SeatConfig {
        SeatConfig {
            heartbeat_interval: self.websocket.heartbeat_interval,
            client_timeout: self.websocket.client_timeout,
            wrap_up: self.calls.wrap_up,
            reconnect_grace: self.calls.reconnect_grace,
        }
    }

    /// The queues of every socket's outbox.
    pub fn outbox_limits(&self) -> OutboxLimits {
        OutboxLimits {
            audio_frames: self.websocket.audio_queue_frames,
            control_messages: self.websocket.control_queue_messages,
            wake_batch: self.websocket.audio_wake_batch,
        }
    }
}

fn default_table() -> toml::Table {
    DEFAULT_TOML
        .parse()
        .expect("embedded default.toml is valid TOML")
}

/// Sets the keys of the environment variables that are set (secrets only when not
/// empty) in `table`; returns which key came from which variable.
fn apply_env(
    table: &mut toml::Table,
    var: &impl Fn(&str) -> Option<String>,
) -> Vec<(&'static str, &'static str)> {
    let mut applied = Vec::new();
    let plain = ENV_KEYS.iter().map(|&(name, key)| (name, key, var(name)));
    let secrets = SECRET_ENV_KEYS
        .iter()
        .map(|&(name, key)| (name, key, var(name).filter(|v| !v.is_empty())));
    for (name, key, value) in plain.chain(secrets) {
        if let Some(value) = value {
            set_key(table, key, value);
            applied.push((key, name));
        }
    }
    applied
}

/// Sets the dotted `key` (`twilio.api_base`) of `table` to a string.
fn set_key(table: &mut toml::Table, key: &str, value: String) {
    let (parents, last) = key
        .rsplit_once('.')
        .map_or((None, key), |(p, l)| (Some(p), l));
    let mut table = table;
    for part in parents.into_iter().flat_map(|p| p.split('.')) {
        let entry = table
            .entry(part)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        table = entry.as_table_mut().expect("a table was just put here");
    }
    table.insert(last.to_owned(), toml::Value::String(value));
}

/// Deserializes the merged settings; an error names the key that did not parse,
/// and the variable when it came from the environment.
fn parse(table: toml::Table, from_env: &[(&str, &str)]) -> anyhow::Result<Settings> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|err| {
        let key = err.path().to_string();
        let var = from_env
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, name)| format!(" ({name})"))
            .unwrap_or_default();
        anyhow::anyhow!(
            "invalid configuration: {key}{var}: {}",
            err.inner().message()
        )
    })
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
    fn recording_is_off_by_default_and_all_party_states_are_the_usual_eleven() {
        let defaults = Settings::defaults().safety.recording;
        assert!(defaults.workspaces.is_empty());
        assert_eq!(
            defaults.plan("default", "+17205550123"),
            crate::domain::recording::RecordingPlan::Off
        );
        assert_eq!(
            defaults.all_party_consent_states,
            ["CA", "DE", "FL", "IL", "MD", "MA", "MI", "MT", "NH", "PA", "WA"]
        );
    }

    /// `overlay` (a `--config` file) and `env` over the defaults.
    fn load(overlay: &str, env: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let overlay: toml::Table = overlay.parse().expect("a TOML overlay");
        Settings::from_sources(Some(overlay), |name| {
            env.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    fn refusal(overlay: &str, env: &[(&str, &str)]) -> String {
        load(overlay, env)
            .expect_err("a refused configuration")
            .to_string()
    }

    fn exposed(secret: &Option<SecretString>) -> Option<String> {
        secret.as_ref().map(|s| s.expose_secret().to_owned())
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = Settings::defaults();
        assert_eq!(s.bind, "127.0.0.1:8080");
        assert!(s.database_url.starts_with("sqlite:"));
        assert_eq!(s.calls.ring_timeout, Duration::from_secs(30));
        assert_eq!(s.calls.voicemail_max, Duration::from_secs(120));
        assert_eq!(s.calls.ringback_chunk, Duration::from_millis(200));
        assert_eq!(s.public_url, None);
        assert_eq!(s.calls.voicemail_prompt, VoicemailPrompt::Builtin);
        assert!(s.validate().is_ok());
        assert!(load("", &[]).is_ok());
    }

    #[test]
    fn environment_overrides_the_file() {
        let s = load(
            "bind = \"0.0.0.0:7000\"\nnode_id = \"from-file\"",
            &[
                ("SWITCHBOARD_BIND", "0.0.0.0:9000"),
                ("DATABASE_URL", "postgres://db/x"),
                ("TWILIO_AUTH_TOKEN", "tw-auth-value"),
                ("SWITCHBOARD_ADMIN_TOKEN", ""),
            ],
        )
        .expect("valid");
        assert_eq!(s.bind, "0.0.0.0:9000");
        assert_eq!(s.node_id, "from-file");
        assert_eq!(s.database_url, "postgres://db/x");
        assert_eq!(
            exposed(&s.twilio.auth_token),
            Some("tw-auth-value".to_owned())
        );
        assert!(s.admin_token.is_none(), "an empty secret is unset");
        // The value, not the word: `[cluster] secret` is a field name.
        assert!(
            !format!("{s:?}").contains("tw-auth-value"),
            "secrets never print"
        );
    }

    #[test]
    fn the_summary_model_is_configured_from_the_environment() {
        let s = Settings::defaults();
        assert_eq!(s.summary.provider, SummaryProvider::Anthropic);
        assert_eq!(s.summary.base_url(), "https://api.anthropic.com");
        assert_eq!(s.summary.model(), "claude-haiku-4-5");
        assert!(s.summary.api_key.is_none());
        let openai = [
            ("SWITCHBOARD_SUMMARY_PROVIDER", "openai"),
            ("OPENAI_API_KEY", "sk-test"),
            ("ANTHROPIC_API_KEY", "not-this-one"),
        ];
        let s = load("", &openai).expect("valid");
        assert_eq!(s.summary.base_url(), "https://api.openai.com");
        assert_eq!(s.summary.model(), "gpt-4.1-mini");
        assert_eq!(exposed(&s.summary.api_key), Some("sk-test".to_owned()));
        let s = load(
            "",
            &[
                openai[0],
                openai[1],
                ("SWITCHBOARD_SUMMARY_BASE_URL", "http://127.0.0.1:9/"),
                ("SWITCHBOARD_SUMMARY_MODEL", "gpt-4o-mini"),
            ],
        )
        .expect("valid");
        assert_eq!(s.summary.base_url(), "http://127.0.0.1:9");
        assert_eq!(s.summary.model(), "gpt-4o-mini");
        let off = load("", &[("SWITCHBOARD_SUMMARY_PROVIDER", "off")]).expect("valid");
        assert_eq!(off.summary.provider, SummaryProvider::Off);

        let err = refusal("", &[("SWITCHBOARD_SUMMARY_PROVIDER", "carrier-pigeon")]);
        assert!(
            err.contains("summary.provider (SWITCHBOARD_SUMMARY_PROVIDER)")
                && err.contains("carrier-pigeon"),
            "{err}"
        );
        let err = refusal("", &[("SWITCHBOARD_SUMMARY_BASE_URL", "api.openai.com")]);
        assert!(
            err.contains("summary.base_url (SWITCHBOARD_SUMMARY_BASE_URL)"),
            "{err}"
        );
    }

    #[test]
    fn negative_prices_are_refused() {
        let mut s = Settings::defaults();
        s.pricing.media_stream_per_min = -1.0;
        assert!(s.validate().is_err());
        let err = refusal("[pricing]\nmedia_stream_per_min = -1.0", &[]);
        assert!(err.contains("pricing"), "{err}");
    }

    #[test]
    fn provider_accounts_come_from_the_file_and_their_secrets_from_the_environment() {
        let accounts = "[[numbers.accounts]]\nprovider = \"twilio\"\nworkspace = \"staging\"\n\
                        account_sid = \"AC2\"\nsecret_env = \"TWILIO_STAGING_AUTH_TOKEN\"";
        let s = load(
            accounts,
            &[
                ("VAPI_API_KEY", "vapi-key"),
                ("RETELL_API_BASE", "http://127.0.0.1:9/retell"),
                ("TWILIO_STAGING_AUTH_TOKEN", "staging-token"),
            ],
        )
        .expect("valid");
        assert_eq!(
            exposed(&s.numbers.vapi.api_key),
            Some("vapi-key".to_owned())
        );
        assert_eq!(
            s.numbers.retell.api_base.as_str(),
            "http://127.0.0.1:9/retell"
        );
        assert!(s.numbers.retell.api_key.is_none());
        let staging = &s.numbers.accounts[0];
        assert_eq!(
            (
                staging.provider,
                staging.workspace.as_str(),
                &staging.api_base
            ),
            (ProviderKind::Twilio, "staging", &None)
        );
        assert_eq!(exposed(&staging.secret), Some("staging-token".to_owned()));
        assert!(
            !format!("{s:?}").contains("staging-token"),
            "secrets never print"
        );

        let err = refusal(&accounts.replace("\"twilio\"", "\"plivo\""), &[]);
        assert!(
            err.contains("numbers.accounts[0].provider") && err.contains("plivo"),
            "an unknown provider is refused at start-up: {err}"
        );
        let err = refusal(&accounts.replace("\"staging\"", "\"Staging Area\""), &[]);
        assert!(err.contains("numbers.accounts[0].workspace"), "{err}");
        let err = refusal("", &[("VAPI_API_BASE", "ftp://vapi.example")]);
        assert!(
            err.contains("numbers.vapi.api_base (VAPI_API_BASE)"),
            "{err}"
        );
    }

    #[test]
    fn a_realtime_url_that_is_not_a_websocket_is_refused() {
        let err = refusal(
            "",
            &[("OPENAI_REALTIME_URL", "https://api.openai.com/v1/realtime")],
        );
        assert!(
            err.contains("openai.realtime_url (OPENAI_REALTIME_URL)")
                && err.contains("ws:// or wss://"),
            "{err}"
        );
        let err = refusal("[openai]\nconnect_timeout_ms = 0", &[]);
        assert!(err.contains("openai.connect_timeout_ms"), "{err}");
        let mut s = Settings::defaults();
        s.openai.connect_timeout = Duration::ZERO;
        assert!(s.validate().is_err());
    }

    #[test]
    fn a_public_url_must_be_an_http_url() {
        let s = load(
            "",
            &[("SWITCHBOARD_PUBLIC_URL", "https://calls.example.com/")],
        )
        .expect("valid");
        assert_eq!(
            s.public_url.as_ref().map(HttpUrl::as_str),
            Some("https://calls.example.com")
        );
        let s = load("", &[("SWITCHBOARD_PUBLIC_URL", "")]).expect("empty is unset");
        assert_eq!(s.public_url, None);
        let err = refusal("", &[("SWITCHBOARD_PUBLIC_URL", "calls.example.com")]);
        assert!(err.contains("public_url (SWITCHBOARD_PUBLIC_URL)"), "{err}");
    }

    #[test]
    fn the_missed_call_text_is_off_by_default_and_its_templates_are_parsed_at_load() {
        let defaults = Settings::defaults();
        assert!(!defaults.missed_call_text.enabled);
        let s = load(
            "[missed_call_text]\nenabled = true\n\
             [missed_call_text.numbers.\"+1 415 555 0100\"]\ntemplate = \"Call {number} back\"",
            &[],
        )
        .expect("valid");
        let texts = &s.missed_call_text;
        assert_eq!(
            texts
                .template_for("+14155550100")
                .map(|t| t.render("+14155559876", "+14155550100")),
            Some("Call +14155550100 back".to_owned())
        );
        assert_eq!(
            texts.template_for("+14155550199"),
            texts.template.as_ref(),
            "other numbers have the default"
        );
        let only_listed = load(
            "[missed_call_text]\ntemplate = \"\"\n\
             [missed_call_text.numbers.\"+14155550100\"]\ntemplate = \"Hi\"",
            &[],
        )
        .expect("valid");
        assert!(only_listed
            .missed_call_text
            .template_for("+14155550199")
            .is_none());
    }

    #[test]
    fn an_unknown_placeholder_or_an_over_long_text_stops_the_engine_at_start_up() {
        let long = "x".repeat(1600);
        for (overlay, says) in [
            (
                "[missed_call_text]\ntemplate = \"Hi {name}\"".to_owned(),
                "unknown placeholder {name}",
            ),
            (
                format!("[missed_call_text]\ntemplate = \"{long}{{caller}}\""),
                "Twilio takes at most 1600",
            ),
            (
                "[missed_call_text.numbers.\"+14155550100\"]\ntemplate = \"{numbr}\"".to_owned(),
                "numbers.\"+14155550100\".template",
            ),
            (
                "[missed_call_text.numbers.\"555\"]\ntemplate = \"Hi\"".to_owned(),
                "numbers.\"555\"",
            ),
            (
                "[missed_call_text]\nenabled = true\ntemplate = \"\"".to_owned(),
                "needs a template",
            ),
            (
                "[missed_call_text]\nmax_attempts = 0".to_owned(),
                "max_attempts",
            ),
        ] {
            let err = load(&overlay, &[]).expect_err("refused");
            let text = format!("{err:#}");
            assert!(text.contains(says), "{overlay}: {text}");
        }
    }

    #[test]
    fn durations_that_are_not_seconds_are_refused_with_their_key() {
        let s = load("[calls]\nring_timeout_secs = 0.5\nwrap_up_secs = 2", &[]).expect("valid");
        assert_eq!(s.calls.ring_timeout, Duration::from_millis(500));
        assert_eq!(s.calls.wrap_up, Duration::from_secs(2));
        for (overlay, key) in [
            (
                "[calls]\nring_timeout_secs = -1.0",
                "calls.ring_timeout_secs",
            ),
            (
                "[calls]\nparking_timeout_secs = \"2m\"",
                "calls.parking_timeout_secs",
            ),
            (
                "[journal]\nshutdown_timeout_secs = nan",
                "journal.shutdown_timeout_secs",
            ),
            ("[openai]\nexit_grace_secs = -0.1", "openai.exit_grace_secs"),
            (
                "[calls]\nringback_chunk_ms = -20",
                "calls.ringback_chunk_ms",
            ),
        ] {
            let err = refusal(overlay, &[]);
            assert!(err.contains(key), "{overlay}: {err}");
        }
        let err = refusal(
            "[websocket]\nheartbeat_interval_secs = 6.0\nclient_timeout_secs = 10.0",
            &[],
        );
        assert!(err.contains("twice"), "{err}");
    }

    #[test]
    fn the_actors_are_configured_from_the_settings() {
        let s = load(
            "[calls]\nring_timeout_secs = 0.3\nvoicemail_prompt = \"none\"\nwrap_up_secs = 1.5",
            &[],
        )
        .expect("valid");
        let call = s.call_config().expect("a call config");
        assert_eq!(call.ring_timeout, Duration::from_millis(300));
        assert_eq!(call.ringback_chunk, Duration::from_millis(200));
        assert!(call.voicemail_prompt.is_empty());
        let builtin = Settings::defaults().call_config().expect("a call config");
        assert_eq!(builtin.voicemail_prompt.as_ref(), BUILTIN_PROMPT);
        let seat = s.seat_config();
        assert_eq!(seat.wrap_up, Duration::from_millis(1_500));
        assert_eq!(seat.heartbeat_interval, Duration::from_secs(5));
        assert_eq!(s.outbox_limits().audio_frames, 50);
        let mut missing = s.clone();
        missing.calls.voicemail_prompt = VoicemailPrompt::File("/nonexistent/prompt.ul".into());
        let err = missing.call_config().expect_err("no such file");
        assert!(err.to_string().contains("/nonexistent/prompt.ul"), "{err}");
    }

    #[test]
    fn calling_hours_are_times_of_day_parsed_at_load() {
        let time = |h, m| jiff::civil::Time::new(h, m, 0, 0).expect("a time");
        let s = Settings::defaults();
        assert_eq!(s.outbound.calling_hours_start, time(8, 0));
        assert_eq!(s.outbound.calling_hours_end, time(21, 0));
        let s = load(
            "[outbound]\ncalling_hours_start = \"09:30\"\ncalling_hours_end = \"17:00\"",
            &[],
        )
        .expect("valid");
        assert_eq!(
            (s.outbound.calling_hours_start, s.outbound.calling_hours_end),
            (time(9, 30), time(17, 0))
        );
        let err = refusal("[outbound]\ncalling_hours_start = \"8am\"", &[]);
        assert!(
            err.contains("outbound.calling_hours_start") && err.contains("HH:MM"),
            "{err}"
        );
        let err = refusal("[outbound]\ncalling_hours_end = \"07:00\"", &[]);
        assert!(err.contains("before outbound.calling_hours_end"), "{err}");
    }

    #[test]
    fn outbound_regions_and_proxies_are_parsed_at_load() {
        let s = Settings::defaults();
        let regions: Vec<String> = s
            .outbound
            .allowed_regions
            .iter()
            .map(Region::to_string)
            .collect();
        assert_eq!(regions, ["US", "CA"]);
        assert!(s.outbound.trusted_proxies.is_empty());
        let s = load(
            "[outbound]\nallowed_regions = [\"GB\"]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]",
            &[],
        )
        .expect("valid");
        assert_eq!(
            s.outbound.allowed_regions,
            ["GB".parse().expect("a region")]
        );
        assert_eq!(s.outbound.trusted_proxies.len(), 2);

        let err = refusal("[outbound]\nallowed_regions = [\"US\", \"Canada\"]", &[]);
        assert!(
            err.contains("outbound.allowed_regions[1]") && err.contains("Canada"),
            "{err}"
        );
        let err = refusal("[outbound]\ntrusted_proxies = [\"10.0.0.300\"]", &[]);
        assert!(
            err.contains("outbound.trusted_proxies") && err.contains("10.0.0.300"),
            "{err}"
        );
        let err = refusal("[outbound]\nallowed_regions = []", &[]);
        assert!(err.contains("outbound.allowed_regions"), "{err}");
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

    #[test]
    fn plans_default_to_the_issue_s_and_more_can_be_added() {
        let s = Settings::defaults();
        let plan = |name: &str| {
            s.plans
                .get(&PlanName::parse(name).expect("a plan name"))
                .copied()
        };
        assert_eq!(
            plan("free"),
            Some(PlanLimits {
                calls_per_hour: 5,
                calls_per_day: 20,
                monthly_budget_usd: 10.0,
                max_call_minutes: 5,
            })
        );
        assert_eq!(
            plan("pro"),
            Some(PlanLimits {
                calls_per_hour: 10,
                calls_per_day: 50,
                monthly_budget_usd: 200.0,
                max_call_minutes: 15,
            })
        );
        let s = load(
            "[plans.team]\ncalls_per_hour = 30\ncalls_per_day = 300\n\
             monthly_budget_usd = 1000.0\nmax_call_minutes = 30",
            &[],
        )
        .expect("valid");
        assert_eq!(s.plans.names().count(), 3);
        let refused = refusal("[plans.pro]\nmax_call_minutes = 0", &[]);
        assert!(refused.contains("plans.pro.max_call_minutes"), "{refused}");
        let refused = refusal(
            "[plans.team]\ncalls_per_hour = 30\ncalls_per_day = 300\nmonthly_budget_usd = 1.0",
            &[],
        );
        assert!(refused.contains("max_call_minutes"), "{refused}");
        let refused = refusal(
            "[plans.Team]\ncalls_per_hour = 1\ncalls_per_day = 1\n\
             monthly_budget_usd = 1.0\nmax_call_minutes = 1",
            &[],
        );
        assert!(refused.contains("plan name"), "{refused}");
    }

    #[test]
    fn cluster_mode_needs_a_node_url_and_a_long_enough_secret() {
        let single = Settings::defaults();
        assert!(!single.is_cluster());
        assert_eq!(single.cluster.redis_prefix, "switchboard:");
        assert!(single.cluster.node_ttl <= MAX_NODE_TTL);
        let redis = ("REDIS_URL", "redis://127.0.0.1:6379");
        let node = ("SWITCHBOARD_NODE_ID", "a");
        let url = ("SWITCHBOARD_NODE_URL", "http://10.0.0.1:8080");
        let secret = ("SWITCHBOARD_CLUSTER_SECRET", "0123456789abcdef");
        let refused = refusal("", &[redis, node, secret]);
        assert!(refused.contains("SWITCHBOARD_NODE_URL"), "{refused}");
        let refused = refusal("", &[redis, node, url]);
        assert!(refused.contains("SWITCHBOARD_CLUSTER_SECRET"), "{refused}");
        let refused = refusal(
            "",
            &[redis, node, url, ("SWITCHBOARD_CLUSTER_SECRET", "short")],
        );
        assert!(refused.contains("too short"), "{refused}");
        let refused = refusal("", &[redis, ("SWITCHBOARD_NODE_ID", "a b"), url, secret]);
        assert!(refused.contains("SWITCHBOARD_NODE_ID"), "{refused}");
        let refused = refusal(
            "",
            &[redis, node, ("SWITCHBOARD_NODE_URL", "ftp://x"), secret],
        );
        assert!(
            refused.contains("cluster.node_url (SWITCHBOARD_NODE_URL)"),
            "{refused}"
        );
        let refused = refusal("[cluster]\nnode_ttl_ms = 6000", &[]);
        assert!(refused.contains("node_ttl_ms"), "{refused}");
        let refused = refusal("[cluster]\nheartbeat_interval_ms = 3000", &[]);
        assert!(refused.contains("twice"), "{refused}");

        let s = load(
            "",
            &[
                redis,
                node,
                url,
                secret,
                ("SWITCHBOARD_REDIS_PREFIX", "t1:"),
            ],
        )
        .expect("a valid node");
        assert!(s.is_cluster());
        assert_eq!(s.cluster.redis_prefix, "t1:");
        assert_eq!(
            s.cluster.node_url.as_ref().map(HttpUrl::as_str),
            Some("http://10.0.0.1:8080")
        );
        assert_eq!(
            exposed(&s.cluster.secret),
            Some("0123456789abcdef".to_owned())
        );
        assert!(
            !format!("{s:?}").contains("0123456789abcdef"),
            "the secret never prints"
        );
    }
}
