//! CallActor: one call, from the webhook to its final record. Owns the call's state
//! machine, its ring set and the claim: every `answer`, `unpark` and transfer
//! acceptance for this call is a message in this actor's mailbox, so of any number
//! of simultaneous claims exactly one is first. Decides where every side's audio
//! goes (ringback, hold audio, an agent, a consulted agent, the voicemail recorder,
//! listening supervisors) and writes the call's event trail to the journal.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use serde_json::json;

use crate::assistant::{
    AssistantReport, AssistantSession, AssistantUpdate, CallHooks, CallReport, StopAssistant,
};
use crate::audio::{self, Looper, BEEP, HOLD, RINGBACK};
use crate::coordinator::{Broadcast, CallSummary, CoordinatorHandle, FloorEvent};
use crate::error::EngineError;
use crate::ids::{AgentId, CallId, Workspace};
use crate::journal::{now_ms, CallEvent, CallOpened, Journal, JournalEntry};
use crate::leg::{LegControl, LegHandle, LegRoute};
use crate::machine::{
    CallMachine, CancelReason, ClaimDecision, ClaimKind, Ending, Outcome, Phase, RingUpdate,
    SeatLeft, VoicemailReason,
};
use crate::mixer::{Mixer, Side, Tee};
use crate::number::Route;
use crate::outbox::AudioPort;
use crate::parking::{Park as ParkIn, ParkingHandle};
use crate::registry::RegistryHandle;
use crate::seat::{Parked, Ring, SeatLink, SeatNotice, SeatOutput, Unparked};
use crate::stats::EngineStats;

/// The mark that tells us Twilio has finished playing the voicemail prompt.
pub const PROMPT_MARK: &str = "voicemail-prompt";

/// Timings and sounds of a call.
#[derive(Debug, Clone)]
pub struct CallConfig {
    /// How long seats ring before the caller goes to voicemail.
    pub ring_timeout: Duration,
    /// How long after the webhook the media stream may take to start.
    pub media_timeout: Duration,
    /// The longest voicemail recorded.
    pub voicemail_max: Duration,
    /// Played before recording (mu-law); a beep follows it.
    pub voicemail_prompt: Bytes,
    /// Ringback and hold audio are sent in chunks of this length, one per tick.
    pub ringback_chunk: Duration,
    /// A parked call not retrieved in this time rings its parker, then everyone.
    pub parking_timeout: Duration,
}

impl Default for CallConfig {
    fn default() -> Self {
        Self {
            ring_timeout: Duration::from_secs(30),
            media_timeout: Duration::from_secs(15),
            voicemail_max: Duration::from_secs(120),
            voicemail_prompt: Bytes::new(),
            ringback_chunk: Duration::from_millis(200),
            parking_timeout: Duration::from_secs(120),
        }
    }
}

/// What every call needs from the rest of the engine.
#[derive(Clone)]
pub struct CallDeps {
    pub coordinator: CoordinatorHandle,
    pub registry: RegistryHandle,
    pub parking: ParkingHandle,
    pub journal: Arc<dyn Journal>,
    pub config: Arc<CallConfig>,
    pub stats: Arc<EngineStats>,
    /// AI assistants and after-call work; without them an AI route goes to the
    /// workspace's agents.
    pub hooks: Option<Arc<dyn CallHooks>>,
}

/// Who is calling whom, known from the webhook.
#[derive(Debug, Clone)]
pub struct CallSetup {
    pub id: CallId,
    pub call_sid: Option<String>,
    pub from: String,
    pub to: String,
    pub workspace: Workspace,
    pub route: Route,
    /// The webhook's fields as received (escaped) when they had to be cleaned of
    /// control characters; recorded in the `created` event.
    pub raw: Option<serde_json::Value>,
}

// ---- messages ------------------------------------------------------------------

/// The caller's media stream started.
#[derive(Message)]
#[rtype(result = "Result<(), EngineError>")]
pub struct AttachCaller {
    pub leg: LegHandle,
}

/// Caller audio routed to the call itself (voicemail recording).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CallerAudio {
    pub frame: Bytes,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct CallerMark {
    pub name: String,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct CallerDtmf {
    pub digit: String,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct CallerLeft {
    pub reason: &'static str,
}

/// An agent's `answer` or `unpark` (or a supervisor's unpark on an agent's behalf,
/// then `notify` tells the seat it has the call).
#[derive(Message)]
#[rtype(result = "ClaimResult")]
pub struct Claim {
    pub agent_id: AgentId,
    pub seat: SeatLink,
    pub kind: ClaimKind,
    pub notify: bool,
}

pub enum ClaimResult {
    /// The seat has the call; its audio goes to `peer_audio`.
    Won {
        peer_audio: AudioPort,
    },
    Lost,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Decline {
    pub agent_id: AgentId,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct SeatHangup {
    pub agent_id: AgentId,
}

/// A seat disconnected or became busy; it is no longer rung by (or on) this call.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SeatGone {
    pub agent_id: AgentId,
}

/// Park the call: by its agent, or by a supervisor (`by` is `None`).
#[derive(Message)]
#[rtype(result = "Result<(), EngineError>")]
pub struct Park {
    pub by: Option<AgentId>,
    pub reason: &'static str,
}

/// Transfer from the connected agent `from` (or, from a supervisor, whoever has
/// the call) to the seat `to`.
#[derive(Message)]
#[rtype(result = "Result<(), EngineError>")]
pub struct Transfer {
    pub from: Option<AgentId>,
    pub to: SeatLink,
    pub warm: bool,
}

#[derive(Message)]
#[rtype(result = "Result<(), EngineError>")]
pub struct CompleteTransfer {
    pub by: AgentId,
}

#[derive(Message)]
#[rtype(result = "Result<(), EngineError>")]
pub struct CancelTransfer {
    pub by: AgentId,
}

/// A supervisor ends the call.
#[derive(Message)]
#[rtype(result = "Result<(), EngineError>")]
pub struct SupervisorHangup;

/// A supervisor listens in: both sides, mixed, to `port`.
#[derive(Message)]
#[rtype(result = "Result<(), EngineError>")]
pub struct Listen {
    pub port: AudioPort,
}

/// The agent on the call changed its presence (recorded in the trail).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AgentPresence {
    pub agent_id: AgentId,
    pub presence: &'static str,
}

/// The engine is stopping: end the call now with outcome `interrupted`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Interrupt {
    pub reason: &'static str,
}

/// A Twilio status callback for this call.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TwilioStatus {
    pub status: String,
    pub detail: serde_json::Value,
}

// ---- the actor -----------------------------------------------------------------

/// A voicemail being recorded. The audio goes to the journal in chunks of
/// [`RECORDING_CHUNK_BYTES`] as it arrives; only the chunk being filled is held here.
struct Voicemail {
    /// Audio not yet journaled: less than one chunk.
    pending: BytesMut,
    /// Bytes recorded so far (journaled or pending).
    recorded: usize,
    /// Chunks journaled so far: the next chunk's `seq` is this + 1.
    chunks: i64,
    recording_started: bool,
    limit: usize,
}

/// One second of 8 kHz mu-law: a crash mid-voicemail loses at most this much.
pub const RECORDING_CHUNK_BYTES: usize = 8_000;

