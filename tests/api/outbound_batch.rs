//! Batches (issue 11, item 8): `POST /api/calls/outbound/batch` as JSON and as
//! CSV, each target gated like a single request (a bad number, a do-not-call
//! number, the quota), the window intersected with calling hours in the
//! callee's time, a bad body refused whole with nothing stored, and
//! `GET /api/calls/outbound/batch/{id}`. On SQLite and PostgreSQL, time from a
//! `ManualClock`.

use actix_web::http::{Method, StatusCode};
use serde_json::{json, Value};
use switchboard::outbound::clock::ManualClock;

use crate::db::TestDb;
use crate::helpers::{spawn_app_with_clock, TestApp, User, ADMIN_TOKEN};
use crate::outbound_result::{at, get_as, MORNING};

const PATH: &str = "/api/calls/outbound/batch";

fn attestation() -> Value {
    json!({
        "legitimate_purpose": true,
        "not_dnc": true,
        "reasonable_basis": true,
        "understands_recording": true,
        "accepts_responsibility": true,
        "wording_version": "2026-12-01",
        "signature_full_name": "Ada Lovelace",
    })
}

/// `n`th test number in San Francisco.
fn number(n: usize) -> String {
    format!("+1415555{:04}", 200 + n)
}

fn batch(targets: Value) -> Value {
    json!({
        "purpose": "existing_client",
        "objective": "Book a visit with {contact_name} at {contact_company} for {day}.",
        "attestation": attestation(),
        "window_start": "09:00",
        "window_end": "17:00",
        "max_concurrency": 10,
        "targets": targets,
    })
}

fn target(to: &str) -> Value {
    json!({"to": to, "contact_name": "Sam", "contact_company": "Acme",
           "variables": {"day": "Tuesday"}})
}

async fn rows(app: &TestApp, table: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.database_url)
        .await
        .expect("the test reaches the database");
    let count: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(&pool)
        .await
        .expect("count");
    pool.close().await;
    count
}

