//! CallActor: one call, from the webhook to its final record. Owns the call's state
//! machine, its ring set and the claim: every `answer`, `unpark` and transfer
//! acceptance for this call is a message in this actor's mailbox, so of any number
//! of simultaneous claims exactly one is first. Decides where every side's audio
//! goes (ringback, hold audio, an agent, a consulted agent, the voicemail recorder,
//! listening supervisors) and writes the call's event trail to the journal.
//!
//! # Layout
//!
//! One actor; its messages, handlers and helpers live with the concern they serve
//! (several `impl CallActor` blocks, one `impl Handler` per message):
//!
//! - `mod.rs` (this file): what a call is made of (`CallConfig`, `CallDeps`,
//!   `CallSetup`, the actor's fields), `launch`, the start (`impl Actor`), the
//!   caller's media stream attaching, and the event trail and live status every
//!   concern writes.
//! - `ringing.rs`: who rings and who wins — the route taken first, ring rounds and
//!   their stages, the ring timer, `Claim` (answer, unpark, transfer acceptance:
//!   the single winner), `Decline`, and seats that leave.
//! - `bridge.rs`: what each side hears — ringback and hold audio, caller and agent
//!   audio pointed at each other, supervisors' `Listen`.
//! - `park.rs`: parking and the parking timer, leaving the lot, a call handed to a
//!   seat without its answer, and transfers (blind, warm, complete, cancel, failed).
//! - `voicemail.rs`: the prompt, the recording and its chunks.
//! - `assistant.rs`: an AI-routed call's assistant, its news, and its hand-over to
//!   the agents or voicemail.
//! - `end.rs`: the one way a call ends (`finish`) and what ends it: hang-ups, the
//!   caller leaving, Twilio's status, the engine stopping.
//! - `handle.rs`: `CallHandle`, the typed way to talk to a call.
//! - `adopt.rs`: a call taken over from another node of a cluster (failover,
//!   drain): its start under the same id, its `node_failure` re-offer, and
//!   `Release`, how a draining node lets a call go without ending it.

mod adopt;
mod assistant;
mod bridge;
mod end;
mod handle;
mod park;
mod ringing;
mod voicemail;

pub use adopt::{Adoption, Release};
pub use assistant::MachineVerdict;
pub use bridge::{Listen, Unlisten};
pub use end::{CallerLeft, Interrupt, SeatHangup, SupervisorHangup, TwilioStatus};
pub use handle::{CallHandle, CallRemote, CallReply, CallRequest, RemoteReply};
pub use park::{CancelTransfer, CompleteTransfer, Park, Transfer};
pub use ringing::{Claim, ClaimResult, Decline, SeatGone};
pub use voicemail::{CallerAudio, CallerMark, PROMPT_MARK, RECORDING_CHUNK_BYTES};

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use serde_json::json;

use crate::assistant::CallHooks;
use crate::audio::Looper;
use crate::coordinator::{CoordinatorHandle, FloorCall};
use crate::error::EngineError;
use crate::ids::{AgentId, CallId, Workspace};
use crate::journal::{now_ms, rfc3339, CallEvent, CallOpened, Journal, JournalEntry};
use crate::leg::LegHandle;
use crate::machine::{CallMachine, Phase};
use crate::mixer::Mixer;
use crate::number::Route;
use crate::parking::ParkingHandle;
use crate::registry::RegistryHandle;
use crate::seat::{SeatLink, SeatNotice};
use crate::stats::EngineStats;

use self::assistant::Assistant;
use self::ringing::RingStage;
use self::voicemail::Voicemail;

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
    /// In a cluster, how long a call whose media stream closed without Twilio's
    /// `stop` waits for Twilio to come back with a new stream (the TwiML's
    /// `<Redirect>` to the resume route) before it ends; `None` on a single node,
    /// where such a call ends at once.
    pub resume_grace: Option<Duration>,
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
            resume_grace: None,
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
    /// `inbound`, or `outbound` for a call the engine placed.
    pub direction: &'static str,
}

/// The caller's media stream started.
#[derive(Message)]
#[rtype(result = "Result<(), EngineError>")]
pub struct AttachCaller {
    pub leg: LegHandle,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct CallerDtmf {
    pub digit: String,
}

/// The connected agent pressed keys: answers the caller's leg to play them into,
/// once the trail has them.
#[derive(Message)]
#[rtype(result = "Result<LegHandle, EngineError>")]
pub struct AgentDigits {
    pub agent_id: AgentId,
    pub digits: String,
}

/// The agent on the call changed its presence (recorded in the trail).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AgentPresence {
    pub agent_id: AgentId,
    pub presence: &'static str,
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
    /// Answering-machine detection's verdict (outbound calls), once known.
    answered_by: Option<String>,
    started_at: i64,
    media_started_at: Option<i64>,
    /// The status consoles see and since when (ms), for `since`.
    shown_status: (&'static str, i64),
    /// The names of the agents this call has met (rung, connected), for the
    /// parking lot's `parked_by_name`.
    names: HashMap<AgentId, Arc<str>>,
    /// The caller's and the called number, shared by every handle.
    parties: Arc<(String, String)>,
    /// Set for a call adopted from another node until its new stream starts.
    adoption: Option<Adoption>,
    /// The stream closed without `stop` (cluster mode): the timer that ends the
    /// call unless a new stream attaches first.
    awaiting_resume: Option<SpawnHandle>,
}

impl CallActor {
    /// Starts the call on the current arbiter and registers it; the returned handle
    /// is found by the registry from the moment this returns.
    pub fn launch(setup: CallSetup, deps: CallDeps) -> CallHandle {
        Self::launch_with(setup, deps, None)
    }

