//! The other nodes' floors (issue 16, item 3: one floor). Each node's coordinator
//! owns its own seats, calls and parked calls; the cluster's node links carry
//! each node's floor to the others — a snapshot when the link comes up, then
//! every change in the owner's order — and hand it to this coordinator as
//! [`PeerSnapshot`] and [`PeerEvent`]s. This node's consoles see the whole floor,
//! its softphones' rosters list the workspace's seats on every node, and a call
//! parked on another node is told to this node's seats (`parked`, with a handle
//! that reaches the owner) so any of them may unpark it. A link that goes down
//! takes its node's floor with it ([`PeerGone`]); the next link's snapshot brings
//! it back.
//!
//! What a peer tells is never passed on to another node: the cluster's feeds
//! ([`super::FloorFeed::whole_cluster`] false) get this node's floor alone.
//!
//! How much of the cluster this node sees is [`FloorCoverage`]: the cluster
//! layer sets it ([`SetCoverage`]) when Redis stops answering (rings then reach
//! this node's seats only) or an alive node has no link (its floor is missing);
//! consoles get it in their snapshot and as a `floor` message when it changes.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;

use super::{FloorCall, FloorEvent, RingCoordinator, SeatState};
use crate::call::CallHandle;
use crate::ids::{AgentId, CallId, Workspace};
use crate::seat::{Parked, RosterEntry, SeatNotice, SeatOutput, Unparked};

/// What this node knows of one other node's floor.
#[derive(Default)]
pub(super) struct PeerFloor {
    pub(super) seats: HashMap<AgentId, SeatState>,
    pub(super) calls: HashMap<CallId, FloorCall>,
    pub(super) lot: HashMap<CallId, (Workspace, CallHandle, Parked)>,
}

/// Another node's whole floor (its link just came up): replaces what this node
/// knew of it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PeerSnapshot {
    pub node: Arc<str>,
    pub seats: Vec<SeatState>,
    pub calls: Vec<FloorCall>,
    /// Its parked calls, each with a handle that reaches it on that node.
    pub lot: Vec<(Workspace, CallHandle, Parked)>,
}

/// One change of another node's floor. A `parked` comes with the call's handle.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PeerEvent {
    pub node: Arc<str>,
    pub event: FloorEvent,
    pub call: Option<CallHandle>,
}

/// A seat of this agent opened on another node: a seat of it here that
/// registered before is closed (`replaced`), so an agent has one seat in the
/// cluster, the newest. Two seats opened in the same millisecond are ordered
/// by their nodes' ids, the same way on both nodes, so exactly one stays.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PeerSeatOpened {
    pub agent_id: AgentId,
    pub at_ms: i64,
    /// The other node's id sorts after this node's: on a tie, its seat is the newer.
    pub wins_ties: bool,
}

impl PeerSeatOpened {
    /// Whether a seat here registered at `registered_ms` is older than this one.
    fn replaces(&self, registered_ms: i64) -> bool {
        registered_ms < self.at_ms || (registered_ms == self.at_ms && self.wins_ties)
    }
}

/// The node that owns a call of another node's floor, and the call as told.
#[derive(Message)]
#[rtype(result = "Option<(Arc<str>, FloorCall)>")]
pub struct PeerCall {
    pub call_id: CallId,
}

/// How much of the cluster's floor this node sees and rings. Whole unless the
/// cluster layer says otherwise; always whole on a single node.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FloorCoverage {
    /// Part of the floor may be missing from this node's view or its rings.
    pub partial: bool,
    /// Why, each a word a console can show: `redis-unreachable` (rings reach
    /// this node's seats only; other nodes' changes may be late),
    /// `node-unlinked:ID` (node ID is alive but this node has no link to it:
    /// its seats, calls and parked calls are missing). Empty when whole.
    pub partial_reasons: Vec<String>,
}

impl FloorCoverage {
    /// Coverage with these reasons; partial if there is any.
    pub fn with_reasons(partial_reasons: Vec<String>) -> FloorCoverage {
        FloorCoverage {
            partial: !partial_reasons.is_empty(),
            partial_reasons,
        }
    }
}

/// The cluster layer's latest word on this node's [`FloorCoverage`]: consoles
/// are told when it changes.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetCoverage(pub FloorCoverage);

/// The link to another node is down: its floor is forgotten.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PeerGone {
    pub node: Arc<str>,
}

