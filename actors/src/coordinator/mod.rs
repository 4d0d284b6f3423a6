//! RingCoordinator: owns the floor — which seats are online, their presence and
//! current call, the calls in progress as supervisors see them, and the supervisors
//! themselves — and picks the seats a call rings. It does not decide claims: each
//! call decides its own in its own mailbox (see `call/ringing.rs`), so one busy
//! call never holds up another's answer.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde::Serialize;

mod peers;

pub use peers::{FloorCoverage, PeerEvent, PeerGone, PeerSeatOpened, PeerSnapshot, SetCoverage};

use crate::call::CallHandle;
use crate::error::EngineError;
use crate::ids::{AgentId, CallId, Workspace};
use crate::outbox::AudioPort;
use crate::seat::{
    Parked, Presence, Roster, RosterEntry, SeatLink, SeatNotice, SeatOutput, Unparked,
};

/// One seat as the floor sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SeatState {
    pub agent_id: AgentId,
    pub name: String,
    pub workspace: Workspace,
    pub presence: Presence,
    pub call_id: Option<CallId>,
}

impl SeatState {
    /// Whether a transfer may ring this seat: available and on no call.
    pub fn ringable(&self) -> Result<(), EngineError> {
        match self.presence {
            Presence::Available if self.call_id.is_none() => Ok(()),
            Presence::Away => Err(EngineError::Away(format!(
                "agent {} is away",
                self.agent_id
            ))),
            _ => Err(EngineError::Busy(format!(
                "agent {} is busy",
                self.agent_id
            ))),
        }
    }
}

/// One call as the floor sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FloorCall {
    pub call_id: CallId,
    pub workspace: Workspace,
    /// `starting`, `ringing`, `connected`, `parked`, `consulting`, `voicemail`.
    pub status: &'static str,
    /// When the current status began (RFC 3339).
    pub since: String,
    pub agent_id: Option<AgentId>,
    pub ringing: Vec<AgentId>,
    pub slot: Option<u32>,
    pub from: String,
    pub to: String,
}

/// What supervisors are told, as it happens: serialised as it is
/// (`{"type":"seat",…}`; see docs/protocol.md).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FloorEvent {
    Seat(SeatState),
    SeatGone {
        agent_id: AgentId,
        workspace: Workspace,
    },
    Call(FloorCall),
    CallEnded {
        call_id: CallId,
        workspace: Workspace,
        outcome: &'static str,
    },
    /// The softphones' `parked`, with the workspace.
    Parked {
        #[serde(flatten)]
        parked: Parked,
        workspace: Workspace,
    },
    /// The softphones' `unparked`, with the workspace.
    Unparked {
        #[serde(flatten)]
        unparked: Unparked,
        workspace: Workspace,
    },
}

/// Where one supervisor console's view of the floor goes: written to by the
/// coordinator directly, so the snapshot and the events after it are in order and a
/// burst of changes costs the console no mailbox slots. Implemented by the console's
/// outbox, which coalesces changes of one seat or call (the latest state wins).
pub trait FloorFeed: Send + Sync + 'static {
    /// The whole floor, first. False once the console is gone or fell behind.
    fn snapshot(&self, snapshot: Snapshot) -> bool;
    /// One change. False once the console is gone or fell behind: it is dropped.
    fn event(&self, event: FloorEvent) -> bool;
    /// Whether the feed wants the other nodes' floor too (a console does); the
    /// cluster's own feeds, which carry this node's floor to Redis and to the
    /// other nodes, get this node's alone.
    fn whole_cluster(&self) -> bool {
        true
    }
    /// How much of the cluster this node sees changed (cluster mode; only feeds
    /// of the whole cluster are told). False once the console is gone.
    fn coverage(&self, _coverage: &FloorCoverage) -> bool {
        true
    }
}

/// The whole floor at once (a supervisor's first message).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub seats: Vec<SeatState>,
    pub calls: Vec<FloorCall>,
    /// The parked calls, by workspace and slot.
    pub parking: Vec<(Workspace, Parked)>,
    /// How much of the cluster it covers (whole for this node's own floor).
    pub coverage: FloorCoverage,
}

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

/// A seat's presence (as it counts for ringing) and its current call.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UpdateSeat {
    pub agent_id: AgentId,
    pub generation: u64,
    pub presence: Presence,
    pub call_id: Option<CallId>,
}

