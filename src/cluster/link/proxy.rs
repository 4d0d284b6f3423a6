//! The stand-ins that make a seat or a call on another node look local to the
//! actors: a seat on another node is a [`SeatLink`] whose notices go to a
//! [`RemoteSeat`] actor and whose audio goes to a [`LinkAudio`]; a call on another
//! node is a [`CallHandle`] over a [`RemoteCall`]. Each turns what it is given
//! into the link's wire messages ([`super::wire`]), and the receiving node turns
//! them back (`*_in`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix::prelude::*;
use switchboard_actors::call::{
    CallHandle, CallRemote, CallReply, CallRequest, ClaimResult, RemoteReply,
};
use switchboard_actors::coordinator::{
    FloorCall, FloorEvent, FloorFeed, Found, PeerEvent, PeerSnapshot, RemoteFloor, SeatState,
    Snapshot,
};
use switchboard_actors::outbox::AudioOut;
use switchboard_actors::seat::{Presence, SeatLink, SeatNotice, SeatOutput};
use switchboard_actors::{AgentId, CallId, EngineError, Workspace};

use super::wire::{
    word, Address, Control, SeatRef, WireFloorCall, WireFloorEvent, WireNotice, WireParked,
    WireReply, WireRequest,
};
use super::{error_in, Links, Peer};

/// Audio for another node: a seat there (by agent, resolved on each frame, so it
/// survives a relinked node) or a port it exported (tied to that one link, and
/// released when this proxy is dropped).
pub(super) struct LinkAudio {
    links: Links,
    node: Arc<str>,
    target: Target,
}

enum Target {
    Seat(Address),
    Port {
        peer: Arc<Peer>,
        address: Address,
        port: u64,
    },
}

impl LinkAudio {
    fn seat(links: &Links, node: Arc<str>, agent: AgentId) -> LinkAudio {
        LinkAudio {
            links: links.clone(),
            node,
            target: Target::Seat(Address::Seat(agent)),
        }
    }

    fn port(links: &Links, peer: &Arc<Peer>, port: u64) -> LinkAudio {
        LinkAudio {
            links: links.clone(),
            node: Arc::clone(&peer.node),
            target: Target::Port {
                peer: Arc::clone(peer),
                address: Address::Port(port),
                port,
            },
        }
    }
}

impl AudioOut for LinkAudio {
    fn push_audio(&self, frame: bytes::Bytes) {
        match &self.target {
            Target::Seat(address) => {
                if let Some(peer) = self.links.connected(&self.node) {
                    peer.audio(address, &frame);
                }
            }
            Target::Port { peer, address, .. } => peer.audio(address, &frame),
        }
    }
}

impl Drop for LinkAudio {
    fn drop(&mut self) {
        if let Target::Port { peer, port, .. } = &self.target {
            if peer.is_up() {
                peer.send(&Control::Release { port: *port });
            }
        }
    }
}

/// A seat on another node, as the calls of this node see it: every notice goes
/// over the link to the node that holds the seat's socket.
struct RemoteSeat {
    links: Links,
    node: Arc<str>,
    agent: AgentId,
}

impl Actor for RemoteSeat {
    type Context = Context<Self>;
}

impl Handler<SeatNotice> for RemoteSeat {
    type Result = ();

    fn handle(&mut self, notice: SeatNotice, _ctx: &mut Self::Context) {
        let Some(peer) = self.links.connected(&self.node) else {
            tracing::debug!(node = %self.node, agent = %self.agent, "no link for a seat's notice; dropped");
            return;
        };
        if let Some(notice) = notice_out(&self.links, &peer, notice) {
            peer.send(&Control::Notice {
                agent: self.agent.clone(),
                notice,
            });
        }
    }
}

/// The link of a seat of `seat.node` (another node).
fn remote_seat(links: &Links, seat: SeatRef) -> SeatLink {
    let node: Arc<str> = Arc::from(seat.node.as_str());
    let notices = RemoteSeat {
        links: links.clone(),
        node: Arc::clone(&node),
        agent: seat.agent_id.clone(),
    }
    .start()
    .recipient();
    SeatLink {
        audio: Arc::new(LinkAudio::seat(
            links,
            Arc::clone(&node),
            seat.agent_id.clone(),
        )),
        agent_id: seat.agent_id,
        name: Arc::from(seat.name.as_str()),
        workspace: seat.workspace,
        notices,
        node: Some(node),
    }
}

