//! The supervisor console: snapshot, live events, commands, listening in; and the
//! presence an agent shows (available, away, busy, wrap-up).

use std::time::Duration;

use serde_json::{json, Value};

use crate::db::TestDb;
use crate::helpers::{frame, spawn_app, spawn_app_with, WsPeer, ADMIN_TOKEN};
use crate::raw_ws;

#[actix_web::test]
async fn a_supervisor_needs_the_admin_token() {
    let app = spawn_app().await;
    for token in ["", "wrong"] {
        let url = format!("ws://127.0.0.1:{}/ws/supervisor?token={token}", app.port);
        match WsPeer::connect(&url, None).await {
            Err(awc::error::WsClientError::InvalidResponseStatus(status)) => {
                assert_eq!(status, 401)
            }
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("a console without the admin token was accepted"),
        }
    }
}

#[actix_web::test]
async fn the_snapshot_shows_seats_and_calls_and_then_every_change_follows() {
    let app = spawn_app().await;
    let (agents, mut phones) = app.floor(2).await;
    let (call, _twilio) = app.answered_call(&mut phones[0]).await;
    let (mut console, snapshot) = app.supervisor().await;

    let seats = snapshot["seats"].as_array().expect("seats");
    assert_eq!(seats.len(), 2);
    let busy = seats
        .iter()
        .find(|s| s["agent_id"] == agents[0].id.as_str())
        .expect("seat");
    assert_eq!(
        (busy["presence"].clone(), busy["call_id"].clone()),
        (json!("busy"), json!(call.call_id))
    );
    let calls = snapshot["calls"].as_array().expect("calls");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["status"], "connected");
    assert_eq!(calls[0]["agent_id"], agents[0].id.as_str());

    // Changes arrive as events: presence, parking, the end of the call.
    phones[1].send(json!({ "type": "presence", "status": "away" }));
    let seat = console
        .wait_for("seat", |m| m["agent_id"] == agents[1].id.as_str())
        .await;
    assert_eq!(seat["presence"], "away");
    phones[0].send(json!({ "type": "park", "call_id": call.call_id }));
    let parked = console.wait_for("parked", |_| true).await;
    assert_eq!(parked["slot"], 1);
    // A second console sees the parked call and the freed agent in its snapshot.
    let (_second, later) = app.supervisor().await;
    let freed = later["seats"]
        .as_array()
        .and_then(|s| {
            s.iter()
                .find(|s| s["agent_id"] == agents[0].id.as_str())
                .cloned()
        })
        .expect("seat");
    assert_eq!(
        (freed["presence"].clone(), freed["call_id"].clone()),
        (json!("available"), Value::Null)
    );
    assert_eq!(later["parking"][0]["slot"], 1);
    console.send(json!({ "type": "hangup", "call_id": call.call_id }));
    // The ack and the end of the call may come in either order.
    let (mut acked, mut ended) = (false, false);
    while !(acked && ended) {
        let message = console.next().await;
        match message["type"].as_str() {
            Some("ack") => {
                assert_eq!(message["command"], "hangup");
                assert_eq!(message["call_id"], call.call_id.as_str());
                acked = true;
            }
            Some("call_ended") => ended |= message["call_id"] == call.call_id.as_str(),
            _ => {}
        }
    }
    let record = app.wait_for_outcome(&call.call_id).await;
    assert_eq!(record["end_reason"], "supervisor_hangup");
}

#[actix_web::test]
async fn a_supervisor_parks_and_unparks_to_an_agent_of_its_choice() {
    let app = spawn_app().await;
    let (agents, mut phones) = app.floor(2).await;
    let (call, mut twilio) = app.answered_call(&mut phones[0]).await;
    let (mut console, _) = app.supervisor().await;

    console.send(json!({ "type": "park", "call_id": call.call_id }));
    console.wait_for("ack", |m| m["command"] == "park").await;
    phones[0]
        .wait_for("released", |m| m["reason"] == "parked")
        .await;
    phones[1].wait_for("parked", |_| true).await;

    console.send(json!({ "type": "unpark", "call_id": call.call_id, "agent_id": agents[1].id }));
    console.wait_for("ack", |m| m["command"] == "unpark").await;
    let connected = phones[1].wait_for("connected", |_| true).await;
    assert_eq!(connected["reason"], "supervisor");
    crate::helpers::assert_bridged(&mut twilio, &mut phones[1], 0x66).await;
}

