//! The admin's pages (`/app/admin`) in headless Chromium against the real
//! engine: an outbound call whose callee says something the word categories
//! catch is flagged by the post-call review; the admin opens the flag, reads the
//! call's transcript with the flagged turn marked, resolves it with notes;
//! suspends and reinstates the user (a missing reason is refused and shown);
//! the audit trail lists what was done.

use std::time::Duration;

use crate::browser::{Browser, Page};
use crate::db::TestDb;
use crate::fakes::openai::{Reply, Script};
use crate::helpers::ADMIN_TOKEN;
use crate::outbound_e2e::{dialed, submit, until_live, world, DISCLOSURE, GREETING};
use crate::outbound_talk::{speak, until_heard};

/// What the callee says that the `prizes` category (high) catches.
const PRIZE: &str = "So you say I have won a prize?";

async fn admin_page(browser: &Browser, app: &crate::helpers::TestApp) -> Page {
    let mut page = browser.page().await;
    page.sign_in(app, ADMIN_TOKEN).await;
    assert_eq!(page.path().await, "/supervisor");
    page.click("nav-admin").await;
    let there = page
        .wait_until(|p| async move { p.path().await == "/app/admin" })
        .await;
    assert!(there, "the console links the admin pages");
    page
}

#[actix_web::test]
async fn an_admin_reviews_a_flagged_call_resolves_it_suspends_and_reinstates_the_user_and_reads_the_audit_trail(
) {
    let script = Script::new()
        .greeting(Reply::say(DISCLOSURE, 200, 0x11))
        .turn(GREETING, Reply::say("unused", 100, 0x99))
        .turn(
            PRIZE,
            Reply::say("No, nothing like that. Goodbye!", 200, 0x13)
                .then_call("end_call", r#"{"reason":"done"}"#),
        );
    let w = world(TestDb::Sqlite, script, "human", |s| {
        s.outbound.greeting_wait = Duration::from_secs(3_600);
        s.safety.review.poll = Duration::from_millis(200);
    })
    .await;
    submit(&w).await;
    let sid = dialed(&w.twilio).await;
    let mut stream = w.twilio.media_stream(&sid).await;
    until_live(&w.openai, &mut stream).await;
    speak(&mut stream, 25, 0x21);
    until_heard(&mut stream, 0x11).await;
    speak(&mut stream, 25, 0x22);
    until_heard(&mut stream, 0x13).await;
    while stream.next().await.is_some() {}
    w.twilio.complete_call(&sid, 125).await;

    let browser = Browser::start().await;
    let page = admin_page(&browser, &w.app).await;
    // The review flags the call; the open flags list it, most severe first.
    let row = "[data-testid=\"flag-row\"][data-severity=\"high\"]";
    let listed = page
        .wait_until(|p| async move {
            if p.all(row).await.is_empty() {
                // Not reviewed yet: look again.
                p.click("nav-flags").await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                !p.all(row).await.is_empty()
            } else {
                true
            }
        })
        .await;
    assert!(listed, "the flagged call is listed");
    page.find(&format!("{row} [data-testid=\"review\"]"))
        .await
        .click()
        .await
        .expect("open the flag");
    page.wait_text("flag-type", "transcript").await;
    assert!(page.text("flag-reason").await.contains("prize"));
    // The call's transcript, with the turn that said it marked.
    let flagged = page
        .find("[data-testid=\"turn\"][data-flagged=\"true\"]")
        .await;
    assert!(flagged.text().await.unwrap_or_default().contains(PRIZE));
    let turns = page.all("[data-testid=\"turn\"]").await;
    assert!(turns.len() >= 3, "the whole transcript is there");
    page.screenshot("admin-flag").await;

    // Resolve with a warning and notes.
    page.testid("resolve-action")
        .await
        .select_by_value("warn")
        .await
        .expect("pick warn");
    page.type_into("resolve-notes", "Told the user to keep to the script.")
        .await;
    page.click("resolve-submit").await;
    page.wait_attr("flag-resolution", "data-action", "warn")
        .await;
    assert!(page
        .text("flag-resolution")
        .await
        .contains("keep to the script"));

    // Users: a suspension needs a reason; with one, it takes.
    page.click("nav-users").await;
    let user_row = format!("[data-testid=\"user-row\"][data-user-id=\"{}\"]", w.user.id);
    page.find(&format!("{user_row} [data-testid=\"suspend\"]"))
        .await
        .click()
        .await
        .expect("suspend without a reason");
    page.wait_text("notice", "reason").await;
    page.find(&format!("{user_row}[data-status=\"active\"]"))
        .await;
    page.find(&format!("{user_row} [data-testid=\"reason\"]"))
        .await
        .send_keys("Flagged call under review")
        .await
        .expect("type a reason");
    page.find(&format!("{user_row} [data-testid=\"suspend\"]"))
        .await
        .click()
        .await
        .expect("suspend");
    page.find(&format!("{user_row}[data-status=\"suspended\"]"))
        .await;
    let (_, user) = w.app.get_json(&format!("/api/users/{}", w.user.id)).await;
    assert_eq!(user["status"], "suspended", "{user}");
    page.find(&format!("{user_row} [data-testid=\"reason\"]"))
        .await
        .send_keys("Reviewed")
        .await
        .expect("type a reason");
    page.find(&format!("{user_row} [data-testid=\"reinstate\"]"))
        .await
        .click()
        .await
        .expect("reinstate");
    page.find(&format!("{user_row}[data-status=\"active\"]"))
        .await;
    page.screenshot("admin-users").await;

    // The audit trail has each of it, newest first.
    page.click("nav-audit").await;
    page.find("[data-testid=\"audit-row\"][data-action=\"user_reinstated\"]")
        .await;
    let rows = page.all("[data-testid=\"audit-row\"]").await;
    let mut actions = Vec::new();
    for row in &rows {
        actions.push(
            row.attr("data-action")
                .await
                .ok()
                .flatten()
                .unwrap_or_default(),
        );
    }
    assert_eq!(
        actions,
        ["user_reinstated", "user_suspended", "flag_resolved"],
        "newest first"
    );
    page.screenshot("admin-audit").await;
    browser.close().await;
}

#[actix_web::test]
async fn a_users_key_never_opens_the_admin_pages_and_an_unknown_flag_says_so() {
    let app = crate::helpers::spawn_app().await;
    let user = app.create_user("ada@example.com").await;
    let browser = Browser::start().await;
    let mut page = browser.page().await;
    page.sign_in(&app, &user.api_key).await;
    page.open(&app, "/app/admin").await;
    let moved = page
        .wait_until(|p| async move { p.path().await == "/app" })
        .await;
    assert!(moved, "a user's key goes to the user's pages");
    let mut admin = browser.page().await;
    admin.sign_in(&app, ADMIN_TOKEN).await;
    admin.open(&app, "/app/admin/flags/no-such-flag").await;
    admin.wait_text("notice", "No such flag.").await;
    browser.close().await;
}
