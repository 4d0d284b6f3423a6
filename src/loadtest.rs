//! The load generator behind `switchboard loadtest`. It plays Twilio and agent
//! softphones against an engine on loopback: N agents with N softphones, N calls
//! placed through the signed voice webhook and bridged (call `i` is answered by
//! softphone `i`), then paced 20 ms mu-law frames both ways for a fixed time. It
//! reports caller→agent and agent→caller frame latency and loss, and the engine's
//! CPU and memory. It measures; it never fails on a figure.
//!
//! `--scenario parking` (see "the parking scenario" below and docs/BENCHMARKS.md):
//! the same calls, one-way caller audio, spare agents, and every call parked by its
//! agent and unparked by an idle agent of its workspace every `--park-interval`;
//! it reports park → hold audio, unpark → audio flowing (resolved by a 1 ms burst of
//! caller frames at each unpark) and frames lost outside the switch.
//!
//! # Layout
//!
//! - [`LoadtestArgs`], [`run`]: the command. The controller runs on the caller's
//!   actix runtime: it prepares the floor through the admin API, moves the workers
//!   through the `Phase`s and samples the engine from `/proc` and `/metrics`.
//! - `EngineProcess`: by default a child `switchboard serve` on a free loopback port
//!   with a fresh SQLite database, its log kept in a file; or `--engine-url`.
//! - workers: OS threads, each its own actix `System`. Call `i`, its Twilio stream
//!   and softphone `i` live on thread `i % threads`, so a call never crosses threads
//!   in the generator.
//! - frames: every 160-byte frame carries a magic, its direction, its call, a
//!   sequence number and its send time; the engine relays audio verbatim, so the
//!   receiver measures latency, loss, reordering and cross-talk.
//! - `WsClient`: a minimal WebSocket client on `TCP_NODELAY` sockets (awc cannot
//!   set the option, and Nagle delays in the generator would show up as latency).
//! - [`Histogram`]: a log-linear histogram (≤ 0.2 % error) for latencies.
//! - `/proc` sampling: CPU (user and system), per-thread CPU, RSS, the machine's
//!   busy time (to tell when something else was competing for the CPUs).

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha1::{Digest as _, Sha1};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{mpsc, oneshot, watch};

use crate::twilio::signature::sign;

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

#[derive(Debug, clap::Args)]
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
    /// Pin the spawned engine to these CPUs (`taskset -c` list, e.g. `0`); pin the
    /// generator itself by starting it under `taskset -c 1`.
    #[arg(long)]
    pub engine_cpus: Option<String>,
    /// Drive an engine that is already running at this URL (its public URL, which
    /// Twilio signatures are computed over) instead of spawning one.
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
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
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
    let (mut process, target) = match &args.engine_url {
        None => {
            let (process, target) = EngineProcess::spawn(&args)?;
            (Some(process), target)
        }
        Some(url) => {
            let host = url
                .strip_prefix("http://")
                .and_then(|rest| rest.split(['/', ':']).next())
                .unwrap_or_default();
            anyhow::ensure!(
                matches!(host, "127.0.0.1" | "localhost"),
                "--engine-url must be http://127.0.0.1:PORT or http://localhost:PORT: \
                 the load generator only talks to this machine"
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
    let outcome = drive(&args, &target, pid, process.as_mut()).await;
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
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        out.write_all(render_text(&report).as_bytes())?;
    }
    Ok(())
}

/// Where the engine under test is reached, and with which secrets.
#[derive(Clone)]
struct Target {
    /// `http://host:port`, no trailing slash: also the public URL signatures use.
    base: String,
    admin_token: String,
    twilio_token: String,
}

impl Target {
    fn ws_base(&self) -> String {
        if let Some(rest) = self.base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = self.base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            self.base.clone()
        }
    }
}

/// What the workers are doing; set by the controller, seen by every task.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Connect the softphones (set `available`), then wait.
    Setup,
    /// Place and bridge the calls.
    Place,
    /// Paced audio, the first tick at `start` (plus each stream's offset).
    Stream { start: Instant },
    /// Stop sending; frames in flight still count.
    Quiet,
    /// Twilio sends `stop`; softphones close after `call_ended`.
    Hangup,
}

// ---- the controller ------------------------------------------------------------

async fn drive(
    args: &LoadtestArgs,
    target: &Target,
    pid: Option<u32>,
    mut process: Option<&mut EngineProcess>,
) -> anyhow::Result<Report> {
    let client = awc::Client::builder().timeout(HTTP_TIMEOUT).finish();
    wait_healthy(&client, target, process.as_deref_mut()).await?;
    let n = args.calls;
    let threads = match args.threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        t => t,
    }
    .min(n)
    .max(1);
    let clk_tck = clock_ticks_per_second();

    // The floor: agents, numbers.
    let mut suffix = [0u8; 4];
    getrandom::getrandom(&mut suffix).context("random workspace name")?;
    let workspace = format!(
        "loadtest-{}",
        suffix
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let setup_started = Instant::now();
    let parking = (args.scenario == Scenario::Parking).then(|| ParkLayout {
        threads,
        calls: n,
        spares: args.parking.spare_agents.unwrap_or(n / 2),
        per_workspace: args.parking.workspace_calls.max(1),
    });
    let ring = if parking.is_some() {
        RingMode::Own
    } else {
        args.ring
    };
    let agent_workspaces: Vec<String> = match &parking {
        None => vec![workspace.clone(); n],
        Some(layout) => (0..n + layout.spares)
            .map(|agent| format!("{workspace}-{}", layout.workspace(agent)))
            .collect(),
    };
    progress(format_args!(
        "creating {} agents in workspace {workspace}{}",
        agent_workspaces.len(),
        if parking.is_some() { "-*" } else { "" }
    ));
    let agents = create_agents(&client, target, &agent_workspaces).await?;
    let numbers = create_numbers(&client, target, &agent_workspaces, &agents[..n], ring).await?;
    let rss_idle = pid.and_then(rss_kib);

    // Workers.
    let (phase_tx, phase_rx) = watch::channel(Phase::Setup);
    let (event_tx, mut events) = mpsc::unbounded_channel();
    let clock = Clock(Instant::now());
    let concurrency = args.ramp_concurrency.max(1).div_ceil(threads).max(1);
    let ramp_spacing = (args.ramp_per_sec > 0.0)
        .then(|| Duration::from_secs_f64(threads as f64 / args.ramp_per_sec));
    for id in 0..threads {
        let indices: Vec<usize> = (id..n).step_by(threads).collect();
        let plan = WorkerPlan {
            id,
            threads,
            total_calls: n,
            clock,
            audio: if args.one_way || parking.is_some() {
                AudioDirection::CallerToAgent
            } else {
                args.audio
            },
            target: target.clone(),
            phones: indices
                .iter()
                .map(|&i| (i, agents[i].token.clone()))
                .collect(),
            calls: indices
                .iter()
                .map(|&i| (i, numbers[i % numbers.len()].clone()))
                .collect(),
            spares: match &parking {
                None => Vec::new(),
                Some(layout) => (n..n + layout.spares)
                    .filter(|&agent| layout.thread(agent) == id)
                    .map(|agent| (agent, agents[agent].token.clone()))
                    .collect(),
            },
            parking: parking.map(|layout| ParkPlan {
                layout,
                interval: Duration::from_secs_f64(args.parking.park_interval),
            }),
            concurrency,
            ramp_spacing,
            phases: phase_rx.clone(),
            events: event_tx.clone(),
        };
        std::thread::Builder::new()
            .name(format!("loadtest-{id}"))
            .spawn(move || actix_rt::System::new().block_on(worker(plan)))
            .context("starting a generator thread")?;
    }
    drop(event_tx);

    // Softphones.
    let phones_started = Instant::now();
    let mut ready = 0;
    let mut phone_errors = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60) + Duration::from_millis(20 * n as u64);
    while ready < threads {
        match next_event(&mut events, deadline).await? {
            WorkerEvent::PhonesReady { errors, .. } => {
                ready += 1;
                phone_errors.extend(errors);
            }
            other => tracing::debug!(?other, "unexpected worker event"),
        }
        check_alive(process.as_deref_mut())?;
    }
    if !phone_errors.is_empty() {
        let _ = phase_tx.send(Phase::Hangup);
        bail!(
            "{} softphones did not connect; first: {}",
            phone_errors.len(),
            phone_errors[0]
        );
    }
    let phones_seconds = phones_started.elapsed().as_secs_f64();
    let rss_seated = pid.and_then(rss_kib);
    progress(format_args!(
        "{} softphones available; placing calls",
        agents.len()
    ));

    // Calls.
    let placing_started = Instant::now();
    let _ = phase_tx.send(Phase::Place);
    let mut setup_times = Histogram::default();
    let mut failures: Vec<String> = Vec::new();
    let mut placed_workers = 0;
    let deadline =
        Instant::now() + Duration::from_secs(120) + Duration::from_millis(200 * n as u64);
    let mut last_progress = Instant::now();
    while placed_workers < threads {
        match next_event(&mut events, deadline).await? {
            WorkerEvent::Bridged { setup } => setup_times.record(setup.as_nanos() as u64),
            WorkerEvent::CallFailed { index, error } => {
                failures.push(format!("call {index}: {error}"));
            }
            WorkerEvent::PlacementDone => placed_workers += 1,
            other => tracing::debug!(?other, "unexpected worker event"),
        }
        if last_progress.elapsed() >= Duration::from_secs(5) {
            last_progress = Instant::now();
            progress(format_args!(
                "placing calls: {} bridged, {} failed",
                setup_times.count(),
                failures.len()
            ));
            check_alive(process.as_deref_mut())?;
        }
    }
    let bridging_seconds = placing_started.elapsed().as_secs_f64();
    let setup_seconds = setup_started.elapsed().as_secs_f64();
    let bridged = setup_times.count() as usize;
    progress(format_args!(
        "{bridged} calls bridged ({} failed) in {bridging_seconds:.1} s; {} s of audio",
        failures.len(),
        args.seconds
    ));
    if bridged == 0 {
        let _ = phase_tx.send(Phase::Hangup);
        bail!(
            "no call was bridged; first failure: {}",
            failures.first().map_or("none", String::as_str)
        );
    }

    // Steady state.
    tokio::time::sleep(SETTLE).await;
    let metrics_before = scrape_metrics(&client, target).await.unwrap_or_default();
    let engine_before = pid.map(EngineSample::take);
    let self_before = cpu_ticks("self");
    let machine_before = machine_ticks();
    let start = Instant::now() + Duration::from_millis(100);
    let _ = phase_tx.send(Phase::Stream { start });
    let seconds = Duration::from_secs(args.seconds);
    tokio::time::sleep_until((start + seconds / 2).into()).await;
    let rss_mid = pid.and_then(rss_kib);
    tokio::time::sleep_until((start + seconds).into()).await;
    let _ = phase_tx.send(Phase::Quiet);
    let rss_end = pid.and_then(rss_kib);
    tokio::time::sleep(DRAIN).await;
    let engine_after = pid.map(EngineSample::take);
    let self_after = cpu_ticks("self");
    let machine_after = machine_ticks();
    let window = start.elapsed();
    let metrics_after = scrape_metrics(&client, target).await.unwrap_or_default();
    check_alive(process)?;

    // Hang up, collect.
    let _ = phase_tx.send(Phase::Hangup);
    let mut stats = WorkerStats::default();
    let mut done = 0;
    let deadline = Instant::now() + HANGUP_TIMEOUT + Duration::from_secs(10);
    while done < threads {
        match next_event(&mut events, deadline).await {
            Ok(WorkerEvent::Done { stats: s, .. }) => {
                done += 1;
                stats.merge(*s);
            }
            Ok(_) => {}
            Err(err) => {
                stats.note(format!(
                    "only {done} of {threads} generator threads reported: {err}"
                ));
                break;
            }
        }
    }
    let (calls_active_after, metrics_end) = wait_calls_ended(&client, target).await;

    // The report.
    let cpu = |ticks: u64| ticks as f64 / clk_tck;
    let relayed = metric_delta(
        &metrics_before,
        &metrics_after,
        "switchboard_audio_frames_relayed",
    );
    let dropped = metric_delta(
        &metrics_before,
        &metrics_after,
        "switchboard_audio_frames_dropped",
    );
    let engine_cpu = match (&engine_before, &engine_after) {
        (Some(before), Some(after)) => {
            let ticks = after.ticks.since(before.ticks);
            let seconds = cpu(ticks.total());
            let frames = relayed.unwrap_or(
                (stats.caller_to_agent.received + stats.agent_to_caller.received) as f64,
            );
            Some(EngineCpu {
                seconds,
                user_seconds: cpu(ticks.user),
                system_seconds: cpu(ticks.system),
                allowed_cpus: pid.and_then(|pid| allowed_cpus(&pid.to_string())),
                window_seconds: window.as_secs_f64(),
                utilisation_pct: 100.0 * seconds / window.as_secs_f64(),
                frames_relayed: frames as u64,
                frames_dropped: dropped.map(|d| d as u64),
                us_per_frame: (frames > 0.0).then(|| seconds * 1e6 / frames),
                threads: thread_breakdown(before, after, clk_tck, window),
            })
        }
        _ => None,
    };
    let rss_bridged = [rss_mid, rss_end].into_iter().flatten().max();
    let engine_memory = match (rss_idle, rss_seated, rss_bridged) {
        (Some(idle), Some(seated), Some(bridged_kib)) => Some(EngineMemory {
            idle_kib: idle,
            with_softphones_kib: seated,
            bridged_kib,
            kib_per_bridged_call: bridged_kib.saturating_sub(idle) as f64 / bridged as f64,
            kib_per_call_beyond_softphone: bridged_kib.saturating_sub(seated) as f64
                / bridged as f64,
        }),
        _ => None,
    };
    let generator_ticks = match (self_before, self_after) {
        (Some(b), Some(a)) => a.since(b),
        _ => CpuTicks::default(),
    };
    let generator_seconds = cpu(generator_ticks.total());
    let machine = match (machine_before, machine_after) {
        (Some(b), Some(a)) if a.total > b.total => {
            let cpus = a.cpus.max(1) as f64;
            // /proc/stat counts every CPU; process times count one core at a time.
            let wall_ticks = (a.total - b.total) as f64 / cpus;
            let busy = (a.busy - b.busy) as f64 / wall_ticks * 100.0;
            let engine = engine_cpu.as_ref().map_or(0.0, |e| e.seconds * clk_tck);
            let mine = generator_ticks.total() as f64;
            Some(MachineInfo {
                cpus: a.cpus,
                busy_pct_of_one_core: busy,
                busy_pct_of_machine: busy / cpus,
                others_pct_of_one_core: (busy - (engine + mine) / wall_ticks * 100.0).max(0.0),
            })
        }
        _ => None,
    };
    let thread_pct: Vec<f64> = stats
        .thread_ticks
        .iter()
        .map(|&t| 100.0 * cpu(t) / (seconds.as_secs_f64() + 0.1))
        .collect();
    let send_lag_p99_us = stats.send_lag.percentile(0.99) as f64 / 1e3;
    let saturated = thread_pct.iter().any(|&p| p > 90.0)
        || send_lag_p99_us > 5_000.0
        || machine
            .as_ref()
            .is_some_and(|m| m.busy_pct_of_machine > 90.0);
    let generator = GeneratorInfo {
        threads,
        allowed_cpus: allowed_cpus("self"),
        cpu_seconds: generator_seconds,
        user_seconds: cpu(generator_ticks.user),
        system_seconds: cpu(generator_ticks.system),
        utilisation_pct: 100.0 * generator_seconds / window.as_secs_f64(),
        thread_utilisation_pct: thread_pct,
        send_lag_p50_us: stats.send_lag.percentile(0.5) as f64 / 1e3,
        send_lag_p99_us,
        send_lag_max_us: stats.send_lag.max() as f64 / 1e3,
        saturated,
    };
    let c2a = DirectionReport::from(&stats.caller_to_agent);
    let a2c = DirectionReport::from(&stats.agent_to_caller);
    let parking = parking.map(|layout| ParkingReport::new(&stats.parking, layout, args));
    let protocol = ProtocolInfo {
        rings: stats.rings,
        ring_cancels: stats.ring_cancels,
        claims_lost: stats.claims_lost,
        engine_errors: stats.engine_errors,
        calls_ended: stats.calls_ended,
        foreign_audio_frames: stats.foreign_audio,
        clears: stats.clears,
        unexpected_closes: stats.unexpected_closes,
        send_errors: stats.send_errors,
        calls_active_after,
        calls_answered: metric(&metrics_end, "switchboard_calls_answered").map(|v| v as u64),
        notes: stats.notes.clone(),
        call_failures: failures.iter().take(MAX_NOTES).cloned().collect(),
    };
    let targets = check_targets(
        &c2a,
        &a2c,
        engine_cpu.as_ref(),
        engine_memory.as_ref(),
        bridged,
        parking.as_ref(),
    );
    Ok(Report {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        calls_requested: n,
        calls_bridged: bridged,
        calls_failed: failures.len(),
        seconds: args.seconds,
        scenario: if parking.is_some() {
            "parking"
        } else {
            "bridge"
        },
        audio: match (args.one_way || parking.is_some(), args.audio) {
            (true, _) | (false, AudioDirection::CallerToAgent) => "caller-to-agent",
            (false, AudioDirection::AgentToCaller) => "agent-to-caller",
            (false, AudioDirection::Both) => "both",
        },
        ring: match ring {
            RingMode::All => "all",
            RingMode::Own => "own",
        },
        engine: EngineInfo::external(pid),
        setup: SetupInfo {
            total_seconds: setup_seconds,
            softphones_seconds: phones_seconds,
            bridging_seconds,
            calls_per_second: bridged as f64 / bridging_seconds,
            call_setup_p50_ms: setup_times.percentile(0.5) as f64 / 1e6,
            call_setup_p99_ms: setup_times.percentile(0.99) as f64 / 1e6,
        },
        caller_to_agent: c2a,
        agent_to_caller: a2c,
        engine_cpu,
        engine_memory,
        generator,
        machine,
        protocol,
        parking,
        targets,
    })
}