impl Voicemail {
    /// The pending audio as the next chunk, if there is any.
    fn take_chunk(&mut self, call_id: &CallId) -> Option<JournalEntry> {
        if self.pending.is_empty() {
            return None;
        }
        self.chunks += 1;
        Some(JournalEntry::RecordingChunk {
            call_id: call_id.clone(),
            seq: self.chunks,
            at: now_ms(),
            audio: self.pending.split().freeze(),
        })
    }
}

/// Why the seats that ring right now are ringing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RingStage {
    /// The first ring of a new call (and rings after which voicemail comes).
    First,
    /// A parked call offered to the other agents after its agent dropped.
    Offer,
    /// Parking timeout, step one: the agent who parked it.
    Parker,
    /// Parking timeout, step two: everyone; then voicemail.
    Everyone,
    /// A transfer's target.
    Transfer,
}

/// The assistant of an AI-routed call, and what it said and spent.
struct Assistant {
    id: String,
    /// Stops it; `None` once it has stopped.
    stop: Option<Recipient<StopAssistant>>,
    turns: Vec<(String, String)>,
    usage: Vec<(String, serde_json::Value)>,
    transcription_usage: Vec<(String, serde_json::Value)>,
    tools_used: Vec<String>,
    ended_by: Option<String>,
}

pub struct CallActor {
    setup: CallSetup,
    deps: CallDeps,
    machine: CallMachine,
    /// Last event sequence number written.
    seq: i64,
    leg: Option<LegHandle>,
    /// Seats rung in the current round, by agent.
    rung: HashMap<AgentId, SeatLink>,
    stage: RingStage,
    connected: Option<SeatLink>,
    /// The other agent of a warm transfer, once it answered.
    consulted: Option<SeatLink>,
    /// The agent who started a transfer (to hand the call back to).
    transferrer: Option<SeatLink>,
    /// Ringback or hold audio, looping into the caller's leg.
    background: Option<(SpawnHandle, Looper)>,
    ring_timer: Option<SpawnHandle>,
    media_timer: Option<SpawnHandle>,
    parking_timer: Option<SpawnHandle>,
    slot: Option<u32>,
    voicemail: Option<Voicemail>,
    /// Set once a supervisor listens.
    mixer: Option<Arc<Mixer>>,
    assistant: Option<Assistant>,
    /// What the assistant said about the caller, attached to every ring after a
    /// handover.
    handover_summary: Option<String>,
    started_at: i64,
    media_started_at: Option<i64>,
}

impl CallActor {
    /// Starts the call on the current arbiter and registers it; the returned handle
    /// is found by the registry from the moment this returns.
    pub fn launch(setup: CallSetup, deps: CallDeps) -> CallHandle {
        let id = setup.id.clone();
        let call_sid = setup.call_sid.clone();
        let registry = deps.registry.clone();
        let addr = CallActor {
            setup,
            deps,
            machine: CallMachine::new(),
            seq: 0,
            leg: None,
            rung: HashMap::new(),
            stage: RingStage::First,
            connected: None,
            consulted: None,
            transferrer: None,
            background: None,
            ring_timer: None,
            media_timer: None,
            parking_timer: None,
            slot: None,
            voicemail: None,
            mixer: None,
            assistant: None,
            handover_summary: None,
            started_at: now_ms(),
            media_started_at: None,
        }
        .start();
        let handle = CallHandle { id, addr };
        registry.register(handle.clone(), call_sid);
        handle
    }

    fn call_handle(&self, ctx: &Context<Self>) -> CallHandle {
        CallHandle {
            id: self.setup.id.clone(),
            addr: ctx.address(),
        }
    }

    fn event(&mut self, kind: &'static str, agent_id: Option<&AgentId>, detail: serde_json::Value) {
        self.seq += 1;
        self.deps.journal.append(JournalEntry::Event(CallEvent {
            call_id: self.setup.id.clone(),
            seq: self.seq,
            at: now_ms(),
            kind,
            agent_id: agent_id.cloned(),
            detail,
        }));
    }

    /// Writes the live status and tells the floor.
    fn status(&mut self, answered_at: Option<i64>) {
        self.deps.journal.append(JournalEntry::Status {
            call_id: self.setup.id.clone(),
            status: self.machine.phase(),
            agent_id: self.machine.agent().cloned(),
            answered_at,
        });
        self.deps.coordinator.call_changed(CallSummary {
            call_id: self.setup.id.clone(),
            workspace: self.setup.workspace.clone(),
            status: self.machine.phase().as_str(),
            agent_id: self.machine.agent().cloned(),
            ringing: self.machine.ringing().to_vec(),
            slot: self.slot,
            from: self.setup.from.clone(),
            to: self.setup.to.clone(),
        });
    }

    /// Tells an agent of a transfer how it goes (`agent_id` is the target).
    fn transfer_status(&self, seat: &SeatLink, agent_id: AgentId, status: &'static str) {
        Self::notify(
            seat,
            SeatNotice::Tell(SeatOutput::TransferStatus {
                call_id: self.setup.id.clone(),
                agent_id,
                status,
            }),
        );
    }

    fn notify(seat: &SeatLink, notice: SeatNotice) {
        // A full mailbox means the seat is drowning; it is closed soon anyway.
        let _ = seat.notices.try_send(notice);
    }

    // ---- ringing ----

    /// Rings the available seats of `agents` (all of the workspace when empty),
    /// except `except`, for `stage`.
    fn ring_round(
        &mut self,
        stage: RingStage,
        agents: Vec<AgentId>,
        except: Vec<AgentId>,
        ctx: &mut Context<Self>,
    ) {
        let coordinator = self.deps.coordinator.clone();
        let workspace = self.setup.workspace.clone();
        let select = async move { coordinator.select(workspace, Some(agents), except).await };
        ctx.spawn(select.into_actor(self).map(move |seats, act, ctx| {
            let seats = seats.unwrap_or_else(|err| {
                tracing::error!(call_id = %act.setup.id, %err, "could not ask the ring coordinator");
                Vec::new()
            });
            act.ring(stage, seats, ctx);
        }));
    }

    fn first_ring(&mut self, ctx: &mut Context<Self>) {
        self.take_route(self.setup.route.clone(), ctx);
    }

    /// Sends the caller where `route` says: the agents' simultaneous ring, the
    /// voicemail prompt, or an assistant.
    fn take_route(&mut self, route: Route, ctx: &mut Context<Self>) {
        match route {
            Route::Agents { agent_ids } => {
                self.start_background(RINGBACK.clone(), ctx);
                self.ring_round(RingStage::First, agent_ids, Vec::new(), ctx);
            }
            Route::Voicemail => self.go_to_voicemail(VoicemailReason::NoAgents, ctx),
            Route::Ai { assistant_id } => self.start_assistant(assistant_id, ctx),
        }
    }

    // ---- the assistant ----

