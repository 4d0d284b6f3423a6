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
//! `--scenario claim` (see `claim` and docs/BENCHMARKS.md, "Cluster mode"): the
//! claim path of a cluster: `--seats` seats spread over `--engine-url` and every
//! `--agent-url`, `--rounds` calls owned by `--engine-url`, three seats answering
//! each at once; it reports answer → `connected` and answer → the last
//! `ring_cancel`.
//!
//! Cluster mode (issue 16): `--agent-url` puts the bridge scenario's softphones on
//! another node than the calls (whose webhooks, streams and admin API stay on
//! `--engine-url`), and `--node-pid` adds the other nodes' CPU to the engine's.
//!
//! `--engine-url` drives an engine on any host (admin and Twilio tokens given); its
//! CPU, RSS and context switches are read from `/proc` only when it is spawned or
//! named by `--engine-pid`, and are otherwise reported "not measured (remote
//! engine)". `--peer-url` (with `--scenario ai`) plays plain Twilio Media Streams to
//! a relay that is not switchboard (Twilio's Node sample), no webhook, no signature,
//! with the fake OpenAI at `--fake-openai-listen`. `--engine-cpu`/`--generator-cpu`
//! pin the two; `--find-capacity` steps the calls up and bisects for the most a run
//! carries with p99 added latency under `--capacity-p99-ms` and no frame lost.
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
//! - `options`: `EngineUrl`, `PeerUrl` and the CPU options, parsed and checked.
//! - `capacity`: `--find-capacity`, its steps and report.
//! - `e2e_tests`: the generator against a real engine on loopback (`--engine-url`)
//!   and against a tiny in-test Media Streams relay (`--peer-url`).
//! - `submit`: the submit scenario, with its own drive and report.
//! - `dispatch`: the dispatch scenario: its fake Twilio (actix-web), drive and
//!   report.
//! - `claim`: the claim scenario: its seats, rounds and report.

mod admin;
mod ai;
mod bridge;
mod capacity;
mod claim;
mod controller;
mod dispatch;
#[cfg(test)]
mod e2e_tests;
mod engine;
mod frame;
mod histogram;
mod options;
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
pub use self::options::{EngineUrl, PeerUrl};

use self::ai::FakeOpenAi;
use self::controller::{drive, Target};
use self::engine::EngineProcess;
use self::report::{render_text, EngineInfo, Report};

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
    /// `--rounds` calls, one at a time, each ringing `--seats` seats (spread over
    /// `--engine-url` and the `--agent-url` nodes); one seat answers: answer →
    /// `connected` and answer → the last seat's `ring_cancel`.
    Claim,
}

/// The options of `--scenario parking` (boxed: they would make `LoadtestArgs`
/// the one large variant of the command enum).
#[derive(Debug, Clone, clap::Args)]
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

