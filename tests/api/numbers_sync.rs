//! The number pool synced from Twilio, Vapi and Retell (fakes that speak their
//! JSON, paging included): added, updated, released; a failing provider changes
//! nothing of its own and is named.

use std::time::Duration;

use serde_json::{json, Value};

use crate::db::TestDb;
use crate::fake_providers::{account, FakeProvider};
use crate::helpers::{spawn_app_with, TestApp};

/// An engine with the three providers' `production` accounts on `fake`; pages of 2.
async fn engine_with(fake: &FakeProvider, providers: &[&str]) -> TestApp {
    engine_on(TestDb::Sqlite, fake, providers).await
}

async fn engine_on(db: TestDb, fake: &FakeProvider, providers: &[&str]) -> TestApp {
    let accounts = providers
        .iter()
        .map(|p| account(fake, p, "production"))
        .collect();
    spawn_app_with(db, move |s| {
        s.numbers.accounts = accounts;
        s.numbers.page_size = 2;
        s.numbers.request_timeout = Duration::from_secs_f64(1.0);
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

fn by_number<'a>(entries: &'a [Value], e164: &str, provider: &str) -> &'a Value {
    entries
        .iter()
        .find(|e| e["e164"] == e164 && e["provider"] == provider)
        .unwrap_or_else(|| panic!("{e164} of {provider} in {entries:?}"))
}

#[actix_web::test]
async fn a_sync_adds_new_numbers_updates_known_ones_and_releases_gone_ones() {
    sync_lifecycle(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn a_sync_adds_new_numbers_updates_known_ones_and_releases_gone_ones_on_postgres() {
    sync_lifecycle(TestDb::Postgres).await;
}

async fn sync_lifecycle(db: TestDb) {
    let fake = FakeProvider::start().await;
    for i in 0..5 {
        fake.add_twilio(
            i,
            &format!("+1415555010{i}"),
            &format!("line {i}"),
            "https://old.example/voice",
        );
    }
    fake.add_vapi("vapi-1", "+18005550100", "Support");
    fake.add_vapi("vapi-2", "+18005550101", "Sales");
    fake.add_vapi("vapi-3", "+447911123456", "UK");
    fake.add_retell("+16285550100", "Front desk");
    fake.state().twilio[1]["trunk_sid"] = "TK0123456789abcdef0123456789abcdef".into();
    let app = engine_on(db, &fake, &["twilio", "vapi", "retell"]).await;

    let (status, body) = app.sync_numbers(json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(counts(&body), (9, 0, 0), "{body}");
    let pages = fake
        .requests()
        .iter()
        .filter(|r| r.contains("IncomingPhoneNumbers.json"))
        .count();
    assert_eq!(pages, 3, "five Twilio numbers in pages of two");
    let vapi_pages: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("GET /phone-number"))
        .collect();
    assert!(
        vapi_pages[0].ends_with("?limit=2")
            && vapi_pages[1..].iter().all(|r| r.contains("createdAt")),
        "windows of createdAt after the first page: {vapi_pages:?}"
    );
    let retell_pages: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("GET /v2/list-phone-numbers"))
        .collect();
    assert_eq!(retell_pages, ["GET /v2/list-phone-numbers?limit=2"]);

    let entries = app.directory("").await;
    assert_eq!(entries.len(), 9);
    assert!(entries.iter().all(|e| e["status"] == "AVAILABLE"));
    let free = by_number(&entries, "+18005550100", "vapi");
    assert_eq!(
        (free["type"].as_str(), free["nickname"].as_str()),
        (Some("toll-free"), Some("Support"))
    );
    assert_eq!(
        by_number(&entries, "+447911123456", "vapi")["type"],
        "mobile"
    );
    assert_eq!(
        by_number(&entries, "+14155550100", "twilio")["type"],
        "local"
    );
    assert_eq!(
        by_number(&entries, "+16285550100", "retell")["provider_id"],
        "+16285550100"
    );
    assert_eq!(
        by_number(&entries, "+14155550101", "twilio")["sip_trunk"],
        json!({ "trunk_sid": "TK0123456789abcdef0123456789abcdef" })
    );
    assert_eq!(
        by_number(&entries, "+14155550100", "twilio")["voice_url"],
        "https://old.example/voice"
    );

    let (_, again) = app.sync_numbers(json!({})).await;
    assert_eq!(counts(&again), (0, 0, 0), "nothing changed: {again}");

    {
        let mut state = fake.state();
        state.twilio[0]["friendly_name"] = "Reception".into();
        state.twilio.remove(4);
        state.retell.clear();
    }
    fake.add_twilio(9, "+14155550109", "new line", "");
    let (_, changed) = app.sync_numbers(json!({})).await;
    assert_eq!(counts(&changed), (1, 1, 2), "{changed}");
    let entries = app.directory("").await;
    assert_eq!(
        entries.len(),
        10,
        "released numbers stay, with their history"
    );
    assert_eq!(
        by_number(&entries, "+14155550104", "twilio")["status"],
        "RELEASED"
    );
    assert_eq!(
        by_number(&entries, "+16285550100", "retell")["status"],
        "RELEASED"
    );
    assert_eq!(
        by_number(&entries, "+14155550100", "twilio")["nickname"],
        "Reception"
    );
    assert_eq!(
        by_number(&entries, "+14155550109", "twilio")["status"],
        "AVAILABLE"
    );

    fake.add_retell("+16285550100", "Front desk");
    let (_, back) = app.sync_numbers(json!({ "provider": "retell" })).await;
    assert_eq!(
        counts(&back),
        (0, 1, 0),
        "a released number that reappears is AVAILABLE again"
    );
    let entries = app.directory("?status=AVAILABLE").await;
    assert!(entries.iter().any(|e| e["e164"] == "+16285550100"));
}

#[actix_web::test]
async fn a_provider_page_of_malformed_json_changes_nothing_of_that_provider_and_names_it() {
    let fake = FakeProvider::start().await;
    for i in 0..5 {
        fake.add_twilio(i, &format!("+1415555010{i}"), "", "");
    }
    fake.add_vapi("vapi-1", "+18005550100", "Support");
    let app = engine_with(&fake, &["twilio", "vapi"]).await;
    fake.state().malformed_page = Some(1);

    let (status, body) = app.sync_numbers(json!({})).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["code"], "provider-failed");
    assert_eq!(body["failed"][0]["provider"], "twilio");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("twilio (production)") && message.contains("malformed"),
        "{message}"
    );
    assert_eq!(counts(&body), (1, 0, 0), "Vapi still synced: {body}");
    let entries = app.directory("").await;
    assert!(
        entries.iter().all(|e| e["provider"] == "vapi"),
        "page 1 of Twilio was not kept: {entries:?}"
    );

    fake.state().malformed_page = None;
    let (status, body) = app.sync_numbers(json!({ "provider": "twilio" })).await;
    assert_eq!((status.as_u16(), counts(&body)), (200, (5, 0, 0)), "{body}");
}

