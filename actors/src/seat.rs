//! SeatActor: one agent's live softphone connection. Owns the agent's presence, the
//! calls ringing it and the call it is connected to; driven by the socket's input
//! stream, writing through its [`Outbox`].

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;

use crate::call::{CallHandle, ClaimResult};
use crate::coordinator::{CoordinatorHandle, RegisterSeat};
use crate::ids::{AgentId, CallId, Workspace};
use crate::machine::CancelReason;
use crate::outbox::{AudioPort, Outbox, CLOSE_GOING_AWAY, CLOSE_NORMAL, CLOSE_POLICY};
use crate::stats::EngineStats;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    Available,
    Away,
}

impl Presence {
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Available => "available",
            Presence::Away => "away",
        }
    }
}

/// What the softphone asked for (parsed at the edge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeatCommand {
    Presence(Presence),
    Answer(CallId),
    Decline(CallId),
    Hangup(CallId),
}

/// One item of the softphone's input stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeatInput {
    Command(SeatCommand),
    /// A binary frame: audio for the connected call.
    Audio(Bytes),
    /// The peer is alive (a pong, a ping, any frame).
    Heartbeat,
    /// A message the edge could not turn into a command; answered with `error`.
    Invalid {
        code: &'static str,
        message: String,
    },
    /// The peer broke the protocol (e.g. an oversized frame): the socket is closed.
    Violation(String),
}

/// What the engine tells the softphone (serialised at the edge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeatOutput {
    Presence(Presence),
    Ring {
        call_id: CallId,
        from: String,
        to: String,
    },
    RingCancel {
        call_id: CallId,
        reason: CancelReason,
    },
    ClaimLost {
        call_id: CallId,
    },
    Connected {
        call_id: CallId,
    },
    CallEnded {
        call_id: CallId,
        reason: String,
    },
    Error {
        code: &'static str,
        message: String,
    },
}

/// Messages from calls and the coordinator to a seat.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub enum SeatNotice {
    Ring {
        call: CallHandle,
        from: String,
        to: String,
    },
    RingCancel {
        call_id: CallId,
        reason: CancelReason,
    },
    CallEnded {
        call_id: CallId,
        reason: String,
    },
    /// A newer connection of the same agent took over.
    Replaced,
}

/// How a call reaches a seat: its notices and its audio.
#[derive(Clone)]
pub struct SeatLink {
    pub agent_id: AgentId,
    pub notices: Recipient<SeatNotice>,
    pub audio: AudioPort,
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
}

impl Default for SeatConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(5),
            client_timeout: Duration::from_secs(10),
        }
    }
}

/// Everything a seat needs to start.
pub struct SeatSetup {
    pub agent_id: AgentId,
    pub workspace: Workspace,
    pub outbox: Outbox<SeatOutput>,
    pub coordinator: CoordinatorHandle,
    pub config: SeatConfig,
    pub stats: Arc<EngineStats>,
}