impl RingCoordinator {
    /// The workspace's seats on other nodes, for the roster.
    pub(super) fn peer_roster<'a>(
        &'a self,
        workspace: &'a Workspace,
    ) -> impl Iterator<Item = RosterEntry> + 'a {
        self.peers
            .values()
            .flat_map(|peer| peer.seats.values())
            .filter(move |seat| {
                &seat.workspace == workspace && !self.seats.contains_key(&seat.agent_id)
            })
            .map(|seat| RosterEntry {
                agent_id: seat.agent_id.clone(),
                name: seat.name.clone(),
                presence: seat.presence,
                on_call: seat.call_id.is_some(),
            })
    }

    /// The workspace's calls parked on other nodes.
    pub(super) fn peer_lot<'a>(
        &'a self,
        workspace: &'a Workspace,
    ) -> impl Iterator<Item = (CallHandle, Parked)> + 'a {
        self.peers
            .values()
            .flat_map(|peer| peer.lot.values())
            .filter(move |(ws, _, _)| ws == workspace)
            .map(|(_, call, parked)| (call.clone(), parked.clone()))
    }

    fn peer_floor(&mut self, node: &Arc<str>) -> &mut PeerFloor {
        self.peers.entry(Arc::clone(node)).or_default()
    }

    /// Tells the consoles (not the cluster's feeds) a change of another node.
    fn tell_consoles(&mut self, event: FloorEvent) {
        self.supervisors
            .retain(|_, feed| !feed.whole_cluster() || feed.event(event.clone()));
    }

    fn tell_seats(&self, workspace: &Workspace, notice: &SeatNotice) {
        for seat in self.seats.values().filter(|s| &s.workspace == workspace) {
            let _ = seat.link.notices.try_send(notice.clone());
        }
    }

    fn peer_parked(&mut self, workspace: Workspace, call: CallHandle, parked: Parked) {
        self.tell_seats(
            &workspace,
            &SeatNotice::Parked {
                call: call.clone(),
                parked: parked.clone(),
            },
        );
        self.tell_consoles(FloorEvent::Parked { parked, workspace });
    }

    fn peer_unparked(&mut self, workspace: Workspace, unparked: Unparked) {
        self.tell_seats(
            &workspace,
            &SeatNotice::Tell(SeatOutput::Unparked(unparked.clone())),
        );
        self.tell_consoles(FloorEvent::Unparked {
            unparked,
            workspace,
        });
    }

    /// Forgets `node`'s floor, telling what went away.
    fn forget_peer(&mut self, node: &str, ctx: &mut Context<Self>) -> PeerFloor {
        let old = self.peers.remove(node).unwrap_or_default();
        for (agent_id, seat) in &old.seats {
            self.tell_consoles(FloorEvent::SeatGone {
                agent_id: agent_id.clone(),
                workspace: seat.workspace.clone(),
            });
            self.roster_changed(&seat.workspace, ctx);
        }
        old
    }
}

impl Handler<PeerSnapshot> for RingCoordinator {
    type Result = ();

    fn handle(&mut self, msg: PeerSnapshot, ctx: &mut Self::Context) {
        let old = self.forget_peer(&msg.node, ctx);
        let mut floor = PeerFloor::default();
        for seat in msg.seats {
            self.roster_changed(&seat.workspace, ctx);
            self.tell_consoles(FloorEvent::Seat(seat.clone()));
            floor.seats.insert(seat.agent_id.clone(), seat);
        }
        for call in msg.calls {
            self.tell_consoles(FloorEvent::Call(call.clone()));
            floor.calls.insert(call.call_id.clone(), call);
        }
        for (call_id, (workspace, _, parked)) in &old.lot {
            if !msg.lot.iter().any(|(_, _, p)| &p.call_id == call_id) {
                let unparked = Unparked {
                    call_id: call_id.clone(),
                    slot: parked.slot,
                    agent_id: None,
                };
                self.peer_unparked(workspace.clone(), unparked);
            }
        }
        for (workspace, call, parked) in msg.lot {
            if !old.lot.contains_key(&parked.call_id) {
                self.peer_parked(workspace.clone(), call.clone(), parked.clone());
            }
            floor
                .lot
                .insert(parked.call_id.clone(), (workspace, call, parked));
        }
        self.peers.insert(msg.node, floor);
    }
}

