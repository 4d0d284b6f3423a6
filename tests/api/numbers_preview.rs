//! The cut-over's and the rollback's dry runs (`"dry_run": true`): they answer
//! exactly the numbers the real request then moves or restores, and change
//! nothing — neither a live route nor a Twilio webhook.

use serde_json::{json, Value};

use crate::db::TestDb;
use crate::fake_providers::FakeProvider;
use crate::helpers::{TestApp, ADMIN_TOKEN};
use crate::numbers_assign::engine_on;

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let (status, body) = app.post_json(path, &body, Some(ADMIN_TOKEN)).await;
    (status.as_u16(), body)
}

/// Each live number's workspace and route (not when it was last written).
async fn routes(app: &TestApp) -> Value {
    let numbers = app.get_json("/api/numbers").await.1;
    numbers
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| json!({ "e164": n["e164"], "workspace": n["workspace"], "route": n["route"] }))
        .collect()
}

fn e164s(list: &Value) -> Vec<String> {
    let mut all: Vec<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| n["e164"].as_str().unwrap_or_default().to_owned())
        .collect();
    all.sort();
    all
}

#[actix_web::test]
async fn a_dry_run_names_exactly_the_numbers_a_migration_then_moves_and_a_rollback_then_restores_and_changes_nothing(
) {
    let fake = FakeProvider::start().await;
    for i in 1..=4 {
        fake.add_twilio(
            i,
            &format!("+1415555060{i}"),
            "",
            "https://other.example/voice",
        );
    }
    let app = engine_on(TestDb::Sqlite, &fake, &[("twilio", "production")]).await;
    for i in 1..=4 {
        app.create_number(
            &format!("+1415555060{i}"),
            "production",
            json!({ "kind": "voicemail" }),
        )
        .await;
    }
    let twilio_before = fake.state().twilio.clone();
    let routes_before = routes(&app).await;
    let written_before = app.get_json("/api/numbers").await.1;
    let agents = json!({ "kind": "agents", "agent_ids": [] });

    let (status, plan) = post(
        &app,
        "/api/numbers/migrate",
        json!({ "workspace": "production", "route": agents, "percent": 50, "dry_run": true }),
    )
    .await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["dry_run"], json!(true));
    assert_eq!(
        plan["would_move"].as_array().map(Vec::len),
        Some(2),
        "{plan}"
    );
    assert_eq!(
        plan["would_move"][0]["previous_route"],
        json!({ "kind": "voicemail" })
    );
    assert_eq!(
        app.get_json("/api/numbers").await.1,
        written_before,
        "no number was written"
    );
    assert_eq!(
        fake.state().twilio.clone(),
        twilio_before,
        "no webhook changed"
    );
    let (status, none) = post(
        &app,
        "/api/numbers/rollback",
        json!({ "workspace": "production", "dry_run": true }),
    )
    .await;
    assert_eq!(status, 404, "nothing to roll back yet: {none}");

    let (status, moved) = post(
        &app,
        "/api/numbers/migrate",
        json!({ "workspace": "production", "route": agents, "percent": 50 }),
    )
    .await;
    assert_eq!(status, 201, "{moved}");
    assert_eq!(
        e164s(&moved["moved"]),
        e164s(&plan["would_move"]),
        "the plan is what moved"
    );

    let moved_routes = routes(&app).await;
    let (status, undo) = post(
        &app,
        "/api/numbers/rollback",
        json!({ "workspace": "production", "dry_run": true }),
    )
    .await;
    assert_eq!(status, 200, "{undo}");
    assert_eq!(undo["id"], moved["id"]);
    assert_eq!(e164s(&undo["would_restore"]), e164s(&moved["moved"]));
    assert_eq!(
        routes(&app).await,
        moved_routes,
        "the rollback's dry run changed nothing"
    );

    let (status, restored) = post(
        &app,
        "/api/numbers/rollback",
        json!({ "workspace": "production" }),
    )
    .await;
    assert_eq!(status, 200, "{restored}");
    assert_eq!(e164s(&restored["restored"]), e164s(&undo["would_restore"]));
    assert_eq!(routes(&app).await, routes_before, "every route is back");
    assert_eq!(
        fake.state().twilio.clone(),
        twilio_before,
        "every webhook is back"
    );
    let (status, again) = post(
        &app,
        "/api/numbers/rollback",
        json!({ "workspace": "production", "id": moved["id"], "dry_run": true }),
    )
    .await;
    assert_eq!(
        (status, again["code"].as_str()),
        (409, Some("rolled-back")),
        "{again}"
    );
}

#[actix_web::test]
async fn a_dry_run_with_a_bad_route_is_refused_as_the_migration_would_be() {
    let fake = FakeProvider::start().await;
    let app = engine_on(TestDb::Sqlite, &fake, &[]).await;
    app.create_number("+14155550699", "production", json!({ "kind": "voicemail" }))
        .await;
    let (status, body) = post(
        &app,
        "/api/numbers/migrate",
        json!({ "workspace": "production", "route": { "kind": "ai", "assistant_id": "nope" }, "percent": 100, "dry_run": true }),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("unknown-assistant")),
        "{body}"
    );
}