/// Progress goes to stderr, so that stdout carries only the report (`--json`).
fn progress(message: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "loadtest: {message}");
}

async fn next_event(
    events: &mut mpsc::UnboundedReceiver<WorkerEvent>,
    deadline: Instant,
) -> anyhow::Result<WorkerEvent> {
    match tokio::time::timeout_at(deadline.into(), events.recv()).await {
        Ok(Some(event)) => Ok(event),
        Ok(None) => bail!("every generator thread stopped"),
        Err(_) => bail!("the generator threads did not finish in time"),
    }
}

fn check_alive(process: Option<&mut EngineProcess>) -> anyhow::Result<()> {
    match process {
        Some(process) => process.check_alive(),
        None => Ok(()),
    }
}

async fn wait_healthy(
    client: &awc::Client,
    target: &Target,
    mut process: Option<&mut EngineProcess>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + HEALTH_TIMEOUT;
    let url = format!("{}/healthz", target.base);
    loop {
        check_alive(process.as_deref_mut())?;
        if let Ok(res) = client.get(&url).send().await {
            if res.status().is_success() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("{url} did not answer 200 within {HEALTH_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct AgentCreds {
    id: String,
    token: String,
}

async fn create_agents(
    client: &awc::Client,
    target: &Target,
    workspaces: &[String],
) -> anyhow::Result<Vec<AgentCreds>> {
    let url = format!("{}/api/agents", target.base);
    let n = workspaces.len();
    let mut created: Vec<(usize, anyhow::Result<AgentCreds>)> = futures_util::stream::iter(0..n)
        .map(|i| {
            let url = url.clone();
            let workspace = &workspaces[i];
            async move {
                let body = json!({ "name": format!("loadtest agent {i}"), "workspace": workspace });
                let result = async {
                    let mut res = client
                        .post(&url)
                        .bearer_auth(&target.admin_token)
                        .send_json(&body)
                        .await
                        .map_err(|e| anyhow::anyhow!("POST /api/agents: {e}"))?;
                    let bytes = res.body().await?;
                    anyhow::ensure!(
                        res.status().as_u16() == 201,
                        "POST /api/agents: {} {}",
                        res.status(),
                        String::from_utf8_lossy(&bytes)
                    );
                    let value: serde_json::Value = serde_json::from_slice(&bytes)?;
                    let field = |name: &str| {
                        value[name]
                            .as_str()
                            .map(str::to_owned)
                            .with_context(|| format!("no {name} in {value}"))
                    };
                    Ok(AgentCreds {
                        id: field("id")?,
                        token: field("token")?,
                    })
                }
                .await;
                (i, result)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    created.sort_by_key(|(i, _)| *i);
    created.into_iter().map(|(_, agent)| agent).collect()
}

/// The numbers calls go to: one for every agent (`all`), or one per agent (`own`),
/// in the fictional-looking +1 415 201 xxxx block.
async fn create_numbers(
    client: &awc::Client,
    target: &Target,
    workspaces: &[String],
    agents: &[AgentCreds],
    ring: RingMode,
) -> anyhow::Result<Vec<String>> {
    let url = format!("{}/api/numbers", target.base);
    let routes: Vec<(String, serde_json::Value, &str)> = match ring {
        RingMode::All => vec![(
            "+14152010000".to_owned(),
            json!({ "kind": "agents", "agent_ids": [] }),
            workspaces[0].as_str(),
        )],
        RingMode::Own => agents
            .iter()
            .enumerate()
            .map(|(i, agent)| {
                (
                    format!("+1415201{i:04}"),
                    json!({ "kind": "agents", "agent_ids": [agent.id] }),
                    workspaces[i].as_str(),
                )
            })
            .collect(),
    };
    let results: Vec<anyhow::Result<()>> = futures_util::stream::iter(routes.iter())
        .map(|(e164, route, workspace)| {
            let url = url.clone();
            async move {
                let body = json!({ "e164": e164, "workspace": workspace, "route": route });
                let mut res = client
                    .post(&url)
                    .bearer_auth(&target.admin_token)
                    .send_json(&body)
                    .await
                    .map_err(|e| anyhow::anyhow!("POST /api/numbers: {e}"))?;
                let bytes = res.body().await?;
                anyhow::ensure!(
                    res.status().is_success(),
                    "POST /api/numbers: {} {}",
                    res.status(),
                    String::from_utf8_lossy(&bytes)
                );
                Ok(())
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<()>>()?;
    Ok(routes.into_iter().map(|(e164, _, _)| e164).collect())
}

async fn scrape_metrics(
    client: &awc::Client,
    target: &Target,
) -> anyhow::Result<BTreeMap<String, f64>> {
    let mut res = client
        .get(format!("{}/metrics", target.base))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("GET /metrics: {e}"))?;
    let body = res.body().await?;
    let text = String::from_utf8_lossy(&body);
    Ok(text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (name, value) = line.split_once(' ')?;
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect())
}

fn metric(metrics: &BTreeMap<String, f64>, name: &str) -> Option<f64> {
    metrics
        .get(name)
        .or_else(|| metrics.get(&format!("{name}_total")))
        .copied()
}

fn metric_delta(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
    name: &str,
) -> Option<f64> {
    Some(metric(after, name)? - metric(before, name)?)
}

/// Waits (bounded) until the engine has no call left; returns what it last saw.
async fn wait_calls_ended(
    client: &awc::Client,
    target: &Target,
) -> (Option<i64>, BTreeMap<String, f64>) {
    let deadline = Instant::now() + HANGUP_TIMEOUT;
    loop {
        let metrics = scrape_metrics(client, target).await.unwrap_or_default();
        let active = metric(&metrics, "switchboard_calls_active").map(|v| v as i64);
        if active == Some(0) || Instant::now() > deadline {
            return (active, metrics);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---- the engine under test -----------------------------------------------------

/// A `switchboard serve` child on a free loopback port with a fresh database.
struct EngineProcess {
    child: Option<Child>,
    pid: u32,
    dir: PathBuf,
    log: PathBuf,
    workers: usize,
}

impl EngineProcess {
    fn spawn(args: &LoadtestArgs) -> anyhow::Result<(EngineProcess, Target)> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .context("finding a free port")?
            .port();
        let dir = std::env::temp_dir().join(format!(
            "switchboard-loadtest-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let log = args
            .engine_log
            .clone()
            .unwrap_or_else(|| dir.join("engine.log"));
        let out = std::fs::File::create(&log)
            .with_context(|| format!("creating the engine log {}", log.display()))?;
        let err = out.try_clone()?;
        let target = Target {
            base: format!("http://127.0.0.1:{port}"),
            admin_token: crate::api::auth::new_token("sba_"),
            twilio_token: crate::api::auth::new_token("lt_"),
        };
        let exe = std::env::current_exe().context("locating the switchboard binary")?;
        let mut command = match &args.engine_cpus {
            Some(cpus) => {
                let mut command = Command::new("taskset");
                command.arg("-c").arg(cpus).arg(exe);
                command
            }
            None => Command::new(exe),
        };
        if args.engine_workers > 0 {
            let config = dir.join("engine.toml");
            std::fs::write(&config, format!("workers = {}\n", args.engine_workers))?;
            command.arg("--config").arg(config);
        }
        // The engine must not pick up this shell's engine settings.
        for name in [
            "SWITCHBOARD_BIND",
            "SWITCHBOARD_PUBLIC_URL",
            "SWITCHBOARD_NODE_ID",
            "REDIS_URL",
            "TWILIO_ACCOUNT_SID",
            "TWILIO_API_BASE",
            "OPENAI_API_KEY",
            "OPENAI_REALTIME_URL",
        ] {
            command.env_remove(name);
        }
        let child = command
            .arg("serve")
            .env("SWITCHBOARD_BIND", format!("127.0.0.1:{port}"))
            .env(
                "DATABASE_URL",
                format!("sqlite://{}?mode=rwc", dir.join("loadtest.db").display()),
            )
            .env("SWITCHBOARD_ADMIN_TOKEN", &target.admin_token)
            .env("TWILIO_AUTH_TOKEN", &target.twilio_token)
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .context("starting the engine")?;
        let pid = child.id();
        progress(format_args!(
            "engine started: pid {pid}, port {port}, log {}",
            log.display()
        ));
        Ok((
            EngineProcess {
                child: Some(child),
                pid,
                dir,
                log,
                workers: args.engine_workers,
            },
            target,
        ))
    }

    fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(child) = &mut self.child {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                bail!(
                    "the engine exited ({status}); its log ({}) ends with:\n{}",
                    self.log.display(),
                    log_tail(&self.log, 20)
                );
            }
        }
        Ok(())
    }

    /// Stops the engine (SIGTERM, then SIGKILL), cleans up, reads its log.
    fn finish(&mut self) -> EngineInfo {
        let exit = match self.child.take() {
            None => "had already exited".to_owned(),
            Some(mut child) => {
                let _ = Command::new("kill")
                    .args(["-TERM", &self.pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    match child.try_wait() {
                        Ok(Some(status)) => break format!("stopped by SIGTERM: {status}"),
                        Ok(None) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        _ => {
                            let _ = child.kill();
                            let _ = child.wait();
                            break "did not stop within 10 s of SIGTERM; killed".to_owned();
                        }
                    }
                }
            }
        };
        for file in [
            "loadtest.db",
            "loadtest.db-wal",
            "loadtest.db-shm",
            "engine.toml",
        ] {
            let _ = std::fs::remove_file(self.dir.join(file));
        }
        let _ = std::fs::remove_dir(&self.dir); // only if the log lives elsewhere
        let (warnings, errors, problems) = scan_log(&self.log);
        EngineInfo {
            mode: "spawned",
            pid: Some(self.pid),
            workers: self.workers,
            log: Some(self.log.display().to_string()),
            log_warnings: warnings,
            log_errors: errors,
            log_problems: problems,
            exit: Some(exit),
        }
    }
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Counts WARN and ERROR lines and keeps the first distinct few.
fn scan_log(path: &std::path::Path) -> (usize, usize, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let (mut warnings, mut errors, mut problems) = (0, 0, Vec::<String>::new());
    for line in text.lines() {
        let line = strip_ansi(line);
        let level = line.split_whitespace().nth(1).unwrap_or_default();
        let is_error = level == "ERROR" || line.contains("panicked");
        if level == "WARN" {
            warnings += 1;
        } else if is_error {
            errors += 1;
        } else {
            continue;
        }
        // Quote each kind once: the message without its timestamp.
        let message: String = line
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" ");
        let key: String = message.chars().take(60).collect();
        if problems.len() < MAX_NOTES && !problems.iter().any(|p| p.starts_with(&key)) {
            problems.push(message.chars().take(300).collect());
        }
    }
    (warnings, errors, problems)
}

fn strip_ansi(line: &str) -> Cow<'_, str> {
    if !line.contains('\x1b') {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn log_tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---- /proc ---------------------------------------------------------------------

/// `getconf CLK_TCK` (the unit of utime/stime); 100 on every Linux we run on.
fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|&ticks| ticks > 0.0)
        .unwrap_or(100.0)
}

/// CPU time in clock ticks, split as the kernel accounts it.
#[derive(Debug, Clone, Copy, Default)]
struct CpuTicks {
    user: u64,
    system: u64,
}

impl CpuTicks {
    fn total(self) -> u64 {
        self.user + self.system
    }

    fn since(self, earlier: CpuTicks) -> CpuTicks {
        CpuTicks {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// `(comm, utime and stime)` from a `/proc/…/stat` line.
fn parse_stat(text: &str) -> Option<(String, CpuTicks)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // Fields after the comm start at field 3 (state); utime is 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((
        comm,
        CpuTicks {
            user: utime,
            system: stime,
        },
    ))
}

/// CPU ticks of a process (`"self"` or a pid).
fn cpu_ticks(pid: &str) -> Option<CpuTicks> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text).map(|(_, ticks)| ticks)
}

fn thread_self_ticks() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    parse_stat(&text).map(|(_, ticks)| ticks.total())
}

/// The CPUs a process may run on (`Cpus_allowed_list`).
fn allowed_cpus(pid: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .map(|list| list.trim().to_owned())
}

/// Busy and total ticks of the whole machine, and its CPU count (`/proc/stat`).
#[derive(Debug, Clone, Copy, Default)]
struct MachineTicks {
    busy: u64,
    total: u64,
    cpus: usize,
}

fn machine_ticks() -> Option<MachineTicks> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let mut lines = text.lines();
    let fields: Vec<u64> = lines
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    let cpus = lines
        .filter(|line| {
            line.starts_with("cpu") && line.as_bytes().get(3).is_some_and(u8::is_ascii_digit)
        })
        .count();
    Some(MachineTicks {
        busy: total - idle,
        total,
        cpus,
    })
}

fn rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// The engine's CPU, in total and per thread.
struct EngineSample {
    ticks: CpuTicks,
    /// tid → (thread name, ticks)
    threads: BTreeMap<u32, (String, CpuTicks)>,
}

impl EngineSample {
    fn take(pid: u32) -> EngineSample {
        let mut threads = BTreeMap::new();
        if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for entry in dir.flatten() {
                let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                    continue;
                };
                if let Some(sample) = std::fs::read_to_string(entry.path().join("stat"))
                    .ok()
                    .and_then(|text| parse_stat(&text))
                {
                    threads.insert(tid, sample);
                }
            }
        }
        EngineSample {
            ticks: cpu_ticks(&pid.to_string()).unwrap_or_default(),
            threads,
        }
    }
}

/// CPU per thread over the window, busiest first.
fn thread_breakdown(
    before: &EngineSample,
    after: &EngineSample,
    clk_tck: f64,
    window: Duration,
) -> Vec<ThreadCpu> {
    let mut threads: Vec<ThreadCpu> = after
        .threads
        .iter()
        .map(|(tid, (name, ticks))| {
            let earlier = before.threads.get(tid).map(|(_, t)| *t).unwrap_or_default();
            (format!("{name}/{tid}"), ticks.since(earlier).total())
        })
        .filter(|(_, ticks)| *ticks > 0)
        .map(|(name, ticks)| {
            let seconds = ticks as f64 / clk_tck;
            ThreadCpu {
                name,
                seconds,
                utilisation_pct: 100.0 * seconds / window.as_secs_f64(),
            }
        })
        .collect();
    threads.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    threads
}

// ---- frames --------------------------------------------------------------------

/// Nanoseconds since the run's epoch, shared by every generator thread.
#[derive(Debug, Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn now_ns(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

/// What a generator frame says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    direction: u8,
    call: u32,
    seq: u64,
    sent_ns: u64,
}

/// A 160-byte frame: magic, direction, call, sequence, send time; then mu-law silence.
fn encode_frame(stamp: Stamp) -> [u8; FRAME_BYTES] {
    let mut frame = [0xFF; FRAME_BYTES];
    frame[..3].copy_from_slice(&MAGIC);
    frame[3] = stamp.direction;
    frame[4..8].copy_from_slice(&stamp.call.to_le_bytes());
    frame[8..16].copy_from_slice(&stamp.seq.to_le_bytes());
    frame[16..24].copy_from_slice(&stamp.sent_ns.to_le_bytes());
    frame
}

fn decode_frame(frame: &[u8]) -> Option<Stamp> {
    if frame.len() != FRAME_BYTES || frame[..3] != MAGIC {
        return None;
    }
    let u32_at = |at: usize| frame[at..at + 4].try_into().ok().map(u32::from_le_bytes);
    let u64_at = |at: usize| frame[at..at + 8].try_into().ok().map(u64::from_le_bytes);
    Some(Stamp {
        direction: frame[3],
        call: u32_at(4)?,
        seq: u64_at(8)?,
        sent_ns: u64_at(16)?,
    })
}

/// A Twilio `media` message as Twilio sends it.
fn twilio_media(stream_sid: &str, seq: u64, frame: &[u8]) -> String {
    let mut out = String::with_capacity(320);
    let _ = write!(
        out,
        r#"{{"event":"media","sequenceNumber":"{}","media":{{"track":"inbound","chunk":"{}","timestamp":"{}","payload":""#,
        seq + 2,
        seq + 1,
        seq * 20
    );
    STANDARD.encode_string(frame, &mut out);
    let _ = write!(out, r#""}},"streamSid":"{stream_sid}"}}"#);
    out
}

/// Where the first frame of stream `index` goes within the 20 ms period, so that
/// N streams spread evenly instead of firing together.
fn tick_offset(index: usize, total: usize) -> Duration {
    FRAME_INTERVAL.mul_f64(index as f64 / total.max(1) as f64)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

// ---- the histogram -------------------------------------------------------------

/// Log-linear buckets: exact below 1024, then 512 buckets per power of two (values
/// are reported as their bucket's upper bound: ≤ 0.2 % high).
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
    sum: u128,
}

const SUB_BITS: u32 = 9;
const EXACT: u64 = 1 << (SUB_BITS + 1);

impl Histogram {
    fn index(value: u64) -> usize {
        if value < EXACT {
            return value as usize;
        }
        let shift = 63 - value.leading_zeros() - SUB_BITS;
        let mantissa = (value >> shift) as usize; // in [512, 1024)
        EXACT as usize + (shift as usize - 1) * (1 << SUB_BITS) + (mantissa - (1 << SUB_BITS))
    }

    fn upper_bound(index: usize) -> u64 {
        if (index as u64) < EXACT {
            return index as u64;
        }
        let relative = index - EXACT as usize;
        let shift = relative / (1 << SUB_BITS) + 1;
        let mantissa = (relative % (1 << SUB_BITS) + (1 << SUB_BITS)) as u64;
        ((mantissa + 1) << shift) - 1
    }

    pub fn record(&mut self, value: u64) {
        let index = Self::index(value);
        if index >= self.counts.len() {
            self.counts.resize(index + 1, 0);
        }
        self.counts[index] += 1;
        self.total += 1;
        self.max = self.max.max(value);
        self.sum += u128::from(value);
    }

    pub fn merge(&mut self, other: &Histogram) {
        if other.counts.len() > self.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value at quantile `q` (0..=1); 0 when empty.
    pub fn percentile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::upper_bound(index).min(self.max);
            }
        }
        self.max
    }
}

// ---- the workers ---------------------------------------------------------------

/// One generator thread's share of the load.
struct WorkerPlan {
    id: usize,
    threads: usize,
    total_calls: usize,
    clock: Clock,
    audio: AudioDirection,
    target: Target,
    /// (call index, agent token): softphone `i` answers call `i`.
    phones: Vec<(usize, String)>,
    /// (call index, the number it dials).
    calls: Vec<(usize, String)>,
    /// Parking: (agent index, agent token) of this thread's spare agents.
    spares: Vec<(usize, String)>,
    parking: Option<ParkPlan>,
    concurrency: usize,
    /// Time between two calls placed by this thread (`--ramp-per-sec`).
    ramp_spacing: Option<Duration>,
    phases: watch::Receiver<Phase>,
    events: mpsc::UnboundedSender<WorkerEvent>,
}

#[derive(Debug)]
enum WorkerEvent {
    PhonesReady { errors: Vec<String> },
    Bridged { setup: Duration },
    CallFailed { index: usize, error: String },
    PlacementDone,
    Done { stats: Box<WorkerStats> },
}

/// Counters of one direction of audio.
#[derive(Debug, Clone, Default)]
struct DirectionStats {
    sent: u64,
    received: u64,
    /// Arrived behind a later frame of the same stream (reordered or duplicated).
    out_of_order: u64,
    /// Carried another call's or the other direction's stamp: cross-talk.
    misrouted: u64,
    /// Send time → receipt, in nanoseconds.
    latency: Histogram,
}

impl DirectionStats {
    fn merge(&mut self, other: &DirectionStats) {
        self.sent += other.sent;
        self.received += other.received;
        self.out_of_order += other.out_of_order;
        self.misrouted += other.misrouted;
        self.latency.merge(&other.latency);
    }
}

#[derive(Debug, Default)]
struct WorkerStats {
    caller_to_agent: DirectionStats,
    agent_to_caller: DirectionStats,
    /// How late each paced send was against its schedule (generator health).
    send_lag: Histogram,
    /// Engine→Twilio audio that was not a generator frame, while streaming.
    foreign_audio: u64,
    rings: u64,
    ring_cancels: u64,
    claims_lost: u64,
    engine_errors: u64,
    calls_ended: u64,
    clears: u64,
    unexpected_closes: u64,
    send_errors: u64,
    notes: Vec<String>,
    /// CPU ticks of each generator thread over the streaming phase.
    thread_ticks: Vec<u64>,
    parking: ParkStats,
}

impl WorkerStats {
    fn note(&mut self, note: String) {
        if self.notes.len() < MAX_NOTES {
            self.notes.push(note);
        }
    }

    fn merge(&mut self, other: WorkerStats) {
        self.caller_to_agent.merge(&other.caller_to_agent);
        self.agent_to_caller.merge(&other.agent_to_caller);
        self.send_lag.merge(&other.send_lag);
        self.foreign_audio += other.foreign_audio;
        self.rings += other.rings;
        self.ring_cancels += other.ring_cancels;
        self.claims_lost += other.claims_lost;
        self.engine_errors += other.engine_errors;
        self.calls_ended += other.calls_ended;
        self.clears += other.clears;
        self.unexpected_closes += other.unexpected_closes;
        self.send_errors += other.send_errors;
        for note in other.notes {
            self.note(note);
        }
        self.thread_ticks.extend(other.thread_ticks);
        self.parking.merge(&other.parking);
    }
}

/// Softphone `i`'s side of call `i`, shared with whoever places the call.
#[derive(Default)]
struct PhoneSlot {
    /// The call this phone answers, once the webhook has named it.
    call_id: RefCell<Option<String>>,
    /// Told when the call is bridged (or is lost).
    waiter: RefCell<Option<oneshot::Sender<Result<(), String>>>>,
    bridged: Cell<bool>,
}

impl PhoneSlot {
    fn settle(&self, result: Result<(), String>) {
        if let Some(waiter) = self.waiter.borrow_mut().take() {
            let _ = waiter.send(result);
        }
    }
}

/// One generator thread's state, shared by its tasks.
struct Worker {
    threads: usize,
    total_calls: usize,
    clock: Clock,
    audio: AudioDirection,
    target: Target,
    client: awc::Client,
    slots: Vec<PhoneSlot>,
    stats: RefCell<WorkerStats>,
    streaming: Cell<bool>,
    tasks: RefCell<Vec<actix_rt::task::JoinHandle<()>>>,
    phases: watch::Receiver<Phase>,
    /// The parking scenario's state (`None`: bridge).
    park: Option<ParkWorld>,
}

impl Worker {
    fn slot(&self, index: usize) -> &PhoneSlot {
        &self.slots[index / self.threads]
    }

    fn received(&self, expected: Stamp, audio: &[u8], next_seq: &mut u64) {
        let now = self.clock.now_ns();
        let mut stats = self.stats.borrow_mut();
        let Some(stamp) = decode_frame(audio) else {
            if self.streaming.get() {
                stats.foreign_audio += 1;
            }
            return;
        };
        let direction = if expected.direction == CALLER_TO_AGENT {
            &mut stats.caller_to_agent
        } else {
            &mut stats.agent_to_caller
        };
        if stamp.call != expected.call || stamp.direction != expected.direction {
            direction.misrouted += 1;
            return;
        }
        direction.received += 1;
        if stamp.seq < *next_seq {
            direction.out_of_order += 1;
        } else {
            *next_seq = stamp.seq + 1;
        }
        direction.latency.record(now.saturating_sub(stamp.sent_ns));
    }

    fn sent(&self, direction: u8, ok: bool, scheduled: tokio::time::Instant) {
        let lag = Instant::now().saturating_duration_since(scheduled.into_std());
        let mut stats = self.stats.borrow_mut();
        stats.send_lag.record(lag.as_nanos() as u64);
        if !ok {
            stats.send_errors += 1;
        } else if direction == CALLER_TO_AGENT {
            stats.caller_to_agent.sent += 1;
        } else {
            stats.agent_to_caller.sent += 1;
        }
    }

    fn note(&self, note: String) {
        self.stats.borrow_mut().note(note);
    }

    fn unexpected_close(&self, note: String) {
        let mut stats = self.stats.borrow_mut();
        stats.unexpected_closes += 1;
        stats.note(note);
    }
}

async fn worker(plan: WorkerPlan) {
    let client = awc::Client::builder()
        .connector(awc::Connector::new().limit(0))
        .timeout(HTTP_TIMEOUT)
        .finish();
    let slots = (0..plan.phones.len())
        .map(|_| PhoneSlot::default())
        .collect();
    let worker = Rc::new(Worker {
        threads: plan.threads,
        total_calls: plan.total_calls,
        clock: plan.clock,
        audio: plan.audio,
        target: plan.target,
        client,
        slots,
        stats: RefCell::new(WorkerStats::default()),
        streaming: Cell::new(false),
        tasks: RefCell::new(Vec::new()),
        phases: plan.phases.clone(),
        park: plan
            .parking
            .as_ref()
            .map(|park| ParkWorld::new(park, plan.id, &plan.calls, &plan.spares)),
    });
    let events = plan.events;

    let errors: Vec<String> =
        futures_util::stream::iter(plan.phones.into_iter().chain(plan.spares))
            .map(|(index, token)| {
                let worker = Rc::clone(&worker);
                async move { connect_phone(worker, index, token).await.err() }
            })
            .buffer_unordered(16)
            .filter_map(|error| async move { error.map(|e| format!("{e:#}")) })
            .collect()
            .await;
    let _ = events.send(WorkerEvent::PhonesReady { errors });

    let mut phases = plan.phases;
    let mut placed = false;
    let mut ticks_at_start = None;
    loop {
        if phases.changed().await.is_err() {
            break;
        }
        let phase = *phases.borrow_and_update();
        match phase {
            Phase::Setup => {}
            Phase::Place if !placed => {
                placed = true;
                place_calls(
                    &worker,
                    &plan.calls,
                    plan.concurrency,
                    plan.ramp_spacing,
                    &events,
                )
                .await;
                let _ = events.send(WorkerEvent::PlacementDone);
            }
            Phase::Place => {}
            Phase::Stream { start } => {
                worker.streaming.set(true);
                ticks_at_start = thread_self_ticks();
                if let Some(world) = &worker.park {
                    for c in 0..world.calls.len() {
                        if world.calls[c].holder.get().is_some() {
                            let task = actix_rt::spawn(park_driver(Rc::clone(&worker), c, start));
                            worker.tasks.borrow_mut().push(task);
                        }
                    }
                }
            }
            Phase::Quiet => {
                worker.streaming.set(false);
                if let (Some(start), Some(end)) = (ticks_at_start, thread_self_ticks()) {
                    worker.stats.borrow_mut().thread_ticks.push(end - start);
                }
            }
            Phase::Hangup => break,
        }
    }
    // Every task ends by itself after the hang-up (bounded by HANGUP_TIMEOUT).
    let tasks: Vec<_> = worker.tasks.borrow_mut().drain(..).collect();
    let _ = tokio::time::timeout(
        HANGUP_TIMEOUT + Duration::from_secs(2),
        futures_util::future::join_all(tasks),
    )
    .await;
    if let Some(world) = &worker.park {
        world.account(&mut worker.stats.borrow_mut());
    }
    let stats = std::mem::take(&mut *worker.stats.borrow_mut());
    tracing::debug!(worker = plan.id, "generator thread done");
    let _ = events.send(WorkerEvent::Done {
        stats: Box::new(stats),
    });
}

/// Connects softphone `index`, sets it `available` and leaves it to its task.
async fn connect_phone(worker: Rc<Worker>, index: usize, token: String) -> anyhow::Result<()> {
    let url = format!("{}/ws/agent?token={token}", worker.target.ws_base());
    let mut ws = WsClient::connect(&url, &[])
        .await
        .with_context(|| format!("softphone {index}"))?;
    let presence = r#"{"type":"presence","status":"available"}"#;
    ws.send(Message::Text(presence)).await?;
    let ack = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(frame) = ws.next().await {
            if let Frame::Text(text) = frame? {
                if find(&text, br#""type":"presence""#).is_some() {
                    return Ok(());
                }
            }
        }
        bail!("softphone {index}: closed before the presence ack")
    })
    .await;
    ack.map_err(|_| anyhow::anyhow!("softphone {index}: no presence ack"))??;
    let task = match &worker.park {
        Some(world) => {
            let phone = world.layout.local(index);
            actix_rt::spawn(park_phone(Rc::clone(&worker), phone, ws))
        }
        None => actix_rt::spawn(softphone(Rc::clone(&worker), index, ws)),
    };
    worker.tasks.borrow_mut().push(task);
    Ok(())
}

