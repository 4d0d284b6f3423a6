//! SeatActor: one agent's live softphone connection. Owns the agent's presence, the
//! calls ringing it, the parked calls it may retrieve and the call it is on; driven
//! by the socket's input stream, writing through its [`Outbox`].

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use bytestring::ByteString;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

use crate::call::{CallHandle, ClaimResult};
use crate::coordinator::{CoordinatorHandle, RegisterSeat, UpdateSeat};
use crate::error::EngineError;
use crate::ids::{AgentId, CallId, Workspace};
use crate::journal::{now_ms, rfc3339};
use crate::machine::{CancelReason, ClaimKind};
use crate::outbox::{AudioPort, Outbox, CLOSE_GOING_AWAY, CLOSE_NORMAL, CLOSE_POLICY};
use crate::parking::ParkingHandle;
use crate::stats::EngineStats;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    Available,
    Away,
    /// On a call (set by the engine).
    Busy,
    /// Just off a call, for `wrap_up_secs` (set by the engine).
    WrapUp,
}

impl Presence {
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Available => "available",
            Presence::Away => "away",
            Presence::Busy => "busy",
            Presence::WrapUp => "wrap_up",
        }
    }
}

/// What the softphone asked for: a client text frame, read straight into this type
/// (`{"type":"answer","call_id":…}`; ids are checked by their parsers as they are read).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SeatCommand {
    Presence {
        /// Only `available` or `away`: the others are the engine's to set.
        #[serde(deserialize_with = "chosen_presence")]
        status: Presence,
    },
    Answer {
        call_id: CallId,
    },
    Decline {
        call_id: CallId,
    },
    Hangup {
        call_id: CallId,
    },
    Park {
        call_id: CallId,
    },
    Unpark {
        call_id: CallId,
    },
    Transfer {
        call_id: CallId,
        agent_id: AgentId,
        /// `"mode": "warm"`; `"blind"`, `null` or no mode is a blind transfer.
        #[serde(default, rename = "mode", deserialize_with = "warm_mode")]
        warm: bool,
    },
    TransferComplete {
        call_id: CallId,
    },
    TransferCancel {
        call_id: CallId,
    },
    /// Keys pressed on the softphone's keypad, played into the call as in-band
    /// DTMF tones.
    Dtmf {
        call_id: CallId,
        #[serde(deserialize_with = "dtmf_digits")]
        digits: String,
    },
}

/// The most digits one `dtmf` message may carry.
pub const MAX_DTMF_DIGITS: usize = 32;

impl SeatCommand {
    /// Every command's `type`, to tell an unknown type from a bad message of a known one.
    pub const TYPES: &'static [&'static str] = &[
        "presence",
        "answer",
        "decline",
        "hangup",
        "park",
        "unpark",
        "transfer",
        "transfer_complete",
        "transfer_cancel",
        "dtmf",
    ];
}

/// 1 to [`MAX_DTMF_DIGITS`] keys of a phone's keypad: `0-9`, `*`, `#`, `A-D` (no
/// pause: every key is a tone).
fn dtmf_digits<'de, D: Deserializer<'de>>(digits: D) -> Result<String, D::Error> {
    let digits = String::deserialize(digits)?;
    let count = digits.chars().count();
    if count == 0 || count > MAX_DTMF_DIGITS {
        return Err(D::Error::custom(format!(
            "digits must be 1 to {MAX_DTMF_DIGITS} keys, not {count}"
        )));
    }
    match digits
        .chars()
        .position(|c| !matches!(c, '0'..='9' | '*' | '#' | 'A'..='D'))
    {
        Some(position) => Err(D::Error::custom(format!(
            "digits may only be 0-9, *, #, A-D: {:?} (at position {position}) is not",
            digits.chars().nth(position).unwrap_or_default()
        ))),
        None => Ok(digits),
    }
}

fn chosen_presence<'de, D: Deserializer<'de>>(status: D) -> Result<Presence, D::Error> {
    match String::deserialize(status)?.as_str() {
        "available" => Ok(Presence::Available),
        "away" => Ok(Presence::Away),
        other => Err(D::Error::custom(format!(
            "presence status must be \"available\" or \"away\", not {other:?}"
        ))),
    }
}

