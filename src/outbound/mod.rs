//! Outbound calls on a user's behalf (issue 11): the parts that decide whether,
//! and when, a call may be placed.
//!
//! # Module map
//!
//! - [`clock`]: the injected clock the gates read "now" from (the system clock in
//!   the engine, a [`clock::ManualClock`] in tests).

pub mod clock;
