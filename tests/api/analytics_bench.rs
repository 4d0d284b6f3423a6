//! The analytics benchmark (issue 14): 1,000,000 inbound calls over 2026 (one
//! every 31.5 s; 3 in 4 in `production`, a third taken by an assistant, 1 in 20
//! with a transfer event, 7 in 10 answered), seeded by one `INSERT … SELECT` per
//! table inside the database, then `ANALYZE`; then `GET /api/analytics/summary`
//! for November in `production` over the real app, grouped by day and by number.
//! Ignored by default; run it with
//!
//! ```sh
//! cargo nextest run --run-ignored only -E 'test(analytics_bench)' --no-capture
//! ```
//!
//! It prints the median of 5 requests per grouping and backend. Figures are in
//! docs/BENCHMARKS.md ("Call analytics"); no time limit is asserted here, only
//! that the month's figures count the calls seeded in it.

use std::time::{Duration, Instant};

use sqlx::Connection as _;

use crate::db::TestDb;
use crate::helpers::{spawn_app_with, TestApp, ADMIN_TOKEN};

const CALLS: i64 = 1_000_000;
/// 2026-01-01T00:00:00Z.
const YEAR_START_MS: i64 = 1_767_225_600_000;
/// A year over a million calls.
const SPACING_MS: i64 = 31_536;

async fn seed(app: &TestApp, db: TestDb) {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&app.database_url)
        .await
        .expect("db");
    let series = match db {
        TestDb::Sqlite => format!(
            "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {CALLS}) "
        ),
        TestDb::Postgres => String::new(),
    };
    let from = match db {
        TestDb::Sqlite => "s".to_owned(),
        TestDb::Postgres => {
            format!("generate_series(CAST(1 AS BIGINT), CAST({CALLS} AS BIGINT)) AS s(g)")
        }
    };
    let start = format!("({YEAR_START_MS} + g * {SPACING_MS})");
    let calls = format!(
        "{series}INSERT INTO calls (id, call_sid, node_id, direction, from_number, to_number, \
           workspace, status, outcome, agent_id, started_at, answered_at, ended_at, end_reason, \
           assistant_id, summary, ai_outcome, cost) \
         SELECT 'b' || g, NULL, 'seed', 'inbound', '+14155559876', '+1415555' || (1000 + g % 50), \
           CASE WHEN g % 4 = 0 THEN 'staging' ELSE 'production' END, 'ended', \
           CASE WHEN g % 10 < 7 THEN 'answered' WHEN g % 10 < 9 THEN 'abandoned' ELSE 'voicemail' END, \
           NULL, {start}, \
           CASE WHEN g % 10 < 7 THEN {start} + 500 + (g % 7) * 1000 ELSE NULL END, \
           {start} + 60000 + (g % 13) * 1000, 'hangup', \
           CASE WHEN g % 3 = 0 THEN 'asst-bench' ELSE NULL END, NULL, \
           CASE WHEN g % 3 = 0 AND g % 20 = 0 THEN 'transferred' ELSE NULL END, \
           CASE WHEN g % 10 = 7 THEN NULL \
                ELSE '{{\"currency\":\"USD\",\"total\":0.0' || (g % 9 + 1) || '}}' END \
         FROM {from}"
    );
    sqlx::query(&calls)
        .execute(&mut conn)
        .await
        .expect("seeding the calls");
    let events = format!(
        "{series}INSERT INTO call_events (call_id, seq, at, kind, agent_id, detail) \
         SELECT 'b' || g, 0, {start}, 'transferred', NULL, '{{}}' FROM {from} WHERE g % 20 = 1"
    );
    sqlx::query(&events)
        .execute(&mut conn)
        .await
        .expect("seeding the transfers");
    sqlx::query("ANALYZE")
        .execute(&mut conn)
        .await
        .expect("ANALYZE");
    conn.close().await.expect("close");
}

async fn median_request(app: &TestApp, query: &str) -> (Duration, serde_json::Value) {
    let mut times = Vec::new();
    let mut body = serde_json::Value::Null;
    for _ in 0..5 {
        let started = Instant::now();
        let (status, bytes) = app
            .get(
                &format!("/api/analytics/summary?{query}"),
                Some(ADMIN_TOKEN),
            )
            .await;
        times.push(started.elapsed());
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
        body = serde_json::from_slice(&bytes).expect("JSON");
    }
    times.sort();
    (times[2], body)
}

async fn summary_of_a_month_over_a_million_calls(db: TestDb) {
    let app = spawn_app_with(db, |_| {}).await;
    let seeding = Instant::now();
    seed(&app, db).await;
    let seeded_in = seeding.elapsed();
    // November 2026 in production: the calls g with a start in the month and
    // g % 4 != 0.
    let nov_start = 1_793_491_200_000_i64; // 2026-11-01T00:00:00Z
    let dec_start = 1_796_083_200_000_i64; // 2026-12-01T00:00:00Z
    let first = (nov_start - YEAR_START_MS + SPACING_MS - 1) / SPACING_MS;
    let last = (dec_start - YEAR_START_MS - 1) / SPACING_MS;
    let expected = (first..=last).filter(|g| g % 4 != 0).count() as i64;
    for group_by in ["day", "number"] {
        let (median, body) = median_request(
            &app,
            &format!("from=2026-11-01&to=2026-11-30&workspace=production&group_by={group_by}"),
        )
        .await;
        assert_eq!(body["totals"]["calls"], expected, "{}", body["totals"]);
        let groups = body["groups"].as_array().map_or(0, Vec::len);
        println!(
            "{db:?}: {CALLS} calls seeded in {seeded_in:?}; a month ({expected} calls, \
             {groups} groups by {group_by}) summarised in {median:?} (median of 5)"
        );
    }
}

#[actix_web::test]
#[ignore = "benchmark: run explicitly"]
async fn analytics_bench_postgres() {
    summary_of_a_month_over_a_million_calls(TestDb::Postgres).await;
}

#[actix_web::test]
#[ignore = "benchmark: run explicitly"]
async fn analytics_bench_sqlite() {
    summary_of_a_month_over_a_million_calls(TestDb::Sqlite).await;
}