    fn launch_with(setup: CallSetup, deps: CallDeps, adoption: Option<Adoption>) -> CallHandle {
        let id = setup.id.clone();
        let call_sid = setup.call_sid.clone();
        let registry = deps.registry.clone();
        let parties = Arc::new((setup.from.clone(), setup.to.clone()));
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
            answered_by: None,
            started_at: now_ms(),
            media_started_at: None,
            shown_status: ("", 0),
            names: HashMap::new(),
            parties: Arc::clone(&parties),
            adoption,
            awaiting_resume: None,
        }
        .start();
        let handle = CallHandle {
            id,
            target: handle::Target::Local(addr),
            parties,
        };
        registry.register(handle.clone(), call_sid);
        handle
    }

    fn call_handle(&self, ctx: &Context<Self>) -> CallHandle {
        CallHandle {
            id: self.setup.id.clone(),
            target: handle::Target::Local(ctx.address()),
            parties: Arc::clone(&self.parties),
        }
    }

    /// Remembers a seat's agent name (for the parking lot).
    fn meet(&mut self, seat: &SeatLink) {
        if !self.names.contains_key(&seat.agent_id) {
            self.names
                .insert(seat.agent_id.clone(), Arc::clone(&seat.name));
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
        let status = self.machine.phase().as_str();
        if self.shown_status.0 != status {
            self.shown_status = (status, now_ms());
        }
        self.deps.journal.append(JournalEntry::Status {
            call_id: self.setup.id.clone(),
            status: self.machine.phase(),
            agent_id: self.machine.agent().cloned(),
            answered_at,
        });
        self.deps.coordinator.call_changed(FloorCall {
            call_id: self.setup.id.clone(),
            workspace: self.setup.workspace.clone(),
            status,
            since: rfc3339(self.shown_status.1),
            agent_id: self.machine.agent().cloned(),
            ringing: self.machine.ringing().to_vec(),
            slot: self.slot,
            from: self.setup.from.clone(),
            to: self.setup.to.clone(),
        });
    }

    fn notify(seat: &SeatLink, notice: SeatNotice) {
        // A full mailbox means the seat is drowning; it is closed soon anyway.
        let _ = seat.notices.try_send(notice);
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
        if let Some(adoption) = &self.adoption {
            // The call's record and trail exist: its events continue after them.
            self.seq = adoption.last_seq;
            self.started_at = adoption.started_at;
            self.status(None);
            self.start_media_timer(ctx);
            return;
        }
        self.deps.journal.append(JournalEntry::Opened(CallOpened {
            id: self.setup.id.clone(),
            call_sid: self.setup.call_sid.clone(),
            from: self.setup.from.clone(),
            to: self.setup.to.clone(),
            workspace: Some(self.setup.workspace.clone()),
            direction: self.setup.direction,
            started_at: now_ms(),
        }));
        let route = serde_json::to_value(&self.setup.route).unwrap_or_default();
        let mut created = json!({ "from": self.setup.from, "to": self.setup.to, "route": route });
        if let Some(raw) = &self.setup.raw {
            created["raw"] = raw.clone();
        }
        self.event("created", None, created);
        self.status(None);
        self.start_media_timer(ctx);
    }
}

impl CallActor {
    fn start_media_timer(&mut self, ctx: &mut Context<Self>) {
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
        if self.leg.is_none() && self.awaiting_resume.is_some() {
            self.reattach(msg.leg, ctx);
            return Ok(());
        }
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
        if let Some(adoption) = self.adoption.take() {
            self.resume_adopted(adoption, ctx);
            return Ok(());
        }
        self.first_ring(ctx);
        Ok(())
    }
}

impl Handler<CallerDtmf> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: CallerDtmf, _ctx: &mut Self::Context) {
        self.event("dtmf", None, json!({ "digit": msg.digit }));
    }
}

impl Handler<AgentDigits> for CallActor {
    type Result = Result<LegHandle, EngineError>;

    fn handle(&mut self, msg: AgentDigits, _ctx: &mut Self::Context) -> Self::Result {
        if self.machine.agent() != Some(&msg.agent_id) || self.machine.phase() != Phase::Connected {
            return Err(EngineError::NotOnCall(format!(
                "agent {} is not talking with the caller of call {}",
                msg.agent_id, self.setup.id
            )));
        }
        let leg = self.leg.clone().ok_or_else(|| {
            EngineError::Refused("the call has no media stream to play digits into".into())
        })?;
        self.event("dtmf", Some(&msg.agent_id), json!({ "digits": msg.digits }));
        Ok(leg)
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
