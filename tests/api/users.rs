//! Users: creation (API key shown once), reading with effective limits, the
//! admin's overrides and status changes, and every refusal; who may read whom.

use actix_web::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::db::TestDb;
use crate::helpers::{spawn_app_with, TestApp, ADMIN_TOKEN};

async fn get_as(app: &TestApp, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    app.send_json_as(Method::GET, path, None, token).await
}

async fn patch(app: &TestApp, id: &str, body: Value) -> (StatusCode, Value) {
    app.send_json(Method::PATCH, &format!("/api/users/{id}"), Some(&body))
        .await
}

fn limits(per_hour: u32, per_day: u32, budget: f64, minutes: u32) -> Value {
    json!({
        "calls_per_hour": per_hour,
        "calls_per_day": per_day,
        "monthly_budget_usd": budget,
        "max_call_minutes": minutes,
    })
}

async fn a_user_reads_itself_and_the_admin_overrides_its_plan(db: TestDb) {
    let app = spawn_app_with(db, |_| {}).await;
    let mut res = app
        .client
        .post(format!("{}/api/users", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .send_json(&json!({
            "email": "Ada@Example.com",
            "name": "  Ada Lovelace ",
            "workspace": "acme",
            "timezone": "europe/london",
        }))
        .await
        .expect("POST reaches the engine");
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(
        res.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store"),
        "the key is shown once: no cache keeps it"
    );
    let created: Value = res.json().await.expect("a JSON body");
    let id = created["id"].as_str().expect("id");
    let key = created["api_key"].as_str().expect("api_key");
    let secret = created["webhook_secret"].as_str().expect("webhook_secret");
    assert!(key.starts_with("sbu_") && key.len() > 40, "{key}");
    assert!(
        secret.starts_with("whsec_") && secret.len() > 40,
        "{secret}"
    );
    assert_eq!(created.as_object().map(|o| o.len()), Some(3), "{created}");

    let (status, by_admin) = app.get_json(&format!("/api/users/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{by_admin}");
    let (status, by_itself) = get_as(&app, &format!("/api/users/{id}"), Some(key)).await;
    assert_eq!(status, StatusCode::OK, "{by_itself}");
    // Both see the quota use (the user's dashboard shows it); the admin sees the
    // same plus the review's `open_flags`.
    assert_eq!(by_itself["quota"]["calls_last_hour"], 0);
    assert_eq!(by_itself["quota"]["calls_per_hour"], 5);
    let mut admin_only = by_admin.clone();
    let extra = admin_only.as_object_mut().expect("an object");
    assert_eq!(extra.remove("open_flags"), Some(serde_json::json!([])));
    assert_eq!(admin_only, by_itself);
    assert_eq!(by_itself["email"], "ada@example.com");
    assert_eq!(by_itself["name"], "Ada Lovelace");
    assert_eq!(by_itself["workspace"], "acme");
    assert_eq!(by_itself["timezone"], "Europe/London");
    assert_eq!(by_itself["plan"], "free");
    assert_eq!(by_itself["status"], "active");
    assert_eq!(by_itself["limits"], limits(5, 20, 10.0, 5));
    let shown = by_itself.to_string();
    assert!(
        !shown.contains(key) && !shown.contains(secret) && !shown.contains("api_key"),
        "no secret is shown again: {shown}"
    );

    let (status, pro) = patch(
        &app,
        id,
        json!({ "plan": "pro", "calls_per_day": 7, "monthly_budget_usd": 55.5 }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{pro}");
    assert_eq!(pro["plan"], "pro");
    assert_eq!(pro["limits"], limits(10, 7, 55.5, 15));
    assert_eq!(pro["overrides"]["calls_per_day"], 7);
    assert_eq!(pro["overrides"]["calls_per_hour"], Value::Null);

    let (status, back) = patch(
        &app,
        id,
        json!({
            "calls_per_day": null,
            "max_call_minutes": 30,
            "name": "Ada King",
            "timezone": null,
            "status": "suspended",
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{back}");
    assert_eq!(
        back["limits"],
        limits(10, 50, 55.5, 30),
        "null is the plan's"
    );
    assert_eq!(back["name"], "Ada King");
    assert_eq!(back["timezone"], Value::Null);
    assert_eq!(back["status"], "suspended");

    let (status, read) = get_as(&app, &format!("/api/users/{id}"), Some(key)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a suspended user still reads itself"
    );
    // The admin's answer is the user's own view plus the open flags.
    let mut back = back;
    back.as_object_mut().map(|o| o.remove("open_flags"));
    assert_eq!(read, back);

    let (status, defaults) = app
        .post_json(
            "/api/users",
            &json!({ "email": "grace@example.com", "name": "Grace", "plan": "pro" }),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{defaults}");
    let (_, grace) = app
        .get_json(&format!(
            "/api/users/{}",
            defaults["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(
        grace["workspace"], "production",
        "numbers.default_workspace"
    );
    assert_eq!(grace["timezone"], Value::Null);
    assert_eq!(grace["limits"], limits(10, 50, 200.0, 15));
}

#[actix_web::test]
async fn a_user_reads_itself_and_the_admin_overrides_its_plan_on_sqlite() {
    a_user_reads_itself_and_the_admin_overrides_its_plan(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn a_user_reads_itself_and_the_admin_overrides_its_plan_on_postgres() {
    a_user_reads_itself_and_the_admin_overrides_its_plan(TestDb::Postgres).await;
}

/// `(body, status, code, what the message names)`
fn bad_creations() -> Vec<(Value, u16, &'static str, &'static str)> {
    let email = "ada@example.com";
    vec![
        (json!({ "name": "Ada" }), 400, "bad-field", "email"),
        (json!({ "email": email }), 400, "bad-field", "name"),
        (
            json!({ "email": 5, "name": "Ada" }),
            400,
            "bad-field",
            "email",
        ),
        (
            json!({ "email": email, "name": ["Ada"] }),
            400,
            "bad-field",
            "name",
        ),
        (
            json!({ "email": "ada", "name": "Ada" }),
            400,
            "bad-field",
            "email",
        ),
        (
            json!({ "email": "ada@localhost", "name": "Ada" }),
            400,
            "bad-field",
            "email",
        ),
        (
            json!({ "email": email, "name": "  " }),
            400,
            "bad-field",
            "name",
        ),
        (
            json!({ "email": email, "name": "A".repeat(101) }),
            400,
            "bad-field",
            "name",
        ),
        (
            json!({ "email": email, "name": "Ada", "workspace": "Big Co" }),
            400,
            "bad-field",
            "workspace",
        ),
        (
            json!({ "email": email, "name": "Ada", "workspace": 7 }),
            400,
            "bad-field",
            "workspace",
        ),
        (
            json!({ "email": email, "name": "Ada", "timezone": "Mars/Olympus" }),
            400,
            "bad-field",
            "timezone",
        ),
        (
            json!({ "email": email, "name": "Ada", "timezone": "+02:00" }),
            400,
            "bad-field",
            "timezone",
        ),
        (
            json!({ "email": email, "name": "Ada", "timezone": 2 }),
            400,
            "bad-field",
            "timezone",
        ),
        (
            json!({ "email": email, "name": "Ada", "plan": "gold" }),
            400,
            "unknown-plan",
            "plan",
        ),
        (
            json!({ "email": email, "name": "Ada", "plan": "Pro!" }),
            400,
            "unknown-plan",
            "plan",
        ),
        (
            json!({ "email": email, "name": "Ada", "plan": true }),
            400,
            "bad-field",
            "plan",
        ),
        (
            json!({ "email": email, "name": "Ada", "status": "active" }),
            400,
            "bad-field",
            "status",
        ),
        (json!([email]), 400, "bad-field", "struct"),
    ]
}

async fn bad_users_are_refused_naming_the_field(db: TestDb) {
    let app = spawn_app_with(db, |_| {}).await;
    for (body, status, code, named) in bad_creations() {
        let (got, error) = app.post_json("/api/users", &body, Some(ADMIN_TOKEN)).await;
        assert_eq!(
            (got.as_u16(), error["code"].as_str()),
            (status, Some(code)),
            "{body}: {error}"
        );
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains(named), "{body}: {message:?} names {named}");
    }
    // Nothing was stored: the address used above is free.
    let user = app.create_user("ada@example.com").await;

    let (status, before) = app.get_json(&format!("/api/users/{}", user.id)).await;
    assert_eq!(status, StatusCode::OK);
    let bad_patches: Vec<(Value, &str, &str)> = vec![
        (
            json!({ "calls_per_hour": -1 }),
            "bad-field",
            "calls_per_hour",
        ),
        (
            json!({ "calls_per_hour": 10_001 }),
            "bad-field",
            "calls_per_hour",
        ),
        (
            json!({ "calls_per_hour": "5" }),
            "bad-field",
            "calls_per_hour",
        ),
        (
            json!({ "calls_per_day": 100_001 }),
            "bad-field",
            "calls_per_day",
        ),
        (
            json!({ "calls_per_day": 2.5 }),
            "bad-field",
            "calls_per_day",
        ),
        (
            json!({ "monthly_budget_usd": -0.01 }),
            "bad-field",
            "monthly_budget_usd",
        ),
        (
            json!({ "monthly_budget_usd": 1e7 }),
            "bad-field",
            "monthly_budget_usd",
        ),
        (
            json!({ "monthly_budget_usd": "10" }),
            "bad-field",
            "monthly_budget_usd",
        ),
        (
            json!({ "max_call_minutes": 0 }),
            "bad-field",
            "max_call_minutes",
        ),
        (
            json!({ "max_call_minutes": 241 }),
            "bad-field",
            "max_call_minutes",
        ),
        (json!({ "name": null }), "bad-field", "name"),
        (json!({ "name": "" }), "bad-field", "name"),
        (
            json!({ "timezone": "Nowhere/Else" }),
            "bad-field",
            "timezone",
        ),
        (json!({ "plan": "gold" }), "unknown-plan", "plan"),
        (json!({ "plan": null }), "bad-field", "plan"),
        (json!({ "status": "deleted" }), "bad-field", "status"),
        (json!({ "status": null }), "bad-field", "status"),
        (json!({ "email": "new@example.com" }), "bad-field", "email"),
        (
            json!({ "calls_per_hour": 3, "max_call_minutes": 0 }),
            "bad-field",
            "max_call_minutes",
        ),
    ];
    for (body, code, named) in bad_patches {
        let (status, error) = patch(&app, &user.id, body.clone()).await;
        assert_eq!(
            (status.as_u16(), error["code"].as_str()),
            (400, Some(code)),
            "{body}: {error}"
        );
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains(named), "{body}: {message:?} names {named}");
    }
    let (_, after) = app.get_json(&format!("/api/users/{}", user.id)).await;
    assert_eq!(before, after, "no refused change was applied");

    let (status, error) = patch(&app, "no-such-user", json!({ "name": "X" })).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not-found"))
    );
    let (status, error) = patch(&app, "BAD-ID", json!({ "name": "X" })).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad-id"))
    );
}

#[actix_web::test]
async fn bad_users_are_refused_naming_the_field_on_sqlite() {
    bad_users_are_refused_naming_the_field(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn bad_users_are_refused_naming_the_field_on_postgres() {
    bad_users_are_refused_naming_the_field(TestDb::Postgres).await;
}

async fn an_email_belongs_to_one_user_whatever_its_case(db: TestDb) {
    let app = spawn_app_with(db, |_| {}).await;
    app.create_user("ada@example.com").await;
    let (status, error) = app
        .post_json(
            "/api/users",
            &json!({ "email": " ADA@example.COM", "name": "Another Ada" }),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::CONFLICT, Some("duplicate"))
    );
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("ada@example.com"),
        "{error}"
    );
}

#[actix_web::test]
async fn an_email_belongs_to_one_user_whatever_its_case_on_sqlite() {
    an_email_belongs_to_one_user_whatever_its_case(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn an_email_belongs_to_one_user_whatever_its_case_on_postgres() {
    an_email_belongs_to_one_user_whatever_its_case(TestDb::Postgres).await;
}

async fn users_see_only_themselves_and_only_the_admin_manages_users(db: TestDb) {
    let app = spawn_app_with(db, |_| {}).await;
    let ada = app.create_user("ada@example.com").await;
    let grace = app.create_user("grace@example.com").await;
    let ada_path = format!("/api/users/{}", ada.id);

    let (status, error) = get_as(&app, &ada_path, Some(&grace.api_key)).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not-found")),
        "another user's profile is a 404, as an unknown one"
    );
    let (unknown, _) = get_as(&app, "/api/users/no-such-user", Some(&grace.api_key)).await;
    assert_eq!(unknown, StatusCode::NOT_FOUND);

    for token in [
        None,
        Some("sbu_not-a-key"),
        Some(ada.webhook_secret.as_str()),
    ] {
        let (status, error) = get_as(&app, &ada_path, token).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("unauthorized")),
            "{token:?}"
        );
    }
    let (status, _) = app
        .send_json_as(
            Method::PATCH,
            &ada_path,
            Some(&json!({ "plan": "pro" })),
            Some(&ada.api_key),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a user cannot change its own plan"
    );
    let (status, _) = app
        .post_json(
            "/api/users",
            &json!({ "email": "eve@example.com", "name": "Eve" }),
            Some(&ada.api_key),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a user cannot create users"
    );
    let (status, _) = app
        .post_json(
            "/api/users",
            &json!({ "email": "eve@example.com", "name": "Eve" }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = get_as(&app, "/api/agents", Some(&ada.api_key)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "admin routes stay the admin's"
    );
    let (_, read) = app.get_json(&ada_path).await;
    assert_eq!(read["plan"], "free");
}

#[actix_web::test]
async fn users_see_only_themselves_and_only_the_admin_manages_users_on_sqlite() {
    users_see_only_themselves_and_only_the_admin_manages_users(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn users_see_only_themselves_and_only_the_admin_manages_users_on_postgres() {
    users_see_only_themselves_and_only_the_admin_manages_users(TestDb::Postgres).await;
}
