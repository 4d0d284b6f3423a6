//! The rules, what breaches each, and the state of one alert: inactive →
//! firing (after `for_secs` of breach) → resolved (after `clear_secs` clear),
//! a pure state machine the evaluator feeds one observation per interval.

use std::time::Duration;

use jiff::Timestamp;
use tokio::time::Instant;

use super::AlertEvent;
use crate::config::{AlertRules, RuleSettings};

/// Every rule the engine knows (`[alerts.rules.<name>]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Assistant sessions that failed, in percent of those attempted, over the
    /// window.
    AiFailureRate,
    /// Provider API errors over the window.
    ProviderErrors,
    /// Call records waiting for the database.
    JournalBacklog,
    /// Pool numbers resting now.
    NumberRested,
    /// 1 while the database does not answer a ping, else 0.
    DatabaseUnreachable,
    /// Free space, in percent, of the file system holding the recordings.
    RecordingsDisk,
}

impl Rule {
    pub const ALL: [Rule; 6] = [
        Rule::AiFailureRate,
        Rule::ProviderErrors,
        Rule::JournalBacklog,
        Rule::NumberRested,
        Rule::DatabaseUnreachable,
        Rule::RecordingsDisk,
    ];

    /// The alert's name: its metric label and its `[alerts.rules]` key.
    pub fn name(self) -> &'static str {
        match self {
            Rule::AiFailureRate => "ai_failure_rate",
            Rule::ProviderErrors => "provider_errors",
            Rule::JournalBacklog => "journal_backlog",
            Rule::NumberRested => "number_rested",
            Rule::DatabaseUnreachable => "database_unreachable",
            Rule::RecordingsDisk => "recordings_disk",
        }
    }

    pub fn settings(self, rules: &AlertRules) -> &RuleSettings {
        match self {
            Rule::AiFailureRate => &rules.ai_failure_rate,
            Rule::ProviderErrors => &rules.provider_errors,
            Rule::JournalBacklog => &rules.journal_backlog,
            Rule::NumberRested => &rules.number_rested,
            Rule::DatabaseUnreachable => &rules.database_unreachable,
            Rule::RecordingsDisk => &rules.recordings_disk,
        }
    }

    /// Whether `value` breaches `threshold`: over it, or for free disk space,
    /// under it.
    pub fn breached(self, value: f64, threshold: f64) -> bool {
        match self {
            Rule::RecordingsDisk => value < threshold,
            _ => value > threshold,
        }
    }

    /// One line for people: what the value means against the threshold.
    pub fn summary(self, settings: &RuleSettings, value: f64) -> String {
        let t = settings.threshold;
        let window = minutes(settings.window);
        match self {
            Rule::AiFailureRate => format!(
                "{value:.1}% of assistant sessions failed in the last {window} (threshold {t}%)"
            ),
            Rule::ProviderErrors => {
                format!("{value} provider API errors in the last {window} (threshold {t})")
            }
            Rule::JournalBacklog => {
                format!("{value} call records wait for the database (threshold {t})")
            }
            Rule::NumberRested => format!("{value} pool numbers are resting (threshold {t})"),
            Rule::DatabaseUnreachable if value > 0.0 => "the database does not answer".to_owned(),
            Rule::DatabaseUnreachable => "the database answers".to_owned(),
            Rule::RecordingsDisk => format!(
                "{value:.1}% of the disk at {:?} is free (threshold {t}%)",
                settings.path
            ),
        }
    }
}

fn minutes(window: Duration) -> String {
    let secs = window.as_secs();
    if secs >= 60 && secs % 60 == 0 {
        format!("{} min", secs / 60)
    } else {
        format!("{} s", window.as_secs_f64())
    }
}

/// What an observation changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Fired {
        started_at: Timestamp,
    },
    Resolved {
        started_at: Timestamp,
        resolved_at: Timestamp,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Inactive,
    /// Breached since `since`, not yet for `for_secs`.
    Pending {
        since: Instant,
    },
    /// Fired at `started_at`; clear since `clear_since`, if it is.
    Firing {
        started_at: Timestamp,
        clear_since: Option<Instant>,
    },
}

/// One alert's state.
#[derive(Debug, Clone)]
pub struct Tracker {
    phase: Phase,
    for_: Duration,
    clear: Duration,
}

impl Tracker {
    pub fn new(settings: &RuleSettings) -> Tracker {
        Tracker {
            phase: Phase::Inactive,
            for_: settings.for_,
            clear: settings.clear,
        }
    }

    pub fn is_firing(&self) -> bool {
        matches!(self.phase, Phase::Firing { .. })
    }

