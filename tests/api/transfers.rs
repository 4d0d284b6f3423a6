//! Blind and warm transfers between agents, with the audio checked at each hop.

use serde_json::json;
use std::time::Duration;

use crate::db::TestDb;
use crate::helpers::{
    assert_bridged, event_kinds, frame, spawn_app, spawn_app_with, Agent, Softphone,
};

/// A warm transfer from `phones[0]` to `target` (`phones[1]`), up to the moment the
/// two agents talk.
async fn consult(phones: &mut [Softphone], call_id: &str, target: &Agent) {
    transfer(&phones[0], call_id, target, "warm");
    let ring = phones[1].wait_for("ring", |_| true).await;
    assert_eq!(ring["consult"], true);
    phones[1].answer(call_id);
    phones[1].wait_for("connected", |_| true).await;
    phones[0]
        .wait_for("transfer_status", |m| m["status"] == "consulting")
        .await;
}

fn transfer(phone: &Softphone, call_id: &str, to: &Agent, mode: &str) {
    phone.send(json!({ "type": "transfer", "call_id": call_id, "agent_id": to.id, "mode": mode }));
}

#[actix_web::test]
async fn a_blind_transfer_rings_the_target_who_gets_the_caller() {
    let app = spawn_app().await;
    let (agents, mut phones) = app.floor(2).await;
    let (call, mut twilio) = app.answered_call(&mut phones[0]).await;
    assert_bridged(&mut twilio, &mut phones[0], 0x10).await;

    transfer(&phones[0], &call.call_id, &agents[1], "blind");
    let ring = phones[1].wait_for("ring", |_| true).await;
    assert_eq!(ring["transferred_by"], agents[0].id.as_str());
    let status = phones[0].wait_for("transfer_status", |_| true).await;
    assert_eq!(status["status"], "ringing");
    phones[0]
        .wait_for("released", |m| m["reason"] == "transferred")
        .await;
    phones[1].answer(&call.call_id);
    phones[1].wait_for("connected", |_| true).await;
    phones[0]
        .wait_for("transfer_status", |m| m["status"] == "completed")
        .await;
    assert_bridged(&mut twilio, &mut phones[1], 0x20).await;

    let record = app
        .wait_for_call(&call.call_id, |c| c["agent_id"] == agents[1].id.as_str())
        .await;
    let kinds = event_kinds(&record);
    assert!(
        kinds.contains(&"transferred".to_owned())
            && kinds.contains(&"transfer_accepted".to_owned()),
        "{kinds:?}"
    );
}

#[actix_web::test]
async fn a_declined_blind_transfer_comes_back_to_the_transferring_agent() {
    let app = spawn_app().await;
    let (agents, mut phones) = app.floor(2).await;
    let (call, mut twilio) = app.answered_call(&mut phones[0]).await;
    transfer(&phones[0], &call.call_id, &agents[1], "blind");
    phones[1].wait_for("ring", |_| true).await;
    phones[1].send(json!({ "type": "decline", "call_id": call.call_id }));
    let back = phones[0].wait_for("connected", |_| true).await;
    assert_eq!(back["reason"], "transfer_failed");
    assert_bridged(&mut twilio, &mut phones[0], 0x30).await;
}

#[actix_web::test]
async fn an_unanswered_blind_transfer_whose_agent_is_gone_is_parked() {
    let app = spawn_app_with(TestDb::Sqlite, |s| {
        s.calls.ring_timeout = Duration::from_secs_f64(0.3)
    })
    .await;
    let (agents, mut phones) = app.floor(3).await;
    let (call, _twilio) = app.answered_call(&mut phones[0]).await;
    transfer(&phones[0], &call.call_id, &agents[1], "blind");
    phones[0].wait_for("released", |_| true).await;
    drop(phones.remove(0));
    phones[0].wait_for("ring", |_| true).await;
    let parked = phones[1]
        .wait_for("parked", |m| m["call_id"] == call.call_id.as_str())
        .await;
    assert_eq!(parked["reason"], "transfer_failed");
}

