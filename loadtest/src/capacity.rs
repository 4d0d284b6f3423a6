//! `--find-capacity`: the most concurrent calls the engine (or peer relay) carries
//! with p99 added latency under `--capacity-p99-ms` and no frame lost. Each step is
//! a whole run (`measure`: a fresh engine when it is spawned); the steps double
//! from `--calls` until one fails or `--capacity-max-calls` is reached, then bisect
//! between the last pass and the first failure to within 5 % (at least 10 calls).

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::controller::progress;
use super::report::Report;
use super::{measure, LoadtestArgs, Scenario};

/// Pause between two steps: sockets of the last step close, a peer relay settles.
const BETWEEN_STEPS: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize)]
pub(super) struct CapacityReport {
    pub(super) command: String,
    pub(super) scenario: &'static str,
    /// `spawned`, `external` or `peer`.
    pub(super) engine_mode: &'static str,
    /// The CPUs the engine (or peer relay) was allowed, as `/proc` showed them:
    /// pinned by `--engine-cpu`, or by `taskset` for a running one.
    pub(super) engine_cpus: Option<String>,
    pub(super) generator_cpu: Option<usize>,
    pub(super) seconds_per_step: u64,
    pub(super) p99_limit_ms: f64,
    /// The most calls of a passing step, when no larger step passed.
    pub(super) capacity: Option<usize>,
    /// "calls per core" when the engine (or relay) was pinned to one CPU.
    pub(super) capacity_is_per_core: bool,
    /// The largest step tried failed too: the capacity is at least `capacity`.
    pub(super) capped_by_max_calls: bool,
    /// The generator was saturated in the smallest failing step: the limit found may
    /// be the generator's.
    pub(super) generator_limited: bool,
    pub(super) steps: Vec<Step>,
}

/// One step: its verdict and the figures it was judged on.
#[derive(Debug, Serialize)]
pub(super) struct Step {
    pub(super) calls: usize,
    pub(super) passed: bool,
    /// Why it failed (empty when it passed).
    pub(super) failures: Vec<String>,
    pub(super) calls_bridged: usize,
    /// The larger of the two directions' p99 (caller → far end, far end → caller).
    pub(super) p99_added_ms: Option<f64>,
    pub(super) p50_added_ms: Option<f64>,
    pub(super) frames_lost: u64,
    pub(super) engine_frames_dropped: Option<u64>,
    pub(super) engine_cpu_pct: Option<f64>,
    pub(super) engine_us_per_frame: Option<f64>,
    pub(super) engine_us_per_round_trip: Option<f64>,
    pub(super) engine_voluntary_ctx_switches_per_frame: Option<f64>,
    pub(super) engine_kib_per_call: Option<f64>,
    pub(super) generator_cpu_pct: Option<f64>,
    pub(super) generator_saturated: Option<bool>,
    /// Busy time on the machine that was neither the engine nor the generator.
    pub(super) others_pct_of_one_core: Option<f64>,
}

impl Step {
    fn judge(calls: usize, report: &Report, p99_limit_ms: f64) -> Step {
        let (c, a) = (&report.caller_to_agent, &report.agent_to_caller);
        let p99_ms = c.latency_p99_us.max(a.latency_p99_us) / 1e3;
        let p50_ms = c.latency_p50_us.max(a.latency_p50_us) / 1e3;
        let lost = c.lost + a.lost;
        let dropped = report
            .engine_cpu
            .as_ref()
            .and_then(|cpu| cpu.frames_dropped);
        let mut failures = Vec::new();
        if report.calls_bridged < calls {
            failures.push(format!("{} of {calls} calls set up", report.calls_bridged));
        }
        if lost > 0 || c.misrouted + a.misrouted > 0 || c.out_of_order + a.out_of_order > 0 {
            failures.push(format!(
                "{lost} frames lost, {} misrouted, {} out of order",
                c.misrouted + a.misrouted,
                c.out_of_order + a.out_of_order
            ));
        }
        if c.sent == 0 {
            failures.push("no frame sent".into());
        }
        if let Some(dropped) = dropped.filter(|&d| d > 0) {
            failures.push(format!("{dropped} frames dropped by the engine"));
        }
        if p99_ms >= p99_limit_ms {
            failures.push(format!("p99 {p99_ms:.2} ms ≥ {p99_limit_ms} ms"));
        }
        if let Some(ai) = &report.ai {
            let f = &ai.fake_openai;
            if f.sessions_ready < report.calls_bridged as u64 || f.sessions_dropped > 0 {
                failures.push(format!(
                    "{} AI sessions ready of {}, {} dropped",
                    f.sessions_ready, report.calls_bridged, f.sessions_dropped
                ));
            }
        }
        Step {
            calls,
            passed: failures.is_empty(),
            failures,
            calls_bridged: report.calls_bridged,
            p99_added_ms: Some(p99_ms),
            p50_added_ms: Some(p50_ms),
            frames_lost: lost,
            engine_frames_dropped: dropped,
            engine_cpu_pct: report.engine_cpu.as_ref().map(|cpu| cpu.utilisation_pct),
            engine_us_per_frame: report.engine_cpu.as_ref().and_then(|cpu| cpu.us_per_frame),
            engine_us_per_round_trip: report
                .ai
                .as_ref()
                .and_then(|ai| ai.engine_us_per_round_trip),
            engine_voluntary_ctx_switches_per_frame: report
                .engine_cpu
                .as_ref()
                .and_then(|cpu| cpu.voluntary_ctx_switches_per_frame),
            engine_kib_per_call: report
                .engine_memory
                .as_ref()
                .map(|m| m.kib_per_bridged_call),
            generator_cpu_pct: Some(report.generator.utilisation_pct),
            generator_saturated: Some(report.generator.saturated),
            others_pct_of_one_core: report.machine.as_ref().map(|m| m.others_pct_of_one_core),
        }
    }

