//! What travels over a node link: JSON text frames for control (requests to a
//! call, their answers, notices to a seat, released ports) and binary frames for
//! audio, each addressed to a seat or to a port the receiving node exported.
//!
//! Actor values that cannot cross a process boundary cross as references: a call
//! as its id, parties and owner node ([`CallRef`]); a seat as its agent, name,
//! workspace and node ([`SeatRef`]); an audio destination as a port number the
//! sending node keeps in its export table until the peer releases it.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use switchboard_actors::coordinator::{FloorCall, FloorEvent, SeatState};
use switchboard_actors::machine::{CancelReason, ClaimKind};
use switchboard_actors::seat::{Parked, Ring, Unparked};
use switchboard_actors::{AgentId, CallId, Workspace};

/// A control message.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Control {
    /// A request to a call this link's peer owns; `id` 0 wants no answer.
    Request {
        id: u64,
        call: CallId,
        request: WireRequest,
    },
    Reply {
        id: u64,
        reply: WireReply,
    },
    /// A notice for a seat connected to the peer.
    Notice {
        agent: AgentId,
        notice: WireNotice,
    },
    /// The sender dropped its proxy of this exported port.
    Release {
        port: u64,
    },
    /// The sender's own floor, when the link comes up (every change follows).
    FloorSnapshot {
        seats: Vec<SeatState>,
        calls: Vec<WireFloorCall>,
        parking: Vec<(Workspace, WireParked)>,
    },
    /// One change of the sender's own floor.
    Floor {
        event: WireFloorEvent,
    },
    /// A seat of `agent` registered on the sender at `at_ms` (Unix ms).
    SeatOpened {
        agent: AgentId,
        at_ms: i64,
    },
}

/// [`FloorCall`] with its status as a string.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireFloorCall {
    pub call_id: CallId,
    pub workspace: Workspace,
    pub status: String,
    pub since: String,
    pub agent_id: Option<AgentId>,
    pub ringing: Vec<AgentId>,
    pub slot: Option<u32>,
    pub from: String,
    pub to: String,
}

impl WireFloorCall {
    pub fn out(call: FloorCall) -> Self {
        WireFloorCall {
            call_id: call.call_id,
            workspace: call.workspace,
            status: call.status.to_owned(),
            since: call.since,
            agent_id: call.agent_id,
            ringing: call.ringing,
            slot: call.slot,
            from: call.from,
            to: call.to,
        }
    }

    pub fn into_call(self) -> FloorCall {
        FloorCall {
            call_id: self.call_id,
            workspace: self.workspace,
            status: word(&self.status),
            since: self.since,
            agent_id: self.agent_id,
            ringing: self.ringing,
            slot: self.slot,
            from: self.from,
            to: self.to,
        }
    }
}

/// [`FloorEvent`] on the wire.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WireFloorEvent {
    Seat(SeatState),
    SeatGone {
        agent_id: AgentId,
        workspace: Workspace,
    },
    Call(WireFloorCall),
    CallEnded {
        call_id: CallId,
        workspace: Workspace,
        outcome: String,
    },
    Parked {
        parked: WireParked,
        workspace: Workspace,
    },
    Unparked {
        unparked: Unparked,
        workspace: Workspace,
    },
}

impl WireFloorEvent {
    pub fn out(event: FloorEvent) -> Self {
        match event {
            FloorEvent::Seat(seat) => WireFloorEvent::Seat(seat),
            FloorEvent::SeatGone {
                agent_id,
                workspace,
            } => WireFloorEvent::SeatGone {
                agent_id,
                workspace,
            },
            FloorEvent::Call(call) => WireFloorEvent::Call(WireFloorCall::out(call)),
            FloorEvent::CallEnded {
                call_id,
                workspace,
                outcome,
            } => WireFloorEvent::CallEnded {
                call_id,
                workspace,
                outcome: outcome.to_owned(),
            },
            FloorEvent::Parked { parked, workspace } => WireFloorEvent::Parked {
                parked: WireParked::out(parked),
                workspace,
            },
            FloorEvent::Unparked {
                unparked,
                workspace,
            } => WireFloorEvent::Unparked {
                unparked,
                workspace,
            },
        }
    }

