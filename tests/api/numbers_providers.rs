//! The providers' current APIs, as their documentation and official SDKs have them
//! (issue 9, items 5–8): Retell's paginated `GET /v2/list-phone-numbers` and
//! weighted agent lists, Twilio's `TrunkSid` / `VoiceApplicationSid` (which make
//! it ignore `VoiceUrl`) cleared and restored exactly, numbers that are not E.164
//! kept as `unparseable` without failing the sync, and Vapi paging that skips
//! nothing whatever the order and however many numbers share a `createdAt`.

use serde_json::{json, Value};
use std::time::Duration;

use crate::db::TestDb;
use crate::fake_providers::{
    account, vapi_instant, FakeProvider, RetellPaging, VapiOrder, TWILIO_SID,
};
use crate::helpers::{spawn_app_with, TestApp, ADMIN_TOKEN};

async fn engine(fake: &FakeProvider, accounts: &[(&str, &str)], page_size: usize) -> TestApp {
    let accounts = accounts.iter().map(|(p, w)| account(fake, p, w)).collect();
    spawn_app_with(TestDb::Sqlite, move |s| {
        s.numbers.accounts = accounts;
        s.numbers.page_size = page_size;
        s.numbers.request_timeout = Duration::from_secs_f64(2.0);
    })
    .await
}

fn counts(body: &Value) -> (u64, u64, u64) {
    (
        body["added"].as_u64().unwrap_or(99),
        body["updated"].as_u64().unwrap_or(99),
        body["released"].as_u64().unwrap_or(99),
    )
}

fn entry<'a>(entries: &'a [Value], e164: &str) -> &'a Value {
    entries
        .iter()
        .find(|e| e["e164"] == e164)
        .unwrap_or_else(|| panic!("{e164} in {entries:?}"))
}

async fn create_agent(app: &TestApp, name: &str, workspace: &str, assign: bool) -> Value {
    let (status, body) = app
        .post_json(
            "/api/agents",
            &json!({ "name": name, "workspace": workspace, "assign_number": assign }),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body
}

fn sorted_e164s(entries: &[Value]) -> Vec<String> {
    let mut all: Vec<String> = entries
        .iter()
        .map(|e| e["e164"].as_str().unwrap_or_default().to_owned())
        .collect();
    all.sort();
    all
}

// ---- Retell (item 5) -------------------------------------------------------------

#[actix_web::test]
async fn retell_numbers_are_listed_by_pagination_key_with_weighted_agents_and_the_trunk_config() {
    // https://docs.retellai.com/api-references/list-phone-numbers: `GET
    // /v2/list-phone-numbers` with `limit` and `pagination_key`, answering
    // `{items, has_more, pagination_key}`; retell-typescript-sdk
    // `src/resources/phone-number.ts` PhoneNumberResponse.
    let fake = FakeProvider::start().await;
    for i in 1..=5 {
        fake.add_retell(&format!("+1628555010{i}"), &format!("line {i}"));
    }
    {
        let mut state = fake.state();
        state.retell[0]["inbound_agents"] = json!([
            { "agent_id": "agent_light", "weight": 0.3 },
            { "agent_id": "agent_heavy", "weight": 0.7 },
        ]);
        state.retell[1]["outbound_agents"] = json!([{ "agent_id": "agent_out", "weight": 1 }]);
        // An answer that still carries a deprecated single-agent field.
        state.retell[2]["inbound_agent_id"] = "agent_legacy".into();
        state.retell[3]["sip_outbound_trunk_config"] = json!({
            "termination_uri": "carrier.pstn.twilio.com",
            "auth_username": "trunkuser",
            "transport": "TLS",
        });
    }
    let app = engine(&fake, &[("retell", "production")], 2).await;
    let (status, body) = app.sync_numbers(json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(counts(&body), (5, 0, 0), "{body}");
    assert_eq!(body["accounts"][0]["pages"], 3, "{body}");
    let pages: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("GET"))
        .collect();
    assert_eq!(
        pages,
        [
            "GET /v2/list-phone-numbers?limit=2",
            "GET /v2/list-phone-numbers?limit=2&pagination_key=%2B16285550102",
            "GET /v2/list-phone-numbers?limit=2&pagination_key=%2B16285550104",
        ]
    );
    let entries = app.directory("").await;
    assert_eq!(entries.len(), 5);
    assert_eq!(
        entry(&entries, "+16285550101")["provider_agent"],
        "agent_heavy"
    );
    assert_eq!(
        entry(&entries, "+16285550102")["provider_agent"],
        "agent_out"
    );
    assert_eq!(
        entry(&entries, "+16285550103")["provider_agent"],
        "agent_legacy"
    );
    assert_eq!(
        entry(&entries, "+16285550105")["provider_agent"],
        Value::Null
    );
    assert_eq!(
        entry(&entries, "+16285550104")["sip_trunk"],
        json!({
            "termination_uri": "carrier.pstn.twilio.com",
            "auth_username": "tr********",
            "auth_password": "********",
            "transport": "TLS",
        })
    );
    let (_, again) = app.sync_numbers(json!({})).await;
    assert_eq!(counts(&again), (0, 0, 0), "{again}");
}

#[actix_web::test]
async fn a_retell_number_is_bound_with_weighted_agent_lists_never_the_single_agent_fields() {
    // https://docs.retellai.com/deprecation-notice/2026/03-31_phone_number_agent_fields:
    // "For a single agent, set the corresponding *_agents list to a single entry
    // with weight: 1"; the single fields are not supported after 03/31/2026 (the
    // fake refuses them, as Retell does).
    let fake = FakeProvider::start().await;
    fake.add_retell("+16285550100", "Front desk");
    let app = engine(&fake, &[("retell", "production")], 100).await;
    assert_eq!(app.sync_numbers(json!({})).await.0, 200);
    let agent = create_agent(&app, "Ada", "production", true).await;
    let id = agent["id"].as_str().unwrap_or_default();
    assert_eq!(agent["number"], "+16285550100", "{agent}");
    let patches: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("PATCH"))
        .collect();
    assert_eq!(
        patches,
        [format!(
            "PATCH /update-phone-number/%2B16285550100 \
             {{\"inbound_agents\":[{{\"agent_id\":\"{id}\",\"weight\":1.0}}],\
             \"outbound_agents\":[{{\"agent_id\":\"{id}\",\"weight\":1.0}}]}}"
        )]
    );
    let stored = fake.state().retell[0].clone();
    assert_eq!(stored["inbound_agents"][0]["agent_id"], id);
    assert_eq!(stored["outbound_agents"][0]["agent_id"], id);
    assert!(stored.get("inbound_agent_id").is_none(), "{stored}");
    let (_, again) = app.sync_numbers(json!({})).await;
    assert_eq!(
        counts(&again),
        (0, 0, 0),
        "the pool knows the binding: {again}"
    );
}