async fn place_calls(
    worker: &Rc<Worker>,
    calls: &[(usize, String)],
    concurrency: usize,
    spacing: Option<Duration>,
    events: &mpsc::UnboundedSender<WorkerEvent>,
) {
    let started = Instant::now();
    futures_util::stream::iter(calls.iter().enumerate())
        .for_each_concurrent(concurrency, |(k, (index, to))| async move {
            if let Some(spacing) = spacing {
                tokio::time::sleep_until((started + spacing * k as u32).into()).await;
            }
            let begun = Instant::now();
            let event = match place_call(worker, *index, to).await {
                Ok(()) => WorkerEvent::Bridged {
                    setup: begun.elapsed(),
                },
                Err(err) => WorkerEvent::CallFailed {
                    index: *index,
                    error: format!("{err:#}"),
                },
            };
            let _ = events.send(event);
        })
        .await;
}

/// Twilio's side of a call: the signed webhook, then the media stream (`connected`,
/// `start`); done when softphone `index` has it.
async fn place_call(worker: &Rc<Worker>, index: usize, to: &str) -> anyhow::Result<()> {
    let target = &worker.target;
    let call_sid = format!("CA{}", uuid::Uuid::new_v4().simple());
    let from = format!("+1415555{:04}", index % 10_000);
    let params: Vec<(String, String)> = [
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", call_sid.as_str()),
        ("CallStatus", "ringing"),
        ("Called", to),
        ("Caller", from.as_str()),
        ("Direction", "inbound"),
        ("From", from.as_str()),
        ("To", to),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let url = format!("{}/twilio/voice", target.base);
    let signature = sign(&target.twilio_token, &url, &params);
    let mut res = worker
        .client
        .post(&url)
        .insert_header(("X-Twilio-Signature", signature))
        .send_form(&params)
        .await
        .map_err(|e| anyhow::anyhow!("voice webhook: {e}"))?;
    let body = res.body().await?;
    let twiml = String::from_utf8_lossy(&body);
    anyhow::ensure!(
        res.status().is_success(),
        "voice webhook: {} {twiml}",
        res.status()
    );
    let call_id = xml_attribute(&twiml, r#"<Parameter name="call_id" value=""#)
        .with_context(|| format!("no call_id in {twiml}"))?;
    let stream_url = xml_attribute(&twiml, r#"<Stream url=""#)
        .with_context(|| format!("no stream url in {twiml}"))?;

    let slot = worker.slot(index);
    let (tx, rx) = oneshot::channel();
    *slot.call_id.borrow_mut() = Some(call_id.clone());
    *slot.waiter.borrow_mut() = Some(tx);

    let signature = sign(&target.twilio_token, &stream_url, &[]);
    let mut ws = WsClient::connect(&stream_url, &[("X-Twilio-Signature", &signature)])
        .await
        .context("media stream")?;
    let stream_sid = format!("MZ{}", uuid::Uuid::new_v4().simple());
    let connected = json!({ "event": "connected", "protocol": "Call", "version": "1.0.0" });
    let start = json!({
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": stream_sid,
        "start": {
            "accountSid": "AC00000000000000000000000000000000",
            "streamSid": stream_sid,
            "callSid": call_sid,
            "tracks": ["inbound"],
            "mediaFormat": { "encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1 },
            "customParameters": { "call_id": call_id },
        },
    });
    ws.send(Message::Text(&connected.to_string())).await?;
    ws.send(Message::Text(&start.to_string())).await?;
    let task = if worker.park.is_some() {
        actix_rt::spawn(park_twilio(Rc::clone(worker), index, stream_sid, ws))
    } else {
        actix_rt::spawn(twilio_stream(Rc::clone(worker), index, stream_sid, ws))
    };
    worker.tasks.borrow_mut().push(task);

    match tokio::time::timeout(CALL_SETUP_TIMEOUT, rx).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(reason))) => bail!("call {call_id}: {reason}"),
        Ok(Err(_)) => bail!("call {call_id}: softphone {index} went away"),
        Err(_) => bail!("call {call_id}: not bridged within {CALL_SETUP_TIMEOUT:?}"),
    }
}

/// The (unescaped) attribute value that follows `marker` in a TwiML document.
fn xml_attribute(twiml: &str, marker: &str) -> Option<String> {
    let start = twiml.find(marker)? + marker.len();
    let end = twiml[start..].find('"')? + start;
    quick_xml::escape::unescape(&twiml[start..end])
        .ok()
        .map(Cow::into_owned)
}

/// The controller has called the hang-up (a task may see a frame caused by it
/// before it sees the phase change itself).
fn hanging_up(phases: &watch::Receiver<Phase>) -> bool {
    matches!(*phases.borrow(), Phase::Hangup)
}

async fn next_tick(ticker: &mut Option<tokio::time::Interval>) -> tokio::time::Instant {
    match ticker {
        Some(ticker) => ticker.tick().await,
        None => std::future::pending().await,
    }
}

async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// What the softphone side needs from one engine message.
#[derive(Deserialize)]
struct EngineMessage<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    call_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reason: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    code: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    message: Option<Cow<'a, str>>,
}

