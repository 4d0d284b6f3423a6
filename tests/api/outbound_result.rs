//! The result of an outbound call (issue 11, item 7): `GET /api/calls/{id}` for
//! an outbound id (the user's own, or any for the admin; another user's call or
//! an inbound call is a 404 for a user key), with its disposition, consent
//! record and cost estimated beside actual. On SQLite and PostgreSQL, time from
//! a `ManualClock`; rows are created by `POST /api/calls/outbound` and moved
//! with `Store::advance_outbound`, as dispatch and Twilio's callbacks move them.

use actix_web::http::{Method, StatusCode};
use jiff::Timestamp;
use serde_json::{json, Value};
use switchboard::outbound::clock::ManualClock;
use switchboard::store::outbound::{Advanced, OutboundId, OutboundStatus, Transition};
use switchboard::store::Store;

use crate::db::TestDb;
use crate::helpers::{spawn_app_with_clock, TestApp, User, ADMIN_TOKEN, CALLER, NUMBER};

pub const CALLEE: &str = "+14155550123";
/// 10:00 in San Francisco, a Wednesday.
pub const MORNING: &str = "2026-12-02T18:00:00Z";

pub fn at(instant: &str) -> Timestamp {
    instant.parse().expect("an instant")
}

pub fn request(to: &str) -> Value {
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
            "signature_full_name": "Ada Lovelace",
            "signature_organization": "Analytical Engines Ltd",
        },
    })
}

/// Submits `body` as `user`; the id of the call, which must be accepted.
pub async fn submit(app: &TestApp, user: &User, body: &Value) -> String {
    let (status, answer) = app
        .post_json("/api/calls/outbound", body, Some(&user.api_key))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    answer["id"].as_str().expect("an id").to_owned()
}

pub async fn store_of(app: &TestApp) -> Store {
    let store = Store::connect(&app.database_url, "result-test")
        .await
        .expect("the test reaches the database");
    store.migrate().await.expect("migrated");
    store
}

/// Moves the call to `next` as dispatch would (must be allowed).
pub async fn advance(
    store: &Store,
    id: &str,
    next: OutboundStatus,
    change: Transition<'_>,
    now: Timestamp,
) {
    let id = OutboundId::parse(id).expect("an outbound id");
    let moved = store
        .advance_outbound(&id, next, change, now.as_millisecond())
        .await
        .expect("advanced");
    assert!(matches!(moved, Advanced::Moved { .. }), "{moved:?}");
}

pub async fn get_as(app: &TestApp, id: &str, token: &str) -> (StatusCode, Value) {
    app.send_json_as(Method::GET, &format!("/api/calls/{id}"), None, Some(token))
        .await
}

