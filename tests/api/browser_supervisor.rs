//! The supervisor console page (`/supervisor`) in headless Chromium, against the real
//! engine: agents are the raw softphones of `helpers.rs`, the caller is the fake
//! Twilio Media Stream. The console shows the floor live, unparks a dragged card
//! (pointer events, as WebDriver actions produce them), hangs up, transfers,
//! listens, and ignores what it cannot read.

use std::net::SocketAddr;
use std::time::Duration;

use fantoccini::actions::{
    InputSource as _, KeyAction, KeyActions, MouseActions, PointerAction, MOUSE_BUTTON_LEFT,
};
use fantoccini::elements::Element;
use serde_json::json;

use crate::browser::audio::mulaw_tone;
use crate::browser::{Browser, Page, PageOptions};
use crate::helpers::{spawn_app, Agent, Softphone, TestApp, ADMIN_TOKEN, CALLER, NUMBER};

/// A console page, signed in with the admin token, its socket open.
async fn console(browser: &Browser, app: &TestApp, path: &str) -> Page {
    console_with(browser, app, path, PageOptions::default()).await
}

async fn console_with(browser: &Browser, app: &TestApp, path: &str, options: PageOptions) -> Page {
    let mut page = browser.page_with(options).await;
    page.sign_in(app, ADMIN_TOKEN).await;
    assert_eq!(page.path().await, "/supervisor");
    if path != "/supervisor" {
        page.open(app, path).await;
    }
    page.wait_attr("connection", "data-state", "open").await;
    page
}

fn card_css(kind: &str, call_id: &str) -> String {
    format!("[data-testid=\"{kind}\"][data-call-id=\"{call_id}\"]")
}

fn seat_css(agent: &Agent) -> String {
    format!(
        "[data-testid=\"seat-card\"][data-agent-id=\"{}\"]",
        agent.id
    )
}

async fn attr(element: &Element, name: &str) -> Option<String> {
    element.attr(name).await.ok().flatten()
}

/// Waits until the element matching `css` has `name` = `value`.
async fn wait_css_attr(page: &Page, css: &str, name: &str, value: &str) {
    let found = page
        .wait_until(|page| async move {
            match page.all(css).await.first() {
                Some(element) => attr(element, name).await.as_deref() == Some(value),
                None => false,
            }
        })
        .await;
    assert!(found, "{css} never had {name}={value:?}");
}

async fn wait_gone(page: &Page, css: &str) {
    let gone = page
        .wait_until(|page| async move { page.all(css).await.is_empty() })
        .await;
    assert!(gone, "{css} is still on the page");
}

async fn wait_text_in(page: &Page, css: &str, needle: &str) {
    let found = page
        .wait_until(|page| async move {
            match page.all(css).await.first() {
                Some(element) => element.text().await.unwrap_or_default().contains(needle),
                None => false,
            }
        })
        .await;
    let shown = match page.all(css).await.first() {
        Some(element) => element.text().await.unwrap_or_default(),
        None => "(absent)".into(),
    };
    assert!(found, "{css} shows {shown:?}, not {needle:?}");
}

/// Two agents of `production` with available softphones; `NUMBER` rings Ann only.
async fn ann_and_bob(app: &TestApp) -> ((Agent, Softphone), (Agent, Softphone)) {
    let ann = app.create_agent("Ann", "production").await;
    let bob = app.create_agent("Bob", "production").await;
    let ann_phone = app.available_softphone(&ann).await;
    let bob_phone = app.available_softphone(&bob).await;
    app.create_number(
        NUMBER,
        "production",
        json!({ "kind": "agents", "agent_ids": [ann.id] }),
    )
    .await;
    ((ann, ann_phone), (bob, bob_phone))
}

