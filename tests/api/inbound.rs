//! The inbound path end to end: ring everyone, first answer wins, audio both ways,
//! hang up from either side.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{event_kinds, frame, spawn_app, TestApp, CALLER, NUMBER};

async fn floor(app: &TestApp, agents: usize) -> Vec<crate::helpers::Agent> {
    let mut created = Vec::new();
    for i in 0..agents {
        created.push(app.create_agent(&format!("agent {i}"), "production").await);
    }
    app.number_for_everyone().await;
    created
}

#[actix_web::test]
async fn the_engine_answers_health_checks() {
    let app = spawn_app().await;
    let (status, body) = app.get("/healthz", None).await;
    assert_eq!(status, 200);
    let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(body["database"], "ok");
}

#[actix_web::test]
async fn an_incoming_call_rings_every_available_agent_and_the_caller_hears_ringback() {
    let app = spawn_app().await;
    let agents = floor(&app, 3).await;
    let mut a = app.available_softphone(&agents[0]).await;
    let mut b = app.available_softphone(&agents[1]).await;
    // The third agent is connected but away: not rung.
    let mut away = app.softphone(&agents[2].token).await;

    let call = app.ring_in(CALLER, NUMBER).await;
    let mut twilio = app.open_stream(&call).await;

    for phone in [&mut a, &mut b] {
        let ring = phone.expect_ring(&call.call_id).await;
        assert_eq!(ring["from"], CALLER);
        assert_eq!(ring["to"], NUMBER);
    }
    let ringback = twilio.next_media().await;
    assert!(!ringback.is_empty(), "ringback audio reaches the caller");
    assert!(
        away.silent_for(Duration::from_millis(200)).await,
        "away agents are not rung"
    );

    let record = app
        .wait_for_call(&call.call_id, |c| c["status"] == "ringing")
        .await;
    assert!(event_kinds(&record).contains(&"ring".to_owned()));
}

#[actix_web::test]
async fn the_first_answer_wins_and_everyone_else_is_told() {
    let app = spawn_app().await;
    let agents = floor(&app, 3).await;
    let mut phones = Vec::new();
    for agent in &agents {
        phones.push(app.available_softphone(agent).await);
    }
    let call = app.ring_in(CALLER, NUMBER).await;
    let _twilio = app.open_stream(&call).await;
    for phone in &mut phones {
        phone.expect_ring(&call.call_id).await;
    }

    phones[0].answer(&call.call_id);
    let connected = phones[0].expect("connected").await;
    assert_eq!(connected["call_id"], call.call_id.as_str());
    // The late answer loses; the agent who did not answer is rung off.
    phones[1].answer(&call.call_id);
    let mut late = Vec::new();
    late.push(phones[1].next().await);
    late.push(phones[1].next().await);
    let types: Vec<_> = late
        .iter()
        .map(|m| m["type"].as_str().unwrap_or_default())
        .collect();
    assert!(types.contains(&"claim_lost"), "{late:?}");
    assert!(late
        .iter()
        .any(|m| m["type"] == "ring_cancel" && m["reason"] == "answered_elsewhere"));
    let cancel = phones[2].expect("ring_cancel").await;
    assert_eq!(cancel["reason"], "answered_elsewhere");

    let record = app
        .wait_for_call(&call.call_id, |c| c["status"] == "connected")
        .await;
    assert_eq!(record["agent_id"], agents[0].id.as_str());
    let kinds = event_kinds(&record);
    assert_eq!(&kinds[..4], ["created", "media_started", "ring", "claimed"]);
}

