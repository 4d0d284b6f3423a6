//! The admin's Numbers view (`/app/admin/numbers`) in headless Chromium against the
//! real engine, its numbers synced from the fake providers: the directory with
//! its filters; a number toggled to an AI assistant (the engine then reports that
//! route); a refused route change shown next to its row, nothing changed; a
//! cut-over of a share whose confirmation lists exactly the numbers the engine
//! then moves; a rollback, previewed the same way, that restores every route.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::{json, Value};
use switchboard::config::SummaryProvider;

use crate::browser::{Browser, Page};
use crate::db::TestDb;
use crate::fake_providers::{account, FakeProvider};
use crate::fakes::openai::{FakeOpenAi, Reply, Script};
use crate::helpers::{spawn_app_with, TestApp, ADMIN_TOKEN, CALLER};

const GREETING: &str = "Chez Nous, good evening!";
const PRODUCTION: [&str; 4] = [
    "+14155550601",
    "+14155550602",
    "+14155550603",
    "+14155550604",
];
/// A live number of `staging`, which no provider account holds and which has no
/// assistant.
const STAGING: &str = "+14155550700";

fn row(e164: &str) -> String {
    format!("[data-testid=\"number-row\"][data-e164=\"{e164}\"]")
}

/// Picks `value` in the `<select>` at `css` as a person would (a change event).
async fn choose(page: &Page, css: &str, value: &str) {
    let done = page
        .eval(
            "const s = document.querySelector(arguments[0]);
             if (!s || ![...s.options].some((o) => o.value === arguments[1])) return false;
             s.value = arguments[1];
             s.dispatchEvent(new Event('change', { bubbles: true }));
             return true;",
            vec![json!(css), json!(value)],
        )
        .await;
    assert_eq!(done, json!(true), "no option {value:?} in {css}");
}