fn warm_mode<'de, D: Deserializer<'de>>(mode: D) -> Result<bool, D::Error> {
    match Option::<String>::deserialize(mode)?.as_deref() {
        None | Some("blind") => Ok(false),
        Some("warm") => Ok(true),
        Some(other) => Err(D::Error::custom(format!(
            "transfer mode must be \"blind\" or \"warm\", not {other:?}"
        ))),
    }
}

/// One item of the softphone's input stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeatInput {
    Command(SeatCommand),
    /// A binary frame: audio for the connected call.
    Audio(Bytes),
    /// The softphone answered a ping: it reads what it is sent. Only this keeps it
    /// alive: a softphone that sends audio but never reads is as gone as a silent one.
    Pong,
    /// A message the edge could not turn into a command; answered with `error`.
    Invalid {
        code: &'static str,
        message: String,
    },
    /// The peer broke the protocol (e.g. an oversized frame): the socket is closed.
    Violation(String),
}

/// A call listed in a `state` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateCall {
    pub call_id: CallId,
    pub status: &'static str,
    pub slot: Option<u32>,
    pub from: String,
    pub to: String,
}

/// `ring`: a call rings this seat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ring {
    pub call_id: CallId,
    pub from: String,
    pub to: String,
    /// The agent who transferred the call here, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transferred_by: Option<AgentId>,
    /// A warm transfer: the caller holds while this agent talks with the first one.
    #[serde(default, skip_serializing_if = "is_false")]
    pub consult: bool,
    /// What an AI assistant said about the caller before handing over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// `parked`: a call of the workspace is in the parking lot (supervisors get it too,
/// with the workspace); also each call of a `parking` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Parked {
    pub call_id: CallId,
    pub slot: u32,
    /// The caller's number.
    pub from: String,
    /// The number called.
    pub to: String,
    pub parked_by: Option<AgentId>,
    /// The name of the agent who parked it (`None` for a supervisor).
    pub parked_by_name: Option<String>,
    /// When it was parked (RFC 3339).
    pub parked_at: String,
    pub reason: &'static str,
}

/// One seat of a `roster`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RosterEntry {
    pub agent_id: AgentId,
    pub name: String,
    pub presence: Presence,
    pub on_call: bool,
}

/// `roster`: every connected seat of the workspace, sorted by name. One list is
/// shared by every seat it is sent to, and so is its JSON: rendered once, by
/// the first socket that writes it ([`Roster::json`]), not once per seat — a
/// floor of 1,000 seats signing in would otherwise render ~100 KB per seat per
/// change.
#[derive(Debug, Clone)]
pub struct Roster {
    pub agents: Arc<Vec<RosterEntry>>,
    json: Arc<OnceLock<ByteString>>,
}

impl Roster {
    pub fn new(agents: Vec<RosterEntry>) -> Self {
        Self {
            agents: Arc::new(agents),
            json: Arc::default(),
        }
    }

    /// The whole `roster` message as JSON, rendered by the first caller of any
    /// copy of this roster; the others share it.
    pub fn json(&self) -> ByteString {
        self.json
            .get_or_init(|| {
                serde_json::to_string(&SeatOutput::Roster(self.clone()))
                    .unwrap_or_default()
                    .into()
            })
            .clone()
    }
}

/// Two rosters are equal when their seats are (the JSON follows from them).
impl PartialEq for Roster {
    fn eq(&self, other: &Self) -> bool {
        self.agents == other.agents
    }
}

impl Eq for Roster {}

impl Serialize for Roster {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut roster = serializer.serialize_struct("Roster", 1)?;
        roster.serialize_field("agents", self.agents.as_slice())?;
        roster.end()
    }
}

/// `unparked`: a call left the parking lot (supervisors get it too, with the
/// workspace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unparked {
    pub call_id: CallId,
    pub slot: u32,
    /// Who took it; `None` when it went to voicemail or ended.
    pub agent_id: Option<AgentId>,
}

