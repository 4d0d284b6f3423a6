//! Adoption and release (issue 16, items 5 and 6): a call that moves between the
//! nodes of a cluster without ending.
//!
//! - `CallActor::adopt` starts a call taken over from another node under the same
//!   id: no new record, its events numbered after the store's last (`Adoption`).
//!   When its new media stream starts, the trail gets one `node_failure`, the call
//!   is parked (reason `node_failure`, parked for the agent who had it) and that
//!   agent is rung first (stage `parker`) as soon as their softphone is on a live
//!   node, within the ring timeout; then the parking ladder as for any parked call
//!   (everyone, then voicemail). A call an AI assistant was talking with (not
//!   handed over, not failed) goes back to that assistant instead, in a new
//!   session.
//! - `Release` is how a draining node lets a call go: the actor stops without an
//!   `ended` event or a final record, and hands back the caller's leg, which the
//!   node closes once the store says the call may be adopted. Twilio then follows
//!   the TwiML's `<Redirect>` to another node.
//!
//! - A call whose stream closed without Twilio's `stop` while its node lives (a
//!   transient close) waits `CallConfig::resume_grace` (cluster mode only) for
//!   Twilio to come back through the resume route with a new stream, which
//!   `reattach` takes in place of the old (`stream_lost`, `media_restarted`).
//!
//! Whether a call may be adopted (its node dead or draining, the compare-and-set
//! on its row) is decided outside this crate, which knows no SQL or Redis.

use std::sync::atomic::Ordering;
use std::time::Duration;

use actix::prelude::*;
use serde_json::json;

use crate::assistant::Transcript;
use crate::error::EngineError;
use crate::ids::{AgentId, AssistantId};
use crate::leg::LegHandle;
use crate::machine::{CancelReason, Phase};
use crate::seat::{SeatNotice, SeatOutput};

use super::ringing::RingStage;
use super::{CallActor, CallDeps, CallHandle, CallSetup};

/// What a call adopted from another node brings from its record.
#[derive(Debug, Clone)]
pub struct Adoption {
    /// The highest `seq` of the call's trail in the store: this node's events
    /// continue after it.
    pub last_seq: i64,
    /// The agent who last had the call (rung first), if one did.
    pub agent: Option<AgentId>,
    /// An agent had answered the call before it moved (its outcome stays
    /// `answered` if the caller leaves while it is re-offered).
    pub answered: bool,
    /// The node the call comes from.
    pub from_node: String,
    /// Why it left that node: `node_dead` or `node_draining`.
    pub cause: &'static str,
    /// When the call started (Unix ms), from its record.
    pub started_at: i64,
    /// The AI assistant that was talking with the caller (it had neither handed
    /// the call over nor failed): it answers again instead of the agents.
    pub assistant: Option<AssistantId>,
    /// The call's transcript as the store had it: the assistant's new session
    /// starts from it, and this node's turns are numbered after it.
    pub transcript: Transcript,
}

/// A draining node lets the call go: stop without ending it, answering the
/// caller's leg (if the stream had started) for the node to close.
#[derive(Message)]
#[rtype(result = "Option<LegHandle>")]
pub struct Release {
    pub reason: &'static str,
}

/// How often an adopted call looks for its agent's softphone on the floor
/// (it may be reconnecting from the node that died).
const AGENT_LOOKUP_EVERY: Duration = Duration::from_millis(250);

impl CallActor {
    /// Starts a call adopted from another node under its own id and registers it;
    /// it waits for its new media stream like a new call.
    pub fn adopt(setup: CallSetup, deps: CallDeps, adoption: Adoption) -> CallHandle {
        Self::launch_with(setup, deps, Some(adoption))
    }

    /// The adopted call's new stream started: `node_failure`, parked, its agent
    /// rung first.
    pub(super) fn resume_adopted(&mut self, adoption: Adoption, ctx: &mut Context<Self>) {
        self.event(
            "node_failure",
            None,
            json!({
                "from_node": adoption.from_node,
                "cause": adoption.cause,
                "agent_id": adoption.agent,
            }),
        );
        if let Some(assistant) = adoption.assistant {
            // An AI call goes back to its assistant, in a new session that is
            // given the conversation so far; nobody is rung, and the call goes
            // on as any AI call.
            self.start_assistant(assistant, adoption.transcript, ctx);
            return;
        }
        if self.machine.adopted(adoption.answered).is_err() {
            return;
        }
        if let Err(err) = self.park(adoption.agent.clone(), "node_failure", ctx) {
            tracing::error!(call_id = %self.setup.id, %err, "an adopted call could not be parked");
            return;
        }
        match adoption.agent {
            Some(agent) => {
                let deadline = tokio::time::Instant::now() + self.deps.config.ring_timeout;
                self.ring_agent_back(agent, deadline, ctx);
            }
            None => self.ring_round(RingStage::Everyone, Vec::new(), Vec::new(), ctx),
        }
    }

