//! Outbound calls placed on a user's behalf (issue 11).
//!
//! # Layout
//!
//! - [`request`]: the body of `POST /api/calls/outbound`, parsed once into an
//!   `OutboundRequest` (the number, the purpose, the objective, the signed
//!   attestation, the schedule…); a refusal names its field.
//! - [`consent`]: the attestation's versioned wording and its hash, the consent
//!   record made from a signed attestation (stored by `store::consent`), and the
//!   client address it notes.

pub mod consent;
pub mod request;
