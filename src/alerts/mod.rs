//! Alerts (issue 14): rules over the engine's own state, judged every
//! `alerts.evaluate_interval_ms` by one task ([`Alerts::start`]).
//!
//! - The rules ([`rules::Rule`]): the assistants' failure rate over a window,
//!   the providers' API errors over a window, the journal's backlog, pool
//!   numbers resting, the database not answering, free disk space where the
//!   recordings are. Each reads a counter of [`EngineStats`], the journal, the
//!   store or the file system ([`probe`]).
//! - Each alert is inactive or firing ([`rules::Tracker`]): it fires once its
//!   condition has held for `for_secs` and resolves once the condition has been
//!   clear for `clear_secs`, so a value hovering at its threshold does not flap.
//! - Its state is on the [`AlertBoard`] the engine holds, which `/metrics`
//!   shows (`switchboard_alert_firing{alert}` 0|1, `switchboard_alert_value`),
//!   so an existing Alertmanager can take over.
//! - Each transition is an [`AlertEvent`], sent to every configured webhook
//!   (JSON signed like users' callbacks) and e-mailed when SMTP is configured
//!   ([`notify`]): each receiver has its own bounded queue and worker, with a
//!   timeout per attempt and retries with backoff, then the event is given up
//!   and logged. The evaluator only `try_send`s: a hanging receiver never holds
//!   it, the other receivers or the engine.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;
use switchboard_actors::stats::EngineStats;
use tokio::task::JoinHandle;

use crate::config::Settings;
use crate::outbound::clock::ClockHandle;
use crate::store::journal::JournalWriter;
use crate::store::Store;

pub mod notify;
pub mod probe;
pub mod rules;

use rules::{Rule, Tracker, Transition};

/// One alert as `/metrics` shows it.
#[derive(Debug)]
pub struct AlertGauge {
    pub rule: Rule,
    firing: AtomicBool,
    /// The last value judged, as `f64` bits.
    value: AtomicU64,
}

impl AlertGauge {
    pub fn firing(&self) -> bool {
        self.firing.load(Ordering::Relaxed)
    }

    pub fn value(&self) -> f64 {
        f64::from_bits(self.value.load(Ordering::Relaxed))
    }
}

/// The alerts' state shared with `/metrics`: one gauge per enabled rule, and
/// what became of their notifications.
#[derive(Debug, Clone)]
pub struct AlertBoard {
    gauges: Arc<[AlertGauge]>,
    counts: Arc<NotifyCounts>,
}

/// Notifications (one per event and receiver), by what became of them.
#[derive(Debug, Default)]
pub struct NotifyCounts {
    pub delivered: AtomicU64,
    /// Every attempt failed: logged at error level.
    pub given_up: AtomicU64,
    /// The receiver's queue was full.
    pub dropped: AtomicU64,
}

impl AlertBoard {
    /// A gauge for every rule `settings` enables.
    pub fn new(settings: &Settings) -> AlertBoard {
        let gauges = Rule::ALL
            .into_iter()
            .filter(|rule| rule.settings(&settings.alerts.rules).enabled)
            .map(|rule| AlertGauge {
                rule,
                firing: AtomicBool::new(false),
                value: AtomicU64::new(0f64.to_bits()),
            })
            .collect();
        AlertBoard {
            gauges,
            counts: Arc::default(),
        }
    }

    pub fn gauges(&self) -> &[AlertGauge] {
        &self.gauges
    }

    pub fn counts(&self) -> &NotifyCounts {
        &self.counts
    }
}

/// A firing or resolved alert, as posted (field order is the JSON's) and
/// e-mailed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertEvent {
    /// Unique per event (a UUIDv7): receivers deduplicate on it; also
    /// `X-Switchboard-Event-Id`.
    pub event_id: String,
    pub alert: &'static str,
    /// `firing` or `resolved`.
    pub status: &'static str,
    pub severity: &'static str,
    pub summary: String,
    /// The value judged at the transition.
    pub value: f64,
    pub threshold: f64,
    /// RFC 3339, when the alert fired (the same in its resolved event).
    pub started_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    /// `node_id` of the engine that judged it.
    pub node: String,
}

