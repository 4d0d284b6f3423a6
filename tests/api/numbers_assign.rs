//! Automatic assignment: an agent created with `assign_number` takes an AVAILABLE
//! number of its workspace, assigned at the provider and recorded as its route;
//! refusals and failures leave no half-done assignment; deleting an agent gives
//! its number back; an agent's number never changes through the API.

use actix_web::http::Method;
use serde_json::{json, Value};
use std::time::Duration;

use crate::db::TestDb;
use crate::fake_providers::{account, FakeProvider};
use crate::helpers::{spawn_app_with, TestApp, ADMIN_TOKEN, CALLER};

/// An engine with these provider accounts (provider, workspace), its pool synced.
pub(crate) async fn engine_on(
    db: TestDb,
    fake: &FakeProvider,
    accounts: &[(&str, &str)],
) -> TestApp {
    let accounts_empty = accounts.is_empty();
    let accounts = accounts.iter().map(|(p, w)| account(fake, p, w)).collect();
    let app = spawn_app_with(db, move |s| {
        s.numbers.accounts = accounts;
        s.numbers.request_timeout = Duration::from_secs_f64(2.0);
    })
    .await;
    if !accounts_empty {
        let (status, body) = app.sync_numbers(json!({})).await;
        assert_eq!(status, 200, "{body}");
    }
    app
}

async fn create_agent(app: &TestApp, name: &str, workspace: &str, assign: bool) -> Value {
    Kind::Agent.create(app, name, workspace, assign).await
}

/// What a shared scenario creates with `assign_number`: an agent, or an AI
/// assistant (`assistants_assign.rs`); the assignment is the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Agent,
    Assistant,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::Agent => "/api/agents",
            Kind::Assistant => "/api/assistants",
        }
    }

    /// The pool's and the directory's field naming the holder.
    pub(crate) fn holder_field(self) -> &'static str {
        match self {
            Kind::Agent => "agent_id",
            Kind::Assistant => "assistant_id",
        }
    }

    pub(crate) fn body(self, name: &str, workspace: &str, assign: bool) -> Value {
        match self {
            Kind::Agent => json!({ "name": name, "workspace": workspace, "assign_number": assign }),
            Kind::Assistant => json!({
                "name": name,
                "workspace": workspace,
                "instructions": "You book tables at Chez Nous. Get a name, a time and a party size.",
                "voice": "marin",
                "model": "gpt-realtime",
                "assign_number": assign,
            }),
        }
    }

    pub(crate) async fn create(
        self,
        app: &TestApp,
        name: &str,
        workspace: &str,
        assign: bool,
    ) -> Value {
        let (status, body) = app
            .post_json(
                self.path(),
                &self.body(name, workspace, assign),
                Some(ADMIN_TOKEN),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    /// The E.164 form of a created one's number (an agent shows it as is, an
    /// assistant with its national form).
    pub(crate) fn number(self, created: &Value) -> Option<&str> {
        match self {
            Kind::Agent => created["number"].as_str(),
            Kind::Assistant => created["number"]["e164"].as_str(),
        }
    }
}

pub(crate) fn entry_of<'a>(entries: &'a [Value], e164: &str) -> &'a Value {
    entries
        .iter()
        .find(|e| e["e164"] == e164)
        .unwrap_or_else(|| panic!("{e164} in {entries:?}"))
}