/// A pointer drag, as a mouse makes it: press on the card's top strip (not on its
/// buttons), move past the threshold, then onto the target and release.
async fn drag_onto(page: &Page, card: &Element, target: &Element) {
    let (_, _, _, height) = card.rectangle().await.expect("the card's box");
    let grab_y = -(height / 2.0) as i64 + 8;
    let press = MouseActions::new("mouse".into())
        .then(PointerAction::MoveToElement {
            element: card.clone(),
            duration: None,
            x: 0,
            y: grab_y,
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        })
        .then(PointerAction::MoveBy {
            duration: Some(Duration::from_millis(100)),
            x: 20,
            y: 10,
        });
    page.client
        .perform_actions(press)
        .await
        .expect("press and move the card");
    // Mid-drag: a ghost follows the pointer; the card itself stays in the lot.
    assert_eq!(page.all(".drag-ghost").await.len(), 1, "no drag ghost");
    let release = MouseActions::new("mouse".into())
        .then(PointerAction::MoveToElement {
            element: target.clone(),
            duration: Some(Duration::from_millis(200)),
            x: 0,
            y: 0,
        })
        .then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
    page.client
        .perform_actions(release)
        .await
        .expect("drop the card");
    page.client.release_actions().await.expect("release");
    assert!(page.all(".drag-ghost").await.is_empty(), "the ghost stayed");
}

/// Enter, pressed on whatever has the focus.
async fn press_enter(page: &Page) {
    let enter = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value: '\u{E007}' })
        .then(KeyAction::Up { value: '\u{E007}' });
    page.client
        .perform_actions(enter)
        .await
        .expect("press Enter");
}

/// A click on the card's top strip (its centre may be one of its buttons).
async fn click_top(page: &Page, card: &Element) {
    let (_, _, _, height) = card.rectangle().await.expect("the card's box");
    let click = MouseActions::new("mouse".into())
        .then(PointerAction::MoveToElement {
            element: card.clone(),
            duration: None,
            x: 0,
            y: -(height / 2.0) as i64 + 8,
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        })
        .then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
    page.client
        .perform_actions(click)
        .await
        .expect("click the card");
    page.client.release_actions().await.expect("release");
}

#[actix_web::test]
async fn the_console_shows_the_seats_and_a_call_ringing_then_connected_live() {
    let app = spawn_app().await;
    let ((ann, mut ann_phone), (bob, _bob_phone)) = ann_and_bob(&app).await;
    let browser = Browser::start().await;
    let page = console(&browser, &app, "/supervisor").await;

    wait_css_attr(&page, &seat_css(&ann), "data-presence", "available").await;
    wait_css_attr(&page, &seat_css(&bob), "data-presence", "available").await;
    wait_text_in(&page, &seat_css(&ann), "Ann").await;
    wait_text_in(&page, &seat_css(&bob), "Bob").await;

    let call = app.ring_in(CALLER, NUMBER).await;
    let _twilio = app.open_stream(&call).await;
    ann_phone.expect_ring(&call.call_id).await;
    let card = card_css("call-card", &call.call_id);
    wait_css_attr(&page, &card, "data-status", "ringing").await;
    wait_text_in(&page, &card, "+1 (415) 555-9876").await;

    ann_phone.answer(&call.call_id);
    ann_phone.expect("connected").await;
    wait_css_attr(&page, &card, "data-status", "connected").await;
    wait_css_attr(&page, &card, "data-agent-id", &ann.id).await;
    wait_css_attr(&page, &seat_css(&ann), "data-call-id", &call.call_id).await;
    wait_css_attr(&page, &seat_css(&ann), "data-presence", "busy").await;
    // The seat shows its call's live duration.
    let timer = format!("{} [data-testid=\"call-timer\"]", seat_css(&ann));
    wait_text_in(&page, &timer, ":").await;
    page.screenshot("supervisor-connected").await;

    browser.close().await;
}

#[actix_web::test]
async fn a_parked_card_dragged_onto_a_seat_card_connects_that_agent_and_leaves_the_lot() {
    let app = spawn_app().await;
    let ((_ann, mut ann_phone), (bob, mut bob_phone)) = ann_and_bob(&app).await;
    let browser = Browser::start().await;
    let page = console(&browser, &app, "/supervisor").await;
    wait_css_attr(&page, &seat_css(&bob), "data-presence", "available").await;

    let (call, _twilio) = app.answered_call(&mut ann_phone).await;
    ann_phone.send(json!({ "type": "park", "call_id": call.call_id }));
    bob_phone
        .wait_for("parked", |m| m["call_id"] == call.call_id.as_str())
        .await;

    let parked = card_css("parked-card", &call.call_id);
    let card = page.find(&parked).await;
    wait_text_in(&page, &parked, "parked by Ann").await;
    let seat = page.find(&seat_css(&bob)).await;
    page.screenshot("supervisor-parked").await;
    drag_onto(&page, &card, &seat).await;

    let connected = bob_phone
        .wait_for("connected", |m| m["call_id"] == call.call_id.as_str())
        .await;
    assert_eq!(connected["reason"], "supervisor");
    wait_gone(&page, &parked).await;
    wait_css_attr(
        &page,
        &card_css("call-card", &call.call_id),
        "data-agent-id",
        &bob.id,
    )
    .await;
    wait_css_attr(&page, &seat_css(&bob), "data-call-id", &call.call_id).await;
    page.screenshot("supervisor-unparked").await;

    browser.close().await;
}

