//! The users feature: who asks switchboard to place calls on their behalf, on
//! which plan, and the limits that follow from it.
//!
//! # Layout
//!
//! - [`limits`]: a user's effective limits, the plan's merged with the user's
//!   overrides: the one function quotas, budget and call length read.
//! - [`accounts`]: creating a user (API key and webhook secret made here, the key
//!   stored hashed and shown once) and changing one (plan, overrides, status).
//!
//! The records are `crate::store::users`; the routes `crate::api::users`; the
//! do-not-call list is `crate::store::dnc` with its routes in `crate::api::dnc`.

pub mod accounts;
pub mod limits;

pub use accounts::{create_user, update_user, CreatedUser, UserError};
pub use limits::{effective_limits, UnknownPlan};