    pub fn into_event(self) -> FloorEvent {
        match self {
            WireFloorEvent::Seat(seat) => FloorEvent::Seat(seat),
            WireFloorEvent::SeatGone {
                agent_id,
                workspace,
            } => FloorEvent::SeatGone {
                agent_id,
                workspace,
            },
            WireFloorEvent::Call(call) => FloorEvent::Call(call.into_call()),
            WireFloorEvent::CallEnded {
                call_id,
                workspace,
                outcome,
            } => FloorEvent::CallEnded {
                call_id,
                workspace,
                outcome: word(&outcome),
            },
            WireFloorEvent::Parked { parked, workspace } => FloorEvent::Parked {
                parked: parked.into_parked(),
                workspace,
            },
            WireFloorEvent::Unparked {
                unparked,
                workspace,
            } => FloorEvent::Unparked {
                unparked,
                workspace,
            },
        }
    }
}

/// A seat, wherever it is connected.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeatRef {
    pub agent_id: AgentId,
    pub name: String,
    pub workspace: Workspace,
    /// The node holding its socket.
    pub node: String,
}

/// A call, and the node that owns it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallRef {
    pub id: CallId,
    pub from: String,
    pub to: String,
    pub node: String,
}

/// [`switchboard_actors::call::CallRequest`] on the wire.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WireRequest {
    Claim {
        seat: SeatRef,
        claim: ClaimKind,
        notify: bool,
    },
    Decline {
        agent_id: AgentId,
    },
    Hangup {
        agent_id: AgentId,
    },
    SeatGone {
        agent_id: AgentId,
    },
    AgentPresence {
        agent_id: AgentId,
        presence: String,
    },
    Park {
        by: Option<AgentId>,
        reason: String,
    },
    Transfer {
        from: Option<AgentId>,
        to: SeatRef,
        warm: bool,
    },
    CompleteTransfer {
        by: AgentId,
    },
    CancelTransfer {
        by: AgentId,
    },
    SupervisorHangup,
    PlayDigits {
        agent_id: AgentId,
        digits: String,
    },
    Listen {
        listener: u64,
        port: u64,
    },
    Unlisten {
        listener: u64,
    },
    Holds,
}

/// A call's answer on the wire.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WireReply {
    Done,
    /// The claim won; the seat's audio goes to the owner's exported `port`.
    Won {
        port: u64,
    },
    Lost,
    Error {
        code: String,
        message: String,
    },
}

/// [`switchboard_actors::seat::SeatNotice`] on the wire (the `Tell`s a call sends
/// a seat are flattened into their own variants).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WireNotice {
    Ring {
        call: CallRef,
        ring: Ring,
    },
    Parked {
        call: CallRef,
        parked: WireParked,
    },
    Lot {
        calls: Vec<(CallRef, WireParked)>,
    },
    Assigned {
        call: CallRef,
        port: u64,
        reason: String,
    },
    AudioTo {
        call_id: CallId,
        port: u64,
    },
    Replaced,
    RingCancel {
        call_id: CallId,
        reason: CancelReason,
    },
    ClaimLost {
        call_id: CallId,
    },
    CallEnded {
        call_id: CallId,
        reason: String,
    },
    Released {
        call_id: CallId,
        reason: String,
    },
    Unparked(Unparked),
    TransferStatus {
        call_id: CallId,
        agent_id: AgentId,
        status: String,
    },
}

/// [`switchboard_actors::seat::Parked`] with its reason as a string.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireParked {
    pub call_id: CallId,
    pub slot: u32,
    pub from: String,
    pub to: String,
    pub parked_by: Option<AgentId>,
    pub parked_by_name: Option<String>,
    pub parked_at: String,
    pub reason: String,
}

impl WireParked {
    pub fn out(parked: Parked) -> Self {
        WireParked {
            call_id: parked.call_id,
            slot: parked.slot,
            from: parked.from,
            to: parked.to,
            parked_by: parked.parked_by,
            parked_by_name: parked.parked_by_name,
            parked_at: parked.parked_at,
            reason: parked.reason.to_owned(),
        }
    }

    pub fn into_parked(self) -> Parked {
        Parked {
            call_id: self.call_id,
            slot: self.slot,
            from: self.from,
            to: self.to,
            parked_by: self.parked_by,
            parked_by_name: self.parked_by_name,
            parked_at: self.parked_at,
            reason: word(&self.reason),
        }
    }
}

/// How many distinct words [`word`] keeps: the engine's vocabulary of reasons
/// and statuses is a few dozen; a peer (authenticated, the same build) sending
/// more is sending garbage, which reads as `other`.
const MAX_WORDS: usize = 512;

/// A reason or status received from a peer as the `&'static str` the actors use.
/// Both nodes run the same engine, so the words are the engine's own few dozen;
/// each is kept once for the life of the process.
pub fn word(text: &str) -> &'static str {
    static WORDS: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let words = WORDS.get_or_init(Mutex::default);
    let Ok(mut words) = words.lock() else {
        return "other";
    };
    if let Some(known) = words.get(text) {
        return known;
    }
    if words.len() >= MAX_WORDS {
        return "other";
    }
    let kept: &'static str = Box::leak(text.to_owned().into_boxed_str());
    words.insert(kept);
    kept
}