#[actix_web::test]
async fn a_provider_page_that_times_out_fails_that_provider_without_a_partial_write() {
    let fake = FakeProvider::start().await;
    for i in 0..5 {
        fake.add_twilio(i, &format!("+1415555010{i}"), "", "");
    }
    let app = engine_with(&fake, &["twilio"]).await;
    let (_, first) = app.sync_numbers(json!({})).await;
    assert_eq!(counts(&first), (5, 0, 0));
    {
        let mut state = fake.state();
        state.twilio.truncate(3);
        state.slow_page = Some(1);
        state.slow_for = Duration::from_secs(3);
    }
    let (status, body) = app.sync_numbers(json!({})).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no answer within 1 s"),
        "{body}"
    );
    let entries = app.directory("").await;
    assert!(
        entries.iter().all(|e| e["status"] == "AVAILABLE"),
        "nothing was released on the strength of a partial list: {entries:?}"
    );
}

#[actix_web::test]
async fn bad_credentials_surface_as_a_clear_error_and_write_nothing() {
    let fake = FakeProvider::start().await;
    fake.add_twilio(1, "+14155550101", "", "");
    fake.add_retell("+16285550100", "Front desk");
    let mut twilio = account(&fake, "twilio", "production");
    twilio.secret = Some("wrong-token".into());
    let mut retell = account(&fake, "retell", "production");
    retell.secret = Some("wrong-key".into());
    let app = spawn_app_with(TestDb::Sqlite, move |s| {
        s.numbers.accounts = vec![twilio, retell]
    })
    .await;

    let (status, body) = app.sync_numbers(json!({})).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        body["message"],
        "twilio (production): bad credentials (the provider answered 401); \
         retell (production): bad credentials (the provider answered 401)"
    );
    assert!(
        !body.to_string().contains("wrong-"),
        "no credential in the answer"
    );
    assert!(app.directory("").await.is_empty());
}