#[actix_web::test]
async fn an_agent_created_with_assign_number_gets_an_available_number_assigned_at_the_provider() {
    let fake = FakeProvider::start().await;
    fake.add_vapi("vapi-1", "+18005550100", "Support");
    let app = engine_on(TestDb::Sqlite, &fake, &[("vapi", "production")]).await;

    let agent = create_agent(&app, "Ada", "production", true).await;
    assert_eq!(agent["number"], "+18005550100", "{agent}");
    assert_eq!(agent["warnings"], json!([]));
    let id = agent["id"].as_str().unwrap_or_default();
    assert!(fake.requests().contains(&format!(
        "PATCH /phone-number/vapi-1 {{\"assistantId\":\"{id}\"}}"
    )));
    let entries = app.directory("").await;
    let number = entry_of(&entries, "+18005550100");
    assert_eq!(
        (number["status"].as_str(), number["agent_id"].as_str()),
        (Some("ASSIGNED"), Some(id))
    );
    assert_eq!(number["agent_name"], "Ada");
    assert_eq!(
        number["route"],
        json!({ "kind": "agents", "agent_ids": [id] })
    );
    let (_, live) = app.get_json("/api/numbers/+18005550100").await;
    assert_eq!(
        live["route"]["agent_ids"],
        json!([id]),
        "the live route rings the agent"
    );
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

    let (_, theirs) = app.get_json(&format!("/api/directory/agents/{id}")).await;
    assert_eq!(theirs["numbers"][0]["e164"], "+18005550100");
}

#[actix_web::test]
async fn without_an_available_number_the_agent_is_still_created_with_a_warning() {
    without_a_number(Kind::Agent).await;
}

