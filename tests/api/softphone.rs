//! The softphone socket under bad input and bad peers.

use std::time::Duration;

use awc::ws::Message;
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde_json::json;
use tokio::io::AsyncWriteExt as _;

use crate::db::TestDb;
use crate::helpers::{
    frame, spawn_app, spawn_app_with, Agent, InboundCall, TestApp, TwilioStream, WsPeer, CALLER,
    NUMBER,
};
use crate::raw_ws;

async fn one_agent(app: &TestApp) -> Agent {
    let agent = app.create_agent("a", "production").await;
    app.number_for_everyone().await;
    agent
}

#[actix_web::test]
async fn a_wrong_or_missing_token_is_refused_before_the_upgrade() {
    let app = spawn_app().await;
    for url in [
        format!("ws://127.0.0.1:{}/ws/agent", app.port),
        format!("ws://127.0.0.1:{}/ws/agent?token=", app.port),
        format!("ws://127.0.0.1:{}/ws/agent?token=sbt_nope", app.port),
    ] {
        match WsPeer::connect(&url, None).await {
            Err(awc::error::WsClientError::InvalidResponseStatus(status)) => {
                assert_eq!(status, 401, "{url}")
            }
            Err(other) => panic!("{url}: {other}"),
            Ok(_) => panic!("{url} was accepted"),
        }
    }
}