/// A seat named by a peer: this node's own, or a proxy of another node's.
fn seat_in(links: &Links, seat: SeatRef) -> Result<SeatLink, EngineError> {
    if seat.node == links.me() {
        links
            .inner
            .coordinator
            .local_seat(&seat.agent_id)
            .ok_or_else(|| {
                EngineError::Unavailable(format!("agent {} is not connected", seat.agent_id))
            })
    } else {
        Ok(remote_seat(links, seat))
    }
}

/// A call owned by another node.
pub(super) struct RemoteCall {
    links: Links,
    node: Arc<str>,
}

impl RemoteCall {
    pub(super) fn new(links: Links, node: Arc<str>) -> RemoteCall {
        RemoteCall { links, node }
    }
}

impl CallRemote for RemoteCall {
    fn request(&self, call_id: &CallId, request: CallRequest) -> RemoteReply {
        let (links, node, call_id) = (self.links.clone(), Arc::clone(&self.node), call_id.clone());
        Box::pin(async move { links.request(&node, &call_id, request).await })
    }

    fn tell(&self, call_id: &CallId, request: CallRequest) {
        self.links.tell(&self.node, call_id, request);
    }

    fn is_alive(&self) -> bool {
        self.links.connected(&self.node).is_some()
    }

    fn node(&self) -> &str {
        &self.node
    }
}

/// A request for a call on `peer`'s node, as the wire carries it.
pub(super) fn request_out(links: &Links, peer: &Arc<Peer>, request: CallRequest) -> WireRequest {
    match request {
        CallRequest::Claim {
            agent_id: _,
            seat,
            kind,
            notify,
        } => WireRequest::Claim {
            seat: links.seat_ref(&seat),
            claim: kind,
            notify,
        },
        CallRequest::Decline { agent_id } => WireRequest::Decline { agent_id },
        CallRequest::Hangup { agent_id } => WireRequest::Hangup { agent_id },
        CallRequest::SeatGone { agent_id } => WireRequest::SeatGone { agent_id },
        CallRequest::AgentPresence { agent_id, presence } => WireRequest::AgentPresence {
            agent_id,
            presence: presence.to_owned(),
        },
        CallRequest::Park { by, reason } => WireRequest::Park {
            by,
            reason: reason.to_owned(),
        },
        CallRequest::Transfer { from, to, warm } => WireRequest::Transfer {
            from,
            to: links.seat_ref(&to),
            warm,
        },
        CallRequest::CompleteTransfer { by } => WireRequest::CompleteTransfer { by },
        CallRequest::CancelTransfer { by } => WireRequest::CancelTransfer { by },
        CallRequest::SupervisorHangup => WireRequest::SupervisorHangup,
        CallRequest::PlayDigits { agent_id, digits } => {
            WireRequest::PlayDigits { agent_id, digits }
        }
        CallRequest::Listen { listener, port } => WireRequest::Listen {
            listener,
            port: peer.export(port),
        },
        CallRequest::Unlisten { listener } => WireRequest::Unlisten { listener },
        CallRequest::Holds => WireRequest::Holds,
    }
}