fn is_false(value: &bool) -> bool {
    !value
}

/// What the engine tells the softphone: serialised as it is, one JSON text frame
/// each (`{"type":"ring_cancel","call_id":…,"reason":…}`; see docs/protocol.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SeatOutput {
    /// The first message of every connection: who this seat is.
    Welcome {
        agent_id: AgentId,
        name: String,
        workspace: Workspace,
        presence: Presence,
    },
    Presence {
        status: Presence,
        /// When a `wrap_up` ends (RFC 3339).
        #[serde(skip_serializing_if = "Option::is_none")]
        until: Option<String>,
    },
    /// The workspace's connected seats (after `welcome`, then on every change).
    Roster(Roster),
    /// The workspace's parking lot, by slot (on connect, after the roster).
    Parking {
        calls: Vec<Parked>,
    },
    Ring(Ring),
    RingCancel {
        call_id: CallId,
        reason: CancelReason,
    },
    ClaimLost {
        call_id: CallId,
    },
    Connected {
        call_id: CallId,
        /// The caller's number.
        from: String,
        /// The number called.
        to: String,
        /// Why this seat has the call without having answered it, if so.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'static str>,
    },
    CallEnded {
        call_id: CallId,
        reason: String,
    },
    Parked(Parked),
    Unparked(Unparked),
    /// This seat is no longer on the call, which goes on without it.
    Released {
        call_id: CallId,
        reason: &'static str,
    },
    TransferStatus {
        call_id: CallId,
        agent_id: AgentId,
        status: &'static str,
    },
    /// After a reconnect: the calls this agent left behind.
    State {
        calls: Vec<StateCall>,
    },
    Error {
        code: &'static str,
        message: String,
    },
}

/// Messages from calls and the coordinator to a seat. Most are a message for the
/// softphone ([`SeatNotice::Tell`]); the others carry what only the seat uses (a
/// call's handle, an audio port) or are the seat's alone.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub enum SeatNotice {
    /// A call rings this seat: kept, to be answered, and passed on as `ring` (a seat
    /// that is busy or away withdraws from it instead).
    Ring { call: CallHandle, ring: Ring },
    /// A call of the workspace was parked: kept, to be unparked, and passed on.
    Parked { call: CallHandle, parked: Parked },
    /// The workspace's parking lot as this seat connects: kept, to be unparked,
    /// and passed on as `parking`.
    Lot { calls: Vec<(CallHandle, Parked)> },
    /// The call was given to this seat without its `answer` (a supervisor's
    /// unpark, a transfer coming back): told as `connected` with `reason`.
    Assigned {
        call: CallHandle,
        peer_audio: AudioPort,
        reason: &'static str,
    },
    /// Send this seat's audio somewhere else from now on (warm transfers).
    AudioTo {
        call_id: CallId,
        peer_audio: AudioPort,
    },
    /// A newer connection of the same agent took over.
    Replaced,
    /// A message for the softphone, passed on if it concerns this seat: a
    /// `ring_cancel` of a call ringing it, a `call_ended` or `released` of its call
    /// (which frees the seat); `unparked` and `transfer_status` always.
    Tell(SeatOutput),
}

/// How a call reaches a seat: its notices and its audio.
#[derive(Clone)]
pub struct SeatLink {
    pub agent_id: AgentId,
    /// The agent's name, as the roster and the parking lot show it.
    pub name: Arc<str>,
    pub workspace: Workspace,
    pub notices: Recipient<SeatNotice>,
    pub audio: AudioPort,
    /// The node holding the seat's socket, when it is another node of the cluster
    /// (`notices` and `audio` then cross the node link); `None` on this node.
    pub node: Option<Arc<str>>,
}

impl std::fmt::Debug for SeatLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeatLink")
            .field("agent_id", &self.agent_id)
            .finish()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct SeatConfig {
    /// How often the engine pings the softphone.
    pub heartbeat_interval: Duration,
    /// Silence after which the softphone is considered gone (≥ 2 × interval).
    pub client_timeout: Duration,
    /// Time off the phone after a call before the seat rings again.
    pub wrap_up: Duration,
    /// How long after a drop a reconnecting agent is handed back its parked calls.
    pub reconnect_grace: Duration,
}

