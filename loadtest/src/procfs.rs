//! `/proc` sampling: CPU ticks (process, threads, machine), allowed CPUs and RSS.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use super::report::ThreadCpu;

/// `getconf CLK_TCK` (the unit of utime/stime); 100 on every Linux we run on.
pub(super) fn clock_ticks_per_second() -> f64 {
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
pub(super) struct CpuTicks {
    pub(super) user: u64,
    pub(super) system: u64,
}

impl CpuTicks {
    pub(super) fn total(self) -> u64 {
        self.user + self.system
    }

    pub(super) fn since(self, earlier: CpuTicks) -> CpuTicks {
        CpuTicks {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// `(comm, utime and stime)` from a `/proc/…/stat` line.
pub(super) fn parse_stat(text: &str) -> Option<(String, CpuTicks)> {
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
pub(super) fn cpu_ticks(pid: &str) -> Option<CpuTicks> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text).map(|(_, ticks)| ticks)
}

pub(super) fn thread_self_ticks() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    parse_stat(&text).map(|(_, ticks)| ticks.total())
}

/// The CPUs a process may run on (`Cpus_allowed_list`).
pub(super) fn allowed_cpus(pid: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .map(|list| list.trim().to_owned())
}

/// Busy and total ticks of the whole machine, and its CPU count (`/proc/stat`).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct MachineTicks {
    pub(super) busy: u64,
    pub(super) total: u64,
    pub(super) cpus: usize,
}

pub(super) fn machine_ticks() -> Option<MachineTicks> {
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

pub(super) fn rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// Context switches of a thread (`voluntary_ctxt_switches` and
/// `nonvoluntary_ctxt_switches` of `/proc/…/status`): a voluntary one is the thread
/// going to sleep (an empty epoll, a futex), i.e. one wake-up later.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct CtxSwitches {
    pub(super) voluntary: u64,
    pub(super) involuntary: u64,
}

impl CtxSwitches {
    pub(super) fn since(self, earlier: CtxSwitches) -> CtxSwitches {
        CtxSwitches {
            voluntary: self.voluntary.saturating_sub(earlier.voluntary),
            involuntary: self.involuntary.saturating_sub(earlier.involuntary),
        }
    }

    fn add(&mut self, other: CtxSwitches) {
        self.voluntary += other.voluntary;
        self.involuntary += other.involuntary;
    }
}

pub(super) fn parse_ctx_switches(status: &str) -> Option<CtxSwitches> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().parse::<u64>().ok())
    };
    Some(CtxSwitches {
        voluntary: field("voluntary_ctxt_switches:")?,
        involuntary: field("nonvoluntary_ctxt_switches:")?,
    })
}

/// A process's context switches: the sum over its threads (`/proc/PID/status`
/// counts the main thread only). Threads that exit between two samples take their
/// counts with them; the engine's threads live as long as it does.
pub(super) fn process_ctx_switches(pid: &str) -> Option<CtxSwitches> {
    let mut total = CtxSwitches::default();
    let mut threads = 0;
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        if let Some(switches) = std::fs::read_to_string(entry.path().join("status"))
            .ok()
            .and_then(|text| parse_ctx_switches(&text))
        {
            total.add(switches);
            threads += 1;
        }
    }
    (threads > 0).then_some(total)
}

/// The engine's CPU, in total and per thread.
pub(super) struct EngineSample {
    pub(super) ticks: CpuTicks,
    pub(super) switches: CtxSwitches,
    /// tid → (thread name, ticks)
    pub(super) threads: BTreeMap<u32, (String, CpuTicks)>,
}

impl EngineSample {
    pub(super) fn take(pid: u32) -> EngineSample {
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
            switches: process_ctx_switches(&pid.to_string()).unwrap_or_default(),
            threads,
        }
    }
}

/// CPU per thread over the window, busiest first.
pub(super) fn thread_breakdown(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_lines_parse_with_odd_thread_names() {
        let line = "1234 (actix-rt|system:0) S 1 2 3 4 5 6 7 8 9 10 250 30 0 0 20 0";
        let (comm, ticks) = parse_stat(line).expect("parses");
        assert_eq!(comm, "actix-rt|system:0");
        assert_eq!((ticks.user, ticks.system, ticks.total()), (250, 30, 280));
    }

    #[test]
    fn context_switches_are_read_from_status_and_summed_over_threads() {
        let status = "Name:\tswitchboard\nThreads:\t5\nvoluntary_ctxt_switches:\t1234\nnonvoluntary_ctxt_switches:\t56\n";
        assert_eq!(
            parse_ctx_switches(status),
            Some(CtxSwitches {
                voluntary: 1234,
                involuntary: 56
            })
        );
        assert_eq!(parse_ctx_switches("Name:\tx\n"), None);
        // The thread running this test sleeps, so its own count grows. Other
        // test threads may exit meanwhile, so the process's sum need not grow,
        // but it always holds at least this thread's count, read before it.
        let own = || {
            std::fs::read_to_string("/proc/thread-self/status")
                .ok()
                .and_then(|text| parse_ctx_switches(&text))
                .expect("readable")
        };
        let before = own();
        std::thread::sleep(Duration::from_millis(2));
        let after = own();
        assert!(after.since(before).voluntary >= 1, "{before:?} → {after:?}");
        let process = process_ctx_switches("self").expect("readable");
        assert!(
            process.voluntary >= after.voluntary && process.involuntary >= after.involuntary,
            "{process:?} holds {after:?}"
        );
    }
}
