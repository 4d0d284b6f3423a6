//! Ringing and the claim: the route a call takes first, ring rounds and their
//! stages (first ring, offer, parking-timeout ladder, transfer target), the ring
//! timer and ring cancels, the single-winner `Claim` (answer, unpark, transfer
//! acceptance), `Decline`, and what a seat leaving means for the call.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use actix::prelude::*;
use serde_json::json;

use crate::assistant::Transcript;
use crate::audio::RINGBACK;
use crate::ids::AgentId;
use crate::journal::now_ms;
use crate::machine::{
    CancelReason, ClaimDecision, ClaimKind, Phase, RingUpdate, SeatLeft, VoicemailReason,
};
use crate::number::Route;
use crate::outbox::AudioPort;
use crate::seat::{Ring, SeatLink, SeatNotice, SeatOutput};

use super::CallActor;

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

/// A seat disconnected or became busy; it is no longer rung by (or on) this call.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SeatGone {
    pub agent_id: AgentId,
}

/// Why the seats that ring right now are ringing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RingStage {
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

impl CallActor {
    /// Rings the available seats of `agents` (all of the workspace when empty),
    /// except `except`, for `stage`.
    pub(super) fn ring_round(
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

    pub(super) fn first_ring(&mut self, ctx: &mut Context<Self>) {
        self.take_route(self.setup.route.clone(), ctx);
    }

    /// Sends the caller where `route` says: the agents' simultaneous ring, the
    /// voicemail prompt, or an assistant.
    pub(super) fn take_route(&mut self, route: Route, ctx: &mut Context<Self>) {
        match route {
            Route::Agents { agent_ids } => {
                self.start_background(RINGBACK.clone(), ctx);
                self.ring_round(RingStage::First, agent_ids, Vec::new(), ctx);
            }
            Route::Voicemail => self.go_to_voicemail(VoicemailReason::NoAgents, ctx),
            Route::Ai { assistant_id } => {
                self.start_assistant(assistant_id, Transcript::default(), ctx)
            }
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

    pub(super) fn send_rings(
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
            self.meet(&seat);
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

    pub(super) fn cancel_rings(&mut self, agents: &[AgentId], reason: CancelReason) {
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

    pub(super) fn cancel_ring_timer(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.ring_timer.take() {
            ctx.cancel_future(timer);
        }
    }
}

pub(super) fn stage_name(stage: RingStage) -> &'static str {
    match stage {
        RingStage::First => "first",
        RingStage::Offer => "offer",
        RingStage::Parker => "parker",
        RingStage::Everyone => "everyone",
        RingStage::Transfer => "transfer",
    }
}

impl Handler<Claim> for CallActor {
    type Result = MessageResult<Claim>;

    fn handle(&mut self, msg: Claim, ctx: &mut Self::Context) -> Self::Result {
        if msg.seat.workspace != self.setup.workspace {
            return MessageResult(ClaimResult::Lost);
        }
        self.meet(&msg.seat);
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
    pub(super) fn seat_departed(
        &mut self,
        agent_id: AgentId,
        left: SeatLeft,
        ctx: &mut Context<Self>,
    ) {
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
