//! Outbound calls on a user's behalf (issue 11): the parts that decide whether,
//! and when, a call may be placed.
//!
//! # Module map
//!
//! - [`clock`]: the injected clock the gates read "now" from (the system clock in
//!   the engine, a [`clock::ManualClock`] in tests).
//! - [`zones`]: the callee's time zones from the number (libphonenumber's prefix →
//!   time-zone map, shipped in `assets/phone_timezones.txt`).
//! - [`hours`]: the calling-hours gate: the configured local window intersected
//!   across the callee's zones, open now or deferred to the next allowed instant.

pub mod clock;
pub mod hours;
pub mod zones;
