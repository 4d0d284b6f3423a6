//! The assistants admin API, `ai` routes on numbers, and what an AI call's record
//! shows: its transcript, summary, AI outcome and cost.

use actix_web::http::StatusCode;
use serde_json::{json, Value};
use switchboard::store::Store;
use switchboard_actors::journal::{now_ms, CallOpened, JournalEntry};
use switchboard_actors::{AssistantId, CallId, Workspace};

use crate::helpers::{spawn_app, TestApp, ADMIN_TOKEN};

/// A valid assistant of `workspace`.
fn assistant_body(workspace: &str) -> Value {
    json!({
        "name": "Front desk",
        "workspace": workspace,
        "instructions": "You book tables at Chez Nous. Get a name, a time and a party size.",
        "voice": "marin",
        "model": "gpt-realtime",
    })
}

/// `base` with `changes` merged in (a `null` change removes the field).
fn with(base: &Value, changes: Value) -> Value {
    let mut body = base.clone();
    if let (Some(body), Some(changes)) = (body.as_object_mut(), changes.as_object()) {
        for (key, value) in changes {
            if value.is_null() {
                body.remove(key);
            } else {
                body.insert(key.clone(), value.clone());
            }
        }
    }
    body
}

async fn post(app: &TestApp, path: &str, body: &Value) -> (u16, Value) {
    let (status, body) = app.post_json(path, body, Some(ADMIN_TOKEN)).await;
    (status.as_u16(), body)
}

