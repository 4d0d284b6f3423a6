//! The `OutboundDispatcher` against the fake Twilio (issue 11, item 5): a
//! submitted call is claimed, gated again and dialed exactly once with
//! Twilio's form; its status callbacks move it (signed, idempotent, never
//! backwards); a refusal fails it with the reason and refunds the quota; a
//! dial whose outcome is unknown is reconciled, and dialed again only when no
//! callback came within `outbound.reconcile` and Twilio lists no call. On
//! SQLite and PostgreSQL, with time from a `ManualClock`.

use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};
use switchboard::config::Settings;
use switchboard::outbound::clock::ManualClock;
use switchboard::twilio::signature::sign;

use crate::db::TestDb;
use crate::fake_providers::calls::{LikeTwilio, Refusal};
use crate::fake_providers::{FakeProvider, TWILIO_SECRET, TWILIO_SID};
use crate::helpers::{spawn_app_with_clock, TestApp, User, ADMIN_TOKEN, PATIENCE};
use crate::outbound_claims::outbound_request;

/// San Francisco.
pub(crate) const CALLEE: &str = "+14155550123";
/// The workspace's Twilio number calls are placed from.
pub(crate) const POOL_NUMBER: &str = "+14155550199";

/// A dispatcher test: the engine (its Twilio account the fake's), the fake, the
/// clock and a user whose workspace has a Twilio number.
pub(crate) struct Setup {
    pub(crate) app: TestApp,
    pub(crate) fake: FakeProvider,
    pub(crate) clock: ManualClock,
    pub(crate) user: User,
}

pub(crate) fn wide_open(settings: &mut Settings) {
    settings.outbound.calling_hours_start = jiff::civil::time(0, 0, 0, 0);
    settings.outbound.calling_hours_end = jiff::civil::time(23, 59, 59, 0);
}

pub(crate) async fn setup(
    db: TestDb,
    configure: impl FnOnce(&FakeProvider, &mut Settings),
) -> Setup {
    let fake = FakeProvider::start().await;
    // The fake's calls start on the wall clock; reconciliation lists from the
    // engine's clock: the two agree, and calling hours are always open.
    let clock = ManualClock::new(Timestamp::now());
    let base = fake.base.clone();
    let app = spawn_app_with_clock(db, &clock, |s| {
        s.twilio.account_sid = TWILIO_SID.into();
        s.twilio.auth_token = Some(secrecy::SecretString::from(TWILIO_SECRET));
        s.twilio.api_base = base.parse().expect("a base URL");
        s.outbound.dial_timeout = Duration::from_millis(500);
        s.outbound.dispatch_poll = Duration::from_millis(50);
        s.outbound.callback_poll = Duration::from_secs(3600);
        wide_open(s);
        configure(&fake, s);
    })
    .await;
    let user = app.create_user("ada@example.com").await;
    add_pool_number(&app, &user, POOL_NUMBER).await;
    Setup {
        app,
        fake,
        clock,
        user,
    }
}

pub(crate) async fn pool(app: &TestApp) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&app.database_url)
        .await
        .expect("the test reaches the database")
}

/// A Twilio number of the user's workspace, in the pool.
pub(crate) async fn add_pool_number(app: &TestApp, user: &User, e164: &str) {
    let db = pool(app).await;
    let workspace: String = sqlx::query_scalar("SELECT workspace FROM users WHERE id = $1")
        .bind(&user.id)
        .fetch_one(&db)
        .await
        .expect("the user's workspace");
    sqlx::query(
        "INSERT INTO phone_numbers (id, provider, provider_id, workspace, e164, number_type, \
         status, created_at, updated_at) \
         VALUES ($1, 'twilio', $2, $3, $4, 'local', 'AVAILABLE', 0, 0)",
    )
    .bind(uuid::Uuid::new_v4().simple().to_string())
    .bind(format!("PN{}", uuid::Uuid::new_v4().simple()))
    .bind(&workspace)
    .bind(e164)
    .execute(&db)
    .await
    .expect("a pool number");
    db.close().await;
}

