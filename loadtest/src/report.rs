//! The report: what it holds, the targets it checks and its text form.

use std::fmt::Write as _;

use serde::Serialize;

use super::ai::FakeOpenAiReport;
use super::histogram::Histogram;
use super::parking::{ParkLayout, ParkStats, SWITCH_EDGE};
use super::worker::DirectionStats;
use super::LoadtestArgs;

/// What the report says about the parking scenario.
#[derive(Debug, Serialize)]
pub(super) struct ParkingReport {
    pub(super) park_interval_seconds: f64,
    pub(super) workspaces: usize,
    pub(super) calls_per_workspace: usize,
    pub(super) spare_agents: usize,
    pub(super) parks: u64,
    pub(super) unparks: u64,
    /// Park → hold → unpark → connected, complete.
    pub(super) cycles: u64,
    pub(super) claims_lost: u64,
    pub(super) skipped_no_free_agent: u64,
    pub(super) stuck_cycles: u64,
    /// Cycles whose caller got no hold audio before the unparker's `connected`
    /// (the engine cleared it before it was written).
    pub(super) cycles_without_hold_audio: u64,
    pub(super) parked_notices: u64,
    pub(super) unparked_notices: u64,
    pub(super) released: u64,
    pub(super) hold_media_messages: u64,
    pub(super) clears: u64,
    pub(super) park_to_hold: LatencyReport,
    pub(super) unpark_to_audio: LatencyReport,
    pub(super) unpark_to_audio_adjusted: LatencyReport,
    pub(super) unpark_to_connected: LatencyReport,
    /// Caller frames sent while the call was connected (from the agent's
    /// `connected` to its `park`).
    pub(super) connected_sent: u64,
    pub(super) connected_received: u64,
    /// Of those not received: sent less than `switch_edge_ms` before a park.
    pub(super) lost_at_switch: u64,
    pub(super) lost_outside_switch: u64,
    pub(super) switch_edge_ms: f64,
    /// Caller frames sent between a `park` and the unparker's `connected`.
    pub(super) parked_sent: u64,
    /// Of those, delivered anyway (sent after the engine had connected the
    /// unparker but before its `connected` arrived, or just before the park).
    pub(super) parked_delivered: u64,
    pub(super) discarded_while_parked: u64,
    pub(super) misrouted: u64,
}

