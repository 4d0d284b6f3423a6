//! Each rule's value, read from the engine's own state: counters of
//! [`EngineStats`] over a rolling window, the journal's backlog, the store
//! (a ping, the numbers resting) and the file system (`statvfs`, by `fs4`).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use switchboard_actors::stats::EngineStats;
use tokio::time::Instant;

use super::rules::Rule;
use super::AlertDeps;
use crate::config::RuleSettings;
use crate::outbound::clock::ClockHandle;
use crate::store::journal::JournalWriter;
use crate::store::Store;

/// A database check (a ping, a query) that takes longer than this fails.
const DATABASE_DEADLINE: Duration = Duration::from_secs(2);

/// Counter readings over a rolling window: the oldest kept is the last one at
/// or before the window's start, so `now − oldest` covers the whole window.
#[derive(Debug)]
struct Window<const N: usize> {
    span: Duration,
    samples: VecDeque<(Instant, [u64; N])>,
}

impl<const N: usize> Window<N> {
    fn new(span: Duration) -> Self {
        Window {
            span,
            samples: VecDeque::new(),
        }
    }

    fn push(&mut self, now: Instant, reading: [u64; N]) {
        self.samples.push_back((now, reading));
        let start = now.checked_sub(self.span);
        while let (Some(start), Some(second)) = (start, self.samples.get(1)) {
            if second.0 > start {
                break;
            }
            self.samples.pop_front();
        }
    }

    /// How much each counter grew over the window.
    fn growth(&self) -> [u64; N] {
        let (Some(first), Some(last)) = (self.samples.front(), self.samples.back()) else {
            return [0; N];
        };
        std::array::from_fn(|i| last.1[i].saturating_sub(first.1[i]))
    }
}

/// What the rules read, and the windows of the counting rules.
pub struct Probe {
    store: Store,
    journal: JournalWriter,
    stats: Arc<EngineStats>,
    clock: ClockHandle,
    /// Assistant sessions started, failed, failed to start.
    ai: Window<3>,
    provider: Window<1>,
}

impl Probe {
    pub fn new(deps: &AlertDeps) -> Probe {
        let rules = &deps.settings.alerts.rules;
        Probe {
            store: deps.store.clone(),
            journal: deps.journal.clone(),
            stats: Arc::clone(&deps.stats),
            clock: deps.clock.clone(),
            ai: Window::new(rules.ai_failure_rate.window),
            provider: Window::new(rules.provider_errors.window),
        }
    }

    /// Reads the counters once per evaluation.
    pub fn sample_counters(&mut self) {
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let s = &self.stats;
        let now = Instant::now();
        self.ai.push(
            now,
            [
                load(&s.ai_sessions),
                load(&s.ai_failures),
                load(&s.ai_start_failures),
            ],
        );
        self.provider.push(now, [load(&s.provider_errors)]);
    }

    /// `rule`'s value now; `None` when it cannot be read (the evaluator keeps
    /// the alert as it is).
    pub async fn value(&self, rule: Rule, settings: &RuleSettings) -> Option<f64> {
        match rule {
            Rule::AiFailureRate => {
                let [sessions, failures, start_failures] = self.ai.growth();
                Some(failure_rate(
                    sessions,
                    failures,
                    start_failures,
                    settings.min_sessions,
                ))
            }
            Rule::ProviderErrors => Some(self.provider.growth()[0] as f64),
            Rule::JournalBacklog => Some(self.journal.backlog() as f64),
            Rule::DatabaseUnreachable => {
                let ping = tokio::time::timeout(DATABASE_DEADLINE, self.store.ping()).await;
                Some(if matches!(ping, Ok(Ok(()))) { 0.0 } else { 1.0 })
            }
            Rule::NumberRested => {
                let now_ms = self.clock.now().as_millisecond();
                match tokio::time::timeout(DATABASE_DEADLINE, self.store.rested_numbers(now_ms))
                    .await
                {
                    Ok(Ok(rested)) => Some(rested.len() as f64),
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "alerts: the rested numbers cannot be read");
                        None
                    }
                    Err(_) => None,
                }
            }
            Rule::RecordingsDisk => {
                let path = PathBuf::from(&settings.path);
                match tokio::task::spawn_blocking(move || fs4::statvfs(&path)).await {
                    Ok(Ok(stats)) => free_percent(stats.available_space(), stats.total_space()),
                    Ok(Err(error)) => {
                        tracing::warn!(%error, path = %settings.path, "alerts: the disk cannot be measured");
                        None
                    }
                    Err(_) => None,
                }
            }
        }
    }
}

/// Failed sessions in percent of those attempted (started, or failed before
/// starting); 0 while fewer than `min_sessions` were attempted.
fn failure_rate(sessions: u64, failures: u64, start_failures: u64, min_sessions: u64) -> f64 {
    let attempted = sessions.saturating_add(start_failures);
    if attempted == 0 || attempted < min_sessions {
        return 0.0;
    }
    (failures as f64 * 100.0 / attempted as f64).min(100.0)
}

fn free_percent(available: u64, total: u64) -> Option<f64> {
    (total > 0).then(|| available as f64 * 100.0 / total as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_counts_what_grew_since_its_start() {
        let mut w = Window::<1>::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        w.push(at(0), [0]);
        w.push(at(5), [3]);
        assert_eq!(w.growth(), [3]);
        w.push(at(10), [4]);
        assert_eq!(w.growth(), [4]);
        // The reading at 5 s is the window's start at 15 s: the first goes.
        w.push(at(15), [4]);
        assert_eq!(w.growth(), [1]);
        w.push(at(30), [4]);
        assert_eq!(w.growth(), [0]);
    }

    #[test]
    fn the_failure_rate_counts_sessions_that_never_started_and_waits_for_enough() {
        // 8 started (2 of them dropped), 2 never started: 4 of 10 failed.
        assert_eq!(failure_rate(8, 4, 2, 5), 40.0);
        assert_eq!(failure_rate(2, 2, 2, 5), 0.0);
        assert_eq!(failure_rate(0, 0, 0, 0), 0.0);
        assert_eq!(free_percent(25, 100), Some(25.0));
        assert_eq!(free_percent(0, 0), None);
    }
}