struct Connected {
    call: CallHandle,
    /// The caller's side of the call: this seat's audio goes straight there.
    caller_audio: AudioPort,
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

pub struct SeatActor {
    agent_id: AgentId,
    workspace: Workspace,
    outbox: Outbox<SeatOutput>,
    coordinator: CoordinatorHandle,
    config: SeatConfig,
    stats: Arc<EngineStats>,
    generation: u64,
    presence: Presence,
    /// Calls ringing this seat right now.
    rung: HashMap<CallId, CallHandle>,
    /// An `answer` sent to a call and not yet decided.
    claiming: Option<CallId>,
    connected: Option<Connected>,
    last_heard: Instant,
    /// Calls whose ring was recently cancelled: a late `answer` for one of them is
    /// told `claim_lost`, not "not rung" (it lost a race, it did not misbehave).
    recently_cancelled: VecDeque<CallId>,
    /// Audio without a call is answered with one error a second, not one a frame.
    last_audio_error: Option<Instant>,
}

/// How many cancelled rings a seat remembers for late answers.
const REMEMBERED_CANCELS: usize = 64;

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
                workspace: setup.workspace,
                outbox: setup.outbox,
                coordinator: setup.coordinator,
                config: setup.config,
                stats: setup.stats,
                generation: GENERATION.fetch_add(1, Ordering::Relaxed),
                presence: Presence::Away,
                rung: HashMap::new(),
                claiming: None,
                connected: None,
                last_heard: Instant::now(),
                recently_cancelled: VecDeque::new(),
                last_audio_error: None,
            }
        })
    }

    fn link(&self, ctx: &Context<Self>) -> SeatLink {
        SeatLink {
            agent_id: self.agent_id.clone(),
            notices: ctx.address().recipient(),
            audio: Arc::new(self.outbox.clone()),
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

    fn answer(&mut self, call_id: CallId, ctx: &mut Context<Self>) {
        if !self.is_free() {
            return self.error("busy", "this seat is already on a call");
        }
        let Some(call) = self.rung.get(&call_id).cloned() else {
            if self.recently_cancelled.contains(&call_id) {
                return self.claim_lost(call_id);
            }
            return self.error(
                "not-rung",
                format!("call {call_id} is not ringing this seat"),
            );
        };
        self.claiming = Some(call_id.clone());
        let link = self.link(ctx);
        let agent_id = self.agent_id.clone();
        let claim = async move { call.claim(agent_id, link).await.map(|r| (r, call)) };
        ctx.spawn(claim.into_actor(self).map(move |result, act, _ctx| {
            act.claiming = None;
            match result {
                Ok((ClaimResult::Won { caller_audio }, call)) => {
                    act.rung.remove(&call_id);
                    act.connected = Some(Connected { call, caller_audio });
                    act.coordinator
                        .set_busy(act.agent_id.clone(), act.generation, true);
                    act.outbox.send(SeatOutput::Connected { call_id });
                    act.withdraw_from_rings(CancelReason::Busy);
                }
                Ok((ClaimResult::Lost, call)) => {
                    // The call cancels this seat's ring itself (`ring_cancel` follows or
                    // came already); only a call that is gone cannot.
                    if !call.is_alive() {
                        act.rung.remove(&call_id);
                    }
                    act.claim_lost(call_id);
                }
                Err(_) => {
                    act.rung.remove(&call_id);
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
        for (call_id, call) in self.rung.drain() {
            call.seat_left(self.agent_id.clone());
            self.outbox.send(SeatOutput::RingCancel { call_id, reason });
        }
    }

    fn command(&mut self, command: SeatCommand, ctx: &mut Context<Self>) {
        match command {
            SeatCommand::Presence(presence) => {
                self.presence = presence;
                self.coordinator
                    .set_presence(self.agent_id.clone(), self.generation, presence);
                self.outbox.send(SeatOutput::Presence(presence));
            }
            SeatCommand::Answer(call_id) => self.answer(call_id, ctx),
            SeatCommand::Decline(call_id) => match self.rung.remove(&call_id) {
                Some(call) => {
                    call.decline(self.agent_id.clone());
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
            SeatCommand::Hangup(call_id) => match &self.connected {
                Some(connected) if connected.call.id() == &call_id => {
                    // The call answers with `CallEnded`, which clears `connected`.
                    connected.call.hangup(self.agent_id.clone());
                }
                _ => self.error("not-on-call", format!("this seat is not on call {call_id}")),
            },
        }
    }

    fn audio(&mut self, frame: Bytes) {
        match &self.connected {
            Some(connected) => {
                connected.caller_audio.push_audio(frame);
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
}

impl Actor for SeatActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
        self.stats.seats_connected.fetch_add(1, Ordering::Relaxed);
        self.coordinator.register(RegisterSeat {
            agent_id: self.agent_id.clone(),
            workspace: self.workspace.clone(),
            link: self.link(ctx),
            generation: self.generation,
        });
        ctx.run_interval(self.config.heartbeat_interval, |act, ctx| {
            if act.last_heard.elapsed() > act.config.client_timeout {
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
        self.last_heard = Instant::now();
        match input {
            SeatInput::Command(command) => self.command(command, ctx),
            SeatInput::Audio(frame) => self.audio(frame),
            SeatInput::Heartbeat => {}
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
            SeatNotice::Ring { call, from, to } => {
                if !self.is_free() || self.presence != Presence::Available {
                    // Rung while taking another call: withdraw at once.
                    call.seat_left(self.agent_id.clone());
                    return;
                }
                let call_id = call.id().clone();
                self.rung.insert(call_id.clone(), call);
                self.outbox.send(SeatOutput::Ring { call_id, from, to });
            }
            SeatNotice::RingCancel { call_id, reason } => {
                if self.rung.remove(&call_id).is_some() {
                    if self.recently_cancelled.len() == REMEMBERED_CANCELS {
                        self.recently_cancelled.pop_front();
                    }
                    self.recently_cancelled.push_back(call_id.clone());
                    self.outbox.send(SeatOutput::RingCancel { call_id, reason });
                }
            }
            SeatNotice::CallEnded { call_id, reason } => {
                self.rung.remove(&call_id);
                if self
                    .connected
                    .as_ref()
                    .is_some_and(|c| c.call.id() == &call_id)
                {
                    self.connected = None;
                    self.coordinator
                        .set_busy(self.agent_id.clone(), self.generation, false);
                    self.outbox.send(SeatOutput::CallEnded { call_id, reason });
                }
            }
            SeatNotice::Replaced => {
                self.outbox
                    .close(CLOSE_NORMAL, "replaced by a newer connection of this agent");
                ctx.stop();
            }
        }
    }
}
