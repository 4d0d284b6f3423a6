//! CallActor: one call, from the webhook to its final record. Owns the call's state
//! machine, its ring set and the claim: every `answer` for this call is a message in
//! this actor's mailbox, so of any number of simultaneous answers exactly one is
//! first. Decides where the caller's audio goes (ringback, an agent, the voicemail
//! recorder) and writes the call's event trail to the journal.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use serde_json::json;

use crate::audio::{self, Looper, BEEP, RINGBACK};
use crate::coordinator::CoordinatorHandle;
use crate::error::EngineError;
use crate::ids::{AgentId, CallId, Workspace};
use crate::journal::{now_ms, CallEvent, CallOpened, Journal, JournalEntry};
use crate::leg::{LegControl, LegHandle, LegRoute};
use crate::machine::{
    CallMachine, CancelReason, ClaimDecision, Ending, Phase, RingUpdate, SeatLeft, VoicemailReason,
};
use crate::number::Route;
use crate::outbox::AudioPort;
use crate::registry::RegistryHandle;
use crate::seat::{SeatLink, SeatNotice};
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
    /// Ringback is sent in chunks of this length, one chunk per tick.
    pub ringback_chunk: Duration,
}

impl Default for CallConfig {
    fn default() -> Self {
        Self {
            ring_timeout: Duration::from_secs(30),
            media_timeout: Duration::from_secs(15),
            voicemail_max: Duration::from_secs(120),
            voicemail_prompt: Bytes::new(),
            ringback_chunk: Duration::from_millis(200),
        }
    }
}

