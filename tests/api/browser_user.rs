//! A user's pages (`/app`) in headless Chromium against the real engine: the
//! user signs in with their API key, places a call through the new-call form
//! (each field refused by the engine shows its message next to it), watches the
//! call run to its result on the call's page (the fake Twilio, OpenAI and Anthropic playing their
//! parts, as in `outbound_e2e`), reads its transcript, outcome and cost, and
//! finds it on the dashboard and in the list; bad input: another user's call, a
//! made-up status in the list's URL.

use actix_web::http::StatusCode;
use serde_json::Value;

use crate::browser::{Browser, Page};
use crate::db::TestDb;
use crate::fakes::openai::{Reply, Script};
use crate::outbound_e2e::{dialed, submit, until_live, world, World, DISCLOSURE, GREETING, HEARD};
use crate::outbound_talk::{speak, until_heard};

/// A signed-in page of the world's user (they land on the dashboard).
async fn user_page(browser: &Browser, w: &World) -> Page {
    let mut page = browser.page().await;
    page.sign_in(&w.app, &w.user.api_key).await;
    assert_eq!(page.path().await, "/app");
    page
}

async fn user_json(w: &World) -> Value {
    let (status, user) = w
        .app
        .send_json_as(
            actix_web::http::Method::GET,
            &format!("/api/users/{}", w.user.id),
            None,
            Some(&w.user.api_key),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    user
}

/// Submits the form and waits for the engine's refusal next to `field`.
async fn refused_at(page: &Page, field: &str, says: &str) {
    page.click("new-submit").await;
    page.wait_text(&format!("error-{field}"), says).await;
    assert_eq!(page.path().await, "/app/new", "nothing was placed");
}

/// The attestation's boxes (`attest-…` controls).
const BOXES: [&str; 5] = [
    "legitimate_purpose",
    "not_dnc",
    "reasonable_basis",
    "understands_recording",
    "accepts_responsibility",
];

/// Fills the new-call form field by field, each time submitting and reading the
/// engine's refusal next to the field it names, then places the call; its id.
async fn place_through_the_form(page: &mut Page, w: &World) -> String {
    page.click("nav-new").await;
    // The number is checked as it is typed, by the engine.
    page.type_into("new-to", "+1 415 555").await;
    page.wait_text("error-to", "to:").await;
    page.type_into("new-to", "+1 415 555 0123").await;
    let info = page.wait_text("to-info", "+1 (415) 555-0123").await;
    assert!(info.contains("America/Los_Angeles"), "{info}");
    page.wait_attr("hours-info", "data-open", "true").await;
    assert_eq!(
        page.text("error-to").await,
        "",
        "the error went with the fix"
    );
    let (_, check) = w
        .app
        .send_json_as(
            actix_web::http::Method::GET,
            "/api/calls/outbound/check?to=%2B14155550123",
            None,
            Some(&w.user.api_key),
        )
        .await;
    let estimate = format!(
        "${:.2}",
        check["estimated_cost"].as_f64().expect("an estimate")
    );
    page.wait_text("new-estimate", &estimate).await;
    // Each field the engine refuses, in the order it checks them.
    refused_at(page, "purpose", "purpose:").await;
    page.testid("new-purpose")
        .await
        .select_by_value("existing_client")
        .await
        .expect("pick a purpose");
    page.type_into("new-objective", "Book it").await;
    assert_eq!(page.text("objective-count").await, "7 / 500");
    refused_at(page, "objective", "objective:").await;
    page.type_into(
        "new-objective",
        "Book a plumber's visit for Tuesday morning.",
    )
    .await;
    refused_at(page, "attestation", "attestation.legitimate_purpose").await;
    for field in BOXES {
        page.click(&format!("attest-{field}")).await;
    }
    refused_at(page, "attestation", "attestation.signature_full_name").await;
    page.type_into("new-signature", "Ada Lovelace").await;
    page.type_into("new-contact-name", "Front desk").await;
    page.screenshot("app-new-call").await;
    page.click("new-submit").await;
    let moved = page
        .wait_until(|p| async move { p.path().await.starts_with("/app/calls/") })
        .await;
    assert!(
        moved,
        "the form did not open the call: {}",
        page.text("error-form").await
    );
    page.path()
        .await
        .trim_start_matches("/app/calls/")
        .to_owned()
}

#[actix_web::test]
async fn a_user_places_a_call_through_the_form_watches_it_run_to_its_result_and_finds_it_on_the_dashboard_and_in_the_list(
) {
    let script = Script::new()
        .greeting(Reply::say(DISCLOSURE, 200, 0x11))
        .turn(GREETING, Reply::say("unused", 100, 0x99))
        .turn(
            HEARD,
            Reply::say("Wonderful, Tuesday at nine it is. Goodbye!", 200, 0x13)
                .then_call("end_call", r#"{"reason":"objective met"}"#),
        );
    let w = world(TestDb::Sqlite, script, "human", |s| {
        s.outbound.greeting_wait = std::time::Duration::from_secs(3_600);
    })
    .await;
    let browser = Browser::start().await;
    let mut page = user_page(&browser, &w).await;
    let id = place_through_the_form(&mut page, &w).await;
    page.wait_text("call-title", "Call to +1 (415) 555-0123")
        .await;

    // The call runs: the page follows it without a reload.
    let sid = dialed(&w.twilio).await;
    let mut stream = w.twilio.media_stream(&sid).await;
    until_live(&w.openai, &mut stream).await;
    page.wait_attr("call-status", "data-status", "in_progress")
        .await;
    assert!(page
        .testid("call-live")
        .await
        .is_displayed()
        .await
        .unwrap_or(false));
    speak(&mut stream, 25, 0x21);
    until_heard(&mut stream, 0x11).await;
    speak(&mut stream, 25, 0x22);
    until_heard(&mut stream, 0x13).await;
    while stream.next().await.is_some() {}
    w.twilio.complete_call(&sid, 125).await;

    // Then its result: status, outcome, summary, transcript, cost.
    page.wait_attr("call-status", "data-status", "completed")
        .await;
    page.wait_text("call-summary", "Booked a plumber for Tuesday at nine.")
        .await;
    page.wait_attr("objective-met", "data-met", "true").await;
    // Followed through the call's event stream, not the polling fallback.
    let logged = page.console().await;
    assert!(
        !logged
            .iter()
            .any(|(_, message)| message.contains("call events unavailable")),
        "{logged:?}"
    );
    let turns = page.all("[data-testid=\"turn\"]").await;
    let mut said = Vec::new();
    for turn in &turns {
        said.push((
            turn.attr("data-role")
                .await
                .ok()
                .flatten()
                .unwrap_or_default(),
            turn.text().await.unwrap_or_default(),
        ));
    }
    let position = |needle: &str| {
        said.iter()
            .position(|(_, text)| text.contains(needle))
            .unwrap_or_else(|| panic!("{needle:?} in {said:?}"))
    };
    assert!(position(GREETING) < position(DISCLOSURE) && position(DISCLOSURE) < position(HEARD));
    assert_eq!(said[position(DISCLOSURE)].0, "assistant", "{said:?}");
    assert_eq!(said[position(HEARD)].0, "caller", "{said:?}");
    // The cost the page shows is the API's, estimated beside actual.
    let (_, call) = w
        .app
        .send_json_as(
            actix_web::http::Method::GET,
            &format!("/api/calls/{id}"),
            None,
            Some(&w.user.api_key),
        )
        .await;
    let dollars = |v: &Value| format!("${:.2}", v.as_f64().unwrap_or(f64::NAN));
    let settled = page
        .wait_until(|p| {
            let want = dollars(&call["cost"]["actual"]["total"]);
            async move { p.text("cost-actual").await == want }
        })
        .await;
    assert!(
        settled,
        "actual cost {} vs {}",
        page.text("cost-actual").await,
        call["cost"]
    );
    assert_eq!(
        page.text("cost-estimated").await,
        dollars(&call["cost"]["estimated"]["total"])
    );
    page.screenshot("app-call").await;

    // The dashboard: this month's figures from the user's own record.
    page.click("nav-dashboard").await;
    page.wait_text("stat-calls", "1").await;
    let user = user_json(&w).await;
    assert_eq!(user["month"]["calls"], 1, "{user}");
    assert_eq!(user["month"]["completed"], 1, "{user}");
    assert_eq!(page.text("stat-success").await, "100 %");
    assert_eq!(
        page.text("stat-spend").await,
        format!("{} of $10.00", dollars(&user["quota"]["month_spend_usd"]))
    );
    assert_eq!(page.text("stat-left-hour").await, "4");
    assert_eq!(page.text("stat-left-day").await, "19");
    let minutes: f64 = page.text("stat-minutes").await.parse().expect("minutes");
    let expected = user["month"]["minutes"].as_f64().expect("minutes");
    assert!(
        (minutes - expected).abs() < 0.051,
        "{minutes} vs {expected}"
    );
    let recent = page.all("[data-testid=\"recent-call\"]").await;
    assert_eq!(recent.len(), 1);
    assert_eq!(
        recent[0]
            .attr("data-call-id")
            .await
            .ok()
            .flatten()
            .as_deref(),
        Some(id.as_str())
    );
    page.screenshot("app-dashboard").await;

    // The list, and its filter.
    page.click("nav-calls").await;
    let row =
        format!("[data-testid=\"call-row\"][data-call-id=\"{id}\"][data-status=\"completed\"]");
    page.find(&row).await;
    page.testid("status-filter")
        .await
        .select_by_value("busy")
        .await
        .expect("pick busy");
    let empty = page
        .wait_until(|p| async move {
            p.url().await.contains("status=busy")
                && p.all("[data-testid=\"call-row\"]").await.is_empty()
        })
        .await;
    assert!(empty, "no busy call is listed");
    page.screenshot("app-calls").await;
    browser.close().await;
}

#[actix_web::test]
async fn another_users_call_is_no_such_call_and_a_made_up_status_filter_lists_everything() {
    let w = world(TestDb::Sqlite, Script::new(), "human", |s| {
        // Nothing is dialed: the calls stay queued.
        s.outbound.dispatch_poll = std::time::Duration::from_secs(3_600);
    })
    .await;
    let id = submit(&w).await;
    let other = w.app.create_user("grace@example.com").await;
    let browser = Browser::start().await;
    let mut page = browser.page().await;
    page.sign_in(&w.app, &other.api_key).await;
    page.open(&w.app, &format!("/app/calls/{id}")).await;
    page.wait_text("notice", "No such call.").await;
    // Its own list does not have it, whatever the URL says.
    page.open(&w.app, "/app/calls?status=%3Cscript%3E&page=-3")
        .await;
    page.wait_text("page-info", "Page 1 of 1 · 0 calls").await;
    assert!(page.all("[data-testid=\"call-row\"]").await.is_empty());
    // The owner's does.
    let mut owner = user_page(&browser, &w).await;
    owner.open(&w.app, "/app/calls?status=nonsense").await;
    owner.wait_text("page-info", "· 1 call").await;
    owner
        .find(&format!(
            "[data-testid=\"call-row\"][data-call-id=\"{id}\"]"
        ))
        .await;
    browser.close().await;
}