/// A peer's request, for one of this node's calls.
pub(super) fn request_in(
    links: &Links,
    peer: &Arc<Peer>,
    request: WireRequest,
) -> Result<CallRequest, EngineError> {
    Ok(match request {
        WireRequest::Claim {
            seat,
            claim,
            notify,
        } => CallRequest::Claim {
            agent_id: seat.agent_id.clone(),
            seat: seat_in(links, seat)?,
            kind: claim,
            notify,
        },
        WireRequest::Decline { agent_id } => CallRequest::Decline { agent_id },
        WireRequest::Hangup { agent_id } => CallRequest::Hangup { agent_id },
        WireRequest::SeatGone { agent_id } => CallRequest::SeatGone { agent_id },
        WireRequest::AgentPresence { agent_id, presence } => CallRequest::AgentPresence {
            agent_id,
            presence: word(&presence),
        },
        WireRequest::Park { by, reason } => CallRequest::Park {
            by,
            reason: word(&reason),
        },
        WireRequest::Transfer { from, to, warm } => CallRequest::Transfer {
            from,
            to: seat_in(links, to)?,
            warm,
        },
        WireRequest::CompleteTransfer { by } => CallRequest::CompleteTransfer { by },
        WireRequest::CancelTransfer { by } => CallRequest::CancelTransfer { by },
        WireRequest::SupervisorHangup => CallRequest::SupervisorHangup,
        WireRequest::PlayDigits { agent_id, digits } => {
            CallRequest::PlayDigits { agent_id, digits }
        }
        WireRequest::Listen { listener, port } => CallRequest::Listen {
            listener,
            port: Arc::new(LinkAudio::port(links, peer, port)),
        },
        WireRequest::Unlisten { listener } => CallRequest::Unlisten { listener },
        WireRequest::Holds => CallRequest::Holds,
    })
}

/// A call's answer from `peer`.
pub(super) fn reply_in(
    links: &Links,
    peer: &Arc<Peer>,
    reply: WireReply,
) -> Result<CallReply, EngineError> {
    match reply {
        WireReply::Done => Ok(CallReply::Done),
        WireReply::Lost => Ok(CallReply::Claim(ClaimResult::Lost)),
        WireReply::Won { port } => Ok(CallReply::Claim(ClaimResult::Won {
            peer_audio: Arc::new(LinkAudio::port(links, peer, port)),
        })),
        WireReply::Error { code, message } => Err(error_in(&code, message)),
    }
}

/// A notice for a seat on `peer`'s node, as the wire carries it; `None` for what
/// a call never sends a seat on another node (the coordinator's own messages).
fn notice_out(links: &Links, peer: &Arc<Peer>, notice: SeatNotice) -> Option<WireNotice> {
    Some(match notice {
        SeatNotice::Ring { call, ring } => WireNotice::Ring {
            call: links.call_ref(&call),
            ring,
        },
        SeatNotice::Parked { call, parked } => WireNotice::Parked {
            call: links.call_ref(&call),
            parked: WireParked::out(parked),
        },
        SeatNotice::Lot { calls } => WireNotice::Lot {
            calls: calls
                .into_iter()
                .map(|(call, parked)| (links.call_ref(&call), WireParked::out(parked)))
                .collect(),
        },
        SeatNotice::Assigned {
            call,
            peer_audio,
            reason,
        } => WireNotice::Assigned {
            call: links.call_ref(&call),
            port: peer.export(peer_audio),
            reason: reason.to_owned(),
        },
        SeatNotice::AudioTo {
            call_id,
            peer_audio,
        } => WireNotice::AudioTo {
            call_id,
            port: peer.export(peer_audio),
        },
        SeatNotice::Replaced => WireNotice::Replaced,
        SeatNotice::Tell(output) => match output {
            SeatOutput::RingCancel { call_id, reason } => {
                WireNotice::RingCancel { call_id, reason }
            }
            SeatOutput::ClaimLost { call_id } => WireNotice::ClaimLost { call_id },
            SeatOutput::CallEnded { call_id, reason } => WireNotice::CallEnded { call_id, reason },
            SeatOutput::Released { call_id, reason } => WireNotice::Released {
                call_id,
                reason: reason.to_owned(),
            },
            SeatOutput::Unparked(unparked) => WireNotice::Unparked(unparked),
            SeatOutput::TransferStatus {
                call_id,
                agent_id,
                status,
            } => WireNotice::TransferStatus {
                call_id,
                agent_id,
                status: status.to_owned(),
            },
            _ => return None,
        },
    })
}