/// Softphone `index`: answers its own call when rung, ignores other rings, receives
/// caller audio and (both ways) sends its own.
async fn softphone(worker: Rc<Worker>, index: usize, mut ws: WsClient) {
    let slot = worker.slot(index);
    let mut phases = worker.phases.clone();
    let offset = tick_offset(index, worker.total_calls) + FRAME_INTERVAL / 2;
    let expected = Stamp {
        direction: CALLER_TO_AGENT,
        call: index as u32,
        seq: 0,
        sent_ns: 0,
    };
    let mut ticker: Option<tokio::time::Interval> = None;
    let mut seq = 0;
    let mut next_seq = 0;
    let mut answered = false;
    let mut ended = false;
    let mut hangup: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            frame = ws.next() => {
                let frame = match frame {
                    Some(Ok(frame)) => frame,
                    Some(Err(err)) => {
                        worker.unexpected_close(format!("softphone {index}: {err}"));
                        break;
                    }
                    None => {
                        if !ended {
                            worker.unexpected_close(format!("softphone {index}: socket ended"));
                        }
                        break;
                    }
                };
                match frame {
                    Frame::Binary(audio) => worker.received(expected, &audio, &mut next_seq),
                    Frame::Text(text) => {
                        let Ok(message) = serde_json::from_slice::<EngineMessage<'_>>(&text) else {
                            worker.note(format!("softphone {index}: unreadable {text:?}"));
                            continue;
                        };
                        let own = {
                            let mine = slot.call_id.borrow();
                            mine.is_some() && mine.as_deref() == message.call_id.as_deref()
                        };
                        match message.kind.as_ref() {
                            "ring" => {
                                worker.stats.borrow_mut().rings += 1;
                                if own && !answered {
                                    answered = true;
                                    let answer = json!({ "type": "answer", "call_id": message.call_id });
                                    if ws.send(Message::Text(&answer.to_string())).await.is_err() {
                                        slot.settle(Err("could not send answer".into()));
                                    }
                                }
                            }
                            "connected" if own => {
                                slot.bridged.set(true);
                                slot.settle(Ok(()));
                            }
                            "claim_lost" => {
                                worker.stats.borrow_mut().claims_lost += 1;
                                if own {
                                    slot.settle(Err("claim_lost".into()));
                                }
                            }
                            "ring_cancel" => {
                                worker.stats.borrow_mut().ring_cancels += 1;
                                if own && !slot.bridged.get() {
                                    let reason = message.reason.as_deref().unwrap_or("?");
                                    slot.settle(Err(format!("ring_cancel ({reason})")));
                                }
                            }
                            "call_ended" => {
                                worker.stats.borrow_mut().calls_ended += 1;
                                if own {
                                    ended = true;
                                    if hangup.is_some() || hanging_up(&phases) {
                                        let _ = ws.send(Message::Close).await;
                                    } else {
                                        let reason = message.reason.as_deref().unwrap_or("?");
                                        worker.note(format!("softphone {index}: call ended early ({reason})"));
                                    }
                                }
                            }
                            "error" => {
                                worker.stats.borrow_mut().engine_errors += 1;
                                worker.note(format!(
                                    "softphone {index}: error {} {}",
                                    message.code.as_deref().unwrap_or("?"),
                                    message.message.as_deref().unwrap_or("")
                                ));
                            }
                            _ => {}
                        }
                    }
                    Frame::Ping(payload) => {
                        let _ = ws.send(Message::Pong(&payload)).await;
                    }
                    Frame::Close(reason) => {
                        if hangup.is_none() && !hanging_up(&phases) {
                            worker.unexpected_close(format!("softphone {index}: closed by the engine: {reason:?}"));
                        }
                        break;
                    }
                    _ => {}
                }
            }
            scheduled = next_tick(&mut ticker) => {
                seq += 1;
                let frame = encode_frame(Stamp {
                    direction: AGENT_TO_CALLER,
                    call: index as u32,
                    seq: seq - 1,
                    sent_ns: worker.clock.now_ns(),
                });
                let ok = ws.send(Message::Binary(&frame)).await.is_ok();
                worker.sent(AGENT_TO_CALLER, ok, scheduled);
            }
            changed = phases.changed() => {
                if changed.is_err() {
                    break;
                }
                match *phases.borrow_and_update() {
                    Phase::Stream { start } => {
                        if ticker.is_none() && worker.audio != AudioDirection::CallerToAgent && slot.bridged.get() {
                            let first = tokio::time::Instant::from_std(start + offset);
                            ticker = Some(tokio::time::interval_at(first, FRAME_INTERVAL));
                        }
                    }
                    Phase::Hangup => {
                        ticker = None;
                        hangup = Some(tokio::time::Instant::now() + HANGUP_TIMEOUT);
                        if ended || !slot.bridged.get() {
                            let _ = ws.send(Message::Close).await;
                        }
                    }
                    _ => ticker = None,
                }
            }
            _ = until(hangup) => {
                worker.note(format!("softphone {index}: no close within {HANGUP_TIMEOUT:?} of the hang-up"));
                break;
            }
        }
    }
    slot.settle(Err("softphone closed".into()));
}

/// Twilio's media stream for call `index`: sends caller audio, receives the agent's.
async fn twilio_stream(worker: Rc<Worker>, index: usize, stream_sid: String, mut ws: WsClient) {
    let slot = worker.slot(index);
    let mut phases = worker.phases.clone();
    let offset = tick_offset(index, worker.total_calls);
    let expected = Stamp {
        direction: AGENT_TO_CALLER,
        call: index as u32,
        seq: 0,
        sent_ns: 0,
    };
    let mut ticker: Option<tokio::time::Interval> = None;
    let mut seq = 0;
    let mut next_seq = 0;
    let mut hangup: Option<tokio::time::Instant> = None;
    let mut audio = [0u8; 2048];
    const PAYLOAD: &[u8] = br#""payload":""#;
    loop {
        tokio::select! {
            frame = ws.next() => {
                let frame = match frame {
                    Some(Ok(frame)) => frame,
                    Some(Err(err)) => {
                        worker.unexpected_close(format!("twilio stream {index}: {err}"));
                        break;
                    }
                    None => {
                        if hangup.is_none() && !hanging_up(&phases) {
                            worker.unexpected_close(format!("twilio stream {index}: socket ended"));
                        }
                        break;
                    }
                };
                match frame {
                    Frame::Text(text) => {
                        if let Some(at) = find(&text, PAYLOAD) {
                            let rest = &text[at + PAYLOAD.len()..];
                            let end = rest.iter().position(|&b| b == b'"').unwrap_or(rest.len());
                            match STANDARD.decode_slice(&rest[..end], &mut audio) {
                                Ok(len) => worker.received(expected, &audio[..len], &mut next_seq),
                                Err(_) => {
                                    if worker.streaming.get() {
                                        worker.stats.borrow_mut().foreign_audio += 1;
                                    }
                                }
                            }
                        } else if find(&text, br#""event":"clear""#).is_some() {
                            worker.stats.borrow_mut().clears += 1;
                        } else if find(&text, br#""event":"mark""#).is_some() {
                            // Echo marks at once, as if the audio before them had played.
                            if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&text) {
                                let echo = json!({
                                    "event": "mark",
                                    "streamSid": stream_sid,
                                    "mark": { "name": value["mark"]["name"] },
                                });
                                let _ = ws.send(Message::Text(&echo.to_string())).await;
                            }
                        }
                    }
                    Frame::Ping(payload) => {
                        let _ = ws.send(Message::Pong(&payload)).await;
                    }
                    Frame::Close(reason) => {
                        if hangup.is_none() && !hanging_up(&phases) {
                            worker.unexpected_close(format!("twilio stream {index}: closed by the engine: {reason:?}"));
                        }
                        break;
                    }
                    _ => {}
                }
            }
            scheduled = next_tick(&mut ticker) => {
                seq += 1;
                let frame = encode_frame(Stamp {
                    direction: CALLER_TO_AGENT,
                    call: index as u32,
                    seq: seq - 1,
                    sent_ns: worker.clock.now_ns(),
                });
                let text = twilio_media(&stream_sid, seq - 1, &frame);
                let ok = ws.send(Message::Text(&text)).await.is_ok();
                worker.sent(CALLER_TO_AGENT, ok, scheduled);
            }
            changed = phases.changed() => {
                if changed.is_err() {
                    break;
                }
                match *phases.borrow_and_update() {
                    Phase::Stream { start } => {
                        if ticker.is_none() && worker.audio != AudioDirection::AgentToCaller && slot.bridged.get() {
                            let first = tokio::time::Instant::from_std(start + offset);
                            ticker = Some(tokio::time::interval_at(first, FRAME_INTERVAL));
                        }
                    }
                    Phase::Hangup => {
                        ticker = None;
                        hangup = Some(tokio::time::Instant::now() + HANGUP_TIMEOUT);
                        seq += 1;
                        let stop = json!({
                            "event": "stop",
                            "sequenceNumber": (seq + 1).to_string(),
                            "streamSid": stream_sid,
                            "stop": { "accountSid": "AC00000000000000000000000000000000" },
                        });
                        let _ = ws.send(Message::Text(&stop.to_string())).await;
                    }
                    _ => ticker = None,
                }
            }
            _ = until(hangup) => {
                worker.note(format!("twilio stream {index}: no close within {HANGUP_TIMEOUT:?} of stop"));
                break;
            }
        }
    }
}

