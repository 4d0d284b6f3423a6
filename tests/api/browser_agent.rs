//! The softphone page (`/agent`) in headless Chromium against the real engine and
//! the suite's fake Twilio: rings on several pages, answer races, park and
//! retrieve across pages, transfer, hang-up, a socket cut under the page, and bad
//! input (wrong token, refused microphone, malformed engine messages).

use serde_json::json;

use crate::browser::{Browser, Page, PageOptions};
use crate::fault_proxy::FaultProxy;
use crate::helpers::{spawn_app, Agent, TestApp, CALLER, NUMBER};

/// A signed-in softphone page of `agent` (with `?debug=1`), set `available`.
async fn softphone_page(browser: &Browser, app: &TestApp, agent: &Agent) -> Page {
    softphone_page_with(browser, app, agent, PageOptions::default()).await
}

async fn softphone_page_with(
    browser: &Browser,
    app: &TestApp,
    agent: &Agent,
    options: PageOptions,
) -> Page {
    let mut page = browser.page_with(options).await;
    page.sign_in(app, &agent.token).await;
    assert_eq!(page.path().await, "/agent");
    // The token stays in this tab's sessionStorage: reopen with the debug hook.
    page.open(app, "/agent?debug=1").await;
    set_available(&page).await;
    page
}

/// Picks `available` once the socket is up, and waits for the engine's ack.
async fn set_available(page: &Page) {
    let enabled = page
        .wait_until(|p| async move {
            p.testid("presence")
                .await
                .is_enabled()
                .await
                .unwrap_or(false)
        })
        .await;
    assert!(
        enabled,
        "the presence switch never came up (socket not open)"
    );
    page.testid("presence")
        .await
        .select_by_value("available")
        .await
        .expect("pick available");
    page.wait_attr("presence-status", "data-status", "available")
        .await;
}

fn card(kind: &str, call_id: &str) -> String {
    format!("[data-testid=\"{kind}\"][data-call-id=\"{call_id}\"]")
}

fn in_card(kind: &str, call_id: &str, testid: &str) -> String {
    format!("{} [data-testid=\"{testid}\"]", card(kind, call_id))
}

async fn click_css(page: &Page, css: &str) {
    page.find(css)
        .await
        .click()
        .await
        .unwrap_or_else(|err| panic!("click {css}: {err}"));
}

/// Waits until an element matching `css` shows `needle`.
async fn wait_css_text(page: &Page, css: &str, needle: &str) {
    let found = page
        .wait_until(|p| async move {
            match p.all(css).await.first() {
                Some(element) => element.text().await.unwrap_or_default().contains(needle),
                None => false,
            }
        })
        .await;
    let shown = match page.all(css).await.first() {
        Some(element) => element.text().await.unwrap_or_default(),
        None => "<nothing>".into(),
    };
    assert!(found, "{css} shows {shown:?}, not {needle:?}");
}

async fn wait_gone(page: &Page, css: &str) {
    let gone = page
        .wait_until(|p| async move { p.all(css).await.is_empty() })
        .await;
    assert!(gone, "{css} is still on the page");
}

async fn wait_state(page: &Page, state: &str) {
    page.wait_attr("call-state", "data-state", state).await;
}

#[actix_web::test]
async fn a_call_rings_two_pages_and_answering_in_one_shows_answered_by_another_agent_in_the_other()
{
    let app = spawn_app().await;
    app.number_for_everyone().await;
    let ann = app.create_agent("Ann", "production").await;
    let bob = app.create_agent("Bob", "production").await;
    let browser = Browser::start().await;
    let one = softphone_page(&browser, &app, &ann).await;
    let two = softphone_page(&browser, &app, &bob).await;

    let call = app.ring_in(CALLER, NUMBER).await;
    let _twilio = app.open_stream(&call).await;
    let ringing = card("ring-card", &call.call_id);
    one.find(&ringing).await;
    two.find(&ringing).await;
    wait_state(&one, "ringing").await;
    wait_state(&two, "ringing").await;
    // Pretty-printed caller and the number called.
    wait_css_text(&one, &ringing, "+1 (415) 555-9876").await;
    wait_css_text(&one, &ringing, "+1 (415) 555-0100").await;
    one.screenshot("agent-ringing").await;

    click_css(&one, &in_card("ring-card", &call.call_id, "answer")).await;
    wait_state(&one, "connected").await;
    wait_gone(&one, &ringing).await;
    wait_css_text(
        &two,
        &in_card("ring-card", &call.call_id, "ring-reason"),
        "answered by another agent",
    )
    .await;
    wait_gone(&two, &ringing).await;
    wait_state(&two, "idle").await;
    let timer = one.text("call-timer").await;
    assert!(timer.contains(':'), "call timer shows {timer:?}");
    one.screenshot("agent-connected").await;

    // The keypad sends DTMF; the page stays on the call.
    click_css(&one, "[data-testid=\"dtmf-key\"][data-digit=\"5\"]").await;
    wait_state(&one, "connected").await;
    browser.close().await;
}