/// The seats to ring for a call: available, not on a call, of the workspace, and
/// (when `agents` is given and not empty) among those agents, less `except`.
#[derive(Message)]
#[rtype(result = "Vec<SeatLink>")]
pub struct SelectSeats {
    pub workspace: Workspace,
    pub agents: Option<Vec<AgentId>>,
    pub except: Vec<AgentId>,
}

#[derive(Message)]
#[rtype(result = "Option<(SeatState, SeatLink)>")]
pub struct FindSeat {
    pub agent_id: AgentId,
}

#[derive(Message)]
#[rtype(result = "Vec<SeatState>")]
pub struct ListSeats;

/// Tells every seat of a workspace (and every supervisor, as `event`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Broadcast {
    pub workspace: Workspace,
    pub notice: SeatNotice,
    pub event: FloorEvent,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct CallChanged {
    pub call: FloorCall,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct CallGone {
    pub call_id: CallId,
    pub outcome: &'static str,
}

/// Registers a console: its feed gets the snapshot at once, then every change.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RegisterSupervisor {
    pub id: u64,
    pub feed: Arc<dyn FloorFeed>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct UnregisterSupervisor {
    pub id: u64,
}

struct SeatEntry {
    workspace: Workspace,
    name: Arc<str>,
    presence: Presence,
    call_id: Option<CallId>,
    link: SeatLink,
    generation: u64,
    /// When the seat registered (Unix ms): of two seats of one agent on two
    /// nodes, the later one stays.
    registered_ms: i64,
}

impl SeatEntry {
    fn state(&self, agent_id: &AgentId) -> SeatState {
        SeatState {
            agent_id: agent_id.clone(),
            name: self.name.to_string(),
            workspace: self.workspace.clone(),
            presence: self.presence,
            call_id: self.call_id.clone(),
        }
    }
}

/// A workspace's roster goes out this long after the first change of a burst, so
/// a burst (a call ringing and being claimed, a team signing in) costs each seat
/// one `roster`...
const ROSTER_COALESCE: Duration = Duration::from_millis(20);
/// ...and, in a large workspace, at most one per this much per seat of it: every
/// seat gets the whole list, so the bytes sent grow with the square of the seats.
const ROSTER_PER_SEAT: Duration = Duration::from_millis(1);

/// When a workspace's roster went out last and whether another is due.
#[derive(Default)]
struct RosterClock {
    due: bool,
    last: Option<Instant>,
}

/// A seat found on another node, as a future.
pub type Found = Pin<Box<dyn Future<Output = Option<(SeatState, SeatLink)>> + Send>>;

/// The seats of other nodes of the cluster (issue 16): implemented by the cluster
/// layer over the seats' presence in Redis and the node links. A call's ring and a
/// transfer's target reach them through it as if they were seats of this node.
pub trait RemoteFloor: Send + Sync + 'static {
    /// The available, free seats of `workspace` held by other nodes (among
    /// `agents` when given and not empty), less `except`. Empty when the cluster
    /// cannot be asked: a ring then reaches this node's seats only.
    fn select(
        &self,
        workspace: Workspace,
        agents: Option<Vec<AgentId>>,
        except: Vec<AgentId>,
    ) -> Pin<Box<dyn Future<Output = Vec<SeatLink>> + Send>>;
    /// The agent's seat if another node holds it.
    fn find(&self, agent_id: AgentId) -> Found;
    /// A handle on a call `node` owns.
    fn call(&self, node: &str, call: &FloorCall) -> CallHandle;
}

/// This node's connected seats by agent, readable without a mailbox hop (the node
/// link delivers audio and notices from other nodes through it). Written only by
/// the coordinator, as seats register and leave.
pub type LocalSeats = Arc<RwLock<HashMap<AgentId, SeatLink>>>;

#[derive(Default)]
pub struct RingCoordinator {
    seats: HashMap<AgentId, SeatEntry>,
    local: LocalSeats,
    calls: HashMap<CallId, FloorCall>,
    supervisors: HashMap<u64, Arc<dyn FloorFeed>>,
    /// Every parked call as it was broadcast (`parked`, until `unparked` or its
    /// end): what a seat that connects is told (`parking`) and may unpark, and a
    /// console's snapshot `parking`.
    lot: HashMap<CallId, (Workspace, CallHandle, Parked)>,
    rosters: HashMap<Workspace, RosterClock>,
    /// The other nodes' floors, as their links tell them (cluster mode).
    peers: HashMap<Arc<str>, peers::PeerFloor>,
    /// How much of the cluster's floor this node sees (cluster mode).
    coverage: FloorCoverage,
}