/// No AVAILABLE number: created all the same, with the reason, no provider asked.
pub(crate) async fn without_a_number(kind: Kind) {
    let fake = FakeProvider::start().await;
    fake.add_vapi("vapi-1", "+18005550100", "Support");
    let app = engine_on(TestDb::Sqlite, &fake, &[("vapi", "production")]).await;
    let staging = kind.create(&app, "Bob", "staging", true).await;
    assert_eq!(staging["number"], Value::Null);
    assert_eq!(
        staging["warnings"],
        json!(["no number was assigned: workspace staging has no AVAILABLE number"])
    );
    let (status, read) = app
        .get_json(&format!(
            "{}/{}",
            kind.path(),
            staging["id"].as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!(status, 200, "it exists: {read}");
    assert!(
        !fake.requests().iter().any(|r| r.starts_with("PATCH")),
        "no provider was asked"
    );
}

#[actix_web::test]
async fn when_the_provider_refuses_the_agent_is_created_without_a_number_and_told_why() {
    provider_refuses(Kind::Agent).await;
}

/// The provider refuses the assignment: created without a number, told why, the
/// claim given back.
pub(crate) async fn provider_refuses(kind: Kind) {
    let fake = FakeProvider::start().await;
    fake.add_retell("+16285550100", "Front desk");
    let app = engine_on(TestDb::Sqlite, &fake, &[("retell", "production")]).await;
    fake.state().refuse_updates = true;

    let agent = kind.create(&app, "Ada", "production", true).await;
    assert_eq!(agent["number"], Value::Null);
    assert_eq!(
        agent["warnings"],
        json!([
            "no number was assigned: retell (production) refused +16285550100: \
                retell (production) refused: HTTP 400: agent not found"
        ])
    );
    let entries = app.directory("").await;
    let number = entry_of(&entries, "+16285550100");
    assert_eq!(
        (number["status"].as_str(), &number[kind.holder_field()]),
        (Some("AVAILABLE"), &Value::Null)
    );
    let (status, _) = app.get_json("/api/numbers/+16285550100").await;
    assert_eq!(status, 404, "no live route was recorded");
}

#[actix_web::test]
async fn when_recording_fails_after_the_provider_accepted_the_provider_assignment_is_undone() {
    record_fails(Kind::Agent).await;
}

/// The number is live in production; its staging twin may not re-route it. The
/// record step fails for real (the store refuses), after Twilio accepted: Twilio
/// is put back as it was and the claim given back.
pub(crate) async fn record_fails(kind: Kind) {
    let fake = FakeProvider::start().await;
    let sid = fake.add_twilio(
        1,
        "+14155550123",
        "twin",
        "https://other-platform.example/voice",
    );
    let app = engine_on(TestDb::Sqlite, &fake, &[("twilio", "staging")]).await;
    app.create_number("+14155550123", "production", json!({ "kind": "voicemail" }))
        .await;

    let agent = kind.create(&app, "Stagey", "staging", true).await;
    assert_eq!(agent["number"], Value::Null, "{agent}");
    let warning = agent["warnings"][0].as_str().unwrap_or_default();
    assert!(
        warning
            .contains("recording +14155550123 failed (+14155550123 is live in another workspace)"),
        "{warning}"
    );
    assert!(
        warning.contains("the assignment at the provider was undone"),
        "{warning}"
    );
    let updates: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("POST"))
        .collect();
    assert_eq!(updates.len(), 2, "{updates:?}");
    assert!(
        updates[0].contains(&format!(
            "{sid}.json VoiceUrl=http%3A%2F%2F127.0.0.1%3A{}%2Ftwilio%2Fvoice",
            app.port
        )),
        "{updates:?}"
    );
    assert!(
        updates[1].ends_with(
            "VoiceUrl=https%3A%2F%2Fother-platform.example%2Fvoice&StatusCallback=\
             &VoiceMethod=POST&StatusCallbackMethod=POST"
        ),
        "{updates:?}"
    );
    assert_eq!(
        fake.state().twilio[0]["voice_url"],
        "https://other-platform.example/voice"
    );
    let entries = app.directory("?workspace=staging").await;
    assert_eq!(
        entries[0]["status"], "AVAILABLE",
        "the claim was given back"
    );
    let (_, live) = app.get_json("/api/numbers/+14155550123").await;
    assert_eq!(
        (live["workspace"].as_str(), &live["route"]),
        (Some("production"), &json!({ "kind": "voicemail" }))
    );
}

/// Twenty agents or assistants created at once with `assign_number` out of a pool
/// of 25 numbers: twenty different numbers, one provider assignment each, five left.
pub(crate) async fn twenty_at_once(db: TestDb, kind: Kind) {
    let fake = FakeProvider::start().await;
    for i in 0..25 {
        fake.add_vapi(
            &format!("vapi-{i:02}"),
            &format!("+1415555{:04}", 200 + i),
            "",
        );
    }
    let app = engine_on(db, &fake, &[("vapi", "production")]).await;
    let creations = (0..20).map(|i| {
        let app = &app;
        async move {
            kind.create(app, &format!("{kind:?} {i}"), "production", true)
                .await
        }
    });
    let created = futures_util::future::join_all(creations).await;
    let mut numbers: Vec<String> = created
        .iter()
        .map(|a| {
            kind.number(a)
                .unwrap_or_else(|| panic!("a number for {a}"))
                .to_owned()
        })
        .collect();
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers.len(), 20, "twenty different numbers: {numbers:?}");
    let assigned = app.directory("?status=ASSIGNED").await;
    assert_eq!(assigned.len(), 20);
    let patched = fake
        .requests()
        .iter()
        .filter(|r| r.starts_with("PATCH"))
        .count();
    assert_eq!(patched, 20, "one provider assignment each");
    assert_eq!(app.directory("?status=AVAILABLE").await.len(), 5);
}

#[actix_web::test]
async fn twenty_agents_created_at_once_get_twenty_different_numbers() {
    twenty_at_once(TestDb::Sqlite, Kind::Agent).await;
}

#[actix_web::test]
async fn twenty_agents_created_at_once_get_twenty_different_numbers_on_postgres() {
    twenty_at_once(TestDb::Postgres, Kind::Agent).await;
}

#[actix_web::test]
async fn deleting_an_agent_unassigns_its_number_at_the_provider_and_returns_it_to_the_pool() {
    delete_returns_the_number(TestDb::Sqlite, Kind::Agent).await;
}

