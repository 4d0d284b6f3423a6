//! `GET /api/analytics/summary` (issue 14, item 4): a seeded month of calls on
//! SQLite and on PostgreSQL, every figure checked against the same expected
//! numbers; bad ranges and groupings refused.

use serde_json::{json, Value};
use sqlx::Connection as _;

use crate::db::TestDb;
use crate::helpers::{spawn_app_with, TestApp, ADMIN_TOKEN};

const A: &str = "+14155550100";
const B: &str = "+14155550101";
const ASSISTANT: &str = "asst-analytics";

/// One seeded inbound call: what the analytics read of it.
struct Seed {
    id: &'static str,
    /// `YYYY-MM-DDTHH:MM:SSZ`, when it started.
    start: &'static str,
    workspace: &'static str,
    direction: &'static str,
    to: &'static str,
    assistant: bool,
    outcome: &'static str,
    /// Ring time before someone answered; `None`: nobody did.
    answer_after_ms: Option<i64>,
    /// From the answer (or the start when unanswered) to the end.
    talk_ms: i64,
    ai_outcome: Option<&'static str>,
    /// An event kind that marks a transfer (`transferred`, `ai_handover`).
    transfer_event: Option<&'static str>,
    cost_usd: Option<f64>,
}

#[allow(clippy::too_many_arguments)]
const fn inbound(
    id: &'static str,
    start: &'static str,
    to: &'static str,
    assistant: bool,
    outcome: &'static str,
    answer_after_ms: Option<i64>,
    talk_ms: i64,
    ai_outcome: Option<&'static str>,
    transfer_event: Option<&'static str>,
    cost_usd: Option<f64>,
) -> Seed {
    Seed {
        id,
        start,
        workspace: "production",
        direction: "inbound",
        to,
        assistant,
        outcome,
        answer_after_ms,
        talk_ms,
        ai_outcome,
        transfer_event,
        cost_usd,
    }
}

/// November 2026 in `production`, and four calls the summary must leave out.
const SEEDS: &[Seed] = &[
    inbound(
        "c1",
        "2026-11-03T10:00:00Z",
        A,
        false,
        "answered",
        Some(1000),
        60_000,
        None,
        None,
        Some(0.02),
    ),
    inbound(
        "c2",
        "2026-11-03T11:00:00Z",
        A,
        false,
        "answered",
        Some(3000),
        120_000,
        None,
        Some("transferred"),
        Some(0.04),
    ),
    inbound(
        "c3",
        "2026-11-03T12:00:00Z",
        B,
        false,
        "abandoned",
        None,
        10_000,
        None,
        None,
        None,
    ),
    inbound(
        "c4",
        "2026-11-03T13:00:00Z",
        B,
        false,
        "voicemail",
        None,
        50_000,
        None,
        None,
        Some(0.01),
    ),
    inbound(
        "c5",
        "2026-11-10T09:00:00Z",
        B,
        true,
        "answered",
        Some(500),
        90_000,
        Some("goal_achieved"),
        None,
        Some(0.15),
    ),
    inbound(
        "c6",
        "2026-11-10T10:00:00Z",
        B,
        true,
        "answered",
        Some(700),
        30_000,
        Some("transferred"),
        Some("ai_handover"),
        Some(0.06),
    ),
    inbound(
        "c7",
        "2026-11-10T11:00:00Z",
        A,
        false,
        "answered",
        Some(5000),
        30_000,
        None,
        None,
        Some(0.01),
    ),
    inbound(
        "c8",
        "2026-11-20T08:00:00Z",
        A,
        true,
        "answered",
        Some(400),
        60_000,
        Some("caller_hung_up"),
        None,
        Some(0.09),
    ),
    inbound(
        "c9",
        "2026-11-20T09:00:00Z",
        A,
        false,
        "abandoned",
        None,
        5_000,
        None,
        None,
        None,
    ),
    inbound(
        "c10",
        "2026-11-30T23:00:00Z",
        A,
        false,
        "answered",
        Some(9000),
        45_000,
        None,
        None,
        Some(0.03),
    ),
    // Outside: the day before, the day after, another workspace, outbound.
    inbound(
        "x1",
        "2026-10-31T23:59:59Z",
        A,
        false,
        "answered",
        Some(1),
        1_000,
        None,
        None,
        Some(1.0),
    ),
    inbound(
        "x2",
        "2026-12-01T00:00:00Z",
        A,
        false,
        "answered",
        Some(1),
        1_000,
        None,
        None,
        Some(1.0),
    ),
    Seed {
        workspace: "staging",
        ..inbound(
            "x3",
            "2026-11-10T12:00:00Z",
            A,
            false,
            "abandoned",
            None,
            1_000,
            None,
            None,
            None,
        )
    },
    Seed {
        direction: "outbound",
        ..inbound(
            "x4",
            "2026-11-10T12:00:00Z",
            A,
            false,
            "answered",
            Some(1),
            1_000,
            None,
            None,
            Some(1.0),
        )
    },
];