impl Default for SeatConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(5),
            client_timeout: Duration::from_secs(10),
            wrap_up: Duration::ZERO,
            reconnect_grace: Duration::from_secs(30),
        }
    }
}

/// Everything a seat needs to start.
pub struct SeatSetup {
    pub agent_id: AgentId,
    pub name: String,
    pub workspace: Workspace,
    pub outbox: Outbox<SeatOutput>,
    pub coordinator: CoordinatorHandle,
    pub parking: ParkingHandle,
    pub config: SeatConfig,
    pub stats: Arc<EngineStats>,
}

struct Connected {
    call: CallHandle,
    /// Where this seat's audio goes (the caller, or the other agent of a consult).
    peer_audio: AudioPort,
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

/// How many cancelled rings and retrieved parkings a seat remembers for late claims.
const REMEMBERED: usize = 64;

pub struct SeatActor {
    agent_id: AgentId,
    name: Arc<str>,
    workspace: Workspace,
    outbox: Outbox<SeatOutput>,
    coordinator: CoordinatorHandle,
    parking: ParkingHandle,
    config: SeatConfig,
    stats: Arc<EngineStats>,
    generation: u64,
    /// What the agent chose: `Available` or `Away`.
    wanted: Presence,
    wrap_up: Option<SpawnHandle>,
    /// Calls ringing this seat right now.
    rung: HashMap<CallId, CallHandle>,
    /// Parked calls of the workspace, which this seat may `unpark`.
    parked: HashMap<CallId, CallHandle>,
    /// A claim sent to a call and not yet decided.
    claiming: Option<CallId>,
    connected: Option<Connected>,
    /// When the softphone last answered a ping (or connected).
    last_pong: Instant,
    /// Calls whose ring was cancelled or whose parking ended lately: a late claim
    /// for one of them is told `claim_lost` (it lost a race, it did not misbehave).
    recently_gone: VecDeque<CallId>,
    /// Audio without a call is answered with one error a second, not one a frame.
    last_audio_error: Option<Instant>,
    /// The roster last passed on: an unchanged one is not sent again.
    last_roster: Option<Arc<Vec<RosterEntry>>>,
}

impl SeatActor {
    /// Starts the seat on the current arbiter, driven by `input`.
    pub fn start<S>(setup: SeatSetup, input: S) -> Addr<SeatActor>
    where
        S: Stream<Item = SeatInput> + 'static,
    {
        SeatActor::create(|ctx| {
            ctx.add_stream(input);
            SeatActor {
                agent_id: setup.agent_id,
                name: setup.name.into(),
                workspace: setup.workspace,
                outbox: setup.outbox,
                coordinator: setup.coordinator,
                parking: setup.parking,
                config: setup.config,
                stats: setup.stats,
                generation: GENERATION.fetch_add(1, Ordering::Relaxed),
                wanted: Presence::Away,
                wrap_up: None,
                rung: HashMap::new(),
                parked: HashMap::new(),
                claiming: None,
                connected: None,
                last_pong: Instant::now(),
                recently_gone: VecDeque::new(),
                last_audio_error: None,
                last_roster: None,
            }
        })
    }

    fn link(&self, ctx: &Context<Self>) -> SeatLink {
        SeatLink {
            agent_id: self.agent_id.clone(),
            name: Arc::clone(&self.name),
            workspace: self.workspace.clone(),
            notices: ctx.address().recipient(),
            audio: Arc::new(self.outbox.clone()),
            node: None,
        }
    }

    fn error(&self, code: &'static str, message: impl Into<String>) {
        self.outbox.send(SeatOutput::Error {
            code,
            message: message.into(),
        });
    }

    fn is_free(&self) -> bool {
        self.connected.is_none() && self.claiming.is_none()
    }

    /// The presence that counts: the engine's (busy, wrap-up) over the agent's.
    fn presence(&self) -> Presence {
        if self.connected.is_some() {
            Presence::Busy
        } else if self.wrap_up.is_some() {
            Presence::WrapUp
        } else {
            self.wanted
        }
    }

