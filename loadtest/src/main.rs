//! `switchboard-loadtest`: parses the command line and runs the load test.

use std::io::IsTerminal as _;

use clap::Parser as _;
use switchboard_loadtest::LoadtestArgs;
use tracing_subscriber::EnvFilter;

#[actix_rt::main]
async fn main() -> anyhow::Result<()> {
    // The generator's own diagnostics (`RUST_LOG=debug`); the report is on stdout.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .try_init();
    switchboard_loadtest::run(LoadtestArgs::parse()).await
}
