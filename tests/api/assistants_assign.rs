//! Automatic assignment for AI assistants, as agents have it
//! (`numbers_assign.rs`): an assistant created with `assign_number` takes an
//! AVAILABLE number of its workspace, assigned at the provider and recorded with
//! the assistant as its route, so the number's calls reach the assistant;
//! refusals and failures leave no half-done assignment; deleting the assistant
//! gives its number back.

use std::time::Duration;

use actix_web::http::Method;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::db::TestDb;
use crate::fake_providers::{account, FakeProvider};
use crate::fakes::openai::{FakeOpenAi, Reply, Script};
use crate::helpers::{spawn_app_with, TestApp, ADMIN_TOKEN, CALLER};
use crate::numbers_assign::{engine_on, entry_of, twenty_at_once};

fn assistant_body(name: &str, workspace: &str, assign: bool) -> Value {
    json!({
        "name": name,
        "workspace": workspace,
        "instructions": "You book tables at Chez Nous. Get a name, a time and a party size.",
        "voice": "marin",
        "model": "gpt-realtime",
        "assign_number": assign,
    })
}

async fn create_assistant(app: &TestApp, name: &str, workspace: &str, assign: bool) -> Value {
    let (status, body) = app
        .post_json(
            "/api/assistants",
            &assistant_body(name, workspace, assign),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body
}

fn id_of(assistant: &Value) -> String {
    assistant["id"]
        .as_str()
        .expect("an assistant id")
        .to_owned()
}

#[actix_web::test]
async fn an_assistant_created_with_assign_number_gets_a_number_that_routes_to_it() {
    let fake = FakeProvider::start().await;
    fake.add_vapi("vapi-1", "+18005550100", "Support");
    let app = engine_on(TestDb::Sqlite, &fake, &[("vapi", "production")]).await;

    let assistant = create_assistant(&app, "Front desk", "production", true).await;
    assert_eq!(
        assistant["number"],
        json!({ "e164": "+18005550100", "national": "(800) 555-0100" }),
        "{assistant}"
    );
    assert_eq!(assistant["warnings"], json!([]));
    let id = id_of(&assistant);
    assert!(fake.requests().contains(&format!(
        "PATCH /phone-number/vapi-1 {{\"assistantId\":\"{id}\"}}"
    )));
    let entries = app.directory("").await;
    let number = entry_of(&entries, "+18005550100");
    assert_eq!(
        (
            number["status"].as_str(),
            number["assistant_id"].as_str(),
            &number["agent_id"]
        ),
        (Some("ASSIGNED"), Some(id.as_str()), &Value::Null)
    );
    assert_eq!(number["route"], json!({ "kind": "ai", "assistant_id": id }));
    let (_, live) = app.get_json("/api/numbers/+18005550100").await;
    assert_eq!(live["route"], json!({ "kind": "ai", "assistant_id": id }));
    let (_, again) = app.sync_numbers(json!({})).await;
    assert_eq!(
        (
            again["added"].clone(),
            again["updated"].clone(),
            again["released"].clone()
        ),
        (json!(0), json!(0), json!(0)),
        "{again}"
    );
    let (_, validation) = app.get_json("/api/directory/validate").await;
    assert_eq!(validation["errors"], json!([]), "{validation}");

    let (status, read) = app.get_json(&format!("/api/assistants/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(read["number"]["e164"], "+18005550100");
    let (_, listed) = app.get_json("/api/assistants").await;
    assert_eq!(listed[0]["number"]["national"], "(800) 555-0100");

    let plain = create_assistant(&app, "Back office", "production", false).await;
    assert_eq!(plain["number"], Value::Null, "{plain}");
    assert!(plain.get("warnings").is_none(), "{plain}");
}

#[actix_web::test]
async fn a_call_to_an_assistants_assigned_number_is_taken_by_the_assistant() {
    let provider = FakeProvider::start().await;
    provider.add_vapi("vapi-1", "+18005550100", "Support");
    let openai = FakeOpenAi::start(Script::new().greeting(Reply::say("Hello.", 200, 0x11))).await;
    let (url, key) = (openai.url(), openai.api_key().to_owned());
    let accounts = vec![account(&provider, "vapi", "production")];
    let app = spawn_app_with(TestDb::Sqlite, move |s| {
        s.numbers.accounts = accounts;
        s.numbers.request_timeout = Duration::from_secs_f64(2.0);
        s.openai.realtime_url = url.parse().expect("the fake's URL");
        s.openai.api_key = Some(SecretString::from(key));
    })
    .await;
    let (status, body) = app.sync_numbers(json!({})).await;
    assert_eq!(status, 200, "{body}");
    let assistant = create_assistant(&app, "Front desk", "production", true).await;
    let id = id_of(&assistant);

    let call = app.ring_in(CALLER, "+18005550100").await;
    let _twilio = app.open_stream(&call).await;
    let record = app
        .wait_for_call(&call.call_id, |c| c["status"] == "assistant")
        .await;
    assert_eq!(record["assistant_id"], id, "{record}");
    assert_eq!(openai.sessions(), 1);
}

#[actix_web::test]
async fn without_an_available_number_the_assistant_is_still_created_with_a_warning() {
    let fake = FakeProvider::start().await;
    fake.add_vapi("vapi-1", "+18005550100", "Support");
    let app = engine_on(TestDb::Sqlite, &fake, &[("vapi", "production")]).await;
    let staging = create_assistant(&app, "Front desk", "staging", true).await;
    assert_eq!(staging["number"], Value::Null);
    assert_eq!(
        staging["warnings"],
        json!(["no number was assigned: workspace staging has no AVAILABLE number"])
    );
    let (status, read) = app
        .get_json(&format!("/api/assistants/{}", id_of(&staging)))
        .await;
    assert_eq!((status.as_u16(), &read["number"]), (200, &Value::Null));
    assert!(
        !fake.requests().iter().any(|r| r.starts_with("PATCH")),
        "no provider was asked"
    );
}

#[actix_web::test]
async fn when_the_provider_refuses_the_assistant_is_created_without_a_number_and_told_why() {
    let fake = FakeProvider::start().await;
    fake.add_retell("+16285550100", "Front desk");
    let app = engine_on(TestDb::Sqlite, &fake, &[("retell", "production")]).await;
    fake.state().refuse_updates = true;

    let assistant = create_assistant(&app, "Front desk", "production", true).await;
    assert_eq!(assistant["number"], Value::Null);
    assert_eq!(
        assistant["warnings"],
        json!([
            "no number was assigned: retell (production) refused +16285550100: \
                retell (production) refused: HTTP 400: agent not found"
        ])
    );
    let entries = app.directory("").await;
    let number = entry_of(&entries, "+16285550100");
    assert_eq!(
        (number["status"].as_str(), &number["assistant_id"]),
        (Some("AVAILABLE"), &Value::Null)
    );
    let (status, _) = app.get_json("/api/numbers/+16285550100").await;
    assert_eq!(status, 404, "no live route was recorded");
}

#[actix_web::test]
async fn when_recording_fails_after_the_provider_accepted_the_provider_assignment_is_undone() {
    // The number is live in production; its staging twin may not re-route it: the
    // store refuses the record after Twilio accepted.
    let fake = FakeProvider::start().await;
    fake.add_twilio(
        1,
        "+14155550123",
        "twin",
        "https://other-platform.example/voice",
    );
    let app = engine_on(TestDb::Sqlite, &fake, &[("twilio", "staging")]).await;
    app.create_number("+14155550123", "production", json!({ "kind": "voicemail" }))
        .await;

    let assistant = create_assistant(&app, "Stagey", "staging", true).await;
    assert_eq!(assistant["number"], Value::Null, "{assistant}");
    let warning = assistant["warnings"][0].as_str().unwrap_or_default();
    assert!(
        warning
            .contains("recording +14155550123 failed (+14155550123 is live in another workspace)"),
        "{warning}"
    );
    assert!(
        warning.contains("the assignment at the provider was undone"),
        "{warning}"
    );
    assert_eq!(
        fake.state().twilio[0]["voice_url"],
        "https://other-platform.example/voice",
        "Twilio points where it did before"
    );
    let entries = app.directory("?workspace=staging").await;
    assert_eq!(
        (entries[0]["status"].as_str(), &entries[0]["assistant_id"]),
        (Some("AVAILABLE"), &Value::Null),
        "the claim was given back"
    );
    let (_, live) = app.get_json("/api/numbers/+14155550123").await;
    assert_eq!(
        (live["workspace"].as_str(), &live["route"]),
        (Some("production"), &json!({ "kind": "voicemail" }))
    );
}

fn assistant_at(i: usize) -> Value {
    assistant_body(&format!("assistant {i}"), "production", true)
}

fn assistant_number(assistant: &Value) -> Option<&str> {
    assistant["number"]["e164"].as_str()
}

#[actix_web::test]
async fn twenty_assistants_created_at_once_get_twenty_different_numbers() {
    twenty_at_once(
        TestDb::Sqlite,
        "/api/assistants",
        assistant_at,
        assistant_number,
    )
    .await;
}

#[actix_web::test]
async fn twenty_assistants_created_at_once_get_twenty_different_numbers_on_postgres() {
    twenty_at_once(
        TestDb::Postgres,
        "/api/assistants",
        assistant_at,
        assistant_number,
    )
    .await;
}

async fn delete_returns_the_number(db: TestDb) {
    let fake = FakeProvider::start().await;
    fake.add_retell("+16285550100", "Front desk");
    let app = engine_on(db, &fake, &[("retell", "production")]).await;
    let assistant = create_assistant(&app, "Front desk", "production", true).await;
    let id = id_of(&assistant);
    assert_eq!(
        fake.state().retell[0]["inbound_agents"],
        json!([{ "agent_id": id, "weight": 1.0 }])
    );

    let (status, body) = app
        .send_json(Method::DELETE, &format!("/api/assistants/{id}"), None)
        .await;
    assert_eq!(status, 204, "{body}");
    assert!(fake.requests().contains(
        &"PATCH /update-phone-number/%2B16285550100 {\"inbound_agents\":null,\"outbound_agents\":null}"
            .to_owned()
    ));
    assert_eq!(fake.state().retell[0]["inbound_agents"], Value::Null);
    let entries = app.directory("").await;
    assert_eq!(
        (entries[0]["status"].as_str(), &entries[0]["assistant_id"]),
        (Some("AVAILABLE"), &Value::Null)
    );
    let (_, live) = app.get_json("/api/numbers/+16285550100").await;
    assert_eq!(
        live["route"],
        json!({ "kind": "voicemail" }),
        "no call goes to a deleted assistant"
    );
    let (status, _) = app.get_json(&format!("/api/assistants/{id}")).await;
    assert_eq!(status, 404);
    let (_, again) = app.sync_numbers(json!({})).await;
    assert_eq!(again["updated"], 0, "{again}");
    let next = create_assistant(&app, "Night desk", "production", true).await;
    assert_eq!(
        next["number"]["e164"], "+16285550100",
        "the number is back in the pool"
    );
}

#[actix_web::test]
async fn deleting_an_assistant_unassigns_its_number_at_the_provider_and_returns_it_to_the_pool() {
    delete_returns_the_number(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn deleting_an_assistant_returns_its_number_to_the_pool_on_postgres() {
    delete_returns_the_number(TestDb::Postgres).await;
}

#[actix_web::test]
async fn when_the_provider_refuses_to_unassign_the_assistant_and_its_number_stay() {
    let fake = FakeProvider::start().await;
    fake.add_vapi("vapi-1", "+18005550100", "Support");
    let app = engine_on(TestDb::Sqlite, &fake, &[("vapi", "production")]).await;
    let id = id_of(&create_assistant(&app, "Front desk", "production", true).await);
    fake.state().refuse_updates = true;
    let (status, body) = app
        .send_json(Method::DELETE, &format!("/api/assistants/{id}"), None)
        .await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (502, Some("provider-failed")),
        "{body}"
    );
    let (status, read) = app.get_json(&format!("/api/assistants/{id}")).await;
    assert_eq!(
        (status.as_u16(), &read["number"]["e164"]),
        (200, &json!("+18005550100"))
    );
    assert_eq!(app.directory("").await[0]["status"], "ASSIGNED");
}

#[actix_web::test]
async fn an_assistant_another_number_is_routed_to_by_hand_keeps_its_own_number_and_is_not_deleted()
{
    let fake = FakeProvider::start().await;
    fake.add_vapi("vapi-1", "+18005550100", "Support");
    let app = engine_on(TestDb::Sqlite, &fake, &[("vapi", "production")]).await;
    let id = id_of(&create_assistant(&app, "Front desk", "production", true).await);
    app.create_number(
        "+14155551234",
        "production",
        json!({ "kind": "ai", "assistant_id": id }),
    )
    .await;

    let (status, error) = app
        .send_json(Method::DELETE, &format!("/api/assistants/{id}"), None)
        .await;
    assert_eq!(
        (status.as_u16(), error["code"].as_str()),
        (409, Some("assistant-in-use")),
        "{error}"
    );
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("+14155551234")),
        "{error}"
    );
    assert_eq!(
        app.directory("").await[0]["assistant_id"],
        json!(id),
        "nothing was released"
    );
    assert!(
        !fake
            .requests()
            .iter()
            .any(|r| r.contains("assistantId\":null")),
        "the provider was not asked"
    );
}

#[actix_web::test]
async fn replacing_an_assistant_never_changes_its_number_nor_moves_it_to_another_workspace() {
    let fake = FakeProvider::start().await;
    fake.add_vapi("vapi-1", "+18005550100", "Support");
    let app = engine_on(TestDb::Sqlite, &fake, &[("vapi", "production")]).await;
    let id = id_of(&create_assistant(&app, "Front desk", "production", true).await);
    let path = format!("/api/assistants/{id}");
    for (body, code) in [
        (
            assistant_body("Front desk", "production", true),
            "number-immutable",
        ),
        (
            assistant_body("Front desk", "staging", false),
            "wrong-workspace",
        ),
    ] {
        let (status, error) = app.send_json(Method::PUT, &path, Some(&body)).await;
        assert_eq!(
            (status.as_u16(), error["code"].as_str()),
            (400, Some(code)),
            "{body} → {error}"
        );
    }
    let (status, replaced) = app
        .send_json(
            Method::PUT,
            &path,
            Some(&assistant_body("Front desk 2", "production", false)),
        )
        .await;
    assert_eq!(
        (
            status.as_u16(),
            replaced["name"].as_str(),
            replaced["number"]["e164"].as_str()
        ),
        (200, Some("Front desk 2"), Some("+18005550100")),
        "{replaced}"
    );
    assert_eq!(app.directory("?status=ASSIGNED").await.len(), 1);
}