    /// Takes one observation, at `now` (monotonic) and `wall` (the time events
    /// carry); returns the transition it caused, if any.
    pub fn observe(&mut self, breached: bool, now: Instant, wall: Timestamp) -> Option<Transition> {
        match (&self.phase, breached) {
            (Phase::Inactive, false) => None,
            (Phase::Inactive, true) => {
                self.phase = Phase::Pending { since: now };
                self.observe(true, now, wall)
            }
            (Phase::Pending { since }, true) => {
                if now.saturating_duration_since(*since) >= self.for_ {
                    self.phase = Phase::Firing {
                        started_at: wall,
                        clear_since: None,
                    };
                    Some(Transition::Fired { started_at: wall })
                } else {
                    None
                }
            }
            (Phase::Pending { .. }, false) => {
                self.phase = Phase::Inactive;
                None
            }
            (Phase::Firing { started_at, .. }, true) => {
                self.phase = Phase::Firing {
                    started_at: *started_at,
                    clear_since: None,
                };
                None
            }
            (
                Phase::Firing {
                    started_at,
                    clear_since,
                },
                false,
            ) => {
                let started_at = *started_at;
                let since = clear_since.unwrap_or(now);
                if now.saturating_duration_since(since) >= self.clear {
                    self.phase = Phase::Inactive;
                    Some(Transition::Resolved {
                        started_at,
                        resolved_at: wall,
                    })
                } else {
                    self.phase = Phase::Firing {
                        started_at,
                        clear_since: Some(since),
                    };
                    None
                }
            }
        }
    }
}

/// The event of `transition`.
pub fn event(
    rule: Rule,
    settings: &RuleSettings,
    value: f64,
    transition: &Transition,
    node: &str,
) -> AlertEvent {
    let (status, started_at, resolved_at) = match transition {
        Transition::Fired { started_at } => ("firing", started_at, None),
        Transition::Resolved {
            started_at,
            resolved_at,
        } => ("resolved", started_at, Some(resolved_at.to_string())),
    };
    AlertEvent {
        event_id: uuid::Uuid::now_v7().simple().to_string(),
        alert: rule.name(),
        status,
        severity: settings.severity.as_str(),
        summary: rule.summary(settings, value),
        value,
        threshold: settings.threshold,
        started_at: started_at.to_string(),
        resolved_at,
        node: node.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn tracker(for_secs: u64, clear_secs: u64) -> Tracker {
        let mut settings = Settings::defaults().alerts.rules.journal_backlog;
        settings.for_ = Duration::from_secs(for_secs);
        settings.clear = Duration::from_secs(clear_secs);
        Tracker::new(&settings)
    }

    fn wall(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).expect("an instant")
    }

    #[test]
    fn an_alert_fires_only_after_its_condition_held_for_its_duration() {
        let mut t = tracker(10, 0);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(t.observe(true, at(0), wall(0)), None);
        assert_eq!(t.observe(true, at(5), wall(5)), None);
        // A clear observation in between starts the wait again.
        assert_eq!(t.observe(false, at(6), wall(6)), None);
        assert_eq!(t.observe(true, at(7), wall(7)), None);
        assert_eq!(t.observe(true, at(16), wall(16)), None);
        assert_eq!(
            t.observe(true, at(17), wall(17)),
            Some(Transition::Fired {
                started_at: wall(17)
            })
        );
        assert!(t.is_firing());
        assert_eq!(t.observe(true, at(18), wall(18)), None);
    }

    #[test]
    fn a_firing_alert_resolves_only_after_its_condition_was_clear_for_its_duration() {
        let mut t = tracker(0, 10);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(
            t.observe(true, at(0), wall(0)),
            Some(Transition::Fired {
                started_at: wall(0)
            })
        );
        // Hovering at the threshold does not flap.
        assert_eq!(t.observe(false, at(1), wall(1)), None);
        assert_eq!(t.observe(true, at(2), wall(2)), None);
        assert_eq!(t.observe(false, at(3), wall(3)), None);
        assert_eq!(t.observe(false, at(12), wall(12)), None);
        assert_eq!(
            t.observe(false, at(13), wall(13)),
            Some(Transition::Resolved {
                started_at: wall(0),
                resolved_at: wall(13)
            })
        );
        assert!(!t.is_firing());
    }

    #[test]
    fn free_disk_space_breaches_under_its_threshold_and_the_others_over_it() {
        assert!(Rule::RecordingsDisk.breached(5.0, 10.0));
        assert!(!Rule::RecordingsDisk.breached(50.0, 10.0));
        assert!(Rule::JournalBacklog.breached(11.0, 10.0));
        assert!(!Rule::JournalBacklog.breached(10.0, 10.0));
        assert!(Rule::DatabaseUnreachable.breached(1.0, 0.0));
        assert!(!Rule::DatabaseUnreachable.breached(0.0, 0.0));
    }

    #[test]
    fn an_event_names_the_alert_its_status_value_threshold_times_and_node() {
        let settings = Settings::defaults().alerts.rules.journal_backlog;
        let resolved = Transition::Resolved {
            started_at: wall(0),
            resolved_at: wall(60),
        };
        let event = event(Rule::JournalBacklog, &settings, 12.0, &resolved, "node-a");
        let json = serde_json::to_value(&event).expect("JSON");
        assert_eq!(json["alert"], "journal_backlog");
        assert_eq!(json["status"], "resolved");
        assert_eq!(json["severity"], "warning");
        assert_eq!(json["value"], 12.0);
        assert_eq!(json["threshold"], 1000.0);
        assert_eq!(json["started_at"], wall(0).to_string());
        assert_eq!(json["resolved_at"], wall(60).to_string());
        assert_eq!(json["node"], "node-a");
        let fired = Transition::Fired {
            started_at: wall(0),
        };
        let json = serde_json::to_value(event_of(&settings, &fired)).expect("JSON");
        assert!(json.get("resolved_at").is_none(), "{json}");
    }

    fn event_of(settings: &RuleSettings, transition: &Transition) -> AlertEvent {
        event(Rule::JournalBacklog, settings, 1.0, transition, "n")
    }
}