#[actix_web::test]
async fn broken_or_failing_retell_paging_fails_that_account_and_writes_nothing() {
    let fake = FakeProvider::start().await;
    for i in 1..=5 {
        fake.add_retell(&format!("+1628555010{i}"), "");
    }
    let app = engine(&fake, &[("retell", "production")], 2).await;
    for (paging, fail, expected) in [
        (
            RetellPaging::MissingKey,
            None,
            "has_more is true but no pagination_key was given",
        ),
        (RetellPaging::RepeatedKey, None, "came back a second time"),
        (
            RetellPaging::Correct,
            Some(500),
            "HTTP 500: Internal server error",
        ),
    ] {
        {
            let mut state = fake.state();
            state.retell_paging = paging;
            state.retell_fail = fail;
        }
        let (status, body) = app.sync_numbers(json!({})).await;
        assert_eq!(status, 502, "{body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("retell (production)") && message.contains(expected),
            "{message}"
        );
        assert!(app.directory("").await.is_empty(), "nothing was written");
    }
    {
        let mut state = fake.state();
        state.retell_paging = RetellPaging::Correct;
        state.retell_fail = None;
    }
    let (status, body) = app.sync_numbers(json!({})).await;
    assert_eq!((status.as_u16(), counts(&body)), (200, (5, 0, 0)), "{body}");
}

// ---- Twilio (item 6) -------------------------------------------------------------

/// A Twilio number whose calls go elsewhere through a trunk or an application,
/// with its own method and status callback.
fn customise(fake: &FakeProvider, index: usize, fields: Value) {
    let mut state = fake.state();
    for (key, value) in fields.as_object().into_iter().flatten() {
        state.twilio[index][key] = value.clone();
    }
}

const TRUNK: &str = "TK0123456789abcdef0123456789abcdef";
const APP: &str = "AP0123456789abcdef0123456789abcdef";