fn ms(at: &str) -> i64 {
    at.parse::<jiff::Timestamp>()
        .expect("seed time")
        .as_millisecond()
}

pub(crate) async fn seed(app: &TestApp) {
    let user = app.create_user("analytics@example.com").await;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&app.database_url)
        .await
        .expect("db");
    for s in SEEDS {
        let started = ms(s.start);
        let answered = s.answer_after_ms.map(|after| started + after);
        let ended = answered.unwrap_or(started) + s.talk_ms;
        sqlx::query(
            "INSERT INTO calls (id, call_sid, node_id, direction, from_number, to_number, \
               workspace, status, outcome, agent_id, started_at, answered_at, ended_at, \
               end_reason, assistant_id, summary, ai_outcome, cost) \
             VALUES ($1, $2, 'seed', $3, '+14155559876', $4, $5, 'ended', $6, NULL, $7, $8, \
               $9, 'hangup', $10, NULL, $11, $12)",
        )
        .bind(s.id)
        .bind(format!("CA{}", s.id))
        .bind(s.direction)
        .bind(s.to)
        .bind(s.workspace)
        .bind(s.outcome)
        .bind(started)
        .bind(answered)
        .bind(ended)
        .bind(s.assistant.then_some(ASSISTANT))
        .bind(s.ai_outcome)
        .bind(
            s.cost_usd
                .map(|total| json!({ "currency": "USD", "total": total }).to_string()),
        )
        .execute(&mut conn)
        .await
        .expect("a seeded call");
        let mut kinds = vec!["ring"];
        kinds.extend(s.transfer_event);
        kinds.push("ended");
        for (seq, kind) in kinds.into_iter().enumerate() {
            sqlx::query(
                "INSERT INTO call_events (call_id, seq, at, kind, agent_id, detail) \
                 VALUES ($1, $2, $3, $4, NULL, '{}')",
            )
            .bind(s.id)
            .bind(seq as i64)
            .bind(started + seq as i64)
            .bind(kind)
            .execute(&mut conn)
            .await
            .expect("a seeded event");
        }
    }
    sqlx::query(
        "INSERT INTO consent_records (id, user_id, wording_version, wording_hash, affirmed, \
           signature_full_name, ip, created_at) \
         VALUES ('consent-seed', $1, 'v1', 'h', '[]', 'Seed', '127.0.0.1', 0)",
    )
    .bind(&user.id)
    .execute(&mut conn)
    .await
    .expect("a consent record");
    let outbound: &[(&str, &str, &str, Option<bool>)] = &[
        ("o1", "2026-11-02T10:00:00Z", "completed", Some(true)),
        ("o2", "2026-11-05T10:00:00Z", "completed", Some(false)),
        ("o3", "2026-11-06T10:00:00Z", "no-answer", None),
        ("o4", "2026-11-07T10:00:00Z", "completed", Some(true)),
        ("o5", "2026-11-08T10:00:00Z", "failed", None),
        ("o6", "2026-12-02T10:00:00Z", "completed", Some(true)),
    ];
    for (id, at, status, met) in outbound {
        let at = ms(at);
        let task = met.map(|met| {
            json!({ "objective_met": met, "key_findings": "", "evidence": [] }).to_string()
        });
        sqlx::query(
            "INSERT INTO outbound_calls (id, user_id, workspace, to_e164, purpose, objective, \
               consent_id, status, run_at, estimated_cost_usd, created_at, updated_at, \
               task_outcome, ended_at, analyzed_at, reconciled_at, result_sent_at, reviewed_at) \
             VALUES ($1, $2, 'production', '+14155550199', 'p', 'o', 'consent-seed', $3, $4, \
               0.1, $4, $4, $5, $4, $4, $4, $4, $4)",
        )
        .bind(*id)
        .bind(&user.id)
        .bind(*status)
        .bind(at)
        .bind(task)
        .execute(&mut conn)
        .await
        .expect("a seeded outbound call");
    }
    conn.close().await.expect("close");
}

