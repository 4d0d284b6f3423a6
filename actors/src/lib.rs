//! switchboard's actors: every call, agent seat and phone number is an actor, and so
//! are the singletons that tie them together. Nothing here knows HTTP: sockets reach
//! these actors as streams of decoded input and outboxes of output.
//!
//! # Layout
//!
//! - [`machine`]: the call state machine, pure and synchronous.
//! - [`call`]: `CallActor`, one per call, its files split by concern; owns the
//!   claim (single winner) and decides where the caller's audio goes.
//! - [`seat`]: `SeatActor`, one per connected softphone.
//! - [`leg`]: `MediaLeg`, the caller's Twilio media stream.
//! - [`coordinator`]: `RingCoordinator`, the floor (seats, presence, busy) and the
//!   choice of whom to ring.
//! - [`number`]: `NumberActor` per phone number and the `NumberBook`.
//! - [`registry`]: `CallRegistry`, live calls by id and by Twilio CallSid.
//! - [`parking`]: `ParkingLot`, parked calls by workspace and slot.
//! - [`supervisor`]: `SupervisorActor`, one per supervisor console.
//! - [`mixer`]: both sides of a call mixed for listening supervisors.
//! - [`outbox`]: the bounded, drop-oldest outgoing queue of every socket.
//! - [`framebuf`]: the reused buffer frames are decoded and rendered into.
//! - [`journal`]: what the actors hand to durable storage.
//! - [`audio`]: mu-law, tones, the WAV container.
//! - [`dtmf`]: digits as in-band DTMF tones (Q.23), in mu-law frames.
//! - [`assistant`]: the seam to a call's AI assistant (which lives in the engine crate).

pub mod assistant;
pub mod audio;
pub mod call;
pub mod coordinator;
pub mod dtmf;
pub mod error;
pub mod framebuf;
pub mod ids;
pub mod journal;
pub mod leg;
pub mod machine;
pub mod mixer;
pub mod number;
pub mod outbox;
pub mod parking;
pub mod registry;
pub mod seat;
pub mod stats;
pub mod supervisor;

pub use error::EngineError;
pub use ids::{AgentId, AssistantId, CallId, IdError, UserId, Workspace};