    fn start_assistant(&mut self, assistant_id: String, ctx: &mut Context<Self>) {
        let (Some(hooks), Some(leg)) = (self.deps.hooks.clone(), self.leg.clone()) else {
            self.event(
                "ai_failed",
                None,
                json!({ "assistant_id": assistant_id, "reason": "no assistant service in this engine" }),
            );
            return self.take_route(Route::everyone(), ctx);
        };
        if self.machine.assistant().is_err() {
            return;
        }
        let stop = hooks.start_assistant(AssistantSession {
            call: self.call_handle(ctx),
            leg,
            assistant_id: assistant_id.clone(),
            from: self.setup.from.clone(),
            to: self.setup.to.clone(),
            workspace: self.setup.workspace.clone(),
        });
        self.event("assistant", None, json!({ "assistant_id": assistant_id }));
        self.deps.journal.append(JournalEntry::Assistant {
            call_id: self.setup.id.clone(),
            assistant_id: assistant_id.clone(),
        });
        self.assistant = Some(Assistant {
            id: assistant_id,
            stop: Some(stop),
            turns: Vec::new(),
            usage: Vec::new(),
            transcription_usage: Vec::new(),
            tools_used: Vec::new(),
            ended_by: None,
        });
        self.status(None);
    }

    /// Stops the assistant (if it still runs) and notes how its part ended.
    fn stop_assistant(&mut self, ended_by: &str, reason: &'static str) {
        if let Some(assistant) = &mut self.assistant {
            if let Some(stop) = assistant.stop.take() {
                stop.do_send(StopAssistant { reason });
            }
            assistant
                .ended_by
                .get_or_insert_with(|| ended_by.to_owned());
        }
    }

    /// The assistant hands the caller on (to the agents, or voicemail).
    fn leave_assistant(&mut self, route: Route, ctx: &mut Context<Self>) {
        if let Some(leg) = &self.leg {
            leg.route(LegRoute::Nowhere);
        }
        match route {
            Route::Ai { .. } => self.take_route(Route::everyone(), ctx),
            other => self.take_route(other, ctx),
        }
    }

    fn ring(&mut self, stage: RingStage, seats: Vec<SeatLink>, ctx: &mut Context<Self>) {
        let ids = seats.iter().map(|s| s.agent_id.clone()).collect();
        let update = match self.machine.ring(ids) {
            Err(_) => return, // the call moved on while seats were picked
            Ok(update) => update,
        };
        self.stage = stage;
        match update {
            RingUpdate::ToVoicemail(reason) => return self.go_to_voicemail(reason, ctx),
            RingUpdate::StillParked => return self.nobody_took_it(ctx),
            _ => {}
        }
        self.send_rings(seats, None, false, ctx);
        self.event(
            "ring",
            None,
            json!({ "agent_ids": self.machine.ringing(), "stage": stage_name(stage) }),
        );
        self.status(None);
    }

    fn send_rings(
        &mut self,
        seats: Vec<SeatLink>,
        transferred_by: Option<AgentId>,
        consult: bool,
        ctx: &mut Context<Self>,
    ) {
        let ringing: Vec<AgentId> = self.machine.ringing().to_vec();
        let call = self.call_handle(ctx);
        for seat in seats {
            if !ringing.contains(&seat.agent_id) {
                continue;
            }
            let notice = SeatNotice::Ring {
                call: call.clone(),
                ring: Ring {
                    call_id: self.setup.id.clone(),
                    from: self.setup.from.clone(),
                    to: self.setup.to.clone(),
                    transferred_by: transferred_by.clone(),
                    consult,
                    summary: self.handover_summary.clone(),
                },
            };
            if seat.notices.try_send(notice).is_err() {
                self.deps
                    .stats
                    .ring_deliveries_failed
                    .fetch_add(1, Ordering::Relaxed);
                ctx.notify(SeatGone {
                    agent_id: seat.agent_id.clone(),
                });
            }
            self.rung.insert(seat.agent_id.clone(), seat);
        }
        self.cancel_ring_timer(ctx);
        self.ring_timer = Some(ctx.run_later(self.deps.config.ring_timeout, |act, ctx| {
            act.ring_timer = None;
            if let Some((cancel, update)) = act.machine.ring_timeout() {
                act.cancel_rings(&cancel, CancelReason::Timeout);
                act.event("ring_timeout", None, json!({ "agent_ids": cancel }));
                act.after_ring_ended(update, ctx);
            }
        }));
    }

    /// What follows when the seats rung stop ringing without a winner.
    fn after_ring_ended(&mut self, update: RingUpdate, ctx: &mut Context<Self>) {
        match update {
            RingUpdate::Ignored | RingUpdate::StillRinging => {}
            RingUpdate::ToVoicemail(reason) => self.go_to_voicemail(reason, ctx),
            RingUpdate::StillParked => self.nobody_took_it(ctx),
            RingUpdate::TransferFailed { from } => self.transfer_failed(from, ctx),
            RingUpdate::ConsultFailed { target, .. } => {
                self.consulted = None;
                self.event("transfer_failed", Some(&target), json!({ "warm": true }));
                if let Some(agent) = self.connected.clone() {
                    self.transfer_status(&agent, target, "failed");
                }
                self.bridge(ctx);
                self.status(None);
            }
        }
    }

    /// A parked call's ring ran out: climb the parking-timeout ladder.
    fn nobody_took_it(&mut self, ctx: &mut Context<Self>) {
        match self.stage {
            RingStage::Parker => {
                let except = Vec::new();
                self.ring_round(RingStage::Everyone, Vec::new(), except, ctx);
            }
            RingStage::Everyone => self.go_to_voicemail(VoicemailReason::RingTimeout, ctx),
            _ => self.status(None),
        }
    }

    fn cancel_rings(&mut self, agents: &[AgentId], reason: CancelReason) {
        for agent in agents {
            if let Some(seat) = self.rung.remove(agent) {
                Self::notify(
                    &seat,
                    SeatNotice::Tell(SeatOutput::RingCancel {
                        call_id: self.setup.id.clone(),
                        reason,
                    }),
                );
            }
        }
        // A fresh map, not `clear()`: a ring to a whole floor must not keep its
        // table for the rest of the call.
        self.rung = HashMap::new();
    }

    fn cancel_ring_timer(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.ring_timer.take() {
            ctx.cancel_future(timer);
        }
    }

    // ---- what the caller hears ----

    fn start_background(&mut self, sound: Bytes, ctx: &mut Context<Self>) {
        self.stop_background(ctx);
        let chunk = self.deps.config.ringback_chunk;
        let handle = ctx.run_interval(chunk, |act, _ctx| act.play_background());
        self.background = Some((handle, Looper::new(sound)));
        // Keep one chunk buffered at Twilio so timer jitter never leaves a gap.
        self.play_background();
        self.play_background();
    }

    fn play_background(&mut self) {
        let (Some(leg), Some((_, looper))) = (&self.leg, &mut self.background) else {
            return;
        };
        let bytes = (self.deps.config.ringback_chunk.as_millis() as usize) * 8;
        for chunk in looper.next_chunks(bytes) {
            leg.outbox.send_audio(chunk);
        }
    }

    /// Stops ringback or hold audio and drops what Twilio still has buffered of it.
    fn stop_background(&mut self, ctx: &mut Context<Self>) {
        if let Some((handle, _)) = self.background.take() {
            ctx.cancel_future(handle);
            if let Some(leg) = &self.leg {
                leg.clear();
            }
        }
    }

    /// The caller's audio port as an agent's softphone sees it.
    fn caller_port(&self) -> Option<AudioPort> {
        let leg = self.leg.as_ref()?;
        let port: AudioPort = Arc::new(leg.outbox.clone());
        Some(match &self.mixer {
            Some(mixer) => Arc::new(Tee {
                primary: port,
                mixer: Arc::clone(mixer),
                side: Side::Agent,
            }),
            None => port,
        })
    }

