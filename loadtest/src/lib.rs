//! The load generator `switchboard-loadtest` (also run by `switchboard loadtest`,
//! which execs it). It plays Twilio and agent softphones against an engine (by
//! default one it spawns on loopback), over the engine's public protocol only (docs/protocol.md; the Twilio
//! signature comes from `switchboard-wire`), never its code: N agents with N softphones, N calls
//! placed through the signed voice webhook and bridged (call `i` is answered by
//! softphone `i`), then paced 20 ms mu-law frames both ways for a fixed time. It
//! reports caller→agent and agent→caller frame latency and loss, and the engine's
//! CPU and memory. It measures; it never fails on a figure.
//!
//! `--scenario parking` (see `parking` and docs/BENCHMARKS.md):
//! the same calls, one-way caller audio, spare agents, and every call parked by its
//! agent and unparked by an idle agent of its workspace every `--park-interval`;
//! it reports park → hold audio, unpark → audio flowing (resolved by a 1 ms burst of
//! caller frames at each unpark) and frames lost outside the switch.
//!
//! `--scenario ai` (see `ai` and docs/BENCHMARKS.md, "AI relay"): N calls routed
//! to an assistant, no agents; the engine relays each to a fake OpenAI Realtime
//! server inside the generator, which answers every appended caller frame with an
//! audio delta at once. It reports caller → OpenAI and OpenAI → caller latency and
//! loss, and the engine's CPU per relayed round trip (six socket messages).
//!
//! `--scenario submit` (see `submit` and docs/BENCHMARKS.md, "Outbound submit"):
//! no calls or sockets; `--users` users send `--requests` outbound call requests at
//! `--concurrency` and it reports requests/s, latency percentiles, the answers by
//! status and the engine's CPU. `--engine-database-url` runs the spawned engine on a
//! fresh PostgreSQL database instead of SQLite.
//!
//! `--scenario dispatch` (see `dispatch` and docs/BENCHMARKS.md, "Outbound
//! dispatch"): like `submit`, against an engine whose Twilio is a minimal fake the
//! generator serves; it reports submit → `Calls.json` latency per call and checks
//! that every accepted call is dialed exactly once.
//!
//! # Layout
//!
//! - [`LoadtestArgs`], [`run`] (here): the command; `main.rs` only parses and runs it.
//! - `controller`: the controller runs on the caller's actix runtime: it moves the
//!   workers through the `Phase`s and samples the engine from `/proc` and
//!   `/metrics`; `admin`: preparing the floor through the admin API (health, agents,
//!   numbers) and reading `/metrics`.
//! - `engine`: `EngineProcess`, by default a child `switchboard serve` on a free
//!   loopback port with a fresh SQLite database, its log kept in a file (the binary:
//!   `--engine-bin`, else the `switchboard` beside this program, else on `PATH`); or
//!   `--engine-url`.
//! - `procfs`: `/proc` sampling: CPU (user and system), per-thread CPU, RSS, the
//!   machine's busy time (to tell when something else was competing for the CPUs).
//! - `worker`: OS threads, each its own actix `System`. Call `i`, its Twilio stream
//!   and softphone `i` live on thread `i % threads`, so a call never crosses threads
//!   in the generator.
//! - `bridge`, `parking`: the softphone and Twilio stream tasks of each scenario
//!   (`ai` reuses the bridge's Twilio stream);
//! - `ai`: the fake OpenAI Realtime server of the AI scenario (one listener, its
//!   sessions on the generator threads);
//!   `peers`: what those tasks share (reading frames, the common engine messages,
//!   Twilio's marks and stop).
//! - `frame`: every 160-byte frame carries a magic, its direction, its call, a
//!   sequence number and its send time; the engine relays audio verbatim, so the
//!   receiver measures latency, loss, reordering and cross-talk.
//! - `ws`: `WsClient`, a minimal WebSocket client on `TCP_NODELAY` sockets (awc
//!   cannot set the option, and Nagle delays in the generator would show up as
//!   latency); also the fake OpenAI's server end.
//! - [`Histogram`] (`histogram`): a log-linear histogram (≤ 0.2 % error) for
//!   latencies.
//! - `report`: the JSON/text report and the targets it checks.
//! - `submit`: the submit scenario, with its own drive and report.
//! - `dispatch`: the dispatch scenario: its fake Twilio (actix-web), drive and
//!   report.

mod admin;
mod ai;
mod bridge;
mod controller;
mod dispatch;
mod engine;
mod frame;
mod histogram;
mod parking;
mod peers;
mod procfs;
mod report;
mod submit;
mod worker;
mod ws;

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