#[actix_web::test]
async fn a_warm_transfer_lets_the_agents_talk_then_hands_over_the_caller() {
    let app = spawn_app().await;
    let (agents, mut phones) = app.floor(2).await;
    let (call, mut twilio) = app.answered_call(&mut phones[0]).await;
    assert_bridged(&mut twilio, &mut phones[0], 0x10).await;

    consult(&mut phones, &call.call_id, &agents[1]).await;
    // The caller is on hold meanwhile.
    assert!(!twilio.next_media().await.is_empty());
    // Agent to agent, byte-exact, both ways.
    for seq in 0..5 {
        phones[0].send_audio(frame(0xA0, seq));
        phones[1].send_audio(frame(0xB0, seq));
    }
    for seq in 0..5 {
        assert_eq!(phones[1].audio().await, frame(0xA0, seq));
        assert_eq!(phones[0].audio().await, frame(0xB0, seq));
    }

    phones[0].send(json!({ "type": "transfer_complete", "call_id": call.call_id }));
    phones[0]
        .wait_for("released", |m| m["reason"] == "transferred")
        .await;
    phones[1]
        .wait_for("transfer_status", |m| m["status"] == "completed")
        .await;
    assert_bridged(&mut twilio, &mut phones[1], 0x40).await;
    let record = app
        .wait_for_call(&call.call_id, |c| c["agent_id"] == agents[1].id.as_str())
        .await;
    let kinds = event_kinds(&record);
    assert!(
        kinds.contains(&"consult_connected".to_owned())
            && kinds.contains(&"transfer_completed".to_owned()),
        "{kinds:?}"
    );
}

#[actix_web::test]
async fn a_cancelled_warm_transfer_returns_the_caller_to_the_first_agent() {
    let app = spawn_app().await;
    let (agents, mut phones) = app.floor(2).await;
    let (call, mut twilio) = app.answered_call(&mut phones[0]).await;
    consult(&mut phones, &call.call_id, &agents[1]).await;
    phones[0].send(json!({ "type": "transfer_cancel", "call_id": call.call_id }));
    phones[1]
        .wait_for("released", |m| m["reason"] == "transfer_cancelled")
        .await;
    phones[0]
        .wait_for("transfer_status", |m| m["status"] == "cancelled")
        .await;
    assert_bridged(&mut twilio, &mut phones[0], 0x50).await;
}

#[actix_web::test]
async fn transfers_to_unknown_away_busy_or_foreign_agents_are_refused() {
    let app = spawn_app().await;
    let (agents, mut phones) = app.floor(3).await;
    let away = &agents[1];
    phones[1].send(json!({ "type": "presence", "status": "away" }));
    phones[1].expect("presence").await;
    let foreign = app.create_agent("elsewhere", "staging").await;
    let _foreign_phone = app.available_softphone(&foreign).await;
    // The third agent is busy on a call of its own.
    app.create_number(
        "+14155550102",
        "production",
        json!({ "kind": "agents", "agent_ids": [agents[2].id] }),
    )
    .await;
    let busy_call = app.ring_in(crate::helpers::CALLER, "+14155550102").await;
    let _busy_twilio = app.open_stream(&busy_call).await;
    phones[2].expect_ring(&busy_call.call_id).await;
    phones[2].answer(&busy_call.call_id);
    phones[2].wait_for("connected", |_| true).await;

    let (call, _twilio) = app.answered_call(&mut phones[0]).await;
    for (target, code) in [
        (json!("nosuchagent"), "agent-unavailable"),
        (json!(away.id), "agent-away"),
        (json!(agents[2].id), "agent-busy"),
        (json!(foreign.id), "wrong-workspace"),
        (json!(agents[0].id), "refused"),
    ] {
        phones[0].send(json!({ "type": "transfer", "call_id": call.call_id, "agent_id": target }));
        let error = phones[0].wait_for("error", |_| true).await;
        assert_eq!(error["code"], code, "{target}: {error}");
    }
    // The call is untouched: the caller still reaches the first agent.
    let record = app
        .wait_for_call(&call.call_id, |c| c["status"] == "connected")
        .await;
    assert!(!event_kinds(&record).contains(&"transferred".to_owned()));
}

#[actix_web::test]
async fn a_consulting_agent_who_hangs_up_leaves_the_caller_with_the_consulted_one() {
    let app = spawn_app().await;
    let (agents, mut phones) = app.floor(2).await;
    let (call, mut twilio) = app.answered_call(&mut phones[0]).await;
    consult(&mut phones, &call.call_id, &agents[1]).await;
    phones[0].send(json!({ "type": "hangup", "call_id": call.call_id }));
    phones[0]
        .wait_for("released", |m| m["reason"] == "transferred")
        .await;
    phones[1]
        .wait_for("transfer_status", |m| m["status"] == "completed")
        .await;
    assert_bridged(&mut twilio, &mut phones[1], 0x60).await;
}