    fn failed(calls: usize, error: &anyhow::Error) -> Step {
        let first_line = format!("{error:#}");
        Step {
            calls,
            passed: false,
            failures: vec![first_line.lines().next().unwrap_or_default().to_owned()],
            calls_bridged: 0,
            p99_added_ms: None,
            p50_added_ms: None,
            frames_lost: 0,
            engine_frames_dropped: None,
            engine_cpu_pct: None,
            engine_us_per_frame: None,
            engine_us_per_round_trip: None,
            engine_voluntary_ctx_switches_per_frame: None,
            engine_kib_per_call: None,
            generator_cpu_pct: None,
            generator_saturated: None,
            others_pct_of_one_core: None,
        }
    }
}

/// What to try after a step, given the largest pass and the smallest failure so far.
pub(super) fn next_step(
    tried: usize,
    pass: Option<usize>,
    fail: Option<usize>,
    max: usize,
) -> Option<usize> {
    match (pass, fail) {
        (_, None) if tried >= max => None,
        (_, None) => Some((tried * 2).min(max)),
        (None, Some(fail)) => (fail > 1).then_some(fail / 2),
        (Some(pass), Some(fail)) => {
            let resolution = (pass / 20).max(10);
            (fail.saturating_sub(pass) > resolution).then_some(pass + (fail - pass) / 2)
        }
    }
}

pub(super) async fn find(args: &LoadtestArgs) -> anyhow::Result<CapacityReport> {
    let mut steps = Vec::new();
    let (mut pass, mut fail) = (None::<usize>, None::<usize>);
    let mut calls = args.calls;
    let mut engine_mode = "spawned";
    let mut engine_cpus = args.engine_cpu.map(|cpu| cpu.to_string());
    loop {
        progress(format_args!("capacity step: {calls} calls"));
        let mut step_args = args.clone();
        step_args.calls = calls;
        step_args.find_capacity = false;
        let step = match measure(&step_args).await {
            Ok(report) => {
                engine_mode = report.engine.mode;
                if let Some(cpus) = report
                    .engine_cpu
                    .as_ref()
                    .and_then(|c| c.allowed_cpus.clone())
                {
                    engine_cpus = Some(cpus);
                }
                Step::judge(calls, &report, args.capacity_p99_ms)
            }
            Err(err) => Step::failed(calls, &err),
        };
        progress(format_args!(
            "capacity step: {calls} calls {}{}",
            if step.passed { "passed" } else { "failed: " },
            step.failures.join("; ")
        ));
        if step.passed {
            pass = pass.max(Some(calls));
        } else {
            fail = Some(fail.map_or(calls, |f: usize| f.min(calls)));
        }
        steps.push(step);
        match next_step(calls, pass, fail, args.capacity_max_calls) {
            Some(next) => calls = next,
            None => break,
        }
        tokio::time::sleep(BETWEEN_STEPS).await;
    }
    let generator_limited = first_failure_with_generator_saturated(&steps).is_some();
    Ok(CapacityReport {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        scenario: match args.scenario {
            Scenario::Ai => "ai",
            _ => "bridge",
        },
        engine_mode,
        capacity_is_per_core: engine_cpus
            .as_deref()
            .is_some_and(|cpus| cpus.trim().parse::<usize>().is_ok()),
        engine_cpus,
        generator_cpu: args.generator_cpu,
        seconds_per_step: args.seconds,
        p99_limit_ms: args.capacity_p99_ms,
        capacity: pass,
        capped_by_max_calls: fail.is_none(),
        generator_limited,
        steps,
    })
}

