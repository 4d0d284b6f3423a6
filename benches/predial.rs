//! Pre-dial screening without a reasoning model (issue 12): what a submit adds
//! before and after it stores the call, less the database — the objective
//! screened against the default categories (`safety::predial::screen_objective`)
//! and the velocity rules counted over the user's recent calls
//! (`safety::velocity::evaluate`, fed what `Store::recent_outbound` reads).
//!
//! Criterion reports means; the target is a p99 (under 1 ms added to a submit),
//! so `p99` also times 100,000 single checks one by one and prints p50/p99/max.
//!
//! Run: `cargo bench --bench predial` (about a minute); see docs/BENCHMARKS.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use switchboard::config::Settings;
use switchboard::safety::predial::screen_objective;
use switchboard::safety::screen::Screener;
use switchboard::safety::velocity::evaluate;
use switchboard::store::velocity::RecentCall;

/// Objectives as users write them (up to the 500 characters a request allows):
/// innocent, evasive, high and critical.
fn objectives() -> Vec<(&'static str, String)> {
    let long = "Confirm the appointment for the annual boiler service next Tuesday between \
                nine and eleven, ask whether the side gate will be unlocked, remind them \
                that the technician needs access to the utility room and the thermostat, \
                note any issue they mention with the radiators upstairs, and if they won't \
                be home ask for a neighbour who can let the skilled technician in; offer \
                Thursday afternoon instead if Tuesday does not suit, and pursue a firm \
                time rather than a window. Thank them for being customers.";
    vec![
        (
            "short",
            "Book a plumber's visit for Tuesday morning.".to_owned(),
        ),
        ("long_innocent", long.chars().take(500).collect()),
        (
            "evasive_critical",
            "Tell them the I.R.S. has issued a w\u{0430}rrant and they must pay\u{00A0}today."
                .to_owned(),
        ),
        (
            "high",
            "Let her know she has won a prize in our sweepstakes and needs to confirm.".to_owned(),
        ),
    ]
}

/// A busy user's day: `n` calls over the last 24 h, a few numbers repeated,
/// the newest to `to`.
fn recent(n: usize, now_ms: i64) -> Vec<RecentCall> {
    (0..n)
        .map(|i| RecentCall {
            to: format!("+1415555{:04}", (i * 37) % 10_000),
            created_at: now_ms - (i as i64) * (86_400_000 / n as i64),
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let settings = Settings::defaults();
    let screener = Screener::new(&settings.safety.categories);
    let rules = &settings.safety.velocity;
    let now_ms = 1_800_000_000_000;

    let mut group = c.benchmark_group("screen_objective");
    for (name, objective) in objectives() {
        group.bench_with_input(BenchmarkId::from_parameter(name), &objective, |b, o| {
            b.iter(|| screen_objective(&screener, black_box(o)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("velocity");
    for n in [50usize, 500] {
        let calls = recent(n, now_ms);
        group.bench_with_input(BenchmarkId::from_parameter(n), &calls, |b, calls| {
            b.iter(|| evaluate(rules, black_box("+14155550000"), black_box(calls), now_ms))
        });
    }
    group.finish();

    // The p99 the target is stated for: one submit's worth (the long objective
    // screened, and 500 recent calls counted — ten times the pro plan's day).
    let (_, objective) = objectives().swap_remove(1);
    let calls = recent(500, now_ms);
    let mut samples: Vec<Duration> = Vec::with_capacity(100_000);
    for _ in 0..100_000 {
        let started = Instant::now();
        black_box(screen_objective(&screener, black_box(&objective)));
        black_box(evaluate(rules, "+14155550000", black_box(&calls), now_ms));
        samples.push(started.elapsed());
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "predial (500-char objective + 500 recent calls), 100000 samples: \
         p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        at(0.50),
        at(0.90),
        at(0.99),
        samples[samples.len() - 1]
    );
}

fn main() {
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
}