#[actix_web::test]
async fn assigning_a_twilio_number_on_a_trunk_clears_it_and_an_undo_restores_every_field() {
    // twilio-python incoming_phone_number/__init__.py: "If a `trunk_sid` is
    // present, we ignore all of the voice urls and voice applications"; a field is
    // cleared by POSTing it empty.
    let fake = FakeProvider::start().await;
    fake.add_twilio(1, "+14155550123", "twin", "https://other.example/voice");
    fake.add_twilio(2, "+14155550124", "ours", "https://other.example/voice");
    for i in 0..2 {
        customise(
            &fake,
            i,
            json!({
                "trunk_sid": TRUNK,
                "voice_method": "GET",
                "status_callback": "https://other.example/status",
                "status_callback_method": "GET",
            }),
        );
    }
    let app = engine(
        &fake,
        &[("twilio", "staging"), ("twilio", "production")],
        100,
    )
    .await;
    assert_eq!(app.sync_numbers(json!({})).await.0, 200);
    // 0123 is live in production: its staging twin cannot be recorded, so the
    // provider step is undone.
    app.create_number("+14155550123", "production", json!({ "kind": "voicemail" }))
        .await;
    let before = fake.state().twilio.clone();
    let agent = create_agent(&app, "Stagey", "staging", true).await;
    assert_eq!(agent["number"], Value::Null, "{agent}");
    assert!(
        agent["warnings"][0]
            .as_str()
            .unwrap_or_default()
            .contains("the assignment at the provider was undone"),
        "{agent}"
    );
    let posts: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("POST"))
        .collect();
    let status_url = format!("{}/twilio/status", app.address);
    assert!(
        posts[0].contains(&format!(
            "StatusCallback={}&StatusCallbackMethod=POST&TrunkSid=",
            urlencode(&status_url)
        )) && posts[0].ends_with("&TrunkSid="),
        "the trunk is cleared and the status callbacks come to switchboard: {posts:?}"
    );
    assert_eq!(
        fake.state().twilio.clone(),
        before,
        "trunk, methods and status callback are back exactly"
    );

    // In production the assignment holds: calls and status callbacks come here.
    let ada = create_agent(&app, "Ada", "production", true).await;
    assert_eq!(ada["number"], "+14155550123", "{ada}");
    let now = fake.state().twilio[0].clone();
    assert_eq!(now["voice_url"], format!("{}/twilio/voice", app.address));
    assert_eq!(now["voice_method"], "POST");
    assert_eq!(now["trunk_sid"], Value::Null);
    assert_eq!(now["status_callback"], status_url);
    assert_eq!(now["status_callback_method"], "POST");
    let (_, again) = app.sync_numbers(json!({ "workspace": "production" })).await;
    assert_eq!(
        counts(&again),
        (0, 0, 0),
        "the pool knows what Twilio has: {again}"
    );
}

fn urlencode(raw: &str) -> String {
    serde_urlencoded::to_string([("x", raw)])
        .unwrap_or_default()
        .trim_start_matches("x=")
        .to_owned()
}

#[actix_web::test]
async fn migrate_clears_trunks_and_applications_says_so_and_rollback_restores_every_field() {
    let fake = FakeProvider::start().await;
    for i in 1..=3 {
        fake.add_twilio(
            i,
            &format!("+1415555030{i}"),
            "",
            "https://other.example/voice",
        );
    }
    customise(
        &fake,
        0,
        json!({ "voice_application_sid": APP, "voice_method": "GET" }),
    );
    customise(
        &fake,
        1,
        json!({ "trunk_sid": TRUNK, "status_callback": "https://other.example/status" }),
    );
    let app = engine(&fake, &[("twilio", "production")], 100).await;
    assert_eq!(app.sync_numbers(json!({})).await.0, 200);
    let ada = app.create_agent("Ada", "production").await;
    for i in 1..=3 {
        app.create_number(
            &format!("+1415555030{i}"),
            "production",
            json!({ "kind": "agents", "agent_ids": [ada.id] }),
        )
        .await;
    }
    let before = fake.state().twilio.clone();
    let run = app
        .cli(&[
            "numbers",
            "migrate",
            "--to",
            "voicemail",
            "--percent",
            "100",
        ])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines = run.lines();
    assert!(
        lines[1].starts_with("  +14155550301 from {")
            && lines[1].ends_with(&format!(
                "(Twilio webhook re-pointed at switchboard; cleared VoiceApplicationSid {APP})"
            )),
        "{}",
        run.stdout
    );
    assert!(
        lines[2].ends_with(&format!(
            "(Twilio webhook re-pointed at switchboard; cleared TrunkSid {TRUNK})"
        )),
        "{}",
        run.stdout
    );
    assert!(
        lines[3].ends_with("(Twilio webhook re-pointed at switchboard)"),
        "{}",
        run.stdout
    );
    for number in fake.state().twilio.iter() {
        assert_eq!(number["voice_url"], format!("{}/twilio/voice", app.address));
        assert_eq!(
            number["status_callback"],
            format!("{}/twilio/status", app.address)
        );
        assert_eq!(number["voice_method"], "POST");
        assert_eq!(
            (&number["trunk_sid"], &number["voice_application_sid"]),
            (&Value::Null, &Value::Null),
            "{number}"
        );
    }
    let back = app.cli(&["numbers", "rollback"]).await;
    assert_eq!(back.code, 0, "{}", back.stderr);
    assert_eq!(
        fake.state().twilio.clone(),
        before,
        "application, trunk, methods and status callbacks are back exactly"
    );
}