#[derive(Debug, Serialize)]
pub(super) struct LatencyReport {
    pub(super) count: u64,
    pub(super) p50_us: f64,
    pub(super) p99_us: f64,
    pub(super) max_us: f64,
    pub(super) mean_us: f64,
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
    pub(super) fn new(s: &ParkStats, layout: ParkLayout, args: &LoadtestArgs) -> ParkingReport {
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

pub(super) fn render_parking(s: &mut String, p: &ParkingReport) {
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

#[derive(Debug, Serialize)]
pub(super) struct Report {
    pub(super) command: String,
    pub(super) calls_requested: usize,
    pub(super) calls_bridged: usize,
    pub(super) calls_failed: usize,
    pub(super) seconds: u64,
    /// `bridge` or `parking`.
    pub(super) scenario: &'static str,
    /// `both`, `caller-to-agent` or `agent-to-caller`.
    pub(super) audio: &'static str,
    pub(super) ring: &'static str,
    pub(super) engine: EngineInfo,
    pub(super) setup: SetupInfo,
    pub(super) caller_to_agent: DirectionReport,
    pub(super) agent_to_caller: DirectionReport,
    pub(super) engine_cpu: Option<EngineCpu>,
    pub(super) engine_memory: Option<EngineMemory>,
    pub(super) generator: GeneratorInfo,
    pub(super) machine: Option<MachineInfo>,
    pub(super) protocol: ProtocolInfo,
    pub(super) parking: Option<ParkingReport>,
    /// `--scenario ai`: `caller_to_agent` is then caller → OpenAI and
    /// `agent_to_caller` OpenAI → caller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) ai: Option<AiReport>,
    pub(super) targets: Vec<TargetCheck>,
}

/// What the report says about the AI scenario.
#[derive(Debug, Serialize)]
pub(super) struct AiReport {
    pub(super) fake_openai: FakeOpenAiReport,
    /// Last call placed → every session `session.updated`.
    pub(super) sessions_ready_after_placing_seconds: f64,
    /// Caller frame → OpenAI → delta → caller, complete (deltas the Twilio streams
    /// received); each is six socket messages at the engine: media in, append out,
    /// delta in, media out, mark out, mark echo in.
    pub(super) round_trips: u64,
    /// Engine CPU over the measured window ÷ round trips.
    pub(super) engine_us_per_round_trip: Option<f64>,
    pub(super) engine_user_us_per_round_trip: Option<f64>,
    pub(super) engine_system_us_per_round_trip: Option<f64>,
    /// The engine's voluntary context switches ÷ round trips.
    pub(super) engine_voluntary_ctx_switches_per_round_trip: Option<f64>,
    /// Engine CPU per second of one call (1,000 ms = a whole core per call).
    pub(super) engine_cpu_ms_per_call_second: Option<f64>,
    /// The generator's CPU (Twilio streams and the fake OpenAI) ÷ round trips.
    pub(super) generator_us_per_round_trip: Option<f64>,
    /// The engine's AI counters at the end of the run (`/metrics`).
    pub(super) ai_sessions: Option<u64>,
    pub(super) ai_failures: Option<u64>,
    pub(super) ai_barge_ins: Option<u64>,
    pub(super) ai_late_deltas_dropped: Option<u64>,
    pub(super) ai_events_ignored: Option<u64>,
}

pub(super) fn render_ai(s: &mut String, a: &AiReport) {
    let f = &a.fake_openai;
    let opt = |v: Option<u64>| v.map_or("?".into(), |v| v.to_string());
    let us = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.2} µs"));
    let _ = writeln!(
        s,
        "  ai: {} round trips (caller frame → OpenAI → delta → caller); engine {} per round trip ({} user, {} system, {} voluntary context switches), {} ms of CPU per call-second; generator {} per round trip",
        a.round_trips,
        us(a.engine_us_per_round_trip),
        us(a.engine_user_us_per_round_trip),
        us(a.engine_system_us_per_round_trip),
        a.engine_voluntary_ctx_switches_per_round_trip
            .map_or("n/a".into(), |v| format!("{v:.3}")),
        a.engine_cpu_ms_per_call_second.map_or("n/a".into(), |v| format!("{v:.3}")),
        us(a.generator_us_per_round_trip),
    );
    let _ = writeln!(
        s,
        "    fake OpenAI: {} sessions opened, {} ready ({:.1} s after placing), {} refused (bearer), {} bad handshakes, {} not pcmu, {} other client events, {} unreadable, {} foreign appends; after the hang-up {} closed by the engine, {} ended without a close frame; {} dropped before it",
        f.sessions_opened, f.sessions_ready, a.sessions_ready_after_placing_seconds, f.bearer_refused,
        f.handshake_failures, f.sessions_not_pcmu, f.other_client_events, f.unreadable_events,
        f.foreign_appends, f.sessions_closed, f.sessions_ended_without_close, f.sessions_dropped
    );
    let _ = writeln!(
        s,
        "    engine: {} AI sessions, {} failures, {} barge-ins, {} late deltas dropped, {} events ignored",
        opt(a.ai_sessions),
        opt(a.ai_failures),
        opt(a.ai_barge_ins),
        opt(a.ai_late_deltas_dropped),
        opt(a.ai_events_ignored)
    );
}

/// What `EngineInfo::measured` says when the engine's process was sampled.
pub(super) const MEASURED: &str = "measured from /proc";
/// ... and when it was not: there is no process of it on this machine to read.
pub(super) const NOT_MEASURED: &str = "not measured (remote engine)";

#[derive(Debug, Serialize)]
pub(super) struct EngineInfo {
    /// `spawned`, `external` (`--engine-url`) or `peer` (`--peer-url`).
    pub(super) mode: &'static str,
    pub(super) pid: Option<u32>,
    /// Whether its CPU, RSS and context switches were read from `/proc` (a spawned
    /// engine, or `--engine-pid`), or not measured.
    pub(super) measured: String,
    /// HTTP workers asked for (0: the engine's default, one per core).
    pub(super) workers: usize,
    pub(super) log: Option<String>,
    pub(super) log_warnings: usize,
    pub(super) log_errors: usize,
    pub(super) log_problems: Vec<String>,
    pub(super) exit: Option<String>,
}

impl EngineInfo {
    pub(super) fn external(pid: Option<u32>, peer: bool) -> EngineInfo {
        EngineInfo {
            mode: if peer { "peer" } else { "external" },
            pid,
            measured: match pid {
                Some(_) => MEASURED.to_owned(),
                None => NOT_MEASURED.to_owned(),
            },
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
pub(super) struct SetupInfo {
    /// Agents, numbers, softphones and calls: everything before the audio.
    pub(super) total_seconds: f64,
    pub(super) softphones_seconds: f64,
    pub(super) bridging_seconds: f64,
    pub(super) calls_per_second: f64,
    /// Webhook → the answering softphone's `connected`.
    pub(super) call_setup_p50_ms: f64,
    pub(super) call_setup_p99_ms: f64,
}

#[derive(Debug, Serialize)]
pub(super) struct DirectionReport {
    pub(super) sent: u64,
    pub(super) received: u64,
    pub(super) lost: u64,
    pub(super) out_of_order: u64,
    pub(super) misrouted: u64,
    pub(super) latency_p50_us: f64,
    pub(super) latency_p90_us: f64,
    pub(super) latency_p99_us: f64,
    pub(super) latency_p999_us: f64,
    pub(super) latency_max_us: f64,
    pub(super) latency_mean_us: f64,
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
pub(super) struct EngineCpu {
    pub(super) seconds: f64,
    pub(super) user_seconds: f64,
    /// Kernel time: on loopback this includes delivering what the engine sends into
    /// the generator's sockets.
    pub(super) system_seconds: f64,
    pub(super) allowed_cpus: Option<String>,
    pub(super) window_seconds: f64,
    /// Of one core.
    pub(super) utilisation_pct: f64,
    /// The engine's own count (`switchboard_audio_frames_relayed`), both directions.
    pub(super) frames_relayed: u64,
    pub(super) frames_dropped: Option<u64>,
    pub(super) us_per_frame: Option<f64>,
    /// Summed over the engine's threads (`/proc/PID/task/*/status`) over the window.
    pub(super) voluntary_ctx_switches: u64,
    pub(super) involuntary_ctx_switches: u64,
    /// Voluntary context switches ÷ frames relayed: about the wake-ups a frame costs.
    pub(super) voluntary_ctx_switches_per_frame: Option<f64>,
    pub(super) threads: Vec<ThreadCpu>,
    /// `--node-pid`: the engine and the other nodes of its cluster together.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) cluster: Option<ClusterCpu>,
}

/// CPU of every node of a cluster on this machine over the measured window, per
/// frame the generator received (the denominator that stays the same whether a
/// frame crossed a node link or not).
#[derive(Debug, Serialize)]
pub(super) struct ClusterCpu {
    /// `--engine-pid` first, then every `--node-pid`, with the CPU seconds each used.
    pub(super) nodes: Vec<(u32, f64)>,
    pub(super) seconds: f64,
    pub(super) frames_received: u64,
    pub(super) us_per_frame: Option<f64>,
}

#[derive(Debug, Serialize)]
pub(super) struct ThreadCpu {
    pub(super) name: String,
    pub(super) seconds: f64,
    pub(super) utilisation_pct: f64,
}

#[derive(Debug, Serialize)]
pub(super) struct EngineMemory {
    /// After start-up and the admin API calls, before any socket.
    pub(super) idle_kib: u64,
    /// With every softphone connected and available.
    pub(super) with_softphones_kib: u64,
    /// The larger of the mid-run and end-of-run samples with every call bridged.
    pub(super) bridged_kib: u64,
    /// (bridged − idle) / calls: call, Twilio stream and softphone together.
    pub(super) kib_per_bridged_call: f64,
    /// (bridged − with softphones) / calls.
    pub(super) kib_per_call_beyond_softphone: f64,
}

#[derive(Debug, Serialize)]
pub(super) struct GeneratorInfo {
    pub(super) threads: usize,
    pub(super) allowed_cpus: Option<String>,
    pub(super) cpu_seconds: f64,
    pub(super) user_seconds: f64,
    pub(super) system_seconds: f64,
    pub(super) utilisation_pct: f64,
    pub(super) voluntary_ctx_switches: Option<u64>,
    pub(super) thread_utilisation_pct: Vec<f64>,
    pub(super) send_lag_p50_us: f64,
    pub(super) send_lag_p99_us: f64,
    pub(super) send_lag_max_us: f64,
    /// A generator thread was over 90 % busy, its sends ran late or the machine was
    /// over 90 % busy: latency figures then include queueing for the CPU.
    pub(super) saturated: bool,
}

/// The whole machine over the measured window (`/proc/stat`).
#[derive(Debug, Serialize)]
pub(super) struct MachineInfo {
    pub(super) cpus: usize,
    pub(super) busy_pct_of_one_core: f64,
    pub(super) busy_pct_of_machine: f64,
    /// Busy time that was neither the engine's nor the generator's (other processes,
    /// and interrupt time the kernel did not charge to a process).
    pub(super) others_pct_of_one_core: f64,
}

#[derive(Debug, Serialize)]
pub(super) struct ProtocolInfo {
    pub(super) rings: u64,
    pub(super) ring_cancels: u64,
    pub(super) claims_lost: u64,
    pub(super) engine_errors: u64,
    pub(super) calls_ended: u64,
    pub(super) foreign_audio_frames: u64,
    pub(super) clears: u64,
    pub(super) unexpected_closes: u64,
    pub(super) send_errors: u64,
    pub(super) calls_active_after: Option<i64>,
    pub(super) calls_answered: Option<u64>,
    pub(super) notes: Vec<String>,
    pub(super) call_failures: Vec<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct TargetCheck {
    pub(super) name: &'static str,
    pub(super) target: String,
    pub(super) measured: String,
    pub(super) met: Option<bool>,
}

pub(super) fn check_targets(
    c2a: &DirectionReport,
    a2c: &DirectionReport,
    cpu: Option<&EngineCpu>,
    memory: Option<&EngineMemory>,
    bridged: usize,
    parking: Option<&ParkingReport>,
    ai: Option<&AiReport>,
) -> Vec<TargetCheck> {
    let lost = c2a.lost + a2c.lost;
    let p99 = c2a.latency_p99_us.max(a2c.latency_p99_us);
    if let Some(ai) = ai {
        return ai_targets(c2a, a2c, memory, bridged, ai);
    }
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

/// The targets for the AI relay (2 cores, generator included).
fn ai_targets(
    c2a: &DirectionReport,
    a2c: &DirectionReport,
    memory: Option<&EngineMemory>,
    bridged: usize,
    ai: &AiReport,
) -> Vec<TargetCheck> {
    let lost = c2a.lost + a2c.lost;
    let mut checks = vec![TargetCheck {
        name: "frames lost",
        target: "0".into(),
        measured: format!("{} + {}", c2a.lost, a2c.lost),
        met: Some(
            lost == 0
                && c2a.misrouted + a2c.misrouted == 0
                && c2a.out_of_order + a2c.out_of_order == 0
                && c2a.sent > 0,
        ),
    }];
    for (name, d) in [("p99 caller → OpenAI", c2a), ("p99 OpenAI → caller", a2c)] {
        checks.push(TargetCheck {
            name,
            target: "< 1 ms".into(),
            measured: format!("{:.3} ms", d.latency_p99_us / 1e3),
            met: Some(d.received > 0 && d.latency_p99_us < 1_000.0),
        });
    }
    checks.push(TargetCheck {
        name: "engine CPU per round trip",
        target: "< 16 µs".into(),
        measured: ai
            .engine_us_per_round_trip
            .map_or("n/a".into(), |us| format!("{us:.2} µs")),
        met: ai.engine_us_per_round_trip.map(|us| us < 16.0),
    });
    let ready = ai.fake_openai.sessions_ready;
    checks.push(TargetCheck {
        name: "AI calls sustained",
        target: "all".into(),
        measured: format!("{ready} of {bridged}"),
        met: Some(
            bridged > 0
                && ready >= bridged as u64
                && ai.ai_failures.unwrap_or(0) == 0
                && ai.fake_openai.sessions_dropped == 0,
        ),
    });
    let per_call = memory.map(|m| m.kib_per_bridged_call);
    checks.push(TargetCheck {
        name: "engine memory per AI call",
        target: "-".into(),
        measured: per_call.map_or("n/a".into(), |kib| format!("{kib:.1} KiB")),
        met: None,
    });
    checks
}

/// Why the engine's process figures are missing.
fn not_measured(engine: &EngineInfo) -> String {
    match (engine.mode, engine.pid) {
        ("spawned", _) | (_, Some(_)) => "not read (the process went away?)".into(),
        ("peer", None) => "not measured (remote relay: give --engine-pid for a local one)".into(),
        _ => format!("{NOT_MEASURED}: give --engine-pid when it runs on this machine"),
    }
}

pub(super) fn render_text(r: &Report) -> String {
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
        "  engine: {} ({}) pid {} workers {}; log {}: {} warnings, {} errors; {}",
        e.mode,
        e.measured,
        e.pid.map_or("-".into(), |p| p.to_string()),
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
        "  setup: {:.1} s in all; softphones {:.1} s; bridging {:.1} s ({:.0} calls/s, webhook→{} p50 {:.1} ms, p99 {:.1} ms)",
        st.total_seconds, st.softphones_seconds, st.bridging_seconds, st.calls_per_second,
        if r.ai.is_some() { "stream started" } else { "connected" },
        st.call_setup_p50_ms, st.call_setup_p99_ms
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "  {:<22} {:>14} {:>14}",
        "",
        if r.ai.is_some() {
            "caller→OpenAI"
        } else {
            "caller→agent"
        },
        if r.ai.is_some() {
            "OpenAI→caller"
        } else {
            "agent→caller"
        }
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
            let _ = writeln!(
                s,
                "  engine context switches: {} voluntary ({} per relayed frame), {} involuntary",
                cpu.voluntary_ctx_switches,
                cpu.voluntary_ctx_switches_per_frame
                    .map_or("n/a".into(), |v| format!("{v:.3}")),
                cpu.involuntary_ctx_switches
            );
            let threads: Vec<String> = cpu
                .threads
                .iter()
                .take(6)
                .map(|t| format!("{} {:.0} %", t.name, t.utilisation_pct))
                .collect();
            let _ = writeln!(s, "  engine threads: {}", threads.join(", "));
            if let Some(cluster) = &cpu.cluster {
                let nodes: Vec<String> = cluster
                    .nodes
                    .iter()
                    .map(|(pid, seconds)| format!("pid {pid} {seconds:.2} s"))
                    .collect();
                let _ = writeln!(
                    s,
                    "  cluster CPU: {:.2} s ({}); {} frames received; {} per received frame",
                    cluster.seconds,
                    nodes.join(", "),
                    cluster.frames_received,
                    cluster
                        .us_per_frame
                        .map_or("n/a".into(), |us| format!("{us:.2} µs"))
                );
            }
        }
        None => {
            let _ = writeln!(
                s,
                "  engine CPU and context switches: {}",
                not_measured(&r.engine)
            );
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
            let _ = writeln!(s, "  engine RSS: {}", not_measured(&r.engine));
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
        "  generator: {} threads ({}), CPUs {}, CPU {:.2} s ({:.2} user, {:.2} system; {:.0} % of one core), {} voluntary context switches; send lag p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs{}",
        g.threads,
        threads.join(", "),
        g.allowed_cpus.as_deref().unwrap_or("?"),
        g.cpu_seconds,
        g.user_seconds,
        g.system_seconds,
        g.utilisation_pct,
        g.voluntary_ctx_switches.map_or("?".into(), |v| v.to_string()),
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
    if let Some(ai) = &r.ai {
        render_ai(&mut s, ai);
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