    fn seat_port(&self, seat: &SeatLink) -> AudioPort {
        match &self.mixer {
            Some(mixer) => Arc::new(Tee {
                primary: Arc::clone(&seat.audio),
                mixer: Arc::clone(mixer),
                side: Side::Caller,
            }),
            None => Arc::clone(&seat.audio),
        }
    }

    /// Points every side's audio where the call's phase says: caller ↔ agent when
    /// connected; agent ↔ agent (caller on hold) while consulting.
    fn bridge(&mut self, ctx: &mut Context<Self>) {
        self.point_audio(true, ctx);
    }

    /// [`Self::bridge`]; `tell_agent` false when the connected agent learns where its
    /// audio goes from the answer to its own claim (it is still claiming, and an
    /// `AudioTo` would reach it before it knows it has the call).
    fn point_audio(&mut self, tell_agent: bool, ctx: &mut Context<Self>) {
        let Some(leg) = self.leg.clone() else {
            return;
        };
        match (
            self.machine.phase(),
            self.connected.clone(),
            &self.consulted,
        ) {
            (Phase::Connected, Some(agent), _) => {
                self.stop_background(ctx);
                leg.route(LegRoute::Port(self.seat_port(&agent)));
                if let Some(caller) = self.caller_port().filter(|_| tell_agent) {
                    Self::notify(
                        &agent,
                        SeatNotice::AudioTo {
                            call_id: self.setup.id.clone(),
                            peer_audio: caller,
                        },
                    );
                }
            }
            (Phase::Consulting, Some(agent), Some(target)) => {
                leg.route(LegRoute::Nowhere);
                Self::notify(
                    &agent,
                    SeatNotice::AudioTo {
                        call_id: self.setup.id.clone(),
                        peer_audio: Arc::clone(&target.audio),
                    },
                );
            }
            _ => leg.route(LegRoute::Nowhere),
        }
    }

    // ---- parking ----

    fn park(
        &mut self,
        by: Option<AgentId>,
        reason: &'static str,
        ctx: &mut Context<Self>,
    ) -> Result<(), EngineError> {
        let parking = self.machine.park(by.as_ref())?;
        self.cancel_ring_timer(ctx);
        self.cancel_rings(&parking.cancel, CancelReason::Parked);
        if let (Some(seat), Some(_)) = (self.connected.take(), parking.detached) {
            if reason != "agent_disconnected" {
                Self::notify(
                    &seat,
                    SeatNotice::Tell(SeatOutput::Released {
                        call_id: self.setup.id.clone(),
                        reason: "parked",
                    }),
                );
            }
        }
        if let Some(leg) = &self.leg {
            leg.route(LegRoute::Nowhere);
        }
        self.start_background(HOLD.clone(), ctx);
        let parked_by = self.machine.parked_by().cloned();
        let lot = self.deps.parking.clone();
        let park = ParkIn {
            call: self.call_handle(ctx),
            workspace: self.setup.workspace.clone(),
            parked_by: parked_by.clone(),
            reason,
            from: self.setup.from.clone(),
            to: self.setup.to.clone(),
        };
        ctx.spawn(async move { lot.park(park).await }.into_actor(self).map(
            move |slot, act, ctx| {
                let Ok(slot) = slot else { return };
                if act.machine.phase() != Phase::Parked {
                    // Retrieved (or ended) before the lot answered: give the slot back.
                    act.deps.parking.leave(act.setup.id.clone());
                    return;
                }
                act.slot = Some(slot);
                act.event(
                    "parked",
                    parked_by.as_ref(),
                    json!({ "slot": slot, "by": parked_by, "reason": reason }),
                );
                act.status(None);
                let parked = Parked {
                    call_id: act.setup.id.clone(),
                    slot,
                    parked_by,
                    reason,
                };
                act.deps.coordinator.broadcast(Broadcast {
                    workspace: act.setup.workspace.clone(),
                    notice: SeatNotice::Parked {
                        call: act.call_handle(ctx),
                        parked: parked.clone(),
                    },
                    event: FloorEvent::Parked {
                        parked,
                        workspace: act.setup.workspace.clone(),
                    },
                });
            },
        ));
        if let Some(timer) = self.parking_timer.take() {
            ctx.cancel_future(timer);
        }
        self.parking_timer = Some(ctx.run_later(self.deps.config.parking_timeout, |act, ctx| {
            act.parking_timer = None;
            if act.machine.phase() != Phase::Parked {
                return;
            }
            act.event("park_timeout", None, json!({ "slot": act.slot }));
            match act.machine.parked_by().cloned() {
                Some(parker) => act.ring_round(RingStage::Parker, vec![parker], Vec::new(), ctx),
                None => act.ring_round(RingStage::Everyone, Vec::new(), Vec::new(), ctx),
            }
        }));
        Ok(())
    }

    /// The call left the parking lot: free the slot and tell the floor.
    fn leave_parking(&mut self, agent_id: Option<&AgentId>, ctx: &mut Context<Self>) {
        if let Some(timer) = self.parking_timer.take() {
            ctx.cancel_future(timer);
        }
        let Some(slot) = self.slot.take() else {
            return;
        };
        self.deps.parking.leave(self.setup.id.clone());
        let unparked = Unparked {
            call_id: self.setup.id.clone(),
            slot,
            agent_id: agent_id.cloned(),
        };
        self.deps.coordinator.broadcast(Broadcast {
            workspace: self.setup.workspace.clone(),
            notice: SeatNotice::Tell(SeatOutput::Unparked(unparked.clone())),
            event: FloorEvent::Unparked {
                unparked,
                workspace: self.setup.workspace.clone(),
            },
        });
    }

    // ---- transfers ----

    fn transfer_failed(&mut self, from: AgentId, ctx: &mut Context<Self>) {
        self.event("transfer_failed", Some(&from), json!({ "warm": false }));
        let transferrer = self
            .transferrer
            .take()
            .filter(|s| s.agent_id == from && s.notices.connected());
        // Back to the agent who transferred it, if still here and free; the seat
        // refuses (and the call stays parked) if it is not.
        let reason = "transfer_failed";
        self.park(Some(from.clone()), reason, ctx).ok();
        if let Some(seat) = transferrer {
            if let ClaimDecision::Won { .. } = self.machine.claim(&from, ClaimKind::Unpark) {
                self.give_to(seat, "transfer_failed", ctx);
            }
        }
    }

    /// Connects `seat` without its answer (a transfer coming back, a supervisor's
    /// unpark) and tells it so.
    fn give_to(&mut self, seat: SeatLink, reason: &'static str, ctx: &mut Context<Self>) {
        self.leave_parking(Some(&seat.agent_id), ctx);
        self.connected = Some(seat.clone());
        self.bridge(ctx);
        if let Some(caller) = self.caller_port() {
            Self::notify(
                &seat,
                SeatNotice::Assigned {
                    call: self.call_handle(ctx),
                    peer_audio: caller,
                    reason,
                },
            );
        }
        self.event(
            "connected",
            Some(&seat.agent_id),
            json!({ "reason": reason }),
        );
        self.status(Some(now_ms()));
    }

    // ---- voicemail and the end ----

