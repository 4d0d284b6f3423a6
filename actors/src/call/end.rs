//! The end of a call: `finish`, the one way a call ends, and the messages that end
//! it — the caller leaving, an agent's or a supervisor's hang-up, Twilio's status
//! callback, the engine stopping.

use std::sync::atomic::Ordering;

use actix::prelude::*;
use serde_json::json;

use crate::assistant::{AssistantReport, CallReport};
use crate::audio;
use crate::error::EngineError;
use crate::ids::AgentId;
use crate::journal::{now_ms, JournalEntry};
use crate::machine::{CancelReason, Ending, Outcome, Phase};
use crate::seat::{SeatNotice, SeatOutput};

use super::CallActor;

#[derive(Message)]
#[rtype(result = "()")]
pub struct CallerLeft {
    pub reason: &'static str,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct SeatHangup {
    pub agent_id: AgentId,
}

/// A supervisor ends the call.
#[derive(Message)]
#[rtype(result = "Result<(), EngineError>")]
pub struct SupervisorHangup;

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

impl CallActor {
    /// The one way a call ends: cancel rings, tell the agents, save the recording,
    /// hang up the caller, write the final record, leave the registry.
    pub(super) fn finish(&mut self, ending: Ending, reason: &str, ctx: &mut Context<Self>) {
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
                from: self.setup.from.clone(),
                to: self.setup.to.clone(),
                direction: self.setup.direction,
                outcome: ending.outcome,
                reason: reason.to_owned(),
                started_at: self.started_at,
                ended_at,
                media: self.media_started_at.map(|at| (at, ended_at)),
                assistant: self.assistant.take().map(|a| AssistantReport {
                    assistant_id: a.id,
                    turns: a.turns,
                    usage: a.usage,
                    transcription_usage: a.transcription_usage,
                    reasoning_usage: a.reasoning_usage,
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

impl Handler<CallerLeft> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: CallerLeft, ctx: &mut Self::Context) {
        // The leg is gone: do not try to hang it up again.
        self.leg = None;
        if msg.reason == "stream_closed" && self.await_resume(ctx) {
            return;
        }
        self.caller_gone(msg.reason, ctx);
    }
}

impl CallActor {
    /// The caller left (or its stream is gone for good): the call ends.
    pub(super) fn caller_gone(&mut self, reason: &'static str, ctx: &mut Context<Self>) {
        let msg = CallerLeft { reason };
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