#[actix_web::test]
async fn a_call_parked_on_one_page_is_retrieved_on_another_and_the_callers_hang_up_shows_there() {
    let app = spawn_app().await;
    app.number_for_everyone().await;
    let ann = app.create_agent("Ann", "production").await;
    let bob = app.create_agent("Bob", "production").await;
    let browser = Browser::start().await;
    let one = softphone_page(&browser, &app, &ann).await;
    let two = softphone_page(&browser, &app, &bob).await;

    let call = app.ring_in(CALLER, NUMBER).await;
    let mut twilio = app.open_stream(&call).await;
    click_css(&one, &in_card("ring-card", &call.call_id, "answer")).await;
    wait_state(&one, "connected").await;

    one.click("park").await;
    wait_state(&one, "parked").await;
    let parked = card("parked-card", &call.call_id);
    two.find(&parked).await;
    // The card shows the slot and the caller's number (`parked` carries `from`).
    wait_css_text(&two, &parked, "Slot 1").await;
    wait_css_text(&two, &parked, "+1 (415) 555-9876").await;
    two.screenshot("agent-parking-lot").await;

    click_css(&two, &in_card("parked-card", &call.call_id, "retrieve")).await;
    wait_state(&two, "connected").await;
    wait_gone(&two, &parked).await;
    wait_gone(&one, &parked).await;

    // The caller hangs up: the page that has the call shows it ended, and why.
    // (The call's state keeps saying why; the notice that also says it fades
    // after 8 s, which a busy machine's page polling may take.)
    twilio.stop();
    wait_state(&two, "ended").await;
    two.wait_text("call-state", "Call ended: the caller hung up.")
        .await;
    browser.close().await;
}

#[actix_web::test]
async fn a_call_transferred_from_one_page_rings_the_picked_agents_page_and_its_hang_up_ends_it() {
    let app = spawn_app().await;
    app.create_number(
        NUMBER,
        "production",
        json!({ "kind": "agents", "agent_ids": [] }),
    )
    .await;
    let ann = app.create_agent("Ann", "production").await;
    let browser = Browser::start().await;
    let one = softphone_page(&browser, &app, &ann).await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let _twilio = app.open_stream(&call).await;
    click_css(&one, &in_card("ring-card", &call.call_id, "answer")).await;
    wait_state(&one, "connected").await;

    // Bob comes on after the call started: only Ann was rung.
    let bob = app.create_agent("Bob", "production").await;
    let two = softphone_page(&browser, &app, &bob).await;
    one.click("transfer").await;
    let target = format!(
        "[data-testid=\"transfer-target\"][data-agent-id=\"{}\"]",
        bob.id
    );
    let enabled = one
        .wait_until(|p| {
            let target = target.clone();
            async move {
                match p.all(&target).await.first() {
                    Some(button) => button.is_enabled().await.unwrap_or(false),
                    None => false,
                }
            }
        })
        .await;
    assert!(enabled, "Bob never showed as a transfer target");
    click_css(&one, &target).await;

    let ringing = card("ring-card", &call.call_id);
    wait_css_text(&two, &ringing, "Transferred by Ann").await;
    wait_state(&one, "idle").await;
    click_css(&two, &in_card("ring-card", &call.call_id, "answer")).await;
    wait_state(&two, "connected").await;

    two.click("hangup").await;
    wait_state(&two, "ended").await;
    let record = app.wait_for_outcome(&call.call_id).await;
    assert_eq!(record["agent_id"], bob.id.as_str(), "{record}");
    browser.close().await;
}

#[actix_web::test]
async fn a_page_whose_socket_is_cut_reconnects_and_offers_its_parked_call_with_one_click_retrieve()
{
    let app = spawn_app().await;
    app.number_for_everyone().await;
    let ann = app.create_agent("Ann", "production").await;
    let bob = app.create_agent("Bob", "production").await;
    let proxy = FaultProxy::start(
        format!("127.0.0.1:{}", app.port)
            .parse()
            .expect("an address"),
    )
    .await;
    let through_proxy = format!("http://{}", proxy.addr);
    let browser = Browser::start().await;
    let page = browser.page().await;
    page.client
        .goto(&format!("{through_proxy}/"))
        .await
        .expect("open the sign-in page through the proxy");
    page.type_into("token", &ann.token).await;
    page.click("sign-in").await;
    let left = page
        .wait_until(|p| async move { p.path().await == "/agent" })
        .await;
    assert!(left, "sign-in did not open the softphone");
    set_available(&page).await;

    let call = app.ring_in(CALLER, NUMBER).await;
    let _twilio = app.open_stream(&call).await;
    let mut other = app.softphone(&bob.token).await;
    click_css(&page, &in_card("ring-card", &call.call_id, "answer")).await;
    wait_state(&page, "connected").await;
    other.send(json!({ "type": "presence", "status": "available" }));
    other.wait_for("presence", |_| true).await;

    // The connection dies under the page: the engine parks the call and offers it
    // to Bob, who declines; the page says it is reconnecting.
    proxy.cut();
    page.find("[data-testid=\"reconnecting\"]:not([hidden])")
        .await;
    other
        .wait_for("ring", |ring| ring["call_id"] == call.call_id.as_str())
        .await;
    other.send(json!({ "type": "decline", "call_id": call.call_id }));
    proxy.heal();

    let parked = card("parked-card", &call.call_id);
    page.find(&parked).await;
    wait_gone(&page, "[data-testid=\"reconnecting\"]:not([hidden])").await;
    wait_state(&page, "parked").await;
    page.screenshot("agent-reconnected-parked").await;
    click_css(&page, &in_card("parked-card", &call.call_id, "retrieve")).await;
    let connected = page
        .wait_until(|p| async move {
            p.testid("call-state")
                .await
                .attr("data-state")
                .await
                .ok()
                .flatten()
                .as_deref()
                == Some("connected")
        })
        .await;
    let notice = page.text("notice").await;
    assert!(
        connected,
        "retrieve did not connect; the page says {notice:?}"
    );
    browser.close().await;
}