#[actix_web::test]
async fn a_supervisor_transfers_a_call_to_an_agent() {
    let app = spawn_app().await;
    let (agents, mut phones) = app.floor(2).await;
    let (call, mut twilio) = app.answered_call(&mut phones[0]).await;
    let (mut console, _) = app.supervisor().await;
    console.send(json!({ "type": "transfer", "call_id": call.call_id, "agent_id": agents[1].id }));
    console
        .wait_for("ack", |m| m["command"] == "transfer")
        .await;
    phones[0]
        .wait_for("released", |m| m["reason"] == "transferred")
        .await;
    phones[1].wait_for("ring", |_| true).await;
    phones[1].answer(&call.call_id);
    phones[1].wait_for("connected", |_| true).await;
    crate::helpers::assert_bridged(&mut twilio, &mut phones[1], 0x77).await;
}

#[actix_web::test]
async fn a_listening_supervisor_hears_both_sides_mixed() {
    let app = spawn_app().await;
    let (_agents, mut phones) = app.floor(1).await;
    let (call, mut twilio) = app.answered_call(&mut phones[0]).await;
    let (mut console, _) = app.supervisor().await;
    console.send(json!({ "type": "listen", "call_id": call.call_id }));
    console.wait_for("ack", |m| m["command"] == "listen").await;

    // Silence from the caller, a tone from the agent: the mix is the agent's tone.
    let tone = frame(0x2A, 0);
    for _ in 0..10 {
        twilio.send_media(&[0xFF; 160]);
        phones[0].send_audio(tone.clone());
    }
    let mut heard = Vec::new();
    for _ in 0..10 {
        heard.push(console.audio().await);
    }
    let agent_only: Vec<u8> = tone
        .iter()
        .map(|&b| {
            switchboard_actors::audio::linear_to_ulaw(switchboard_actors::audio::ulaw_to_linear(b))
        })
        .collect();
    assert!(heard.iter().all(|f| f.len() == 160));
    assert!(
        heard.iter().any(|f| f[..] == agent_only[..]),
        "the mix carries the agent's audio"
    );
    // And both parties still hear each other unchanged.
    twilio.send_media(&frame(1, 1));
    loop {
        if phones[0].audio().await == frame(1, 1) {
            break;
        }
    }
}

/// What the agent's `tone` sounds like in the mix when the caller is silent.
fn agent_only(tone: &[u8]) -> Vec<u8> {
    tone.iter()
        .map(|&b| {
            switchboard_actors::audio::linear_to_ulaw(switchboard_actors::audio::ulaw_to_linear(b))
        })
        .collect()
}