#[actix_web::test]
async fn a_parked_card_selected_then_a_seat_picked_with_the_keyboard_is_unparked_there() {
    let app = spawn_app().await;
    let ((_ann, mut ann_phone), (bob, mut bob_phone)) = ann_and_bob(&app).await;
    let browser = Browser::start().await;
    let page = console(&browser, &app, "/supervisor").await;
    wait_css_attr(&page, &seat_css(&bob), "data-presence", "available").await;

    let (call, _twilio) = app.answered_call(&mut ann_phone).await;
    ann_phone.send(json!({ "type": "park", "call_id": call.call_id }));
    let parked = card_css("parked-card", &call.call_id);
    let card = page.find(&parked).await;
    // Enter on the focused card selects it; Enter on a focused seat gives it there.
    page.eval("arguments[0].focus();", vec![json!(card)]).await;
    press_enter(&page).await;
    wait_css_attr(&page, &parked, "aria-pressed", "true").await;
    let seat = page.find(&seat_css(&bob)).await;
    page.eval("arguments[0].focus();", vec![json!(seat)]).await;
    press_enter(&page).await;

    let connected = bob_phone
        .wait_for("connected", |m| m["call_id"] == call.call_id.as_str())
        .await;
    assert_eq!(connected["reason"], "supervisor");
    wait_gone(&page, &parked).await;

    browser.close().await;
}

#[actix_web::test]
async fn hang_up_from_the_console_ends_the_call() {
    let app = spawn_app().await;
    let ((_ann, mut ann_phone), _bob) = ann_and_bob(&app).await;
    let browser = Browser::start().await;
    let page = console(&browser, &app, "/supervisor").await;

    let (call, _twilio) = app.answered_call(&mut ann_phone).await;
    let card = card_css("call-card", &call.call_id);
    wait_css_attr(&page, &card, "data-status", "connected").await;
    page.find(&format!("{card} [data-testid=\"seat-hangup\"]"))
        .await
        .click()
        .await
        .expect("click hang up");

    let ended = ann_phone
        .wait_for("call_ended", |m| m["call_id"] == call.call_id.as_str())
        .await;
    assert_eq!(ended["call_id"], call.call_id.as_str());
    wait_gone(&page, &card).await;
    let record = app.wait_for_outcome(&call.call_id).await;
    assert!(record["ended_at"].is_string(), "{record}");

    browser.close().await;
}

#[actix_web::test]
async fn a_transfer_from_the_console_rings_the_picked_agent_who_takes_the_call() {
    let app = spawn_app().await;
    let ((_ann, mut ann_phone), (bob, mut bob_phone)) = ann_and_bob(&app).await;
    let browser = Browser::start().await;
    let page = console(&browser, &app, "/supervisor").await;

    let (call, _twilio) = app.answered_call(&mut ann_phone).await;
    let card = card_css("call-card", &call.call_id);
    wait_css_attr(&page, &card, "data-status", "connected").await;
    page.find(&format!("{card} [data-testid=\"seat-transfer\"]"))
        .await
        .click()
        .await
        .expect("open the transfer picker");
    page.find(&format!(
        "{card} [data-testid=\"transfer-target\"][data-agent-id=\"{}\"]",
        bob.id
    ))
    .await
    .click()
    .await
    .expect("pick Bob");

    ann_phone
        .wait_for("released", |m| m["call_id"] == call.call_id.as_str())
        .await;
    bob_phone.expect_ring(&call.call_id).await;
    bob_phone.answer(&call.call_id);
    bob_phone
        .wait_for("connected", |m| m["call_id"] == call.call_id.as_str())
        .await;
    wait_css_attr(&page, &card, "data-agent-id", &bob.id).await;
    wait_css_attr(&page, &card, "data-status", "connected").await;

    browser.close().await;
}