/// A notice from `peer` for a seat of this node.
pub(super) fn notice_in(links: &Links, peer: &Arc<Peer>, notice: WireNotice) -> Option<SeatNotice> {
    Some(match notice {
        WireNotice::Ring { call, ring } => SeatNotice::Ring {
            call: links.remote_call(call),
            ring,
        },
        WireNotice::Parked { call, parked } => SeatNotice::Parked {
            call: links.remote_call(call),
            parked: parked.into_parked(),
        },
        WireNotice::Lot { calls } => SeatNotice::Lot {
            calls: calls
                .into_iter()
                .map(|(call, parked)| (links.remote_call(call), parked.into_parked()))
                .collect(),
        },
        WireNotice::Assigned { call, port, reason } => SeatNotice::Assigned {
            call: links.remote_call(call),
            peer_audio: Arc::new(LinkAudio::port(links, peer, port)),
            reason: word(&reason),
        },
        WireNotice::AudioTo { call_id, port } => SeatNotice::AudioTo {
            call_id,
            peer_audio: Arc::new(LinkAudio::port(links, peer, port)),
        },
        WireNotice::Replaced => SeatNotice::Replaced,
        WireNotice::RingCancel { call_id, reason } => {
            SeatNotice::Tell(SeatOutput::RingCancel { call_id, reason })
        }
        WireNotice::ClaimLost { call_id } => SeatNotice::Tell(SeatOutput::ClaimLost { call_id }),
        WireNotice::CallEnded { call_id, reason } => {
            SeatNotice::Tell(SeatOutput::CallEnded { call_id, reason })
        }
        WireNotice::Released { call_id, reason } => SeatNotice::Tell(SeatOutput::Released {
            call_id,
            reason: word(&reason),
        }),
        WireNotice::Unparked(unparked) => SeatNotice::Tell(SeatOutput::Unparked(unparked)),
        WireNotice::TransferStatus {
            call_id,
            agent_id,
            status,
        } => SeatNotice::Tell(SeatOutput::TransferStatus {
            call_id,
            agent_id,
            status: word(&status),
        }),
    })
}

/// The other nodes' seats, for this node's coordinator: read from the seats'
/// presence in Redis, reached over the links. A seat whose node has no live link
/// is not rung (its ring could not be delivered); when Redis does not answer, a
/// ring reaches this node's seats only, and the reason is logged. While the
/// links' loop finds Redis away, a ring does not wait for it (each read would
/// cost `cluster.redis_timeout_ms` when Redis hangs rather than refuses).
pub struct RemoteFloorOverLinks {
    links: Links,
}

impl RemoteFloorOverLinks {
    pub fn new(links: Links) -> Self {
        RemoteFloorOverLinks { links }
    }
}

type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl RemoteFloor for RemoteFloorOverLinks {
    fn select(
        &self,
        workspace: Workspace,
        agents: Option<Vec<AgentId>>,
        except: Vec<AgentId>,
    ) -> Boxed<Vec<SeatLink>> {
        let links = self.links.clone();
        Box::pin(async move {
            if !links.redis_answers() {
                return Vec::new();
            }
            let seats = match links.cluster().seats(Some(workspace.as_str())).await {
                Ok(seats) => seats,
                Err(err) => {
                    tracing::warn!(%workspace, error = %err, "the cluster's seats cannot be read; ringing this node's seats only");
                    links.redis_answered(false);
                    return Vec::new();
                }
            };
            seats
                .into_iter()
                .filter(|seat| {
                    seat.node != links.me()
                        && seat.presence == Presence::Available
                        && seat.call_id.is_none()
                        && links.connected(&seat.node).is_some()
                })
                .filter_map(|seat| {
                    let agent_id = AgentId::parse(&seat.agent_id).ok()?;
                    let wanted = agents
                        .as_ref()
                        .is_none_or(|agents| agents.is_empty() || agents.contains(&agent_id));
                    (wanted && !except.contains(&agent_id)).then(|| {
                        remote_seat(
                            &links,
                            SeatRef {
                                agent_id,
                                name: seat.name,
                                workspace: workspace.clone(),
                                node: seat.node,
                            },
                        )
                    })
                })
                .collect()
        })
    }

    fn call(&self, node: &str, call: &FloorCall) -> CallHandle {
        self.links.remote_call(super::wire::CallRef {
            id: call.call_id.clone(),
            from: call.from.clone(),
            to: call.to.clone(),
            node: node.to_owned(),
        })
    }

    fn find(&self, agent_id: AgentId) -> Found {
        let links = self.links.clone();
        Box::pin(async move {
            let seats = links.cluster().seats(None).await.ok()?;
            let seat = seats
                .into_iter()
                .find(|seat| seat.agent_id == agent_id.as_str() && seat.node != links.me())?;
            let workspace = Workspace::parse(&seat.workspace).ok()?;
            let call_id = seat
                .call_id
                .as_deref()
                .and_then(|id| CallId::parse(id).ok());
            let state = SeatState {
                agent_id: agent_id.clone(),
                name: seat.name.clone(),
                workspace: workspace.clone(),
                presence: seat.presence,
                call_id,
            };
            let link = remote_seat(
                &links,
                SeatRef {
                    agent_id,
                    name: seat.name,
                    workspace,
                    node: seat.node,
                },
            );
            Some((state, link))
        })
    }
}