#[derive(Debug, Clone, clap::Parser)]
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
    /// Bridged calls to hold at once (as many agents and softphones); with
    /// `--find-capacity`, the first step.
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
    /// Pin the spawned engine to this CPU (`taskset -c N` at its start, so that every
    /// engine thread inherits it). A running engine or peer relay is pinned by
    /// whoever starts it.
    #[arg(long, alias = "engine-cpus", value_parser = options::parse_cpu)]
    pub engine_cpu: Option<usize>,
    /// Pin this generator, every thread of it, to this CPU (another than the engine's).
    #[arg(long, value_parser = options::parse_cpu)]
    pub generator_cpu: Option<usize>,
    /// The `switchboard` binary to spawn as the engine (default: the one beside this
    /// program, then the first on PATH; `switchboard loadtest` sets it to itself).
    #[arg(long, env = "SWITCHBOARD_ENGINE_BIN")]
    pub engine_bin: Option<PathBuf>,
    /// Drive an engine that is already running at this URL, on this machine or
    /// another (its public URL, which Twilio signatures are computed over; plain
    /// `http://HOST:PORT`) instead of spawning one. Its CPU, memory and context
    /// switches are measured only with `--engine-pid`.
    #[arg(long, value_parser = EngineUrl::parse)]
    pub engine_url: Option<EngineUrl>,
    /// PID of the engine at `--engine-url` (or of the relay at `--peer-url`) when it
    /// runs on this machine: its CPU, RSS and context switches from `/proc`.
    #[arg(long)]
    pub engine_pid: Option<u32>,
    /// Admin token of the engine given by `--engine-url`.
    #[arg(long, env = "SWITCHBOARD_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Twilio auth token of the engine given by `--engine-url`.
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub twilio_token: Option<String>,
    /// Cluster mode (issue 16): the softphones connect to this node of the
    /// `--engine-url` engine's cluster instead (repeat it to spread them, softphone
    /// `i` on the `i mod n`-th); the webhooks, the media streams and the admin API
    /// stay on `--engine-url` (the nodes share one database).
    #[arg(long, value_parser = EngineUrl::parse, requires = "engine_url")]
    pub agent_url: Vec<EngineUrl>,
    /// Cluster mode: PID of another node of the cluster on this machine (repeat
    /// it); its CPU over the measured window is added to `--engine-pid`'s in the
    /// cluster's CPU per frame.
    #[arg(long, requires = "engine_pid")]
    pub node_pid: Vec<u32>,
    /// `--scenario claim`: the seats, spread over `--engine-url` and every
    /// `--agent-url` in turn.
    #[arg(long, default_value_t = 50)]
    pub seats: usize,
    /// `--scenario claim`: calls rung to every seat, one after the other.
    #[arg(long, default_value_t = 200)]
    pub rounds: usize,
    /// `--scenario ai` against a relay that is not switchboard: the plain Twilio Media
    /// Streams WebSocket it serves (`ws://HOST:PORT/media-stream` for Twilio's Node
    /// sample): connect, `connected`, `start`, `media` every 20 ms, marks echoed; no
    /// webhook, no signature. The relay must use the fake OpenAI at
    /// `--fake-openai-listen` with `--fake-openai-key`.
    #[arg(long, value_parser = PeerUrl::parse, conflicts_with_all = ["engine_url", "engine_database_url"])]
    pub peer_url: Option<PeerUrl>,
    /// `--scenario ai`: where the fake OpenAI Realtime server listens (default: a free
    /// loopback port, given to the spawned engine). Needed with `--engine-url` and
    /// `--peer-url`: point the engine's `OPENAI_REALTIME_URL` (or the peer's OpenAI
    /// URL) at `ws://THIS_ADDRESS/v1/realtime`.
    #[arg(long)]
    pub fake_openai_listen: Option<std::net::SocketAddr>,
    /// `--scenario ai`: the bearer key the fake OpenAI requires (default: random, given
    /// to the spawned engine); the running engine's or peer's `OPENAI_API_KEY`.
    #[arg(long, env = "LOADTEST_FAKE_OPENAI_KEY", hide_env_values = true)]
    pub fake_openai_key: Option<String>,
    /// Step mode: run `--seconds` of audio at `--calls`, then at twice as many, …,
    /// then bisect, for the most concurrent calls with p99 added latency under
    /// `--capacity-p99-ms` and no frame lost. With `--engine-cpu` that is the calls
    /// one core carries.
    #[arg(long)]
    pub find_capacity: bool,
    /// `--find-capacity`: the p99 added latency a step must stay under, both ways.
    #[arg(long, default_value_t = 20.0)]
    pub capacity_p99_ms: f64,
    /// `--find-capacity`: the largest step tried.
    #[arg(long, default_value_t = 4000)]
    pub capacity_max_calls: usize,
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

