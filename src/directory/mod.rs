//! The number directory: what the engine answers about its numbers across
//! workspaces, and the `switchboard numbers` command line that asks it.
//!
//! # Layout
//!
//! - [`model`]: the JSON the engine serves and the command line reads
//!   ([`model::DirectoryEntry`], validation findings, diffs).
//! - [`checks`]: validation (numbers without provider ids, assignments to agents
//!   that no longer exist, duplicates across providers, unparseable numbers,
//!   staging numbers missing from production) and the diff of two workspaces;
//!   pure functions.
//! - [`render`]: tables, CSV, JSON and the export directory.
//! - [`cli`]: the `numbers` subcommands, a client of a running engine
//!   (`SWITCHBOARD_URL`, `SWITCHBOARD_ADMIN_TOKEN`).

pub mod checks;
pub mod cli;
pub mod model;
pub mod render;
