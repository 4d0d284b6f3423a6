//! RingCoordinator: owns the floor — which seats are online, their presence, whether
//! they are on a call — and picks the seats a call rings. It does not decide claims:
//! each call decides its own in its own mailbox (see `call.rs`), so one busy call can
//! never hold up another's answer.

use std::collections::HashMap;

use actix::prelude::*;

use crate::error::EngineError;
use crate::ids::{AgentId, Workspace};
use crate::seat::{Presence, SeatLink, SeatNotice};

#[derive(Message)]
#[rtype(result = "()")]
pub struct RegisterSeat {
    pub agent_id: AgentId,
    pub workspace: Workspace,
    pub link: SeatLink,
    /// Tells this connection apart from an older or newer one of the same agent.
    pub generation: u64,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct UnregisterSeat {
    pub agent_id: AgentId,
    pub generation: u64,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct SetPresence {
    pub agent_id: AgentId,
    pub generation: u64,
    pub presence: Presence,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct SetBusy {
    pub agent_id: AgentId,
    pub generation: u64,
    pub busy: bool,
}

/// The seats to ring for a call: available, not on a call, of the workspace, and
/// (when `agents` is given) among those agents.
#[derive(Message)]
#[rtype(result = "Vec<SeatLink>")]
pub struct SelectSeats {
    pub workspace: Workspace,
    pub agents: Option<Vec<AgentId>>,
}

/// One seat as the floor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatState {
    pub agent_id: AgentId,
    pub workspace: Workspace,
    pub presence: Presence,
    pub busy: bool,
}

#[derive(Message)]
#[rtype(result = "Vec<SeatState>")]
pub struct ListSeats;

struct SeatEntry {
    workspace: Workspace,
    presence: Presence,
    busy: bool,
    link: SeatLink,
    generation: u64,
}

#[derive(Default)]
pub struct RingCoordinator {
    seats: HashMap<AgentId, SeatEntry>,
}

impl Actor for RingCoordinator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
    }
}

impl Supervised for RingCoordinator {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        tracing::warn!("ring coordinator restarting; seats re-register on their next change");
    }
}

impl Handler<RegisterSeat> for RingCoordinator {
    type Result = ();

    fn handle(&mut self, msg: RegisterSeat, _ctx: &mut Self::Context) {
        let entry = SeatEntry {
            workspace: msg.workspace,
            presence: Presence::Away,
            busy: false,
            link: msg.link,
            generation: msg.generation,
        };
        if let Some(old) = self.seats.insert(msg.agent_id, entry) {
            if old.generation != msg.generation {
                // Only one softphone per agent: the older connection is closed.
                let _ = old.link.notices.try_send(SeatNotice::Replaced);
            }
        }
    }
}

impl Handler<UnregisterSeat> for RingCoordinator {
    type Result = ();

    fn handle(&mut self, msg: UnregisterSeat, _ctx: &mut Self::Context) {
        if self
            .seats
            .get(&msg.agent_id)
            .is_some_and(|seat| seat.generation == msg.generation)
        {
            self.seats.remove(&msg.agent_id);
        }
    }
}

impl Handler<SetPresence> for RingCoordinator {
    type Result = ();

    fn handle(&mut self, msg: SetPresence, _ctx: &mut Self::Context) {
        if let Some(seat) = self.seats.get_mut(&msg.agent_id) {
            if seat.generation == msg.generation {
                seat.presence = msg.presence;
            }
        }
    }
}

impl Handler<SetBusy> for RingCoordinator {
    type Result = ();

    fn handle(&mut self, msg: SetBusy, _ctx: &mut Self::Context) {
        if let Some(seat) = self.seats.get_mut(&msg.agent_id) {
            if seat.generation == msg.generation {
                seat.busy = msg.busy;
            }
        }
    }
}

impl Handler<SelectSeats> for RingCoordinator {
    type Result = MessageResult<SelectSeats>;

    fn handle(&mut self, msg: SelectSeats, _ctx: &mut Self::Context) -> Self::Result {
        let eligible = |agent_id: &AgentId, seat: &SeatEntry| {
            seat.workspace == msg.workspace
                && seat.presence == Presence::Available
                && !seat.busy
                && msg
                    .agents
                    .as_ref()
                    .is_none_or(|agents| agents.is_empty() || agents.contains(agent_id))
        };
        MessageResult(
            self.seats
                .iter()
                .filter(|(agent_id, seat)| eligible(agent_id, seat))
                .map(|(_, seat)| seat.link.clone())
                .collect(),
        )
    }
}

impl Handler<ListSeats> for RingCoordinator {
    type Result = MessageResult<ListSeats>;

    fn handle(&mut self, _msg: ListSeats, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(
            self.seats
                .iter()
                .map(|(agent_id, seat)| SeatState {
                    agent_id: agent_id.clone(),
                    workspace: seat.workspace.clone(),
                    presence: seat.presence,
                    busy: seat.busy,
                })
                .collect(),
        )
    }
}

/// The typed handle every other part of the engine uses.
#[derive(Clone)]
pub struct CoordinatorHandle {
    addr: Addr<RingCoordinator>,
}

impl CoordinatorHandle {
    /// Starts the coordinator under a supervisor on the current arbiter.
    pub fn start() -> Self {
        Self {
            addr: Supervisor::start(|_| RingCoordinator::default()),
        }
    }

    pub fn register(&self, msg: RegisterSeat) {
        self.addr.do_send(msg);
    }

    pub fn unregister(&self, agent_id: AgentId, generation: u64) {
        self.addr.do_send(UnregisterSeat {
            agent_id,
            generation,
        });
    }

    pub fn set_presence(&self, agent_id: AgentId, generation: u64, presence: Presence) {
        self.addr.do_send(SetPresence {
            agent_id,
            generation,
            presence,
        });
    }

    pub fn set_busy(&self, agent_id: AgentId, generation: u64, busy: bool) {
        self.addr.do_send(SetBusy {
            agent_id,
            generation,
            busy,
        });
    }

    pub async fn select(
        &self,
        workspace: Workspace,
        agents: Option<Vec<AgentId>>,
    ) -> Result<Vec<SeatLink>, EngineError> {
        self.addr
            .send(SelectSeats { workspace, agents })
            .await
            .map_err(|e| EngineError::mailbox("ring coordinator", e))
    }

    pub async fn seats(&self) -> Result<Vec<SeatState>, EngineError> {
        self.addr
            .send(ListSeats)
            .await
            .map_err(|e| EngineError::mailbox("ring coordinator", e))
    }
}