/// An audio frame's address on the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A port the receiving node exported (the caller's leg, a listener…).
    Port(u64),
    /// The seat of this agent connected to the receiving node.
    Seat(AgentId),
}

const PORT: u8 = 1;
const SEAT: u8 = 2;

impl Address {
    /// `frame` behind this address: `[1][port, 8 bytes BE]` or
    /// `[2][length][agent id]`, then the payload.
    pub fn frame(&self, payload: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(payload.len() + 66);
        match self {
            Address::Port(port) => {
                out.put_u8(PORT);
                out.put_u64(*port);
            }
            Address::Seat(agent) => {
                let id = agent.as_str().as_bytes();
                out.put_u8(SEAT);
                out.put_u8(id.len() as u8);
                out.put_slice(id);
            }
        }
        out.put_slice(payload);
        out.freeze()
    }
}

/// An audio frame's address as the frame holds it, borrowed: what the receiving
/// node reads for every frame, without building an [`AgentId`] (an allocation).
/// A seat's id is not checked here; it is only ever looked up among the ids of
/// this node's seats, which were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To<'a> {
    Port(u64),
    Seat(&'a str),
}

impl<'a> To<'a> {
    /// The address of `frame` and where its payload starts; `None` if malformed.
    pub fn read(frame: &'a [u8]) -> Option<(To<'a>, usize)> {
        match *frame.first()? {
            PORT if frame.len() >= 9 => {
                let port = u64::from_be_bytes(frame[1..9].try_into().ok()?);
                Some((To::Port(port), 9))
            }
            SEAT if frame.len() >= 2 => {
                let len = frame[1] as usize;
                let id = std::str::from_utf8(frame.get(2..2 + len)?).ok()?;
                Some((To::Seat(id), 2 + len))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_frames_round_trip_with_either_address() {
        let agent = AgentId::parse("agent-7").expect("an id");
        for address in [Address::Port(u64::MAX - 3), Address::Seat(agent)] {
            let frame = address.frame(&[1, 2, 3, 255]);
            let (back, at) = To::read(&frame).expect("a frame");
            match (&address, back) {
                (Address::Port(port), To::Port(read)) => assert_eq!(*port, read),
                (Address::Seat(agent), To::Seat(read)) => assert_eq!(agent.as_str(), read),
                (sent, read) => panic!("{sent:?} read back as {read:?}"),
            }
            assert_eq!(&frame[at..], &[1, 2, 3, 255]);
        }
    }

    #[test]
    fn malformed_audio_frames_are_refused() {
        // (An id of another shape is read, and found nowhere: see below.)
        for bad in [&[][..], &[1, 0, 0], &[2, 9, b'a'], &[7, 1, 2]] {
            assert!(To::read(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn the_receiving_side_reads_an_address_in_place() {
        let agent = AgentId::parse("agent-7").expect("an id");
        let frame = Address::Seat(agent).frame(&[9, 8]);
        assert_eq!(To::read(&frame), Some((To::Seat("agent-7"), 9)));
        let frame = Address::Port(42).frame(&[9, 8]);
        assert_eq!(To::read(&frame), Some((To::Port(42), 9)));
        assert_eq!(&frame[9..], &[9, 8]);
        // An id that is not an agent id's shape is read, and then found nowhere.
        assert_eq!(To::read(&[2, 1, b'A']), Some((To::Seat("A"), 3)));
        assert_eq!(To::read(&[2, 9, b'a']), None);
    }

    #[test]
    fn words_are_kept_once_and_compare_equal() {
        let a = word("transfer_failed");
        let b = word(&String::from("transfer_failed"));
        assert!(std::ptr::eq(a, b));
        assert_eq!(a, "transfer_failed");
    }

    #[test]
    fn control_messages_read_back_as_written() {
        let message = Control::Request {
            id: 9,
            call: CallId::parse("c1").expect("an id"),
            request: WireRequest::Claim {
                seat: SeatRef {
                    agent_id: AgentId::parse("a1").expect("an id"),
                    name: "Ann".into(),
                    workspace: Workspace::parse("w").expect("a workspace"),
                    node: "n2".into(),
                },
                claim: ClaimKind::Answer,
                notify: false,
            },
        };
        let text = serde_json::to_string(&message).expect("json");
        let back: Control = serde_json::from_str(&text).expect("read back");
        assert_eq!(serde_json::to_string(&back).expect("json"), text);
    }
}