impl RingCoordinator {
    /// The workspace's connected seats, sorted by name (then id).
    fn roster(&self, workspace: &Workspace) -> Roster {
        let mut agents: Vec<RosterEntry> = self
            .seats
            .iter()
            .filter(|(_, seat)| &seat.workspace == workspace)
            .map(|(agent_id, seat)| RosterEntry {
                agent_id: agent_id.clone(),
                name: seat.name.to_string(),
                presence: seat.presence,
                on_call: seat.call_id.is_some(),
            })
            .chain(self.peer_roster(workspace))
            .collect();
        agents.sort_by(|a, b| (&a.name, &a.agent_id).cmp(&(&b.name, &b.agent_id)));
        Roster::new(agents)
    }

    /// The workspace's parked calls, by slot.
    fn lot_of(&self, workspace: &Workspace) -> Vec<(CallHandle, Parked)> {
        let mut calls: Vec<(CallHandle, Parked)> = self
            .lot
            .values()
            .filter(|(ws, _, _)| ws == workspace)
            .map(|(_, call, parked)| (call.clone(), parked.clone()))
            .chain(self.peer_lot(workspace))
            .collect();
        calls.sort_by_key(|(_, parked)| parked.slot);
        calls
    }

    /// A seat of the workspace changed: its roster goes out soon (once per burst).
    fn roster_changed(&mut self, workspace: &Workspace, ctx: &mut Context<Self>) {
        let seats = self
            .seats
            .values()
            .filter(|seat| &seat.workspace == workspace)
            .count() as u32;
        let clock = self.rosters.entry(workspace.clone()).or_default();
        if clock.due {
            return;
        }
        clock.due = true;
        let spacing = ROSTER_COALESCE.max(ROSTER_PER_SEAT * seats);
        let delay = clock.last.map_or(ROSTER_COALESCE, |last| {
            (last + spacing)
                .saturating_duration_since(Instant::now())
                .max(ROSTER_COALESCE)
        });
        let workspace = workspace.clone();
        ctx.run_later(delay, move |act, _ctx| act.send_roster(&workspace));
    }

    fn send_roster(&mut self, workspace: &Workspace) {
        let roster = self.roster(workspace);
        if roster.agents.is_empty() {
            self.rosters.remove(workspace);
            return;
        }
        if let Some(clock) = self.rosters.get_mut(workspace) {
            clock.due = false;
            clock.last = Some(Instant::now());
        }
        for seat in self.seats.values().filter(|s| &s.workspace == workspace) {
            let notice = SeatNotice::Tell(SeatOutput::Roster(roster.clone()));
            let _ = seat.link.notices.try_send(notice);
        }
    }

    fn tell_supervisors(&mut self, event: FloorEvent) {
        // A supervisor that cannot keep up is cut off by its feed (told so, to
        // reconnect for a fresh snapshot) rather than slowing the floor or missing
        // events silently; the coordinator then forgets it.
        self.supervisors
            .retain(|_, supervisor| supervisor.event(event.clone()));
    }

    fn seat_changed(&mut self, agent_id: &AgentId) {
        if let Some(seat) = self.seats.get(agent_id) {
            let state = seat.state(agent_id);
            self.tell_supervisors(FloorEvent::Seat(state));
        }
    }
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