    fn report(&self) {
        self.coordinator.update_seat(UpdateSeat {
            agent_id: self.agent_id.clone(),
            generation: self.generation,
            presence: self.presence(),
            call_id: self.connected.as_ref().map(|c| c.call.id().clone()),
        });
    }

    fn remember_gone(&mut self, call_id: CallId) {
        if self.recently_gone.len() == REMEMBERED {
            self.recently_gone.pop_front();
        }
        self.recently_gone.push_back(call_id);
    }

    fn connect(&mut self, call: CallHandle, peer_audio: AudioPort, ctx: &mut Context<Self>) {
        if let Some(handle) = self.wrap_up.take() {
            ctx.cancel_future(handle);
        }
        self.connected = Some(Connected { call, peer_audio });
        self.report();
        self.withdraw_from_rings(CancelReason::Busy);
    }

    /// The seat is off its call: wrap-up (if configured), then its chosen presence.
    fn disconnect(&mut self, ctx: &mut Context<Self>) {
        if self.connected.take().is_none() {
            return;
        }
        if !self.config.wrap_up.is_zero() {
            let until = now_ms().saturating_add(self.config.wrap_up.as_millis() as i64);
            self.outbox.send(SeatOutput::Presence {
                status: Presence::WrapUp,
                until: Some(rfc3339(until)),
            });
            self.wrap_up = Some(ctx.run_later(self.config.wrap_up, |act, _ctx| {
                act.wrap_up = None;
                act.outbox.send(SeatOutput::Presence {
                    status: act.presence(),
                    until: None,
                });
                act.report();
            }));
        }
        self.report();
    }

    fn claim(&mut self, call_id: CallId, kind: ClaimKind, ctx: &mut Context<Self>) {
        if !self.is_free() {
            return self.error("busy", "this seat is already on a call");
        }
        let known = match kind {
            ClaimKind::Answer => self.rung.get(&call_id),
            ClaimKind::Unpark => self.parked.get(&call_id),
        };
        let Some(call) = known.cloned() else {
            if self.recently_gone.contains(&call_id) {
                return self.claim_lost(call_id);
            }
            return match kind {
                ClaimKind::Answer => self.error(
                    "not-rung",
                    format!("call {call_id} is not ringing this seat"),
                ),
                ClaimKind::Unpark => self.error(
                    "not-parked",
                    format!("call {call_id} is not in the parking lot"),
                ),
            };
        };
        self.claiming = Some(call_id.clone());
        let link = self.link(ctx);
        let agent_id = self.agent_id.clone();
        let claim = async move {
            call.claim(agent_id, link, kind, false)
                .await
                .map(|r| (r, call))
        };
        ctx.spawn(claim.into_actor(self).map(move |result, act, ctx| {
            act.claiming = None;
            match result {
                Ok((ClaimResult::Won { peer_audio }, call)) => {
                    act.rung.remove(&call_id);
                    act.parked.remove(&call_id);
                    let (from, to) = (call.from().to_owned(), call.to().to_owned());
                    act.connect(call, peer_audio, ctx);
                    act.outbox.send(SeatOutput::Connected {
                        call_id,
                        from,
                        to,
                        reason: None,
                    });
                }
                Ok((ClaimResult::Lost, call)) => {
                    // The call cancels this seat's ring itself (`ring_cancel` follows or
                    // came already); only a call that is gone cannot.
                    if !call.is_alive() {
                        act.rung.remove(&call_id);
                        act.parked.remove(&call_id);
                    }
                    act.claim_lost(call_id);
                }
                Err(_) => {
                    act.rung.remove(&call_id);
                    act.parked.remove(&call_id);
                    act.claim_lost(call_id);
                }
            }
        }));
    }

    fn claim_lost(&self, call_id: CallId) {
        self.stats.claims_lost.fetch_add(1, Ordering::Relaxed);
        self.outbox.send(SeatOutput::ClaimLost { call_id });
    }

