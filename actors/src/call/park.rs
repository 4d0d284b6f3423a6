//! Parking and transfers: parking a call (hold audio, a slot from the lot, the
//! parking timer that starts the parking-timeout ladder), leaving the lot, handing
//! the call to a seat without its answer, and transfers — blind and warm, their
//! completion, cancellation and failure (back to the transferring agent).

use actix::prelude::*;
use serde_json::json;

use crate::audio::{HOLD, RINGBACK};
use crate::coordinator::{Broadcast, FloorEvent};
use crate::error::EngineError;
use crate::ids::AgentId;
use crate::journal::{now_ms, rfc3339};
use crate::leg::LegRoute;
use crate::machine::{CancelReason, ClaimDecision, ClaimKind, Phase};
use crate::parking::TakeSlot;
use crate::seat::{Parked, SeatLink, SeatNotice, SeatOutput, Unparked};

use super::ringing::RingStage;
use super::CallActor;

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

impl CallActor {
    pub(super) fn park(
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
        let parked_at = now_ms();
        let lot = self.deps.parking.clone();
        let park = TakeSlot {
            slot: None,
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
                    from: act.setup.from.clone(),
                    to: act.setup.to.clone(),
                    parked_by_name: parked_by
                        .as_ref()
                        .and_then(|agent| act.names.get(agent))
                        .map(|name| name.to_string()),
                    parked_by,
                    parked_at: rfc3339(parked_at),
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
    pub(super) fn leave_parking(&mut self, agent_id: Option<&AgentId>, ctx: &mut Context<Self>) {
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

    /// Tells an agent of a transfer how it goes (`agent_id` is the target).
    pub(super) fn transfer_status(&self, seat: &SeatLink, agent_id: AgentId, status: &'static str) {
        Self::notify(
            seat,
            SeatNotice::Tell(SeatOutput::TransferStatus {
                call_id: self.setup.id.clone(),
                agent_id,
                status,
            }),
        );
    }

    pub(super) fn transfer_failed(&mut self, from: AgentId, ctx: &mut Context<Self>) {
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
        self.meet(&seat);
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