// ---- the parking scenario ------------------------------------------------------

/// Extra caller frames sent right after an unpark, `BURST_SPACING` apart, so that
/// "unpark → audio flowing" is resolved to about a millisecond instead of 20 ms.
const BURST_FRAMES: u32 = 30;
const BURST_SPACING: Duration = Duration::from_millis(1);
/// A park whose call is not connected to another agent within this long is given
/// up (the call is then left alone for the rest of the run).
const CYCLE_TIMEOUT: Duration = Duration::from_secs(10);
/// A caller frame sent less than this before its call's `park` was sent is "at the
/// switch": the engine may handle the park first and discard it.
const SWITCH_EDGE: Duration = Duration::from_millis(20);

/// Who is where in the parking scenario. Agents `0..calls` answer call `i` (own
/// number); agents `calls..calls + spares` start idle. Call `i` lives on thread
/// `i % threads` (as in the bridge scenario); spare `j` on thread `j % threads`.
/// A workspace holds up to `per_workspace` calls of one thread and its share of
/// that thread's spares, so a whole park/unpark cycle stays on one thread.
#[derive(Debug, Clone, Copy)]
struct ParkLayout {
    threads: usize,
    calls: usize,
    spares: usize,
    per_workspace: usize,
}

impl ParkLayout {
    fn calls_on(&self, thread: usize) -> usize {
        (self.calls + self.threads - 1 - thread) / self.threads
    }

    fn workspaces_on(&self, thread: usize) -> usize {
        self.calls_on(thread).div_ceil(self.per_workspace).max(1)
    }

    fn thread(&self, agent: usize) -> usize {
        if agent < self.calls {
            agent % self.threads
        } else {
            (agent - self.calls) % self.threads
        }
    }

    /// The agent's phone on its thread: its call's index there, then the spares.
    fn local(&self, agent: usize) -> usize {
        if agent < self.calls {
            agent / self.threads
        } else {
            self.calls_on(self.thread(agent)) + (agent - self.calls) / self.threads
        }
    }

    /// The agent's workspace among its thread's.
    fn local_workspace(&self, agent: usize) -> usize {
        if agent < self.calls {
            (agent / self.threads) / self.per_workspace
        } else {
            ((agent - self.calls) / self.threads) % self.workspaces_on(self.thread(agent))
        }
    }

    /// The agent's workspace number (the suffix of its workspace's name).
    fn workspace(&self, agent: usize) -> usize {
        self.thread(agent) + self.threads * self.local_workspace(agent)
    }

    fn workspace_count(&self) -> usize {
        (0..self.threads).map(|t| self.workspaces_on(t)).sum()
    }
}

#[derive(Debug, Clone, Copy)]
struct ParkPlan {
    layout: ParkLayout,
    interval: Duration,
}

/// One call of the parking scenario, as this thread sees it.
struct ParkCall {
    workspace: usize,
    call_id: RefCell<Option<String>>,
    /// The phone the call is connected to (`None` before it is bridged).
    holder: Cell<Option<usize>>,
    /// The phone that parked it last: its caller frames may still arrive there.
    previous: Cell<Option<usize>>,
    /// The phone that is to take it back.
    unparker: Cell<Option<usize>>,
    /// The generator's view: frames sent now must reach the holder (from its
    /// `connected` until its `park` is sent).
    connected: Cell<bool>,
    /// When `park` was sent, until the first hold audio arrives.
    park_sent: Cell<Option<u64>>,
    /// When `unpark` was sent, until the unparker's `connected`.
    unpark_sent: Cell<Option<u64>>,
    /// When `unpark` was sent, until the first caller frame at the unparker.
    flow_pending: Cell<Option<u64>>,
    /// Send times of every `park`.
    parks: RefCell<Vec<u64>>,
    /// Per sequence number: send time, and whether the call was connected.
    sent: RefCell<Vec<(u64, bool)>>,
    /// Per sequence number: arrived at some phone.
    received: RefCell<Vec<bool>>,
    /// The unparker got `connected` (or the cycle failed).
    cycle: tokio::sync::Notify,
    /// Start a burst of caller frames.
    burst: tokio::sync::Notify,
}

struct ParkPhone {
    workspace: usize,
    /// Calls this phone is to park.
    commands: mpsc::UnboundedSender<usize>,
    inbox: RefCell<Option<mpsc::UnboundedReceiver<usize>>>,
    current: Cell<Option<usize>>,
    /// The call this phone unparks as soon as it sees its `parked`.
    pending_unpark: Cell<Option<usize>>,
}

/// A generator thread's calls, phones and idle phones in the parking scenario.
struct ParkWorld {
    layout: ParkLayout,
    /// This generator thread.
    thread: usize,
    interval: Duration,
    calls: Vec<ParkCall>,
    phones: Vec<ParkPhone>,
    /// Per workspace (of this thread): idle phones, longest idle first.
    free: Vec<RefCell<std::collections::VecDeque<usize>>>,
    by_id: RefCell<std::collections::HashMap<String, usize>>,
}

impl ParkWorld {
    fn new(
        plan: &ParkPlan,
        thread: usize,
        calls: &[(usize, String)],
        spares: &[(usize, String)],
    ) -> ParkWorld {
        let layout = plan.layout;
        let call_states = calls
            .iter()
            .map(|&(i, _)| ParkCall {
                workspace: layout.local_workspace(i),
                call_id: RefCell::new(None),
                holder: Cell::new(None),
                previous: Cell::new(None),
                unparker: Cell::new(None),
                connected: Cell::new(false),
                park_sent: Cell::new(None),
                unpark_sent: Cell::new(None),
                flow_pending: Cell::new(None),
                parks: RefCell::new(Vec::new()),
                sent: RefCell::new(Vec::new()),
                received: RefCell::new(Vec::new()),
                cycle: tokio::sync::Notify::new(),
                burst: tokio::sync::Notify::new(),
            })
            .collect();
        let agents: Vec<usize> = calls
            .iter()
            .chain(spares)
            .map(|&(agent, _)| agent)
            .collect();
        let mut phones: Vec<(usize, ParkPhone)> = agents
            .iter()
            .map(|&agent| {
                let (commands, inbox) = mpsc::unbounded_channel();
                (
                    layout.local(agent),
                    ParkPhone {
                        workspace: layout.local_workspace(agent),
                        commands,
                        inbox: RefCell::new(Some(inbox)),
                        current: Cell::new(None),
                        pending_unpark: Cell::new(None),
                    },
                )
            })
            .collect();
        phones.sort_by_key(|(local, _)| *local);
        let free = (0..layout.workspaces_on(thread))
            .map(|_| RefCell::new(std::collections::VecDeque::new()))
            .collect::<Vec<_>>();
        for &(agent, _) in spares {
            free[layout.local_workspace(agent)]
                .borrow_mut()
                .push_back(layout.local(agent));
        }
        ParkWorld {
            layout,
            thread,
            interval: plan.interval,
            calls: call_states,
            phones: phones.into_iter().map(|(_, phone)| phone).collect(),
            free,
            by_id: RefCell::new(std::collections::HashMap::new()),
        }
    }

    fn call_of(&self, call_id: Option<&str>) -> Option<usize> {
        self.by_id.borrow().get(call_id?).copied()
    }

    /// Sorts every caller frame of this thread into connected / parked, delivered
    /// or not (once the run is over).
    fn account(&self, stats: &mut WorkerStats) {
        let edge = SWITCH_EDGE.as_nanos() as u64;
        let park = &mut stats.parking;
        for call in &self.calls {
            let parks = call.parks.borrow();
            let received = call.received.borrow();
            for (seq, &(sent_ns, connected)) in call.sent.borrow().iter().enumerate() {
                let arrived = received.get(seq).copied().unwrap_or(false);
                match (connected, arrived) {
                    (true, true) => park.connected_received += 1,
                    (true, false) => {
                        let at_switch = parks.iter().any(|&p| p >= sent_ns && p - sent_ns < edge);
                        if at_switch {
                            park.lost_at_switch += 1;
                        } else {
                            park.lost_outside_switch += 1;
                        }
                    }
                    (false, true) => park.parked_delivered += 1,
                    (false, false) => park.discarded_while_parked += 1,
                }
                if connected {
                    park.connected_sent += 1;
                } else {
                    park.parked_sent += 1;
                }
            }
        }
    }
}

/// Counters and latencies of the parking scenario (nanoseconds).
#[derive(Debug, Default)]
struct ParkStats {
    parks: u64,
    unparks: u64,
    /// Unparks answered by `connected`.
    cycles: u64,
    claims_lost: u64,
    /// A park was due but the workspace had no idle agent: skipped.
    no_free_agent: u64,
    /// Cycles that did not complete within `CYCLE_TIMEOUT`.
    stuck: u64,
    /// Cycles whose caller got no hold audio before the unparker's `connected`.
    no_hold_audio: u64,
    parked_notices: u64,
    unparked_notices: u64,
    released: u64,
    hold_messages: u64,
    clears: u64,
    misrouted: u64,
    /// `park` sent → the first hold-audio media message at the caller.
    park_to_hold: Histogram,
    /// `unpark` sent → the first caller frame at the unparking softphone.
    unpark_to_audio: Histogram,
    /// The same less the part that is the frame's own age when it was sent after
    /// the unpark: arrival − max(unpark sent, frame sent).
    unpark_to_audio_adjusted: Histogram,
    /// `unpark` sent → `connected`.
    unpark_to_connected: Histogram,
    connected_sent: u64,
    connected_received: u64,
    lost_at_switch: u64,
    lost_outside_switch: u64,
    parked_sent: u64,
    parked_delivered: u64,
    discarded_while_parked: u64,
}

impl ParkStats {
    fn merge(&mut self, o: &ParkStats) {
        self.parks += o.parks;
        self.unparks += o.unparks;
        self.cycles += o.cycles;
        self.claims_lost += o.claims_lost;
        self.no_free_agent += o.no_free_agent;
        self.stuck += o.stuck;
        self.no_hold_audio += o.no_hold_audio;
        self.parked_notices += o.parked_notices;
        self.unparked_notices += o.unparked_notices;
        self.released += o.released;
        self.hold_messages += o.hold_messages;
        self.clears += o.clears;
        self.misrouted += o.misrouted;
        self.park_to_hold.merge(&o.park_to_hold);
        self.unpark_to_audio.merge(&o.unpark_to_audio);
        self.unpark_to_audio_adjusted
            .merge(&o.unpark_to_audio_adjusted);
        self.unpark_to_connected.merge(&o.unpark_to_connected);
        self.connected_sent += o.connected_sent;
        self.connected_received += o.connected_received;
        self.lost_at_switch += o.lost_at_switch;
        self.lost_outside_switch += o.lost_outside_switch;
        self.parked_sent += o.parked_sent;
        self.parked_delivered += o.parked_delivered;
        self.discarded_while_parked += o.discarded_while_parked;
    }
}

/// A small deterministic generator for the park schedule's jitter.
fn next_random(state: &mut u64) -> f64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state >> 11) as f64 / (1u64 << 53) as f64
}

/// Parks call `c` every interval (jittered) and hands it to an idle phone of its
/// workspace, which unparks it when it sees the `parked`.
async fn park_driver(worker: Rc<Worker>, c: usize, start: Instant) {
    let Some(world) = &worker.park else { return };
    let call = &world.calls[c];
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ ((c as u64 + 1) * 0x2545_F491_4F6C_DD1D);
    let mut next = start + world.interval.mul_f64(next_random(&mut rng));
    loop {
        tokio::time::sleep_until(next.into()).await;
        if !worker.streaming.get() {
            break;
        }
        next =
            (next + world.interval.mul_f64(0.9 + 0.2 * next_random(&mut rng))).max(Instant::now());
        let Some(holder) = call.holder.get().filter(|_| call.connected.get()) else {
            continue;
        };
        let Some(unparker) = world.free[call.workspace].borrow_mut().pop_front() else {
            worker.stats.borrow_mut().parking.no_free_agent += 1;
            continue;
        };
        world.phones[unparker].pending_unpark.set(Some(c));
        call.unparker.set(Some(unparker));
        if world.phones[holder].commands.send(c).is_err() {
            break;
        }
        let done = tokio::time::timeout(CYCLE_TIMEOUT, call.cycle.notified()).await;
        if done.is_err() || !call.connected.get() {
            let mut stats = worker.stats.borrow_mut();
            stats.parking.stuck += 1;
            stats.note(format!(
                "parking: a call of thread {}: not connected again within {CYCLE_TIMEOUT:?} of its park; left alone",
                world.thread
            ));
            break;
        }
    }
}

