//! Admin review (issue 12, item 4): the flags list and its filters, resolving a
//! flag once, suspension and reinstatement with the audit trail, the admin's
//! view of a user (status, quota use, open flags), and the admin token on every
//! admin route. On a real server and database.

use actix_web::http::{Method, StatusCode};
use jiff::Timestamp;
use serde_json::{json, Value};
use switchboard::domain::safety::Severity;
use switchboard::outbound::clock::ManualClock;
use switchboard::store::flags::NewFlag;
use switchboard::store::Store;
use switchboard_actors::UserId;

use crate::db::TestDb;
use crate::helpers::{spawn_app_with_clock, TestApp, User, ADMIN_TOKEN};

/// San Francisco: Pacific time.
const CALLEE: &str = "+14155550123";
/// 10:00 in San Francisco, a Wednesday.
const MORNING: &str = "2026-12-02T18:00:00Z";

fn clock() -> ManualClock {
    ManualClock::new(MORNING.parse::<Timestamp>().expect("an instant"))
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

fn finding(kind: &str, severity: Severity, reason: &str) -> NewFlag {
    NewFlag {
        kind: kind.into(),
        severity,
        reason: reason.into(),
        evidence: json!({ "matched": [reason] }),
        auto_detected: true,
    }
}

async fn store_of(app: &TestApp) -> Store {
    Store::connect(&app.database_url, "admin-review-test")
        .await
        .expect("the store")
}

async fn admin(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    app.send_json_as(method, path, body, Some(ADMIN_TOKEN))
        .await
}

/// Submits a call for `user`; its id.
async fn submitted(app: &TestApp, user: &User) -> String {
    let (status, body) = app
        .post_json("/api/calls/outbound", &request(CALLEE), Some(&user.api_key))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

async fn execute(app: &TestApp, sql: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.database_url)
        .await
        .expect("the test reaches the database");
    sqlx::query(sql).execute(&pool).await.expect("the fixture");
    pool.close().await;
}

fn ids(body: &Value) -> Vec<String> {
    body["flags"]
        .as_array()
        .unwrap_or_else(|| panic!("a list of flags: {body}"))
        .iter()
        .map(|f| f["reason"].as_str().expect("reason").to_owned())
        .collect()
}

async fn flags_are_listed_most_severe_first_with_their_call_and_filtered(db: TestDb) {
    let clock = clock();
    let app = spawn_app_with_clock(db, &clock, |_| {}).await;
    let ada = app.create_user("ada@example.com").await;
    let bob = app.create_user("bob@example.com").await;
    let ada_id = UserId::parse(&ada.id).expect("id");
    let bob_id = UserId::parse(&bob.id).expect("id");
    let call = submitted(&app, &ada).await;
    execute(
        &app,
        &format!("UPDATE outbound_calls SET summary = 'Booked for Tuesday.' WHERE id = '{call}'"),
    )
    .await;
    let store = store_of(&app).await;
    store
        .raise_flags(
            &ada_id,
            None,
            &[finding(
                "velocity_same_number",
                Severity::Medium,
                "medium-1",
            )],
            1_000,
        )
        .await
        .expect("raised");
    store
        .raise_flags(
            &ada_id,
            Some(&call),
            &[finding("objective_screen", Severity::High, "high-2")],
            2_000,
        )
        .await
        .expect("raised");
    store
        .raise_flags(
            &bob_id,
            None,
            &[finding("transcript", Severity::Critical, "critical-3")],
            3_000,
        )
        .await
        .expect("raised");
    store
        .raise_flags(
            &ada_id,
            None,
            &[finding("telephony", Severity::High, "high-4")],
            4_000,
        )
        .await
        .expect("raised");
    store
        .raise_flags(
            &ada_id,
            None,
            &[finding("telephony", Severity::Low, "low-5")],
            5_000,
        )
        .await
        .expect("raised");

    let (status, all) = app.get_json("/api/flags").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(
        ids(&all),
        ["critical-3", "high-2", "high-4", "medium-1", "low-5"]
    );
    let with_call = &all["flags"][1];
    assert_eq!(with_call["call"]["id"], json!(call));
    assert_eq!(with_call["call"]["summary"], "Booked for Tuesday.");
    assert_eq!(with_call["call"]["to"], CALLEE);
    assert_eq!(
        with_call["call"]["link"],
        json!(format!("/api/calls/{call}"))
    );
    assert_eq!(with_call["user_id"], json!(ada.id));
    assert_eq!(with_call["resolved"], false);
    assert!(all["flags"][0]["call"].is_null());

    let (_, serious) = app
        .get_json(&format!(
            "/api/flags?resolved=false&severity=high,critical&user={}",
            ada.id
        ))
        .await;
    assert_eq!(ids(&serious), ["high-2", "high-4"]);
    let (_, page) = app.get_json("/api/flags?limit=2&offset=1").await;
    assert_eq!(ids(&page), ["high-2", "high-4"]);

    let first = all["flags"][3]["id"].as_str().expect("id").to_owned();
    let (status, _) = admin(
        &app,
        Method::POST,
        &format!("/api/flags/{first}/resolve"),
        Some(&json!({ "action": "dismiss" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, open) = app.get_json("/api/flags?resolved=false").await;
    assert_eq!(ids(&open), ["critical-3", "high-2", "high-4", "low-5"]);
    let (_, closed) = app.get_json("/api/flags?resolved=true").await;
    assert_eq!(ids(&closed), ["medium-1"]);

    for (query, parameter) in [
        ("severity=high,urgent", "severity"),
        ("resolved=maybe", "resolved"),
        ("user=not%20an%20id", "user"),
        ("limit=-1", "limit"),
        ("limit=100000", "limit"),
        ("offset=x", "offset"),
        ("colour=red", "colour"),
    ] {
        let (status, body) = app.get_json(&format!("/api/flags?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["code"], "bad-parameter", "{query}: {body}");
        let message = body["message"].as_str().expect("message");
        assert!(
            message.starts_with(&format!("{parameter}:")),
            "{query}: {message}"
        );
    }
    store.close().await;
}

#[actix_web::test]
async fn flags_are_listed_most_severe_first_with_their_call_and_filtered_on_sqlite() {
    flags_are_listed_most_severe_first_with_their_call_and_filtered(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn flags_are_listed_most_severe_first_with_their_call_and_filtered_on_postgres() {
    flags_are_listed_most_severe_first_with_their_call_and_filtered(TestDb::Postgres).await;
}

async fn a_flag_is_resolved_once_and_each_action_does_what_it_says(db: TestDb) {
    let clock = clock();
    let app = spawn_app_with_clock(db, &clock, |_| {}).await;
    let ada = app.create_user("ada@example.com").await;
    let ada_id = UserId::parse(&ada.id).expect("id");
    let call = submitted(&app, &ada).await;
    let store = store_of(&app).await;
    let raised = store
        .raise_flags(
            &ada_id,
            Some(&call),
            &[
                finding("objective_screen", Severity::High, "prizes"),
                finding("transcript", Severity::Medium, "pushy"),
                finding("telephony", Severity::High, "short calls"),
            ],
            1_000,
        )
        .await
        .expect("raised");
    let [prizes, pushy, short] = [0, 1, 2].map(|i| raised.flags[i].id.clone());
    let resolve = |id: &str| format!("/api/flags/{id}/resolve");

    // An unknown action, a missing one, an unknown flag.
    let (status, body) = admin(
        &app,
        Method::POST,
        &resolve(&prizes),
        Some(&json!({ "action": "ban" })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .starts_with("action:"),
        "{body}"
    );
    let (status, _) = admin(
        &app,
        Method::POST,
        &resolve(&prizes),
        Some(&json!({ "notes": "x" })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = admin(
        &app,
        Method::POST,
        &resolve("nope"),
        Some(&json!({ "action": "dismiss" })),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Warn: resolved with who, when, what; a second time is a conflict that
    // keeps the first resolution.
    clock.advance(std::time::Duration::from_secs(60));
    let (status, warned) = admin(
        &app,
        Method::POST,
        &resolve(&pushy),
        Some(&json!({ "action": "warn", "notes": "told them to calm down" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{warned}");
    assert_eq!(warned["resolved"], true);
    assert_eq!(warned["resolution"]["by"], "admin");
    assert_eq!(warned["resolution"]["action"], "warn");
    assert_eq!(warned["resolution"]["notes"], "told them to calm down");
    assert_eq!(warned["resolution"]["at"], "2026-12-02T18:01:00Z");
    let (status, again) = admin(
        &app,
        Method::POST,
        &resolve(&pushy),
        Some(&json!({ "action": "dismiss" })),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert_eq!(again["code"], "already-resolved");
    assert_eq!(again["flag"]["resolution"]["action"], "warn");
    let user = store.get_user(&ada_id).await.expect("read").expect("ada");
    assert_eq!(user.status.as_str(), "active", "warn does not pause");

    // block_number: the callee goes on the global list.
    let (status, body) = admin(
        &app,
        Method::POST,
        &resolve(&short),
        Some(&json!({ "action": "block_number" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, dnc) = app.get_json("/api/dnc").await;
    assert_eq!(status, StatusCode::OK, "{dnc}");
    assert!(dnc.to_string().contains(CALLEE), "{dnc}");
    let (status, refused) = app
        .post_json("/api/calls/outbound", &request(CALLEE), Some(&ada.api_key))
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a blocked number is not called: {refused}"
    );

    // suspend: the user is suspended and cannot place calls.
    let (status, body) = admin(
        &app,
        Method::POST,
        &resolve(&prizes),
        Some(&json!({ "action": "suspend", "notes": "scam" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let user = store.get_user(&ada_id).await.expect("read").expect("ada");
    assert_eq!(user.status.as_str(), "suspended");
    let (status, refused) = app
        .post_json(
            "/api/calls/outbound",
            &request("+14155550199"),
            Some(&ada.api_key),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["code"], "account-suspended");

    // block_number on a flag about no call: nothing to block.
    let lone = store
        .raise_flags(
            &ada_id,
            None,
            &[finding("telephony", Severity::Low, "lone")],
            2_000,
        )
        .await
        .expect("raised")
        .flags[0]
        .id
        .clone();
    let (status, body) = admin(
        &app,
        Method::POST,
        &resolve(&lone),
        Some(&json!({ "action": "block_number" })),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "flag-without-call");
    let lone_flag = store.get_flag(&lone).await.expect("read").expect("flag");
    assert!(
        lone_flag.resolution.is_none(),
        "a refused resolution leaves the flag open"
    );

    let (_, trail) = app.get_json(&format!("/api/audit?user={}", ada.id)).await;
    let actions: Vec<(&str, &str)> = trail["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().expect("action"),
                e["actor"].as_str().expect("actor"),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("flag_resolved", "admin"),
            ("flag_resolved", "admin"),
            ("number_blocked", "admin"),
            ("flag_resolved", "admin"),
            ("user_suspended", "admin"),
        ]
    );
    store.close().await;
}

#[actix_web::test]
async fn a_flag_is_resolved_once_and_each_action_does_what_it_says_on_sqlite() {
    a_flag_is_resolved_once_and_each_action_does_what_it_says(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn a_flag_is_resolved_once_and_each_action_does_what_it_says_on_postgres() {
    a_flag_is_resolved_once_and_each_action_does_what_it_says(TestDb::Postgres).await;
}

async fn a_suspend_reinstate_cycle_is_in_the_audit_trail_and_leaves_quotas_alone(db: TestDb) {
    let clock = clock();
    let app = spawn_app_with_clock(db, &clock, |_| {}).await;
    let ada = app.create_user("ada@example.com").await;
    let ada_id = UserId::parse(&ada.id).expect("id");
    let (status, body) = admin(
        &app,
        Method::PATCH,
        &format!("/api/users/{}", ada.id),
        Some(&json!({ "calls_per_hour": 1 })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    submitted(&app, &ada).await;
    let store = store_of(&app).await;
    store
        .raise_flags(
            &ada_id,
            None,
            &[finding("telephony", Severity::High, "short calls")],
            1_000,
        )
        .await
        .expect("raised");

    let user_path = format!("/api/users/{}", ada.id);
    let (status, view) = app.get_json(&user_path).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["status"], "active");
    assert_eq!(view["quota"]["calls_last_hour"], 1);
    assert_eq!(view["quota"]["calls_per_hour"], 1);
    assert_eq!(view["quota"]["calls_last_day"], 1);
    assert_eq!(view["quota"]["month_spend_usd"], json!(1.57));
    assert_eq!(view["open_flags"][0]["reason"], "short calls");
    // The user itself sees neither.
    let (status, own) = app
        .send_json_as(Method::GET, &user_path, None, Some(&ada.api_key))
        .await;
    assert_eq!(status, StatusCode::OK, "{own}");
    assert!(own.get("open_flags").is_none(), "{own}");

    let suspend = format!("/api/users/{}/suspend", ada.id);
    let reinstate = format!("/api/users/{}/reinstate", ada.id);
    for body in [json!({}), json!({ "reason": "  " })] {
        let (status, answer) = admin(&app, Method::POST, &suspend, Some(&body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
    }
    let (status, answer) = admin(
        &app,
        Method::POST,
        &reinstate,
        Some(&json!({ "reason": "ok" })),
    )
    .await;
    assert_eq!(
        (status, &answer["code"]),
        (StatusCode::CONFLICT, &json!("not-suspended"))
    );

    clock.advance(std::time::Duration::from_secs(60));
    let (status, answer) = admin(
        &app,
        Method::POST,
        &suspend,
        Some(&json!({ "reason": "complaints" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], "suspended");
    let (status, answer) = admin(
        &app,
        Method::POST,
        &suspend,
        Some(&json!({ "reason": "again" })),
    )
    .await;
    assert_eq!(
        (status, &answer["code"]),
        (StatusCode::CONFLICT, &json!("already-suspended"))
    );
    let (status, refused) = app
        .post_json("/api/calls/outbound", &request(CALLEE), Some(&ada.api_key))
        .await;
    assert_eq!(
        (status, &refused["code"]),
        (StatusCode::FORBIDDEN, &json!("account-suspended"))
    );

    clock.advance(std::time::Duration::from_secs(60));
    let (status, answer) = admin(
        &app,
        Method::POST,
        &reinstate,
        Some(&json!({ "reason": "explained" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], "active");
    assert_eq!(
        answer["quota"]["calls_last_hour"], 1,
        "reinstatement does not clear the quota"
    );
    // The hour's call still counts: one an hour, so the next is refused.
    let (status, limited) = app
        .post_json("/api/calls/outbound", &request(CALLEE), Some(&ada.api_key))
        .await;
    assert_eq!(
        (status, &limited["code"]),
        (StatusCode::TOO_MANY_REQUESTS, &json!("rate-limited")),
        "{limited}"
    );
    // Once the hour has passed, it is not.
    clock.advance(std::time::Duration::from_secs(3600));
    submitted(&app, &ada).await;

    let (status, trail) = app
        .get_json(&format!(
            "/api/audit?user={}&since=2026-12-02T18:00:30Z",
            ada.id
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{trail}");
    let entries = trail["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 2, "{trail}");
    assert_eq!(
        (
            &entries[0]["action"],
            &entries[0]["actor"],
            &entries[0]["at"]
        ),
        (
            &json!("user_suspended"),
            &json!("admin"),
            &json!("2026-12-02T18:01:00Z")
        )
    );
    assert_eq!(entries[0]["detail"]["reason"], "complaints");
    assert_eq!(entries[0]["detail"]["from"], "active");
    assert_eq!(
        (
            &entries[1]["action"],
            &entries[1]["at"],
            &entries[1]["detail"]["reason"]
        ),
        (
            &json!("user_reinstated"),
            &json!("2026-12-02T18:02:00Z"),
            &json!("explained")
        )
    );
    // A status set with PATCH is on the trail too.
    let (status, body) = admin(
        &app,
        Method::PATCH,
        &user_path,
        Some(&json!({ "status": "paused" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, trail) = app.get_json(&format!("/api/audit?user={}", ada.id)).await;
    let last = trail["entries"]
        .as_array()
        .expect("entries")
        .last()
        .cloned();
    let last = last.expect("an entry");
    assert_eq!(
        (
            &last["action"],
            &last["detail"]["from"],
            &last["detail"]["to"]
        ),
        (
            &json!("user_status_changed"),
            &json!("active"),
            &json!("paused")
        )
    );
    let (_, later) = app
        .get_json("/api/audit?since=2026-12-02T18:01:30%2B00:00")
        .await;
    let later: Vec<&Value> = later["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| &e["action"])
        .collect();
    assert_eq!(
        later,
        [&json!("user_reinstated"), &json!("user_status_changed")]
    );
    let (_, one) = app.get_json("/api/audit?limit=1").await;
    assert_eq!(one["entries"][0]["action"], "user_suspended");
    for (query, parameter) in [
        ("since=yesterday", "since"),
        ("user=%20", "user"),
        ("limit=x", "limit"),
        ("until=2026-01-01T00:00:00Z", "until"),
    ] {
        let (status, body) = app.get_json(&format!("/api/audit?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["code"], "bad-parameter");
        let message = body["message"].as_str().expect("message");
        assert!(
            message.starts_with(&format!("{parameter}:")),
            "{query}: {message}"
        );
    }
    store.close().await;
}

#[actix_web::test]
async fn a_suspend_reinstate_cycle_is_in_the_audit_trail_and_leaves_quotas_alone_on_sqlite() {
    a_suspend_reinstate_cycle_is_in_the_audit_trail_and_leaves_quotas_alone(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn a_suspend_reinstate_cycle_is_in_the_audit_trail_and_leaves_quotas_alone_on_postgres() {
    a_suspend_reinstate_cycle_is_in_the_audit_trail_and_leaves_quotas_alone(TestDb::Postgres).await;
}

#[actix_web::test]
async fn every_admin_review_route_answers_401_to_anyone_but_the_admin() {
    let clock = clock();
    let app = spawn_app_with_clock(TestDb::Sqlite, &clock, |_| {}).await;
    let ada = app.create_user("ada@example.com").await;
    let ada_id = UserId::parse(&ada.id).expect("id");
    let store = store_of(&app).await;
    let flag = store
        .raise_flags(
            &ada_id,
            None,
            &[finding("telephony", Severity::High, "x")],
            1_000,
        )
        .await
        .expect("raised")
        .flags[0]
        .id
        .clone();
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/api/flags".into(), None),
        (
            Method::POST,
            format!("/api/flags/{flag}/resolve"),
            Some(json!({ "action": "dismiss" })),
        ),
        (
            Method::POST,
            format!("/api/users/{}/suspend", ada.id),
            Some(json!({ "reason": "r" })),
        ),
        (
            Method::POST,
            format!("/api/users/{}/reinstate", ada.id),
            Some(json!({ "reason": "r" })),
        ),
        (Method::GET, "/api/audit".into(), None),
    ];
    for (method, path, body) in &routes {
        for token in [Some(ada.api_key.as_str()), Some("not-a-token"), None] {
            let (status, answer) = app
                .send_json_as(method.clone(), path, body.as_ref(), token)
                .await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {token:?}: {answer}"
            );
            assert_eq!(answer["code"], "unauthorized");
        }
    }
    // Nothing changed.
    assert!(store
        .get_flag(&flag)
        .await
        .expect("read")
        .expect("flag")
        .resolution
        .is_none());
    assert_eq!(
        store
            .get_user(&ada_id)
            .await
            .expect("read")
            .expect("ada")
            .status
            .as_str(),
        "active"
    );
    assert!(store
        .audit_trail(None, 0, 10)
        .await
        .expect("trail")
        .is_empty());
    // A user's own key on GET /api/users/{id} shows no review data; another
    // user's id is a 404, and a bad token a 401.
    let (status, _) = app
        .send_json_as(
            Method::GET,
            &format!("/api/users/{}", ada.id),
            None,
            Some("not-a-token"),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    store.close().await;
}

/// The users page reads its users' quotas and open flags in one query each, for
/// the whole page: each user still shows their own, exactly as their own page
/// does.
async fn the_users_page_shows_each_users_own_quota_and_flags(db: TestDb) {
    let clock = clock();
    let app = spawn_app_with_clock(db, &clock, |_| {}).await;
    let ada = app.create_user("ada@example.com").await;
    let bob = app.create_user("bob@example.com").await;
    let cy = app.create_user("cy@example.com").await;
    submitted(&app, &ada).await;
    submitted(&app, &ada).await;
    submitted(&app, &cy).await;
    let store = store_of(&app).await;
    // Raised a second apart: a user's open flags are listed oldest first.
    let raised = [
        (&ada, "short calls"),
        (&bob, "velocity"),
        (&bob, "odd hours"),
    ];
    for (at, (user, reason)) in (1_000..).step_by(1_000).zip(raised) {
        let id = UserId::parse(&user.id).expect("id");
        store
            .raise_flags(
                &id,
                None,
                &[finding("telephony", Severity::High, reason)],
                at,
            )
            .await
            .expect("raised");
    }

    let (status, page) = app.get_json("/api/users?limit=10").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let listed = page["users"].as_array().expect("users");
    assert_eq!(listed.len(), 3, "{page}");
    for user in [&ada, &bob, &cy] {
        let (status, alone) = app.get_json(&format!("/api/users/{}", user.id)).await;
        assert_eq!(status, StatusCode::OK, "{alone}");
        let in_page = listed
            .iter()
            .find(|u| u["id"] == user.id.as_str())
            .expect("listed");
        assert_eq!(in_page, &alone, "the page and the user's own view agree");
    }
    let of = |user: &User| {
        listed
            .iter()
            .find(|u| u["id"] == user.id.as_str())
            .cloned()
            .expect("listed")
    };
    assert_eq!(of(&ada)["quota"]["calls_last_hour"], 2);
    assert_eq!(of(&cy)["quota"]["calls_last_hour"], 1);
    assert_eq!(of(&bob)["quota"]["calls_last_hour"], 0);
    assert_eq!(of(&bob)["quota"]["month_spend_usd"], json!(0.0));
    let reasons = |user: &User| -> Vec<String> {
        of(user)["open_flags"]
            .as_array()
            .expect("open_flags")
            .iter()
            .map(|f| f["reason"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(reasons(&ada), ["short calls"]);
    assert_eq!(reasons(&bob), ["velocity", "odd hours"]);
    assert!(reasons(&cy).is_empty());
}

#[actix_web::test]
async fn the_users_page_shows_each_users_own_quota_and_flags_on_sqlite() {
    the_users_page_shows_each_users_own_quota_and_flags(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn the_users_page_shows_each_users_own_quota_and_flags_on_postgres() {
    the_users_page_shows_each_users_own_quota_and_flags(TestDb::Postgres).await;
}