    fn handle(&mut self, msg: RegisterSeat, ctx: &mut Self::Context) {
        let workspace = msg.workspace.clone();
        let notices = msg.link.notices.clone();
        if let Ok(mut local) = self.local.write() {
            local.insert(msg.agent_id.clone(), msg.link.clone());
        }
        let entry = SeatEntry {
            name: Arc::clone(&msg.link.name),
            workspace: msg.workspace,
            presence: Presence::Away,
            call_id: None,
            link: msg.link,
            generation: msg.generation,
            registered_ms: crate::journal::now_ms(),
        };
        if let Some(old) = self.seats.insert(msg.agent_id.clone(), entry) {
            if old.generation != msg.generation {
                // Only one softphone per agent: the older connection is closed.
                let _ = old.link.notices.try_send(SeatNotice::Replaced);
            }
        }
        self.seat_changed(&msg.agent_id);
        // The new seat learns the floor at once (after its `welcome`): the roster,
        // then the parking lot; the others with the next roster.
        let roster = SeatOutput::Roster(self.roster(&workspace));
        let _ = notices.try_send(SeatNotice::Tell(roster));
        let calls = self.lot_of(&workspace);
        let _ = notices.try_send(SeatNotice::Lot { calls });
        self.roster_changed(&workspace, ctx);
    }
}

impl Handler<UnregisterSeat> for RingCoordinator {
    type Result = ();

    fn handle(&mut self, msg: UnregisterSeat, ctx: &mut Self::Context) {
        let ours = self
            .seats
            .get(&msg.agent_id)
            .is_some_and(|seat| seat.generation == msg.generation);
        if ours {
            if let Some(seat) = self.seats.remove(&msg.agent_id) {
                if let Ok(mut local) = self.local.write() {
                    local.remove(&msg.agent_id);
                }
                self.roster_changed(&seat.workspace, ctx);
                self.tell_supervisors(FloorEvent::SeatGone {
                    agent_id: msg.agent_id,
                    workspace: seat.workspace,
                });
            }
        }
    }
}

impl Handler<UpdateSeat> for RingCoordinator {
    type Result = ();

    fn handle(&mut self, msg: UpdateSeat, ctx: &mut Self::Context) {
        let Some(seat) = self.seats.get_mut(&msg.agent_id) else {
            return;
        };
        if seat.generation != msg.generation
            || (seat.presence == msg.presence && seat.call_id == msg.call_id)
        {
            return;
        }
        seat.presence = msg.presence;
        seat.call_id = msg.call_id;
        let workspace = seat.workspace.clone();
        self.seat_changed(&msg.agent_id);
        self.roster_changed(&workspace, ctx);
    }
}

impl Handler<SelectSeats> for RingCoordinator {
    type Result = MessageResult<SelectSeats>;