#[actix_web::test]
async fn bad_messages_get_an_error_and_the_connection_stays() {
    let app = spawn_app().await;
    let agent = one_agent(&app).await;
    let mut phone = app.softphone(&agent.token).await;
    let cases = [
        (Message::Text("{this is not json".into()), "invalid-json"),
        (
            Message::Text(r#"{"type":"teleport"}"#.into()),
            "unknown-type",
        ),
        (Message::Text(r#"{"type":"answer"}"#.into()), "bad-message"),
        (
            Message::Text(r#"{"type":"answer","call_id":"notringing"}"#.into()),
            "not-rung",
        ),
        (
            Message::Text(r#"{"type":"hangup","call_id":"notmine"}"#.into()),
            "not-on-call",
        ),
        (
            Message::Text(r#"{"type":"decline","call_id":"notringing"}"#.into()),
            "not-rung",
        ),
        (Message::Binary(frame(1, 1)), "no-call"),
    ];
    for (message, code) in cases {
        phone.peer.send_raw(message);
        let error = phone.expect("error").await;
        assert_eq!(error["code"], code, "{error}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // Still connected and usable.
    phone.send(json!({ "type": "presence", "status": "available" }));
    phone.expect("presence").await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let _twilio = app.open_stream(&call).await;
    phone.expect_ring(&call.call_id).await;
}

#[actix_web::test]
async fn a_frame_over_64_kib_closes_the_socket_with_policy_violation() {
    let app = spawn_app().await;
    let agent = one_agent(&app).await;
    let mut phone = app.softphone(&agent.token).await;
    phone.send_audio(Bytes::from(vec![0u8; 64 * 1024 + 1]));
    let reason = phone.peer.closed().await.expect("a close reason");
    assert_eq!(u16::from(reason.code), 1008);
}

#[actix_web::test]
async fn a_second_connection_of_the_same_agent_replaces_the_first() {
    let app = spawn_app().await;
    let agent = one_agent(&app).await;
    let mut first = app.available_softphone(&agent).await;
    let mut second = app.available_softphone(&agent).await;
    first.peer.closed().await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let _twilio = app.open_stream(&call).await;
    second.expect_ring(&call.call_id).await;
}

#[actix_web::test]
async fn a_ringing_seat_that_disconnects_is_dropped_from_the_ring() {
    let app = spawn_app().await;
    let agent = one_agent(&app).await;
    let phone = app.available_softphone(&agent).await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let mut twilio = app.open_stream(&call).await;
    let mut phone = phone;
    phone.expect_ring(&call.call_id).await;
    drop(phone);
    // The only rung seat is gone: the caller is offered voicemail at once.
    let mark = twilio.wait_for("mark").await;
    assert_eq!(mark["mark"]["name"], "voicemail-prompt");
}

#[actix_web::test]
async fn a_connected_agent_whose_softphone_drops_does_not_drop_the_caller() {
    let app = spawn_app().await;
    let a = app.create_agent("a", "production").await;
    let b = app.create_agent("b", "production").await;
    app.number_for_everyone().await;
    let mut pa = app.available_softphone(&a).await;
    let (call, mut twilio) = app.answered_call(&mut pa).await;
    let mut pb = app.available_softphone(&b).await;

    drop(pa);
    // The call is offered again; B takes it and hears the caller.
    pb.expect_ring(&call.call_id).await;
    pb.answer(&call.call_id);
    pb.wait_for("connected", |_| true).await;
    twilio.send_media(&frame(7, 7));
    assert_eq!(pb.audio().await, frame(7, 7));
    let record = app
        .wait_for_call(&call.call_id, |c| c["agent_id"] == b.id.as_str())
        .await;
    let kinds = crate::helpers::event_kinds(&record);
    assert!(
        kinds.contains(&"agent_disconnected".to_owned()),
        "{kinds:?}"
    );
}

/// A softphone that completes the upgrade and goes available, then never reads
/// again, with a tiny receive buffer so the engine feels it at once.
async fn stalled_softphone(app: &TestApp, token: &str) -> tokio::net::TcpStream {
    let mut stream = raw_ws::stalled_socket(app, &format!("/ws/agent?token={token}")).await;
    let presence = json!({ "type": "presence", "status": "available" }).to_string();
    stream
        .write_all(&raw_ws::masked(raw_ws::TEXT, presence.as_bytes()))
        .await
        .expect("send");
    stream
}

/// A stalled softphone (see [`stalled_softphone`]) that answered a call to `number`,
/// the only seat it rings: the call is connected, and the softphone reads nothing more.
async fn stalled_softphone_on_a_call(
    app: &TestApp,
    token: &str,
    number: &str,
) -> (tokio::net::TcpStream, InboundCall, TwilioStream) {
    let mut stalled = stalled_softphone(app, token).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let call = app.ring_in(CALLER, number).await;
    let twilio = app.open_stream(&call).await;
    app.wait_for_call(&call.call_id, |c| c["status"] == "ringing")
        .await;
    let answer = json!({ "type": "answer", "call_id": call.call_id }).to_string();
    stalled
        .write_all(&raw_ws::masked(raw_ws::TEXT, answer.as_bytes()))
        .await
        .expect("send");
    app.wait_for_call(&call.call_id, |c| c["status"] == "connected")
        .await;
    (stalled, call, twilio)
}

#[actix_web::test]
async fn a_stalled_softphone_loses_its_own_oldest_audio_and_stalls_nobody() {
    let app = spawn_app().await;
    let slow = app.create_agent("slow", "production").await;
    let fast = app.create_agent("fast", "production").await;
    app.create_number(
        NUMBER,
        "production",
        json!({ "kind": "agents", "agent_ids": [slow.id] }),
    )
    .await;
    app.create_number(
        "+14155550101",
        "production",
        json!({ "kind": "agents", "agent_ids": [fast.id] }),
    )
    .await;

    // The slow agent's call: the caller talks, nobody reads.
    let (_stalled, slow_call, mut slow_twilio) =
        stalled_softphone_on_a_call(&app, &slow.token, NUMBER).await;
    for seq in 0..4_000u32 {
        slow_twilio.send_media(&frame(0x11, seq as u8));
    }

    // Meanwhile another call is untouched.
    let mut phone = app.available_softphone(&fast).await;
    let call = app.ring_in(CALLER, "+14155550101").await;
    let mut twilio = app.open_stream(&call).await;
    phone.expect_ring(&call.call_id).await;
    phone.answer(&call.call_id);
    phone.expect("connected").await;
    for seq in 0..50 {
        twilio.send_media(&frame(0x22, seq));
        assert_eq!(phone.audio().await, frame(0x22, seq));
    }

    let deadline = tokio::time::Instant::now() + crate::helpers::PATIENCE;
    while app.metric("switchboard_audio_frames_dropped_total").await == 0.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no drop was counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The stalled call still ends cleanly when the caller hangs up.
    slow_twilio.stop();
    let record = app.wait_for_outcome(&slow_call.call_id).await;
    assert_eq!(record["outcome"], "answered");
}

/// A softphone's frame `seq` of a burst: a tag, the sequence number, then filler.
fn burst_frame(seq: u16) -> Vec<u8> {
    let mut frame = vec![0xA5; 160];
    frame[1..3].copy_from_slice(&seq.to_be_bytes());
    frame
}

#[actix_web::test]
async fn a_burst_of_a_thousand_frames_in_one_write_is_relayed_in_order_or_dropped_oldest_never_stalled(
) {
    let app = spawn_app().await;
    let agent = one_agent(&app).await;
    let (mut softphone, _call, mut twilio) =
        stalled_softphone_on_a_call(&app, &agent.token, NUMBER).await;
    let dropped_before = app.metric("switchboard_audio_frames_dropped_total").await;

    // 1,000 binary frames (20 s of audio) written to the socket at once.
    let burst: Vec<u8> = (0..1_000u16)
        .flat_map(|seq| raw_ws::masked(raw_ws::BINARY, &burst_frame(seq)))
        .collect();
    softphone
        .write_all(&burst)
        .await
        .expect("the burst is written");

    // The caller hears them in order; the last one arrives.
    let mut heard: Vec<u16> = Vec::new();
    while heard.last() != Some(&999) {
        let media = twilio.next_media().await;
        if media.len() == 160 && media[0] == 0xA5 {
            heard.push(u16::from_be_bytes([media[1], media[2]]));
        }
    }
    assert!(
        heard.windows(2).all(|pair| pair[0] < pair[1]),
        "in order: {heard:?}"
    );
    // What was not heard was dropped as the oldest of a full queue, and counted.
    let dropped = app.metric("switchboard_audio_frames_dropped_total").await - dropped_before;
    assert_eq!(
        heard.len() as f64 + dropped,
        1_000.0,
        "{} frames heard, {dropped} dropped",
        heard.len()
    );
    // Nothing stalled: the next frame goes through as usual.
    softphone
        .write_all(&raw_ws::masked(raw_ws::BINARY, &burst_frame(1_000)))
        .await
        .expect("one more frame");
    let next = twilio.next_media().await;
    assert_eq!(&next[..3], &[0xA5, 0x03, 0xE8]);
}

/// RFC 6455 §5.5.2–5.5.3: a peer answers every ping with a pong (browsers do so on
/// their own). Audio shows that a softphone sends; only a pong shows that it reads.
#[actix_web::test]
async fn a_softphone_that_sends_audio_but_never_reads_is_closed_after_the_heartbeat_timeout() {
    let app = spawn_app_with(TestDb::Sqlite, |s| {
        s.websocket.heartbeat_interval = Duration::from_secs_f64(1.0);
        s.websocket.client_timeout = Duration::from_secs_f64(2.0);
    })
    .await;
    let agent = one_agent(&app).await;
    let (mut stalled, call, mut twilio) =
        stalled_softphone_on_a_call(&app, &agent.token, NUMBER).await;

    // The agent's side keeps talking; nothing it is sent is ever read.
    let talking = actix_rt::spawn(async move {
        let frame = raw_ws::masked(raw_ws::BINARY, &[0x55; 160]);
        while stalled.write_all(&frame).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    // The caller talks too: more than the kernel's socket buffers hold.
    for seq in 0..20_000u32 {
        twilio.send_media(&frame(0x11, seq as u8));
    }
    // The seat is closed as gone; the caller is kept (parked, offered again).
    let record = app
        .wait_for_call(&call.call_id, |c| {
            crate::helpers::event_kinds(c).contains(&"agent_disconnected".to_owned())
        })
        .await;
    assert!(
        record["ended_at"].is_null(),
        "the caller was dropped: {record}"
    );
    // And the connection itself is dropped, not held for as long as the peer likes:
    // its writes start failing.
    tokio::time::timeout(crate::helpers::PATIENCE, talking)
        .await
        .expect("the engine drops the connection of a softphone that does not read")
        .expect("the talking task");
}

/// Twilio Media Streams send 20 ms of mu-law per `media` message
/// (https://www.twilio.com/docs/voice/media-streams/websocket-messages#media-message),
/// and a softphone's binary frames are 160 bytes (docs/protocol.md §1). A larger
/// payload is cut into those frames, in order, not relayed as one frame.
#[actix_web::test]
async fn a_large_media_payload_reaches_the_softphone_as_160_byte_frames() {
    let app = spawn_app().await;
    let agent = one_agent(&app).await;
    let mut phone = app.available_softphone(&agent).await;
    let (_call, mut twilio) = app.answered_call(&mut phone).await;

    // Ten frames in one message: all arrive, each whole.
    let ten: Vec<u8> = (0..10u8).flat_map(|i| [i; 160]).collect();
    twilio.send_media(&ten);
    for i in 0..10u8 {
        assert_eq!(phone.audio().await, Bytes::from(vec![i; 160]));
    }

    // 48 KB (6 s) in one message: more than the softphone's 1 s audio bound, so the
    // oldest frames make way, but every frame is 160 bytes and the newest arrives.
    let burst: Vec<u8> = (0..300u32).flat_map(|i| [(i % 251) as u8; 160]).collect();
    twilio.send_media(&burst);
    let newest = Bytes::copy_from_slice(&burst[burst.len() - 160..]);
    loop {
        let frame = phone.audio().await;
        assert_eq!(frame.len(), 160);
        if frame == newest {
            break;
        }
    }
}

#[actix_web::test]
async fn a_roster_longer_than_a_fragment_arrives_in_fragments_that_join_into_the_whole_roster() {
    let app = spawn_app().await;
    // 60 seats with 100-character names of two-byte letters: a roster of ~15 KB,
    // whose fragments cut names (and letters) in two.
    let mut phones = Vec::new();
    for i in 0..60 {
        let name = format!("{i:02}{}", "é".repeat(98));
        let agent = app.create_agent(&name, "production").await;
        phones.push(app.softphone(&agent.token).await);
    }
    let last = app.create_agent(&"z".repeat(100), "production").await;
    let url = format!("ws://127.0.0.1:{}/ws/agent?token={}", app.port, last.token);
    let (_response, mut ws) = awc::Client::new()
        .ws(url)
        .max_frame_size(1 << 20)
        .connect()
        .await
        .expect("the softphone connects");
    let mut fragments = Vec::new();
    let mut roster = None;
    while roster.is_none() {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("the roster in time")
            .expect("the socket open")
            .expect("a frame");
        match frame {
            awc::ws::Frame::Continuation(item) => {
                use actix_http::ws::Item;
                match item {
                    Item::FirstText(part) | Item::Continue(part) => fragments.push(part),
                    Item::Last(part) => {
                        fragments.push(part);
                        roster = Some(fragments.concat());
                    }
                    Item::FirstBinary(_) => panic!("a roster is text"),
                }
            }
            awc::ws::Frame::Text(text) => {
                let message: serde_json::Value = serde_json::from_slice(&text).expect("JSON");
                assert_ne!(
                    message["type"], "roster",
                    "a whole roster of 61 seats: {text:?}"
                );
            }
            _ => {}
        }
    }
    assert!(fragments.len() >= 2, "{} fragments", fragments.len());
    assert!(
        fragments.iter().all(|part| part.len() <= 4 * 1024),
        "fragments of {:?} bytes",
        fragments.iter().map(|part| part.len()).collect::<Vec<_>>()
    );
    let roster: serde_json::Value =
        serde_json::from_slice(&roster.expect("joined")).expect("the fragments join into JSON");
    assert_eq!(roster["type"], "roster");
    let agents = roster["agents"].as_array().expect("agents");
    assert_eq!(agents.len(), 61);
    assert!(agents
        .iter()
        .filter(|a| a["name"] != "z".repeat(100))
        .all(|a| a["name"]
            .as_str()
            .is_some_and(|name| name.ends_with(&"é".repeat(98)))));
    drop(phones);
}