#[actix_web::test]
async fn a_wrong_token_on_sign_in_is_refused_clearly_and_nothing_is_stored() {
    let app = spawn_app().await;
    let browser = Browser::start().await;
    let mut page = browser.page().await;
    page.open(&app, "/").await;
    page.type_into("token", "not-a-token").await;
    page.click("sign-in").await;
    page.wait_text("signin-error", "not valid").await;
    assert_eq!(page.path().await, "/");
    let stored = page
        .eval(
            "return JSON.stringify(Object.keys(sessionStorage));",
            vec![],
        )
        .await;
    assert_eq!(stored, json!("[]"));
    // Without a token the softphone sends the visitor back to sign in.
    page.open(&app, "/agent").await;
    let back = page
        .wait_until(|p| async move { p.path().await == "/" })
        .await;
    assert!(
        back,
        "/agent without a token stayed at {}",
        page.url().await
    );
    browser.close().await;
}

#[actix_web::test]
async fn a_refused_microphone_is_said_and_the_page_still_answers_and_hangs_up_from_the_keyboard() {
    let app = spawn_app().await;
    app.number_for_everyone().await;
    let ann = app.create_agent("Ann", "production").await;
    let browser = Browser::start().await;
    let page = softphone_page_with(
        &browser,
        &app,
        &ann,
        PageOptions {
            deny_mic: true,
            ..PageOptions::default()
        },
    )
    .await;
    page.wait_text("notice", "Microphone blocked").await;

    let call = app.ring_in(CALLER, NUMBER).await;
    let _twilio = app.open_stream(&call).await;
    page.find(&card("ring-card", &call.call_id)).await;
    let body = page.find("body").await;
    body.send_keys("a").await.expect("press A");
    wait_state(&page, "connected").await;
    page.find("body")
        .await
        .send_keys("h")
        .await
        .expect("press H");
    wait_state(&page, "ended").await;
    app.wait_for_outcome(&call.call_id).await;
    browser.close().await;
}

#[actix_web::test]
async fn malformed_and_unknown_engine_messages_are_logged_and_ignored_and_the_page_keeps_working() {
    let app = spawn_app().await;
    app.number_for_everyone().await;
    let ann = app.create_agent("Ann", "production").await;
    let browser = Browser::start().await;
    let page = softphone_page(&browser, &app, &ann).await;
    let _ = page.console().await;
    for text in [
        "{not json",
        "[1,2,3]",
        r#"{"type":"no_such_message","x":1}"#,
        r#"{"type":"ring"}"#,
        r#"{"type":"roster","agents":7}"#,
        r#"{"type":"parked","slot":"one"}"#,
    ] {
        page.eval(
            "window.switchboardDebug.receive(arguments[0]);",
            vec![json!(text)],
        )
        .await;
    }
    let console = page.console().await;
    let warnings = console
        .iter()
        .filter(|(level, _)| level == "WARNING")
        .count();
    assert!(warnings >= 6, "{console:?}");
    assert!(page.all("[data-testid=\"ring-card\"]").await.is_empty());
    wait_state(&page, "idle").await;

    let call = app.ring_in(CALLER, NUMBER).await;
    let _twilio = app.open_stream(&call).await;
    click_css(&page, &in_card("ring-card", &call.call_id, "answer")).await;
    wait_state(&page, "connected").await;
    browser.close().await;
}

#[actix_web::test]
async fn the_softphone_fits_a_360_px_wide_window() {
    let app = spawn_app().await;
    app.number_for_everyone().await;
    let ann = app.create_agent("Ann", "production").await;
    let browser = Browser::start().await;
    let page = softphone_page_with(
        &browser,
        &app,
        &ann,
        PageOptions {
            size: Some((360, 800)),
            ..PageOptions::default()
        },
    )
    .await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let _twilio = app.open_stream(&call).await;
    click_css(&page, &in_card("ring-card", &call.call_id, "answer")).await;
    wait_state(&page, "connected").await;
    let widths = page
        .eval(
            "return [document.documentElement.scrollWidth, window.innerWidth];",
            vec![],
        )
        .await;
    let (scroll, inner) = (widths[0].as_f64(), widths[1].as_f64());
    assert!(
        scroll <= inner,
        "the page scrolls sideways at 360 px: {widths}"
    );
    page.screenshot("agent-360px").await;
    browser.close().await;
}
