//! Consent versions (issue 12, item 5): the attestation's wording and version
//! are configuration; a user's first request under a version must name it
//! (`attestation.wording_version`), a request naming another version is
//! refused with the current wording, the consent record keeps the version and
//! hash accepted, and a wording changed under a pinned version stops the engine
//! from starting.

use actix_web::http::{Method, StatusCode};
use jiff::Timestamp;
use secrecy::SecretString;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use switchboard::config::Settings;
use switchboard::outbound::clock::ManualClock;
use switchboard::startup::Application;

use crate::db::{fresh_database_url, TestDb};
use crate::helpers::{spawn_app_on, spill_path_for, TestApp, User, ADMIN_TOKEN, TWILIO_TOKEN};

/// San Francisco: Pacific time.
const CALLEE: &str = "+14155550123";
const PATH: &str = "/api/calls/outbound";
const V1: &str = "2026-12-01";
const V2: &str = "2027-01-15";

fn request(version: Option<&str>) -> Value {
    let mut body = json!({
        "to": CALLEE,
        "purpose": "existing_client",
        "objective": "Book a plumber's visit for Tuesday morning.",
        // A week ahead: no dispatcher runs here, but keep the calls queued.
        "schedule_at": (Timestamp::now() + jiff::SignedDuration::from_hours(24 * 7)).to_string(),
        "attestation": {
            "legitimate_purpose": true,
            "not_dnc": true,
            "reasonable_basis": true,
            "understands_recording": true,
            "accepts_responsibility": true,
            "signature_full_name": "Ada Lovelace",
        },
    });
    if let Some(version) = version {
        body["attestation"]["wording_version"] = json!(version);
    }
    body
}

fn second_wording() -> String {
    Settings::defaults()
        .safety
        .consent
        .wording
        .replace(V1, V2)
        .replace(
            "understands_recording: I understand that the call is placed by an AI assistant that says so, and that it is recorded and transcribed.",
            "understands_recording: I understand that the call is placed by an AI assistant that says so, that it is transcribed, and that it is recorded where the workspace records calls, after a notice to the callee.",
        )
}

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

async fn submit(app: &TestApp, user: &User, body: &Value) -> (StatusCode, Value) {
    app.post_json(PATH, body, Some(&user.api_key)).await
}

/// The consent record of the outbound call `id`: version and hash.
async fn consent_of(app: &TestApp, id: &str) -> (String, String) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.database_url)
        .await
        .expect("the test reaches the database");
    let row: (String, String) = sqlx::query_as(
        "SELECT c.wording_version, c.wording_hash FROM consent_records c \
         JOIN outbound_calls o ON o.consent_id = c.id WHERE o.id = $1",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .expect("the call's consent record");
    pool.close().await;
    row
}

fn assert_outdated(status: StatusCode, body: &Value, current: &str, wording: &str) {
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "attestation-outdated", "{body}");
    assert_eq!(body["field"], "attestation.wording_version");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .starts_with("attestation.wording_version:"),
        "{body}"
    );
    assert_eq!(body["current_version"], current);
    assert_eq!(body["wording"], wording);
    assert_eq!(body["wording_sha256"], json!(sha256(wording)));
}