async fn post_csv(
    app: &TestApp,
    user: &User,
    query: &[(&str, &str)],
    csv: &str,
) -> (StatusCode, Value) {
    let query = serde_urlencoded::to_string(query).expect("a query");
    let mut res = app
        .client
        .post(format!("{}{PATH}?{query}", app.address))
        .bearer_auth(&user.api_key)
        .insert_header(("content-type", "text/csv; charset=utf-8"))
        .send_body(csv.to_owned())
        .await
        .expect("the engine answers");
    let body = res.body().await.expect("a body");
    (
        res.status(),
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

fn csv_query() -> Vec<(&'static str, &'static str)> {
    vec![
        ("purpose", "vendor_inquiry"),
        ("objective", "Ask {contact_company} for a quote on {item}."),
        ("legitimate_purpose", "true"),
        ("not_dnc", "true"),
        ("reasonable_basis", "true"),
        ("understands_recording", "true"),
        ("accepts_responsibility", "true"),
        ("signature_full_name", "Ada Lovelace"),
        ("wording_version", "2026-12-01"),
        ("window_start", "14:00"),
        ("window_end", "16:00"),
    ]
}

async fn a_json_batch_gates_each_target_and_counts_its_calls(db: TestDb) {
    let clock = ManualClock::new(at(MORNING));
    let app = spawn_app_with_clock(db, &clock, |_| {}).await;
    let ada = app.create_user("ada@example.com").await;
    let grace = app.create_user("grace@example.com").await;
    let (status, body) = app
        .post_json(
            "/api/dnc",
            &json!({ "e164": number(2) }),
            Some(&ada.api_key),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Free plan: 5 calls an hour. Target 1 has no valid number, target 2 is on
    // Ada's do-not-call list, target 7 is the sixth call of the hour.
    let mut targets = vec![target(&number(0)), target("+1415555"), target(&number(2))];
    targets.extend((3..8).map(|n| target(&number(n))));
    let (status, answer) = app
        .post_json(PATH, &batch(json!(targets)), Some(&ada.api_key))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let accepted = answer["accepted"].as_array().expect("accepted");
    let refused = answer["refused"].as_array().expect("refused");
    assert_eq!(
        accepted
            .iter()
            .map(|a| a["index"].clone())
            .collect::<Vec<_>>(),
        vec![json!(0), json!(3), json!(4), json!(5), json!(6)]
    );
    let codes: Vec<_> = refused
        .iter()
        .map(|r| (r["index"].clone(), r["to"].clone(), r["code"].clone()))
        .collect();
    assert_eq!(
        codes,
        vec![
            (json!(1), json!("+1415555"), json!("bad-field")),
            (json!(2), json!(number(2)), json!("do-not-call")),
            (json!(7), json!(number(7)), json!("rate-limited")),
        ]
    );
    assert!(refused[0]["reason"]
        .as_str()
        .is_some_and(|r| r.starts_with("to:")));
    assert!(refused[2]["retry_after"].is_string());
    // 10:00 in San Francisco: the window (09:00–17:00) is open; it closes at
    // 17:00 Pacific.
    for call in accepted {
        assert_eq!(call["status"], "queued", "{call}");
        assert_eq!(call["scheduled_for"].as_str().map(at), Some(at(MORNING)));
        assert_eq!(
            call["window_end_at"].as_str().map(at),
            Some(at("2026-12-03T01:00:00Z"))
        );
    }

    let id = accepted[0]["id"].as_str().expect("an id");
    let (status, call) = get_as(&app, id, &ada.api_key).await;
    assert_eq!(status, StatusCode::OK, "{call}");
    assert_eq!(
        call["objective"],
        "Book a visit with Sam at Acme for Tuesday."
    );
    assert_eq!(call["batch_id"], answer["id"]);
    assert_eq!(call["consent"]["attestation"]["not_dnc"], true);

    let batch_path = format!("{PATH}/{}", answer["id"].as_str().expect("a batch id"));
    let (status, summary) = app
        .send_json_as(Method::GET, &batch_path, None, Some(&ada.api_key))
        .await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["total"], 5);
    assert_eq!(summary["counts"], json!({"queued": 5}));
    assert_eq!(summary["max_concurrency"], 10);
    assert_eq!(
        (&summary["window_start"], &summary["window_end"]),
        (&json!("09:00"), &json!("17:00"))
    );
    let (status, _) = app
        .send_json_as(Method::GET, &batch_path, None, Some(&grace.api_key))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another user's batch");
    let (status, _) = app
        .send_json_as(Method::GET, &batch_path, None, Some(ADMIN_TOKEN))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[actix_web::test]
async fn a_json_batch_gates_each_target_and_counts_its_calls_on_sqlite() {
    a_json_batch_gates_each_target_and_counts_its_calls(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn a_json_batch_gates_each_target_and_counts_its_calls_on_postgres() {
    a_json_batch_gates_each_target_and_counts_its_calls(TestDb::Postgres).await;
}

async fn a_csv_batch_fills_the_template_from_its_columns_and_waits_for_its_window(db: TestDb) {
    let clock = ManualClock::new(at(MORNING));
    let app = spawn_app_with_clock(db, &clock, |_| {}).await;
    let ada = app.create_user("ada@example.com").await;
    let csv = format!(
        "to,contact_name,contact_company,item\n{},Sam,Acme Plumbing,a water heater\n\
         {},,\"Bolt, Nut & Co\",500 hex bolts\n",
        number(0),
        number(1)
    );
    let (status, answer) = post_csv(&app, &ada, &csv_query(), &csv).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["refused"], json!([]));
    let accepted = answer["accepted"].as_array().expect("accepted");
    assert_eq!(accepted.len(), 2);
    // The window opens at 14:00 Pacific (22:00Z) and closes at 16:00.
    for call in accepted {
        assert_eq!(call["status"], "scheduled", "{call}");
        assert_eq!(call["deferred"], "calling_hours");
        assert_eq!(
            call["scheduled_for"].as_str().map(at),
            Some(at("2026-12-02T22:00:00Z"))
        );
        assert_eq!(
            call["window_end_at"].as_str().map(at),
            Some(at("2026-12-03T00:00:00Z"))
        );
    }
    let (_, second) = get_as(&app, accepted[1]["id"].as_str().expect("id"), &ada.api_key).await;
    assert_eq!(
        second["objective"],
        "Ask Bolt, Nut & Co for a quote on 500 hex bolts."
    );
    assert_eq!(second["contact_name"], Value::Null);
    assert_eq!(second["purpose"], "vendor_inquiry");
}

#[actix_web::test]
async fn a_csv_batch_fills_the_template_from_its_columns_and_waits_for_its_window_on_sqlite() {
    a_csv_batch_fills_the_template_from_its_columns_and_waits_for_its_window(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn a_csv_batch_fills_the_template_from_its_columns_and_waits_for_its_window_on_postgres() {
    a_csv_batch_fills_the_template_from_its_columns_and_waits_for_its_window(TestDb::Postgres)
        .await;
}

async fn a_bad_batch_is_refused_whole_naming_what_is_wrong_and_nothing_is_stored(db: TestDb) {
    let clock = ManualClock::new(at(MORNING));
    let app = spawn_app_with_clock(db, &clock, |_| {}).await;
    let ada = app.create_user("ada@example.com").await;

    let too_many: Vec<_> = (0..1001).map(|n| json!({ "to": number(n % 50) })).collect();
    let mut unticked = batch(json!([target(&number(0))]));
    unticked["attestation"]["not_dnc"] = json!(false);
    let mut backwards = batch(json!([target(&number(0))]));
    backwards["window_start"] = json!("17:00");
    backwards["window_end"] = json!("09:00");
    let mut greedy = batch(json!([target(&number(0))]));
    greedy["max_concurrency"] = json!(101);
    let mut nameless = target(&number(1));
    nameless["contact_name"] = Value::Null;
    for (body, names) in [
        (batch(json!(too_many)), "targets: 1001 targets"),
        (
            batch(json!([target(&number(0)), nameless])),
            "targets[1].objective: unknown placeholder {contact_name}",
        ),
        (
            batch(json!([{"to": number(0), "contact_name": "Sam", "contact_company": "Acme"}])),
            "targets[0].objective: unknown placeholder {day}",
        ),
        (unticked, "attestation.not_dnc"),
        (backwards, "window_end"),
        (greedy, "max_concurrency"),
        (batch(json!([])), "targets"),
        (
            batch(json!([{"to": number(0), "phone": "x"}])),
            "targets[0].phone",
        ),
    ] {
        let (status, answer) = app.post_json(PATH, &body, Some(&ada.api_key)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{names}: {answer}");
        assert_eq!(answer["code"], "bad-field");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(names), "{names}: {message}");
    }

    for (csv, line) in [
        (format!("{},Sam,Acme\n", number(0)), "csv: line 1:"),
        (
            format!(
                "to,contact_name,item\n{},Sam,a\n{},Al\n",
                number(0),
                number(1)
            ),
            "csv: line 3: 2 fields where the header has 3",
        ),
        (
            format!("to,item\n{},a\n,b\n", number(0)),
            "csv: line 3: no \"to\"",
        ),
    ] {
        let (status, answer) = post_csv(&app, &ada, &csv_query(), &csv).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{csv}: {answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(line), "{line}: {message}");
    }
    let (status, answer) = app
        .post_json(PATH, &batch(json!([target(&number(0))])), Some(ADMIN_TOKEN))
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the admin places no calls: {answer}"
    );

    assert_eq!(rows(&app, "outbound_calls").await, 0);
    assert_eq!(rows(&app, "outbound_batches").await, 0);
    assert_eq!(rows(&app, "consent_records").await, 0);
}

#[actix_web::test]
async fn a_bad_batch_is_refused_whole_naming_what_is_wrong_and_nothing_is_stored_on_sqlite() {
    a_bad_batch_is_refused_whole_naming_what_is_wrong_and_nothing_is_stored(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn a_bad_batch_is_refused_whole_naming_what_is_wrong_and_nothing_is_stored_on_postgres() {
    a_bad_batch_is_refused_whole_naming_what_is_wrong_and_nothing_is_stored(TestDb::Postgres).await;
}