#[actix_web::test]
async fn a_migration_that_fails_midway_restores_the_numbers_it_had_re_pointed_exactly() {
    let fake = FakeProvider::start().await;
    let mut sids = Vec::new();
    for i in 1..=2 {
        sids.push(fake.add_twilio(
            i,
            &format!("+1415555040{i}"),
            "",
            "https://other.example/voice",
        ));
    }
    customise(
        &fake,
        0,
        json!({ "trunk_sid": TRUNK, "voice_method": "GET" }),
    );
    let app = engine(&fake, &[("twilio", "production")], 100).await;
    assert_eq!(app.sync_numbers(json!({})).await.0, 200);
    for i in 1..=2 {
        app.create_number(
            &format!("+1415555040{i}"),
            "production",
            json!({ "kind": "voicemail" }),
        )
        .await;
    }
    let before = fake.state().twilio.clone();
    fake.state().refuse_twilio_sid = Some(sids[1].clone());
    let (status, body) = app
        .post_json(
            "/api/numbers/migrate",
            &json!({ "workspace": "production", "route": { "kind": "agents", "agent_ids": [] }, "percent": 100 }),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (502, Some("provider-failed")),
        "{body}"
    );
    assert_eq!(
        fake.state().twilio.clone(),
        before,
        "the first number is back on its trunk"
    );
    let (_, live) = app.get_json("/api/numbers/+14155550401").await;
    assert_eq!(
        live["route"],
        json!({ "kind": "voicemail" }),
        "nothing was moved"
    );
}

// ---- numbers that are not E.164 (item 7) ----------------------------------------

