//! The calling-hours gate: an outbound call may ring only while it is within the
//! configured window (`outbound.calling_hours_start` / `_end`, default 08:00–21:00)
//! on the callee's clock, in every time zone the number may be in
//! ([`CalleeZones`], from libphonenumber's map).
//!
//! The window is half-open, `[start, end)`, of local wall-clock time, each day.
//! For each zone it is the stretch from the instant the local clock first reads
//! `start` to the instant it first reads `end`; a time the clock skips (a DST gap)
//! moves to the same reading after the gap, as RFC 5545 and Temporal do
//! ("compatible"). Several zones allow only the intersection of their windows,
//! worked out as instants (UTC), so DST changes on different dates in different
//! zones need no special case.
//!
//! [`CallingHours::check`] answers, for an instant (the injected clock's now at
//! submit and at dispatch, or a requested `schedule_at`): open now, and until
//! when; or deferred to the next allowed instant (which the request answers as
//! `"deferred":"calling_hours"`). When the zones share no allowed instant within
//! [`HORIZON`] — e.g. a narrow window across a country-level list spanning 14
//! hours (a US toll-free number takes every NANP zone, Guam to Newfoundland) —
//! the answer is [`HoursError::NoCommonWindow`]: the call is refused, never placed
//! at an hour that is outside the window somewhere it may ring.

use std::fmt;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::config::OutboundSettings;
use crate::domain::phone::PhoneNumber;
use crate::outbound::zones::CalleeZones;

/// How far past the instant asked about a common window is looked for: a month
/// (a call may be scheduled at most 30 days ahead, and DST changes on different
/// dates in different zones can close a narrow intersection for a few weeks).
pub const HORIZON: SignedDuration = SignedDuration::from_hours(31 * 24);

/// The local window calls may ring in: `[start, end)` of every day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallingHours {
    start: Time,
    end: Time,
}

/// Why there is no answer to "may this callee be rung, and when".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoursError {
    #[error("calling hours must start before they end, not {start}–{end}")]
    EmptyWindow { start: Time, end: Time },
    #[error(
        "the callee may be in any of {}, which share no calling hours in the next {} days",
        .zones.join(", "),
        HORIZON.as_hours() / 24
    )]
    NoCommonWindow { zones: Vec<String> },
    #[error("{0} is outside the dates calling hours can be worked out for")]
    OutOfRange(Timestamp),
}

/// What the gate says of an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within calling hours in every zone; the first of them closes at `closes`.
    Open { closes: Timestamp },
    /// Outside: the next allowed instant, and when that stretch closes.
    Deferred { opens: Timestamp, closes: Timestamp },
}

impl Verdict {
    /// The instant a call asked for now may ring: `None` when that is now.
    pub fn deferred_until(&self) -> Option<Timestamp> {
        match self {
            Verdict::Open { .. } => None,
            Verdict::Deferred { opens, .. } => Some(*opens),
        }
    }

    /// When the allowed stretch the call rings in (now, or from `opens`) ends.
    pub fn closes(&self) -> Timestamp {
        match self {
            Verdict::Open { closes } | Verdict::Deferred { closes, .. } => *closes,
        }
    }
}

/// One zone at one instant.
enum ZoneState {
    Open { closes: Timestamp },
    Closed { opens: Timestamp },
}

impl CallingHours {
    /// The window `[start, end)`; `start` must come before `end` (a window across
    /// midnight is not calling hours).
    pub fn new(start: Time, end: Time) -> Result<Self, HoursError> {
        if start < end {
            Ok(Self { start, end })
        } else {
            Err(HoursError::EmptyWindow { start, end })
        }
    }

    /// The configured window (`[outbound] calling_hours_start`, `_end`).
    pub fn from_settings(settings: &OutboundSettings) -> Result<Self, HoursError> {
        Self::new(settings.calling_hours_start, settings.calling_hours_end)
    }

    pub fn start(&self) -> Time {
        self.start
    }

    pub fn end(&self) -> Time {
        self.end
    }

    /// Whether `number` may be rung at `at`, and if not, from when.
    pub fn check(&self, number: &PhoneNumber, at: Timestamp) -> Result<Verdict, HoursError> {
        self.check_zones(&CalleeZones::of(number), at)
    }