#[actix_web::test]
async fn a_supervisor_who_unlistens_is_acked_and_hears_no_more_while_another_still_does() {
    let app = spawn_app().await;
    let (_agents, mut phones) = app.floor(1).await;
    let (call, mut twilio) = app.answered_call(&mut phones[0]).await;
    let (mut leaving, _) = app.supervisor().await;
    leaving.send(json!({ "type": "listen", "call_id": call.call_id }));
    leaving.wait_for("ack", |m| m["command"] == "listen").await;
    let before = agent_only(&frame(0x2A, 0));
    for _ in 0..5 {
        twilio.send_media(&[0xFF; 160]);
        phones[0].send_audio(frame(0x2A, 0));
    }
    loop {
        if leaving.audio().await[..] == before[..] {
            break;
        }
    }

    leaving.send(json!({ "type": "unlisten", "call_id": call.call_id }));
    let ack = leaving
        .wait_for("ack", |m| m["command"] == "unlisten")
        .await;
    assert_eq!(ack["call_id"], call.call_id);

    // A second console, listening now, is the witness: every mixed frame goes to
    // each listener at once, so once it has heard the new tone, so would have the
    // first console, had it still been listening.
    let (mut staying, _) = app.supervisor().await;
    staying.send(json!({ "type": "listen", "call_id": call.call_id }));
    staying.wait_for("ack", |m| m["command"] == "listen").await;
    let after = agent_only(&frame(0x55, 0));
    for _ in 0..10 {
        twilio.send_media(&[0xFF; 160]);
        phones[0].send_audio(frame(0x55, 0));
    }
    loop {
        if staying.audio().await[..] == after[..] {
            break;
        }
    }
    // What the first console still gets is what was mixed before it unlistened.
    tokio::time::sleep(Duration::from_millis(200)).await;
    while let Some(late) = leaving.peer.next_binary_now() {
        assert_ne!(
            late[..],
            after[..],
            "the console heard the call after unlisten"
        );
    }

    // Unlisten again, or on a call it never listened to: still acked; an unknown call
    // is not-found.
    leaving.send(json!({ "type": "unlisten", "call_id": call.call_id }));
    leaving
        .wait_for("ack", |m| m["command"] == "unlisten")
        .await;
    leaving.send(json!({ "type": "unlisten", "call_id": "nosuchcall" }));
    let error = leaving.wait_for("error", |_| true).await;
    assert_eq!(error["code"], "not-found");
}

#[actix_web::test]
async fn supervisor_commands_with_unknown_ids_get_an_error_and_the_console_stays() {
    let app = spawn_app().await;
    let (_agents, mut phones) = app.floor(1).await;
    let (call, _twilio) = app.answered_call(&mut phones[0]).await;
    let (mut console, _) = app.supervisor().await;
    for (command, code) in [
        (
            json!({ "type": "park", "call_id": "nosuchcall" }),
            "not-found",
        ),
        (
            json!({ "type": "unpark", "call_id": call.call_id, "agent_id": "nosuchagent" }),
            "agent-unavailable",
        ),
        (
            json!({ "type": "transfer", "call_id": call.call_id, "agent_id": "nosuchagent" }),
            "agent-unavailable",
        ),
        (
            json!({ "type": "listen", "call_id": "nosuchcall" }),
            "not-found",
        ),
        (json!({ "type": "dance" }), "unknown-type"),
        (
            json!({ "type": "unpark", "call_id": call.call_id }),
            "bad-message",
        ),
    ] {
        console.send(command.clone());
        let error = console.wait_for("error", |_| true).await;
        assert_eq!(error["code"], code, "{command}: {error}");
    }
    console
        .peer
        .send_raw(awc::ws::Message::Text("{oops".into()));
    assert_eq!(
        console.wait_for("error", |_| true).await["code"],
        "invalid-json"
    );
    // The call is unchanged, the console still works.
    let record = app.call(&call.call_id).await;
    assert_eq!(record["ended_at"], Value::Null);
    console.send(json!({ "type": "park", "call_id": call.call_id }));
    console.wait_for("ack", |_| true).await;
}

#[actix_web::test]
async fn an_agent_is_busy_on_a_call_then_wraps_up_then_rings_again() {
    let app = spawn_app_with(TestDb::Sqlite, |s| {
        s.calls.wrap_up = Duration::from_secs_f64(0.4)
    })
    .await;
    let (agents, mut phones) = app.floor(1).await;
    let (mut console, _) = app.supervisor().await;
    let (call, mut twilio) = app.answered_call(&mut phones[0]).await;
    let me = agents[0].id.clone();
    let busy = console
        .wait_for("seat", |m| {
            m["agent_id"] == me.as_str() && m["presence"] == "busy"
        })
        .await;
    assert_eq!(busy["call_id"], call.call_id.as_str());

    twilio.stop();
    phones[0].wait_for("call_ended", |_| true).await;
    assert_eq!(phones[0].next().await["status"], "wrap_up");
    console
        .wait_for("seat", |m| {
            m["agent_id"] == me.as_str() && m["presence"] == "wrap_up"
        })
        .await;
    // Not rung while wrapping up: the next call goes to voicemail.
    let during = app
        .ring_in(crate::helpers::CALLER, crate::helpers::NUMBER)
        .await;
    let mut during_twilio = app.open_stream(&during).await;
    during_twilio.wait_for("mark").await;
    // Then available again.
    let back = phones[0].wait_for("presence", |_| true).await;
    assert_eq!(back["status"], "available");
    console
        .wait_for("seat", |m| {
            m["agent_id"] == me.as_str() && m["presence"] == "available"
        })
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let next = app
        .ring_in(crate::helpers::CALLER, crate::helpers::NUMBER)
        .await;
    let _t = app.open_stream(&next).await;
    phones[0]
        .wait_for("ring", |m| m["call_id"] == next.call_id.as_str())
        .await;
}