async fn a_user_sees_their_own_outbound_call_with_its_consent_and_estimate(db: TestDb) {
    let clock = ManualClock::new(at(MORNING));
    let app = spawn_app_with_clock(db, &clock, |_| {}).await;
    let ada = app.create_user("ada@example.com").await;
    let grace = app.create_user("grace@example.com").await;
    let id = submit(&app, &ada, &request(CALLEE)).await;

    let (status, call) = get_as(&app, &id, &ada.api_key).await;
    assert_eq!(status, StatusCode::OK, "{call}");
    assert_eq!(call["id"], json!(id));
    assert_eq!(call["direction"], "outbound");
    assert_eq!(call["disposition"], "queued");
    assert_eq!(call["to"], CALLEE);
    assert_eq!(call["transcript"], json!([]));
    assert_eq!(call["summary"], Value::Null);
    assert_eq!(call["task_outcome"], Value::Null);
    let consent = &call["consent"];
    assert_eq!(consent["wording_version"], "2026-12-01");
    assert_eq!(consent["wording_hash"].as_str().map(str::len), Some(64));
    assert_eq!(consent["ip"], "127.0.0.1");
    assert_eq!(consent["signed_at"].as_str().map(at), Some(at(MORNING)));
    assert_eq!(consent["attestation"]["not_dnc"], true);
    assert_eq!(
        consent["attestation"]["signature_full_name"],
        "Ada Lovelace"
    );
    assert_eq!(
        consent["attestation"]["signature_organization"],
        "Analytical Engines Ltd"
    );
    // free: 5 minutes × (USD 0.014 telephony + 0.30 model) per minute.
    let cost = &call["cost"];
    assert_eq!(cost["estimated"]["total"], json!(1.57));
    assert_eq!(cost["estimated"]["telephony"], json!(0.07));
    assert_eq!(cost["estimated"]["realtime_model"], json!(1.5));
    assert_eq!(cost["actual"]["status"], "estimated");
    assert_eq!(cost["actual"]["telephony"]["status"], "estimated");
    assert_eq!(cost["actual"]["realtime_model"]["amount"], Value::Null);

    let (status, body) = get_as(&app, &id, &grace.api_key).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another user's call: {body}");
    let (status, body) = get_as(&app, &id, ADMIN_TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["disposition"], "queued");

    // An inbound call: the admin's to see, never a user's.
    app.number_for_everyone().await;
    let inbound = app.ring_in(CALLER, NUMBER).await;
    let (status, body) = get_as(&app, &inbound.call_id, ADMIN_TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["direction"], "inbound");
    let (status, body) = get_as(&app, &inbound.call_id, &ada.api_key).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an inbound call: {body}");
    let (status, _) = get_as(&app, &OutboundId::new().to_string(), &ada.api_key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn a_user_sees_their_own_outbound_call_with_its_consent_and_estimate_on_sqlite() {
    a_user_sees_their_own_outbound_call_with_its_consent_and_estimate(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn a_user_sees_their_own_outbound_call_with_its_consent_and_estimate_on_postgres() {
    a_user_sees_their_own_outbound_call_with_its_consent_and_estimate(TestDb::Postgres).await;
}

async fn an_answered_call_shows_its_disposition_times_and_a_running_estimate(db: TestDb) {
    let clock = ManualClock::new(at(MORNING));
    let app = spawn_app_with_clock(db, &clock, |_| {}).await;
    let ada = app.create_user("ada@example.com").await;
    let id = submit(&app, &ada, &request(CALLEE)).await;
    let store = store_of(&app).await;

    advance(
        &store,
        &id,
        OutboundStatus::InProgress,
        Transition {
            call_sid: Some("CA00000000000000000000000000000001"),
            answered_by: Some("human"),
            ..Transition::default()
        },
        at("2026-12-02T18:00:05Z"),
    )
    .await;
    advance(
        &store,
        &id,
        OutboundStatus::Completed,
        Transition::default(),
        at("2026-12-02T18:02:10Z"),
    )
    .await;

    let (status, call) = get_as(&app, &id, &ada.api_key).await;
    assert_eq!(status, StatusCode::OK, "{call}");
    assert_eq!(call["disposition"], "completed");
    assert_eq!(call["answered_by"], "human");
    assert_eq!(call["call_sid"], "CA00000000000000000000000000000001");
    assert_eq!(
        call["answered_at"].as_str().map(at),
        Some(at("2026-12-02T18:00:05Z"))
    );
    assert_eq!(
        call["ended_at"].as_str().map(at),
        Some(at("2026-12-02T18:02:10Z"))
    );
    // 2 min 5 s: three started minutes at USD 0.014, until Twilio's price.
    let telephony = &call["cost"]["actual"]["telephony"];
    assert_eq!(telephony["amount"], json!(0.042));
    assert_eq!(telephony["status"], "estimated");
    assert_eq!(call["reconciled_at"], Value::Null);
}

#[actix_web::test]
async fn an_answered_call_shows_its_disposition_times_and_a_running_estimate_on_sqlite() {
    an_answered_call_shows_its_disposition_times_and_a_running_estimate(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn an_answered_call_shows_its_disposition_times_and_a_running_estimate_on_postgres() {
    an_answered_call_shows_its_disposition_times_and_a_running_estimate(TestDb::Postgres).await;
}