    /// [`CallingHours::check`] for zones already looked up: the first instant at
    /// or after `at` that is within the window in every zone, found by leapfrog —
    /// while some zone is closed, move to the latest of the closed zones' next
    /// openings (no instant before it can be open everywhere) and look again.
    pub fn check_zones(&self, zones: &CalleeZones, at: Timestamp) -> Result<Verdict, HoursError> {
        let give_up = at
            .checked_add(HORIZON)
            .map_err(|_| HoursError::OutOfRange(at))?;
        let mut candidate = at;
        while candidate <= give_up {
            let mut latest_opening: Option<Timestamp> = None;
            let mut earliest_closing: Option<Timestamp> = None;
            for zone in zones.zones() {
                match self.zone_state(zone, candidate)? {
                    ZoneState::Open { closes } => {
                        earliest_closing = Some(earliest_closing.map_or(closes, |c| c.min(closes)));
                    }
                    ZoneState::Closed { opens } => {
                        latest_opening = Some(latest_opening.map_or(opens, |o| o.max(opens)));
                    }
                }
            }
            match (latest_opening, earliest_closing) {
                // Always later than `candidate`: the loop moves forward.
                (Some(opens), _) => candidate = opens,
                (None, Some(closes)) if candidate == at => return Ok(Verdict::Open { closes }),
                (None, Some(closes)) => {
                    return Ok(Verdict::Deferred {
                        opens: candidate,
                        closes,
                    })
                }
                // No zone at all: `CalleeZones` always has one; refuse rather than guess.
                (None, None) => break,
            }
        }
        Err(HoursError::NoCommonWindow {
            zones: zones.names().into_iter().map(str::to_owned).collect(),
        })
    }

    /// Whether `zone`'s window holds `at` (and until when), or when it next opens.
    fn zone_state(&self, zone: &TimeZone, at: Timestamp) -> Result<ZoneState, HoursError> {
        let out_of_range = |_: jiff::Error| HoursError::OutOfRange(at);
        // From the day before `at`'s local date: a DST change can push a window's
        // end past midnight. A few days on covers a day a zone skipped whole.
        let mut day = zone
            .to_datetime(at)
            .date()
            .yesterday()
            .map_err(out_of_range)?;
        for _ in 0..5 {
            let opens = local_instant(zone, day, self.start).map_err(out_of_range)?;
            let closes = local_instant(zone, day, self.end).map_err(out_of_range)?;
            if opens < closes {
                if at < opens {
                    return Ok(ZoneState::Closed { opens });
                }
                if at < closes {
                    return Ok(ZoneState::Open { closes });
                }
            }
            day = day.tomorrow().map_err(out_of_range)?;
        }
        Err(HoursError::OutOfRange(at))
    }
}

/// The instant `zone`'s clock reads `time` on `day` (the first, in a fold; the
/// same reading after the gap, in a gap).
fn local_instant(zone: &TimeZone, day: Date, time: Time) -> Result<Timestamp, jiff::Error> {
    zone.to_ambiguous_timestamp(day.to_datetime(time))
        .compatible()
}