#[actix_web::test]
async fn agents_cannot_claim_the_engines_presences() {
    let app = spawn_app().await;
    let (_agents, mut phones) = app.floor(1).await;
    for status in ["busy", "wrap_up"] {
        phones[0].send(json!({ "type": "presence", "status": status }));
        assert_eq!(phones[0].expect("error").await["code"], "bad-message");
    }
}

#[actix_web::test]
async fn a_presence_change_during_a_call_is_in_the_calls_trail() {
    let app = spawn_app().await;
    let (agents, mut phones) = app.floor(1).await;
    let (call, _twilio) = app.answered_call(&mut phones[0]).await;
    phones[0].send(json!({ "type": "presence", "status": "away" }));
    phones[0].expect("presence").await;
    let record = app
        .wait_for_call(&call.call_id, |c| {
            crate::helpers::event_kinds(c).contains(&"presence".to_owned())
        })
        .await;
    let event = record["events"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["kind"] == "presence").cloned())
        .expect("presence event");
    assert_eq!(event["agent_id"], agents[0].id.as_str());
    assert_eq!(event["detail"]["status"], "away");
}

/// An agent flips its presence as fast as its socket allows while a console is not
/// reading (a busy browser tab). Each change of a seat supersedes the one still
/// queued for that console, so the console is not cut off ("fell behind") and, once
/// it reads, sees the seat's latest state.
#[actix_web::test]
async fn an_agent_toggling_presence_quickly_does_not_disconnect_a_console_that_reads_slowly() {
    const TOGGLES: usize = 20_000;
    let app = spawn_app().await;
    let flipper = app.create_agent("flipper", "production").await;
    let sentinel = app.create_agent("sentinel", "production").await;
    let mut phone = app.softphone(&flipper.token).await;
    let path = format!("/ws/supervisor?token={ADMIN_TOKEN}");
    let mut console = raw_ws::stalled_socket(&app, &path).await;
    let (_, snapshot) = raw_ws::read_frame(&mut console)
        .await
        .expect("the snapshot");
    let snapshot: Value = serde_json::from_slice(&snapshot).expect("JSON");
    assert_eq!(snapshot["type"], "snapshot");

    for i in 0..TOGGLES {
        let status = if i % 2 == 0 { "available" } else { "away" };
        phone.send(json!({ "type": "presence", "status": status }));
    }
    for _ in 0..TOGGLES {
        phone.expect("presence").await;
    }
    // A change after the burst, to know when the console has read all of it.
    let _sentinel_phone = app.softphone(&sentinel.token).await;

    let (mut flipper_events, mut last) = (0, Value::Null);
    loop {
        let (opcode, payload) = raw_ws::read_frame(&mut console)
            .await
            .expect("the console stays connected");
        assert_ne!(
            opcode,
            raw_ws::CLOSE,
            "the console was closed: {}",
            String::from_utf8_lossy(payload.get(2..).unwrap_or_default())
        );
        let event: Value = serde_json::from_slice(&payload).expect("JSON");
        if event["type"] != "seat" {
            continue;
        }
        if event["agent_id"] == sentinel.id.as_str() {
            break;
        }
        flipper_events += 1;
        last = event;
    }
    assert_eq!(last["presence"], "away", "the latest state wins: {last}");
    assert!(
        flipper_events < TOGGLES,
        "{flipper_events} events for {TOGGLES} changes: nothing was coalesced"
    );
}