/// The options' checks that need more than one option (each value is parsed at the
/// edge by clap); every refusal names the option.
pub fn check_args(args: &LoadtestArgs) -> anyhow::Result<()> {
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
    let spawned = args.engine_url.is_none() && args.peer_url.is_none();
    options::check_cpus(
        args.engine_cpu,
        args.generator_cpu,
        spawned,
        &options::usable_cpus(),
    )?;
    anyhow::ensure!(
        args.engine_pid.is_none() || !spawned,
        "--engine-pid names a running engine: give --engine-url (or --peer-url) with it"
    );
    for (flag, pid) in args
        .engine_pid
        .iter()
        .map(|pid| ("--engine-pid", pid))
        .chain(args.node_pid.iter().map(|pid| ("--node-pid", pid)))
    {
        anyhow::ensure!(
            std::path::Path::new(&format!("/proc/{pid}/stat")).exists(),
            "{flag} {pid}: no such process on this machine"
        );
    }
    anyhow::ensure!(
        args.agent_url.is_empty() || matches!(args.scenario, Scenario::Bridge | Scenario::Claim),
        "--agent-url puts softphones on other nodes: for --scenario bridge or claim"
    );
    if args.scenario == Scenario::Claim {
        anyhow::ensure!(
            args.engine_url.is_some(),
            "--scenario claim drives a running engine (or cluster): give --engine-url"
        );
        anyhow::ensure!(
            (2..=MAX_CALLS).contains(&args.seats),
            "--seats must be between 2 and {MAX_CALLS}"
        );
        anyhow::ensure!(
            (1..=100_000).contains(&args.rounds),
            "--rounds must be between 1 and 100000"
        );
    }
    let ai = args.scenario == Scenario::Ai;
    anyhow::ensure!(
        args.peer_url.is_none() || ai,
        "--peer-url measures an AI relay that is not switchboard: add --scenario ai"
    );
    anyhow::ensure!(
        ai || (args.fake_openai_listen.is_none() && args.fake_openai_key.is_none()),
        "--fake-openai-listen and --fake-openai-key are for --scenario ai"
    );
    if ai && !spawned {
        anyhow::ensure!(
            args.fake_openai_listen.is_some() && args.fake_openai_key.is_some(),
            "--scenario ai with {} needs --fake-openai-listen ADDR:PORT and --fake-openai-key KEY \
             (the running relay's OpenAI URL must be ws://ADDR:PORT/v1/realtime and its \
             OPENAI_API_KEY that key)",
            if args.peer_url.is_some() {
                "--peer-url"
            } else {
                "--engine-url"
            }
        );
    }
    if args.find_capacity {
        anyhow::ensure!(
            matches!(args.scenario, Scenario::Bridge | Scenario::Ai),
            "--find-capacity steps the bridge and ai scenarios only"
        );
        anyhow::ensure!(
            args.capacity_p99_ms.is_finite() && args.capacity_p99_ms > 0.0,
            "--capacity-p99-ms must be a positive number of milliseconds"
        );
        anyhow::ensure!(
            (args.calls..=MAX_CALLS).contains(&args.capacity_max_calls),
            "--capacity-max-calls must be between --calls ({}) and {MAX_CALLS}",
            args.calls
        );
    }
    Ok(())
}

pub async fn run(args: LoadtestArgs) -> anyhow::Result<()> {
    check_args(&args)?;
    if let Some(cpu) = args.generator_cpu {
        // The runtime is this one thread so far: every generator thread started from
        // here on inherits the pin.
        options::pin_current_thread(cpu)?;
    }
    if args.scenario == Scenario::Submit {
        return run_submit(args).await;
    }
    if args.scenario == Scenario::Claim {
        let report = claim::run(&args).await?;
        return print_report(args.json, &report, || claim::render_text(&report));
    }
    if args.scenario == Scenario::Dispatch {
        dispatch::check_args(&args)?;
        let report = dispatch::run(&args).await?;
        return print_report(args.json, &report, || dispatch::render_text(&report));
    }
    if args.find_capacity {
        let report = capacity::find(&args).await?;
        return print_report(args.json, &report, || capacity::render_text(&report));
    }
    let report = measure(&args).await?;
    print_report(args.json, &report, || render_text(&report))
}

/// One run of the bridge, parking or AI scenario against the engine (spawned,
/// running at `--engine-url`) or the relay at `--peer-url`, and its report.
async fn measure(args: &LoadtestArgs) -> anyhow::Result<Report> {
    let fake = match args.scenario {
        Scenario::Ai => Some(FakeOpenAi::bind(
            args.fake_openai_listen,
            args.fake_openai_key.clone(),
        )?),
        _ => None,
    };
    let (mut process, target) = match (&args.engine_url, &args.peer_url) {
        (None, None) => {
            let env = match &fake {
                Some(fake) => vec![
                    ("OPENAI_REALTIME_URL", fake.url()?),
                    ("OPENAI_API_KEY", fake.api_key.clone()),
                    ("SWITCHBOARD_SUMMARY_PROVIDER", "off".to_owned()),
                ],
                None => Vec::new(),
            };
            let (process, target) = EngineProcess::spawn(args, &env, "")?;
            (Some(process), target)
        }
        (Some(url), _) => (None, Target::running(url, args)?),
        (None, Some(peer)) => (None, Target::peer(peer)),
    };
    let pid = process.as_ref().map(|p| p.pid).or(args.engine_pid);
    let outcome = drive(args, &target, pid, process.as_mut(), fake).await;
    let engine_info = match process.as_mut() {
        Some(process) => process.finish(),
        None => EngineInfo::external(pid, target.peer.is_some()),
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
    Ok(report)
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
        Some(url) => (None, Target::running(url, &args)?),
    };
    let pid = process.as_ref().map(|p| p.pid).or(args.engine_pid);
    let outcome = submit::drive(&args, &target, pid, process.as_mut()).await;
    let engine_info = match process.as_mut() {
        Some(process) => process.finish(),
        None => EngineInfo::external(pid, false),
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