/// A softphone of the parking scenario: answers its own call once, parks the call
/// it holds when told to, unparks the call it was given as soon as it is parked.
async fn park_phone(worker: Rc<Worker>, p: usize, mut ws: WsClient) {
    let Some(world) = &worker.park else { return };
    let me = &world.phones[p];
    let Some(mut inbox) = me.inbox.borrow_mut().take() else {
        return;
    };
    let slot = (p < world.calls.len()).then(|| &worker.slots[p]);
    let mut phases = worker.phases.clone();
    let mut answered = false;
    let mut hangup: Option<tokio::time::Instant> = None;
    let mut ended = false;
    loop {
        tokio::select! {
            frame = ws.next() => {
                let frame = match frame {
                    Some(Ok(frame)) => frame,
                    Some(Err(err)) => {
                        worker.unexpected_close(format!("softphone {p}: {err}"));
                        break;
                    }
                    None => {
                        if hangup.is_none() && !hanging_up(&phases) {
                            worker.unexpected_close(format!("softphone {p}: socket ended"));
                        }
                        break;
                    }
                };
                match frame {
                    Frame::Binary(audio) => park_audio(&worker, world, p, &audio),
                    Frame::Text(text) => {
                        let Ok(message) = serde_json::from_slice::<EngineMessage<'_>>(&text) else {
                            worker.note(format!("softphone {p}: unreadable {text:?}"));
                            continue;
                        };
                        let call_id = message.call_id.as_deref();
                        let own = slot.is_some_and(|slot| {
                            let mine = slot.call_id.borrow();
                            mine.is_some() && mine.as_deref() == call_id
                        });
                        match message.kind.as_ref() {
                            "ring" => {
                                worker.stats.borrow_mut().rings += 1;
                                if own && !answered {
                                    answered = true;
                                    let answer = json!({ "type": "answer", "call_id": call_id });
                                    if ws.send(Message::Text(&answer.to_string())).await.is_err() {
                                        if let Some(slot) = slot {
                                            slot.settle(Err("could not send answer".into()));
                                        }
                                    }
                                }
                            }
                            "connected" => {
                                if let (true, Some(slot), Some(id)) = (own, slot, call_id) {
                                    if !slot.bridged.get() {
                                        world.by_id.borrow_mut().insert(id.to_owned(), p);
                                        *world.calls[p].call_id.borrow_mut() = Some(id.to_owned());
                                    }
                                }
                                let Some(c) = world.call_of(call_id) else {
                                    worker.note(format!("softphone {p}: connected to an unknown call"));
                                    continue;
                                };
                                let call = &world.calls[c];
                                call.holder.set(Some(p));
                                call.unparker.set(None);
                                call.connected.set(true);
                                me.current.set(Some(c));
                                if let Some(sent) = call.unpark_sent.take() {
                                    let mut stats = worker.stats.borrow_mut();
                                    stats.parking.cycles += 1;
                                    if call.park_sent.take().is_some() {
                                        stats.parking.no_hold_audio += 1;
                                    }
                                    stats.parking.unpark_to_connected.record(worker.clock.now_ns().saturating_sub(sent));
                                    call.cycle.notify_one();
                                }
                                if let Some(slot) = slot.filter(|slot| !slot.bridged.get() && own) {
                                    slot.bridged.set(true);
                                    slot.settle(Ok(()));
                                }
                            }
                            "claim_lost" => {
                                let mut stats = worker.stats.borrow_mut();
                                stats.claims_lost += 1;
                                stats.parking.claims_lost += 1;
                                if own {
                                    if let Some(slot) = slot {
                                        slot.settle(Err("claim_lost".into()));
                                    }
                                }
                                if let Some(c) = world.call_of(call_id) {
                                    if world.calls[c].unparker.get() == Some(p) {
                                        world.calls[c].cycle.notify_one();
                                        world.free[me.workspace].borrow_mut().push_back(p);
                                    }
                                }
                            }
                            "released" => {
                                worker.stats.borrow_mut().parking.released += 1;
                                me.current.set(None);
                                world.free[me.workspace].borrow_mut().push_back(p);
                            }
                            "parked" => {
                                worker.stats.borrow_mut().parking.parked_notices += 1;
                                let Some(c) = me.pending_unpark.get() else { continue };
                                if world.call_of(call_id) != Some(c) {
                                    continue;
                                }
                                me.pending_unpark.set(None);
                                let call = &world.calls[c];
                                let unpark = json!({ "type": "unpark", "call_id": call_id });
                                let now = worker.clock.now_ns();
                                call.unpark_sent.set(Some(now));
                                call.flow_pending.set(Some(now));
                                call.burst.notify_one();
                                worker.stats.borrow_mut().parking.unparks += 1;
                                if ws.send(Message::Text(&unpark.to_string())).await.is_err() {
                                    worker.stats.borrow_mut().send_errors += 1;
                                }
                            }
                            "unparked" => worker.stats.borrow_mut().parking.unparked_notices += 1,
                            "call_ended" => {
                                worker.stats.borrow_mut().calls_ended += 1;
                                if me.current.get().is_some() && me.current.get() == world.call_of(call_id) {
                                    me.current.set(None);
                                    ended = true;
                                    if hangup.is_some() || hanging_up(&phases) {
                                        let _ = ws.send(Message::Close).await;
                                    } else {
                                        let reason = message.reason.as_deref().unwrap_or("?");
                                        worker.note(format!("softphone {p}: call ended early ({reason})"));
                                    }
                                }
                            }
                            "error" => {
                                worker.stats.borrow_mut().engine_errors += 1;
                                worker.note(format!(
                                    "softphone {p}: error {} {}",
                                    message.code.as_deref().unwrap_or("?"),
                                    message.message.as_deref().unwrap_or("")
                                ));
                            }
                            _ => {}
                        }
                    }
                    Frame::Ping(payload) => {
                        let _ = ws.send(Message::Pong(&payload)).await;
                    }
                    Frame::Close(reason) => {
                        if hangup.is_none() && !hanging_up(&phases) {
                            worker.unexpected_close(format!("softphone {p}: closed by the engine: {reason:?}"));
                        }
                        break;
                    }
                    _ => {}
                }
            }
            Some(c) = inbox.recv() => {
                let call = &world.calls[c];
                let Some(id) = call.call_id.borrow().clone() else { continue };
                let park = json!({ "type": "park", "call_id": id });
                let now = worker.clock.now_ns();
                call.connected.set(false);
                call.previous.set(Some(p));
                call.parks.borrow_mut().push(now);
                call.park_sent.set(Some(now));
                worker.stats.borrow_mut().parking.parks += 1;
                if ws.send(Message::Text(&park.to_string())).await.is_err() {
                    worker.stats.borrow_mut().send_errors += 1;
                }
            }
            changed = phases.changed() => {
                if changed.is_err() {
                    break;
                }
                if let Phase::Hangup = *phases.borrow_and_update() {
                    hangup = Some(tokio::time::Instant::now() + HANGUP_TIMEOUT);
                    if ended || me.current.get().is_none() {
                        let _ = ws.send(Message::Close).await;
                    }
                }
            }
            _ = until(hangup) => {
                worker.note(format!("softphone {p}: no close within {HANGUP_TIMEOUT:?} of the hang-up"));
                break;
            }
        }
    }
    if let Some(slot) = slot {
        slot.settle(Err("softphone closed".into()));
    }
}

/// A caller frame at softphone `p`.
fn park_audio(worker: &Worker, world: &ParkWorld, p: usize, audio: &[u8]) {
    let now = worker.clock.now_ns();
    let mut stats = worker.stats.borrow_mut();
    let Some(stamp) = decode_frame(audio) else {
        if worker.streaming.get() {
            stats.foreign_audio += 1;
        }
        return;
    };
    let global = stamp.call as usize;
    let c = global / worker.threads;
    let call = world
        .calls
        .get(c)
        .filter(|_| stamp.direction == CALLER_TO_AGENT && global % worker.threads == world.thread);
    let Some(call) = call else {
        stats.caller_to_agent.misrouted += 1;
        stats.parking.misrouted += 1;
        return;
    };
    let mine = [call.holder.get(), call.previous.get(), call.unparker.get()].contains(&Some(p));
    if !mine {
        stats.caller_to_agent.misrouted += 1;
        stats.parking.misrouted += 1;
        return;
    }
    {
        let mut received = call.received.borrow_mut();
        let seq = stamp.seq as usize;
        if received.len() <= seq {
            received.resize(seq + 1, false);
        }
        if received[seq] {
            stats.caller_to_agent.out_of_order += 1;
        }
        received[seq] = true;
    }
    stats.caller_to_agent.received += 1;
    stats
        .caller_to_agent
        .latency
        .record(now.saturating_sub(stamp.sent_ns));
    if call.unparker.get() == Some(p) || call.holder.get() == Some(p) {
        if let Some(sent) = call.flow_pending.take() {
            stats
                .parking
                .unpark_to_audio
                .record(now.saturating_sub(sent));
            stats
                .parking
                .unpark_to_audio_adjusted
                .record(now.saturating_sub(sent.max(stamp.sent_ns)));
        }
    }
}

/// Twilio's media stream for call `index` in the parking scenario: paced caller
/// frames (and a burst at every unpark); hold audio is any media that is not a
/// generator frame.
async fn park_twilio(worker: Rc<Worker>, index: usize, stream_sid: String, mut ws: WsClient) {
    let Some(world) = &worker.park else { return };
    let c = index / worker.threads;
    let call = &world.calls[c];
    let slot = worker.slot(index);
    let mut phases = worker.phases.clone();
    let offset = tick_offset(index, worker.total_calls);
    let mut ticker: Option<tokio::time::Interval> = None;
    let mut burst: Option<(tokio::time::Interval, u32)> = None;
    let mut seq: u64 = 0;
    let mut hangup: Option<tokio::time::Instant> = None;
    let mut audio = [0u8; 4096];
    const PAYLOAD: &[u8] = br#""payload":""#;
    loop {
        let send = tokio::select! {
            frame = ws.next() => {
                let frame = match frame {
                    Some(Ok(frame)) => frame,
                    Some(Err(err)) => {
                        worker.unexpected_close(format!("twilio stream {index}: {err}"));
                        break;
                    }
                    None => {
                        if hangup.is_none() && !hanging_up(&phases) {
                            worker.unexpected_close(format!("twilio stream {index}: socket ended"));
                        }
                        break;
                    }
                };
                match frame {
                    Frame::Text(text) => {
                        if let Some(at) = find(&text, PAYLOAD) {
                            let rest = &text[at + PAYLOAD.len()..];
                            let end = rest.iter().position(|&b| b == b'"').unwrap_or(rest.len());
                            let generator = STANDARD
                                .decode_slice(&rest[..end], &mut audio)
                                .ok()
                                .and_then(|len| decode_frame(&audio[..len]));
                            let now = worker.clock.now_ns();
                            let mut stats = worker.stats.borrow_mut();
                            if generator.is_some() {
                                // One-way audio: nothing of ours comes back.
                                stats.agent_to_caller.misrouted += 1;
                            } else {
                                stats.parking.hold_messages += 1;
                                if let Some(sent) = call.park_sent.take() {
                                    stats.parking.park_to_hold.record(now.saturating_sub(sent));
                                }
                            }
                        } else if find(&text, br#""event":"clear""#).is_some() {
                            let mut stats = worker.stats.borrow_mut();
                            stats.clears += 1;
                            stats.parking.clears += 1;
                        } else if find(&text, br#""event":"mark""#).is_some() {
                            if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&text) {
                                let echo = json!({
                                    "event": "mark",
                                    "streamSid": stream_sid,
                                    "mark": { "name": value["mark"]["name"] },
                                });
                                let _ = ws.send(Message::Text(&echo.to_string())).await;
                            }
                        }
                    }
                    Frame::Ping(payload) => {
                        let _ = ws.send(Message::Pong(&payload)).await;
                    }
                    Frame::Close(reason) => {
                        if hangup.is_none() && !hanging_up(&phases) {
                            worker.unexpected_close(format!("twilio stream {index}: closed by the engine: {reason:?}"));
                        }
                        break;
                    }
                    _ => {}
                }
                None
            }
            scheduled = next_tick(&mut ticker) => Some(scheduled),
            scheduled = next_burst(&mut burst) => Some(scheduled),
            () = call.burst.notified(), if ticker.is_some() => {
                let mut interval = tokio::time::interval(BURST_SPACING);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                burst = Some((interval, BURST_FRAMES));
                None
            }
            changed = phases.changed() => {
                if changed.is_err() {
                    break;
                }
                match *phases.borrow_and_update() {
                    Phase::Stream { start } => {
                        if ticker.is_none() && slot.bridged.get() {
                            let first = tokio::time::Instant::from_std(start + offset);
                            ticker = Some(tokio::time::interval_at(first, FRAME_INTERVAL));
                        }
                    }
                    Phase::Hangup => {
                        ticker = None;
                        burst = None;
                        hangup = Some(tokio::time::Instant::now() + HANGUP_TIMEOUT);
                        seq += 1;
                        let stop = json!({
                            "event": "stop",
                            "sequenceNumber": (seq + 1).to_string(),
                            "streamSid": stream_sid,
                            "stop": { "accountSid": "AC00000000000000000000000000000000" },
                        });
                        let _ = ws.send(Message::Text(&stop.to_string())).await;
                    }
                    _ => {
                        ticker = None;
                        burst = None;
                    }
                }
                None
            }
            _ = until(hangup) => {
                worker.note(format!("twilio stream {index}: no close within {HANGUP_TIMEOUT:?} of stop"));
                break;
            }
        };
        if let Some(scheduled) = send {
            let sent_ns = worker.clock.now_ns();
            call.sent.borrow_mut().push((sent_ns, call.connected.get()));
            let frame = encode_frame(Stamp {
                direction: CALLER_TO_AGENT,
                call: index as u32,
                seq,
                sent_ns,
            });
            let text = twilio_media(&stream_sid, seq, &frame);
            seq += 1;
            let ok = ws.send(Message::Text(&text)).await.is_ok();
            worker.sent(CALLER_TO_AGENT, ok, scheduled);
        }
    }
}

async fn next_burst(burst: &mut Option<(tokio::time::Interval, u32)>) -> tokio::time::Instant {
    match burst {
        Some((interval, left)) if *left > 0 => {
            let at = interval.tick().await;
            *left -= 1;
            if *left == 0 {
                *burst = None;
            }
            at
        }
        _ => std::future::pending().await,
    }
}

/// What the report says about the parking scenario.
#[derive(Debug, Serialize)]
struct ParkingReport {
    park_interval_seconds: f64,
    workspaces: usize,
    calls_per_workspace: usize,
    spare_agents: usize,
    parks: u64,
    unparks: u64,
    /// Park → hold → unpark → connected, complete.
    cycles: u64,
    claims_lost: u64,
    skipped_no_free_agent: u64,
    stuck_cycles: u64,
    /// Cycles whose caller got no hold audio before the unparker's `connected`
    /// (the engine cleared it before it was written).
    cycles_without_hold_audio: u64,
    parked_notices: u64,
    unparked_notices: u64,
    released: u64,
    hold_media_messages: u64,
    clears: u64,
    park_to_hold: LatencyReport,
    unpark_to_audio: LatencyReport,
    unpark_to_audio_adjusted: LatencyReport,
    unpark_to_connected: LatencyReport,
    /// Caller frames sent while the call was connected (from the agent's
    /// `connected` to its `park`).
    connected_sent: u64,
    connected_received: u64,
    /// Of those not received: sent less than `switch_edge_ms` before a park.
    lost_at_switch: u64,
    lost_outside_switch: u64,
    switch_edge_ms: f64,
    /// Caller frames sent between a `park` and the unparker's `connected`.
    parked_sent: u64,
    /// Of those, delivered anyway (sent after the engine had connected the
    /// unparker but before its `connected` arrived, or just before the park).
    parked_delivered: u64,
    discarded_while_parked: u64,
    misrouted: u64,
}

#[derive(Debug, Serialize)]
struct LatencyReport {
    count: u64,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    mean_us: f64,
}