async fn put(app: &TestApp, path: &str, body: &Value) -> (u16, Value) {
    let mut res = app
        .client
        .put(format!("{}{path}", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .send_json(body)
        .await
        .expect("PUT reaches the engine");
    let bytes = res.body().await.expect("body");
    (
        res.status().as_u16(),
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn delete(app: &TestApp, path: &str) -> (u16, Value) {
    let mut res = app
        .client
        .delete(format!("{}{path}", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("DELETE reaches the engine");
    let bytes = res.body().await.expect("body");
    (
        res.status().as_u16(),
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn create_assistant(app: &TestApp, body: &Value) -> String {
    let (status, created) = post(app, "/api/assistants", body).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().expect("id").to_owned()
}

async fn route_number(app: &TestApp, e164: &str, workspace: &str, route: Value) -> (u16, Value) {
    post(
        app,
        "/api/numbers",
        &json!({ "e164": e164, "workspace": workspace, "route": route }),
    )
    .await
}

#[actix_web::test]
async fn an_assistant_is_created_read_listed_replaced_and_deleted() {
    let app = spawn_app().await;
    let body = with(
        &assistant_body("production"),
        json!({
            "greeting": "Chez Nous, how can I help?",
            "tools": [
                { "type": "transfer_to_human" },
                { "type": "end_call" },
                { "type": "webhook", "name": "check_availability",
                  "description": "Free tables at a time",
                  "parameters": { "type": "object", "properties": { "time": { "type": "string" } } },
                  "url": "https://bookings.example.com/availability" },
            ],
            "on_failure": { "kind": "voicemail" },
        }),
    );
    let (status, created) = post(&app, "/api/assistants", &body).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(created["name"], "Front desk");
    assert_eq!(created["workspace"], "production");
    assert_eq!(created["voice"], "marin");
    assert_eq!(created["model"], "gpt-realtime");
    assert_eq!(created["greeting"], "Chez Nous, how can I help?");
    assert_eq!(created["on_failure"], json!({ "kind": "voicemail" }));
    assert_eq!(created["tools"][0], json!({ "type": "transfer_to_human" }));
    assert_eq!(
        created["tools"][2]["timeout_ms"], 5000,
        "a webhook waits 5 s unless told otherwise"
    );
    assert!(created["created_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));

    let (status, one) = app.get_json(&format!("/api/assistants/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(one, created);
    let (status, all) = app.get_json("/api/assistants").await;
    assert_eq!(status, 200);
    assert_eq!(all, json!([created.clone()]));

    // A PUT replaces every field: what it leaves out goes back to its default.
    let replacement = with(
        &assistant_body("production"),
        json!({ "name": "Night desk", "voice": "cedar", "model": "gpt-realtime-mini" }),
    );
    let (status, replaced) = put(&app, &format!("/api/assistants/{id}"), &replacement).await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["id"], id.as_str());
    assert_eq!(replaced["name"], "Night desk");
    assert_eq!(replaced["voice"], "cedar");
    assert_eq!(replaced["model"], "gpt-realtime-mini");
    assert_eq!(replaced["greeting"], Value::Null);
    assert_eq!(replaced["tools"], json!([]));
    assert_eq!(
        replaced["on_failure"],
        json!({ "kind": "agents", "agent_ids": [] })
    );
    assert_eq!(replaced["created_at"], created["created_at"]);
    let (_, read_back) = app.get_json(&format!("/api/assistants/{id}")).await;
    assert_eq!(read_back, replaced);

    let (status, _) = delete(&app, &format!("/api/assistants/{id}")).await;
    assert_eq!(status, 204);
    let (status, error) = app.get_json(&format!("/api/assistants/{id}")).await;
    assert_eq!(
        (status.as_u16(), error["code"].clone()),
        (404, json!("not-found"))
    );
    let (status, _) = delete(&app, &format!("/api/assistants/{id}")).await;
    assert_eq!(status, 404);
    let (status, _) = put(&app, &format!("/api/assistants/{id}"), &replacement).await;
    assert_eq!(status, 404);
    let (_, all) = app.get_json("/api/assistants").await;
    assert_eq!(all, json!([]));
}

#[actix_web::test]
async fn bad_assistants_are_refused_with_the_field_named_and_nothing_is_stored() {
    let app = spawn_app().await;
    let base = assistant_body("production");
    let webhook = json!({ "type": "webhook", "name": "lookup", "description": "Looks up an order",
                          "parameters": { "type": "object" }, "url": "https://example.com/hook" });
    let cases = [
        (json!({ "name": "" }), "name"),
        (json!({ "name": "x".repeat(101) }), "name"),
        (json!({ "workspace": "Prod Uction" }), "workspace"),
        (json!({ "workspace": null }), "workspace"),
        (json!({ "instructions": "   " }), "instructions"),
        (
            json!({ "instructions": "x".repeat(20_001) }),
            "instructions",
        ),
        (json!({ "voice": "fable" }), "voice"),
        (json!({ "model": "" }), "model"),
        (json!({ "model": "gpt realtime" }), "model"),
        (json!({ "greeting": "x".repeat(1_001) }), "greeting"),
        (json!({ "temperature": 0.8 }), "temperature"),
        (
            json!({ "tools": [{ "type": "launch_rockets" }] }),
            "tools[0]",
        ),
        (
            json!({ "tools": [{ "type": "end_call", "when": "now" }] }),
            "tools[0]",
        ),
        (
            json!({ "tools": [{ "type": "end_call" }, { "type": "end_call" }] }),
            "tools[1]",
        ),
        (
            json!({ "tools": [with(&webhook, json!({ "name": "end_call" }))] }),
            "tools[0].name",
        ),
        (
            json!({ "tools": [with(&webhook, json!({ "name": "white space" }))] }),
            "tools[0].name",
        ),
        (
            json!({ "tools": [webhook.clone(), webhook.clone()] }),
            "tools[1]",
        ),
        (
            json!({ "tools": [with(&webhook, json!({ "url": "file:///etc/passwd" }))] }),
            "tools[0].url",
        ),
        (
            json!({ "tools": [with(&webhook, json!({ "parameters": { "type": "array" } }))] }),
            "tools[0].parameters",
        ),
        (
            json!({ "tools": [with(&webhook, json!({ "timeout_ms": 30_001 }))] }),
            "tools[0].timeout_ms",
        ),
        (
            json!({ "on_failure": { "kind": "ai", "assistant_id": "x" } }),
            "on_failure",
        ),
        (json!({ "on_failure": { "kind": "pigeon" } }), "on_failure"),
    ];
    for (changes, field) in cases {
        let body = with(&base, changes.clone());
        let (status, error) = post(&app, "/api/assistants", &body).await;
        assert_eq!(status, 400, "{changes} → {error}");
        assert!(
            error["code"] == "bad-field" || error["code"] == "bad-json",
            "{error}"
        );
        assert!(
            error["message"]
                .as_str()
                .unwrap_or_default()
                .contains(field),
            "{changes}: the message names {field}: {error}"
        );
    }
    let (_, all) = app.get_json("/api/assistants").await;
    assert_eq!(all, json!([]), "nothing was stored");

    // A refused replacement leaves the assistant as it was.
    let id = create_assistant(&app, &base).await;
    let (_, before) = app.get_json(&format!("/api/assistants/{id}")).await;
    let (status, _) = put(
        &app,
        &format!("/api/assistants/{id}"),
        &with(&base, json!({ "name": "Renamed", "voice": "robot" })),
    )
    .await;
    assert_eq!(status, 400);
    let (_, after) = app.get_json(&format!("/api/assistants/{id}")).await;
    assert_eq!(before, after);
    let (status, _) = app.get_json("/api/assistants/Not%20An%20Id").await;
    assert_eq!(status, 400);
}

#[actix_web::test]
async fn a_failure_route_rings_agents_of_the_assistants_workspace_or_goes_to_voicemail() {
    let app = spawn_app().await;
    let ada = app.create_agent("Ada", "production").await;
    let bob = app.create_agent("Bob", "staging").await;
    let base = assistant_body("production");
    for (on_failure, code) in [
        (
            json!({ "kind": "agents", "agent_ids": ["nosuchagent"] }),
            "unknown-agent",
        ),
        (
            json!({ "kind": "agents", "agent_ids": [bob.id] }),
            "wrong-workspace",
        ),
    ] {
        let (status, error) = post(
            &app,
            "/api/assistants",
            &with(&base, json!({ "on_failure": on_failure })),
        )
        .await;
        assert_eq!(
            (status, error["code"].clone()),
            (400, json!(code)),
            "{error}"
        );
        assert!(error["message"]
            .as_str()
            .is_some_and(|m| m.contains("on_failure")));
    }
    let (status, created) = post(
        &app,
        "/api/assistants",
        &with(
            &base,
            json!({ "on_failure": { "kind": "agents", "agent_ids": [ada.id] } }),
        ),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["on_failure"],
        json!({ "kind": "agents", "agent_ids": [ada.id] })
    );
}

#[actix_web::test]
async fn a_number_routes_only_to_an_existing_assistant_of_its_own_workspace() {
    let app = spawn_app().await;
    let staging = create_assistant(&app, &assistant_body("staging")).await;
    let production = create_assistant(&app, &assistant_body("production")).await;
    for (route, code) in [
        (
            json!({ "kind": "ai", "assistant_id": "nosuchassistant" }),
            "unknown-assistant",
        ),
        (
            json!({ "kind": "ai", "assistant_id": "Not An Id" }),
            "unknown-assistant",
        ),
        (json!({ "kind": "ai" }), "bad-field"),
        (
            json!({ "kind": "ai", "assistant_id": staging }),
            "wrong-workspace",
        ),
    ] {
        let (status, error) = route_number(&app, "+14155551234", "production", route).await;
        assert_eq!(
            (status, error["code"].clone()),
            (400, json!(code)),
            "{error}"
        );
    }
    let (status, _) = app.get_json("/api/numbers/+14155551234").await;
    assert_eq!(status, 404, "nothing was created");

    let route = json!({ "kind": "ai", "assistant_id": production });
    let (status, number) = route_number(&app, "+14155551234", "production", route.clone()).await;
    assert_eq!(status, 201, "{number}");
    assert_eq!(number["route"], route);
    // ...and back to the agents, and to the assistant again: no restart involved.
    let agents = json!({ "kind": "agents", "agent_ids": [] });
    let (status, number) = route_number(&app, "+14155551234", "production", agents.clone()).await;
    assert_eq!((status, number["route"].clone()), (200, agents));
    let (status, number) = route_number(&app, "+14155551234", "production", route.clone()).await;
    assert_eq!((status, number["route"].clone()), (200, route));
}

#[actix_web::test]
async fn an_assistant_a_number_routes_to_is_neither_deleted_nor_moved_to_another_workspace() {
    let app = spawn_app().await;
    let id = create_assistant(&app, &assistant_body("production")).await;
    let (status, _) = route_number(
        &app,
        "+14155551234",
        "production",
        json!({ "kind": "ai", "assistant_id": id }),
    )
    .await;
    assert_eq!(status, 201);

    let (status, error) = delete(&app, &format!("/api/assistants/{id}")).await;
    assert_eq!(
        (status, error["code"].clone()),
        (409, json!("assistant-in-use")),
        "{error}"
    );
    assert!(error["message"]
        .as_str()
        .is_some_and(|m| m.contains("+14155551234")));
    let (status, error) = put(
        &app,
        &format!("/api/assistants/{id}"),
        &assistant_body("staging"),
    )
    .await;
    assert_eq!(
        (status, error["code"].clone()),
        (400, json!("wrong-workspace")),
        "{error}"
    );
    let (_, still) = app.get_json(&format!("/api/assistants/{id}")).await;
    assert_eq!(still["workspace"], "production");
    // Within its workspace it can still change.
    let (status, _) = put(
        &app,
        &format!("/api/assistants/{id}"),
        &with(&assistant_body("production"), json!({ "voice": "sage" })),
    )
    .await;
    assert_eq!(status, 200);

    let (status, _) = route_number(
        &app,
        "+14155551234",
        "production",
        json!({ "kind": "voicemail" }),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = delete(&app, &format!("/api/assistants/{id}")).await;
    assert_eq!(status, 204, "no number routes to it any more");
}

#[actix_web::test]
async fn the_assistants_api_wants_the_admin_token() {
    let app = spawn_app().await;
    let (status, error) = app
        .post_json("/api/assistants", &assistant_body("production"), None)
        .await;
    assert_eq!(
        (status.as_u16(), error["code"].clone()),
        (401, json!("unauthorized"))
    );
    let (status, _) = app.get("/api/assistants", Some("wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app.get("/api/calls/abc/transcript", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, all) = app.get_json("/api/assistants").await;
    assert_eq!(all, json!([]));
}

#[actix_web::test]
async fn an_ai_calls_transcript_summary_outcome_and_cost_are_served() {
    let app = spawn_app().await;
    let assistant = create_assistant(&app, &assistant_body("production")).await;
    // The call's record as the engine's journal writes it.
    let store = Store::connect(&app.database_url, "test-writer")
        .await
        .expect("the app's database");
    let call = CallId::new();
    let started_at = now_ms();
    let turn = |seq: i64, role: &'static str, text: &str| JournalEntry::Turn {
        call_id: call.clone(),
        seq,
        at: started_at + seq * 1_000,
        role,
        text: text.to_owned(),
    };
    let cost = json!({ "currency": "USD", "telephony": { "legs": [], "amount": 0.017 },
                       "realtime": { "models": [], "amount": 0.05 }, "summary": null,
                       "total": 0.067 });
    store
        .apply(&[
            JournalEntry::Opened(CallOpened {
                id: call.clone(),
                call_sid: Some("CA-ai".into()),
                from: "+14155559876".into(),
                to: "+14155551234".into(),
                workspace: Some(Workspace::parse("production").expect("workspace")),
                direction: "inbound",
                started_at,
            }),
            JournalEntry::Assistant {
                call_id: call.clone(),
                assistant_id: AssistantId::parse(&assistant).expect("the created id"),
            },
            // Turns may be written out of order (transcription is asynchronous).
            turn(2, "caller", "A table for two at eight, please."),
            turn(1, "assistant", "Chez Nous, how can I help?"),
            turn(3, "assistant", "Booked. See you at eight!"),
            JournalEntry::AiResult {
                call_id: call.clone(),
                summary: Some("Booked a table for two at 8 pm.".into()),
                ai_outcome: Some("goal_achieved".into()),
                cost: cost.clone(),
            },
        ])
        .await
        .expect("the call's record");
    store.close().await;

    let (status, transcript) = app.get_json(&format!("/api/calls/{call}/transcript")).await;
    assert_eq!(status, 200, "{transcript}");
    assert_eq!(transcript["call_id"], call.as_str());
    let turns = transcript["turns"].as_array().expect("turns");
    assert_eq!(
        turns
            .iter()
            .map(|t| (t["seq"].as_i64(), t["role"].as_str(), t["text"].as_str()))
            .collect::<Vec<_>>(),
        [
            (
                Some(1),
                Some("assistant"),
                Some("Chez Nous, how can I help?")
            ),
            (
                Some(2),
                Some("caller"),
                Some("A table for two at eight, please.")
            ),
            (
                Some(3),
                Some("assistant"),
                Some("Booked. See you at eight!")
            ),
        ]
    );
    let at = turns[0]["at"].as_str().expect("at");
    assert!(
        at.ends_with('Z') && at.contains('T'),
        "RFC 3339 like the other timestamps: {at}"
    );

    let record = app.call(call.as_str()).await;
    assert_eq!(record["assistant_id"], assistant.as_str());
    assert_eq!(record["summary"], "Booked a table for two at 8 pm.");
    assert_eq!(record["ai_outcome"], "goal_achieved");
    assert_eq!(record["cost"], cost);
}

#[actix_web::test]
async fn a_call_without_ai_has_an_empty_transcript_and_unknown_calls_have_none() {
    let app = spawn_app().await;
    let store = Store::connect(&app.database_url, "test-writer")
        .await
        .expect("the app's database");
    let call = CallId::new();
    let cost = json!({ "currency": "USD", "total": 0.0085 });
    store
        .apply(&[
            JournalEntry::Opened(CallOpened {
                id: call.clone(),
                call_sid: None,
                from: "+14155559876".into(),
                to: "+14155551234".into(),
                workspace: None,
                direction: "inbound",
                started_at: now_ms(),
            }),
            JournalEntry::Cost {
                call_id: call.clone(),
                cost: cost.clone(),
            },
        ])
        .await
        .expect("the call's record");
    store.close().await;

    let (status, transcript) = app.get_json(&format!("/api/calls/{call}/transcript")).await;
    assert_eq!(status, 200);
    assert_eq!(transcript, json!({ "call_id": call.as_str(), "turns": [] }));
    let record = app.call(call.as_str()).await;
    assert_eq!(record["cost"], cost);
    assert_eq!(
        (
            record["assistant_id"].clone(),
            record["summary"].clone(),
            record["ai_outcome"].clone()
        ),
        (Value::Null, Value::Null, Value::Null)
    );

    let (status, error) = app.get_json("/api/calls/nosuchcall/transcript").await;
    assert_eq!(
        (status.as_u16(), error["code"].clone()),
        (404, json!("not-found"))
    );
    let (status, _) = app.get_json("/api/calls/BAD%20ID/transcript").await;
    assert_eq!(status, 400);
}