pub use self::histogram::Histogram;

use self::ai::FakeOpenAi;
use self::controller::{drive, Target};
use self::engine::EngineProcess;
use self::report::{render_text, EngineInfo};

/// 20 ms of 8 kHz mu-law.
const FRAME_BYTES: usize = 160;
const FRAME_INTERVAL: Duration = Duration::from_millis(20);
/// Marks a generator frame; the fourth byte is the direction.
const MAGIC: [u8; 3] = *b"SBL";
const CALLER_TO_AGENT: u8 = b'C';
const AGENT_TO_CALLER: u8 = b'A';
/// Pause between "every call is bridged" and the first frame.
const SETTLE: Duration = Duration::from_secs(1);
/// Frames still in flight when sending stops get this long to arrive.
const DRAIN: Duration = Duration::from_secs(2);
/// Webhook → the answering softphone's `connected`.
const CALL_SETUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Sockets get this long to close after the hang-up.
const HANGUP_TIMEOUT: Duration = Duration::from_secs(10);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_CALLS: usize = 10_000;
/// Client timeout for webhooks and the admin API under load.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Problems quoted verbatim in the report (the rest are only counted).
const MAX_NOTES: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RingMode {
    /// One number rings every available agent: N×N ring fan-out while ramping.
    All,
    /// A number per agent: each call rings only the agent that answers it.
    Own,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AudioDirection {
    Both,
    /// Twilio → engine → softphone only.
    CallerToAgent,
    /// Softphone → engine → Twilio only.
    AgentToCaller,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// N calls stay bridged to their agent for the whole run.
    Bridge,
    /// N calls, each parked by its agent and taken back by another agent of its
    /// workspace every `--park-interval` seconds (caller→agent audio only, with a
    /// burst of extra frames at every unpark; `--ring own`).
    Parking,
    /// N calls routed to an assistant, relayed by the engine to a fake OpenAI
    /// Realtime server in the generator that answers every frame with an audio delta.
    Ai,
    /// `POST /api/calls/outbound` as fast as `--concurrency` allows, from
    /// `--users` users: outbound submit throughput and latency.
    Submit,
    /// Outbound calls submitted at `--concurrency` against a fake Twilio the
    /// generator serves: submit → `Calls.json` latency, no double dial.
    Dispatch,
}

/// The options of `--scenario parking` (boxed: they would make `LoadtestArgs`
/// the one large variant of the command enum).
#[derive(Debug, clap::Args)]
pub struct ParkingArgs {
    /// Parking: seconds between two parks of the same call (the first at a random
    /// point of the first interval, then ±10 % each time).
    #[arg(long, default_value_t = 3.0)]
    pub park_interval: f64,
    /// Parking: idle agents besides the N answering ones (default N/2), spread over
    /// the workspaces.
    #[arg(long)]
    pub spare_agents: Option<usize>,
    /// Parking: calls per workspace (`parked`/`unparked` go to every seat of it).
    #[arg(long, default_value_t = 20)]
    pub workspace_calls: usize,
}

#[derive(Debug, clap::Parser)]
#[command(
    name = "switchboard-loadtest",
    version,
    about = "Play Twilio and softphones against a switchboard engine and report latency, loss, CPU and memory."
)]
pub struct LoadtestArgs {
    /// What the calls do once bridged.
    #[arg(long, value_enum, default_value_t = Scenario::Bridge)]
    pub scenario: Scenario,
    #[command(flatten)]
    pub parking: Box<ParkingArgs>,
    /// Bridged calls to hold at once (as many agents and softphones).
    #[arg(long, default_value_t = 100)]
    pub calls: usize,
    /// Seconds of steady bridged audio.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Calls placed per second at most while ramping up (0: as fast as they bridge).
    #[arg(long, default_value_t = 0.0)]
    pub ramp_per_sec: f64,
    /// Calls being set up at once while ramping up.
    #[arg(long, default_value_t = 8)]
    pub ramp_concurrency: usize,
    /// Which agents each call rings.
    #[arg(long, value_enum, default_value_t = RingMode::All)]
    pub ring: RingMode,
    /// Which way audio flows, at 50 frames/s per call and direction.
    #[arg(long, value_enum, default_value_t = AudioDirection::Both)]
    pub audio: AudioDirection,
    /// Same as `--audio caller-to-agent`.
    #[arg(long, conflicts_with = "audio")]
    pub one_way: bool,
    /// Generator threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// HTTP worker threads of the spawned engine (0: the engine's default).
    #[arg(long, default_value_t = 0)]
    pub engine_workers: usize,
    /// `--scenario ai`: the spawned engine's `openai.mark_interval_ms` (unset: its
    /// default, a Twilio mark after every delta).
    #[arg(long)]
    pub mark_interval_ms: Option<u64>,
    /// Pin the spawned engine to these CPUs (`taskset -c` list, e.g. `0`); pin the
    /// generator itself by starting it under `taskset -c 1`.
    #[arg(long)]
    pub engine_cpus: Option<String>,
    /// The `switchboard` binary to spawn as the engine (default: the one beside this
    /// program, then the first on PATH; `switchboard loadtest` sets it to itself).
    #[arg(long, env = "SWITCHBOARD_ENGINE_BIN")]
    pub engine_bin: Option<PathBuf>,
    /// Drive an engine that is already running at this URL, on this machine or
    /// another (its public URL, which Twilio signatures are computed over; plain
    /// `http://`) instead of spawning one.
    #[arg(long)]
    pub engine_url: Option<String>,
    /// PID of that engine, for its CPU and memory figures.
    #[arg(long, requires = "engine_url")]
    pub engine_pid: Option<u32>,
    /// Admin token of the engine given by `--engine-url`.
    #[arg(long, env = "SWITCHBOARD_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Twilio auth token of the engine given by `--engine-url`.
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub twilio_token: Option<String>,
    /// Where the spawned engine's log goes (default: the run's temporary directory).
    #[arg(long)]
    pub engine_log: Option<PathBuf>,
    /// `--scenario submit` and `dispatch`: outbound call requests to send.
    #[arg(long, default_value_t = 5000)]
    pub requests: usize,
    /// `--scenario submit` and `dispatch`: requests in flight at once (and the client's connection
    /// pool limit).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// `--scenario submit` and `dispatch`: users the requests are spread over (round-robin).
    #[arg(long, default_value_t = 100)]
    pub users: usize,
    /// `--scenario dispatch`: submits per second, paced (0: as fast as
    /// `--concurrency` allows).
    #[arg(long, default_value_t = 0.0)]
    pub submit_rate: f64,
    /// Run the spawned engine on PostgreSQL: a server URL
    /// (`postgres://postgres@127.0.0.1:5432/postgres`) on which a fresh database is
    /// created with `psql` for the run and dropped after it (default: SQLite).
    #[arg(long, conflicts_with = "engine_url")]
    pub engine_database_url: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bytes` random bytes from the OS, in hex: tokens and names of a run.
fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut raw = vec![0u8; bytes];
    getrandom::getrandom(&mut raw).context("the OS random source")?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

// ---- entry point ---------------------------------------------------------------

pub async fn run(args: LoadtestArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=MAX_CALLS).contains(&args.calls),
        "--calls must be between 1 and {MAX_CALLS}"
    );
    anyhow::ensure!(
        (1..=3600).contains(&args.seconds),
        "--seconds must be between 1 and 3600"
    );
    anyhow::ensure!(
        args.ramp_per_sec >= 0.0 && args.ramp_per_sec.is_finite(),
        "--ramp-per-sec must be ≥ 0"
    );
    anyhow::ensure!(
        args.parking.park_interval.is_finite()
            && (0.2..=600.0).contains(&args.parking.park_interval),
        "--park-interval must be between 0.2 and 600 seconds"
    );
    anyhow::ensure!(
        args.calls + args.parking.spare_agents.unwrap_or(0) <= MAX_CALLS,
        "--calls plus --spare-agents must be at most {MAX_CALLS}"
    );
    if args.scenario == Scenario::Submit {
        return run_submit(args).await;
    }
    if args.scenario == Scenario::Dispatch {
        dispatch::check_args(&args)?;
        let report = dispatch::run(&args).await?;
        return print_report(args.json, &report, || dispatch::render_text(&report));
    }
    let fake = match args.scenario {
        Scenario::Ai => {
            anyhow::ensure!(
                args.engine_url.is_none(),
                "--scenario ai spawns its engine (it points the engine at its fake OpenAI)"
            );
            Some(FakeOpenAi::bind()?)
        }
        _ => None,
    };
    let (mut process, target) = match &args.engine_url {
        None => {
            let env = match &fake {
                Some(fake) => vec![
                    ("OPENAI_REALTIME_URL", fake.url()?),
                    ("OPENAI_API_KEY", fake.api_key.clone()),
                    ("SWITCHBOARD_SUMMARY_PROVIDER", "off".to_owned()),
                ],
                None => Vec::new(),
            };
            let (process, target) = EngineProcess::spawn(&args, &env, "")?;
            (Some(process), target)
        }
        Some(url) => {
            // Any engine this machine reaches over plain HTTP: this one or a
            // remote node. The generator's own WebSocket client speaks `ws://`
            // only (no TLS on the measured path), hence no `https://`.
            let host = url
                .strip_prefix("http://")
                .and_then(|rest| rest.split(['/', ':']).next())
                .unwrap_or_default();
            anyhow::ensure!(
                !host.is_empty(),
                "--engine-url must be http://HOST:PORT (plain HTTP: the load generator's \
                 WebSocket client speaks ws:// only), not {url:?}"
            );
            let target = Target {
                base: url.trim_end_matches('/').to_owned(),
                admin_token: args
                    .admin_token
                    .clone()
                    .context("--engine-url needs --admin-token (or SWITCHBOARD_ADMIN_TOKEN)")?,
                twilio_token: args
                    .twilio_token
                    .clone()
                    .context("--engine-url needs --twilio-token (or TWILIO_AUTH_TOKEN)")?,
            };
            (None, target)
        }
    };
    let pid = process.as_ref().map(|p| p.pid).or(args.engine_pid);
    let outcome = drive(&args, &target, pid, process.as_mut(), fake).await;
    let engine_info = match process.as_mut() {
        Some(process) => process.finish(),
        None => EngineInfo::external(pid),
    };
    let mut report = match outcome {
        Ok(report) => report,
        Err(err) => {
            let log = engine_info.log.as_deref().unwrap_or("-");
            let problems = engine_info.log_problems.join("\n  ");
            return Err(err.context(format!(
                "the load test stopped; engine {} (log {log}: {} warnings, {} errors)\n  {problems}",
                engine_info.exit.as_deref().unwrap_or("left running"),
                engine_info.log_warnings,
                engine_info.log_errors,
            )));
        }
    };
    report.engine = engine_info;
    print_report(args.json, &report, || render_text(&report))
}