#[actix_web::test]
async fn a_command_the_engine_refuses_shows_its_error_in_the_notice() {
    let app = spawn_app().await;
    let ((_ann, mut ann_phone), (bob, mut bob_phone)) = ann_and_bob(&app).await;
    let browser = Browser::start().await;
    let page = console(&browser, &app, "/supervisor").await;

    let (call, _twilio) = app.answered_call(&mut ann_phone).await;
    // Bob goes away: a transfer to him is refused.
    bob_phone.send(json!({ "type": "presence", "status": "away" }));
    bob_phone.expect("presence").await;
    wait_css_attr(&page, &seat_css(&bob), "data-presence", "away").await;
    let card = card_css("call-card", &call.call_id);
    page.find(&format!("{card} [data-testid=\"seat-transfer\"]"))
        .await
        .click()
        .await
        .expect("open the transfer picker");
    page.find(&format!(
        "{card} [data-testid=\"transfer-target\"][data-agent-id=\"{}\"]",
        bob.id
    ))
    .await
    .click()
    .await
    .expect("pick Bob");
    page.wait_text("notice", "agent-away").await;
    // The call is unchanged.
    wait_css_attr(&page, &card, "data-status", "connected").await;

    browser.close().await;
}

#[actix_web::test]
async fn the_console_works_at_360_px_wide() {
    let app = spawn_app().await;
    let ((_ann, mut ann_phone), (bob, mut bob_phone)) = ann_and_bob(&app).await;
    let browser = Browser::start().await;
    let options = PageOptions {
        size: Some((360, 780)),
        ..PageOptions::default()
    };
    let page = console_with(&browser, &app, "/supervisor", options).await;
    let (call, _twilio) = app.answered_call(&mut ann_phone).await;
    ann_phone.send(json!({ "type": "park", "call_id": call.call_id }));
    let parked = card_css("parked-card", &call.call_id);
    page.find(&parked).await;
    let width = page
        .eval(
            "return [document.documentElement.scrollWidth, window.innerWidth];",
            vec![],
        )
        .await;
    assert!(
        width[0].as_f64() <= width[1].as_f64(),
        "the page scrolls sideways at 360 px: {width}"
    );
    page.screenshot("supervisor-360px").await;
    // The lot is below the seats there: the drag scrolls nothing but still works.
    let seat = page.find(&seat_css(&bob)).await;
    page.eval(
        "arguments[0].scrollIntoView({block: 'center'});",
        vec![json!(seat)],
    )
    .await;
    let card = page.find(&parked).await;
    click_top(&page, &card).await;
    wait_css_attr(&page, &parked, "aria-pressed", "true").await;
    seat.click().await.expect("pick Bob's seat");
    bob_phone
        .wait_for("connected", |m| m["call_id"] == call.call_id.as_str())
        .await;

    browser.close().await;
}

/// A TCP proxy in front of the engine that can slip extra text frames into the
/// WebSocket streams it carries from the engine to the browser: how a test makes
/// "the engine" send what the engine never would.
mod injector {
    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::tcp::OwnedReadHalf;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::{broadcast, mpsc};

    pub struct InjectingProxy {
        pub address: String,
        inject: broadcast::Sender<Vec<u8>>,
    }