pub(super) fn render_text(r: &CapacityReport) -> String {
    let mut s = String::new();
    let opt = |v: Option<f64>, digits: usize| v.map_or("-".into(), |v| format!("{v:.digits$}"));
    let _ = writeln!(s, "switchboard loadtest --find-capacity");
    let _ = writeln!(s, "  command: {}", r.command);
    let _ = writeln!(
        s,
        "  scenario {}, engine {} (CPU {}), generator CPU {}, {} s per step; a step passes with every call set up, no frame lost, misrouted or reordered, and p99 added latency < {} ms",
        r.scenario,
        r.engine_mode,
        r.engine_cpus.as_deref().unwrap_or("unknown"),
        r.generator_cpu.map_or("not pinned".into(), |c| c.to_string()),
        r.seconds_per_step,
        r.p99_limit_ms
    );
    let _ = writeln!(
        s,
        "  {:>6} {:>6} {:>9} {:>9} {:>6} {:>7} {:>8} {:>8} {:>9} {:>8} {:>6} {:>7}  why",
        "calls",
        "pass",
        "p50 ms",
        "p99 ms",
        "lost",
        "eng %",
        "µs/frame",
        "µs/rt",
        "vcsw/frm",
        "KiB/call",
        "gen %",
        "others"
    );
    for step in &r.steps {
        let _ = writeln!(
            s,
            "  {:>6} {:>6} {:>9} {:>9} {:>6} {:>7} {:>8} {:>8} {:>9} {:>8} {:>6} {:>7}  {}",
            step.calls,
            if step.passed { "yes" } else { "NO" },
            opt(step.p50_added_ms, 2),
            opt(step.p99_added_ms, 2),
            step.frames_lost,
            opt(step.engine_cpu_pct, 0),
            opt(step.engine_us_per_frame, 2),
            opt(step.engine_us_per_round_trip, 2),
            opt(step.engine_voluntary_ctx_switches_per_frame, 3),
            opt(step.engine_kib_per_call, 1),
            opt(step.generator_cpu_pct, 0),
            opt(step.others_pct_of_one_core, 0),
            step.failures.join("; ")
        );
    }
    let unit = if r.capacity_is_per_core {
        "calls on one pinned core"
    } else {
        "calls (the engine was not pinned to one CPU: not a per-core figure)"
    };
    let _ = match r.capacity {
        Some(calls) if r.capped_by_max_calls => writeln!(
            s,
            "  capacity: ≥ {calls} {unit} (every step up to --capacity-max-calls passed)"
        ),
        Some(calls) => writeln!(s, "  capacity: {calls} {unit}"),
        None => writeln!(s, "  capacity: none (even the smallest step failed)"),
    };
    if let Some(step) = first_failure_with_generator_saturated(&r.steps) {
        let _ = writeln!(
            s,
            "  the generator was saturated at {} calls, the smallest failing step: the limit found may be the generator's, not the engine's (run the generator on another machine with --engine-url)",
            step.calls
        );
    }
    s
}

/// The smallest failing step, if the generator was saturated in it.
fn first_failure_with_generator_saturated(steps: &[Step]) -> Option<&Step> {
    steps
        .iter()
        .filter(|step| !step.passed)
        .min_by_key(|step| step.calls)
        .filter(|step| step.generator_saturated == Some(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_double_until_a_failure_then_bisect_to_five_percent() {
        // Capacity 700: 100, 200, 400, 800 ✗, 600, 700, 750 ✗, 725 ✗, then within
        // 35 calls (5 % of 700) of the answer.
        let capacity = 700;
        let (mut pass, mut fail, mut calls, mut tried) = (None, None, 100, Vec::new());
        loop {
            tried.push(calls);
            if calls <= capacity {
                pass = pass.max(Some(calls));
            } else {
                fail = Some(fail.map_or(calls, |f: usize| f.min(calls)));
            }
            match next_step(calls, pass, fail, 4000) {
                Some(next) => calls = next,
                None => break,
            }
        }
        assert_eq!(tried, [100, 200, 400, 800, 600, 700, 750, 725]);
        assert_eq!(pass, Some(700));
        // A first failure goes down; the largest step ends the search.
        assert_eq!(next_step(100, None, Some(100), 4000), Some(50));
        assert_eq!(next_step(1, None, Some(1), 4000), None);
        assert_eq!(next_step(3000, Some(3000), None, 4000), Some(4000));
        assert_eq!(next_step(4000, Some(4000), None, 4000), None);
    }
}