/// The report on stdout: as JSON with `--json`, else as `text` renders it.
fn print_report(
    json: bool,
    report: &impl serde::Serialize,
    text: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, report)?;
        writeln!(out)?;
    } else {
        out.write_all(text().as_bytes())?;
    }
    Ok(())
}

/// `--scenario submit`: its own floor, drive and report (see `submit`).
async fn run_submit(args: LoadtestArgs) -> anyhow::Result<()> {
    submit::check_args(&args)?;
    let (mut process, target) = match &args.engine_url {
        None => {
            let (process, target) = EngineProcess::spawn(&args, &[], submit::ENGINE_TOML)?;
            (Some(process), target)
        }
        Some(url) => (
            None,
            Target {
                base: url.trim_end_matches('/').to_owned(),
                admin_token: args
                    .admin_token
                    .clone()
                    .context("--engine-url needs --admin-token (or SWITCHBOARD_ADMIN_TOKEN)")?,
                twilio_token: args.twilio_token.clone().unwrap_or_default(),
            },
        ),
    };
    let pid = process.as_ref().map(|p| p.pid).or(args.engine_pid);
    let outcome = submit::drive(&args, &target, pid, process.as_mut()).await;
    let engine_info = match process.as_mut() {
        Some(process) => process.finish(),
        None => EngineInfo::external(pid),
    };
    let mut report = outcome.with_context(|| {
        format!(
            "the submit load test stopped; engine {} (log {})\n  {}",
            engine_info.exit.as_deref().unwrap_or("left running"),
            engine_info.log.as_deref().unwrap_or("-"),
            engine_info.log_problems.join("\n  ")
        )
    })?;
    report.engine = engine_info;
    print_report(args.json, &report, || submit::render_text(&report))
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser as _};

    use super::*;

    #[test]
    fn the_options_of_the_benchmarks_parse() {
        let args = LoadtestArgs::try_parse_from([
            "switchboard-loadtest",
            "--scenario",
            "parking",
            "--calls",
            "1000",
            "--park-interval",
            "10",
            "--engine-cpus",
            "0",
            "--engine-bin",
            "/opt/switchboard",
        ])
        .expect("parses");
        assert_eq!(args.scenario, Scenario::Parking);
        assert_eq!(args.calls, 1000);
        assert_eq!(args.parking.park_interval, 10.0);
        assert_eq!(args.engine_bin, Some(PathBuf::from("/opt/switchboard")));
        LoadtestArgs::command().debug_assert();
    }
}
