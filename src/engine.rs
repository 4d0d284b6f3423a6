//! The engine's shared state: what every adapter (Twilio webhooks and streams,
//! softphone and console sockets, the admin API) reaches. Adapters depend on this,
//! never on [`crate::startup`], which only builds the engine and runs the server.

use std::sync::Arc;

use secrecy::SecretString;
use switchboard_actors::call::{CallConfig, CallDeps};
use switchboard_actors::coordinator::CoordinatorHandle;
use switchboard_actors::number::NumberBookHandle;
use switchboard_actors::outbox::OutboxLimits;
use switchboard_actors::parking::ParkingHandle;
use switchboard_actors::registry::RegistryHandle;
use switchboard_actors::seat::SeatConfig;
use switchboard_actors::stats::EngineStats;

use crate::alerts::AlertBoard;
use crate::auth::TokenCache;
use crate::cluster::link::Links;
use crate::cluster::Cluster;
use crate::config::Settings;
use crate::outbound::clock::ClockHandle;
use crate::outbound::dispatch::DispatchWaker;
use crate::outbound::hours::CallingHours;
use crate::outbound::submit::BurstLimiter;
use crate::providers::ProviderAccount;
use crate::safety::predial::Classifier;
use crate::safety::screen::Screener;
use crate::store::journal::JournalWriter;
use crate::store::Store;

/// Everything a request handler can reach; cheap to clone into each worker.
#[derive(Clone)]
pub struct Engine {
    pub settings: Arc<Settings>,
    /// `http(s)://host[:port]` Twilio reaches us at, without a trailing slash.
    pub public_url: Arc<str>,
    pub admin_token: Arc<SecretString>,
    pub store: Store,
    pub journal: JournalWriter,
    pub coordinator: CoordinatorHandle,
    pub registry: RegistryHandle,
    pub parking: ParkingHandle,
    /// E.164 → the number's actor: the voice webhook looks numbers up here, and a
    /// changed route reaches the number's next call through it.
    pub numbers: NumberBookHandle,
    pub stats: Arc<EngineStats>,
    pub call_config: Arc<CallConfig>,
    pub seat_config: SeatConfig,
    pub outbox_limits: OutboxLimits,
    /// The phone-number providers' accounts (Twilio, Vapi, Retell), by workspace.
    pub providers: Arc<[ProviderAccount]>,
    /// Agents by token hash, so softphones connect during a database outage.
    pub tokens: TokenCache,
    /// "Now" for the outbound gates: the system clock, or a test's
    /// `ManualClock`. The gates read no other.
    pub clock: ClockHandle,
    /// The outbound calling-hours window (`[outbound] calling_hours_*`).
    pub calling_hours: CallingHours,
    /// The per-user burst limiter in front of `POST /api/calls/outbound`.
    pub outbound_burst: Arc<BurstLimiter>,
    /// What a call needs to start: the answer webhook of an outbound call
    /// launches its CallActor with these (inbound calls start in their number's
    /// actor, with the same).
    pub call_deps: CallDeps,
    /// Wakes the `OutboundDispatcher` when a call is submitted.
    pub outbound_dispatch: DispatchWaker,
    /// The safety word categories, compiled once (`[[safety.categories]]`):
    /// objectives are screened with it at submit and at dispatch.
    pub screener: Arc<Screener>,
    /// The reasoning model that classifies objectives at submit, when
    /// `[safety.classifier]` is on and a summary model is configured.
    pub objective_classifier: Option<Arc<Classifier>>,
    /// Every alert's state (firing, last value) and its notifications' fate,
    /// as the alert evaluator keeps them and `/metrics` shows them.
    pub alerts: AlertBoard,
    /// The call event streams open now (`GET /api/calls/{id}/events`), against
    /// `calls.max_event_streams`.
    pub event_streams: Arc<std::sync::atomic::AtomicUsize>,
    /// This node's handle on the cluster when `REDIS_URL` is set (cluster mode);
    /// `None` on a single node.
    pub cluster: Option<Cluster>,
    /// Set once this node drains (SIGTERM in cluster mode): `/readyz` fails so
    /// the load balancer sends it nothing new, and it adopts no call.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
    /// This node's links to the other nodes (cluster mode): seats and calls on
    /// other nodes are reached through them.
    pub links: Option<Links>,
}

impl Engine {
    /// The `ws(s)://` URL Twilio opens the media stream on: the public URL's, or
    /// in cluster mode this node's own (`SWITCHBOARD_NODE_URL`), so a call's media
    /// and its actor live on the same node.
    pub fn stream_url(&self) -> String {
        let base: &str = match &self.cluster {
            Some(cluster) => cluster.node_url(),
            None => &self.public_url,
        };
        stream_url_of(base)
    }
}

/// The `ws(s)://` media stream URL of the engine at `base` (`http(s)://…`).
pub fn stream_url_of(base: &str) -> String {
    let base = base.trim_end_matches('/');
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_string()
    };
    format!("{ws}/twilio/stream")
}
