//! The `switchboard` command line.
//!
//! # Layout
//!
//! - this module: the commands ([`Cli`], [`Command`]).
//! - [`numbers`]: `switchboard numbers …`, a client of a running engine.
//! - [`render`]: how `numbers` shows what the engine answers (tables, CSV, JSON,
//!   the export directory).

pub mod numbers;
pub mod render;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about = "A real-time call engine")]
pub struct Cli {
    /// A TOML file layered over the built-in defaults (environment variables win).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the engine.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Play Twilio and softphones against a fresh engine and report latency, loss,
    /// CPU and memory.
    Loadtest(crate::loadtest::LoadtestArgs),
    /// The phone-number directory of a running engine: list, show, agent-numbers,
    /// unassigned, sync, validate, report, diff, export, route, migrate, rollback.
    Numbers(numbers::NumbersArgs),
}
