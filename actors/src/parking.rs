//! ParkingLot: every parked call of every workspace, by slot. One actor for all
//! workspaces: parking is rare next to audio, the state is a few maps, and one
//! mailbox makes "lowest free slot" race-free — two calls parked at the same
//! instant are two messages, taken one after the other.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::call::CallHandle;
use crate::error::EngineError;
use crate::ids::{AgentId, CallId, Workspace};

/// One parked call as the lot knows it.
#[derive(Debug, Clone)]
pub struct ParkedCall {
    pub call: CallHandle,
    pub workspace: Workspace,
    pub slot: u32,
    pub parked_by: Option<AgentId>,
    pub reason: &'static str,
    pub from: String,
    pub to: String,
    pub since: Instant,
}

/// A workspace's slot numbers shared by the nodes of a cluster (issue 16): two
/// calls parked at once on two nodes must not get one number. Implemented by the
/// cluster layer over Redis, atomically (the lowest number nobody alive holds is
/// taken in one step). A node alone numbers its own lot.
pub trait SharedSlots: Send + Sync + 'static {
    /// The lowest slot of `workspace` free across the cluster, now held by
    /// `call_id`; `None` when the cluster cannot be asked (the lot numbers it).
    fn take(
        &self,
        workspace: Workspace,
        call_id: CallId,
    ) -> Pin<Box<dyn Future<Output = Option<u32>> + Send>>;
    /// Gives `slot` back, if `call_id` still holds it.
    fn release(&self, workspace: Workspace, slot: u32, call_id: CallId);
}

type Shared = Arc<OnceLock<Arc<dyn SharedSlots>>>;

/// A call parks: it takes the lowest free slot of its workspace (or keeps the one
/// it has); answers the slot.
#[derive(Message)]
#[rtype(result = "u32")]
pub struct TakeSlot {
    /// The cluster's number for it, taken before (cluster mode); filled in by
    /// [`ParkingHandle::park`].
    pub slot: Option<u32>,
    pub call: CallHandle,
    pub workspace: Workspace,
    pub parked_by: Option<AgentId>,
    pub reason: &'static str,
    pub from: String,
    pub to: String,
}

/// The call left the lot (retrieved, rung away, ended); answers its slot.
#[derive(Message)]
#[rtype(result = "Option<u32>")]
pub struct Leave {
    pub call_id: CallId,
}

/// Calls parked because this agent's softphone dropped, within the grace period.
#[derive(Message)]
#[rtype(result = "Vec<ParkedCall>")]
pub struct DroppedBy {
    pub agent_id: AgentId,
    pub within: Duration,
}

#[derive(Message)]
#[rtype(result = "Vec<ParkedCall>")]
pub struct ListParked;

/// The slot a call holds, if it is in the lot.
#[derive(Message)]
#[rtype(result = "Option<u32>")]
pub struct SlotOf {
    pub call_id: CallId,
}

#[derive(Default)]
pub struct ParkingLot {
    /// Per workspace: slot → call id.
    slots: HashMap<Workspace, BTreeMap<u32, CallId>>,
    calls: HashMap<CallId, ParkedCall>,
    shared: Shared,
}

impl ParkingLot {
    fn release(&self, workspace: &Workspace, slot: u32, call_id: &CallId) {
        if let Some(shared) = self.shared.get() {
            shared.release(workspace.clone(), slot, call_id.clone());
        }
    }
}

impl Actor for ParkingLot {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
    }
}

impl Supervised for ParkingLot {}

impl Handler<TakeSlot> for ParkingLot {
    type Result = u32;