    fn go_to_voicemail(&mut self, reason: VoicemailReason, ctx: &mut Context<Self>) {
        if self.machine.phase() != Phase::Voicemail {
            match self.machine.voicemail() {
                Ok(cancel) => self.cancel_rings(&cancel, CancelReason::Timeout),
                Err(_) => return,
            }
        }
        self.leave_parking(None, ctx);
        self.cancel_ring_timer(ctx);
        self.stop_background(ctx);
        self.event("voicemail", None, json!({ "reason": reason.as_str() }));
        self.status(None);
        let limit = (self.deps.config.voicemail_max.as_millis() as usize) * 8;
        self.voicemail = Some(Voicemail {
            pending: BytesMut::new(),
            recorded: 0,
            chunks: 0,
            recording_started: false,
            limit,
        });
        let prompt = self.deps.config.voicemail_prompt.clone();
        let prompt_ms = audio::duration_ms(prompt.len() + BEEP.len());
        if let Some(leg) = &self.leg {
            leg.clear();
            for chunk in prompt.chunks(8_000) {
                leg.outbox.send_audio(prompt.slice_ref(chunk));
            }
            leg.outbox.send_audio(BEEP.clone());
            leg.outbox
                .send_after_audio(LegControl::Mark(PROMPT_MARK.into()));
            leg.route(LegRoute::Nowhere);
        }
        // If Twilio never echoes the mark, start recording once the prompt must be over.
        ctx.run_later(Duration::from_millis(prompt_ms + 2_000), |act, ctx| {
            act.start_recording(ctx)
        });
    }

    fn start_recording(&mut self, ctx: &mut Context<Self>) {
        let Some(voicemail) = &mut self.voicemail else {
            return;
        };
        if voicemail.recording_started || self.machine.is_ended() {
            return;
        }
        voicemail.recording_started = true;
        if let Some(leg) = &self.leg {
            leg.route(LegRoute::Call(ctx.address().recipient()));
        }
        let max = self.deps.config.voicemail_max;
        self.event(
            "recording_started",
            None,
            json!({ "max_ms": max.as_millis() as u64 }),
        );
        ctx.run_later(max + Duration::from_millis(500), |act, ctx| {
            if let Some(ending) = act.machine.voicemail_full() {
                act.finish(ending, "recording_limit", ctx);
            }
        });
    }

    /// The one way a call ends: cancel rings, tell the agents, save the recording,
    /// hang up the caller, write the final record, leave the registry.
    fn finish(&mut self, ending: Ending, reason: &str, ctx: &mut Context<Self>) {
        self.cancel_ring_timer(ctx);
        self.leave_parking(None, ctx);
        if let Some((handle, _)) = self.background.take() {
            ctx.cancel_future(handle);
        }
        if let Some(timer) = self.media_timer.take() {
            ctx.cancel_future(timer);
        }
        self.cancel_rings(&ending.cancel, CancelReason::CallerHangup);
        for seat in [self.connected.take(), self.consulted.take()]
            .into_iter()
            .flatten()
        {
            Self::notify(
                &seat,
                SeatNotice::Tell(SeatOutput::CallEnded {
                    call_id: self.setup.id.clone(),
                    reason: reason.to_owned(),
                }),
            );
        }
        if let Some(mut voicemail) = self.voicemail.take() {
            if voicemail.recorded > 0 {
                if let Some(chunk) = voicemail.take_chunk(&self.setup.id) {
                    self.deps.journal.append(chunk);
                }
                let duration_ms = audio::duration_ms(voicemail.recorded) as i64;
                // The store joins the chunks into the recording's WAV.
                self.deps.journal.append(JournalEntry::RecordingFinished {
                    call_id: self.setup.id.clone(),
                    at: now_ms(),
                });
                self.event(
                    "recording_saved",
                    None,
                    json!({ "duration_ms": duration_ms }),
                );
            }
        }
        self.stop_assistant(reason, "call_ended");
        if let Some(leg) = self.leg.take() {
            leg.hang_up(reason.to_owned());
        }
        let agent = ending.agent.or_else(|| self.machine.agent().cloned());
        self.event(
            "ended",
            agent.as_ref(),
            json!({ "outcome": ending.outcome.as_str(), "reason": reason }),
        );
        let ended_at = now_ms();
        self.deps.journal.append(JournalEntry::Closed {
            call_id: self.setup.id.clone(),
            outcome: ending.outcome,
            reason: reason.to_owned(),
            agent_id: agent,
            ended_at,
        });
        if let Some(hooks) = &self.deps.hooks {
            hooks.call_ended(CallReport {
                call_id: self.setup.id.clone(),
                to: self.setup.to.clone(),
                started_at: self.started_at,
                ended_at,
                media: self.media_started_at.map(|at| (at, ended_at)),
                assistant: self.assistant.take().map(|a| AssistantReport {
                    assistant_id: a.id,
                    turns: a.turns,
                    usage: a.usage,
                    transcription_usage: a.transcription_usage,
                    tools_used: a.tools_used,
                    ended_by: a.ended_by.unwrap_or_else(|| reason.to_owned()),
                }),
            });
        }
        let stats = &self.deps.stats;
        stats.calls_active.fetch_sub(1, Ordering::Relaxed);
        let counter = match ending.outcome {
            Outcome::Answered => &stats.outcome_answered,
            Outcome::Voicemail => &stats.outcome_voicemail,
            Outcome::Abandoned => &stats.outcome_abandoned,
            Outcome::Interrupted => &stats.outcome_interrupted,
            Outcome::Failed => &stats.outcome_failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.deps
            .coordinator
            .call_gone(self.setup.id.clone(), ending.outcome.as_str());
        self.deps.registry.unregister(self.setup.id.clone());
        ctx.stop();
    }
}

fn stage_name(stage: RingStage) -> &'static str {
    match stage {
        RingStage::First => "first",
        RingStage::Offer => "offer",
        RingStage::Parker => "parker",
        RingStage::Everyone => "everyone",
        RingStage::Transfer => "transfer",
    }
}

impl Actor for CallActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
        self.deps
            .stats
            .calls_started
            .fetch_add(1, Ordering::Relaxed);
        self.deps.stats.calls_active.fetch_add(1, Ordering::Relaxed);
        self.deps.journal.append(JournalEntry::Opened(CallOpened {
            id: self.setup.id.clone(),
            call_sid: self.setup.call_sid.clone(),
            from: self.setup.from.clone(),
            to: self.setup.to.clone(),
            workspace: Some(self.setup.workspace.clone()),
            direction: "inbound",
            started_at: now_ms(),
        }));
        let route = serde_json::to_value(&self.setup.route).unwrap_or_default();
        let mut created = json!({ "from": self.setup.from, "to": self.setup.to, "route": route });
        if let Some(raw) = &self.setup.raw {
            created["raw"] = raw.clone();
        }
        self.event("created", None, created);
        self.status(None);
        self.media_timer = Some(ctx.run_later(self.deps.config.media_timeout, |act, ctx| {
            act.media_timer = None;
            if act.leg.is_none() {
                if let Some(ending) = act.machine.fail() {
                    act.finish(ending, "media_timeout", ctx);
                }
            }
        }));
    }
}

impl Handler<AttachCaller> for CallActor {
    type Result = Result<(), EngineError>;