#[actix_web::test]
async fn an_unknown_provider_or_one_not_configured_is_refused() {
    let fake = FakeProvider::start().await;
    let app = engine_with(&fake, &["twilio"]).await;
    let (status, body) = app.sync_numbers(json!({ "provider": "plivo" })).await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (400, Some("unknown-provider")),
        "{body}"
    );
    assert!(body["message"]
        .as_str()
        .unwrap_or_default()
        .contains("plivo"));
    let (status, body) = app.sync_numbers(json!({ "provider": "vapi" })).await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (400, Some("no-provider-account")),
        "{body}"
    );
    let (status, body) = app
        .sync_numbers(json!({ "provider": "twilio", "workspace": "Bad Name" }))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(fake.requests().is_empty(), "no provider was asked");
}

#[actix_web::test]
async fn a_retell_import_over_a_sip_trunk_keeps_the_password_at_retell_only() {
    let fake = FakeProvider::start().await;
    let app = engine_with(&fake, &["retell"]).await;
    let (status, body) = app
        .post_json(
            "/api/numbers/import",
            &json!({
                "provider": "retell",
                "workspace": "production",
                "phone_number": "+1 628 555 0199",
                "termination_uri": "sip.carrier.example",
                "sip_trunk_auth_username": "trunkuser",
                "sip_trunk_auth_password": "s3cret-pass",
                "nickname": "Imported",
            }),
            Some(crate::helpers::ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["e164"], "+16285550199");
    assert_eq!(body["sip_trunk"]["termination_uri"], "sip.carrier.example");
    assert_eq!(body["sip_trunk"]["auth_username"], "tr********");
    assert_eq!(body["sip_trunk"]["auth_password"], "********");
    assert_eq!(
        fake.state().retell_passwords,
        vec!["s3cret-pass".to_owned()]
    );
    let shown = app.get_json("/api/directory/numbers/+16285550199").await.1;
    assert!(!shown.to_string().contains("s3cret"), "{shown}");
    assert!(!shown.to_string().contains("trunkuser"), "{shown}");
    let (_, again) = app.sync_numbers(json!({})).await;
    assert_eq!(counts(&again), (0, 0, 0), "{again}");

    for (phone, field) in [("555-1234", "phone_number"), ("", "phone_number")] {
        let (status, error) = app
            .post_json(
                "/api/numbers/import",
                &json!({ "provider": "retell", "workspace": "production", "phone_number": phone, "termination_uri": "sip.example" }),
                Some(crate::helpers::ADMIN_TOKEN),
            )
            .await;
        assert_eq!(status, 400);
        assert!(
            error["message"]
                .as_str()
                .unwrap_or_default()
                .contains(field),
            "{error}"
        );
    }
}