    fn handle(&mut self, msg: TakeSlot, _ctx: &mut Self::Context) -> u32 {
        let call_id = msg.call.id().clone();
        if let Some(parked) = self.calls.get(&call_id) {
            let kept = parked.slot;
            if let Some(taken) = msg.slot.filter(|taken| *taken != kept) {
                self.release(&msg.workspace, taken, &call_id);
            }
            return kept;
        }
        let lot = self.slots.entry(msg.workspace.clone()).or_default();
        let slot = msg
            .slot
            .filter(|taken| !lot.contains_key(taken))
            .or_else(|| (1..).find(|n| !lot.contains_key(n)))
            .unwrap_or(u32::MAX);
        lot.insert(slot, call_id.clone());
        self.calls.insert(
            call_id,
            ParkedCall {
                call: msg.call,
                workspace: msg.workspace,
                slot,
                parked_by: msg.parked_by,
                reason: msg.reason,
                from: msg.from,
                to: msg.to,
                since: Instant::now(),
            },
        );
        slot
    }
}

impl Handler<Leave> for ParkingLot {
    type Result = Option<u32>;

    fn handle(&mut self, msg: Leave, _ctx: &mut Self::Context) -> Option<u32> {
        let parked = self.calls.remove(&msg.call_id)?;
        if let Some(lot) = self.slots.get_mut(&parked.workspace) {
            lot.remove(&parked.slot);
        }
        self.release(&parked.workspace, parked.slot, &msg.call_id);
        Some(parked.slot)
    }
}

impl Handler<DroppedBy> for ParkingLot {
    type Result = MessageResult<DroppedBy>;

    fn handle(&mut self, msg: DroppedBy, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(
            self.calls
                .values()
                .filter(|p| {
                    p.reason == "agent_disconnected"
                        && p.parked_by.as_ref() == Some(&msg.agent_id)
                        && p.since.elapsed() <= msg.within
                })
                .cloned()
                .collect(),
        )
    }
}

impl Handler<SlotOf> for ParkingLot {
    type Result = Option<u32>;

    fn handle(&mut self, msg: SlotOf, _ctx: &mut Self::Context) -> Option<u32> {
        self.calls.get(&msg.call_id).map(|parked| parked.slot)
    }
}

impl Handler<ListParked> for ParkingLot {
    type Result = MessageResult<ListParked>;

    fn handle(&mut self, _msg: ListParked, _ctx: &mut Self::Context) -> Self::Result {
        let mut all: Vec<ParkedCall> = self.calls.values().cloned().collect();
        all.sort_by(|a, b| (&a.workspace, a.slot).cmp(&(&b.workspace, b.slot)));
        MessageResult(all)
    }
}

#[derive(Clone)]
pub struct ParkingHandle {
    addr: Addr<ParkingLot>,
    shared: Shared,
}

impl ParkingHandle {
    pub fn start() -> Self {
        let shared = Shared::default();
        let lot_shared = Arc::clone(&shared);
        Self {
            addr: Supervisor::start(move |_| ParkingLot {
                shared: lot_shared,
                ..ParkingLot::default()
            }),
            shared,
        }
    }

    /// Numbers slots with the other nodes of the cluster from now on; set once,
    /// at start-up. False if one was set already.
    pub fn share_slots(&self, shared: Arc<dyn SharedSlots>) -> bool {
        self.shared.set(shared).is_ok()
    }

    pub async fn park(&self, mut msg: TakeSlot) -> Result<u32, EngineError> {
        let mailbox = |e| EngineError::mailbox("parking lot", e);
        if let Some(shared) = self.shared.get() {
            let call_id = msg.call.id().clone();
            let held = self
                .addr
                .send(SlotOf {
                    call_id: call_id.clone(),
                })
                .await
                .map_err(mailbox)?;
            if let Some(slot) = held {
                return Ok(slot);
            }
            msg.slot = shared.take(msg.workspace.clone(), call_id).await;
        }
        self.addr.send(msg).await.map_err(mailbox)
    }

    pub fn leave(&self, call_id: CallId) {
        self.addr.do_send(Leave { call_id });
    }

    pub async fn dropped_by(&self, agent_id: AgentId, within: Duration) -> Vec<ParkedCall> {
        self.addr
            .send(DroppedBy { agent_id, within })
            .await
            .unwrap_or_default()
    }

    pub async fn list(&self) -> Vec<ParkedCall> {
        self.addr.send(ListParked).await.unwrap_or_default()
    }
}