/// What the evaluator reads.
pub struct AlertDeps {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub journal: JournalWriter,
    pub stats: Arc<EngineStats>,
    pub clock: ClockHandle,
    pub board: AlertBoard,
}

/// The evaluator and the receivers' workers; [`Alerts::stop`] ends them.
pub struct Alerts {
    evaluator: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
}

impl Alerts {
    /// Starts the evaluator (when a rule is enabled) and a worker per receiver
    /// (when a webhook or SMTP is configured). Fails when the recordings'
    /// directory cannot be measured, or an HTTP client or the SMTP transport
    /// cannot be built.
    pub fn start(deps: AlertDeps) -> anyhow::Result<Alerts> {
        if deps.board.gauges.is_empty() {
            return Ok(Alerts {
                evaluator: None,
                workers: Vec::new(),
            });
        }
        let disk = &deps.settings.alerts.rules.recordings_disk;
        if disk.enabled {
            fs4::statvfs(&disk.path).with_context(|| {
                format!(
                    "alerts.rules.recordings_disk.path {:?}: its disk cannot be measured",
                    disk.path
                )
            })?;
        }
        let alerts = &deps.settings.alerts;
        if !alerts.notifies() {
            tracing::info!(
                "alerts: no [[alerts.webhooks]] and no [alerts.smtp] host; the alerts are \
                 on /metrics only"
            );
        }
        let (senders, workers) = notify::start(alerts, &deps.board)?;
        Ok(Alerts {
            evaluator: Some(tokio::spawn(evaluate(deps, senders))),
            workers,
        })
    }

    /// Stops judging, then lets the receivers' workers deliver what is already
    /// queued or between retries for up to `grace` (`alerts.shutdown_grace_secs`):
    /// an alert that fired just before a shutdown still reaches its receivers.
    /// What is left after `grace` is dropped, and the log says so (alerts are
    /// about this process; a restart judges afresh).
    pub async fn stop(self, grace: Duration) {
        if let Some(evaluator) = self.evaluator {
            evaluator.abort();
            // Its end drops the queues' senders: each worker ends once its queue
            // is empty.
            let _ = evaluator.await;
        }
        let mut workers = self.workers;
        let drained = tokio::time::timeout(grace, async {
            for worker in &mut workers {
                let _ = worker.await;
            }
        })
        .await;
        if drained.is_err() {
            let left = workers.iter().filter(|w| !w.is_finished()).count();
            tracing::warn!(
                receivers = left,
                grace_ms = grace.as_millis() as u64,
                "shutting down with alert events not yet delivered: dropped"
            );
            for worker in workers {
                worker.abort();
            }
        }
    }
}

/// Judges every enabled rule each interval, forever.
async fn evaluate(deps: AlertDeps, senders: notify::Senders) {
    let alerts = &deps.settings.alerts;
    let mut probe = probe::Probe::new(&deps);
    let mut trackers: Vec<Tracker> = deps
        .board
        .gauges
        .iter()
        .map(|gauge| Tracker::new(gauge.rule.settings(&alerts.rules)))
        .collect();
    let mut tick = tokio::time::interval(alerts.evaluate_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        probe.sample_counters();
        for (gauge, tracker) in deps.board.gauges.iter().zip(trackers.iter_mut()) {
            let rule = gauge.rule;
            let settings = rule.settings(&alerts.rules);
            let Some(value) = probe.value(rule, settings).await else {
                continue;
            };
            gauge.value.store(value.to_bits(), Ordering::Relaxed);
            let breached = rule.breached(value, settings.threshold);
            let now = tokio::time::Instant::now();
            let Some(transition) = tracker.observe(breached, now, deps.clock.now()) else {
                continue;
            };
            gauge.firing.store(
                matches!(transition, Transition::Fired { .. }),
                Ordering::Relaxed,
            );
            let event = rules::event(rule, settings, value, &transition, &deps.settings.node_id);
            match &transition {
                Transition::Fired { .. } => tracing::warn!(
                    alert = rule.name(),
                    value,
                    threshold = settings.threshold,
                    summary = %event.summary,
                    "alert firing"
                ),
                Transition::Resolved { .. } => tracing::info!(
                    alert = rule.name(),
                    value,
                    summary = %event.summary,
                    "alert resolved"
                ),
            }
            senders.send(Arc::new(event), deps.board.counts());
        }
    }
}