async fn summary(app: &TestApp, query: &str) -> (u16, Value) {
    let (status, body) = app
        .get(
            &format!("/api/analytics/summary?{query}"),
            Some(ADMIN_TOKEN),
        )
        .await;
    (
        status.as_u16(),
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

#[track_caller]
fn close(actual: &Value, expected: f64) {
    let actual = actual
        .as_f64()
        .unwrap_or_else(|| panic!("a number, got {actual}"));
    assert!(
        (actual - expected).abs() < 1e-6,
        "expected {expected}, got {actual}"
    );
}

/// The expected cost figures: `(calls, priced, total, per call, per minute)`.
#[track_caller]
fn check_cost(cost: &Value, calls: i64, priced: i64, total: f64, priced_secs: f64) {
    assert_eq!(cost["calls"], calls, "{cost}");
    assert_eq!(cost["priced_calls"], priced, "{cost}");
    close(&cost["total_usd"], total);
    close(&cost["per_call_usd"], round6(total / priced as f64));
    close(
        &cost["per_minute_usd"],
        round6(total / (priced_secs / 60.0)),
    );
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

async fn a_seeded_month_reads_back_every_figure_on(db: TestDb) {
    let app = spawn_app_with(db, |_| {}).await;
    seed(&app).await;
    let (status, body) = summary(
        &app,
        "from=2026-11-01&to=2026-11-30&workspace=production&group_by=day",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["from"], "2026-11-01");
    assert_eq!(body["to"], "2026-11-30");
    assert_eq!(body["workspace"], "production");
    assert_eq!(body["group_by"], "day");

    let t = &body["totals"];
    assert_eq!(t["calls"], 10, "{t}");
    assert_eq!(t["answered"], 7);
    close(&t["answer_rate"], 0.7);
    // Answered after 400, 500, 700, 1000, 3000, 5000, 9000 ms: nearest rank
    // ceil(7 × 0.5) = 4th and ceil(7 × 0.9) = 7th.
    assert_eq!(t["time_to_answer_ms"], json!({ "p50": 1000, "p90": 9000 }));
    assert_eq!(t["abandoned"], 2);
    close(&t["abandon_rate"], 0.2);
    assert_eq!(t["voicemail"], 1);
    assert_eq!(t["ai_calls"], 3);
    assert_eq!(t["ai_contained"], 2);
    close(&t["ai_containment"], 0.6667);
    assert_eq!(t["transferred"], 2);
    close(&t["transfer_rate"], 0.2);
    // (60 + 120 + 90 + 30 + 30 + 60 + 45) s / 7 answered calls.
    close(&t["average_handle_time_secs"], 62.143);
    check_cost(&t["cost"], 10, 8, 0.41, 504.6);

    let human = &body["cost_by_route"]["human"];
    check_cost(human, 7, 5, 0.11, 61.0 + 123.0 + 50.0 + 35.0 + 54.0);
    let ai = &body["cost_by_route"]["ai"];
    check_cost(ai, 3, 3, 0.30, 90.5 + 30.7 + 60.4);

    let days: Vec<(&str, i64, i64)> = body["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| {
            (
                g["key"].as_str().expect("a day"),
                g["calls"].as_i64().expect("calls"),
                g["answered"].as_i64().expect("answered"),
            )
        })
        .collect();
    assert_eq!(
        days,
        [
            ("2026-11-03", 4, 2),
            ("2026-11-10", 3, 3),
            ("2026-11-20", 2, 1),
            ("2026-11-30", 1, 1)
        ]
    );
    let day = |key: &str| {
        body["groups"]
            .as_array()
            .and_then(|g| g.iter().find(|g| g["key"] == key))
            .cloned()
            .expect("the day")
    };
    let third = day("2026-11-03");
    assert_eq!(
        third["time_to_answer_ms"],
        json!({ "p50": 1000, "p90": 3000 })
    );
    assert_eq!(third["abandoned"], 1);
    assert_eq!(third["voicemail"], 1);
    assert_eq!(third["transferred"], 1);
    assert_eq!(third["ai_containment"], Value::Null);
    let tenth = day("2026-11-10");
    assert_eq!(
        tenth["time_to_answer_ms"],
        json!({ "p50": 700, "p90": 5000 })
    );
    close(&tenth["ai_containment"], 0.5);

    let o = &body["outbound"];
    assert_eq!(o["calls"], 5, "{o}");
    assert_eq!(
        o["dispositions"],
        json!({ "completed": 3, "no-answer": 1, "failed": 1 })
    );
    assert_eq!(o["judged"], 3);
    assert_eq!(o["objective_met"], 2);
    close(&o["objective_met_rate"], 0.6667);

    // The other groupings.
    let keys = |body: &Value| -> Vec<(Value, i64)> {
        body["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .map(|g| (g["key"].clone(), g["calls"].as_i64().expect("calls")))
            .collect()
    };
    let (_, by_number) = summary(
        &app,
        "from=2026-11-01&to=2026-11-30&workspace=production&group_by=number",
    )
    .await;
    assert_eq!(keys(&by_number), [(json!(A), 6), (json!(B), 4)]);
    let (_, by_route) = summary(
        &app,
        "from=2026-11-01&to=2026-11-30&workspace=production&group_by=route",
    )
    .await;
    assert_eq!(keys(&by_route), [(json!("ai"), 3), (json!("human"), 7)]);
    let ai_group = &by_route["groups"][0];
    assert_eq!(
        ai_group["time_to_answer_ms"],
        json!({ "p50": 500, "p90": 700 })
    );
    let (_, by_assistant) = summary(
        &app,
        "from=2026-11-01&to=2026-11-30&workspace=production&group_by=assistant",
    )
    .await;
    assert_eq!(
        keys(&by_assistant),
        [(Value::Null, 7), (json!(ASSISTANT), 3)]
    );

    // Every workspace: the staging call counts too.
    let (_, all) = summary(&app, "from=2026-11-01&to=2026-11-30").await;
    assert_eq!(all["totals"]["calls"], 11);
    assert_eq!(all["workspace"], Value::Null);
}

#[actix_web::test]
async fn a_seeded_month_reads_back_every_figure_on_sqlite() {
    a_seeded_month_reads_back_every_figure_on(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn a_seeded_month_reads_back_every_figure_on_postgres() {
    a_seeded_month_reads_back_every_figure_on(TestDb::Postgres).await;
}

#[actix_web::test]
async fn an_empty_range_has_zero_calls_and_no_rates() {
    let app = spawn_app_with(TestDb::Sqlite, |_| {}).await;
    let (status, body) = summary(&app, "from=2026-01-01&to=2026-01-31").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totals"]["calls"], 0);
    assert_eq!(body["totals"]["answer_rate"], Value::Null);
    assert_eq!(body["groups"], json!([]));
    assert_eq!(body["outbound"]["calls"], 0);
}

#[actix_web::test]
async fn bad_ranges_and_groupings_are_refused_naming_the_field() {
    let app = spawn_app_with(TestDb::Sqlite, |_| {}).await;
    for (query, field) in [
        ("from=2026-11-30&to=2026-11-01", "to"),
        ("from=2025-01-01&to=2026-01-02", "to"),
        ("from=2026-11-01&to=2026-11-30&group_by=week", "group_by"),
        ("to=2026-11-30", "from"),
        ("from=2026-13-01&to=2026-11-30", "from"),
        ("from=2026-11-01", "to"),
    ] {
        let (status, body) = summary(&app, query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["code"], "bad-field", "{query}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(&format!("{field}:")), "{query}: {body}");
    }
    // A whole leap year is allowed (366 days).
    let (status, body) = summary(&app, "from=2028-01-01&to=2028-12-31").await;
    assert_eq!(status, 200, "{body}");
    // Without the admin token: 401.
    let (status, _) = app
        .get("/api/analytics/summary?from=2026-11-01&to=2026-11-30", None)
        .await;
    assert_eq!(status, 401);
}
