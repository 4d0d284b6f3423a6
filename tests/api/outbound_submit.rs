//! `POST /api/calls/outbound` and the queue's list, read and cancel: every gate
//! at submit (the account, the do-not-call lists, calling hours, the budget, the
//! quotas counted in the transaction that stores the call), on SQLite and
//! PostgreSQL, with time from a `ManualClock`.

use actix_web::http::{Method, StatusCode};
use jiff::Timestamp;
use serde_json::{json, Value};
use switchboard::outbound::clock::ManualClock;

use crate::db::TestDb;
use crate::helpers::{spawn_app_with_clock, TestApp, User, ADMIN_TOKEN};

const PATH: &str = "/api/calls/outbound";
/// San Francisco: Pacific time.
const CALLEE: &str = "+14155550123";
/// 10:00 in San Francisco, a Wednesday.
const MORNING: &str = "2026-12-02T18:00:00Z";

fn at(instant: &str) -> Timestamp {
    instant.parse().expect("an instant")
}

fn clock() -> ManualClock {
    ManualClock::new(at(MORNING))
}

fn request(to: &str) -> Value {
    json!({
        "to": to,
        "contact_name": "Front desk",
        "contact_company": "Acme Plumbing",
        "purpose": "existing_client",
        "objective": "Book a plumber's visit for Tuesday morning.",
        "attestation": {
            "legitimate_purpose": true,
            "not_dnc": true,
            "reasonable_basis": true,
            "understands_recording": true,
            "accepts_responsibility": true,
            "wording_version": "2026-12-01",
            "signature_full_name": "Ada Lovelace",
        },
    })
}

async fn submit(app: &TestApp, user: &User, body: &Value) -> (StatusCode, Value) {
    app.post_json(PATH, body, Some(&user.api_key)).await
}

