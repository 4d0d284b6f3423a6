//! Outbound safety (issue 12): what is screened before a call is dialed and
//! reviewed after it, and the flags that come of it.
//!
//! - [`screen`]: the configured word categories matched on normalised text (an
//!   objective, a transcript), by whole words.
//! - [`review`]: the post-call review, a durable periodic job over every ended
//!   outbound call (transcript, the user's telephony pattern → flags).
//! - [`number_health`]: each pool number's figures over a window; numbers past
//!   a threshold rest (the dispatcher does not call from them).
//! - [`predial`]: the objective's screening before dialing, shared by submit and
//!   dispatch (critical refuses, lesser flags).
//! - [`velocity`]: the velocity rules counted at submit.

pub mod number_health;
pub mod predial;
pub mod review;
pub mod screen;
pub mod velocity;