#[actix_web::test]
async fn audio_flows_byte_exact_both_ways_and_only_to_the_connected_agent() {
    let app = spawn_app().await;
    let agents = floor(&app, 2).await;
    let mut winner = app.available_softphone(&agents[0]).await;
    let mut other = app.available_softphone(&agents[1]).await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let mut twilio = app.open_stream(&call).await;
    winner.expect_ring(&call.call_id).await;
    other.expect_ring(&call.call_id).await;
    winner.answer(&call.call_id);
    winner.expect("connected").await;
    other.expect("ring_cancel").await;

    // Caller → agent.
    for seq in 0..20 {
        twilio.send_media(&frame(0xA5, seq));
    }
    for seq in 0..20 {
        assert_eq!(winner.audio().await, frame(0xA5, seq), "frame {seq}");
    }
    // Agent → caller: after the ringback is cleared, exactly the agent's frames.
    twilio.wait_for("clear").await;
    for seq in 0..20 {
        winner.send_audio(frame(0x5A, seq));
    }
    for seq in 0..20 {
        assert_eq!(twilio.next_media().await, frame(0x5A, seq), "frame {seq}");
    }
    assert!(
        other.peer.next_binary_now().is_none(),
        "nobody else hears the call"
    );
}

#[actix_web::test]
async fn an_agent_hangup_closes_the_media_stream_and_ends_the_call() {
    let app = spawn_app().await;
    let agents = floor(&app, 1).await;
    let mut phone = app.available_softphone(&agents[0]).await;
    let (call, mut twilio) = app.answered_call(&mut phone).await;

    phone.send(json!({ "type": "hangup", "call_id": call.call_id }));
    let ended = phone.expect("call_ended").await;
    assert_eq!(ended["call_id"], call.call_id.as_str());
    assert_eq!(ended["reason"], "agent_hangup");
    twilio.closed().await;

    let record = app.wait_for_outcome(&call.call_id).await;
    assert_eq!(record["outcome"], "answered");
    assert_eq!(record["status"], "ended");
    assert_eq!(record["agent_id"], agents[0].id.as_str());
    assert_eq!(
        event_kinds(&record).last().map(String::as_str),
        Some("ended")
    );
}

#[actix_web::test]
async fn a_caller_hangup_tells_the_agent_the_call_ended() {
    let app = spawn_app().await;
    let agents = floor(&app, 1).await;
    let mut phone = app.available_softphone(&agents[0]).await;
    let (call, mut twilio) = app.answered_call(&mut phone).await;

    twilio.stop();
    let ended = phone.expect("call_ended").await;
    assert_eq!(ended["reason"], "caller_hangup");
    let record = app.wait_for_outcome(&call.call_id).await;
    assert_eq!(record["outcome"], "answered");

    // The agent is free again and rings for the next call.
    let next = app.ring_in(CALLER, NUMBER).await;
    let _twilio = app.open_stream(&next).await;
    phone.expect_ring(&next.call_id).await;
}

#[actix_web::test]
async fn a_closed_media_socket_ends_a_connected_call_too() {
    let app = spawn_app().await;
    let agents = floor(&app, 1).await;
    let mut phone = app.available_softphone(&agents[0]).await;
    let (_call, twilio) = app.answered_call(&mut phone).await;

    drop(twilio);
    let ended = phone.expect("call_ended").await;
    assert_eq!(ended["reason"], "stream_closed");
}

#[actix_web::test]
async fn a_caller_who_hangs_up_while_ringing_cancels_every_ring() {
    let app = spawn_app().await;
    let agents = floor(&app, 2).await;
    let mut a = app.available_softphone(&agents[0]).await;
    let mut b = app.available_softphone(&agents[1]).await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let mut twilio = app.open_stream(&call).await;
    a.expect_ring(&call.call_id).await;
    b.expect_ring(&call.call_id).await;

    twilio.stop();
    for phone in [&mut a, &mut b] {
        let cancel = phone.expect("ring_cancel").await;
        assert_eq!(cancel["reason"], "caller_hangup");
    }
    let record = app.wait_for_outcome(&call.call_id).await;
    assert_eq!(record["outcome"], "abandoned");
    assert_eq!(record["agent_id"], serde_json::Value::Null);
}