impl From<&Histogram> for LatencyReport {
    fn from(h: &Histogram) -> Self {
        LatencyReport {
            count: h.count(),
            p50_us: h.percentile(0.5) as f64 / 1e3,
            p99_us: h.percentile(0.99) as f64 / 1e3,
            max_us: h.max() as f64 / 1e3,
            mean_us: h.mean() / 1e3,
        }
    }
}

impl ParkingReport {
    fn new(s: &ParkStats, layout: ParkLayout, args: &LoadtestArgs) -> ParkingReport {
        ParkingReport {
            park_interval_seconds: args.parking.park_interval,
            workspaces: layout.workspace_count(),
            calls_per_workspace: layout.per_workspace,
            spare_agents: layout.spares,
            parks: s.parks,
            unparks: s.unparks,
            cycles: s.cycles,
            claims_lost: s.claims_lost,
            skipped_no_free_agent: s.no_free_agent,
            stuck_cycles: s.stuck,
            cycles_without_hold_audio: s.no_hold_audio,
            parked_notices: s.parked_notices,
            unparked_notices: s.unparked_notices,
            released: s.released,
            hold_media_messages: s.hold_messages,
            clears: s.clears,
            park_to_hold: (&s.park_to_hold).into(),
            unpark_to_audio: (&s.unpark_to_audio).into(),
            unpark_to_audio_adjusted: (&s.unpark_to_audio_adjusted).into(),
            unpark_to_connected: (&s.unpark_to_connected).into(),
            connected_sent: s.connected_sent,
            connected_received: s.connected_received,
            lost_at_switch: s.lost_at_switch,
            lost_outside_switch: s.lost_outside_switch,
            switch_edge_ms: SWITCH_EDGE.as_secs_f64() * 1e3,
            parked_sent: s.parked_sent,
            parked_delivered: s.parked_delivered,
            discarded_while_parked: s.discarded_while_parked,
            misrouted: s.misrouted,
        }
    }
}

fn render_parking(s: &mut String, p: &ParkingReport) {
    let _ = writeln!(
        s,
        "  parking: every {:.1} s per call; {} workspaces of ≤ {} calls, {} spare agents",
        p.park_interval_seconds, p.workspaces, p.calls_per_workspace, p.spare_agents
    );
    let _ = writeln!(
        s,
        "    {} parks, {} unparks, {} cycles complete ({} without hold audio), {} claim_lost, {} skipped (no idle agent), {} stuck; {} parked / {} unparked notices, {} released, {} hold media messages, {} clears",
        p.parks, p.unparks, p.cycles, p.cycles_without_hold_audio, p.claims_lost, p.skipped_no_free_agent, p.stuck_cycles,
        p.parked_notices, p.unparked_notices, p.released, p.hold_media_messages, p.clears
    );
    let _ = writeln!(
        s,
        "    {:<38} {:>8} {:>10} {:>10} {:>10} {:>10}",
        "latency (µs)", "count", "p50", "p99", "max", "mean"
    );
    for (name, l) in [
        ("park → hold audio", &p.park_to_hold),
        ("unpark → audio flowing", &p.unpark_to_audio),
        (
            "  less the frame's age (adjusted)",
            &p.unpark_to_audio_adjusted,
        ),
        ("unpark → connected", &p.unpark_to_connected),
    ] {
        let _ = writeln!(
            s,
            "    {name:<38} {:>8} {:>10.0} {:>10.0} {:>10.0} {:>10.0}",
            l.count, l.p50_us, l.p99_us, l.max_us, l.mean_us
        );
    }
    let _ = writeln!(
        s,
        "    caller frames while connected: {} sent, {} received, {} lost outside the switch, {} lost at the switch (sent < {:.0} ms before a park)",
        p.connected_sent, p.connected_received, p.lost_outside_switch, p.lost_at_switch, p.switch_edge_ms
    );
    let _ = writeln!(
        s,
        "    caller frames while parked (park sent → connected seen): {} sent, {} delivered anyway, {} discarded; {} misrouted",
        p.parked_sent, p.parked_delivered, p.discarded_while_parked, p.misrouted
    );
}

// ---- the WebSocket client -----------------------------------------------------

/// The server's answer to `Sec-WebSocket-Key` is keyed with this (RFC 6455 §1.3).
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Larger frames from the engine are a protocol error here.
const WS_MAX_FRAME: usize = 1 << 20;

/// A frame from the engine.
#[derive(Debug)]
enum Frame {
    Text(Bytes),
    Binary(Bytes),
    Ping(Bytes),
    Pong,
    Close(Option<u16>),
}

/// A frame to the engine.
enum Message<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
    Pong(&'a [u8]),
    /// Close with 1000 (normal closure).
    Close,
}

/// A minimal RFC 6455 client on a `TCP_NODELAY` socket. The generator must not add
/// Nagle delays to the latency it measures, and awc offers no way to set the option;
/// this is also cheaper per frame than awc's framed codec. `ws://` only.
struct WsClient {
    stream: tokio::net::TcpStream,
    read: BytesMut,
    /// Reused for every outgoing frame.
    write: Vec<u8>,
    /// xorshift32 state for the masking keys (masking defeats proxy cache
    /// poisoning; on loopback any key will do, but it must be there).
    mask: u32,
    /// A fragmented text or binary message being put together.
    fragments: Option<(u8, BytesMut)>,
}

impl WsClient {
    async fn connect(url: &str, headers: &[(&str, &str)]) -> anyhow::Result<WsClient> {
        let rest = url
            .strip_prefix("ws://")
            .with_context(|| format!("{url}: only ws:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        let mut stream = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::net::TcpStream::connect(authority),
        )
        .await
        .with_context(|| format!("connecting to {authority} timed out"))?
        .with_context(|| format!("connecting to {authority}"))?;
        stream.set_nodelay(true)?;
        let mut nonce = [0u8; 16];
        getrandom::getrandom(&mut nonce).context("random WebSocket key")?;
        let key = STANDARD.encode(nonce);
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        );
        for (name, value) in headers {
            let _ = write!(request, "{name}: {value}\r\n");
        }
        request.push_str("\r\n");
        let handshake = async {
            stream.write_all(request.as_bytes()).await?;
            let mut read = BytesMut::with_capacity(4096);
            loop {
                if let Some(at) = find(&read, b"\r\n\r\n") {
                    let head = read.split_to(at + 4);
                    return anyhow::Ok((head, read));
                }
                anyhow::ensure!(read.len() < 16 * 1024, "oversized handshake response");
                if stream.read_buf(&mut read).await? == 0 {
                    bail!("closed during the handshake");
                }
            }
        };
        let (head, read) = tokio::time::timeout(Duration::from_secs(10), handshake)
            .await
            .context("no handshake response in time")??;
        let head = String::from_utf8_lossy(&head);
        let status = head.lines().next().unwrap_or_default();
        anyhow::ensure!(
            status.split_whitespace().nth(1) == Some("101"),
            "handshake refused: {status}"
        );
        let accept = STANDARD.encode(Sha1::digest(format!("{key}{WS_GUID}").as_bytes()));
        let accepted = head.lines().any(|line| {
            line.split_once(':').is_some_and(|(name, value)| {
                name.trim().eq_ignore_ascii_case("sec-websocket-accept") && value.trim() == accept
            })
        });
        anyhow::ensure!(
            accepted,
            "the handshake answer has a wrong Sec-WebSocket-Accept"
        );
        let seed = u32::from_le_bytes([nonce[0], nonce[1], nonce[2], nonce[3]]) | 1;
        Ok(WsClient {
            stream,
            read,
            write: Vec::with_capacity(512),
            mask: seed,
            fragments: None,
        })
    }

    /// Sends one unfragmented, masked frame.
    async fn send(&mut self, message: Message<'_>) -> std::io::Result<()> {
        const NORMAL_CLOSURE: [u8; 2] = 1000u16.to_be_bytes();
        let (opcode, payload): (u8, &[u8]) = match message {
            Message::Text(text) => (0x1, text.as_bytes()),
            Message::Binary(bytes) => (0x2, bytes),
            Message::Pong(bytes) => (0xA, bytes),
            Message::Close => (0x8, &NORMAL_CLOSURE),
        };
        let out = &mut self.write;
        out.clear();
        out.push(0x80 | opcode);
        match payload.len() {
            len @ 0..=125 => out.push(0x80 | len as u8),
            len @ 126..=0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        self.mask ^= self.mask << 13;
        self.mask ^= self.mask >> 17;
        self.mask ^= self.mask << 5;
        let key = self.mask.to_be_bytes();
        out.extend_from_slice(&key);
        let start = out.len();
        out.extend_from_slice(payload);
        for (i, byte) in out[start..].iter_mut().enumerate() {
            *byte ^= key[i & 3];
        }
        self.stream.write_all(out).await
    }

    /// The next frame; `None` once the engine closed the TCP connection.
    /// Cancel-safe: a partly received frame stays buffered.
    async fn next(&mut self) -> Option<std::io::Result<Frame>> {
        loop {
            match self.parse() {
                Ok(Some(frame)) => return Some(Ok(frame)),
                Ok(None) => {}
                Err(err) => return Some(Err(err)),
            }
            match self.stream.read_buf(&mut self.read).await {
                Ok(0) => return None,
                Ok(_) => {}
                Err(err) => return Some(Err(err)),
            }
        }
    }

    /// Takes one complete frame off the read buffer, if there is one.
    fn parse(&mut self) -> std::io::Result<Option<Frame>> {
        let invalid =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
        loop {
            let buf = &self.read[..];
            if buf.len() < 2 {
                return Ok(None);
            }
            let fin = buf[0] & 0x80 != 0;
            let opcode = buf[0] & 0x0F;
            let masked = buf[1] & 0x80 != 0;
            let (len, mut at) = match buf[1] & 0x7F {
                126 if buf.len() >= 4 => (usize::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
                127 if buf.len() >= 10 => {
                    let mut len = [0u8; 8];
                    len.copy_from_slice(&buf[2..10]);
                    (u64::from_be_bytes(len) as usize, 10)
                }
                126 | 127 => return Ok(None),
                len => (usize::from(len), 2),
            };
            if len > WS_MAX_FRAME {
                return Err(invalid("frame too large"));
            }
            let key = if masked {
                if buf.len() < at + 4 {
                    return Ok(None);
                }
                let key = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
                at += 4;
                Some(key)
            } else {
                None
            };
            if buf.len() < at + len {
                return Ok(None);
            }
            let mut payload = self.read.split_to(at + len).split_off(at);
            if let Some(key) = key {
                for (i, byte) in payload.iter_mut().enumerate() {
                    *byte ^= key[i & 3];
                }
            }
            let data = |opcode: u8, payload: Bytes| {
                if opcode == 0x1 {
                    Frame::Text(payload)
                } else {
                    Frame::Binary(payload)
                }
            };
            return Ok(Some(match opcode {
                0x0 => {
                    let Some((_, message)) = &mut self.fragments else {
                        return Err(invalid("continuation without a first fragment"));
                    };
                    message.extend_from_slice(&payload);
                    if !fin {
                        continue;
                    }
                    let Some((opcode, message)) = self.fragments.take() else {
                        return Err(invalid("lost fragments"));
                    };
                    data(opcode, message.freeze())
                }
                0x1 | 0x2 if !fin => {
                    self.fragments = Some((opcode, payload));
                    continue;
                }
                0x1 | 0x2 => data(opcode, payload.freeze()),
                0x8 => Frame::Close(
                    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]])),
                ),
                0x9 => Frame::Ping(payload.freeze()),
                0xA => Frame::Pong,
                _ => return Err(invalid("unknown opcode")),
            }));
        }
    }
}

// ---- the report ----------------------------------------------------------------

#[derive(Debug, Serialize)]
struct Report {
    command: String,
    calls_requested: usize,
    calls_bridged: usize,
    calls_failed: usize,
    seconds: u64,
    /// `bridge` or `parking`.
    scenario: &'static str,
    /// `both`, `caller-to-agent` or `agent-to-caller`.
    audio: &'static str,
    ring: &'static str,
    engine: EngineInfo,
    setup: SetupInfo,
    caller_to_agent: DirectionReport,
    agent_to_caller: DirectionReport,
    engine_cpu: Option<EngineCpu>,
    engine_memory: Option<EngineMemory>,
    generator: GeneratorInfo,
    machine: Option<MachineInfo>,
    protocol: ProtocolInfo,
    parking: Option<ParkingReport>,
    targets: Vec<TargetCheck>,
}

#[derive(Debug, Serialize)]
struct EngineInfo {
    mode: &'static str,
    pid: Option<u32>,
    /// HTTP workers asked for (0: the engine's default, one per core).
    workers: usize,
    log: Option<String>,
    log_warnings: usize,
    log_errors: usize,
    log_problems: Vec<String>,
    exit: Option<String>,
}

impl EngineInfo {
    fn external(pid: Option<u32>) -> EngineInfo {
        EngineInfo {
            mode: "external",
            pid,
            workers: 0,
            log: None,
            log_warnings: 0,
            log_errors: 0,
            log_problems: Vec::new(),
            exit: None,
        }
    }
}

#[derive(Debug, Serialize)]
struct SetupInfo {
    /// Agents, numbers, softphones and calls: everything before the audio.
    total_seconds: f64,
    softphones_seconds: f64,
    bridging_seconds: f64,
    calls_per_second: f64,
    /// Webhook → the answering softphone's `connected`.
    call_setup_p50_ms: f64,
    call_setup_p99_ms: f64,
}

#[derive(Debug, Serialize)]
struct DirectionReport {
    sent: u64,
    received: u64,
    lost: u64,
    out_of_order: u64,
    misrouted: u64,
    latency_p50_us: f64,
    latency_p90_us: f64,
    latency_p99_us: f64,
    latency_p999_us: f64,
    latency_max_us: f64,
    latency_mean_us: f64,
}

impl From<&DirectionStats> for DirectionReport {
    fn from(stats: &DirectionStats) -> Self {
        let us = |ns: u64| ns as f64 / 1e3;
        DirectionReport {
            sent: stats.sent,
            received: stats.received,
            lost: stats.sent.saturating_sub(stats.received),
            out_of_order: stats.out_of_order,
            misrouted: stats.misrouted,
            latency_p50_us: us(stats.latency.percentile(0.5)),
            latency_p90_us: us(stats.latency.percentile(0.9)),
            latency_p99_us: us(stats.latency.percentile(0.99)),
            latency_p999_us: us(stats.latency.percentile(0.999)),
            latency_max_us: us(stats.latency.max()),
            latency_mean_us: stats.latency.mean() / 1e3,
        }
    }
}

#[derive(Debug, Serialize)]
struct EngineCpu {
    seconds: f64,
    user_seconds: f64,
    /// Kernel time: on loopback this includes delivering what the engine sends into
    /// the generator's sockets.
    system_seconds: f64,
    allowed_cpus: Option<String>,
    window_seconds: f64,
    /// Of one core.
    utilisation_pct: f64,
    /// The engine's own count (`switchboard_audio_frames_relayed`), both directions.
    frames_relayed: u64,
    frames_dropped: Option<u64>,
    us_per_frame: Option<f64>,
    threads: Vec<ThreadCpu>,
}