async fn attr(page: &Page, css: &str, name: &str) -> String {
    page.find(css)
        .await
        .attr(name)
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

async fn wait_attr_of(page: &Page, css: &str, name: &str, value: &str) {
    let found = page
        .wait_until(|p| async move { attr(p, css, name).await == value })
        .await;
    assert!(
        found,
        "{css} has {name}={:?}, not {value:?}",
        attr(page, css, name).await
    );
}

/// The `data-e164` of every element at `css`, sorted.
async fn e164s_at(page: &Page, css: &str) -> Vec<String> {
    let mut all = Vec::new();
    for item in page.all(css).await {
        all.push(
            item.attr("data-e164")
                .await
                .ok()
                .flatten()
                .unwrap_or_default(),
        );
    }
    all.sort();
    all
}

/// An engine with a Twilio account of `production` on `fake` (its numbers
/// synced) and the assistants' model on `openai`.
async fn engine(fake: &FakeProvider, openai: &FakeOpenAi) -> TestApp {
    let accounts = vec![account(fake, "twilio", "production")];
    let (url, key) = (openai.url(), openai.api_key().to_owned());
    let app = spawn_app_with(TestDb::Sqlite, move |s| {
        s.numbers.accounts = accounts;
        s.numbers.request_timeout = Duration::from_secs_f64(2.0);
        s.openai.realtime_url = url.parse().expect("the fake's URL");
        s.openai.api_key = Some(SecretString::from(key));
        s.summary.provider = SummaryProvider::Off;
    })
    .await;
    let (status, body) = app.sync_numbers(json!({})).await;
    assert_eq!(status, 200, "{body}");
    app
}

async fn route_of(app: &TestApp, e164: &str) -> Value {
    app.get_json(&format!("/api/numbers/{e164}")).await.1["route"].clone()
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

#[actix_web::test]
async fn an_admin_routes_a_number_to_an_assistant_sees_a_refusal_next_to_its_row_and_moves_and_rolls_back_exactly_the_numbers_previewed(
) {
    let fake = FakeProvider::start().await;
    for (i, e164) in PRODUCTION.iter().enumerate() {
        fake.add_twilio(i + 1, e164, "", "https://other.example/voice");
    }
    let openai = FakeOpenAi::start(Script::new().greeting(Reply::say(GREETING, 200, 0x11))).await;
    let app = engine(&fake, &openai).await;
    for e164 in PRODUCTION {
        app.create_number(e164, "production", json!({ "kind": "voicemail" }))
            .await;
    }
    app.create_number(STAGING, "staging", json!({ "kind": "voicemail" }))
        .await;
    let (status, assistant) = app
        .post_json(
            "/api/assistants",
            &json!({
                "name": "Chez Nous",
                "workspace": "production",
                "instructions": "You book tables at Chez Nous. Get a name, a time and a party size.",
                "voice": "marin",
                "model": "gpt-realtime",
                "greeting": GREETING,
            }),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 201, "{assistant}");
    let assistant_id = assistant["id"].as_str().unwrap_or_default().to_owned();

    let browser = Browser::start().await;
    let mut page = browser.page().await;
    page.sign_in(&app, ADMIN_TOKEN).await;
    page.open(&app, "/app/admin").await;
    page.click("nav-numbers").await;
    page.wait_attr("nav-numbers", "aria-current", "page").await;
    let listed = page
        .wait_until(|p| async move { p.all("[data-testid=\"number-row\"]").await.len() == 5 })
        .await;
    assert!(
        listed,
        "the four synced numbers and the staging one are listed"
    );
    assert_eq!(
        attr(&page, &row(PRODUCTION[0]), "data-provider").await,
        "twilio"
    );
    assert_eq!(attr(&page, &row(STAGING), "data-status").await, "LIVE");

    // The filters.
    choose(&page, "[data-testid=\"numbers-workspace\"]", "staging").await;
    assert_eq!(
        e164s_at(&page, "[data-testid=\"number-row\"]").await,
        [STAGING]
    );
    choose(&page, "[data-testid=\"numbers-workspace\"]", "").await;
    choose(&page, "[data-testid=\"numbers-provider\"]", "twilio").await;
    assert_eq!(
        e164s_at(&page, "[data-testid=\"number-row\"]").await,
        PRODUCTION
    );
    choose(&page, "[data-testid=\"numbers-provider\"]", "").await;

    // One number to the assistant.
    let first = row(PRODUCTION[0]);
    choose(
        &page,
        &format!("{first} [data-testid=\"route-select\"]"),
        "ai",
    )
    .await;
    choose(
        &page,
        &format!("{first} [data-testid=\"route-assistant\"]"),
        &assistant_id,
    )
    .await;
    page.find(&format!("{first} [data-testid=\"route-save\"]"))
        .await
        .click()
        .await
        .expect("save the route");
    wait_attr_of(&page, &first, "data-route", "ai").await;
    assert_eq!(
        route_of(&app, PRODUCTION[0]).await,
        json!({ "kind": "ai", "assistant_id": assistant_id }),
        "the engine reports the assistant's route"
    );
    let shown = page
        .find(&format!("{first} [data-testid=\"number-route\"]"))
        .await
        .text()
        .await
        .unwrap_or_default();
    assert!(shown.contains("Chez Nous"), "{shown}");
    // A call to it now reaches the assistant: the caller hears its greeting.
    let call = app.ring_in(CALLER, PRODUCTION[0]).await;
    let mut caller = app.open_stream(&call).await;
    loop {
        let audio = caller.next_media().await;
        if !audio.is_empty() && audio.iter().all(|b| *b == 0x11) {
            break;
        }
    }
    assert_eq!(openai.sessions(), 1, "one model session, for that call");
    caller.stop();

    // Staging has no assistant: the engine refuses; the row says why, nothing changed.
    let staging = row(STAGING);
    choose(
        &page,
        &format!("{staging} [data-testid=\"route-select\"]"),
        "ai",
    )
    .await;
    page.find(&format!("{staging} [data-testid=\"route-save\"]"))
        .await
        .click()
        .await
        .expect("save the route");
    let refused = page
        .wait_until(|p| {
            let css = format!("{staging} [data-testid=\"route-error\"]");
            async move {
                p.find(&css)
                    .await
                    .text()
                    .await
                    .unwrap_or_default()
                    .contains("no assistant")
            }
        })
        .await;
    assert!(refused, "the engine's refusal is shown next to the row");
    assert_eq!(attr(&page, &staging, "data-route").await, "voicemail");
    assert_eq!(
        route_of(&app, STAGING).await,
        json!({ "kind": "voicemail" })
    );

    // Half of production to the agents: the confirmation lists what will move, and
    // nothing has moved yet.
    let before = routes(&app).await;
    let twilio_before = fake.state().twilio.clone();
    choose(&page, "[data-testid=\"migrate-workspace\"]", "production").await;
    choose(&page, "[data-testid=\"migrate-route\"]", "agents").await;
    page.type_into("migrate-percent", "50").await;
    page.click("migrate-preview").await;
    page.wait_text("migrate-summary", "will move").await;
    let plan = e164s_at(&page, "[data-testid=\"migrate-plan-item\"]").await;
    assert_eq!(plan.len(), 2, "half of four: {plan:?}");
    assert_eq!(routes(&app).await, before, "a preview moves nothing");
    assert_eq!(fake.state().twilio.clone(), twilio_before);
    page.screenshot("admin-numbers-migrate-preview").await;

    page.click("migrate-confirm").await;
    page.wait_text("migrate-result", "Moved 2").await;
    let moved: Vec<String> = {
        let mut moved: Vec<String> = attr(&page, "[data-testid=\"migrate-result\"]", "data-moved")
            .await
            .split(' ')
            .map(str::to_owned)
            .collect();
        moved.sort();
        moved
    };
    assert_eq!(moved, plan, "the engine moved exactly the numbers listed");
    for e164 in PRODUCTION {
        let route = route_of(&app, e164).await;
        if plan.iter().any(|p| p == e164) {
            assert_eq!(
                route,
                json!({ "kind": "agents", "agent_ids": [] }),
                "{e164}"
            );
            wait_attr_of(&page, &row(e164), "data-route", "agents").await;
        } else {
            let was = before
                .as_array()
                .into_iter()
                .flatten()
                .find(|n| n["e164"] == e164)
                .map(|n| n["route"].clone());
            assert_eq!(Some(route), was, "{e164} did not move");
        }
    }

    // The rollback, previewed the same way, restores every route.
    choose(&page, "[data-testid=\"rollback-workspace\"]", "production").await;
    page.click("rollback-preview").await;
    page.wait_text("rollback-summary", "go back").await;
    assert_eq!(
        e164s_at(&page, "[data-testid=\"rollback-plan-item\"]").await,
        plan
    );
    assert_ne!(routes(&app).await, before, "a preview restores nothing");
    page.click("rollback-confirm").await;
    page.wait_text("rollback-result", "restored").await;
    assert_eq!(routes(&app).await, before, "every route is back");
    assert_eq!(
        fake.state().twilio.clone(),
        twilio_before,
        "every webhook is back"
    );
    for e164 in &plan {
        let was = before
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["e164"] == e164.as_str())
            .and_then(|n| n["route"]["kind"].as_str())
            .unwrap_or_default();
        wait_attr_of(&page, &row(e164), "data-route", was).await;
    }

    // Nothing left to roll back: the engine says so.
    page.click("rollback-preview").await;
    page.wait_text("rollback-error", "no migration to roll back")
        .await;
    browser.close().await;
}