async fn a_new_version_must_be_accepted_by_name_and_the_record_proves_which(db: TestDb) {
    let database_url = fresh_database_url(db).await;
    let app = spawn_app_on(database_url.clone(), |_| {}).await;
    let first_wording = Settings::defaults().safety.consent.wording;
    let ada = app.create_user("ada@example.com").await;

    // A request naming another wording is refused with the wording to read.
    let (status, body) = submit(&app, &ada, &request(Some("2025-01-01"))).await;
    assert_outdated(status, &body, V1, &first_wording);
    let (status, body) = submit(&app, &ada, &request(Some(""))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // A user who never signed any wording signs the current one, named or not
    // (clients written before versions existed leave it out).
    let grace = app.create_user("grace@example.com").await;
    let (status, body) = submit(&app, &grace, &request(None)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let unnamed = body["id"].as_str().expect("id").to_owned();
    assert_eq!(
        consent_of(&app, &unnamed).await,
        (V1.to_owned(), sha256(&first_wording))
    );

    let (status, body) = submit(&app, &ada, &request(Some(V1))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let first = body["id"].as_str().expect("id").to_owned();
    assert_eq!(
        consent_of(&app, &first).await,
        (V1.to_owned(), sha256(&first_wording))
    );
    // Accepted once: later requests may leave the version out.
    let (status, body) = submit(&app, &ada, &request(None)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    app.server.stop(true).await;

    // The operator changes the wording and its version.
    let wording = second_wording();
    let w2 = wording.clone();
    let app = spawn_app_on(database_url.clone(), move |s| {
        s.safety.consent.version = V2.into();
        s.safety.consent.wording = w2;
    })
    .await;
    let (status, body) = submit(&app, &ada, &request(None)).await;
    assert_outdated(status, &body, V2, &wording);
    let (status, body) = submit(&app, &ada, &request(Some(V1))).await;
    assert_outdated(status, &body, V2, &wording);
    // A batch is held to the same rule.
    let (status, body) = app
        .post_json(
            "/api/calls/outbound/batch",
            &json!({
                "purpose": "existing_client",
                "objective": "Book a plumber's visit.",
                "attestation": request(Some(V1))["attestation"],
                "targets": [{ "to": CALLEE }],
            }),
            Some(&ada.api_key),
        )
        .await;
    assert_outdated(status, &body, V2, &wording);

    let (status, body) = submit(&app, &ada, &request(Some(V2))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let second = body["id"].as_str().expect("id");
    assert_eq!(
        consent_of(&app, second).await,
        (V2.to_owned(), sha256(&wording))
    );
    // The first call's record still proves the first wording.
    assert_eq!(
        consent_of(&app, &first).await,
        (V1.to_owned(), sha256(&first_wording))
    );
    let (status, body) = submit(&app, &ada, &request(None)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, view) = app
        .send_json_as(
            Method::GET,
            &format!("/api/calls/{first}"),
            None,
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["consent"]["wording_version"], V1, "{view}");
}

#[actix_web::test]
async fn a_new_version_must_be_accepted_by_name_and_the_record_proves_which_on_sqlite() {
    a_new_version_must_be_accepted_by_name_and_the_record_proves_which(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn a_new_version_must_be_accepted_by_name_and_the_record_proves_which_on_postgres() {
    a_new_version_must_be_accepted_by_name_and_the_record_proves_which(TestDb::Postgres).await;
}

fn settings_on(database_url: &str) -> Settings {
    let mut settings = Settings::defaults();
    settings.bind = "127.0.0.1:0".into();
    settings.database_url = database_url.to_owned();
    settings.admin_token = Some(SecretString::from(ADMIN_TOKEN));
    settings.twilio.auth_token = Some(SecretString::from(TWILIO_TOKEN));
    settings.workers = 1;
    settings.journal.spill_path = spill_path_for(database_url);
    settings
}

async fn a_wording_changed_under_the_same_version_stops_the_engine(db: TestDb) {
    let database_url = fresh_database_url(db).await;
    let clock = ManualClock::new(Timestamp::now());
    // The first run pins the version to its wording.
    let app = Application::build_with_clock(settings_on(&database_url), clock.handle())
        .await
        .expect("the engine starts");
    drop(app);

    let mut changed = settings_on(&database_url);
    changed.safety.consent.wording = second_wording().replace(V2, V1);
    let err = match Application::build_with_clock(changed, clock.handle()).await {
        Ok(_) => panic!("a wording changed under the same version must be refused"),
        Err(err) => format!("{err:#}"),
    };
    assert!(
        err.contains("safety.consent.wording changed") && err.contains(V1),
        "{err}"
    );

    // A wording that leaves out a box is refused before anything is pinned.
    let mut missing = settings_on(&database_url);
    missing.safety.consent.version = V2.into();
    missing.safety.consent.wording = second_wording().replace("\nnot_dnc: ", "\nno list: ");
    let err = match Application::build_with_clock(missing, clock.handle()).await {
        Ok(_) => panic!("a wording without every box must be refused"),
        Err(err) => format!("{err:#}"),
    };
    assert!(err.contains("not_dnc"), "{err}");

    // The same wording again starts.
    let again = Application::build_with_clock(settings_on(&database_url), clock.handle())
        .await
        .expect("the pinned wording starts");
    drop(again);
}

#[actix_web::test]
async fn a_wording_changed_under_the_same_version_stops_the_engine_on_sqlite() {
    a_wording_changed_under_the_same_version_stops_the_engine(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn a_wording_changed_under_the_same_version_stops_the_engine_on_postgres() {
    a_wording_changed_under_the_same_version_stops_the_engine(TestDb::Postgres).await;
}
