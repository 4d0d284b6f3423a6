//! What runs at submit besides parsing: the cost estimate checked against the
//! user's budget ([`estimate_usd`]), the month the budget is for
//! ([`month_start`]) and the in-memory burst limiter ([`BurstLimiter`]) in front
//! of the database gates. The handler (`api::outbound`) runs the gates in their
//! order; the hourly and daily quotas and the budget are counted by
//! `Store::submit_outbound` in the transaction that creates the call.

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use jiff::Timestamp;

use super::clock::ClockHandle;
use crate::config::{OutboundSettings, PlanLimits, Pricing};
use crate::domain::phone::{PhoneNumber, Region};

/// The most a call to `to` may cost: the plan's longest call, in minutes, at
/// the destination's per-minute rate (its region's, else the default outbound
/// rate) plus the realtime model's expected cost per minute. USD, rounded to
/// the cent.
pub fn estimate_usd(pricing: &Pricing, limits: &PlanLimits, to: &PhoneNumber) -> f64 {
    let telephony = telephony_per_min(pricing, to);
    let per_minute = telephony + pricing.realtime_expected_per_min;
    (f64::from(limits.max_call_minutes) * per_minute * 100.0).round() / 100.0
}

/// The per-minute rate of an outbound leg to `to`: its region's, else the
/// default outbound rate.
pub fn telephony_per_min(pricing: &Pricing, to: &PhoneNumber) -> f64 {
    region_of(to)
        .and_then(|region| pricing.outbound_per_min_by_region.get(&region))
        .copied()
        .unwrap_or(pricing.outbound_per_min)
}

fn region_of(to: &PhoneNumber) -> Option<Region> {
    phonenumber::parse(None, to.as_str())
        .ok()
        .as_ref()
        .and_then(Region::of)
}

/// Where the calendar month of `now` began, in UTC: the budget is per month.
pub fn month_start(now: Timestamp) -> Timestamp {
    let date = now.to_zoned_datetime(jiff::tz::TimeZone::UTC).date();
    date.first_of_month()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .map(|start| start.timestamp())
        .unwrap_or(now)
}

/// Per-user bursts of submits: `outbound.burst_size` at once, refilled at
/// `outbound.burst_per_second`. It keeps a flood off the database; the quotas
/// that matter (per hour, per day) are counted there. It runs on the engine's
/// clock (the gates' injected one), not on its own.
///
/// On one node it counts in memory (`governor`). In a cluster it counts once
/// for every node ([`SharedBursts`], the same algorithm in Redis), so a user
/// cannot multiply the burst by the number of nodes; while the shared count
/// cannot be reached it falls back to this node's own, and says so.
pub struct BurstLimiter {
    local:
        RateLimiter<String, DefaultKeyedStateStore<String>, GovernorClock, NoOpMiddleware<Nanos>>,
    shared: Option<Arc<dyn SharedBursts>>,
    /// The shared count could not be reached last time (logged once, not per submit).
    falling_back: AtomicBool,
    per_second: u32,
    burst: u32,
}

/// A count of bursts shared by the nodes of a cluster (implemented over Redis by
/// the cluster layer): one request of `user` at `now_us` (Unix microseconds),
/// against `burst` at once refilled at `per_second`. `Ok(None)`: it may go
/// (and is counted); `Ok(Some(wait))`: not before `wait`; `Err`: the count
/// cannot be reached (why).
pub trait SharedBursts: Send + Sync + 'static {
    fn check(&self, user: &str, now_us: u64, per_second: u32, burst: u32) -> BurstCheck<'_>;
}

/// What [`SharedBursts::check`] answers, in time.
pub type BurstCheck<'a> =
    Pin<Box<dyn Future<Output = Result<Option<Duration>, String>> + Send + 'a>>;

/// The engine's [`ClockHandle`] as governor's clock: nanoseconds since the epoch.
#[derive(Clone)]
pub struct GovernorClock(ClockHandle);

impl governor::clock::Clock for GovernorClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        let nanos = self.0.now().as_nanosecond();
        Nanos::from(u64::try_from(nanos).unwrap_or(0))
    }
}

/// Past this many users held, the limiter forgets those whose bucket is full
/// again (no different from a user it never saw), so its memory stays bounded.
const FORGET_ABOVE_USERS: usize = 10_000;

