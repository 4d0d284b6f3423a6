//! `GET /api/calls/outbound/check`: what the new-call form shows before it
//! submits, by the engine's own rules — a number checked as the submit checks it,
//! the callee's local time, calling hours, the estimate, the do-not-call lists and
//! the attestation's boxes; refusals name their field.

use actix_web::http::{Method, StatusCode};
use jiff::Timestamp;
use serde_json::{json, Value};
use switchboard::outbound::clock::ManualClock;

use crate::db::TestDb;
use crate::helpers::{spawn_app_with_clock, TestApp, ADMIN_TOKEN};

/// 10:00 in San Francisco, a Wednesday.
const MORNING: &str = "2026-12-02T18:00:00Z";

async fn check(app: &TestApp, token: &str, query: &str) -> (StatusCode, Value) {
    app.send_json_as(
        Method::GET,
        &format!("/api/calls/outbound/check?{query}"),
        None,
        Some(token),
    )
    .await
}

#[actix_web::test]
async fn a_number_is_checked_with_the_callees_local_time_calling_hours_estimate_and_the_boxes() {
    let clock = ManualClock::new(MORNING.parse::<Timestamp>().expect("an instant"));
    let app = spawn_app_with_clock(TestDb::Sqlite, &clock, |_| {}).await;
    let user = app.create_user("ada@example.com").await;

    // Nothing typed yet: the window and the attestation only.
    let (status, empty) = check(&app, &user.api_key, "").await;
    assert_eq!(status, StatusCode::OK, "{empty}");
    assert_eq!(empty["calling_hours"]["start"], "08:00", "{empty}");
    assert_eq!(empty["calling_hours"]["end"], "21:00", "{empty}");
    assert!(empty.get("to").is_none(), "{empty}");
    let boxes = empty["attestation"]["boxes"].as_array().expect("boxes");
    assert_eq!(boxes.len(), 5);
    assert_eq!(boxes[1]["field"], "not_dnc");
    assert!(
        boxes[1]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("to my knowledge")),
        "{boxes:?}"
    );

    let (status, body) = check(&app, &user.api_key, "to=%2B1%20415%20555%200123").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["to"], "+14155550123");
    assert_eq!(
        body["callee"],
        json!([{"time_zone": "America/Los_Angeles", "local_time": "2026-12-02T10:00:00-08:00"}])
    );
    assert_eq!(body["calling_hours"]["open"], true, "{body}");
    assert_eq!(body["do_not_call"], false);
    let estimate = body["estimated_cost"].as_f64().expect("an estimate");
    // The same estimate the submit makes.
    let (status, placed) = app
        .post_json(
            "/api/calls/outbound",
            &crate::outbound_claims::outbound_request("+14155550123"),
            Some(&user.api_key),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{placed}");
    assert_eq!(placed["estimated_cost"].as_f64(), Some(estimate));

    // At 23:00 in San Francisco: outside, and when it opens.
    let (_, late) = check(
        &app,
        &user.api_key,
        "to=%2B14155550123&schedule_at=2026-12-03T07:00:00Z",
    )
    .await;
    assert_eq!(late["calling_hours"]["open"], false, "{late}");
    assert_eq!(late["calling_hours"]["opens_at"], "2026-12-03T16:00:00Z");
    assert_eq!(late["callee"][0]["local_time"], "2026-12-02T23:00:00-08:00");

    // On the user's do-not-call list: said before submitting.
    let (status, _) = app
        .post_json(
            "/api/dnc",
            &json!({"e164": "+14155550123"}),
            Some(&user.api_key),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, listed) = check(&app, &user.api_key, "to=%2B14155550123").await;
    assert_eq!(listed["do_not_call"], true, "{listed}");
}

#[actix_web::test]
async fn a_bad_number_or_time_is_refused_naming_its_field_and_only_a_user_may_ask() {
    let clock = ManualClock::new(MORNING.parse::<Timestamp>().expect("an instant"));
    let app = spawn_app_with_clock(TestDb::Sqlite, &clock, |_| {}).await;
    let user = app.create_user("ada@example.com").await;
    for (query, field, says) in [
        ("to=%2B1%20415", "to", "to:"),
        ("to=911", "to", "emergency"),
        ("to=%2B1%20900%20555%200100", "to", "premium-rate"),
        ("to=%2B442071838750", "to", "outbound calls may only reach"),
        (
            "to=%2B14155550123&schedule_at=yesterday",
            "schedule_at",
            "RFC 3339",
        ),
        (
            "to=%2B14155550123&schedule_at=2026-12-01T00:00:00Z",
            "schedule_at",
            "in the past",
        ),
    ] {
        let (status, body) = check(&app, &user.api_key, query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["code"], "bad-field", "{query}: {body}");
        assert_eq!(body["field"], field, "{query}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| m.contains(says)),
            "{query}: {body}"
        );
    }
    let (status, body) = check(&app, &user.api_key, "to=%2B14155550123&from=x").await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "an unknown parameter: {body}"
    );
    let (status, _) = check(&app, ADMIN_TOKEN, "to=%2B14155550123").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the admin places no call");
    let (status, _) = check(&app, "sbu_wrong", "to=%2B14155550123").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