impl fmt::Display for CallingHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}–{:02}:{:02}",
            self.start.hour(),
            self.start.minute(),
            self.end.hour(),
            self.end.minute()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::zones::ZoneSource;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("an RFC 3339 instant")
    }

    fn hm(hour: i8, minute: i8) -> Time {
        Time::new(hour, minute, 0, 0).expect("a time of day")
    }

    /// The default window, 08:00–21:00.
    fn default_hours() -> CallingHours {
        CallingHours::from_settings(&crate::config::Settings::defaults().outbound)
            .expect("the default window")
    }

    fn number(raw: &str) -> PhoneNumber {
        PhoneNumber::parse(raw).expect("a valid number")
    }

    fn check(raw: &str, when: &str) -> Verdict {
        default_hours()
            .check(&number(raw), at(when))
            .expect("a verdict")
    }

    const NYC: &str = "+1 212 736 5000";
    const LA: &str = "+1 213 555 0100";
    const SOUTH_DAKOTA: &str = "+1 605 222 4567";
    const TOLL_FREE: &str = "+1 800 723 3456";

    #[test]
    fn a_new_york_number_before_the_window_is_deferred_to_eight_oclock_there() {
        // 07:00 EST.
        assert_eq!(
            check(NYC, "2026-01-15T12:00:00Z"),
            Verdict::Deferred {
                opens: at("2026-01-15T13:00:00Z"),
                closes: at("2026-01-16T02:00:00Z"),
            }
        );
        // 07:59:59.999 EST: still a millisecond early.
        assert_eq!(
            check(NYC, "2026-01-15T12:59:59.999Z").deferred_until(),
            Some(at("2026-01-15T13:00:00Z"))
        );
    }

    #[test]
    fn a_new_york_number_inside_the_window_is_open_until_nine_in_the_evening() {
        let closes = at("2026-01-16T02:00:00Z");
        assert_eq!(
            check(NYC, "2026-01-15T13:00:00Z"),
            Verdict::Open { closes },
            "08:00 sharp is inside"
        );
        assert_eq!(check(NYC, "2026-01-15T18:30:00Z"), Verdict::Open { closes });
        assert_eq!(
            check(NYC, "2026-01-16T01:59:59Z"),
            Verdict::Open { closes },
            "20:59:59 is inside"
        );
    }

    #[test]
    fn nine_in_the_evening_and_later_wait_for_the_next_morning_across_midnight() {
        let next_morning = Verdict::Deferred {
            opens: at("2026-01-16T13:00:00Z"),
            closes: at("2026-01-17T02:00:00Z"),
        };
        // 21:00 sharp is outside: the window is half-open.
        assert_eq!(check(NYC, "2026-01-16T02:00:00Z"), next_morning);
        // 23:30 on the 15th, and 00:30 on the 16th, local.
        assert_eq!(check(NYC, "2026-01-16T04:30:00Z"), next_morning);
        assert_eq!(check(NYC, "2026-01-16T05:30:00Z"), next_morning);
    }

    #[test]
    fn the_same_instant_is_open_in_new_york_and_too_early_in_los_angeles() {
        let when = "2026-01-15T14:00:00Z"; // 09:00 EST, 06:00 PST
        assert!(matches!(check(NYC, when), Verdict::Open { .. }));
        assert_eq!(
            check(LA, when),
            Verdict::Deferred {
                opens: at("2026-01-15T16:00:00Z"),
                closes: at("2026-01-16T05:00:00Z"),
            }
        );
        // 20:59 PST is open; 21:00 PST waits for 08:00 PST.
        assert_eq!(
            check(LA, "2026-01-16T04:59:00Z"),
            Verdict::Open {
                closes: at("2026-01-16T05:00:00Z")
            }
        );
        assert_eq!(
            check(LA, "2026-01-16T05:00:00Z").deferred_until(),
            Some(at("2026-01-16T16:00:00Z"))
        );
    }

    #[test]
    fn an_area_code_across_two_zones_allows_only_the_hours_both_allow() {
        // South Dakota: Mountain (08:00 = 15:00Z) and Central (21:00 = 03:00Z).
        let both = Verdict::Deferred {
            opens: at("2026-01-15T15:00:00Z"),
            closes: at("2026-01-16T03:00:00Z"),
        };
        // 08:30 Central but 07:30 Mountain.
        assert_eq!(check(SOUTH_DAKOTA, "2026-01-15T14:30:00Z"), both);
        // 20:30 Central, 19:30 Mountain: open until 21:00 Central.
        assert_eq!(
            check(SOUTH_DAKOTA, "2026-01-16T02:30:00Z"),
            Verdict::Open {
                closes: at("2026-01-16T03:00:00Z")
            }
        );
        // 21:00 Central, 20:00 Mountain: closed until 08:00 Mountain.
        assert_eq!(
            check(SOUTH_DAKOTA, "2026-01-16T03:00:00Z").deferred_until(),
            Some(at("2026-01-16T15:00:00Z"))
        );
        // Alaska's 907: Anchorage and Adak (an hour behind).
        assert_eq!(
            check("+1 907 231 4567", "2026-01-15T17:30:00Z"),
            Verdict::Deferred {
                opens: at("2026-01-15T18:00:00Z"),  // 08:00 HST (Adak) = 09:00 AKST
                closes: at("2026-01-16T06:00:00Z"), // 21:00 AKST (Anchorage)
            }
        );
    }

    #[test]
    fn a_toll_free_number_gets_the_narrow_window_all_nanp_zones_share() {
        // Guam (UTC+10) opens at 22:00Z, Newfoundland (UTC−3:30) closes at 00:30Z.
        assert_eq!(
            check(TOLL_FREE, "2026-01-15T12:00:00Z"),
            Verdict::Deferred {
                opens: at("2026-01-15T22:00:00Z"),
                closes: at("2026-01-16T00:30:00Z"),
            }
        );
        // In summer Newfoundland is on daylight time: an hour less.
        assert_eq!(
            check(TOLL_FREE, "2026-07-15T22:15:00Z"),
            Verdict::Open {
                closes: at("2026-07-15T23:30:00Z")
            }
        );
    }

    #[test]
    fn zones_that_share_no_hours_are_refused_not_guessed() {
        let business = CallingHours::new(hm(9, 0), hm(17, 0)).expect("a window");
        let err = business
            .check(&number(TOLL_FREE), at("2026-01-15T12:00:00Z"))
            .expect_err("Guam's and Newfoundland's 09:00–17:00 never overlap");
        let HoursError::NoCommonWindow { zones } = &err else {
            panic!("{err:?}");
        };
        assert!(zones.iter().any(|z| z == "Pacific/Guam"), "{zones:?}");
        assert!(err.to_string().contains("31 days"), "{err}");
    }

    #[test]
    fn a_dst_change_moves_the_window_with_the_clock() {
        // Spring forward, Sunday 8 March 2026: from 23:00 EST on the 7th the next
        // 08:00 is EDT (12:00Z, not 13:00Z), and 21:00 EDT is 01:00Z.
        assert_eq!(
            check(NYC, "2026-03-08T04:00:00Z"),
            Verdict::Deferred {
                opens: at("2026-03-08T12:00:00Z"),
                closes: at("2026-03-09T01:00:00Z"),
            }
        );
        // Fall back, Sunday 1 November 2026: at 01:00 EDT the next 08:00 is EST.
        assert_eq!(
            check(NYC, "2026-11-01T05:00:00Z"),
            Verdict::Deferred {
                opens: at("2026-11-01T13:00:00Z"),
                closes: at("2026-11-02T02:00:00Z"),
            }
        );
        // The day before each change keeps its own offsets.
        assert_eq!(
            check(NYC, "2026-03-07T13:00:00Z"),
            Verdict::Open {
                closes: at("2026-03-08T02:00:00Z")
            }
        );
    }

    #[test]
    fn a_window_edge_in_a_dst_gap_moves_past_the_gap() {
        // 02:30 does not exist in New York on 8 March 2026; the clock reads 03:30
        // an hour after 01:30 would have, at 07:30Z.
        let early = CallingHours::new(hm(2, 30), hm(21, 0)).expect("a window");
        assert_eq!(
            early
                .check(&number(NYC), at("2026-03-08T05:00:00Z"))
                .expect("a verdict")
                .deferred_until(),
            Some(at("2026-03-08T07:30:00Z"))
        );
    }

    #[test]
    fn zones_changing_dst_on_different_dates_are_intersected_instant_by_instant() {
        // New York changes on 8 March, London on 29 March 2026; a 12:00–18:00
        // window: New York opens at 17:00Z (EST) or 16:00Z (EDT), London closes at
        // 18:00Z (GMT) or 17:00Z (BST).
        let zones = CalleeZones::from_names(&["America/New_York", "Europe/London"]);
        let noon_to_six = CallingHours::new(hm(12, 0), hm(18, 0)).expect("a window");
        let verdict = |when: &str| {
            noon_to_six
                .check_zones(&zones, at(when))
                .expect("a verdict")
        };
        assert_eq!(
            verdict("2026-03-02T10:00:00Z"),
            Verdict::Deferred {
                opens: at("2026-03-02T17:00:00Z"),
                closes: at("2026-03-02T18:00:00Z"),
            },
            "before either change"
        );
        assert_eq!(
            verdict("2026-03-16T10:00:00Z"),
            Verdict::Deferred {
                opens: at("2026-03-16T16:00:00Z"),
                closes: at("2026-03-16T18:00:00Z"),
            },
            "New York on EDT, London still on GMT: two hours"
        );
        assert_eq!(
            verdict("2026-04-06T10:00:00Z"),
            Verdict::Deferred {
                opens: at("2026-04-06T16:00:00Z"),
                closes: at("2026-04-06T17:00:00Z"),
            },
            "both on summer time"
        );
    }

    #[test]
    fn a_window_that_is_not_a_stretch_of_one_day_is_refused() {
        assert_eq!(
            CallingHours::new(hm(21, 0), hm(8, 0)),
            Err(HoursError::EmptyWindow {
                start: hm(21, 0),
                end: hm(8, 0)
            })
        );
        assert!(CallingHours::new(hm(9, 0), hm(9, 0)).is_err());
        assert_eq!(
            default_hours(),
            CallingHours::new(hm(8, 0), hm(21, 0)).expect("a window")
        );
        assert_eq!(default_hours().to_string(), "08:00–21:00");
    }

    #[test]
    fn instants_at_the_ends_of_time_are_errors_not_panics() {
        let hours = default_hours();
        for when in [Timestamp::MAX, Timestamp::MIN] {
            assert_eq!(
                hours.check(&number(NYC), when),
                Err(HoursError::OutOfRange(when))
            );
        }
    }

    #[test]
    fn a_number_without_zone_data_is_judged_in_utc() {
        let freephone = number("+800 1234 5678");
        assert_eq!(CalleeZones::of(&freephone).source(), ZoneSource::Default);
        assert_eq!(
            default_hours()
                .check(&freephone, at("2026-01-15T07:00:00Z"))
                .expect("a verdict")
                .deferred_until(),
            Some(at("2026-01-15T08:00:00Z"))
        );
    }

    /// Every verdict over a year, every 97 minutes (every 7 h 13 min for the
    /// 42-zone toll-free list): an open instant is inside the window in each zone;
    /// a deferred one is outside somewhere, `opens` is inside everywhere, and the
    /// second before `opens` is outside somewhere (it is the *next* allowed instant).
    #[test]
    fn verdicts_agree_with_the_local_clocks_all_year() {
        let hours = default_hours();
        let inside_everywhere = |zones: &CalleeZones, when: Timestamp| {
            zones.zones().iter().all(|zone| {
                let local = zone.to_datetime(when).time();
                hours.start() <= local && local < hours.end()
            })
        };
        let start = at("2026-01-01T00:00:00Z");
        for (raw, step_minutes) in [
            (NYC, 97),
            (SOUTH_DAKOTA, 97),
            ("+61 2 9374 4000", 97),
            (TOLL_FREE, 433),
        ] {
            let zones = CalleeZones::of(&number(raw));
            let mut when = start;
            while when < at("2027-01-01T00:00:00Z") {
                match hours.check_zones(&zones, when).expect("a verdict") {
                    Verdict::Open { closes } => {
                        assert!(inside_everywhere(&zones, when), "{raw} at {when}");
                        assert!(closes > when, "{raw} at {when}");
                        assert!(!inside_everywhere(&zones, closes), "{raw} closes {closes}");
                    }
                    Verdict::Deferred { opens, closes } => {
                        assert!(!inside_everywhere(&zones, when), "{raw} at {when}");
                        assert!(opens > when && closes > opens, "{raw} at {when}");
                        assert!(inside_everywhere(&zones, opens), "{raw} opens {opens}");
                        let just_before = opens - SignedDuration::from_secs(1);
                        assert!(
                            just_before < when || !inside_everywhere(&zones, just_before),
                            "{raw}: {just_before} was already allowed"
                        );
                    }
                }
                when += SignedDuration::from_mins(step_minutes);
            }
        }
    }
}