#[derive(Debug, Serialize)]
struct ThreadCpu {
    name: String,
    seconds: f64,
    utilisation_pct: f64,
}

#[derive(Debug, Serialize)]
struct EngineMemory {
    /// After start-up and the admin API calls, before any socket.
    idle_kib: u64,
    /// With every softphone connected and available.
    with_softphones_kib: u64,
    /// The larger of the mid-run and end-of-run samples with every call bridged.
    bridged_kib: u64,
    /// (bridged − idle) / calls: call, Twilio stream and softphone together.
    kib_per_bridged_call: f64,
    /// (bridged − with softphones) / calls.
    kib_per_call_beyond_softphone: f64,
}

#[derive(Debug, Serialize)]
struct GeneratorInfo {
    threads: usize,
    allowed_cpus: Option<String>,
    cpu_seconds: f64,
    user_seconds: f64,
    system_seconds: f64,
    utilisation_pct: f64,
    thread_utilisation_pct: Vec<f64>,
    send_lag_p50_us: f64,
    send_lag_p99_us: f64,
    send_lag_max_us: f64,
    /// A generator thread was over 90 % busy, its sends ran late or the machine was
    /// over 90 % busy: latency figures then include queueing for the CPU.
    saturated: bool,
}

/// The whole machine over the measured window (`/proc/stat`).
#[derive(Debug, Serialize)]
struct MachineInfo {
    cpus: usize,
    busy_pct_of_one_core: f64,
    busy_pct_of_machine: f64,
    /// Busy time that was neither the engine's nor the generator's (other processes,
    /// and interrupt time the kernel did not charge to a process).
    others_pct_of_one_core: f64,
}

#[derive(Debug, Serialize)]
struct ProtocolInfo {
    rings: u64,
    ring_cancels: u64,
    claims_lost: u64,
    engine_errors: u64,
    calls_ended: u64,
    foreign_audio_frames: u64,
    clears: u64,
    unexpected_closes: u64,
    send_errors: u64,
    calls_active_after: Option<i64>,
    calls_answered: Option<u64>,
    notes: Vec<String>,
    call_failures: Vec<String>,
}

#[derive(Debug, Serialize)]
struct TargetCheck {
    name: &'static str,
    target: String,
    measured: String,
    met: Option<bool>,
}

fn check_targets(
    c2a: &DirectionReport,
    a2c: &DirectionReport,
    cpu: Option<&EngineCpu>,
    memory: Option<&EngineMemory>,
    bridged: usize,
    parking: Option<&ParkingReport>,
) -> Vec<TargetCheck> {
    let lost = c2a.lost + a2c.lost;
    let p99 = c2a.latency_p99_us.max(a2c.latency_p99_us);
    let mut checks = match parking {
        None => vec![TargetCheck {
            name: "frames lost",
            target: "0".into(),
            measured: lost.to_string(),
            met: Some(lost == 0 && c2a.misrouted + a2c.misrouted == 0),
        }],
        Some(park) => vec![
            TargetCheck {
                name: "frames lost outside the switch",
                target: "0".into(),
                measured: park.lost_outside_switch.to_string(),
                met: Some(park.lost_outside_switch == 0 && park.misrouted == 0),
            },
            TargetCheck {
                name: "p99 park → hold audio",
                target: "< 5 ms".into(),
                measured: format!("{:.2} ms", park.park_to_hold.p99_us / 1e3),
                met: Some(park.park_to_hold.count > 0 && park.park_to_hold.p99_us < 5_000.0),
            },
            TargetCheck {
                name: "p99 unpark → audio flowing",
                target: "< 5 ms".into(),
                measured: format!("{:.2} ms", park.unpark_to_audio.p99_us / 1e3),
                met: Some(park.unpark_to_audio.count > 0 && park.unpark_to_audio.p99_us < 5_000.0),
            },
        ],
    };
    checks.push(TargetCheck {
        name: "p99 frame latency",
        target: "< 10 ms".into(),
        measured: format!("{:.2} ms", p99 / 1e3),
        met: Some(p99 < 10_000.0),
    });
    let per_frame = cpu.and_then(|cpu| cpu.us_per_frame);
    checks.push(TargetCheck {
        name: "engine CPU per relayed frame",
        target: "< 10 µs".into(),
        measured: per_frame.map_or("n/a".into(), |us| format!("{us:.2} µs")),
        met: per_frame.map(|us| us < 10.0),
    });
    let per_call = memory.map(|m| m.kib_per_bridged_call);
    checks.push(TargetCheck {
        name: "engine memory per bridged call",
        target: "< 100 KiB".into(),
        measured: per_call.map_or("n/a".into(), |kib| format!("{kib:.1} KiB")),
        met: per_call.map(|kib| kib < 100.0),
    });
    checks.push(TargetCheck {
        name: "calls bridged",
        target: "all".into(),
        measured: bridged.to_string(),
        met: None,
    });
    checks
}

fn render_text(r: &Report) -> String {
    let mut s = String::new();
    let yes_no = |met: Option<bool>| match met {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "-",
    };
    let _ = writeln!(s, "switchboard loadtest");
    let _ = writeln!(s, "  command: {}", r.command);
    let _ = writeln!(
        s,
        "  calls: {} bridged of {} ({} failed), scenario {}, ring fan-out {}, {} s of audio ({})",
        r.calls_bridged, r.calls_requested, r.calls_failed, r.scenario, r.ring, r.seconds, r.audio
    );
    let e = &r.engine;
    let _ = writeln!(
        s,
        "  engine: {} pid {} workers {}; log {}: {} warnings, {} errors; {}",
        e.mode,
        e.pid.map_or("?".into(), |p| p.to_string()),
        if e.workers == 0 {
            "default".into()
        } else {
            e.workers.to_string()
        },
        e.log.as_deref().unwrap_or("-"),
        e.log_warnings,
        e.log_errors,
        e.exit.as_deref().unwrap_or("left running")
    );
    for problem in &e.log_problems {
        let _ = writeln!(s, "    log: {problem}");
    }
    let st = &r.setup;
    let _ = writeln!(
        s,
        "  setup: {:.1} s in all; softphones {:.1} s; bridging {:.1} s ({:.0} calls/s, webhook→connected p50 {:.1} ms, p99 {:.1} ms)",
        st.total_seconds, st.softphones_seconds, st.bridging_seconds, st.calls_per_second,
        st.call_setup_p50_ms, st.call_setup_p99_ms
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "  {:<22} {:>14} {:>14}",
        "", "caller→agent", "agent→caller"
    );
    let (c, a) = (&r.caller_to_agent, &r.agent_to_caller);
    let rows: [(&str, String, String); 11] = [
        ("frames sent", c.sent.to_string(), a.sent.to_string()),
        (
            "frames received",
            c.received.to_string(),
            a.received.to_string(),
        ),
        ("frames lost", c.lost.to_string(), a.lost.to_string()),
        (
            "out of order",
            c.out_of_order.to_string(),
            a.out_of_order.to_string(),
        ),
        (
            "misrouted",
            c.misrouted.to_string(),
            a.misrouted.to_string(),
        ),
        (
            "latency p50 (µs)",
            format!("{:.0}", c.latency_p50_us),
            format!("{:.0}", a.latency_p50_us),
        ),
        (
            "latency p90 (µs)",
            format!("{:.0}", c.latency_p90_us),
            format!("{:.0}", a.latency_p90_us),
        ),
        (
            "latency p99 (µs)",
            format!("{:.0}", c.latency_p99_us),
            format!("{:.0}", a.latency_p99_us),
        ),
        (
            "latency p99.9 (µs)",
            format!("{:.0}", c.latency_p999_us),
            format!("{:.0}", a.latency_p999_us),
        ),
        (
            "latency max (µs)",
            format!("{:.0}", c.latency_max_us),
            format!("{:.0}", a.latency_max_us),
        ),
        (
            "latency mean (µs)",
            format!("{:.0}", c.latency_mean_us),
            format!("{:.0}", a.latency_mean_us),
        ),
    ];
    for (name, left, right) in rows {
        let _ = writeln!(s, "  {name:<22} {left:>14} {right:>14}");
    }
    let _ = writeln!(s);
    match &r.engine_cpu {
        Some(cpu) => {
            let _ = writeln!(
                s,
                "  engine CPU: {:.2} s ({:.2} user, {:.2} system) over {:.1} s ({:.0} % of one core, CPUs {}); {} frames relayed, {} dropped; {} per relayed frame",
                cpu.seconds,
                cpu.user_seconds,
                cpu.system_seconds,
                cpu.window_seconds,
                cpu.utilisation_pct,
                cpu.allowed_cpus.as_deref().unwrap_or("?"),
                cpu.frames_relayed,
                cpu.frames_dropped.map_or("?".into(), |d| d.to_string()),
                cpu.us_per_frame.map_or("n/a".into(), |us| format!("{us:.2} µs"))
            );
            let threads: Vec<String> = cpu
                .threads
                .iter()
                .take(6)
                .map(|t| format!("{} {:.0} %", t.name, t.utilisation_pct))
                .collect();
            let _ = writeln!(s, "  engine threads: {}", threads.join(", "));
        }
        None => {
            let _ = writeln!(s, "  engine CPU: unknown (no --engine-pid)");
        }
    }
    match &r.engine_memory {
        Some(m) => {
            let _ = writeln!(
                s,
                "  engine RSS: idle {:.1} MiB, with softphones {:.1} MiB, bridged {:.1} MiB → {:.1} KiB per bridged call ({:.1} KiB beyond the softphone)",
                m.idle_kib as f64 / 1024.0,
                m.with_softphones_kib as f64 / 1024.0,
                m.bridged_kib as f64 / 1024.0,
                m.kib_per_bridged_call,
                m.kib_per_call_beyond_softphone
            );
        }
        None => {
            let _ = writeln!(s, "  engine RSS: unknown (no --engine-pid)");
        }
    }
    let g = &r.generator;
    let threads: Vec<String> = g
        .thread_utilisation_pct
        .iter()
        .map(|p| format!("{p:.0} %"))
        .collect();
    let _ = writeln!(
        s,
        "  generator: {} threads ({}), CPUs {}, CPU {:.2} s ({:.2} user, {:.2} system; {:.0} % of one core); send lag p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs{}",
        g.threads,
        threads.join(", "),
        g.allowed_cpus.as_deref().unwrap_or("?"),
        g.cpu_seconds,
        g.user_seconds,
        g.system_seconds,
        g.utilisation_pct,
        g.send_lag_p50_us,
        g.send_lag_p99_us,
        g.send_lag_max_us,
        if g.saturated {
            " — SATURATED: latency includes generator queueing"
        } else {
            ""
        }
    );
    if let Some(m) = &r.machine {
        let _ = writeln!(
            s,
            "  machine: {} CPUs, {:.0} % busy ({:.0} % of one core; {:.0} % of one core neither engine nor generator)",
            m.cpus, m.busy_pct_of_machine, m.busy_pct_of_one_core, m.others_pct_of_one_core
        );
    }
    let p = &r.protocol;
    let _ = writeln!(
        s,
        "  protocol: {} rings, {} ring_cancels, {} claim_lost, {} errors, {} call_ended, {} foreign audio frames, {} unexpected closes, {} send errors; calls active after hang-up {}, answered {}",
        p.rings, p.ring_cancels, p.claims_lost, p.engine_errors, p.calls_ended,
        p.foreign_audio_frames, p.unexpected_closes, p.send_errors,
        p.calls_active_after.map_or("?".into(), |v| v.to_string()),
        p.calls_answered.map_or("?".into(), |v| v.to_string())
    );
    for note in p.notes.iter().chain(&p.call_failures) {
        let _ = writeln!(s, "    {note}");
    }
    if let Some(park) = &r.parking {
        render_parking(&mut s, park);
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "  targets:");
    for t in &r.targets {
        let _ = writeln!(
            s,
            "    {:<32} {:>10}  measured {:>12}  {}",
            t.name,
            t.target,
            t.measured,
            yes_no(t.met)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_their_stamp_through_base64() {
        let stamp = Stamp {
            direction: CALLER_TO_AGENT,
            call: 977,
            seq: 12_345,
            sent_ns: 987_654_321,
        };
        let text = twilio_media("MZ1", 3, &encode_frame(stamp));
        let json: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(json["event"], "media");
        let engine_side = crate::twilio::stream::decode_media(&text).expect("decodes");
        assert_eq!(decode_frame(&engine_side), Some(stamp));
        assert_eq!(decode_frame(&[0xFF; FRAME_BYTES]), None);
    }

    #[test]
    fn histogram_percentiles_are_close() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v * 1_000);
        }
        let p50 = h.percentile(0.5) as f64;
        let p99 = h.percentile(0.99) as f64;
        assert!((p50 / 50_000_000.0 - 1.0).abs() < 0.003, "{p50}");
        assert!((p99 / 99_000_000.0 - 1.0).abs() < 0.003, "{p99}");
        assert_eq!(h.max(), 100_000_000);
        for v in [0, 1, 1023, 1024, 1025, 4096, u64::from(u32::MAX)] {
            let bound = Histogram::upper_bound(Histogram::index(v));
            assert!(
                bound >= v && (bound - v) as f64 <= v as f64 * 0.002 + 1.0,
                "{v} {bound}"
            );
        }
    }

    #[test]
    fn proc_stat_lines_parse_with_odd_thread_names() {
        let line = "1234 (actix-rt|system:0) S 1 2 3 4 5 6 7 8 9 10 250 30 0 0 20 0";
        let (comm, ticks) = parse_stat(line).expect("parses");
        assert_eq!(comm, "actix-rt|system:0");
        assert_eq!((ticks.user, ticks.system, ticks.total()), (250, 30, 280));
    }

    #[test]
    fn parking_layout_keeps_a_workspace_on_one_thread() {
        let layout = ParkLayout {
            threads: 3,
            calls: 100,
            spares: 50,
            per_workspace: 7,
        };
        let mut seen = std::collections::HashMap::new();
        let mut locals = std::collections::HashSet::new();
        for agent in 0..150 {
            let thread = layout.thread(agent);
            assert!(
                locals.insert((thread, layout.local(agent))),
                "agent {agent}"
            );
            assert!(layout.local_workspace(agent) < layout.workspaces_on(thread));
            let workspace = layout.workspace(agent);
            assert_eq!(*seen.entry(workspace).or_insert(thread), thread);
            if agent < 100 {
                assert_eq!(layout.local(agent), agent / 3);
            }
        }
        assert_eq!(seen.len(), layout.workspace_count());
        assert_eq!((0..3).map(|t| layout.calls_on(t)).sum::<usize>(), 100);
        // Every workspace has a spare agent.
        for workspace in seen.keys() {
            assert!((100..150).any(|agent| layout.workspace(agent) == *workspace));
        }
    }

    #[test]
    fn log_scan_counts_levels_without_colours() {
        assert_eq!(strip_ansi("\x1b[33m WARN\x1b[0m x"), " WARN x");
    }
}