    fn handle(&mut self, msg: AttachCaller, ctx: &mut Self::Context) -> Self::Result {
        if self.leg.is_some() || self.machine.phase() != Phase::AwaitingMedia {
            return Err(EngineError::Refused(
                "this call already has a media stream".into(),
            ));
        }
        if let Some(timer) = self.media_timer.take() {
            ctx.cancel_future(timer);
        }
        self.event(
            "media_started",
            None,
            json!({ "stream_sid": msg.leg.stream_sid }),
        );
        self.leg = Some(msg.leg);
        self.media_started_at = Some(now_ms());
        self.first_ring(ctx);
        Ok(())
    }
}

impl Handler<Claim> for CallActor {
    type Result = MessageResult<Claim>;

    fn handle(&mut self, msg: Claim, ctx: &mut Self::Context) -> Self::Result {
        if msg.seat.workspace != self.setup.workspace {
            return MessageResult(ClaimResult::Lost);
        }
        let was_parked = self.machine.phase() == Phase::Parked;
        let transfer = self.machine.pending_transfer().cloned();
        match self.machine.claim(&msg.agent_id, msg.kind) {
            ClaimDecision::Lost => MessageResult(ClaimResult::Lost),
            ClaimDecision::Consulting => {
                // The consulted agent answered: the two agents talk, the caller holds.
                self.rung.remove(&msg.agent_id);
                self.cancel_ring_timer(ctx);
                let Some(agent) = self.connected.clone() else {
                    return MessageResult(ClaimResult::Lost);
                };
                self.consulted = Some(msg.seat.clone());
                self.bridge(ctx);
                self.transfer_status(&agent, msg.agent_id.clone(), "consulting");
                self.event("consult_connected", Some(&msg.agent_id), json!({}));
                self.status(None);
                MessageResult(ClaimResult::Won {
                    peer_audio: Arc::clone(&agent.audio),
                })
            }
            ClaimDecision::Won { cancel } => {
                self.deps.stats.claims_won.fetch_add(1, Ordering::Relaxed);
                self.rung.remove(&msg.agent_id);
                self.cancel_rings(&cancel, CancelReason::AnsweredElsewhere);
                self.cancel_ring_timer(ctx);
                if was_parked {
                    self.leave_parking(Some(&msg.agent_id), ctx);
                }
                let kind = match (msg.kind, &transfer) {
                    (ClaimKind::Unpark, _) => "unparked",
                    (_, Some(_)) => "transfer_accepted",
                    _ => "claimed",
                };
                if let Some(t) = &transfer {
                    if let Some(from) = self.transferrer.take() {
                        self.transfer_status(&from, t.to.clone(), "completed");
                    }
                }
                self.connected = Some(msg.seat.clone());
                // The winner's audio goes where its `Won` (or `Assigned`) says.
                self.point_audio(false, ctx);
                let Some(caller) = self.caller_port() else {
                    return MessageResult(ClaimResult::Lost);
                };
                if msg.notify {
                    Self::notify(
                        &msg.seat,
                        SeatNotice::Assigned {
                            call: self.call_handle(ctx),
                            peer_audio: Arc::clone(&caller),
                            reason: "supervisor",
                        },
                    );
                }
                self.event(kind, Some(&msg.agent_id), json!({ "slot": self.slot }));
                self.status(Some(now_ms()));
                MessageResult(ClaimResult::Won { peer_audio: caller })
            }
        }
    }
}

impl Handler<Decline> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: Decline, ctx: &mut Self::Context) {
        let update = self.machine.decline(&msg.agent_id);
        if update == RingUpdate::Ignored {
            return;
        }
        self.rung.remove(&msg.agent_id);
        self.event("declined", Some(&msg.agent_id), json!({}));
        if update != RingUpdate::StillRinging {
            self.cancel_ring_timer(ctx);
        }
        self.after_ring_ended(update, ctx);
    }
}

impl Handler<SeatGone> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: SeatGone, ctx: &mut Self::Context) {
        let left = self.machine.seat_left(&msg.agent_id);
        self.seat_departed(msg.agent_id, left, ctx);
    }
}

impl CallActor {
    /// Carries out what a seat's departure (already applied to the machine) means.
    fn seat_departed(&mut self, agent_id: AgentId, left: SeatLeft, ctx: &mut Context<Self>) {
        match left {
            SeatLeft::Ignored => {}
            SeatLeft::Ring(update) => {
                self.rung.remove(&agent_id);
                if self
                    .consulted
                    .as_ref()
                    .is_some_and(|s| s.agent_id == agent_id)
                {
                    self.consulted = None;
                }
                self.event("seat_left", Some(&agent_id), json!({}));
                if update != RingUpdate::StillRinging {
                    self.cancel_ring_timer(ctx);
                }
                self.after_ring_ended(update, ctx);
            }
            SeatLeft::AgentDropped => {
                // Never drop the caller for an agent's failure: park the call (the
                // agent may come back for it) and offer it to everyone else.
                self.connected = None;
                self.event("agent_disconnected", Some(&agent_id), json!({}));
                if self
                    .park(Some(agent_id.clone()), "agent_disconnected", ctx)
                    .is_ok()
                {
                    self.ring_round(RingStage::Offer, Vec::new(), vec![agent_id], ctx);
                }
            }
            SeatLeft::TransferCompleted { to } => {
                self.connected = self.consulted.take();
                self.event("transfer_completed", Some(&to), json!({ "warm": true }));
                if let Some(target) = &self.connected {
                    self.transfer_status(target, to.clone(), "completed");
                }
                self.bridge(ctx);
                self.status(None);
            }
        }
    }
}

impl Handler<SeatHangup> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: SeatHangup, ctx: &mut Self::Context) {
        if self.machine.phase() == Phase::Consulting {
            // The consulting agent hangs up: it leaves, the transfer goes on (the
            // consulted agent keeps the caller if it answered, or keeps ringing).
            let left = self.machine.seat_left(&msg.agent_id);
            if let Some(agent) = self.connected.take() {
                Self::notify(
                    &agent,
                    SeatNotice::Tell(SeatOutput::Released {
                        call_id: self.setup.id.clone(),
                        reason: "transferred",
                    }),
                );
            }
            return self.seat_departed(msg.agent_id, left, ctx);
        }
        if let Ok(ending) = self.machine.agent_hangup(&msg.agent_id) {
            self.event("hangup", Some(&msg.agent_id), json!({ "by": "agent" }));
            self.finish(ending, "agent_hangup", ctx);
        }
    }
}

impl Handler<Park> for CallActor {
    type Result = Result<(), EngineError>;

    fn handle(&mut self, msg: Park, ctx: &mut Self::Context) -> Self::Result {
        if let Some(agent) = &msg.by {
            if self.machine.agent() != Some(agent) || self.machine.phase() != Phase::Connected {
                return Err(EngineError::Refused(
                    "only the agent on the call may park it".into(),
                ));
            }
        }
        self.park(msg.by, msg.reason, ctx)
    }
}

impl Handler<Transfer> for CallActor {
    type Result = Result<(), EngineError>;