    /// Rings `agent` (stage `parker`) once their seat is on the floor; past
    /// `deadline` without it, everyone (then voicemail, as the ladder goes).
    fn ring_agent_back(
        &mut self,
        agent: AgentId,
        deadline: tokio::time::Instant,
        ctx: &mut Context<Self>,
    ) {
        let coordinator = self.deps.coordinator.clone();
        let workspace = self.setup.workspace.clone();
        let wanted = vec![agent.clone()];
        let select = async move {
            coordinator
                .select(workspace, Some(wanted), Vec::new())
                .await
        };
        ctx.spawn(select.into_actor(self).map(move |seats, act, ctx| {
            let still_waiting = act.machine.phase() == crate::machine::Phase::Parked
                && act.machine.ringing().is_empty();
            if !still_waiting {
                return;
            }
            if seats.is_ok_and(|seats| !seats.is_empty()) {
                act.ring_round(RingStage::Parker, vec![agent], Vec::new(), ctx);
            } else if tokio::time::Instant::now() >= deadline {
                act.ring_round(RingStage::Everyone, Vec::new(), Vec::new(), ctx);
            } else {
                ctx.run_later(AGENT_LOOKUP_EVERY, move |act, ctx| {
                    act.ring_agent_back(agent, deadline, ctx)
                });
            }
        }));
    }
}

impl CallActor {
    /// The caller's stream closed without `stop`: in a cluster, wait for Twilio
    /// to resume the call with a new stream (true), or not (false: the call
    /// ends as the caller leaving).
    pub(super) fn await_resume(&mut self, ctx: &mut Context<Self>) -> bool {
        let Some(grace) = self.deps.config.resume_grace else {
            return false;
        };
        if self.awaiting_resume.is_some() {
            return true;
        }
        if !matches!(
            self.machine.phase(),
            Phase::Ringing | Phase::Parked | Phase::Connected | Phase::Consulting
        ) {
            return false;
        }
        self.event(
            "stream_lost",
            None,
            json!({ "resume_within_ms": grace.as_millis() as u64 }),
        );
        self.awaiting_resume = Some(ctx.run_later(grace, |act, ctx| {
            act.awaiting_resume = None;
            if act.leg.is_none() {
                act.caller_gone("stream_closed", ctx);
            }
        }));
        true
    }

    /// Twilio came back with a new stream for this call: it takes the old one's
    /// place, and every side's audio is pointed at it again.
    pub(super) fn reattach(&mut self, leg: LegHandle, ctx: &mut Context<Self>) {
        if let Some(timer) = self.awaiting_resume.take() {
            ctx.cancel_future(timer);
        }
        self.event(
            "media_restarted",
            None,
            json!({ "stream_sid": leg.stream_sid }),
        );
        self.leg = Some(leg);
        // Ringback and hold audio play into whatever leg the call has; a bridged
        // or consulting call's sides are pointed at the new one.
        self.bridge(ctx);
    }
}

impl Handler<Release> for CallActor {
    type Result = Option<LegHandle>;

    fn handle(&mut self, msg: Release, ctx: &mut Self::Context) -> Self::Result {
        if self.machine.is_ended() {
            return None;
        }
        self.cancel_ring_timer(ctx);
        let ringing = self.machine.ringing().to_vec();
        self.cancel_rings(&ringing, CancelReason::CallerHangup);
        self.leave_parking(None, ctx);
        if let Some((handle, _)) = self.background.take() {
            ctx.cancel_future(handle);
        }
        if let Some(timer) = self.media_timer.take() {
            ctx.cancel_future(timer);
        }
        for seat in [self.connected.take(), self.consulted.take()]
            .into_iter()
            .flatten()
        {
            Self::notify(
                &seat,
                SeatNotice::Tell(SeatOutput::Released {
                    call_id: self.setup.id.clone(),
                    reason: "moved",
                }),
            );
        }
        self.stop_assistant(msg.reason, "moved");
        self.event("released", None, json!({ "reason": msg.reason }));
        self.deps.stats.calls_active.fetch_sub(1, Ordering::Relaxed);
        self.deps
            .coordinator
            .call_gone(self.setup.id.clone(), "moved");
        self.deps.registry.unregister(self.setup.id.clone());
        ctx.stop();
        self.leg.take()
    }
}

impl CallHandle {
    /// Lets the call go to another node (drain): answers the caller's leg, if the
    /// stream had started, for the caller to close once the call may be adopted.
    pub async fn release(&self, reason: &'static str) -> Result<Option<LegHandle>, EngineError> {
        match &self.target {
            super::handle::Target::Local(addr) => addr
                .send(Release { reason })
                .await
                .map_err(|e| EngineError::mailbox("call", e)),
            // Another node's call: that node lets it go, not this one.
            super::handle::Target::Remote(_) => Ok(None),
        }
    }
}
