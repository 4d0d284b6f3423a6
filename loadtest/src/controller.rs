//! The controller: prepares the floor, moves the workers through the `Phase`s,
//! samples the engine and assembles the report.

use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use tokio::sync::{mpsc, watch};

use super::admin::{
    cluster_seats, create_agents, create_ai_number, create_numbers, metric, metric_delta,
    scrape_metrics, wait_calls_ended, wait_healthy,
};
use super::ai::{FakeOpenAi, FakeOpenAiReport};
use super::engine::EngineProcess;
use super::frame::Clock;
use super::histogram::Histogram;
use super::options::{EngineUrl, PeerUrl};
use super::parking::{ParkLayout, ParkPlan};
use super::procfs::{
    allowed_cpus, clock_ticks_per_second, cpu_ticks, machine_ticks, process_ctx_switches, rss_kib,
    thread_breakdown, CpuTicks, EngineSample,
};
use super::report::{
    check_targets, AiReport, ClusterCpu, DirectionReport, EngineCpu, EngineInfo, EngineMemory,
    GeneratorInfo, MachineInfo, ParkingReport, ProtocolInfo, Report, SetupInfo,
};
use super::worker::{worker, AiPlan, WorkerEvent, WorkerPlan, WorkerStats};
use super::{
    random_hex, AudioDirection, LoadtestArgs, RingMode, Scenario, DRAIN, HANGUP_TIMEOUT,
    HTTP_TIMEOUT, MAX_NOTES, SETTLE,
};

/// Where the engine under test is reached, and with which secrets.
#[derive(Clone)]
pub(super) struct Target {
    /// `http://host:port`, no trailing slash: also the public URL signatures use.
    pub(super) base: String,
    pub(super) admin_token: String,
    pub(super) twilio_token: String,
    /// `--peer-url`: the calls go straight to this relay's media stream WebSocket
    /// (no webhook, no admin API, no `/metrics`).
    pub(super) peer: Option<PeerUrl>,
    /// `--agent-url`: the nodes the softphones connect to (empty: `base`).
    pub(super) agent_bases: Vec<String>,
}

impl Target {
    /// The engine already running at `--engine-url`, with the tokens given.
    pub(super) fn running(url: &EngineUrl, args: &LoadtestArgs) -> anyhow::Result<Target> {
        let twilio_token = match args.scenario {
            Scenario::Submit => args.twilio_token.clone().unwrap_or_default(),
            _ => args
                .twilio_token
                .clone()
                .context("--engine-url needs --twilio-token (or TWILIO_AUTH_TOKEN)")?,
        };
        Ok(Target {
            base: url.as_str().to_owned(),
            admin_token: args
                .admin_token
                .clone()
                .context("--engine-url needs --admin-token (or SWITCHBOARD_ADMIN_TOKEN)")?,
            twilio_token,
            peer: None,
            agent_bases: args
                .agent_url
                .iter()
                .map(|url| url.as_str().to_owned())
                .collect(),
        })
    }

    /// The relay at `--peer-url`: no tokens.
    pub(super) fn peer(url: &PeerUrl) -> Target {
        Target {
            base: url.as_str().to_owned(),
            admin_token: String::new(),
            twilio_token: String::new(),
            peer: Some(url.clone()),
            agent_bases: Vec::new(),
        }
    }

    pub(super) fn ws_base(&self) -> String {
        ws_form(&self.base)
    }

    /// Where softphone `index` connects: the `--agent-url` nodes in turn, else
    /// the engine itself.
    pub(super) fn agent_ws_base(&self, index: usize) -> String {
        match self.agent_bases.len() {
            0 => self.ws_base(),
            n => ws_form(&self.agent_bases[index % n]),
        }
    }
}

impl Target {
    /// Where seat `index` of `--scenario claim` connects: the engine and every
    /// `--agent-url` node in turn.
    pub(super) fn agent_ws_base_with_engine(&self, index: usize) -> String {
        match index % (self.agent_bases.len() + 1) {
            0 => self.ws_base(),
            k => ws_form(&self.agent_bases[k - 1]),
        }
    }
}

