//! What "now" is for the outbound gates and, later, the queue: a [`Clock`] behind a
//! cheap cloneable [`ClockHandle`]. The engine holds the system clock; tests hold a
//! [`ManualClock`] they set and advance, so a gate never reads the wall itself and a
//! test can stand at 20:59 in New York, or on a DST change, whenever it likes.
//!
//! Instants are [`jiff::Timestamp`]s: the calling-hours arithmetic is done in jiff
//! (its bundled tz database), and a `Timestamp` is an instant with no offset to
//! get wrong. [`ClockHandle::now_utc`] gives the same instant as a
//! `time::OffsetDateTime` for code that formats RFC 3339 with `time`, as the rest
//! of the tree does.
//!
//! Timers (a queue waiting for `run_at`) still sleep on tokio's clock; this one
//! only answers "what time is it" for decisions.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jiff::Timestamp;

/// A source of the current instant.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that stands still until told otherwise: [`ManualClock::set`] and
/// [`ManualClock::advance`]. Clones share one instant, so a test keeps a clone and
/// moves the time the engine sees.
#[derive(Debug, Clone)]
pub struct ManualClock {
    /// Shared by every clone (and the [`ClockHandle`]s made from them).
    now: Arc<Mutex<Timestamp>>,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    pub fn set(&self, at: Timestamp) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = at;
    }

    /// Moves the clock forward by `by` (it stops at jiff's largest instant).
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now = now.saturating_add(by).unwrap_or(Timestamp::MAX);
    }

    /// A handle on this clock for the code under test.
    pub fn handle(&self) -> ClockHandle {
        ClockHandle(Arc::new(self.clone()))
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The clock the engine and its gates share: cloned freely (one `Arc`).
#[derive(Clone)]
pub struct ClockHandle(Arc<dyn Clock>);

impl ClockHandle {
    /// The wall clock.
    pub fn system() -> Self {
        Self(Arc::new(SystemClock))
    }

    pub fn new(clock: impl Clock) -> Self {
        Self(Arc::new(clock))
    }

    pub fn now(&self) -> Timestamp {
        self.0.now()
    }

    /// [`ClockHandle::now`] as a `time::OffsetDateTime` in UTC.
    pub fn now_utc(&self) -> time::OffsetDateTime {
        to_offset_date_time(self.now())
    }
}

impl Default for ClockHandle {
    fn default() -> Self {
        Self::system()
    }
}

impl fmt::Debug for ClockHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ClockHandle").field(&self.now()).finish()
    }
}

/// The same instant in `time`'s type (UTC). Every `Timestamp` jiff has fits:
/// jiff's range (years -9999 to 9999) is inside `time`'s.
pub fn to_offset_date_time(at: Timestamp) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(at.as_nanosecond())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// A `time` instant as jiff's, the other way round: [`to_offset_date_time`]'s
/// twin, beside it. Fails for an instant outside jiff's range.
pub fn from_offset_date_time(at: time::OffsetDateTime) -> Result<Timestamp, jiff::Error> {
    Timestamp::from_nanosecond(at.unix_timestamp_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("an RFC 3339 instant")
    }

    #[test]
    fn a_manual_clock_stands_still_until_set_or_advanced() {
        let manual = ManualClock::new(at("2026-03-01T12:00:00Z"));
        let clock = manual.handle();
        assert_eq!(clock.now(), at("2026-03-01T12:00:00Z"));
        assert_eq!(clock.now(), at("2026-03-01T12:00:00Z"));
        manual.advance(Duration::from_secs(90));
        assert_eq!(clock.now(), at("2026-03-01T12:01:30Z"));
        manual.set(at("2026-11-01T06:59:59Z"));
        assert_eq!(clock.clone().now(), at("2026-11-01T06:59:59Z"));
    }

    #[test]
    fn clones_of_a_manual_clock_share_one_instant() {
        let manual = ManualClock::new(at("2026-01-01T00:00:00Z"));
        let engine_side = ClockHandle::new(manual.clone());
        manual.clone().advance(Duration::from_secs(3_600));
        assert_eq!(engine_side.now(), at("2026-01-01T01:00:00Z"));
    }

    #[test]
    fn advancing_past_the_end_of_time_stops_there() {
        let manual = ManualClock::new(Timestamp::MAX);
        manual.advance(Duration::from_secs(1));
        assert_eq!(manual.now(), Timestamp::MAX);
    }

    #[test]
    fn the_system_clock_moves_with_the_wall() {
        let clock = ClockHandle::system();
        let before = Timestamp::now();
        let read = clock.now();
        assert!(read >= before && read <= Timestamp::now());
    }

    #[test]
    fn the_instant_reads_the_same_in_time() {
        let manual = ManualClock::new(at("2026-07-04T16:30:05.25Z"));
        let utc = manual.handle().now_utc();
        assert_eq!(utc.offset(), time::UtcOffset::UTC);
        assert_eq!(
            (
                utc.date().to_string(),
                utc.hour(),
                utc.minute(),
                utc.second()
            ),
            ("2026-07-04".to_owned(), 16, 30, 5)
        );
        assert_eq!(utc.millisecond(), 250);
        assert_eq!(
            to_offset_date_time(Timestamp::MIN).year(),
            -9999,
            "jiff's earliest instant fits"
        );
    }
}