/// Deleting it takes the number off it at the provider, back to the pool, the
/// number's calls to voicemail; the next one created gets the number.
pub(crate) async fn delete_returns_the_number(db: TestDb, kind: Kind) {
    let fake = FakeProvider::start().await;
    fake.add_retell("+16285550100", "Front desk");
    let app = engine_on(db, &fake, &[("retell", "production")]).await;
    let agent = kind.create(&app, "Ada", "production", true).await;
    let id = agent["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        fake.state().retell[0]["inbound_agents"],
        json!([{ "agent_id": id, "weight": 1.0 }])
    );

    let (status, body) = app
        .send_json(Method::DELETE, &format!("{}/{id}", kind.path()), None)
        .await;
    match kind {
        Kind::Agent => {
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["released_numbers"], json!(["+16285550100"]));
        }
        Kind::Assistant => assert_eq!(status, 204, "{body}"),
    }
    assert!(fake.requests().contains(
        &"PATCH /update-phone-number/%2B16285550100 {\"inbound_agents\":null,\"outbound_agents\":null}"
            .to_owned()
    ));
    assert_eq!(fake.state().retell[0]["inbound_agents"], Value::Null);
    let entries = app.directory("").await;
    assert_eq!(
        (
            entries[0]["status"].as_str(),
            &entries[0][kind.holder_field()]
        ),
        (Some("AVAILABLE"), &Value::Null)
    );
    let (_, live) = app.get_json("/api/numbers/+16285550100").await;
    assert_eq!(
        live["route"],
        json!({ "kind": "voicemail" }),
        "no call goes to a deleted {kind:?}"
    );
    let (status, _) = app.get_json(&format!("{}/{id}", kind.path())).await;
    assert_eq!(status, 404);
    let (_, again) = app.sync_numbers(json!({})).await;
    assert_eq!(again["updated"], 0, "{again}");
    let next = kind.create(&app, "Bea", "production", true).await;
    assert_eq!(
        kind.number(&next),
        Some("+16285550100"),
        "the number is back in the pool"
    );
}

#[actix_web::test]
async fn when_the_provider_refuses_to_unassign_the_agent_and_its_number_stay() {
    unassign_refused(Kind::Agent).await;
}

/// The provider refuses to take the number off it: 502, it and its number stay.
pub(crate) async fn unassign_refused(kind: Kind) {
    let fake = FakeProvider::start().await;
    fake.add_vapi("vapi-1", "+18005550100", "Support");
    let app = engine_on(TestDb::Sqlite, &fake, &[("vapi", "production")]).await;
    let agent = kind.create(&app, "Ada", "production", true).await;
    let id = agent["id"].as_str().unwrap_or_default();
    let path = format!("{}/{id}", kind.path());
    fake.state().refuse_updates = true;
    let (status, body) = app.send_json(Method::DELETE, &path, None).await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (502, Some("provider-failed")),
        "{body}"
    );
    let (status, _) = app.get_json(&path).await;
    assert_eq!(status, 200);
    assert_eq!(app.directory("").await[0]["status"], "ASSIGNED");
}

#[actix_web::test]
async fn changing_an_agent_never_changes_its_number() {
    let fake = FakeProvider::start().await;
    fake.add_vapi("vapi-1", "+18005550100", "Support");
    fake.add_vapi("vapi-2", "+18005550101", "Sales");
    let app = engine_on(TestDb::Sqlite, &fake, &[("vapi", "production")]).await;
    let agent = create_agent(&app, "Ada", "production", true).await;
    let path = format!("/api/agents/{}", agent["id"].as_str().unwrap_or_default());
    for (body, code) in [
        (json!({ "number": "+18005550101" }), "number-immutable"),
        (
            json!({ "name": "Ada", "e164": "+18005550101" }),
            "number-immutable",
        ),
        (json!({ "assign_number": true }), "number-immutable"),
        (json!({ "workspace": "staging" }), "workspace-immutable"),
    ] {
        let (status, error) = app.send_json(Method::PATCH, &path, Some(&body)).await;
        assert_eq!(
            (status.as_u16(), error["code"].as_str()),
            (400, Some(code)),
            "{body} → {error}"
        );
    }
    let (status, renamed) = app
        .send_json(Method::PATCH, &path, Some(&json!({ "name": "Ada L." })))
        .await;
    assert_eq!(
        (status.as_u16(), renamed["name"].as_str()),
        (200, Some("Ada L."))
    );
    let assigned = app.directory("?status=ASSIGNED").await;
    assert_eq!(assigned.len(), 1);
    assert_eq!(assigned[0]["e164"], agent["number"]);
    assert_eq!(assigned[0]["agent_name"], "Ada L.");
}

