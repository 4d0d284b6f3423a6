//! The phone-number feature: what the engine answers about its numbers across
//! workspaces.
//!
//! # Layout
//!
//! - [`model`]: the JSON the engine serves and the command line reads
//!   ([`model::DirectoryEntry`], validation findings, diffs).
//! - [`checks`]: validation (numbers without provider ids, assignments to agents
//!   that no longer exist, duplicates across providers, unparseable numbers,
//!   staging numbers missing from production) and the diff of two workspaces;
//!   pure functions.

pub mod checks;
pub mod model;
