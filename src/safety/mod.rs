//! Outbound safety (issue 12): what is screened before a call is dialed and
//! reviewed after it, and the flags that come of it.
//!
//! - [`screen`]: the configured word categories matched on normalised text (an
//!   objective, a transcript), by whole words.
//! - [`predial`]: the objective's screening before dialing, shared by submit and
//!   dispatch (critical refuses, lesser flags).
//! - [`velocity`]: the velocity rules counted at submit.

pub mod predial;
pub mod screen;
pub mod velocity;