    /// Stops ringing for every other call (this seat took one, or is leaving).
    fn withdraw_from_rings(&mut self, reason: CancelReason) {
        let rung: Vec<(CallId, CallHandle)> = self.rung.drain().collect();
        for (call_id, call) in rung {
            call.seat_left(self.agent_id.clone());
            self.remember_gone(call_id.clone());
            self.outbox.send(SeatOutput::RingCancel { call_id, reason });
        }
    }

    /// The connected call, if it is `call_id`.
    fn on_call(&self, call_id: &CallId) -> Option<CallHandle> {
        self.connected
            .as_ref()
            .filter(|c| c.call.id() == call_id)
            .map(|c| c.call.clone())
    }

    /// Runs a request against the connected call and reports a refusal as `error`.
    fn on_call_request<F, Fut>(&mut self, call_id: CallId, ctx: &mut Context<Self>, request: F)
    where
        F: FnOnce(CallHandle, AgentId) -> Fut,
        Fut: std::future::Future<Output = Result<(), EngineError>> + 'static,
    {
        let Some(call) = self.on_call(&call_id) else {
            return self.error("not-on-call", format!("this seat is not on call {call_id}"));
        };
        let fut = request(call, self.agent_id.clone());
        ctx.spawn(fut.into_actor(self).map(|result, act, _ctx| {
            if let Err(err) = result {
                act.error(err.code(), err.to_string());
            }
        }));
    }

    fn command(&mut self, command: SeatCommand, ctx: &mut Context<Self>) {
        match command {
            SeatCommand::Presence { status: presence } => {
                self.wanted = presence;
                self.outbox.send(SeatOutput::Presence {
                    status: presence,
                    until: None,
                });
                if let Some(connected) = &self.connected {
                    // Takes effect after the call; the call's trail records it.
                    connected
                        .call
                        .agent_presence(self.agent_id.clone(), presence.as_str());
                }
                self.report();
            }
            SeatCommand::Answer { call_id } => self.claim(call_id, ClaimKind::Answer, ctx),
            SeatCommand::Unpark { call_id } => self.claim(call_id, ClaimKind::Unpark, ctx),
            SeatCommand::Decline { call_id } => match self.rung.remove(&call_id) {
                Some(call) => {
                    call.decline(self.agent_id.clone());
                    self.remember_gone(call_id.clone());
                    self.outbox.send(SeatOutput::RingCancel {
                        call_id,
                        reason: CancelReason::Declined,
                    });
                }
                None => self.error(
                    "not-rung",
                    format!("call {call_id} is not ringing this seat"),
                ),
            },
            SeatCommand::Hangup { call_id } => match self.on_call(&call_id) {
                // The call answers with `CallEnded`, which clears `connected`.
                Some(call) => call.hangup(self.agent_id.clone()),
                None => self.error("not-on-call", format!("this seat is not on call {call_id}")),
            },
            SeatCommand::Park { call_id } => {
                self.on_call_request(call_id, ctx, |call, agent| async move {
                    call.park(Some(agent), "agent").await
                })
            }
            SeatCommand::Transfer {
                call_id,
                agent_id,
                warm,
            } => {
                let coordinator = self.coordinator.clone();
                let workspace = self.workspace.clone();
                self.on_call_request(call_id, ctx, move |call, me| async move {
                    let target = transfer_target(&coordinator, &workspace, &me, agent_id).await?;
                    call.transfer(me, target, warm).await
                })
            }
            SeatCommand::TransferComplete { call_id } => {
                self.on_call_request(call_id, ctx, |call, agent| async move {
                    call.complete_transfer(agent).await
                })
            }
            SeatCommand::TransferCancel { call_id } => {
                self.on_call_request(call_id, ctx, |call, agent| async move {
                    call.cancel_transfer(agent).await
                })
            }
            SeatCommand::Dtmf { call_id, digits } => {
                self.on_call_request(call_id, ctx, |call, agent| async move {
                    call.play_digits(agent, digits).await
                })
            }
        }
    }