    impl InjectingProxy {
        pub async fn start(upstream: SocketAddr) -> InjectingProxy {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
            let address = format!("http://{}", listener.local_addr().expect("its address"));
            let (inject, _) = broadcast::channel(16);
            let sender = inject.clone();
            actix_rt::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let frames = sender.subscribe();
                    actix_rt::spawn(async move {
                        if let Ok(server) = TcpStream::connect(upstream).await {
                            carry(client, server, frames).await;
                        }
                    });
                }
            });
            InjectingProxy { address, inject }
        }

        /// Sends `text` as one unmasked, final text frame (RFC 6455 §5.2) to every
        /// WebSocket the proxy carries, between two of the engine's frames.
        pub fn send_text(&self, text: &str) {
            let payload = text.as_bytes();
            let mut frame = vec![0x81];
            match payload.len() {
                n if n < 126 => frame.push(n as u8),
                n => {
                    frame.push(126);
                    frame.extend_from_slice(&(n as u16).to_be_bytes());
                }
            }
            frame.extend_from_slice(payload);
            let _ = self.inject.send(frame);
        }
    }

    async fn carry(client: TcpStream, server: TcpStream, mut inject: broadcast::Receiver<Vec<u8>>) {
        let (mut client_in, mut client_out) = client.into_split();
        let (mut server_in, mut server_out) = server.into_split();
        actix_rt::spawn(async move {
            let _ = tokio::io::copy(&mut client_in, &mut server_out).await;
            let _ = server_out.shutdown().await;
        });
        // The response head, as it comes.
        let mut pending = Vec::new();
        let head_end = loop {
            if let Some(at) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let mut chunk = [0u8; 4096];
            match server_in.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    let _ = client_out.write_all(&pending).await;
                    return;
                }
                Ok(n) => pending.extend_from_slice(&chunk[..n]),
            }
        };
        let upgraded = pending.starts_with(b"HTTP/1.1 101");
        if !upgraded {
            // Plain HTTP: carried byte for byte.
            if client_out.write_all(&pending).await.is_err() {
                return;
            }
            let _ = tokio::io::copy(&mut server_in, &mut client_out).await;
            return;
        }
        if client_out.write_all(&pending[..head_end]).await.is_err() {
            return;
        }
        let rest = pending[head_end..].to_vec();
        let (frames_tx, mut frames) = mpsc::channel(64);
        actix_rt::spawn(read_frames(server_in, rest, frames_tx));
        loop {
            tokio::select! {
                frame = frames.recv() => match frame {
                    Some(frame) => {
                        if client_out.write_all(&frame).await.is_err() {
                            return;
                        }
                    }
                    None => return,
                },
                extra = inject.recv() => match extra {
                    Ok(frame) => {
                        if client_out.write_all(&frame).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }

    /// Cuts the engine's byte stream into whole frames (header and payload).
    async fn read_frames(
        mut server: OwnedReadHalf,
        mut buffer: Vec<u8>,
        out: mpsc::Sender<Vec<u8>>,
    ) {
        loop {
            while let Some(size) = frame_size(&buffer) {
                let frame: Vec<u8> = buffer.drain(..size).collect();
                if out.send(frame).await.is_err() {
                    return;
                }
            }
            let mut chunk = [0u8; 8192];
            match server.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The length of the whole frame at the start of `bytes`, once it is all there.
    fn frame_size(bytes: &[u8]) -> Option<usize> {
        if bytes.len() < 2 {
            return None;
        }
        let masked = bytes[1] & 0x80 != 0;
        let (header, length) = match bytes[1] & 0x7f {
            126 => {
                let b = bytes.get(2..4)?;
                (4, u16::from_be_bytes([b[0], b[1]]) as usize)
            }
            127 => {
                let b = bytes.get(2..10)?;
                (10, u64::from_be_bytes(b.try_into().ok()?) as usize)
            }
            n => (2, n as usize),
        };
        let size = header + if masked { 4 } else { 0 } + length;
        (bytes.len() >= size).then_some(size)
    }
}

/// The console signed in through an [`injector::InjectingProxy`] in front of
/// `app`, its socket open.
async fn console_through_a_proxy(
    browser: &Browser,
    app: &TestApp,
) -> (Page, injector::InjectingProxy) {
    let upstream: SocketAddr = format!("127.0.0.1:{}", app.port).parse().expect("address");
    let proxy = injector::InjectingProxy::start(upstream).await;
    let mut page = browser.page().await;
    page.base = proxy.address.clone();
    page.client
        .goto(&format!("{}/", proxy.address))
        .await
        .expect("open the sign-in page through the proxy");
    page.type_into("token", ADMIN_TOKEN).await;
    page.click("sign-in").await;
    page.wait_attr("connection", "data-state", "open").await;
    (page, proxy)
}

// A single node's floor is always whole; a cluster node says when it is not
// (Redis unreachable, a node without a link) with a `floor` message.
#[actix_web::test]
async fn a_partial_floor_shows_why_until_the_engine_says_it_is_whole_again() {
    let app = spawn_app().await;
    let ((ann, _ann_phone), _bob) = ann_and_bob(&app).await;
    let browser = Browser::start().await;
    let (page, proxy) = console_through_a_proxy(&browser, &app).await;
    page.find(&seat_css(&ann)).await;
    assert!(page.testid("floor-partial").await.is_displayed().await.ok() != Some(true));

    proxy.send_text(
        r#"{"type":"floor","partial":true,"partial_reasons":["redis-unreachable","node-unlinked:node-2"]}"#,
    );
    let shown = page
        .wait_text("floor-partial", "Redis is unreachable")
        .await;
    assert!(shown.contains("node node-2 is not linked"), "{shown}");
    proxy.send_text(r#"{"type":"floor","partial":false,"partial_reasons":[]}"#);
    let hidden = page
        .wait_until(|page| async move {
            page.testid("floor-partial").await.is_displayed().await.ok() == Some(false)
        })
        .await;
    assert!(hidden, "the partial floor notice is still shown");
    // The floor itself was left alone.
    page.find(&seat_css(&ann)).await;

    browser.close().await;
}

#[actix_web::test]
async fn malformed_and_unknown_messages_from_the_engine_are_ignored_and_the_console_keeps_working()
{
    let app = spawn_app().await;
    let ((ann, mut ann_phone), (bob, bob_phone)) = ann_and_bob(&app).await;
    let (call, _twilio) = app.answered_call(&mut ann_phone).await;
    let browser = Browser::start().await;
    let (page, proxy) = console_through_a_proxy(&browser, &app).await;
    wait_css_attr(&page, &seat_css(&bob), "data-presence", "available").await;
    let _ = page.console().await;

    proxy.send_text("{not json");
    proxy.send_text(r#"{"type":"seat","presence":42}"#);
    proxy.send_text(r#"{"type":"snapshot","seats":"everyone"}"#);
    proxy.send_text(r#"{"type":"call","call_id":7}"#);
    proxy.send_text(r#"{"type":"weather","sky":"grey"}"#);
    proxy.send_text(r#"[1,2,3]"#);

    // Still live: the floor is intact and changes show.
    wait_css_attr(&page, &seat_css(&ann), "data-call-id", &call.call_id).await;
    bob_phone.send(json!({ "type": "presence", "status": "away" }));
    wait_css_attr(&page, &seat_css(&bob), "data-presence", "away").await;
    ann_phone.send(json!({ "type": "park", "call_id": call.call_id }));
    page.find(&card_css("parked-card", &call.call_id)).await;
    wait_gone(&page, &card_css("call-card", &call.call_id)).await;
    assert_eq!(page.all("[data-testid=\"seat-card\"]").await.len(), 2);
    assert!(page.testid("notice").await.is_displayed().await.ok() != Some(true));
    let logged = page.console().await;
    let warnings = logged
        .iter()
        .filter(|(level, message)| level == "WARNING" && message.contains("ignored"))
        .count();
    assert!(warnings >= 6, "the page logged {logged:?}");

    browser.close().await;
}

#[actix_web::test]
async fn listen_plays_the_tone_the_caller_sends_in_the_console() {
    let app = spawn_app().await;
    let ((_ann, mut ann_phone), _bob) = ann_and_bob(&app).await;
    let browser = Browser::start().await;
    let page = console(&browser, &app, "/supervisor?debug=1").await;
    let (call, mut twilio) = app.answered_call(&mut ann_phone).await;
    let card = card_css("call-card", &call.call_id);
    wait_css_attr(&page, &card, "data-status", "connected").await;
    let level = "return window.switchboardDebug.playbackLevel();";
    assert_eq!(page.eval(level, vec![]).await.as_f64(), Some(0.0));

    page.find(&format!("{card} [data-testid=\"listen\"]"))
        .await
        .click()
        .await
        .expect("click Listen");
    wait_css_attr(
        &page,
        &format!("{card} [data-testid=\"listen\"]"),
        "aria-pressed",
        "true",
    )
    .await;

    // The caller says a 1 kHz tone, one 20 ms frame at a time, until the page
    // plays it (or 10 s of it have gone by).
    let mut heard = 0.0;
    for frame in 0..500 {
        twilio.send_media(&mulaw_tone(1000.0, 0.5, frame * 160, 160));
        if frame % 5 == 4 {
            heard = page.eval(level, vec![]).await.as_f64().unwrap_or(0.0);
            if heard > 0.05 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(heard > 0.05, "the console played nothing: level {heard}");
    page.screenshot("supervisor-listening").await;

    browser.close().await;
}
