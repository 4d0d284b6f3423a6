//! The post-call review benchmark (issue 12): 10,000 finished outbound calls of
//! 100 users, each with a three-turn transcript (1 in 50 saying a prize, a high
//! category), seeded straight into the database; then the review job's rounds
//! (`safety::review::review_round`, `batch_size` 500) until none is left.
//! Ignored by default; run it with
//!
//! ```sh
//! cargo nextest run --run-ignored only -E 'test(safety_review_bench)' --no-capture
//! ```
//!
//! It prints the time per backend. Figures are in docs/BENCHMARKS.md ("Post-call
//! review"); no time limit is asserted here, only that every call was reviewed
//! once and flagged as its transcript says.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard::config::Settings;
use switchboard::outbound::clock::{Clock as _, ManualClock};
use switchboard::safety::review::{review_round, ReviewDeps};
use switchboard::store::Store;

use crate::db::TestDb;
use crate::helpers::spawn_app_with_clock;
use crate::outbound_dispatch::pool;
use crate::safety_review::{seed_ended_calls, Ended};

const CALLS: usize = 10_000;
const USERS: usize = 100;

async fn review_10_000_calls(backend: TestDb) {
    let clock = ManualClock::new(jiff::Timestamp::now());
    // The engine's own worker looks once at start, then not for an hour: the
    // benchmark runs the rounds itself.
    let app = spawn_app_with_clock(backend, &clock, |s: &mut Settings| {
        s.safety.review.poll = Duration::from_secs(3600);
    })
    .await;
    let mut users = Vec::new();
    for i in 0..USERS {
        users.push(app.create_user(&format!("user{i}@example.com")).await);
    }
    let now = clock.now().as_millisecond();
    let plain: &[(&str, &str)] = &[
        ("caller", "Acme Plumbing, this is Sam, how can I help?"),
        (
            "assistant",
            "Hi Sam, I'm an AI assistant calling for Ada to book a visit on Tuesday.",
        ),
        ("caller", "Tuesday at nine works, see you then."),
    ];
    let prize: &[(&str, &str)] = &[
        ("caller", "Hello?"),
        ("assistant", "Congratulations, you have won a prize!"),
        ("caller", "No thanks."),
    ];
    let db = pool(&app).await;
    let seeding = Instant::now();
    let per_user = CALLS / USERS;
    let mut flagged = 0;
    for (u, user) in users.iter().enumerate() {
        let calls: Vec<Ended<'_>> = (0..per_user)
            .map(|i| {
                let n = u * per_user + i;
                let says_prize = n % 50 == 0;
                flagged += usize::from(says_prize);
                Ended {
                    from: "+14155550199",
                    to: format!("+1415{:07}", 2_000_000 + n),
                    status: "completed",
                    answered: true,
                    talk_ms: 90_000,
                    turns: if says_prize { prize } else { plain },
                }
            })
            .collect();
        seed_ended_calls(&db, &user.id, &calls, now - 60_000).await;
    }
    println!(
        "{backend:?}: seeded {CALLS} calls in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    let store = Store::connect(&app.database_url, "review-bench")
        .await
        .expect("the database");
    let settings = Arc::new({
        let mut s = Settings::defaults();
        s.safety.review.batch_size = 500;
        s
    });
    let deps = ReviewDeps::new(settings, store, Arc::new(move || now));
    let started = Instant::now();
    let mut reviewed = 0;
    loop {
        let n = review_round(&deps).await.expect("a round");
        if n == 0 {
            break;
        }
        reviewed += n;
    }
    let took = started.elapsed();
    println!(
        "{backend:?}: post-call review of {reviewed} calls in {:.2} s ({:.0} calls/s)",
        took.as_secs_f64(),
        reviewed as f64 / took.as_secs_f64()
    );
    assert_eq!(reviewed, CALLS);
    let unreviewed: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM outbound_calls WHERE reviewed_at IS NULL")
            .fetch_one(&db)
            .await
            .expect("count");
    let flags: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM flags WHERE type = 'transcript'")
        .fetch_one(&db)
        .await
        .expect("count");
    db.close().await;
    assert_eq!(unreviewed, 0);
    assert_eq!(
        flags as usize, flagged,
        "one flag per call that says a prize"
    );
}

#[actix_rt::test]
#[ignore = "benchmark: run with --run-ignored only (see the module docs)"]
async fn safety_review_bench_10_000_finished_calls_on_sqlite() {
    review_10_000_calls(TestDb::Sqlite).await;
}

#[actix_rt::test]
#[ignore = "benchmark: run with --run-ignored only (see the module docs)"]
async fn safety_review_bench_10_000_finished_calls_on_postgres() {
    review_10_000_calls(TestDb::Postgres).await;
}