    fn audio(&mut self, frame: Bytes) {
        match &self.connected {
            Some(connected) => {
                connected.peer_audio.push_audio(frame);
                self.stats
                    .audio_frames_relayed
                    .fetch_add(1, Ordering::Relaxed);
            }
            None => {
                let now = Instant::now();
                if self
                    .last_audio_error
                    .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1))
                {
                    self.last_audio_error = Some(now);
                    self.error("no-call", "audio received but this seat is not on a call");
                }
            }
        }
    }

    /// A reconnecting agent gets back the calls its dropped softphone left parked.
    fn hand_back_dropped_calls(&self, ctx: &mut Context<Self>) {
        let parking = self.parking.clone();
        let (agent_id, grace) = (self.agent_id.clone(), self.config.reconnect_grace);
        let lookup = async move { parking.dropped_by(agent_id, grace).await };
        ctx.spawn(lookup.into_actor(self).map(|calls, act, _ctx| {
            if calls.is_empty() {
                return;
            }
            let listed = calls
                .iter()
                .map(|p| StateCall {
                    call_id: p.call.id().clone(),
                    status: "parked",
                    slot: Some(p.slot),
                    from: p.from.clone(),
                    to: p.to.clone(),
                })
                .collect();
            for parked in calls {
                act.parked.insert(parked.call.id().clone(), parked.call);
            }
            act.outbox.send(SeatOutput::State { calls: listed });
        }));
    }

    /// Passes a call's message on to the softphone if it concerns this seat, keeping
    /// the seat's own account in step: a cancelled ring is forgotten (and remembered
    /// as gone), an ended or released call frees the seat, an unparked call can no
    /// longer be unparked here.
    fn tell(&mut self, message: SeatOutput, ctx: &mut Context<Self>) {
        let (concerns_seat, frees_seat) = match &message {
            SeatOutput::RingCancel { call_id, .. } => {
                let rung = self.rung.remove(call_id).is_some();
                if rung {
                    self.remember_gone(call_id.clone());
                }
                (rung, false)
            }
            SeatOutput::CallEnded { call_id, .. } => {
                self.rung.remove(call_id);
                self.parked.remove(call_id);
                (self.on_call(call_id).is_some(), true)
            }
            SeatOutput::Released { call_id, .. } => (self.on_call(call_id).is_some(), true),
            SeatOutput::Unparked(unparked) => {
                if self.parked.remove(&unparked.call_id).is_some() {
                    self.remember_gone(unparked.call_id.clone());
                }
                (true, false)
            }
            SeatOutput::Roster(roster) => {
                let unchanged = self.last_roster.as_ref().is_some_and(|last| {
                    Arc::ptr_eq(last, &roster.agents) || last == &roster.agents
                });
                if !unchanged {
                    self.last_roster = Some(Arc::clone(&roster.agents));
                }
                (!unchanged, false)
            }
            _ => (true, false),
        };
        if concerns_seat {
            if matches!(message, SeatOutput::Roster(_)) {
                // A newer roster replaces one still queued: a slow softphone gets
                // the latest, once.
                self.outbox
                    .send_superseding(message, |queued| matches!(queued, SeatOutput::Roster(_)));
                return;
            }
            self.outbox.send(message);
            if frees_seat {
                self.disconnect(ctx);
            }
        }
    }
}

/// Checks a transfer's target on the floor: online, same workspace, available, free.
async fn transfer_target(
    coordinator: &CoordinatorHandle,
    workspace: &Workspace,
    me: &AgentId,
    agent_id: AgentId,
) -> Result<SeatLink, EngineError> {
    if &agent_id == me {
        return Err(EngineError::Refused(
            "a call cannot be transferred to its own agent".into(),
        ));
    }
    let (state, link) = coordinator.connected_seat(agent_id.clone()).await?;
    if &state.workspace != workspace {
        return Err(EngineError::WrongWorkspace(format!(
            "agent {agent_id} belongs to another workspace"
        )));
    }
    state.ringable()?;
    Ok(link)
}