    fn handle(&mut self, msg: SelectSeats, _ctx: &mut Self::Context) -> Self::Result {
        let eligible = |agent_id: &AgentId, seat: &SeatEntry| {
            seat.workspace == msg.workspace
                && seat.presence == Presence::Available
                && seat.call_id.is_none()
                && !msg.except.contains(agent_id)
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

impl Handler<FindSeat> for RingCoordinator {
    type Result = Option<(SeatState, SeatLink)>;

    fn handle(&mut self, msg: FindSeat, _ctx: &mut Self::Context) -> Self::Result {
        let seat = self.seats.get(&msg.agent_id)?;
        Some((seat.state(&msg.agent_id), seat.link.clone()))
    }
}

impl Handler<ListSeats> for RingCoordinator {
    type Result = MessageResult<ListSeats>;

    fn handle(&mut self, _msg: ListSeats, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.seats.iter().map(|(id, seat)| seat.state(id)).collect())
    }
}

impl Handler<Broadcast> for RingCoordinator {
    type Result = ();

    fn handle(&mut self, msg: Broadcast, _ctx: &mut Self::Context) {
        match (&msg.notice, &msg.event) {
            (SeatNotice::Parked { call, parked }, FloorEvent::Parked { workspace, .. }) => {
                let entry = (workspace.clone(), call.clone(), parked.clone());
                self.lot.insert(parked.call_id.clone(), entry);
            }
            (_, FloorEvent::Unparked { unparked, .. }) => {
                self.lot.remove(&unparked.call_id);
            }
            _ => {}
        }
        for seat in self.seats.values().filter(|s| s.workspace == msg.workspace) {
            let _ = seat.link.notices.try_send(msg.notice.clone());
        }
        self.tell_supervisors(msg.event);
    }
}

impl Handler<CallChanged> for RingCoordinator {
    type Result = ();

    fn handle(&mut self, msg: CallChanged, _ctx: &mut Self::Context) {
        self.calls
            .insert(msg.call.call_id.clone(), msg.call.clone());
        self.tell_supervisors(FloorEvent::Call(msg.call));
    }
}

impl Handler<CallGone> for RingCoordinator {
    type Result = ();

    fn handle(&mut self, msg: CallGone, _ctx: &mut Self::Context) {
        self.lot.remove(&msg.call_id);
        if let Some(call) = self.calls.remove(&msg.call_id) {
            self.tell_supervisors(FloorEvent::CallEnded {
                call_id: msg.call_id,
                workspace: call.workspace,
                outcome: msg.outcome,
            });
        }
    }
}

impl Handler<RegisterSupervisor> for RingCoordinator {
    type Result = ();

    fn handle(&mut self, msg: RegisterSupervisor, _ctx: &mut Self::Context) {
        let whole = msg.feed.whole_cluster();
        let mut seats: Vec<SeatState> = self.seats.iter().map(|(id, s)| s.state(id)).collect();
        let mut calls: Vec<FloorCall> = self.calls.values().cloned().collect();
        let mut parking: Vec<(Workspace, Parked)> = self
            .lot
            .values()
            .map(|(workspace, _, parked)| (workspace.clone(), parked.clone()))
            .collect();
        if whole {
            for peer in self.peers.values() {
                seats.extend(peer.seats.values().cloned());
                calls.extend(peer.calls.values().cloned());
                parking.extend(
                    peer.lot
                        .values()
                        .map(|(workspace, _, parked)| (workspace.clone(), parked.clone())),
                );
            }
        }
        seats.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
        calls.sort_by(|a, b| a.call_id.cmp(&b.call_id));
        parking.sort_by(|a, b| (&a.0, a.1.slot).cmp(&(&b.0, b.1.slot)));
        let coverage = if whole {
            self.coverage.clone()
        } else {
            FloorCoverage::default()
        };
        if msg.feed.snapshot(Snapshot {
            seats,
            calls,
            parking,
            coverage,
        }) {
            self.supervisors.insert(msg.id, msg.feed);
        }
    }
}

impl Handler<UnregisterSupervisor> for RingCoordinator {
    type Result = ();

    fn handle(&mut self, msg: UnregisterSupervisor, _ctx: &mut Self::Context) {
        self.supervisors.remove(&msg.id);
    }
}

/// The typed handle every other part of the engine uses.
#[derive(Clone)]
pub struct CoordinatorHandle {
    addr: Addr<RingCoordinator>,
    local: LocalSeats,
    remote: Arc<OnceLock<Arc<dyn RemoteFloor>>>,
}

impl CoordinatorHandle {
    /// Starts the coordinator under a supervisor on the current arbiter.
    pub fn start() -> Self {
        let local = LocalSeats::default();
        let directory = Arc::clone(&local);
        Self {
            addr: Supervisor::start(move |_| RingCoordinator {
                local: Arc::clone(&directory),
                ..RingCoordinator::default()
            }),
            local,
            remote: Arc::new(OnceLock::new()),
        }
    }

    /// Lets rings and transfers reach the seats of other nodes (cluster mode); set
    /// once, at start-up. False if one was set already.
    pub fn set_remote_floor(&self, remote: Arc<dyn RemoteFloor>) -> bool {
        self.remote.set(remote).is_ok()
    }

    /// This node's seat of `agent_id`, if its softphone is connected here.
    pub fn local_seat(&self, agent_id: &AgentId) -> Option<SeatLink> {
        self.local.read().ok()?.get(agent_id).cloned()
    }

    /// Where audio for this node's seat of `agent_id` goes, if its softphone is
    /// connected here. Read for every frame a node link carries to a seat: it
    /// takes the agent id as the frame has it and clones one `Arc`, not the
    /// whole [`SeatLink`] (whose ids and recipient allocate).
    pub fn local_seat_audio(&self, agent_id: &str) -> Option<AudioPort> {
        self.local
            .read()
            .ok()?
            .get(agent_id)
            .map(|seat| Arc::clone(&seat.audio))
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

    pub fn update_seat(&self, msg: UpdateSeat) {
        self.addr.do_send(msg);
    }

    /// The seats to ring: this node's, then (cluster mode) the other nodes'
    /// available seats of the workspace, an agent counted once.
    pub async fn select(
        &self,
        workspace: Workspace,
        agents: Option<Vec<AgentId>>,
        except: Vec<AgentId>,
    ) -> Result<Vec<SeatLink>, EngineError> {
        let mut seats = self
            .addr
            .send(SelectSeats {
                workspace: workspace.clone(),
                agents: agents.clone(),
                except: except.clone(),
            })
            .await
            .map_err(|e| EngineError::mailbox("ring coordinator", e))?;
        if let Some(remote) = self.remote.get() {
            let mut except = except;
            except.extend(self.local.read().map_or_else(
                |_| Vec::new(),
                |local| local.keys().cloned().collect::<Vec<_>>(),
            ));
            seats.extend(remote.select(workspace, agents, except).await);
        }
        Ok(seats)
    }

    /// The agent's seat, on this node or (cluster mode) another.
    pub async fn find(
        &self,
        agent_id: AgentId,
    ) -> Result<Option<(SeatState, SeatLink)>, EngineError> {
        let local = self
            .addr
            .send(FindSeat {
                agent_id: agent_id.clone(),
            })
            .await
            .map_err(|e| EngineError::mailbox("ring coordinator", e))?;
        match (local, self.remote.get()) {
            (Some(seat), _) => Ok(Some(seat)),
            (None, Some(remote)) => Ok(remote.find(agent_id).await),
            (None, None) => Ok(None),
        }
    }

    /// A call another node owns, as this node's floor knows it (cluster mode).
    pub async fn remote_call(&self, call_id: CallId) -> Result<Option<CallHandle>, EngineError> {
        let Some(remote) = self.remote.get() else {
            return Ok(None);
        };
        let found = self
            .addr
            .send(peers::PeerCall { call_id })
            .await
            .map_err(|e| EngineError::mailbox("ring coordinator", e))?;
        Ok(found.map(|(node, call)| remote.call(&node, &call)))
    }

    /// The agent's seat, or `Unavailable` if its softphone is not connected.
    pub async fn connected_seat(
        &self,
        agent_id: AgentId,
    ) -> Result<(SeatState, SeatLink), EngineError> {
        self.find(agent_id.clone())
            .await?
            .ok_or_else(|| EngineError::Unavailable(format!("agent {agent_id} is not connected")))
    }

    pub async fn seats(&self) -> Result<Vec<SeatState>, EngineError> {
        self.addr
            .send(ListSeats)
            .await
            .map_err(|e| EngineError::mailbox("ring coordinator", e))
    }

    pub fn broadcast(&self, msg: Broadcast) {
        self.addr.do_send(msg);
    }

    pub fn call_changed(&self, call: FloorCall) {
        self.addr.do_send(CallChanged { call });
    }

    pub fn call_gone(&self, call_id: CallId, outcome: &'static str) {
        self.addr.do_send(CallGone { call_id, outcome });
    }

    /// Another node's whole floor, from its link (cluster mode).
    pub fn peer_snapshot(&self, msg: PeerSnapshot) {
        self.addr.do_send(msg);
    }

    /// One change of another node's floor, in that node's order.
    pub fn peer_event(&self, msg: PeerEvent) {
        self.addr.do_send(msg);
    }

    /// A seat of `agent_id` opened on another node at `at_ms`: an older seat of
    /// the agent here is replaced (on a tie, if `wins_ties`: the other node's id
    /// sorts after this one's).
    pub fn peer_seat_opened(&self, agent_id: AgentId, at_ms: i64, wins_ties: bool) {
        self.addr.do_send(PeerSeatOpened {
            agent_id,
            at_ms,
            wins_ties,
        });
    }

    /// The link to `node` is down.
    pub fn peer_gone(&self, node: Arc<str>) {
        self.addr.do_send(PeerGone { node });
    }

    /// How much of the cluster this node sees now; consoles are told of a change.
    pub fn set_coverage(&self, coverage: FloorCoverage) {
        self.addr.do_send(SetCoverage(coverage));
    }

    /// Registers a console; its feed gets the snapshot, then every change.
    pub async fn register_supervisor(
        &self,
        id: u64,
        feed: Arc<dyn FloorFeed>,
    ) -> Result<(), EngineError> {
        self.addr
            .send(RegisterSupervisor { id, feed })
            .await
            .map_err(|e| EngineError::mailbox("ring coordinator", e))
    }

    pub fn unregister_supervisor(&self, id: u64) {
        self.addr.do_send(UnregisterSupervisor { id });
    }
}
