//! What the switchboard engine and the programs that talk to it share on the wire,
//! and nothing else: no engine state, no engine types.
//!
//! # Layout
//!
//! - [`signature`]: Twilio's `X-Twilio-Signature`, signed (by the load generator and
//!   the tests, playing Twilio) and verified in constant time (by the engine).
//!
//! The socket and REST messages themselves are described in docs/protocol.md; a
//! client parses them from that public contract, not from engine code.

pub mod signature;