    fn handle(&mut self, msg: Transfer, ctx: &mut Self::Context) -> Self::Result {
        if msg.to.workspace != self.setup.workspace {
            return Err(EngineError::WrongWorkspace(
                "the target is in another workspace".into(),
            ));
        }
        let target = msg.to.agent_id.clone();
        if self.machine.phase() == Phase::Parked && msg.from.is_none() {
            // A supervisor sends a parked call to an agent: it rings that agent.
            self.machine.ring(vec![target.clone()])?;
            self.stage = RingStage::Transfer;
            self.send_rings(vec![msg.to], None, false, ctx);
            self.event(
                "transferred",
                Some(&target),
                json!({ "by": "supervisor", "warm": false }),
            );
            return Ok(());
        }
        let from = match msg.from.or_else(|| self.machine.agent().cloned()) {
            Some(from) => from,
            None => {
                return Err(EngineError::Refused(
                    "the call has no agent to transfer from".into(),
                ))
            }
        };
        self.machine.start_transfer(&from, &target, msg.warm)?;
        self.stage = RingStage::Transfer;
        let by = self.connected.clone();
        if let Some(from_seat) = &by {
            self.transfer_status(from_seat, target.clone(), "ringing");
        }
        if msg.warm {
            // The caller holds while the two agents talk.
            if let Some(leg) = &self.leg {
                leg.route(LegRoute::Nowhere);
            }
            self.start_background(HOLD.clone(), ctx);
        } else if let Some(seat) = self.connected.take() {
            Self::notify(
                &seat,
                SeatNotice::Tell(SeatOutput::Released {
                    call_id: self.setup.id.clone(),
                    reason: "transferred",
                }),
            );
            if let Some(leg) = &self.leg {
                leg.route(LegRoute::Nowhere);
            }
            self.start_background(RINGBACK.clone(), ctx);
        }
        self.transferrer = by;
        self.send_rings(vec![msg.to], Some(from.clone()), msg.warm, ctx);
        self.event(
            "transferred",
            Some(&from),
            json!({ "to": target, "warm": msg.warm }),
        );
        self.status(None);
        Ok(())
    }
}

impl Handler<CompleteTransfer> for CallActor {
    type Result = Result<(), EngineError>;

    fn handle(&mut self, msg: CompleteTransfer, ctx: &mut Self::Context) -> Self::Result {
        let transfer = self.machine.complete_transfer(&msg.by)?;
        if let Some(agent) = self.connected.take() {
            self.transfer_status(&agent, transfer.to.clone(), "completed");
            Self::notify(
                &agent,
                SeatNotice::Tell(SeatOutput::Released {
                    call_id: self.setup.id.clone(),
                    reason: "transferred",
                }),
            );
        }
        self.transferrer = None;
        self.connected = self.consulted.take();
        if let Some(target) = &self.connected {
            self.transfer_status(target, transfer.to.clone(), "completed");
        }
        self.bridge(ctx);
        self.event(
            "transfer_completed",
            Some(&transfer.to),
            json!({ "warm": true, "from": transfer.from }),
        );
        self.status(None);
        Ok(())
    }
}

impl Handler<CancelTransfer> for CallActor {
    type Result = Result<(), EngineError>;

    fn handle(&mut self, msg: CancelTransfer, ctx: &mut Self::Context) -> Self::Result {
        let transfer = self.machine.cancel_transfer(&msg.by)?;
        self.transferrer = None;
        self.cancel_ring_timer(ctx);
        self.cancel_rings(std::slice::from_ref(&transfer.to), CancelReason::Declined);
        if let Some(target) = self.consulted.take() {
            Self::notify(
                &target,
                SeatNotice::Tell(SeatOutput::Released {
                    call_id: self.setup.id.clone(),
                    reason: "transfer_cancelled",
                }),
            );
        }
        if let Some(agent) = &self.connected {
            self.transfer_status(agent, transfer.to.clone(), "cancelled");
        }
        self.bridge(ctx);
        self.event("transfer_cancelled", Some(&transfer.to), json!({}));
        self.status(None);
        Ok(())
    }
}

impl Handler<SupervisorHangup> for CallActor {
    type Result = Result<(), EngineError>;

    fn handle(&mut self, _msg: SupervisorHangup, ctx: &mut Self::Context) -> Self::Result {
        let ending = self
            .machine
            .hang_up()
            .ok_or_else(|| EngineError::Refused("the call has ended".into()))?;
        self.event("hangup", None, json!({ "by": "supervisor" }));
        self.finish(ending, "supervisor_hangup", ctx);
        Ok(())
    }
}

impl Handler<Listen> for CallActor {
    type Result = Result<(), EngineError>;

    fn handle(&mut self, msg: Listen, ctx: &mut Self::Context) -> Self::Result {
        if self.machine.phase() == Phase::Assistant {
            // The assistant's audio comes in bursts ahead of play-out; it cannot be
            // mixed frame by frame with the caller's. Listening starts with a human.
            return Err(EngineError::Refused(
                "an AI assistant has this call; listening is possible once an agent has it".into(),
            ));
        }
        let mixer = Arc::clone(self.mixer.get_or_insert_with(Default::default));
        mixer.add_listener(msg.port);
        self.event("listen", None, json!({ "listeners": mixer.listeners() }));
        self.bridge(ctx);
        Ok(())
    }
}

impl Handler<AssistantUpdate> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: AssistantUpdate, ctx: &mut Self::Context) {
        if self.machine.is_ended() {
            return;
        }
        let talking = self.machine.phase() == Phase::Assistant;
        match msg {
            AssistantUpdate::Connected { model } => {
                self.event("ai_connected", None, json!({ "model": model }));
            }
            AssistantUpdate::Turn { role, text, at } => {
                self.event("transcript", None, json!({ "role": role, "text": text }));
                if let Some(assistant) = &mut self.assistant {
                    let seq = assistant.turns.len() as i64 + 1;
                    assistant.turns.push((role.to_owned(), text.clone()));
                    self.deps.journal.append(JournalEntry::Turn {
                        call_id: self.setup.id.clone(),
                        seq,
                        at,
                        role,
                        text,
                    });
                }
            }
            AssistantUpdate::BargeIn { item_id, played_ms } => {
                self.event(
                    "barge_in",
                    None,
                    json!({ "item_id": item_id, "played_ms": played_ms }),
                );
            }
            AssistantUpdate::Tool { name, ok, detail } => {
                self.event(
                    "tool_call",
                    None,
                    json!({ "name": name, "ok": ok, "detail": detail }),
                );
                if let Some(assistant) = &mut self.assistant {
                    assistant.tools_used.push(name);
                }
            }
            AssistantUpdate::Logged { name, detail } => {
                self.event("ai_log", None, json!({ "name": name, "detail": detail }));
            }
            AssistantUpdate::Usage { model, usage } => {
                if let Some(assistant) = &mut self.assistant {
                    assistant.usage.push((model, usage));
                }
            }
            AssistantUpdate::TranscriptionUsage { model, usage } => {
                if let Some(assistant) = &mut self.assistant {
                    assistant.transcription_usage.push((model, usage));
                }
            }
            AssistantUpdate::TurnFailed { reason, retrying } => {
                self.event(
                    "ai_turn_failed",
                    None,
                    json!({ "reason": reason, "retrying": retrying }),
                );
            }
            AssistantUpdate::Handover {
                route,
                summary,
                reason,
            } if talking => {
                self.stop_assistant("transferred", "handover");
                self.event(
                    "ai_handover",
                    None,
                    json!({ "reason": reason, "summary": summary }),
                );
                self.handover_summary = Some(summary);
                self.leave_assistant(route, ctx);
            }
            AssistantUpdate::HangUp { reason } if talking => {
                self.stop_assistant("end_call", "end_call");
                self.event(
                    "hangup",
                    None,
                    json!({ "by": "assistant", "reason": reason }),
                );
                if let Some(ending) = self.machine.hang_up() {
                    self.finish(ending, "assistant_end_call", ctx);
                }
            }
            AssistantUpdate::Failed { route, reason } if talking => {
                self.stop_assistant("assistant_failed", "failed");
                let to = serde_json::to_value(&route).unwrap_or_default();
                self.event("ai_failed", None, json!({ "reason": reason, "route": to }));
                if let Some(leg) = &self.leg {
                    leg.clear();
                }
                self.leave_assistant(route, ctx);
            }
            AssistantUpdate::Handover { .. }
            | AssistantUpdate::HangUp { .. }
            | AssistantUpdate::Failed { .. } => {}
        }
    }
}

