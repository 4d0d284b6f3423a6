//! The velocity rules (`[safety.velocity]`), evaluated at submit over a user's
//! accepted requests (dialed or not), the new one included:
//!
//! - `same_number`: the same number called more than `max` times in the window
//!   (the fourth call in 24 h fires with `max = 3`, the third does not);
//! - `distinct_numbers`: more than `max` distinct numbers in the window;
//! - `sequential`: `max` or more consecutive whole numbers (compared as whole
//!   E.164 numbers, not their last four digits) within one NPA-NXX — for a NANP
//!   number `+1 NPA NXX`, elsewhere the number less its last four digits — the
//!   new number among them.
//!
//! A rule that fires gives a flag of its severity ([`NewFlag`]); the caller
//! stores it on the new call. Counting is pure so it is measured without a
//! database (`benches/predial.rs`).

use std::collections::BTreeSet;

use serde_json::json;

use crate::config::{VelocityRule, VelocitySettings};
use crate::store::flags::NewFlag;
use crate::store::velocity::RecentCall;

/// The flags' `type`s.
pub const SAME_NUMBER: &str = "velocity_same_number";
pub const DISTINCT_NUMBERS: &str = "velocity_distinct_numbers";
pub const SEQUENTIAL: &str = "velocity_sequential";

fn window_ms(rule: &VelocityRule) -> i64 {
    i64::try_from(rule.window.as_millis()).unwrap_or(i64::MAX)
}

/// How far back the rules look: what to read from the store.
pub fn lookback_ms(settings: &VelocitySettings) -> i64 {
    [
        &settings.same_number,
        &settings.distinct_numbers,
        &settings.sequential,
    ]
    .into_iter()
    .map(window_ms)
    .max()
    .unwrap_or(0)
}

/// The block a number is sequential within (its NPA-NXX) and its value, or
/// `None` when it is not an E.164 number.
fn block_of(e164: &str) -> Option<(&str, u64)> {
    let digits = e164.strip_prefix('+')?;
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let prefix_len = if digits.starts_with('1') && digits.len() == 11 {
        7 // 1 + NPA + NXX
    } else {
        digits.len() - 4
    };
    Some((&digits[..prefix_len], digits.parse().ok()?))
}