impl Handler<PeerEvent> for RingCoordinator {
    type Result = ();

    fn handle(&mut self, msg: PeerEvent, ctx: &mut Self::Context) {
        let node = msg.node;
        match msg.event {
            FloorEvent::Seat(seat) => {
                let workspace = seat.workspace.clone();
                self.peer_floor(&node)
                    .seats
                    .insert(seat.agent_id.clone(), seat.clone());
                self.tell_consoles(FloorEvent::Seat(seat));
                self.roster_changed(&workspace, ctx);
            }
            FloorEvent::SeatGone {
                agent_id,
                workspace,
            } => {
                self.peer_floor(&node).seats.remove(&agent_id);
                self.tell_consoles(FloorEvent::SeatGone {
                    agent_id,
                    workspace: workspace.clone(),
                });
                self.roster_changed(&workspace, ctx);
            }
            FloorEvent::Call(call) => {
                self.peer_floor(&node)
                    .calls
                    .insert(call.call_id.clone(), call.clone());
                self.tell_consoles(FloorEvent::Call(call));
            }
            ended @ FloorEvent::CallEnded { .. } => {
                if let FloorEvent::CallEnded { call_id, .. } = &ended {
                    let floor = self.peer_floor(&node);
                    floor.calls.remove(call_id);
                    floor.lot.remove(call_id);
                }
                self.tell_consoles(ended);
            }
            FloorEvent::Parked { parked, workspace } => {
                let Some(call) = msg.call else {
                    return;
                };
                self.peer_floor(&node).lot.insert(
                    parked.call_id.clone(),
                    (workspace.clone(), call.clone(), parked.clone()),
                );
                self.peer_parked(workspace, call, parked);
            }
            FloorEvent::Unparked {
                unparked,
                workspace,
            } => {
                self.peer_floor(&node).lot.remove(&unparked.call_id);
                self.peer_unparked(workspace, unparked);
            }
        }
    }
}

impl Handler<PeerSeatOpened> for RingCoordinator {
    type Result = ();

    fn handle(&mut self, msg: PeerSeatOpened, _ctx: &mut Self::Context) {
        if let Some(seat) = self.seats.get(&msg.agent_id) {
            if msg.replaces(seat.registered_ms) {
                let _ = seat.link.notices.try_send(SeatNotice::Replaced);
            }
        }
    }
}

impl Handler<PeerCall> for RingCoordinator {
    type Result = Option<(Arc<str>, FloorCall)>;

    fn handle(&mut self, msg: PeerCall, _ctx: &mut Self::Context) -> Self::Result {
        self.peers.iter().find_map(|(node, floor)| {
            floor
                .calls
                .get(&msg.call_id)
                .map(|call| (Arc::clone(node), call.clone()))
        })
    }
}

impl Handler<SetCoverage> for RingCoordinator {
    type Result = ();

    fn handle(&mut self, msg: SetCoverage, _ctx: &mut Self::Context) {
        if msg.0 == self.coverage {
            return;
        }
        self.coverage = msg.0;
        let coverage = &self.coverage;
        self.supervisors
            .retain(|_, feed| !feed.whole_cluster() || feed.coverage(coverage));
    }
}

impl Handler<PeerGone> for RingCoordinator {
    type Result = ();

    fn handle(&mut self, msg: PeerGone, ctx: &mut Self::Context) {
        let old = self.forget_peer(&msg.node, ctx);
        for (call_id, (workspace, _, parked)) in old.lot {
            let unparked = Unparked {
                call_id,
                slot: parked.slot,
                agent_id: None,
            };
            self.peer_unparked(workspace, unparked);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opened(at_ms: i64, wins_ties: bool) -> PeerSeatOpened {
        PeerSeatOpened {
            agent_id: AgentId::new(),
            at_ms,
            wins_ties,
        }
    }

    #[test]
    fn the_newer_seat_stays_and_a_tie_is_broken_the_same_way_on_both_nodes() {
        assert!(opened(11, false).replaces(10), "an older seat here goes");
        assert!(!opened(10, true).replaces(11), "a newer seat here stays");
        // Same millisecond: node a hears from b (b sorts after: wins ties), b from a.
        let on_a = opened(10, true);
        let on_b = opened(10, false);
        assert!(
            on_a.replaces(10) != on_b.replaces(10),
            "exactly one seat stays"
        );
    }
}