impl Handler<CallerLeft> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: CallerLeft, ctx: &mut Self::Context) {
        // The leg is gone: do not try to hang it up again.
        self.leg = None;
        if let Some(ending) = self.machine.caller_left() {
            self.event(
                "hangup",
                None,
                json!({ "by": "caller", "reason": msg.reason }),
            );
            self.finish(ending, msg.reason, ctx);
        }
    }
}

impl Handler<CallerAudio> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: CallerAudio, ctx: &mut Self::Context) {
        let Some(voicemail) = &mut self.voicemail else {
            return;
        };
        if !voicemail.recording_started {
            return;
        }
        let room = voicemail.limit.saturating_sub(voicemail.recorded);
        let take = msg.frame.len().min(room);
        voicemail.pending.extend_from_slice(&msg.frame[..take]);
        voicemail.recorded += take;
        let full = voicemail.recorded >= voicemail.limit;
        if voicemail.pending.len() >= RECORDING_CHUNK_BYTES {
            if let Some(chunk) = voicemail.take_chunk(&self.setup.id) {
                self.deps.journal.append(chunk);
            }
        }
        self.machine.recorded(take);
        if full {
            if let Some(ending) = self.machine.voicemail_full() {
                self.finish(ending, "recording_limit", ctx);
            }
        }
    }
}

impl Handler<CallerMark> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: CallerMark, ctx: &mut Self::Context) {
        if msg.name == PROMPT_MARK {
            self.start_recording(ctx);
        }
    }
}

impl Handler<CallerDtmf> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: CallerDtmf, _ctx: &mut Self::Context) {
        self.event("dtmf", None, json!({ "digit": msg.digit }));
    }
}

impl Handler<AgentPresence> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: AgentPresence, _ctx: &mut Self::Context) {
        self.event(
            "presence",
            Some(&msg.agent_id),
            json!({ "status": msg.presence }),
        );
    }
}

impl Handler<Interrupt> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: Interrupt, ctx: &mut Self::Context) {
        if let Some(ending) = self.machine.interrupt() {
            self.finish(ending, msg.reason, ctx);
        }
    }
}

impl Handler<TwilioStatus> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: TwilioStatus, ctx: &mut Self::Context) {
        self.event(
            "twilio_status",
            None,
            json!({ "status": msg.status, "detail": msg.detail }),
        );
        let ending = match msg.status.as_str() {
            "completed" | "canceled" => self.machine.caller_left(),
            "failed" | "busy" | "no-answer" => self.machine.fail(),
            _ => None,
        };
        if let Some(ending) = ending {
            self.finish(ending, &format!("twilio_{}", msg.status), ctx);
        }
    }
}

// ---- the handle ----------------------------------------------------------------

/// The typed way to talk to a call.
#[derive(Clone)]
pub struct CallHandle {
    id: CallId,
    addr: Addr<CallActor>,
}

impl std::fmt::Debug for CallHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallHandle").field("id", &self.id).finish()
    }
}

impl CallHandle {
    pub fn id(&self) -> &CallId {
        &self.id
    }

    async fn ask<M>(&self, msg: M) -> Result<M::Result, EngineError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        CallActor: Handler<M>,
    {
        self.addr
            .send(msg)
            .await
            .map_err(|e| EngineError::mailbox("call", e))
    }

    pub async fn attach(&self, leg: LegHandle) -> Result<(), EngineError> {
        self.ask(AttachCaller { leg }).await?
    }

    pub async fn claim(
        &self,
        agent_id: AgentId,
        seat: SeatLink,
        kind: ClaimKind,
        notify: bool,
    ) -> Result<ClaimResult, EngineError> {
        self.ask(Claim {
            agent_id,
            seat,
            kind,
            notify,
        })
        .await
    }

    pub async fn park(&self, by: Option<AgentId>, reason: &'static str) -> Result<(), EngineError> {
        self.ask(Park { by, reason }).await?
    }

    pub async fn transfer(
        &self,
        from: AgentId,
        to: SeatLink,
        warm: bool,
    ) -> Result<(), EngineError> {
        self.ask(Transfer {
            from: Some(from),
            to,
            warm,
        })
        .await?
    }

    /// A supervisor's transfer: whoever has the call (or the parking lot) to `to`.
    pub async fn transfer_to(&self, to: SeatLink) -> Result<(), EngineError> {
        self.ask(Transfer {
            from: None,
            to,
            warm: false,
        })
        .await?
    }

    pub async fn complete_transfer(&self, by: AgentId) -> Result<(), EngineError> {
        self.ask(CompleteTransfer { by }).await?
    }

    pub async fn cancel_transfer(&self, by: AgentId) -> Result<(), EngineError> {
        self.ask(CancelTransfer { by }).await?
    }

    pub async fn supervisor_hangup(&self) -> Result<(), EngineError> {
        self.ask(SupervisorHangup).await?
    }

    pub async fn listen(&self, port: AudioPort) -> Result<(), EngineError> {
        self.ask(Listen { port }).await?
    }

    pub fn decline(&self, agent_id: AgentId) {
        self.addr.do_send(Decline { agent_id });
    }

    pub fn hangup(&self, agent_id: AgentId) {
        self.addr.do_send(SeatHangup { agent_id });
    }

    pub fn seat_left(&self, agent_id: AgentId) {
        self.addr.do_send(SeatGone { agent_id });
    }

    pub fn agent_presence(&self, agent_id: AgentId, presence: &'static str) {
        self.addr.do_send(AgentPresence { agent_id, presence });
    }

    pub fn caller_left(&self, reason: &'static str) {
        self.addr.do_send(CallerLeft { reason });
    }

    pub fn caller_mark(&self, name: String) {
        self.addr.do_send(CallerMark { name });
    }

    pub fn caller_dtmf(&self, digit: String) {
        self.addr.do_send(CallerDtmf { digit });
    }

    pub fn twilio_status(&self, status: String, detail: serde_json::Value) {
        self.addr.do_send(TwilioStatus { status, detail });
    }

    /// Ends the call as `interrupted`; resolves once the call has handled it.
    pub async fn interrupt(&self, reason: &'static str) {
        let _ = self.addr.send(Interrupt { reason }).await;
    }

    /// News from the call's assistant.
    pub fn assistant_update(&self, update: AssistantUpdate) {
        self.addr.do_send(update);
    }

    pub fn is_alive(&self) -> bool {
        self.addr.connected()
    }
}