/// The flags the rules raise for a request to `to` at `now_ms`, given the
/// user's `recent` calls (the new one included).
pub fn evaluate(
    settings: &VelocitySettings,
    to: &str,
    recent: &[RecentCall],
    now_ms: i64,
) -> Vec<NewFlag> {
    let within = |rule: &VelocityRule| {
        let since = now_ms.saturating_sub(window_ms(rule));
        recent.iter().filter(move |c| c.created_at >= since)
    };
    let mut flags = Vec::new();

    let rule = &settings.same_number;
    let same = within(rule).filter(|c| c.to == to).count();
    if same > rule.max as usize {
        flags.push(NewFlag {
            kind: SAME_NUMBER.to_owned(),
            severity: rule.severity,
            reason: format!(
                "{to} called {same} times in {}s (more than {})",
                rule.window.as_secs(),
                rule.max
            ),
            evidence: json!({"to": to, "count": same, "window_secs": rule.window.as_secs()}),
            auto_detected: true,
        });
    }

    let rule = &settings.distinct_numbers;
    let distinct: BTreeSet<&str> = within(rule).map(|c| c.to.as_str()).collect();
    if distinct.len() > rule.max as usize {
        flags.push(NewFlag {
            kind: DISTINCT_NUMBERS.to_owned(),
            severity: rule.severity,
            reason: format!(
                "{} distinct numbers called in {}s (more than {})",
                distinct.len(),
                rule.window.as_secs(),
                rule.max
            ),
            evidence: json!({"count": distinct.len(), "window_secs": rule.window.as_secs()}),
            auto_detected: true,
        });
    }

    let rule = &settings.sequential;
    if let Some((block, value)) = block_of(to) {
        let values: BTreeSet<u64> = within(rule)
            .filter_map(|c| block_of(&c.to))
            .filter(|(b, _)| *b == block)
            .map(|(_, v)| v)
            .collect();
        let mut low = value;
        while low > 0 && values.contains(&(low - 1)) {
            low -= 1;
        }
        let mut high = value;
        while values.contains(&(high + 1)) {
            high += 1;
        }
        let run = high - low + 1;
        if rule.max > 0 && run >= u64::from(rule.max) {
            let numbers: Vec<String> = (low..=high).map(|v| format!("+{v}")).collect();
            flags.push(NewFlag {
                kind: SEQUENTIAL.to_owned(),
                severity: rule.severity,
                reason: format!(
                    "{run} consecutive numbers called in {}s ({} to {})",
                    rule.window.as_secs(),
                    numbers[0],
                    numbers[numbers.len() - 1]
                ),
                evidence: json!({"numbers": numbers, "window_secs": rule.window.as_secs()}),
                auto_detected: true,
            });
        }
    }
    flags
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::safety::Severity;

    fn settings() -> VelocitySettings {
        let rule = |max, secs, severity| VelocityRule {
            max,
            window: Duration::from_secs(secs),
            severity,
        };
        VelocitySettings {
            same_number: rule(3, 86_400, Severity::Medium),
            distinct_numbers: rule(30, 3_600, Severity::High),
            sequential: rule(3, 3_600, Severity::High),
        }
    }

    fn calls(numbers: &[(&str, i64)]) -> Vec<RecentCall> {
        numbers
            .iter()
            .map(|(to, at)| RecentCall {
                to: (*to).to_owned(),
                created_at: *at,
            })
            .collect()
    }

    const HOUR: i64 = 3_600_000;

    #[test]
    fn the_fourth_call_to_one_number_in_a_day_fires_and_the_third_does_not() {
        let s = settings();
        let now = 30 * HOUR;
        let n = "+12025550123";
        let three = calls(&[(n, now - 20 * HOUR), (n, now - HOUR), (n, now)]);
        assert!(evaluate(&s, n, &three, now).is_empty());
        let mut four = three.clone();
        four.push(RecentCall {
            to: n.to_owned(),
            created_at: now,
        });
        let flags = evaluate(&s, n, &four, now);
        assert_eq!(flags.len(), 1);
        assert_eq!(flags[0].kind, SAME_NUMBER);
        assert_eq!(flags[0].severity, Severity::Medium);
        // One of them a day and more ago: out of the window.
        let old = calls(&[(n, now - 25 * HOUR), (n, now - HOUR), (n, now), (n, now)]);
        assert!(evaluate(&s, n, &old, now).is_empty());
    }

    #[test]
    fn thirty_one_distinct_numbers_in_an_hour_fire() {
        let s = settings();
        let now = 10 * HOUR;
        // Spread over blocks so the sequential rule stays quiet.
        let numbers: Vec<String> = (0..31)
            .map(|i| format!("+1202{:03}0100", 200 + i))
            .collect();
        let recent: Vec<RecentCall> = numbers
            .iter()
            .map(|to| RecentCall {
                to: to.clone(),
                created_at: now,
            })
            .collect();
        let flags = evaluate(&s, &numbers[30], &recent, now);
        assert_eq!(flags.len(), 1, "{flags:?}");
        assert_eq!(flags[0].kind, DISTINCT_NUMBERS);
        assert!(evaluate(&s, &numbers[29], &recent[..30], now).is_empty());
    }

    #[test]
    fn sequential_numbers_fire_within_one_npa_nxx_only() {
        let s = settings();
        let now = 10 * HOUR;
        let run = calls(&[
            ("+12025550101", now),
            ("+12025550103", now),
            ("+12025550102", now),
        ]);
        let flags = evaluate(&s, "+12025550102", &run, now);
        assert_eq!(flags.len(), 1);
        assert_eq!(flags[0].kind, SEQUENTIAL);
        // The same last four digits in different exchanges are not a run.
        let spread = calls(&[
            ("+12025550101", now),
            ("+12025560102", now),
            ("+12125570103", now),
        ]);
        assert!(evaluate(&s, "+12125570103", &spread, now).is_empty());
        // Two in a row are not three; an hour and more ago does not count.
        let two = calls(&[
            ("+12025550101", now - 2 * HOUR),
            ("+12025550102", now),
            ("+12025550103", now),
        ]);
        assert!(evaluate(&s, "+12025550103", &two, now).is_empty());
    }
}