impl BurstLimiter {
    /// This node's own limiter.
    pub fn new(settings: &OutboundSettings, clock: ClockHandle) -> Self {
        let per_second = NonZeroU32::new(settings.burst_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(settings.burst_size).unwrap_or(NonZeroU32::MIN);
        Self {
            local: RateLimiter::hashmap_with_clock(
                Quota::per_second(per_second).allow_burst(burst),
                GovernorClock(clock),
            ),
            shared: None,
            falling_back: AtomicBool::new(false),
            per_second: per_second.get(),
            burst: burst.get(),
        }
    }

    /// The cluster's limiter: `shared` counts, this node's own when it cannot.
    pub fn shared(
        settings: &OutboundSettings,
        clock: ClockHandle,
        shared: Arc<dyn SharedBursts>,
    ) -> Self {
        Self {
            shared: Some(shared),
            ..Self::new(settings, clock)
        }
    }

    /// `Ok` when `user` may submit now; else how long until they may.
    pub async fn check(&self, user: &str) -> Result<(), Duration> {
        use governor::clock::Clock as _;
        if let Some(shared) = &self.shared {
            let now_us = self.local.clock().now().as_u64() / 1_000;
            let counted = shared
                .check(user, now_us, self.per_second, self.burst)
                .await;
            let fell_back = self.falling_back.swap(counted.is_err(), Ordering::Relaxed);
            match counted {
                Ok(verdict) => {
                    if fell_back {
                        tracing::info!("the cluster's burst count answers again");
                    }
                    return verdict.map_or(Ok(()), Err);
                }
                Err(reason) if !fell_back => tracing::warn!(
                    %reason,
                    "the cluster's burst count cannot be reached; counting on this node alone until it can"
                ),
                Err(_) => {}
            }
        }
        if self.local.len() > FORGET_ABOVE_USERS {
            self.local.retain_recent();
        }
        let clock = self.local.clock().clone();
        self.local
            .check_key(&user.to_owned())
            .map_err(|not_until| not_until.wait_time_from(clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::outbound::clock::ManualClock;

    #[test]
    fn the_estimate_is_the_longest_call_at_the_destinations_rate_plus_the_model() {
        let mut pricing = Settings::defaults().pricing;
        pricing.outbound_per_min = 0.02;
        pricing.realtime_expected_per_min = 0.30;
        let limits = PlanLimits {
            calls_per_hour: 5,
            calls_per_day: 20,
            monthly_budget_usd: 10.0,
            max_call_minutes: 5,
        };
        let us = PhoneNumber::parse("+14155550100").expect("number");
        assert_eq!(estimate_usd(&pricing, &limits, &us), 1.6);
        let region: Region = "US".parse().expect("region");
        pricing.outbound_per_min_by_region.insert(region, 0.10);
        assert_eq!(estimate_usd(&pricing, &limits, &us), 2.0);
        let ca = PhoneNumber::parse("+16135550100").expect("number");
        assert_eq!(
            estimate_usd(&pricing, &limits, &ca),
            1.6,
            "a destination without its own rate uses the default"
        );
    }

    #[test]
    fn the_budget_month_starts_on_the_first_at_midnight_utc() {
        let now: Timestamp = "2026-12-02T10:30:00Z".parse().expect("instant");
        let start: Timestamp = "2026-12-01T00:00:00Z".parse().expect("instant");
        assert_eq!(month_start(now), start);
        assert_eq!(month_start(start), start);
    }

    #[actix_rt::test]
    async fn a_burst_beyond_its_size_waits_and_other_users_do_not() {
        let mut settings = Settings::defaults().outbound;
        settings.burst_size = 2;
        settings.burst_per_second = 1;
        let clock = ManualClock::new("2026-12-02T10:00:00Z".parse().expect("instant"));
        let limiter = BurstLimiter::new(&settings, clock.handle());
        assert!(limiter.check("ada").await.is_ok());
        assert!(limiter.check("ada").await.is_ok());
        let wait = limiter
            .check("ada")
            .await
            .expect_err("the third at once waits");
        assert_eq!(wait, Duration::from_secs(1));
        assert!(limiter.check("grace").await.is_ok(), "limits are per user");
        clock.advance(Duration::from_millis(999));
        assert!(limiter.check("ada").await.is_err(), "not refilled yet");
        clock.advance(Duration::from_millis(1));
        assert!(
            limiter.check("ada").await.is_ok(),
            "one refilled after a second"
        );
        assert!(limiter.check("ada").await.is_err());
    }
}