#[actix_web::test]
async fn an_assignment_to_an_agent_of_another_workspace_is_refused() {
    let fake = FakeProvider::start().await;
    fake.add_vapi("vapi-1", "+18005550100", "Support");
    let app = engine_on(TestDb::Sqlite, &fake, &[("vapi", "production")]).await;
    let staging = create_agent(&app, "Bob", "staging", false).await;
    let (status, error) = app
        .post_json(
            "/api/directory/assign",
            &json!({ "e164": "+18005550100", "workspace": "production", "agent_id": staging["id"] }),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(
        (status.as_u16(), error["code"].as_str()),
        (400, Some("wrong-workspace")),
        "{error}"
    );
    assert_eq!(app.directory("").await[0]["status"], "AVAILABLE");
    assert!(!fake.requests().iter().any(|r| r.starts_with("PATCH")));

    let prod = create_agent(&app, "Ada", "production", false).await;
    let (status, done) = app
        .post_json(
            "/api/directory/assign",
            &json!({ "e164": "+1 800 555 0100", "workspace": "production", "agent_id": prod["id"] }),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(
        (status.as_u16(), done["status"].as_str()),
        (200, Some("ASSIGNED")),
        "{done}"
    );
    let (status, again) = app
        .post_json(
            "/api/directory/assign",
            &json!({ "e164": "+18005550100", "workspace": "production", "agent_id": prod["id"] }),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(
        (status.as_u16(), again["code"].as_str()),
        (409, Some("not-available"))
    );
}

#[actix_web::test]
async fn a_changed_route_takes_effect_on_the_next_call_without_restart() {
    let fake = FakeProvider::start().await;
    let app = engine_on(TestDb::Sqlite, &fake, &[]).await;
    let ada = app.create_agent("Ada", "production").await;
    let bea = app.create_agent("Bea", "production").await;
    let mut ada_phone = app.available_softphone(&ada).await;
    let mut bea_phone = app.available_softphone(&bea).await;
    let number = "+14155550177";
    app.create_number(
        number,
        "production",
        json!({ "kind": "agents", "agent_ids": [ada.id] }),
    )
    .await;
    let first = app.ring_in(CALLER, number).await;
    let _twilio = app.open_stream(&first).await;
    ada_phone.expect_ring(&first.call_id).await;

    let (status, body) = app
        .send_json(
            Method::PUT,
            &format!("/api/numbers/{number}/route"),
            Some(&json!({ "kind": "agents", "agent_ids": [bea.id] })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let second = app.ring_in(CALLER, number).await;
    let _twilio2 = app.open_stream(&second).await;
    bea_phone.expect_ring(&second.call_id).await;

    let (status, error) = app
        .send_json(
            Method::PUT,
            &format!("/api/numbers/{number}/route"),
            Some(&json!({ "kind": "agents", "agent_ids": ["nosuchagent"] })),
        )
        .await;
    assert_eq!(
        (status.as_u16(), error["code"].as_str()),
        (400, Some("unknown-agent"))
    );
    let (status, error) = app
        .send_json(
            Method::PUT,
            "/api/numbers/555-1234/route",
            Some(&json!({ "kind": "voicemail" })),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("e164"),
        "{error}"
    );
}
