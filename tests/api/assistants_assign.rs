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
use crate::helpers::{spawn_app_with, TestApp, CALLER};
use crate::numbers_assign::{
    delete_returns_the_number, engine_on, entry_of, provider_refuses, record_fails, twenty_at_once,
    unassign_refused, without_a_number, Kind,
};

async fn create_assistant(app: &TestApp, name: &str, workspace: &str, assign: bool) -> Value {
    Kind::Assistant.create(app, name, workspace, assign).await
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
    without_a_number(Kind::Assistant).await;
}

#[actix_web::test]
async fn when_the_provider_refuses_the_assistant_is_created_without_a_number_and_told_why() {
    provider_refuses(Kind::Assistant).await;
}

#[actix_web::test]
async fn when_recording_fails_after_the_provider_accepted_the_provider_assignment_is_undone() {
    record_fails(Kind::Assistant).await;
}

#[actix_web::test]
async fn twenty_assistants_created_at_once_get_twenty_different_numbers() {
    twenty_at_once(TestDb::Sqlite, Kind::Assistant).await;
}

#[actix_web::test]
async fn twenty_assistants_created_at_once_get_twenty_different_numbers_on_postgres() {
    twenty_at_once(TestDb::Postgres, Kind::Assistant).await;
}

#[actix_web::test]
async fn deleting_an_assistant_unassigns_its_number_at_the_provider_and_returns_it_to_the_pool() {
    delete_returns_the_number(TestDb::Sqlite, Kind::Assistant).await;
}

#[actix_web::test]
async fn deleting_an_assistant_returns_its_number_to_the_pool_on_postgres() {
    delete_returns_the_number(TestDb::Postgres, Kind::Assistant).await;
}

#[actix_web::test]
async fn when_the_provider_refuses_to_unassign_the_assistant_and_its_number_stay() {
    unassign_refused(Kind::Assistant).await;
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
            Kind::Assistant.body("Front desk", "production", true),
            "number-immutable",
        ),
        (
            Kind::Assistant.body("Front desk", "staging", false),
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
            Some(&Kind::Assistant.body("Front desk 2", "production", false)),
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

#[actix_web::test]
async fn an_assistant_without_a_number_is_given_one_later_once_and_told_why_when_none_is_left() {
    let fake = FakeProvider::start().await;
    fake.add_vapi("vapi-1", "+18005550100", "Support");
    let app = engine_on(TestDb::Sqlite, &fake, &[("vapi", "production")]).await;
    let first = create_assistant(&app, "Front desk", "production", false).await;
    let second = create_assistant(&app, "Night line", "production", false).await;
    assert_eq!(first["number"], Value::Null);
    let path = |a: &Value| format!("/api/assistants/{}/number", id_of(a));
    // `POST /api/assistants/{id}/number` as the admin.
    let give = |a: &Value| {
        let path = path(a);
        let app = &app;
        async move {
            app.send_json_as(Method::POST, &path, None, Some(crate::helpers::ADMIN_TOKEN))
                .await
        }
    };

    let (status, given) = give(&first).await;
    assert_eq!(status, 200, "{given}");
    assert_eq!(
        given["number"],
        json!({ "e164": "+18005550100", "national": "(800) 555-0100" })
    );
    let entries = app.directory("").await;
    let number = entry_of(&entries, "+18005550100");
    assert_eq!(
        number["assistant_id"].as_str(),
        Some(id_of(&first).as_str())
    );

    // Once: a second time is refused, nothing changes.
    let (status, again) = give(&first).await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["code"], "has-number");
    // The pool is empty now: the other assistant is told why and keeps none.
    let (status, none) = give(&second).await;
    assert_eq!(status, 409, "{none}");
    assert_eq!(none["code"], "number-not-assigned");
    let (_, read) = app
        .send_json_as(
            Method::GET,
            &format!("/api/assistants/{}", id_of(&second)),
            None,
            Some(crate::helpers::ADMIN_TOKEN),
        )
        .await;
    assert_eq!(read["number"], Value::Null, "{read}");
    let (status, _) = app
        .send_json_as(
            Method::POST,
            "/api/assistants/no-such-assistant/number",
            None,
            Some(crate::helpers::ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .send_json_as(Method::POST, &path(&second), None, None)
        .await;
    assert_eq!(status, 401);
}

/// Twenty `POST /api/assistants/{id}/number` for one assistant at once, with
/// numbers to spare: one takes a number, every other is refused, and the
/// assistant holds exactly one, assigned once at the provider.
async fn twenty_requests_for_one_assistant_give_it_one_number(db: TestDb) {
    let fake = FakeProvider::start().await;
    for i in 0..25 {
        fake.add_vapi(
            &format!("vapi-{i:02}"),
            &format!("+1415555{:04}", 300 + i),
            "",
        );
    }
    let app = engine_on(db, &fake, &[("vapi", "production")]).await;
    let assistant = create_assistant(&app, "Front desk", "production", false).await;
    let path = format!("/api/assistants/{}/number", id_of(&assistant));
    let requests = (0..20).map(|_| {
        let (app, path) = (&app, &path);
        async move {
            app.send_json_as(Method::POST, path, None, Some(crate::helpers::ADMIN_TOKEN))
                .await
        }
    });
    let answers = futures_util::future::join_all(requests).await;
    let given: Vec<_> = answers.iter().filter(|(s, _)| *s == 200).collect();
    assert_eq!(given.len(), 1, "{answers:?}");
    for (status, refused) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 409, "{refused}");
        assert_eq!(refused["code"], "has-number", "{refused}");
    }
    let assigned = app.directory("?status=ASSIGNED").await;
    assert_eq!(assigned.len(), 1, "{assigned:?}");
    assert_eq!(
        assigned[0]["assistant_id"].as_str(),
        Some(id_of(&assistant).as_str())
    );
    assert_eq!(assigned[0]["e164"], given[0].1["number"]["e164"]);
    let patched = fake
        .requests()
        .iter()
        .filter(|r| r.starts_with("PATCH"))
        .count();
    assert_eq!(patched, 1, "one provider assignment");
    assert_eq!(app.directory("?status=AVAILABLE").await.len(), 24);
}

#[actix_web::test]
async fn twenty_requests_for_one_assistant_at_once_give_it_one_number() {
    twenty_requests_for_one_assistant_give_it_one_number(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn twenty_requests_for_one_assistant_at_once_give_it_one_number_on_postgres() {
    twenty_requests_for_one_assistant_give_it_one_number(TestDb::Postgres).await;
}
