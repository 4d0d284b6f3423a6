//! The admin REST API: agents, numbers, calls; its auth and its refusals.

use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp, ADMIN_TOKEN};

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let (status, body) = app.post_json(path, &body, Some(ADMIN_TOKEN)).await;
    (status.as_u16(), body)
}

#[actix_web::test]
async fn creating_an_agent_returns_its_id_and_a_softphone_token() {
    let app = spawn_app().await;
    let (status, body) = post(
        &app,
        "/api/agents",
        json!({ "name": "Ada", "workspace": "production" }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(body["id"].is_string());
    assert!(body["token"].as_str().is_some_and(|t| t.len() > 32));
    let (status, listed) = app.get_json("/api/agents").await;
    assert_eq!(status, 200);
    assert_eq!(listed[0]["name"], "Ada");
    assert!(listed[0].get("token").is_none(), "tokens are shown once");
    let (status, one) = app
        .get_json(&format!(
            "/api/agents/{}",
            body["id"].as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!(
        (status.as_u16(), one["workspace"].clone()),
        (200, json!("production"))
    );
}

#[actix_web::test]
async fn the_admin_api_wants_the_admin_token() {
    let app = spawn_app().await;
    let body = json!({ "name": "Ada", "workspace": "production" });
    for token in [None, Some("wrong")] {
        let (status, error) = app.post_json("/api/agents", &body, token).await;
        assert_eq!(status, 401);
        assert_eq!(error["code"], "unauthorized");
    }
    let (status, _) = app.get("/api/calls/abc", None).await;
    assert_eq!(status, 401);
}

#[actix_web::test]
async fn bad_agents_are_refused_with_the_field_named() {
    let app = spawn_app().await;
    for (body, field) in [
        (json!({ "name": "", "workspace": "production" }), "name"),
        (
            json!({ "name": "Ada", "workspace": "Prod Uction" }),
            "workspace",
        ),
        (json!({ "name": "Ada" }), "workspace"),
        (
            json!({ "name": "Ada", "workspace": "production", "admin": true }),
            "admin",
        ),
    ] {
        let (status, error) = post(&app, "/api/agents", body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            error["message"]
                .as_str()
                .unwrap_or_default()
                .contains(field),
            "{error}"
        );
    }
    let (_, listed) = app.get_json("/api/agents").await;
    assert_eq!(listed, json!([]), "nothing was created");
}

#[actix_web::test]
async fn numbers_are_validated_and_normalised_to_e164() {
    let app = spawn_app().await;
    let agent = app.create_agent("Ada", "production").await;
    let (status, body) = post(
        &app,
        "/api/numbers",
        json!({ "e164": "+1 415 555 1234", "workspace": "production", "route": { "kind": "agents", "agent_ids": [agent.id] } }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["e164"], "+14155551234");
    for bad in ["555-1234", "+1 415 555 123", "+1 ABC DEF GHIJ", ""] {
        let (status, error) = post(
            &app,
            "/api/numbers",
            json!({ "e164": bad, "workspace": "production", "route": { "kind": "voicemail" } }),
        )
        .await;
        assert_eq!(status, 400, "{bad:?}");
        assert!(
            error["message"]
                .as_str()
                .unwrap_or_default()
                .contains("e164"),
            "{error}"
        );
    }
}

#[actix_web::test]
async fn routes_to_unknown_or_foreign_agents_and_unknown_kinds_are_refused() {
    let app = spawn_app().await;
    let staging = app.create_agent("Bob", "staging").await;
    for (route, code) in [
        (
            json!({ "kind": "agents", "agent_ids": ["nosuchagent"] }),
            "unknown-agent",
        ),
        (
            json!({ "kind": "agents", "agent_ids": [staging.id] }),
            "wrong-workspace",
        ),
        (
            json!({ "kind": "ai", "assistant_id": "x" }),
            "unknown-assistant",
        ),
        (json!({ "kind": "pigeon" }), "bad-field"),
    ] {
        let (status, error) = post(
            &app,
            "/api/numbers",
            json!({ "e164": "+14155551234", "workspace": "production", "route": route }),
        )
        .await;
        assert_eq!(
            (status, error["code"].clone()),
            (400, json!(code)),
            "{error}"
        );
    }
    let (status, _) = app.get_json("/api/numbers/+14155551234").await;
    assert_eq!(status, 404, "nothing was created");
}

#[actix_web::test]
async fn a_changed_route_takes_effect_on_the_next_call() {
    let app = spawn_app().await;
    let agent = app.create_agent("Ada", "production").await;
    let mut phone = app.available_softphone(&agent).await;
    app.create_number(
        "+14155551234",
        "production",
        json!({ "kind": "agents", "agent_ids": [] }),
    )
    .await;
    let first = app.ring_in("+14155559876", "+14155551234").await;
    let _t1 = app.open_stream(&first).await;
    phone.expect_ring(&first.call_id).await;

    let (status, body) = post(
        &app,
        "/api/numbers",
        json!({ "e164": "+14155551234", "workspace": "production", "route": { "kind": "voicemail" } }),
    )
    .await;
    assert_eq!(status, 200, "an existing number is updated: {body}");
    let second = app.ring_in("+14155559876", "+14155551234").await;
    let mut t2 = app.open_stream(&second).await;
    t2.wait_for("mark").await;
    let record = app
        .wait_for_call(&second.call_id, |c| c["status"] == "voicemail")
        .await;
    assert_eq!(record["agent_id"], Value::Null);
}

#[actix_web::test]
async fn unknown_calls_and_recordings_are_not_found() {
    let app = spawn_app().await;
    let (status, error) = app.get_json("/api/calls/nosuchcall").await;
    assert_eq!(
        (status.as_u16(), error["code"].clone()),
        (404, json!("not-found"))
    );
    let (status, _) = app
        .get("/api/calls/nosuchcall/recording", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(status, 404);
    let (status, _) = app.get_json("/api/calls/BAD%20ID").await;
    assert_eq!(status, 400);
}

#[actix_web::test]
async fn metrics_are_served_as_prometheus_text() {
    let app = spawn_app().await;
    let (status, body) = app.get("/metrics", None).await;
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("# TYPE switchboard_calls_started counter"),
        "{text}"
    );
    assert!(text.contains("switchboard_calls_active 0"));
}