/// Carries this node's floor to one peer: registered with the coordinator as a
/// console is (so it gets the snapshot, then every change, in the coordinator's
/// order), but for this node's floor only.
pub(super) struct PeerFeed {
    pub(super) peer: Arc<Peer>,
    /// The seats this feed has told of: a seat event of another agent is a seat
    /// that just registered, told to the peer as `seat_opened` too.
    pub(super) known: std::sync::Mutex<std::collections::HashSet<AgentId>>,
}

impl FloorFeed for PeerFeed {
    fn snapshot(&self, snapshot: Snapshot) -> bool {
        if let Ok(mut known) = self.known.lock() {
            known.extend(snapshot.seats.iter().map(|seat| seat.agent_id.clone()));
        }
        self.peer.send(&Control::FloorSnapshot {
            seats: snapshot.seats,
            calls: snapshot.calls.into_iter().map(WireFloorCall::out).collect(),
            parking: snapshot
                .parking
                .into_iter()
                .map(|(workspace, parked)| (workspace, WireParked::out(parked)))
                .collect(),
        })
    }

    fn event(&self, event: FloorEvent) -> bool {
        let opened = match (&event, self.known.lock()) {
            (FloorEvent::Seat(seat), Ok(mut known)) => known
                .insert(seat.agent_id.clone())
                .then(|| seat.agent_id.clone()),
            (FloorEvent::SeatGone { agent_id, .. }, Ok(mut known)) => {
                known.remove(agent_id);
                None
            }
            _ => None,
        };
        let told = self.peer.send(&Control::Floor {
            event: WireFloorEvent::out(event),
        });
        match opened {
            Some(agent) => {
                told && self.peer.send(&Control::SeatOpened {
                    agent,
                    at_ms: switchboard_actors::journal::now_ms(),
                })
            }
            None => told,
        }
    }

    fn whole_cluster(&self) -> bool {
        false
    }
}

/// A parked call of `peer`'s node, as a handle that reaches it there.
fn parked_call(
    links: &Links,
    peer: &Peer,
    parked: &switchboard_actors::seat::Parked,
) -> CallHandle {
    links.remote_call(super::wire::CallRef {
        id: parked.call_id.clone(),
        from: parked.from.clone(),
        to: parked.to.clone(),
        node: peer.node.to_string(),
    })
}

/// `peer`'s floor, for this node's coordinator.
pub(super) fn floor_in(links: &Links, peer: &Peer, control: Control) {
    let coordinator = &links.inner.coordinator;
    match control {
        Control::FloorSnapshot {
            seats,
            calls,
            parking,
        } => coordinator.peer_snapshot(PeerSnapshot {
            node: Arc::clone(&peer.node),
            seats,
            calls: calls.into_iter().map(WireFloorCall::into_call).collect(),
            lot: parking
                .into_iter()
                .map(|(workspace, parked)| {
                    let parked = parked.into_parked();
                    (workspace, parked_call(links, peer, &parked), parked)
                })
                .collect(),
        }),
        Control::SeatOpened { agent, at_ms } => {
            coordinator.peer_seat_opened(agent, at_ms, *peer.node > *links.me())
        }
        Control::Floor { event } => {
            let event = event.into_event();
            let call = match &event {
                FloorEvent::Parked { parked, .. } => Some(parked_call(links, peer, parked)),
                _ => None,
            };
            coordinator.peer_event(PeerEvent {
                node: Arc::clone(&peer.node),
                event,
                call,
            });
        }
        _ => {}
    }
}