async fn patch_user(app: &TestApp, user: &User, changes: Value) {
    let (status, body) = app
        .send_json_as(
            Method::PATCH,
            &format!("/api/users/{}", user.id),
            Some(&changes),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
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

fn instant(value: &Value) -> Timestamp {
    value
        .as_str()
        .unwrap_or_else(|| panic!("an RFC 3339 instant, not {value}"))
        .parse()
        .expect("RFC 3339")
}

async fn a_request_within_every_gate_is_queued_with_its_estimate_and_consent(db: TestDb) {
    let clock = clock();
    let app = spawn_app_with_clock(db, &clock, |_| {}).await;
    let ada = app.create_user("ada@example.com").await;

    let (status, answer) = submit(&app, &ada, &request(CALLEE)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["status"], "queued");
    assert_eq!(instant(&answer["scheduled_for"]), at(MORNING));
    // free: 5 minutes × (USD 0.014 telephony + 0.30 model) per minute.
    assert_eq!(answer["estimated_cost"], json!(1.57));
    assert!(answer.get("deferred").is_none(), "{answer}");

    let id = answer["id"].as_str().expect("id");
    let (status, call) = app
        .send_json_as(
            Method::GET,
            &format!("{PATH}/{id}"),
            None,
            Some(&ada.api_key),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{call}");
    assert_eq!(
        (&call["to"], &call["purpose"], &call["user_id"]),
        (&json!(CALLEE), &json!("existing_client"), &json!(ada.id))
    );
    assert_eq!(rows(&app, "outbound_calls").await, 1);
    assert_eq!(
        rows(&app, "consent_records").await,
        1,
        "stored with the call"
    );

    let (status, body) = app
        .post_json(PATH, &request(CALLEE), Some(ADMIN_TOKEN))
        .await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::FORBIDDEN, &json!("forbidden")),
        "the admin places no call on a user's behalf: {body}"
    );
}

#[actix_web::test]
async fn a_request_within_every_gate_is_queued_with_its_estimate_and_consent_on_sqlite() {
    a_request_within_every_gate_is_queued_with_its_estimate_and_consent(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn a_request_within_every_gate_is_queued_with_its_estimate_and_consent_on_postgres() {
    a_request_within_every_gate_is_queued_with_its_estimate_and_consent(TestDb::Postgres).await;
}

async fn a_paused_or_suspended_account_and_a_listed_number_are_refused(db: TestDb) {
    let clock = clock();
    let app = spawn_app_with_clock(db, &clock, |_| {}).await;
    let ada = app.create_user("ada@example.com").await;

    for status in ["paused", "suspended"] {
        patch_user(&app, &ada, json!({ "status": status })).await;
        let (code, body) = submit(&app, &ada, &request(CALLEE)).await;
        assert_eq!(
            (code, &body["code"]),
            (StatusCode::FORBIDDEN, &json!("account-suspended")),
            "{status}: {body}"
        );
    }
    patch_user(&app, &ada, json!({ "status": "active" })).await;

    let global = "+14155550124";
    let own = "+14155550125";
    let (status, _) = app
        .post_json("/api/dnc", &json!({ "e164": global }), Some(ADMIN_TOKEN))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app
        .post_json("/api/dnc", &json!({ "e164": own }), Some(&ada.api_key))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    for listed in [global, own] {
        let (code, body) = submit(&app, &ada, &request(listed)).await;
        assert_eq!(
            (code, &body["code"]),
            (StatusCode::CONFLICT, &json!("do-not-call")),
            "{listed}: {body}"
        );
    }
    let grace = app.create_user("grace@example.com").await;
    let (code, body) = submit(&app, &grace, &request(own)).await;
    assert_eq!(code, StatusCode::ACCEPTED, "Ada's own list is hers: {body}");
    assert_eq!(rows(&app, "outbound_calls").await, 1);
    assert_eq!(rows(&app, "consent_records").await, 1);
}

#[actix_web::test]
async fn a_paused_or_suspended_account_and_a_listed_number_are_refused_on_sqlite() {
    a_paused_or_suspended_account_and_a_listed_number_are_refused(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn a_paused_or_suspended_account_and_a_listed_number_are_refused_on_postgres() {
    a_paused_or_suspended_account_and_a_listed_number_are_refused(TestDb::Postgres).await;
}

#[actix_web::test]
async fn a_request_outside_calling_hours_is_scheduled_for_when_they_open() {
    // 22:00 in San Francisco: calling hours open at 08:00 there.
    let clock = ManualClock::new(at("2026-12-02T06:00:00Z"));
    let app = spawn_app_with_clock(TestDb::Sqlite, &clock, |_| {}).await;
    let ada = app.create_user("ada@example.com").await;

    let (status, answer) = submit(&app, &ada, &request(CALLEE)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(
        (&answer["status"], &answer["deferred"]),
        (&json!("scheduled"), &json!("calling_hours"))
    );
    assert_eq!(
        instant(&answer["scheduled_for"]),
        at("2026-12-02T16:00:00Z")
    );

    // Asked for within the hours: scheduled for then, not deferred.
    let mut later = request(CALLEE);
    later["schedule_at"] = json!("2026-12-03T19:30:00Z");
    let (status, answer) = submit(&app, &ada, &later).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["status"], "scheduled");
    assert!(answer.get("deferred").is_none(), "{answer}");
    assert_eq!(
        instant(&answer["scheduled_for"]),
        at("2026-12-03T19:30:00Z")
    );
}

async fn a_call_whose_estimate_does_not_fit_the_budget_is_refused(db: TestDb) {
    let clock = clock();
    let app = spawn_app_with_clock(db, &clock, |_| {}).await;
    let ada = app.create_user("ada@example.com").await;
    patch_user(&app, &ada, json!({ "monthly_budget_usd": 2.0 })).await;

    let (status, body) = submit(&app, &ada, &request(CALLEE)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "USD 1.57 of 2.00: {body}");
    let (status, body) = submit(&app, &ada, &request(CALLEE)).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::PAYMENT_REQUIRED, &json!("budget-exceeded")),
        "the first call's estimate is committed until reconciled: {body}"
    );
    assert_eq!(rows(&app, "outbound_calls").await, 1);

    // Canceling the first frees its estimate.
    let id = body_id(&app, &ada).await;
    cancel(&app, &ada.api_key, &id).await;
    let (status, body) = submit(&app, &ada, &request(CALLEE)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

#[actix_web::test]
async fn a_call_whose_estimate_does_not_fit_the_budget_is_refused_on_sqlite() {
    a_call_whose_estimate_does_not_fit_the_budget_is_refused(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn a_call_whose_estimate_does_not_fit_the_budget_is_refused_on_postgres() {
    a_call_whose_estimate_does_not_fit_the_budget_is_refused(TestDb::Postgres).await;
}

/// The id of the user's newest call.
async fn body_id(app: &TestApp, user: &User) -> String {
    let (_, page) = list(app, &user.api_key, "").await;
    page["calls"][0]["id"].as_str().expect("a call").to_owned()
}

async fn list(app: &TestApp, token: &str, query: &str) -> (StatusCode, Value) {
    app.send_json_as(Method::GET, &format!("{PATH}{query}"), None, Some(token))
        .await
}

async fn cancel(app: &TestApp, token: &str, id: &str) -> (StatusCode, Value) {
    app.send_json_as(Method::DELETE, &format!("{PATH}/{id}"), None, Some(token))
        .await
}

async fn twenty_requests_at_once_against_a_quota_of_five_create_five(db: TestDb) {
    let clock = clock();
    let app = spawn_app_with_clock(db, &clock, |_| {}).await;
    let ada = app.create_user("ada@example.com").await;
    patch_user(&app, &ada, json!({ "calls_per_hour": 5 })).await;

    let body = request(CALLEE);
    let answers = futures_util::future::join_all((0..20).map(|_| {
        let req = app
            .client
            .post(format!("{}{PATH}", app.address))
            .bearer_auth(&ada.api_key);
        let body = &body;
        async move {
            let mut res = req.send_json(body).await.expect("reaches the engine");
            let bytes = res.body().await.expect("body");
            let retry_after = res
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().expect("ascii").to_owned());
            let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            (res.status(), json, retry_after)
        }
    }))
    .await;

    let created = answers
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::ACCEPTED)
        .count();
    assert_eq!(created, 5, "{answers:?}");
    for (status, body, retry_after) in answers.iter().filter(|a| a.0 != StatusCode::ACCEPTED) {
        assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert_eq!(body["code"], "rate-limited");
        // Every counted call was created now: the oldest leaves in an hour.
        assert_eq!(instant(&body["retry_after"]), at("2026-12-02T19:00:00Z"));
        assert_eq!(retry_after.as_deref(), Some("3600"));
    }
    assert_eq!(rows(&app, "outbound_calls").await, 5);
    assert_eq!(rows(&app, "consent_records").await, 5, "none for refusals");

    clock.advance(std::time::Duration::from_secs(3600));
    let (status, body) = submit(&app, &ada, &request(CALLEE)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "the hour has passed: {body}");
}

#[actix_web::test]
async fn twenty_requests_at_once_against_a_quota_of_five_create_five_on_sqlite() {
    twenty_requests_at_once_against_a_quota_of_five_create_five(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn twenty_requests_at_once_against_a_quota_of_five_create_five_on_postgres() {
    twenty_requests_at_once_against_a_quota_of_five_create_five(TestDb::Postgres).await;
}

#[actix_web::test]
async fn bad_requests_are_refused_naming_the_field_and_store_nothing() {
    let clock = clock();
    let app = spawn_app_with_clock(TestDb::Sqlite, &clock, |_| {}).await;
    let ada = app.create_user("ada@example.com").await;

    let with = |field: &str, value: Value| {
        let mut body = request(CALLEE);
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = request(CALLEE);
        body.as_object_mut().expect("object").remove(field);
        body
    };
    let mut unticked = request(CALLEE);
    unticked["attestation"]["not_dnc"] = json!(false);
    let cases = [
        (without("to"), "to"),
        (with("to", json!("+442071838750")), "to"),
        (with("to", json!("911")), "to"),
        (with("to", json!(14155550123_u64)), "to"),
        (without("purpose"), "purpose"),
        (with("purpose", json!("sales")), "purpose"),
        (with("objective", json!("short")), "objective"),
        (without("attestation"), "attestation"),
        (unticked, "attestation.not_dnc"),
        (
            with("schedule_at", json!("2026-12-01T10:00:00Z")),
            "schedule_at",
        ),
        (
            with("schedule_at", json!("2027-02-01T10:00:00Z")),
            "schedule_at",
        ),
        (
            with("callback_url", json!("ftp://example.com/x")),
            "callback_url",
        ),
        (with("surprise", json!(1)), "surprise"),
        (json!([1, 2]), "body"),
    ];
    for (body, field) in cases {
        let (status, answer) = submit(&app, &ada, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {answer}");
        assert_eq!(answer["code"], "bad-field", "{field}: {answer}");
        let message = answer["message"].as_str().expect("message");
        assert!(message.starts_with(field), "{field}: {message}");
    }
    assert_eq!(rows(&app, "outbound_calls").await, 0);
    assert_eq!(rows(&app, "consent_records").await, 0);
}

async fn calls_are_listed_in_pages_and_canceled_once_by_their_owner(db: TestDb) {
    let clock = clock();
    let app = spawn_app_with_clock(db, &clock, |_| {}).await;
    let ada = app.create_user("ada@example.com").await;
    let grace = app.create_user("grace@example.com").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, answer) = submit(&app, &ada, &request(CALLEE)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        ids.push(answer["id"].as_str().expect("id").to_owned());
        clock.advance(std::time::Duration::from_secs(1));
    }

    let (status, page) = list(&app, &ada.api_key, "?limit=2").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let listed = |page: &Value| -> Vec<String> {
        page["calls"]
            .as_array()
            .expect("calls")
            .iter()
            .map(|c| c["id"].as_str().expect("id").to_owned())
            .collect()
    };
    assert_eq!(
        listed(&page),
        vec![ids[2].clone(), ids[1].clone()],
        "newest first"
    );
    assert_eq!(
        (&page["total"], &page["has_more"]),
        (&json!(3), &json!(true))
    );
    let (_, page) = list(&app, &ada.api_key, "?limit=2&offset=2").await;
    assert_eq!(listed(&page), vec![ids[0].clone()]);
    assert_eq!(
        (&page["total"], &page["has_more"]),
        (&json!(3), &json!(false))
    );
    let (_, page) = list(&app, &grace.api_key, "").await;
    assert_eq!(
        (&page["total"], &page["has_more"]),
        (&json!(0), &json!(false))
    );
    let (_, page) = list(&app, ADMIN_TOKEN, "").await;
    assert_eq!(page["total"], 3, "the admin sees every user's");
    for bad in ["?limit=0", "?limit=x", "?offset=-1", "?status=in-progress"] {
        let (status, body) = list(&app, &ada.api_key, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }

    let (status, body) = cancel(&app, &grace.api_key, &ids[0]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another user's: {body}");
    let (status, body) = app
        .send_json_as(
            Method::GET,
            &format!("{PATH}/{}", ids[0]),
            None,
            Some(&grace.api_key),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = cancel(&app, &ada.api_key, &ids[0]).await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &json!("canceled")),
        "{body}"
    );
    let (status, body) = cancel(&app, &ada.api_key, &ids[0]).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::CONFLICT, &json!("not-cancelable")),
        "{body}"
    );
    let (_, page) = list(&app, &ada.api_key, "?status=canceled").await;
    assert_eq!(listed(&page), vec![ids[0].clone()]);
    let (_, page) = list(&app, &ada.api_key, "?status=queued").await;
    assert_eq!(page["total"], 2);
}

#[actix_web::test]
async fn calls_are_listed_in_pages_and_canceled_once_by_their_owner_on_sqlite() {
    calls_are_listed_in_pages_and_canceled_once_by_their_owner(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn calls_are_listed_in_pages_and_canceled_once_by_their_owner_on_postgres() {
    calls_are_listed_in_pages_and_canceled_once_by_their_owner(TestDb::Postgres).await;
}

#[actix_web::test]
async fn a_burst_beyond_the_limiter_is_refused_before_the_database() {
    let clock = clock();
    let app = spawn_app_with_clock(TestDb::Sqlite, &clock, |s| {
        s.outbound.burst_size = 2;
        s.outbound.burst_per_second = 1;
    })
    .await;
    let ada = app.create_user("ada@example.com").await;
    // The limiter runs on the engine's clock, which stands still here: two at
    // once, then refused until a second has passed.
    let mut accepted = 0;
    for attempt in 0..3 {
        let (status, body) = submit(&app, &ada, &request(CALLEE)).await;
        if attempt < 2 {
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
            accepted += 1;
        } else {
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
            assert_eq!(body["code"], "rate-limited", "{body}");
            assert!(body["retry_after"].is_string(), "{body}");
        }
    }
    clock.advance(std::time::Duration::from_secs(1));
    let (status, body) = submit(&app, &ada, &request(CALLEE)).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "one refilled a second later: {body}"
    );
    accepted += 1;
    assert_eq!(rows(&app, "outbound_calls").await, accepted);
}