fn ws_form(base: &str) -> String {
    if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_owned()
    }
}

/// What the workers are doing; set by the controller, seen by every task.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Phase {
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

pub(super) async fn drive(
    args: &LoadtestArgs,
    target: &Target,
    pid: Option<u32>,
    mut process: Option<&mut EngineProcess>,
    fake: Option<FakeOpenAi>,
) -> anyhow::Result<Report> {
    let ai = fake.is_some();
    // A peer relay has no admin API, `/healthz` or `/metrics`: its calls need no
    // floor, and its figures come from the generator's own counts.
    let peer = target.peer.is_some();
    let client = awc::Client::builder().timeout(HTTP_TIMEOUT).finish();
    if !peer {
        wait_healthy(&client, target, process.as_deref_mut()).await?;
    }
    let n = args.calls;
    let threads = match args.threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        t => t,
    }
    .min(n)
    .max(1);
    let clk_tck = clock_ticks_per_second();

    // The floor: agents, numbers.
    let workspace = format!("loadtest-{}", random_hex(4)?);
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
        None if ai => Vec::new(),
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
    let numbers = if peer {
        vec![String::new()]
    } else if ai {
        vec![create_ai_number(&client, target, &workspace).await?]
    } else {
        create_numbers(&client, target, &agent_workspaces, &agents[..n], ring).await?
    };
    let rss_idle = pid.and_then(rss_kib);

    // Workers.
    let (phase_tx, phase_rx) = watch::channel(Phase::Setup);
    let (event_tx, mut events) = mpsc::unbounded_channel();
    let clock = Clock(Instant::now());
    let concurrency = args.ramp_concurrency.max(1).div_ceil(threads).max(1);
    let ramp_spacing = (args.ramp_per_sec > 0.0)
        .then(|| Duration::from_secs_f64(threads as f64 / args.ramp_per_sec));
    let ai_shared = fake.as_ref().map(|f| std::sync::Arc::clone(&f.shared));
    let mut ai_senders = Vec::new();
    for id in 0..threads {
        let ai_plan = fake.as_ref().map(|fake| {
            let (tx, rx) = mpsc::unbounded_channel();
            ai_senders.push(tx);
            AiPlan {
                shared: std::sync::Arc::clone(&fake.shared),
                api_key: fake.api_key.clone(),
                sockets: rx,
            }
        });
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
            phones: if ai {
                Vec::new()
            } else {
                indices
                    .iter()
                    .map(|&i| (i, agents[i].token.clone()))
                    .collect()
            },
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
            ai: ai_plan,
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
    // Stops accepting when the run ends, however it ends (a fixed
    // `--fake-openai-listen` port is bound again by the next step).
    let _acceptor = match fake {
        Some(fake) => Some(fake.serve(ai_senders)?),
        None => None,
    };

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
    if !target.agent_bases.is_empty() && parking.is_none() && !ai {
        // Softphones on other nodes: the owner rings the seats the cluster's
        // presence (Redis) lists, which each node publishes a little after its
        // softphones' presence ack; a call placed before its agent is listed
        // there is never rung. Wait until the owner sees every seat.
        wait_floor(&client, target, &workspace, agents.len()).await?;
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

    // AI: every relay must be live (`session.updated` sent) before audio flows;
    // until then the engine drops caller audio.
    let sessions_started = Instant::now();
    if let Some(shared) = &ai_shared {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = shared
                .sessions_ready
                .load(std::sync::atomic::Ordering::Relaxed);
            if ready >= bridged as u64 {
                break;
            }
            if Instant::now() > deadline {
                progress(format_args!(
                    "only {ready} of {bridged} AI sessions ready after 30 s; measuring anyway"
                ));
                break;
            }
            check_alive(process.as_deref_mut())?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        progress(format_args!(
            "{} AI sessions ready",
            shared
                .sessions_ready
                .load(std::sync::atomic::Ordering::Relaxed)
        ));
    }
    let sessions_seconds = sessions_started.elapsed().as_secs_f64();

    // Steady state.
    tokio::time::sleep(SETTLE).await;
    let metrics_before = if peer {
        Default::default()
    } else {
        scrape_metrics(&client, target).await.unwrap_or_default()
    };
    let engine_before = pid.map(EngineSample::take);
    let nodes_before: Vec<Option<CpuTicks>> = args
        .node_pid
        .iter()
        .map(|pid| cpu_ticks(&pid.to_string()))
        .collect();
    let self_before = cpu_ticks("self");
    let self_switches_before = process_ctx_switches("self");
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
    let nodes_after: Vec<Option<CpuTicks>> = args
        .node_pid
        .iter()
        .map(|pid| cpu_ticks(&pid.to_string()))
        .collect();
    let self_after = cpu_ticks("self");
    let self_switches_after = process_ctx_switches("self");
    let machine_after = machine_ticks();
    let window = start.elapsed();
    let metrics_after = if peer {
        Default::default()
    } else {
        scrape_metrics(&client, target).await.unwrap_or_default()
    };
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
    let (calls_active_after, metrics_end) = if peer {
        (None, Default::default())
    } else {
        wait_calls_ended(&client, target).await
    };

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
            let switches = after.switches.since(before.switches);
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
                voluntary_ctx_switches: switches.voluntary,
                involuntary_ctx_switches: switches.involuntary,
                voluntary_ctx_switches_per_frame: (frames > 0.0)
                    .then(|| switches.voluntary as f64 / frames),
                threads: thread_breakdown(before, after, clk_tck, window),
                cluster: (!args.node_pid.is_empty()).then(|| {
                    let mut nodes = vec![(pid.unwrap_or_default(), seconds)];
                    for ((pid, b), a) in args.node_pid.iter().zip(&nodes_before).zip(&nodes_after) {
                        let ticks = match (b, a) {
                            (Some(b), Some(a)) => a.since(*b).total(),
                            _ => 0,
                        };
                        nodes.push((*pid, cpu(ticks)));
                    }
                    let total: f64 = nodes.iter().map(|(_, s)| s).sum();
                    let received = stats.caller_to_agent.received + stats.agent_to_caller.received;
                    ClusterCpu {
                        nodes,
                        seconds: total,
                        frames_received: received,
                        us_per_frame: (received > 0).then(|| total * 1e6 / received as f64),
                    }
                }),
            })
        }
        _ => None,
    };
    if let Some(cpu) = engine_cpu
        .as_ref()
        .filter(|c| c.seconds == 0.0 && c.frames_relayed > 1_000)
    {
        // A PID that used no CPU while thousands of frames went through is not the
        // process that relayed them (e.g. the shell that started it).
        stats.note(format!(
            "the engine PID {} used no CPU while {} frames were relayed: is it the engine's process?",
            pid.unwrap_or_default(),
            cpu.frames_relayed
        ));
    }
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
        voluntary_ctx_switches: match (self_switches_before, self_switches_after) {
            (Some(b), Some(a)) => Some(a.since(b).voluntary),
            _ => None,
        },
        thread_utilisation_pct: thread_pct,
        send_lag_p50_us: stats.send_lag.percentile(0.5) as f64 / 1e3,
        send_lag_p99_us,
        send_lag_max_us: stats.send_lag.max() as f64 / 1e3,
        saturated,
    };
    let c2a = DirectionReport::from(&stats.caller_to_agent);
    let a2c = DirectionReport::from(&stats.agent_to_caller);
    let parking = parking.map(|layout| ParkingReport::new(&stats.parking, layout, args));
    let ai = ai_shared.map(|shared| {
        let round_trips = a2c.received;
        let per_trip = |seconds: f64| (round_trips > 0).then(|| seconds * 1e6 / round_trips as f64);
        let window_seconds = window.as_secs_f64();
        AiReport {
            fake_openai: FakeOpenAiReport::from(&*shared),
            sessions_ready_after_placing_seconds: sessions_seconds,
            round_trips,
            engine_us_per_round_trip: engine_cpu.as_ref().and_then(|c| per_trip(c.seconds)),
            engine_user_us_per_round_trip: engine_cpu
                .as_ref()
                .and_then(|c| per_trip(c.user_seconds)),
            engine_system_us_per_round_trip: engine_cpu
                .as_ref()
                .and_then(|c| per_trip(c.system_seconds)),
            engine_voluntary_ctx_switches_per_round_trip: engine_cpu.as_ref().and_then(|c| {
                (round_trips > 0).then(|| c.voluntary_ctx_switches as f64 / round_trips as f64)
            }),
            engine_cpu_ms_per_call_second: engine_cpu
                .as_ref()
                .map(|c| c.seconds * 1e3 / window_seconds / bridged as f64),
            generator_us_per_round_trip: per_trip(generator_seconds),
            ai_sessions: metric(&metrics_end, "switchboard_ai_sessions").map(|v| v as u64),
            ai_failures: metric(&metrics_end, "switchboard_ai_failures").map(|v| v as u64),
            ai_barge_ins: metric(&metrics_end, "switchboard_ai_barge_ins").map(|v| v as u64),
            ai_late_deltas_dropped: metric(&metrics_end, "switchboard_ai_late_deltas_dropped")
                .map(|v| v as u64),
            ai_events_ignored: metric(&metrics_end, "switchboard_ai_events_ignored")
                .map(|v| v as u64),
        }
    });
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
        ai.as_ref(),
    );
    Ok(Report {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        calls_requested: n,
        calls_bridged: bridged,
        calls_failed: failures.len(),
        seconds: args.seconds,
        scenario: match args.scenario {
            Scenario::Bridge => "bridge",
            Scenario::Parking => "parking",
            Scenario::Ai => "ai",
            Scenario::Submit => "submit",
            Scenario::Dispatch => "dispatch",
            Scenario::Claim => "claim",
        },
        audio: match (args.one_way || parking.is_some(), args.audio) {
            (true, _) | (false, AudioDirection::CallerToAgent) => "caller-to-agent",
            (false, AudioDirection::AgentToCaller) => "agent-to-caller",
            (false, AudioDirection::Both) => "both",
        },
        ring: match ring {
            _ if ai.is_some() => "-",
            RingMode::All => "all",
            RingMode::Own => "own",
        },
        engine: EngineInfo::external(pid, target.peer.is_some()),
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
        ai,
        targets,
    })
}

/// Progress goes to stderr, so that stdout carries only the report (`--json`).
pub(super) fn progress(message: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "loadtest: {message}");
}

pub(super) async fn next_event(
    events: &mut mpsc::UnboundedReceiver<WorkerEvent>,
    deadline: Instant,
) -> anyhow::Result<WorkerEvent> {
    match tokio::time::timeout_at(deadline.into(), events.recv()).await {
        Ok(Some(event)) => Ok(event),
        Ok(None) => bail!("every generator thread stopped"),
        Err(_) => bail!("the generator threads did not finish in time"),
    }
}

pub(super) fn check_alive(process: Option<&mut EngineProcess>) -> anyhow::Result<()> {
    match process {
        Some(process) => process.check_alive(),
        None => Ok(()),
    }
}

/// Polls the engine's `/api/cluster/seats` until `wanted` seats of `workspace`
/// are available (cluster mode, softphones on other nodes).
async fn wait_floor(
    client: &awc::Client,
    target: &Target,
    workspace: &str,
    wanted: usize,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let available =
            cluster_seats(client, target, workspace, |s| s["presence"] == "available").await;
        if available == Some(wanted) {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the cluster's floor never listed every softphone of {workspace} (last: {available:?} of {wanted})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
