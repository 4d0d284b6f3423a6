//! The `switchboard` command line, and `switchboard loadtest`: an alias that execs
//! the load generator, a program of its own (`switchboard-loadtest`).
//!
//! # Layout
//!
//! - this module: the commands ([`Cli`], [`Command`]).
//! - [`numbers`]: `switchboard numbers …`, a client of a running engine.
//! - [`render`]: how `numbers` shows what the engine answers (tables, CSV, JSON,
//!   the export directory).

pub mod numbers;
pub mod render;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The load generator's binary, looked for beside this one, then on `PATH`.
const LOADTEST_BIN: &str = "switchboard-loadtest";
/// Tells the load generator which engine binary to spawn: this one.
const ENGINE_BIN_ENV: &str = "SWITCHBOARD_ENGINE_BIN";

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
    /// CPU and memory (runs `switchboard-loadtest`; `--help` lists its options).
    #[command(disable_help_flag = true)]
    Loadtest(LoadtestAlias),
    /// The phone-number directory of a running engine: list, show, agent-numbers,
    /// unassigned, sync, validate, report, diff, export, route, migrate, rollback.
    Numbers(numbers::NumbersArgs),
}

/// The arguments of `switchboard loadtest`, passed on untouched.
#[derive(Debug, clap::Args)]
pub struct LoadtestAlias {
    /// The load generator's options (`switchboard-loadtest --help`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<OsString>,
}

/// Replaces this process with `switchboard-loadtest ARGS…` (the one beside this
/// binary, where cargo builds it, else the OS finds it on `PATH`), telling it to
/// spawn this binary as its engine (unless `SWITCHBOARD_ENGINE_BIN` already says
/// which). Returns only when the load generator cannot be started.
pub fn exec_loadtest(alias: LoadtestAlias) -> anyhow::Result<()> {
    let file = format!("{LOADTEST_BIN}{}", std::env::consts::EXE_SUFFIX);
    let exe = std::env::current_exe().ok();
    let program = exe
        .as_deref()
        .and_then(|exe| Some(exe.parent()?.join(&file)))
        .filter(|beside| beside.is_file())
        .unwrap_or_else(|| PathBuf::from(&file));
    let mut command = std::process::Command::new(&program);
    command.args(&alias.args);
    if let (None, Some(exe)) = (std::env::var_os(ENGINE_BIN_ENV), exe) {
        command.env(ENGINE_BIN_ENV, exe);
    }
    let failed = |err| {
        anyhow::Error::new(err).context(format!(
            "could not run the load generator {}: it is built beside `switchboard` by \
             `cargo build --release --workspace` (or `-p switchboard-loadtest`)",
            program.display()
        ))
    };
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        Err(failed(command.exec()))
    }
    #[cfg(not(unix))]
    {
        let status = command.status().map_err(failed)?;
        std::process::exit(status.code().unwrap_or(1))
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn loadtest_passes_every_argument_on_untouched() {
        let cli = Cli::try_parse_from([
            "switchboard",
            "loadtest",
            "--scenario",
            "ai",
            "--calls",
            "100",
            "--help",
        ])
        .expect("parses");
        let Command::Loadtest(alias) = cli.command else {
            panic!("not the loadtest alias: {:?}", cli.command);
        };
        assert_eq!(
            alias.args,
            ["--scenario", "ai", "--calls", "100", "--help"].map(OsString::from)
        );
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