#[actix_web::test]
async fn a_number_that_is_not_e164_is_kept_as_unparseable_and_the_rest_of_the_account_syncs() {
    // Vapi BYO numbers may turn the E.164 check off (`numberE164CheckEnabled`,
    // server-sdk-typescript src/api/types/ByoPhoneNumber.ts); Retell imports skip
    // validation unless `ignore_e164_validation` is false (PhoneNumberImportParams).
    let fake = FakeProvider::start().await;
    fake.add_vapi("vapi-1", "+18005550100", "Support");
    fake.add_vapi("vapi-byo", "4420", "BYO extension");
    fake.add_vapi("vapi-2", "+18005550101", "Sales");
    fake.add_retell("+16285550100", "Front desk");
    fake.state().retell.push(json!({
        "phone_number": "pseudo/line 7",
        "phone_number_type": "custom",
        "nickname": "pseudo",
        "inbound_agents": null,
        "outbound_agents": null,
        "sip_outbound_trunk_config": { "termination_uri": "pbx.example", "auth_username": null, "transport": "TCP" },
        "last_modification_timestamp": 1703413636133_u64,
    }));
    let app = engine(
        &fake,
        &[("vapi", "production"), ("retell", "production")],
        100,
    )
    .await;
    let (status, body) = app.sync_numbers(json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(counts(&body), (5, 0, 0), "{body}");
    let entries = app.directory("").await;
    let byo = entry(&entries, "4420");
    assert_eq!(
        (
            byo["note"].as_str(),
            byo["type"].as_str(),
            byo["status"].as_str()
        ),
        (Some("unparseable"), Some("unknown"), Some("AVAILABLE")),
        "{byo}"
    );
    assert_eq!(entry(&entries, "pseudo/line 7")["note"], "unparseable");
    assert_eq!(entry(&entries, "+18005550100")["note"], Value::Null);
    let (_, again) = app.sync_numbers(json!({})).await;
    assert_eq!(counts(&again), (0, 0, 0), "{again}");

    let validate = app.cli(&["numbers", "validate"]).await;
    assert_eq!(validate.code, 0, "warnings only: {}", validate.stdout);
    assert_eq!(
        validate.lines(),
        [
            "warning: 4420 [production] unparseable: vapi vapi-byo lists it as \"4420\", \
             which is not an E.164 number; it cannot be assigned or routed",
            "warning: pseudo/line 7 [production] unparseable: retell pseudo/line 7 lists it as \
             \"pseudo/line 7\", which is not an E.164 number; it cannot be assigned or routed",
            "0 errors, 2 warnings",
        ]
    );

    // Assignment never takes an unparseable number.
    for i in 0..3 {
        let agent = create_agent(&app, &format!("agent {i}"), "production", true).await;
        assert!(
            agent["number"].as_str().is_some_and(|n| n.starts_with('+')),
            "{agent}"
        );
    }
    let last = create_agent(&app, "agent 3", "production", true).await;
    assert_eq!(last["number"], Value::Null, "{last}");
    let left = app.directory("?status=AVAILABLE").await;
    assert_eq!(sorted_e164s(&left), ["4420", "pseudo/line 7"]);
}

// ---- Vapi paging (item 8) --------------------------------------------------------

#[actix_web::test]
async fn vapi_numbers_sharing_a_created_at_across_a_page_boundary_are_all_synced() {
    // docs.vapi.ai/api-reference/phone-numbers/list: `limit` and the createdAt
    // filters only; nothing says in which order, and createdAt is not unique.
    let fake = FakeProvider::start().await;
    let tie = vapi_instant(2);
    fake.add_vapi_at("v1", "+18005550101", "", &vapi_instant(1));
    for (id, n) in [("v2", 2), ("v3", 3), ("v4", 4)] {
        fake.add_vapi_at(id, &format!("+1800555010{n}"), "", &tie);
    }
    fake.add_vapi_at("v5", "+18005550105", "", &vapi_instant(3));
    let app = engine(&fake, &[("vapi", "production")], 2).await;
    let (status, body) = app.sync_numbers(json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(counts(&body), (5, 0, 0), "{body}");
    assert_eq!(
        sorted_e164s(&app.directory("").await),
        (1..=5)
            .map(|n| format!("+1800555010{n}"))
            .collect::<Vec<_>>()
    );
}

#[actix_web::test]
async fn vapi_paging_finds_every_number_whatever_order_the_list_comes_in() {
    for order in [
        VapiOrder::NewestFirst,
        VapiOrder::OldestFirst,
        VapiOrder::ById,
    ] {
        let fake = FakeProvider::start().await;
        // 11 numbers over 5 instants, ties everywhere; ids against time order.
        let instants = [1, 1, 2, 2, 2, 3, 4, 4, 4, 4, 5];
        for (i, t) in instants.iter().enumerate() {
            fake.add_vapi_at(
                &format!("v{:02}", 20 - i),
                &format!("+180055502{i:02}"),
                "",
                &vapi_instant(*t),
            );
        }
        fake.state().vapi_order = order;
        let app = engine(&fake, &[("vapi", "production")], 3).await;
        let (status, body) = app.sync_numbers(json!({})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(counts(&body), (11, 0, 0), "{body}");
        let requests = fake.requests().len();
        assert!(requests <= 4 * 11, "{requests} requests for 11 numbers");
    }
}

#[actix_web::test]
async fn a_whole_page_of_vapi_numbers_at_one_instant_is_listed_in_full() {
    let fake = FakeProvider::start().await;
    for i in 0..7 {
        fake.add_vapi_at(
            &format!("v{i}"),
            &format!("+1800555030{i}"),
            "",
            &vapi_instant(9),
        );
    }
    fake.add_vapi_at("older", "+18005550399", "", &vapi_instant(1));
    let app = engine(&fake, &[("vapi", "production")], 2).await;
    let (status, body) = app.sync_numbers(json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(counts(&body), (8, 0, 0), "{body}");
    assert!(
        fake.requests().iter().any(|r| r.contains("limit=1000")
            && r.contains("createdAtGe=")
            && r.contains("createdAtLe=")),
        "the instant is asked on its own: {:?}",
        fake.requests()
    );
}

#[actix_web::test]
async fn vapi_failures_fail_that_account_with_the_reason_and_write_nothing() {
    let fake = FakeProvider::start().await;
    fake.add_vapi("vapi-1", "+18005550100", "Support");
    fake.add_twilio(1, "+14155550101", "", "");
    let app = engine(
        &fake,
        &[("vapi", "production"), ("twilio", "production")],
        2,
    )
    .await;
    fake.state().vapi_fail = Some(503);
    let (status, body) = app.sync_numbers(json!({})).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        body["message"],
        "vapi (production) refused: HTTP 503: Internal server error"
    );
    assert_eq!(counts(&body), (1, 0, 0), "Twilio still synced: {body}");
    assert!(app
        .directory("")
        .await
        .iter()
        .all(|e| e["provider"] == "twilio"));

    let mut wrong = account(&fake, "vapi", "staging");
    wrong.secret = Some("wrong-key".into());
    let app = spawn_app_with(TestDb::Sqlite, move |s| s.numbers.accounts = vec![wrong]).await;
    fake.state().vapi_fail = None;
    let (status, body) = app.sync_numbers(json!({})).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        body["message"],
        "vapi (staging): bad credentials (the provider answered 401)"
    );
}

// ---- the fakes themselves ---------------------------------------------------------

#[actix_web::test]
async fn the_fake_providers_keep_the_documented_rules_of_their_apis() {
    let fake = FakeProvider::start().await;
    let sid = fake.add_twilio(1, "+14155550101", "", "");
    fake.add_retell("+16285550100", "");
    let http = reqwest::Client::new();
    let number_url = format!(
        "{}/2010-04-01/Accounts/{TWILIO_SID}/IncomingPhoneNumbers/{sid}.json",
        fake.base
    );
    let twilio = |form: &'static [(&'static str, &'static str)]| {
        http.post(&number_url)
            .basic_auth(TWILIO_SID, Some(crate::fake_providers::TWILIO_SECRET))
            .form(form)
            .send()
    };
    // Setting a trunk deletes the application and vice versa; empty clears.
    let set: Value = twilio(&[("VoiceApplicationSid", APP)])
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert_eq!(set["voice_application_sid"], APP);
    let set: Value = twilio(&[("TrunkSid", TRUNK)])
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (&set["trunk_sid"], &set["voice_application_sid"]),
        (&json!(TRUNK), &Value::Null)
    );
    let set: Value = twilio(&[("TrunkSid", "")])
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert_eq!(set["trunk_sid"], Value::Null);
    let refused = twilio(&[("VoiceMethod", "PUT")]).await.expect("answers");
    assert_eq!(refused.status(), 400);

    // Retell: the deprecated list is gone, the single-agent fields are refused,
    // weights must add up to 1.
    let retell = |method: reqwest::Method, path: &str| {
        http.request(method, format!("{}{path}", fake.base))
            .bearer_auth(crate::fake_providers::RETELL_KEY)
    };
    let old = retell(reqwest::Method::GET, "/list-phone-numbers")
        .send()
        .await
        .expect("answers");
    assert_eq!(old.status(), 404);
    for body in [
        json!({ "inbound_agent_id": "agent_1" }),
        json!({ "inbound_agents": [{ "agent_id": "a", "weight": 0.5 }] }),
    ] {
        let refused = retell(
            reqwest::Method::PATCH,
            "/update-phone-number/%2B16285550100",
        )
        .json(&body)
        .send()
        .await
        .expect("answers");
        assert_eq!(refused.status(), 400, "{body}");
    }
    let page: Value = retell(reqwest::Method::GET, "/v2/list-phone-numbers?limit=1")
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert_eq!(page["has_more"], false);
    assert_eq!(page["items"][0]["phone_number"], "+16285550100");
    let unauthorized = http
        .get(format!("{}/v2/list-phone-numbers", fake.base))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("answers");
    assert_eq!(unauthorized.status(), 401);

    // Twilio's 5xx, with its error body.
    fake.state().twilio_fail = Some(503);
    let down = http
        .get(format!(
            "{}/2010-04-01/Accounts/{TWILIO_SID}/IncomingPhoneNumbers.json",
            fake.base
        ))
        .basic_auth(TWILIO_SID, Some(crate::fake_providers::TWILIO_SECRET))
        .send()
        .await
        .expect("answers");
    assert_eq!(down.status(), 503);
    let body: Value = down.json().await.expect("json");
    assert_eq!(body["status"], 503);

    // Vapi: the limit is 0–1000.
    let too_many = http
        .get(format!("{}/phone-number?limit=1001", fake.base))
        .bearer_auth(crate::fake_providers::VAPI_KEY)
        .send()
        .await
        .expect("answers");
    assert_eq!(too_many.status(), 400);
}