impl Actor for SeatActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
        self.stats.seats_connected.fetch_add(1, Ordering::Relaxed);
        self.outbox.send(SeatOutput::Welcome {
            agent_id: self.agent_id.clone(),
            name: self.name.to_string(),
            workspace: self.workspace.clone(),
            presence: self.presence(),
        });
        // The coordinator answers with the roster and the parking lot, in that order.
        self.coordinator.register(RegisterSeat {
            agent_id: self.agent_id.clone(),
            workspace: self.workspace.clone(),
            link: self.link(ctx),
            generation: self.generation,
        });
        self.hand_back_dropped_calls(ctx);
        ctx.run_interval(self.config.heartbeat_interval, |act, ctx| {
            if act.last_pong.elapsed() > act.config.client_timeout {
                tracing::info!(agent_id = %act.agent_id, "softphone stopped answering heartbeats");
                act.outbox.close(CLOSE_GOING_AWAY, "heartbeat timeout");
                ctx.stop();
            } else {
                act.outbox.ping();
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.stats.seats_connected.fetch_sub(1, Ordering::Relaxed);
        self.coordinator
            .unregister(self.agent_id.clone(), self.generation);
        for (_, call) in self.rung.drain() {
            call.seat_left(self.agent_id.clone());
        }
        if let Some(connected) = self.connected.take() {
            connected.call.seat_left(self.agent_id.clone());
        }
        self.outbox.close(CLOSE_NORMAL, "seat closed");
    }
}

impl StreamHandler<SeatInput> for SeatActor {
    fn handle(&mut self, input: SeatInput, ctx: &mut Self::Context) {
        match input {
            SeatInput::Command(command) => self.command(command, ctx),
            SeatInput::Audio(frame) => self.audio(frame),
            SeatInput::Pong => self.last_pong = Instant::now(),
            SeatInput::Invalid { code, message } => self.error(code, message),
            SeatInput::Violation(reason) => {
                self.outbox.close(CLOSE_POLICY, reason);
                ctx.stop();
            }
        }
    }
}

impl Handler<SeatNotice> for SeatActor {
    type Result = ();

    fn handle(&mut self, notice: SeatNotice, ctx: &mut Self::Context) {
        match notice {
            SeatNotice::Ring { call, ring } => {
                if !self.is_free() || self.presence() != Presence::Available {
                    // Rung while taking another call (or going away): withdraw at once.
                    call.seat_left(self.agent_id.clone());
                    return;
                }
                self.rung.insert(call.id().clone(), call);
                self.outbox.send(SeatOutput::Ring(ring));
            }
            SeatNotice::Parked { call, parked } => {
                self.parked.insert(call.id().clone(), call);
                self.outbox.send(SeatOutput::Parked(parked));
            }
            SeatNotice::Lot { calls } => {
                let listed = calls.iter().map(|(_, parked)| parked.clone()).collect();
                for (call, _) in calls {
                    self.parked.insert(call.id().clone(), call);
                }
                self.outbox.send(SeatOutput::Parking { calls: listed });
            }
            SeatNotice::Assigned {
                call,
                peer_audio,
                reason,
            } => {
                let call_id = call.id().clone();
                if !self.is_free() {
                    // Taken meanwhile: the call must find someone else.
                    call.seat_left(self.agent_id.clone());
                    return;
                }
                self.rung.remove(&call_id);
                self.parked.remove(&call_id);
                let (from, to) = (call.from().to_owned(), call.to().to_owned());
                self.connect(call, peer_audio, ctx);
                self.outbox.send(SeatOutput::Connected {
                    call_id,
                    from,
                    to,
                    reason: Some(reason),
                });
            }
            SeatNotice::AudioTo {
                call_id,
                peer_audio,
            } => {
                if let Some(connected) = self.connected.as_mut() {
                    if connected.call.id() == &call_id {
                        connected.peer_audio = peer_audio;
                    }
                }
            }
            SeatNotice::Replaced => {
                self.error(
                    "replaced",
                    "this agent opened a newer softphone connection (on this or another node)",
                );
                self.outbox
                    .close(CLOSE_NORMAL, "replaced by a newer connection of this agent");
                ctx.stop();
            }
            SeatNotice::Tell(message) => self.tell(message, ctx),
        }
    }
}