pub(crate) async fn patch_user(app: &TestApp, user: &User, changes: Value) {
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

pub(crate) async fn submit(app: &TestApp, user: &User, body: &Value) -> (StatusCode, Value) {
    app.post_json("/api/calls/outbound", body, Some(&user.api_key))
        .await
}

pub(crate) async fn submit_ok(app: &TestApp, user: &User, body: &Value) -> String {
    let (status, answer) = submit(app, user, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    answer["id"].as_str().expect("an id").to_owned()
}

async fn outbound(app: &TestApp, user: &User, id: &str) -> Value {
    let (status, body) = app
        .get(&format!("/api/calls/outbound/{id}"), Some(&user.api_key))
        .await;
    assert_eq!(status, StatusCode::OK);
    serde_json::from_slice(&body).expect("JSON")
}

/// The call's row, as the dispatcher wrote it.
pub(crate) async fn row(
    app: &TestApp,
    id: &str,
) -> (String, Option<String>, i64, Option<String>, i64) {
    let db = pool(app).await;
    let row: (String, Option<String>, i64, Option<String>, i64) = sqlx::query_as(
        "SELECT status, reason, attempts, call_sid, quota_refunded FROM outbound_calls WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&db)
    .await
    .expect("the call");
    db.close().await;
    row
}

pub(crate) async fn wait_for_status(app: &TestApp, id: &str, status: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (now, ..) = row(app, id).await;
        if now == status {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} stayed {now}, never {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn wait_for_dials(fake: &FakeProvider, to: &str, n: usize) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while fake.dials(to) < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} dials of {to}, never {n}",
            fake.dials(to)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Lets the dispatcher run several rounds (its poll is 50 ms).
pub(crate) async fn some_rounds() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

/// The create forms the fake received, parsed.
pub(crate) fn creates(fake: &FakeProvider) -> Vec<Vec<(String, String)>> {
    fake.state()
        .calls
        .create_bodies
        .iter()
        .map(|b| serde_urlencoded::from_str(b).expect("a form"))
        .collect()
}

pub(crate) fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The status callback URL of the `n`th create.
pub(crate) fn status_url(fake: &FakeProvider, n: usize) -> String {
    field(&creates(fake)[n], "StatusCallback")
        .expect("a StatusCallback")
        .to_owned()
}

/// A status callback as Twilio posts it, signed (or not) under `token`.
pub(crate) async fn callback(
    app: &TestApp,
    url: &str,
    call_sid: &str,
    status: &str,
    token: Option<&str>,
) -> StatusCode {
    let params: Vec<(String, String)> = [
        ("AccountSid", TWILIO_SID),
        ("CallSid", call_sid),
        ("CallStatus", status),
        ("To", CALLEE),
        ("From", POOL_NUMBER),
        ("Direction", "outbound-api"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let mut req = app.client.post(url);
    if let Some(token) = token {
        req = req.insert_header(("X-Twilio-Signature", sign(token, url, &params)));
    }
    req.send_form(&params)
        .await
        .expect("the callback reaches the engine")
        .status()
}

async fn status_events(app: &TestApp) -> Vec<Value> {
    let db = pool(app).await;
    let bodies: Vec<String> =
        sqlx::query_scalar("SELECT body FROM callback_deliveries ORDER BY created_at, event_id")
            .fetch_all(&db)
            .await
            .expect("deliveries");
    db.close().await;
    bodies
        .iter()
        .map(|b| serde_json::from_str::<Value>(b).expect("JSON"))
        .filter(|b| b["type"] == "call.status")
        .collect()
}

async fn a_submitted_call_is_dialed_once_with_twilios_form_and_moved_by_its_callbacks(db: TestDb) {
    let s = setup(db, |fake, _| {
        fake.state().calls.like_twilio = Some(LikeTwilio {
            answered_by: "human".into(),
        });
    })
    .await;
    let mut body = outbound_request(CALLEE);
    body["callback_url"] = json!("https://hooks.example.com/switchboard");
    let id = submit_ok(&s.app, &s.user, &body).await;
    wait_for_status(&s.app, &id, "in_progress").await;
    assert_eq!(s.fake.dials(CALLEE), 1);

    let form = &creates(&s.fake)[0];
    let (_, _, attempts, call_sid, _) = row(&s.app, &id).await;
    assert_eq!(attempts, 1);
    let call_sid = call_sid.expect("the call's sid is noted");
    let public = &s.app.address;
    let status_url = field(form, "StatusCallback").expect("StatusCallback");
    assert!(
        status_url.starts_with(&format!(
            "{public}/twilio/outbound/status?call={id}&attempt="
        )),
        "{status_url}"
    );
    let attempt = status_url.rsplit("attempt=").next().expect("an attempt");
    assert_eq!(attempt.len(), 32);
    assert_eq!(
        field(form, "Url"),
        Some(format!("{public}/twilio/outbound/answer?call={id}&attempt={attempt}").as_str())
    );
    assert_eq!(
        field(form, "AsyncAmdStatusCallback"),
        Some(format!("{public}/twilio/outbound/amd?call={id}&attempt={attempt}").as_str())
    );
    assert_eq!(field(form, "To"), Some(CALLEE));
    assert_eq!(field(form, "From"), Some(POOL_NUMBER));
    let events: Vec<&str> = form
        .iter()
        .filter(|(k, _)| k == "StatusCallbackEvent")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(events, ["initiated", "ringing", "answered", "completed"]);
    assert_eq!(field(form, "MachineDetection"), Some("DetectMessageEnd"));
    assert_eq!(field(form, "AsyncAmd"), Some("true"));
    assert_eq!(field(form, "Timeout"), Some("30"));
    // The free plan's longest call: 5 minutes.
    assert_eq!(field(form, "TimeLimit"), Some("300"));
    // Recording is off by default: not recorded from the dial.
    assert_eq!(field(form, "Record"), None);

    s.fake.complete_call(&call_sid, 42).await;
    wait_for_status(&s.app, &id, "completed").await;
    let call = outbound(&s.app, &s.user, &id).await;
    assert_eq!(call["status"], "completed");
    assert_eq!(s.fake.dials(CALLEE), 1);

    let statuses: Vec<(String, String)> = status_events(&s.app)
        .await
        .iter()
        .map(|e| {
            (
                e["data"]["previous"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                e["data"]["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let mut statuses = statuses;
    statuses.sort();
    let mut expected: Vec<(String, String)> = [
        ("queued", "dialing"),
        ("dialing", "ringing"),
        ("ringing", "in_progress"),
        ("in_progress", "completed"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    expected.sort();
    assert_eq!(statuses, expected);
}

#[actix_rt::test]
async fn a_submitted_call_is_dialed_once_with_twilios_form_and_moved_by_its_callbacks_on_sqlite() {
    a_submitted_call_is_dialed_once_with_twilios_form_and_moved_by_its_callbacks(TestDb::Sqlite)
        .await;
}

#[actix_rt::test]
async fn a_submitted_call_is_dialed_once_with_twilios_form_and_moved_by_its_callbacks_on_postgres()
{
    a_submitted_call_is_dialed_once_with_twilios_form_and_moved_by_its_callbacks(TestDb::Postgres)
        .await;
}

async fn a_dial_that_times_out_then_gets_a_status_callback_is_not_dialed_again(db: TestDb) {
    let s = setup(db, |fake, _| {
        let mut state = fake.state();
        state.calls.hang_for = Some(Duration::from_secs(3));
    })
    .await;
    let id = submit_ok(&s.app, &s.user, &outbound_request(CALLEE)).await;
    wait_for_status(&s.app, &id, "dial_unknown").await;
    assert_eq!(s.fake.dials(CALLEE), 1);

    // The call exists at Twilio: its callback carries the attempt.
    let url = status_url(&s.fake, 0);
    let sid = s.fake.state().calls.calls[0].resource["sid"]
        .as_str()
        .expect("a sid")
        .to_owned();
    assert_eq!(
        callback(&s.app, &url, &sid, "ringing", Some(TWILIO_SECRET)).await,
        StatusCode::OK
    );
    wait_for_status(&s.app, &id, "ringing").await;

    // Long past the reconcile window: nothing is dialed again.
    s.clock.advance(Duration::from_secs(600));
    some_rounds().await;
    assert_eq!(s.fake.dials(CALLEE), 1, "exactly one dial");
    let (status, _, attempts, call_sid, _) = row(&s.app, &id).await;
    assert_eq!((status.as_str(), attempts), ("ringing", 1));
    assert_eq!(call_sid.as_deref(), Some(sid.as_str()));
}

#[actix_rt::test]
async fn a_dial_that_times_out_then_gets_a_status_callback_is_not_dialed_again_on_sqlite() {
    a_dial_that_times_out_then_gets_a_status_callback_is_not_dialed_again(TestDb::Sqlite).await;
}

#[actix_rt::test]
async fn a_dial_that_times_out_then_gets_a_status_callback_is_not_dialed_again_on_postgres() {
    a_dial_that_times_out_then_gets_a_status_callback_is_not_dialed_again(TestDb::Postgres).await;
}

async fn a_5xx_dial_with_no_call_at_twilio_is_dialed_again_once_after_the_reconcile_window(
    db: TestDb,
) {
    let s = setup(db, |fake, _| {
        fake.state().calls.fail_status = Some(503);
    })
    .await;
    let id = submit_ok(&s.app, &s.user, &outbound_request(CALLEE)).await;
    wait_for_status(&s.app, &id, "dial_unknown").await;
    s.fake.state().calls.fail_status = None;

    // Within the window: a callback may still come; nothing is dialed.
    s.clock.advance(Duration::from_secs(30));
    some_rounds().await;
    assert_eq!(s.fake.dials(CALLEE), 1);
    assert_eq!(row(&s.app, &id).await.0, "dial_unknown");

    // Past it, Twilio lists no call to the number: dialed again, once.
    s.clock.advance(Duration::from_secs(31));
    wait_for_dials(&s.fake, CALLEE, 2).await;
    some_rounds().await;
    s.clock.advance(Duration::from_secs(600));
    some_rounds().await;
    assert_eq!(
        s.fake.dials(CALLEE),
        2,
        "dialed a second time, exactly once"
    );
    let (status, _, attempts, call_sid, _) = row(&s.app, &id).await;
    assert_eq!((status.as_str(), attempts), ("dialing", 2));
    assert!(call_sid.is_some());
    let first = status_url(&s.fake, 0);
    let second = status_url(&s.fake, 1);
    assert_ne!(first, second, "the second dial is a new attempt");
    let db = pool(&s.app).await;
    let outcomes: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT outcome FROM outbound_attempts WHERE outbound_id = $1 ORDER BY started_at",
    )
    .bind(&id)
    .fetch_all(&db)
    .await
    .expect("attempts");
    db.close().await;
    assert_eq!(
        outcomes,
        [Some("absent".to_owned()), Some("created".to_owned())]
    );
}

#[actix_rt::test]
async fn a_5xx_dial_with_no_call_at_twilio_is_dialed_again_once_after_the_reconcile_window_on_sqlite(
) {
    a_5xx_dial_with_no_call_at_twilio_is_dialed_again_once_after_the_reconcile_window(
        TestDb::Sqlite,
    )
    .await;
}

#[actix_rt::test]
async fn a_5xx_dial_with_no_call_at_twilio_is_dialed_again_once_after_the_reconcile_window_on_postgres(
) {
    a_5xx_dial_with_no_call_at_twilio_is_dialed_again_once_after_the_reconcile_window(
        TestDb::Postgres,
    )
    .await;
}

async fn a_refused_dial_fails_with_twilios_reason_and_refunds_the_quota(
    db: TestDb,
    refusal: Refusal,
) {
    let code = refusal.code;
    let s = setup(db, move |fake, _| {
        fake.state().calls.refusal = Some(refusal);
    })
    .await;
    patch_user(&s.app, &s.user, json!({"calls_per_hour": 1})).await;
    let id = submit_ok(&s.app, &s.user, &outbound_request(CALLEE)).await;
    wait_for_status(&s.app, &id, "failed").await;
    let (_, reason, attempts, _, refunded) = row(&s.app, &id).await;
    let reason = reason.expect("a reason");
    assert!(reason.contains(&code.to_string()), "{reason}");
    assert_eq!((attempts, refunded), (1, 1));

    // Refunded: another call fits the hourly quota of one.
    s.fake.state().calls.refusal = None;
    let again = submit_ok(&s.app, &s.user, &outbound_request("+14155550124")).await;
    wait_for_dials(&s.fake, "+14155550124", 1).await;
    some_rounds().await;
    s.clock.advance(Duration::from_secs(600));
    some_rounds().await;
    assert_eq!(s.fake.dials(CALLEE), 1, "a refused call is never retried");
    assert_eq!(row(&s.app, &id).await.0, "failed");
    assert_eq!(row(&s.app, &again).await.0, "dialing");
}

#[actix_rt::test]
async fn a_21216_refusal_fails_the_call_with_the_reason_and_refunds_the_quota_on_sqlite() {
    a_refused_dial_fails_with_twilios_reason_and_refunds_the_quota(
        TestDb::Sqlite,
        Refusal::blocked_destination(),
    )
    .await;
}

#[actix_rt::test]
async fn a_21216_refusal_fails_the_call_with_the_reason_and_refunds_the_quota_on_postgres() {
    a_refused_dial_fails_with_twilios_reason_and_refunds_the_quota(
        TestDb::Postgres,
        Refusal::blocked_destination(),
    )
    .await;
}

#[actix_rt::test]
async fn a_401_refusal_fails_the_call_with_the_reason_and_refunds_the_quota_on_sqlite() {
    a_refused_dial_fails_with_twilios_reason_and_refunds_the_quota(
        TestDb::Sqlite,
        Refusal {
            status: 401,
            code: 20003,
            message: "Authenticate".into(),
        },
    )
    .await;
}

async fn forged_replayed_and_out_of_order_callbacks_change_nothing(db: TestDb) {
    let s = setup(db, |_, _| {}).await;
    let mut body = outbound_request(CALLEE);
    body["callback_url"] = json!("https://hooks.example.com/switchboard");
    let id = submit_ok(&s.app, &s.user, &body).await;
    wait_for_dials(&s.fake, CALLEE, 1).await;
    wait_for_status(&s.app, &id, "dialing").await;
    let url = status_url(&s.fake, 0);
    let sid = s.fake.state().calls.calls[0].resource["sid"]
        .as_str()
        .expect("a sid")
        .to_owned();

    // Forged (another token) and unsigned: 403, nothing changes.
    assert_eq!(
        callback(&s.app, &url, &sid, "in-progress", Some("not-the-token")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        callback(&s.app, &url, &sid, "in-progress", None).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(row(&s.app, &id).await.0, "dialing");
    // A valid signature over another call's URL does not pass for this one.
    let other = url.replace(&id, &"0".repeat(32));
    let params: Vec<(String, String)> = vec![
        ("CallSid".into(), sid.clone()),
        ("CallStatus".into(), "completed".into()),
    ];
    let status = s
        .app
        .client
        .post(&url)
        .insert_header(("X-Twilio-Signature", sign(TWILIO_SECRET, &other, &params)))
        .send_form(&params)
        .await
        .expect("reaches")
        .status();
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(row(&s.app, &id).await.0, "dialing");

    // initiated: no change.
    assert_eq!(
        callback(&s.app, &url, &sid, "initiated", Some(TWILIO_SECRET)).await,
        StatusCode::OK
    );
    assert_eq!(row(&s.app, &id).await.0, "dialing");
    // in-progress, replayed: one change.
    for _ in 0..2 {
        assert_eq!(
            callback(&s.app, &url, &sid, "in-progress", Some(TWILIO_SECRET)).await,
            StatusCode::OK
        );
    }
    assert_eq!(row(&s.app, &id).await.0, "in_progress");
    // Out of order: ringing after in-progress changes nothing.
    assert_eq!(
        callback(&s.app, &url, &sid, "ringing", Some(TWILIO_SECRET)).await,
        StatusCode::OK
    );
    assert_eq!(row(&s.app, &id).await.0, "in_progress");
    // completed, then a late no-answer and a replayed completed: still completed.
    for status in ["completed", "no-answer", "completed", "in-progress"] {
        assert_eq!(
            callback(&s.app, &url, &sid, status, Some(TWILIO_SECRET)).await,
            StatusCode::OK
        );
    }
    assert_eq!(row(&s.app, &id).await.0, "completed");
    // Another attempt's callback: accepted, no change.
    let attempt = url.rsplit("attempt=").next().expect("an attempt");
    let stale = url.replace(attempt, &uuid::Uuid::new_v4().simple().to_string());
    assert_eq!(
        callback(&s.app, &stale, &sid, "busy", Some(TWILIO_SECRET)).await,
        StatusCode::OK
    );
    assert_eq!(row(&s.app, &id).await.0, "completed");

    let mut statuses: Vec<String> = status_events(&s.app)
        .await
        .iter()
        .map(|e| e["data"]["status"].as_str().unwrap_or_default().to_owned())
        .collect();
    statuses.sort();
    assert_eq!(statuses, ["completed", "dialing", "in_progress"]);
    assert_eq!(s.fake.dials(CALLEE), 1);
}

#[actix_rt::test]
async fn forged_replayed_and_out_of_order_callbacks_change_nothing_on_sqlite() {
    forged_replayed_and_out_of_order_callbacks_change_nothing(TestDb::Sqlite).await;
}

#[actix_rt::test]
async fn forged_replayed_and_out_of_order_callbacks_change_nothing_on_postgres() {
    forged_replayed_and_out_of_order_callbacks_change_nothing(TestDb::Postgres).await;
}

async fn the_gates_run_again_at_dispatch(db: TestDb) {
    // Calling hours as configured (08:00–21:00): the clock at 10:00 in San
    // Francisco, calls scheduled for 20:00 there.
    let fake = FakeProvider::start().await;
    let morning: Timestamp = "2026-12-02T18:00:00Z".parse().expect("an instant");
    let clock = ManualClock::new(morning);
    let base = fake.base.clone();
    let app = spawn_app_with_clock(db, &clock, |s| {
        s.twilio.account_sid = TWILIO_SID.into();
        s.twilio.auth_token = Some(secrecy::SecretString::from(TWILIO_SECRET));
        s.twilio.api_base = base.parse().expect("a base URL");
        s.outbound.dispatch_poll = Duration::from_millis(50);
        s.outbound.callback_poll = Duration::from_secs(3600);
    })
    .await;
    let user = app.create_user("ada@example.com").await;
    add_pool_number(&app, &user, POOL_NUMBER).await;
    let evening = morning + SignedDuration::from_hours(10);
    let scheduled = |to: &str| {
        let mut body = outbound_request(to);
        body["schedule_at"] = json!(evening.to_string());
        body
    };
    let listed = submit_ok(&app, &user, &scheduled(CALLEE)).await;
    let late = submit_ok(&app, &user, &scheduled("+14155550124")).await;

    // The number is listed while the call waits.
    let (status, body) = app
        .post_json("/api/dnc", &json!({"e164": CALLEE}), Some(&user.api_key))
        .await;
    assert!(status.is_success(), "{body}");

    // The dispatcher runs late (21:30 there): the window is closed now.
    clock.set(evening + SignedDuration::from_mins(90));
    wait_for_status(&app, &listed, "failed").await;
    let (_, reason, _, _, refunded) = row(&app, &listed).await;
    assert_eq!((reason.as_deref(), refunded), (Some("do-not-call"), 1));
    wait_for_status(&app, &late, "scheduled").await;
    let call = outbound(&app, &user, &late).await;
    let next_morning: Timestamp = "2026-12-03T16:00:00Z".parse().expect("an instant");
    assert_eq!(
        call["scheduled_for"]
            .as_str()
            .and_then(|t| t.parse::<Timestamp>().ok()),
        Some(next_morning),
        "{call}"
    );
    some_rounds().await;
    assert_eq!(fake.dials(CALLEE), 0);
    assert_eq!(fake.dials("+14155550124"), 0);

    // A suspended account's waiting call is canceled at dispatch, its quota
    // given back.
    patch_user(&app, &user, json!({"status": "suspended"})).await;
    clock.set(next_morning + SignedDuration::from_mins(1));
    wait_for_status(&app, &late, "canceled").await;
    let (_, reason, _, _, refunded) = row(&app, &late).await;
    assert_eq!(
        (reason.as_deref(), refunded),
        (Some("account-suspended"), 1)
    );
    assert_eq!(fake.dials("+14155550124"), 0);
}

#[actix_rt::test]
async fn the_gates_run_again_at_dispatch_on_sqlite() {
    the_gates_run_again_at_dispatch(TestDb::Sqlite).await;
}

#[actix_rt::test]
async fn the_gates_run_again_at_dispatch_on_postgres() {
    the_gates_run_again_at_dispatch(TestDb::Postgres).await;
}

async fn a_workspace_without_a_twilio_number_fails_the_call(db: TestDb) {
    let s = setup(db, |_, _| {}).await;
    let bob = s.app.create_user("bob@example.com").await;
    let db_pool = pool(&s.app).await;
    sqlx::query("UPDATE users SET workspace = 'elsewhere' WHERE id = $1")
        .bind(&bob.id)
        .execute(&db_pool)
        .await
        .expect("another workspace");
    db_pool.close().await;
    let id = submit_ok(&s.app, &bob, &outbound_request(CALLEE)).await;
    wait_for_status(&s.app, &id, "failed").await;
    let (_, reason, _, _, refunded) = row(&s.app, &id).await;
    assert_eq!((reason.as_deref(), refunded), (Some("no-from-number"), 1));
    assert_eq!(s.fake.dials(CALLEE), 0);
}

#[actix_rt::test]
async fn a_workspace_without_a_twilio_number_fails_the_call_on_sqlite() {
    a_workspace_without_a_twilio_number_fails_the_call(TestDb::Sqlite).await;
}

async fn outbound_calls_leave_the_inbound_reserve_free(db: TestDb) {
    // 5 realtime connections, 20 % kept for inbound calls: 4 outbound calls at once.
    let s = setup(db, |_, s| {
        s.openai.max_connections = 5;
        s.outbound.reserve_inbound = 0.2;
        s.outbound.max_per_user = 100;
    })
    .await;
    patch_user(&s.app, &s.user, json!({"calls_per_hour": 100})).await;
    let callees: Vec<String> = (0..6).map(|i| format!("+1415555014{i}")).collect();
    let mut ids = Vec::new();
    for to in &callees {
        ids.push(submit_ok(&s.app, &s.user, &outbound_request(to)).await);
    }
    let dialed = |fake: &FakeProvider| callees.iter().filter(|to| fake.dials(to) > 0).count();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while dialed(&s.fake) < 4 {
        assert!(tokio::time::Instant::now() < deadline, "never 4 dials");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    some_rounds().await;
    assert_eq!(dialed(&s.fake), 4, "the fifth waits for room");

    // One call ends: its room goes to the next.
    let first = creates(&s.fake)[0].clone();
    let to = field(&first, "To").expect("To").to_owned();
    let url = field(&first, "StatusCallback").expect("url").to_owned();
    let sid = s
        .fake
        .state()
        .calls
        .calls
        .iter()
        .find(|c| c.resource["to"] == to.as_str())
        .map(|c| c.resource["sid"].as_str().unwrap_or_default().to_owned())
        .expect("its call");
    let params: Vec<(String, String)> = vec![
        ("CallSid".into(), sid),
        ("CallStatus".into(), "busy".into()),
        ("To".into(), to),
    ];
    let status = s
        .app
        .client
        .post(&url)
        .insert_header(("X-Twilio-Signature", sign(TWILIO_SECRET, &url, &params)))
        .send_form(&params)
        .await
        .expect("reaches")
        .status();
    assert_eq!(status, StatusCode::OK);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while dialed(&s.fake) < 5 {
        assert!(tokio::time::Instant::now() < deadline, "never a fifth dial");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    some_rounds().await;
    assert_eq!(dialed(&s.fake), 5);
    assert!(callees.iter().all(|to| s.fake.dials(to) <= 1));
}

#[actix_rt::test]
async fn outbound_calls_leave_the_inbound_reserve_free_on_sqlite() {
    outbound_calls_leave_the_inbound_reserve_free(TestDb::Sqlite).await;
}

#[actix_rt::test]
async fn outbound_calls_leave_the_inbound_reserve_free_on_postgres() {
    outbound_calls_leave_the_inbound_reserve_free(TestDb::Postgres).await;
}

async fn a_call_whose_callbacks_are_lost_gets_twilios_status_and_frees_its_slot(db: TestDb) {
    let s = setup(db, |_, _| {}).await;
    let id = submit_ok(&s.app, &s.user, &outbound_request(CALLEE)).await;
    wait_for_dials(&s.fake, CALLEE, 1).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while row(&s.app, &id).await.3.is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sid is never noted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Twilio rang out; its callback never reached the engine.
    for call in &mut s.fake.state().calls.calls {
        call.resource["status"] = "no-answer".into();
    }
    // Not yet: the ring timeout (30 s) and the reconcile window (60 s) run.
    s.clock.advance(Duration::from_secs(60));
    some_rounds().await;
    assert_eq!(row(&s.app, &id).await.0, "dialing");
    s.clock.advance(Duration::from_secs(31));
    wait_for_status(&s.app, &id, "no_answer").await;
    assert_eq!(s.fake.dials(CALLEE), 1);
}

#[actix_rt::test]
async fn a_call_whose_callbacks_are_lost_gets_twilios_status_and_frees_its_slot_on_sqlite() {
    a_call_whose_callbacks_are_lost_gets_twilios_status_and_frees_its_slot(TestDb::Sqlite).await;
}

#[actix_rt::test]
async fn a_call_whose_callbacks_are_lost_gets_twilios_status_and_frees_its_slot_on_postgres() {
    a_call_whose_callbacks_are_lost_gets_twilios_status_and_frees_its_slot(TestDb::Postgres).await;
}

async fn a_submit_wakes_the_dispatcher(db: TestDb) {
    // The poll would come only in an hour: the submit itself gets the call dialed.
    let s = setup(db, |_, s| {
        s.outbound.dispatch_poll = Duration::from_secs(3600);
    })
    .await;
    some_rounds().await;
    let id = submit_ok(&s.app, &s.user, &outbound_request(CALLEE)).await;
    wait_for_dials(&s.fake, CALLEE, 1).await;
    wait_for_status(&s.app, &id, "dialing").await;
}

#[actix_rt::test]
async fn a_submit_wakes_the_dispatcher_on_sqlite() {
    a_submit_wakes_the_dispatcher(TestDb::Sqlite).await;
}

#[actix_rt::test]
async fn a_submit_wakes_the_dispatcher_on_postgres() {
    a_submit_wakes_the_dispatcher(TestDb::Postgres).await;
}

async fn a_dial_left_by_a_dead_engine_is_reconciled_then_dialed_once(db: TestDb) {
    let s = setup(db, |_, _| {}).await;
    // A call another engine claimed, then died before Twilio answered it.
    let mut body = outbound_request(CALLEE);
    body["schedule_at"] =
        json!((s.clock.handle().now() + SignedDuration::from_hours(1)).to_string());
    let id = submit_ok(&s.app, &s.user, &body).await;
    let claimed_at = s.clock.handle().now().as_millisecond();
    let db = pool(&s.app).await;
    let attempt = "a".repeat(32);
    sqlx::query(
        "UPDATE outbound_calls SET status = 'dialing', attempt_id = $1, attempts = 1, \
         dialed_at = $2, node_id = 'dead-node' WHERE id = $3",
    )
    .bind(&attempt)
    .bind(claimed_at)
    .bind(&id)
    .execute(&db)
    .await
    .expect("claimed by the dead engine");
    sqlx::query(
        "INSERT INTO outbound_attempts (attempt_id, outbound_id, started_at) VALUES ($1, $2, $3)",
    )
    .bind(&attempt)
    .bind(&id)
    .bind(claimed_at)
    .execute(&db)
    .await
    .expect("its attempt");
    db.close().await;

    // Within the dial timeout and the reconcile window: left alone.
    s.clock.advance(Duration::from_secs(30));
    some_rounds().await;
    assert_eq!(row(&s.app, &id).await.0, "dialing");
    // Past both (and the scheduled hour): in doubt, Twilio lists no call, dialed
    // with a new attempt, once.
    s.clock.advance(Duration::from_secs(3600));
    wait_for_dials(&s.fake, CALLEE, 1).await;
    some_rounds().await;
    assert_eq!(s.fake.dials(CALLEE), 1);
    let (status, _, attempts, _, _) = row(&s.app, &id).await;
    assert_eq!((status.as_str(), attempts), ("dialing", 2));
    assert!(!status_url(&s.fake, 0).ends_with(&attempt));
}

#[actix_rt::test]
async fn a_dial_left_by_a_dead_engine_is_reconciled_then_dialed_once_on_sqlite() {
    a_dial_left_by_a_dead_engine_is_reconciled_then_dialed_once(TestDb::Sqlite).await;
}

#[actix_rt::test]
async fn a_dial_left_by_a_dead_engine_is_reconciled_then_dialed_once_on_postgres() {
    a_dial_left_by_a_dead_engine_is_reconciled_then_dialed_once(TestDb::Postgres).await;
}

/// Denver: Colorado, a one-party-consent state.
const ONE_PARTY_CALLEE: &str = "+17205550123";

async fn a_recording_workspaces_call_is_recorded_from_the_dial_only_in_a_one_party_state(
    db: TestDb,
) {
    let s = setup(db, |fake, settings| {
        fake.state().calls.like_twilio = Some(LikeTwilio {
            answered_by: "human".into(),
        });
        settings.safety.recording.workspaces = vec![settings.numbers.default_workspace.to_string()];
    })
    .await;
    let colorado = submit_ok(&s.app, &s.user, &outbound_request(ONE_PARTY_CALLEE)).await;
    wait_for_status(&s.app, &colorado, "in_progress").await;
    let california = submit_ok(&s.app, &s.user, &outbound_request(CALLEE)).await;
    wait_for_status(&s.app, &california, "in_progress").await;
    let forms = creates(&s.fake);
    let record_of = |to: &str| {
        let form = forms
            .iter()
            .find(|f| field(f, "To") == Some(to))
            .unwrap_or_else(|| panic!("a dial to {to}"));
        field(form, "Record").map(str::to_owned)
    };
    assert_eq!(record_of(ONE_PARTY_CALLEE).as_deref(), Some("true"));
    // California is an all-party-consent state: not recorded from the dial.
    assert_eq!(record_of(CALLEE), None);
}

#[actix_web::test]
async fn a_recording_workspaces_call_is_recorded_from_the_dial_only_in_a_one_party_state_on_sqlite()
{
    a_recording_workspaces_call_is_recorded_from_the_dial_only_in_a_one_party_state(TestDb::Sqlite)
        .await;
}

#[actix_web::test]
async fn a_recording_workspaces_call_is_recorded_from_the_dial_only_in_a_one_party_state_on_postgres(
) {
    a_recording_workspaces_call_is_recorded_from_the_dial_only_in_a_one_party_state(
        TestDb::Postgres,
    )
    .await;
}