/// What every call needs from the rest of the engine.
#[derive(Clone)]
pub struct CallDeps {
    pub coordinator: CoordinatorHandle,
    pub registry: RegistryHandle,
    pub journal: Arc<dyn Journal>,
    pub config: Arc<CallConfig>,
    pub stats: Arc<EngineStats>,
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

/// An agent's `answer`.
#[derive(Message)]
#[rtype(result = "ClaimResult")]
pub struct Claim {
    pub agent_id: AgentId,
    pub seat: SeatLink,
}

pub enum ClaimResult {
    /// The seat has the call; its audio goes to `caller_audio`.
    Won {
        caller_audio: AudioPort,
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

struct Voicemail {
    recording: BytesMut,
    recording_started: bool,
    limit: usize,
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
    connected: Option<SeatLink>,
    ringback: Option<(SpawnHandle, Looper)>,
    ring_timer: Option<SpawnHandle>,
    media_timer: Option<SpawnHandle>,
    voicemail: Option<Voicemail>,
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
            connected: None,
            ringback: None,
            ring_timer: None,
            media_timer: None,
            voicemail: None,
        }
        .start();
        let handle = CallHandle { id, addr };
        registry.register(handle.clone(), call_sid);
        handle
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

    fn status(&mut self, answered_at: Option<i64>) {
        self.deps.journal.append(JournalEntry::Status {
            call_id: self.setup.id.clone(),
            status: self.machine.phase(),
            agent_id: self.machine.agent().cloned(),
            answered_at,
        });
    }

    fn start_ring_round(&mut self, ctx: &mut Context<Self>) {
        let agents = match &self.setup.route {
            Route::Agents { agent_ids } => agent_ids.clone(),
            Route::Voicemail => return self.go_to_voicemail(VoicemailReason::NoAgents, ctx),
        };
        self.start_ringback(ctx);
        let coordinator = self.deps.coordinator.clone();
        let workspace = self.setup.workspace.clone();
        let select = async move { coordinator.select(workspace, Some(agents)).await };
        ctx.spawn(select.into_actor(self).map(|seats, act, ctx| {
            let seats = seats.unwrap_or_else(|err| {
                tracing::error!(call_id = %act.setup.id, %err, "could not ask the ring coordinator");
                Vec::new()
            });
            act.ring(seats, ctx);
        }));
    }

    fn ring(&mut self, seats: Vec<SeatLink>, ctx: &mut Context<Self>) {
        let ids = seats.iter().map(|s| s.agent_id.clone()).collect();
        match self.machine.ring(ids) {
            Err(_) => {} // the call moved on (the caller hung up) while seats were picked
            Ok(RingUpdate::ToVoicemail(reason)) => self.go_to_voicemail(reason, ctx),
            Ok(_) => {
                let ringing: Vec<AgentId> = self.machine.ringing().to_vec();
                let call = CallHandle {
                    id: self.setup.id.clone(),
                    addr: ctx.address(),
                };
                for seat in seats {
                    if !ringing.contains(&seat.agent_id) {
                        continue;
                    }
                    let notice = SeatNotice::Ring {
                        call: call.clone(),
                        from: self.setup.from.clone(),
                        to: self.setup.to.clone(),
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
                self.event("ring", None, json!({ "agent_ids": ringing }));
                self.status(None);
                if let Some(timer) = self.ring_timer.take() {
                    ctx.cancel_future(timer);
                }
                self.ring_timer = Some(ctx.run_later(self.deps.config.ring_timeout, |act, ctx| {
                    act.ring_timer = None;
                    if let Some(cancel) = act.machine.ring_timeout() {
                        act.cancel_rings(&cancel, CancelReason::Timeout);
                        act.event("ring_timeout", None, json!({ "agent_ids": cancel }));
                        act.go_to_voicemail(VoicemailReason::RingTimeout, ctx);
                    }
                }));
            }
        }
    }

    fn cancel_rings(&mut self, agents: &[AgentId], reason: CancelReason) {
        for agent in agents {
            if let Some(seat) = self.rung.remove(agent) {
                // A full mailbox means the seat is drowning; its ring is moot anyway.
                let _ = seat.notices.try_send(SeatNotice::RingCancel {
                    call_id: self.setup.id.clone(),
                    reason,
                });
            }
        }
        self.rung.clear();
    }

    fn start_ringback(&mut self, ctx: &mut Context<Self>) {
        if self.ringback.is_some() {
            return;
        }
        let chunk = self.deps.config.ringback_chunk;
        let handle = ctx.run_interval(chunk, |act, _ctx| act.play_ringback());
        self.ringback = Some((handle, Looper::new(RINGBACK.clone())));
        // Keep one chunk buffered at Twilio so timer jitter never leaves a gap.
        self.play_ringback();
        self.play_ringback();
    }

    fn play_ringback(&mut self) {
        let (Some(leg), Some((_, looper))) = (&self.leg, &mut self.ringback) else {
            return;
        };
        let bytes = (self.deps.config.ringback_chunk.as_millis() as usize) * 8;
        for chunk in looper.next_chunks(bytes) {
            leg.outbox.send_audio(chunk);
        }
    }

    /// Stops ringback and drops whatever Twilio still has buffered of it.
    fn stop_ringback(&mut self, ctx: &mut Context<Self>) {
        if let Some((handle, _)) = self.ringback.take() {
            ctx.cancel_future(handle);
            if let Some(leg) = &self.leg {
                leg.clear();
            }
        }
    }

    fn cancel_ring_timer(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.ring_timer.take() {
            ctx.cancel_future(timer);
        }
    }

    fn go_to_voicemail(&mut self, reason: VoicemailReason, ctx: &mut Context<Self>) {
        if self.machine.phase() != Phase::Voicemail && self.machine.voicemail().is_err() {
            return;
        }
        self.cancel_ring_timer(ctx);
        self.stop_ringback(ctx);
        self.event("voicemail", None, json!({ "reason": reason.as_str() }));
        self.status(None);
        let limit = (self.deps.config.voicemail_max.as_millis() as usize) * 8;
        self.voicemail = Some(Voicemail {
            recording: BytesMut::new(),
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

    /// The one way a call ends: cancel rings, tell the agent, save the recording,
    /// hang up the caller, write the final record, leave the registry.
    fn finish(&mut self, ending: Ending, reason: &str, ctx: &mut Context<Self>) {
        self.cancel_ring_timer(ctx);
        if let Some((handle, _)) = self.ringback.take() {
            ctx.cancel_future(handle);
        }
        if let Some(timer) = self.media_timer.take() {
            ctx.cancel_future(timer);
        }
        let cancel_reason = CancelReason::CallerHangup;
        self.cancel_rings(&ending.cancel, cancel_reason);
        if let Some(seat) = self.connected.take() {
            let _ = seat.notices.try_send(SeatNotice::CallEnded {
                call_id: self.setup.id.clone(),
                reason: reason.to_owned(),
            });
        }
        if let Some(voicemail) = self.voicemail.take() {
            if !voicemail.recording.is_empty() {
                let samples = voicemail.recording.freeze();
                let duration_ms = audio::duration_ms(samples.len()) as i64;
                self.deps.journal.append(JournalEntry::Recording {
                    call_id: self.setup.id.clone(),
                    wav: audio::ulaw_wav(&samples),
                    duration_ms,
                    at: now_ms(),
                });
                self.event(
                    "recording_saved",
                    None,
                    json!({ "duration_ms": duration_ms }),
                );
            }
        }
        if let Some(leg) = self.leg.take() {
            leg.hang_up(reason.to_owned());
        }
        let agent = ending.agent.or_else(|| self.machine.agent().cloned());
        self.event(
            "ended",
            agent.as_ref(),
            json!({ "outcome": ending.outcome.as_str(), "reason": reason }),
        );
        self.deps.journal.append(JournalEntry::Closed {
            call_id: self.setup.id.clone(),
            outcome: ending.outcome,
            reason: reason.to_owned(),
            agent_id: agent,
            ended_at: now_ms(),
        });
        let stats = &self.deps.stats;
        stats.calls_active.fetch_sub(1, Ordering::Relaxed);
        let counter = match ending.outcome {
            crate::machine::Outcome::Answered => &stats.outcome_answered,
            crate::machine::Outcome::Voicemail => &stats.outcome_voicemail,
            crate::machine::Outcome::Abandoned => &stats.outcome_abandoned,
            crate::machine::Outcome::Interrupted => &stats.outcome_interrupted,
            crate::machine::Outcome::Failed => &stats.outcome_failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.deps.registry.unregister(self.setup.id.clone());
        ctx.stop();
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
        self.event(
            "created",
            None,
            json!({ "from": self.setup.from, "to": self.setup.to, "route": route }),
        );
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
        self.start_ring_round(ctx);
        Ok(())
    }
}

impl Handler<Claim> for CallActor {
    type Result = MessageResult<Claim>;

    fn handle(&mut self, msg: Claim, ctx: &mut Self::Context) -> Self::Result {
        match self.machine.claim(&msg.agent_id) {
            ClaimDecision::Lost => MessageResult(ClaimResult::Lost),
            ClaimDecision::Won { cancel } => {
                self.deps.stats.claims_won.fetch_add(1, Ordering::Relaxed);
                self.rung.remove(&msg.agent_id);
                self.cancel_rings(&cancel, CancelReason::AnsweredElsewhere);
                self.cancel_ring_timer(ctx);
                self.stop_ringback(ctx);
                let Some(leg) = &self.leg else {
                    // Unreachable by construction: ringing starts after the stream does.
                    return MessageResult(ClaimResult::Lost);
                };
                leg.route(LegRoute::Port(Arc::clone(&msg.seat.audio)));
                let caller_audio: AudioPort = Arc::new(leg.outbox.clone());
                self.connected = Some(msg.seat);
                self.event("claimed", Some(&msg.agent_id), json!({}));
                self.status(Some(now_ms()));
                MessageResult(ClaimResult::Won { caller_audio })
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
        if let RingUpdate::ToVoicemail(reason) = update {
            self.go_to_voicemail(reason, ctx);
        }
    }
}

impl Handler<SeatGone> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: SeatGone, ctx: &mut Self::Context) {
        match self.machine.seat_left(&msg.agent_id) {
            SeatLeft::Ignored => {}
            SeatLeft::Ring(update) => {
                self.rung.remove(&msg.agent_id);
                self.event("seat_left", Some(&msg.agent_id), json!({}));
                if let RingUpdate::ToVoicemail(reason) = update {
                    self.go_to_voicemail(reason, ctx);
                }
            }
            SeatLeft::AgentDropped => {
                // Never drop the caller for an agent's failure: offer the call again.
                self.connected = None;
                if let Some(leg) = &self.leg {
                    leg.route(LegRoute::Nowhere);
                }
                self.event("agent_disconnected", Some(&msg.agent_id), json!({}));
                self.start_ring_round(ctx);
            }
        }
    }
}

impl Handler<SeatHangup> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: SeatHangup, ctx: &mut Self::Context) {
        if let Ok(ending) = self.machine.agent_hangup(&msg.agent_id) {
            self.event("hangup", Some(&msg.agent_id), json!({ "by": "agent" }));
            self.finish(ending, "agent_hangup", ctx);
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
        let room = voicemail.limit.saturating_sub(voicemail.recording.len());
        let take = msg.frame.len().min(room);
        voicemail.recording.extend_from_slice(&msg.frame[..take]);
        let full = voicemail.recording.len() >= voicemail.limit;
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

    pub async fn attach(&self, leg: LegHandle) -> Result<(), EngineError> {
        self.addr
            .send(AttachCaller { leg })
            .await
            .map_err(|e| EngineError::mailbox("call", e))?
    }

    pub async fn claim(
        &self,
        agent_id: AgentId,
        seat: SeatLink,
    ) -> Result<ClaimResult, EngineError> {
        self.addr
            .send(Claim { agent_id, seat })
            .await
            .map_err(|e| EngineError::mailbox("call", e))
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

    pub fn is_alive(&self) -> bool {
        self.addr.connected()
    }
}
