//! The parking lot: park, retrieve, the single-winner unpark, slots, the timeout
//! ladder, and calls parked by a dropped softphone.

use std::time::Duration;

use serde_json::json;

use crate::db::TestDb;
use crate::helpers::{
    assert_bridged, event_kinds, spawn_app, spawn_app_with, Softphone, CALLER, NUMBER,
};

fn park(phone: &Softphone, call_id: &str) {
    phone.send(json!({ "type": "park", "call_id": call_id }));
}

fn unpark(phone: &Softphone, call_id: &str) {
    phone.send(json!({ "type": "unpark", "call_id": call_id }));
}

#[actix_web::test]
async fn a_parked_call_hears_hold_audio_and_every_seat_learns_its_slot() {
    let app = spawn_app().await;
    let (agents, mut phones) = app.floor(3).await;
    let (call, mut twilio) = app.answered_call(&mut phones[0]).await;
    twilio.wait_for("clear").await;

    park(&phones[0], &call.call_id);
    let released = phones[0].wait_for("released", |_| true).await;
    assert_eq!(released["reason"], "parked");
    for phone in &mut phones {
        let parked = phone.wait_for("parked", |_| true).await;
        assert_eq!(parked["call_id"], call.call_id.as_str());
        assert_eq!(parked["slot"], 1);
        assert_eq!(parked["parked_by"], agents[0].id.as_str());
    }
    // Hold audio reaches the caller.
    let hold = twilio.next_media().await;
    assert!(!hold.is_empty());

    let record = app
        .wait_for_call(&call.call_id, |c| c["status"] == "parked")
        .await;
    assert!(event_kinds(&record).contains(&"parked".to_owned()));
    assert_eq!(record["agent_id"], agents[0].id.as_str(), "who had it last");
}

#[actix_web::test]
async fn a_parking_chain_moves_the_audio_with_the_call() {
    let app = spawn_app().await;
    let (agents, mut phones) = app.floor(3).await;
    let (call, mut twilio) = app.answered_call(&mut phones[0]).await;
    assert_bridged(&mut twilio, &mut phones[0], 0x10).await;

    // A parks, B retrieves; B parks, C retrieves.
    for (from, to) in [(0, 1), (1, 2)] {
        park(&phones[from], &call.call_id);
        let parker = agents[from].id.clone();
        phones[to]
            .wait_for("parked", |m| m["parked_by"] == parker.as_str())
            .await;
        unpark(&phones[to], &call.call_id);
        let connected = phones[to].wait_for("connected", |_| true).await;
        assert_eq!(connected["call_id"], call.call_id.as_str());
        assert_bridged(&mut twilio, &mut phones[to], 0x20 + to as u8).await;
    }
    let record = app
        .wait_for_call(&call.call_id, |c| {
            event_kinds(c).iter().filter(|k| *k == "unparked").count() == 2
        })
        .await;
    let kinds = event_kinds(&record);
    let trail: Vec<_> = kinds
        .iter()
        .filter(|k| ["claimed", "parked", "unparked"].contains(&k.as_str()))
        .collect();
    assert_eq!(
        trail,
        ["claimed", "parked", "unparked", "parked", "unparked"]
    );
}

#[actix_web::test]
async fn two_calls_parked_at_once_get_different_slots() {
    let app = spawn_app().await;
    let a = app.create_agent("a", "production").await;
    let b = app.create_agent("b", "production").await;
    app.create_number(
        NUMBER,
        "production",
        json!({ "kind": "agents", "agent_ids": [a.id] }),
    )
    .await;
    app.create_number(
        "+14155550101",
        "production",
        json!({ "kind": "agents", "agent_ids": [b.id] }),
    )
    .await;
    let mut pa = app.available_softphone(&a).await;
    let mut pb = app.available_softphone(&b).await;
    let (first, _t1) = app.answered_call(&mut pa).await;
    let second = app.ring_in(CALLER, "+14155550101").await;
    let _t2 = app.open_stream(&second).await;
    pb.expect_ring(&second.call_id).await;
    pb.answer(&second.call_id);
    pb.wait_for("connected", |_| true).await;

    park(&pa, &first.call_id);
    park(&pb, &second.call_id);
    let mut slots = Vec::new();
    for _ in 0..2 {
        let parked = pa.wait_for("parked", |_| true).await;
        slots.push(parked["slot"].as_u64().expect("slot"));
    }
    slots.sort_unstable();
    assert_eq!(slots, [1, 2]);
}

#[actix_web::test]
async fn twenty_agents_unparking_at_once_have_exactly_one_winner_a_hundred_times() {
    let app = spawn_app().await;
    let (_agents, mut phones) = app.floor(20).await;
    let (call, _twilio) = app.answered_call(&mut phones[0]).await;
    let mut holder = 0;
    for round in 0..100 {
        park(&phones[holder], &call.call_id);
        for phone in &mut phones {
            phone.wait_for("parked", |_| true).await;
        }
        for phone in &phones {
            unpark(phone, &call.call_id);
        }
        let mut winners = Vec::new();
        for (i, phone) in phones.iter_mut().enumerate() {
            // Each seat hears `unparked`, and either `connected` or `claim_lost`.
            let mut outcome = None;
            let mut saw_unparked = false;
            while outcome.is_none() || !saw_unparked {
                let message = phone.next().await;
                match message["type"].as_str() {
                    Some("connected") | Some("claim_lost") => {
                        outcome = Some(message["type"].clone())
                    }
                    Some("unparked") => saw_unparked = true,
                    Some("released") => {}
                    other => panic!("round {round}: seat {i} got {other:?}: {message}"),
                }
            }
            if outcome == Some(json!("connected")) {
                winners.push(i);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        holder = winners[0];
    }
}

#[actix_web::test]
async fn an_unretrieved_call_rings_its_parker_then_everyone_then_goes_to_voicemail() {
    let app = spawn_app_with(TestDb::Sqlite, |s| {
        s.calls.parking_timeout = Duration::from_secs_f64(0.3);
        s.calls.ring_timeout = Duration::from_secs_f64(0.3);
    })
    .await;
    let (agents, mut phones) = app.floor(2).await;
    let (call, mut twilio) = app.answered_call(&mut phones[0]).await;
    park(&phones[0], &call.call_id);
    phones[0].wait_for("parked", |_| true).await;

    // Step one: only the parker rings.
    let ring = phones[0].wait_for("ring", |_| true).await;
    assert_eq!(ring["call_id"], call.call_id.as_str());
    phones[0]
        .wait_for("ring_cancel", |m| m["reason"] == "timeout")
        .await;
    // Step two: everyone.
    for phone in &mut phones {
        phone.wait_for("ring", |_| true).await;
        phone
            .wait_for("ring_cancel", |m| m["reason"] == "timeout")
            .await;
    }
    // Then voicemail.
    twilio.wait_for("mark").await;
    let record = app
        .wait_for_call(&call.call_id, |c| c["status"] == "voicemail")
        .await;
    let stages: Vec<_> = record["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "ring")
        .map(|e| {
            (
                e["detail"]["stage"].clone(),
                e["detail"]["agent_ids"].as_array().map(Vec::len),
            )
        })
        .collect();
    assert_eq!(
        stages,
        [
            (json!("first"), Some(1)),
            (json!("parker"), Some(1)),
            (json!("everyone"), Some(2))
        ]
    );
    let kinds = event_kinds(&record);
    let ladder: Vec<_> = kinds
        .iter()
        .filter(|k| ["parked", "park_timeout", "ring_timeout", "voicemail"].contains(&k.as_str()))
        .collect();
    assert_eq!(
        ladder,
        [
            "parked",
            "park_timeout",
            "ring_timeout",
            "ring_timeout",
            "voicemail"
        ]
    );
    let _ = agents;
}

#[actix_web::test]
async fn a_dropped_softphone_parks_the_call_offers_it_and_its_agent_can_take_it_back() {
    let app = spawn_app().await;
    let (agents, mut phones) = app.floor(2).await;
    let (call, mut twilio) = app.answered_call(&mut phones[0]).await;
    twilio.wait_for("clear").await;
    let dropped = phones.remove(0);
    drop(dropped);

    // The caller is kept on hold, parked, and offered to the other agent (the ring
    // and the parking news may come in either order).
    let (mut parked, mut rung) = (None, false);
    while parked.is_none() || !rung {
        let message = phones[0].next().await;
        match message["type"].as_str() {
            Some("parked") => parked = Some(message),
            Some("ring") => rung = message["call_id"] == call.call_id.as_str(),
            _ => {}
        }
    }
    assert_eq!(parked.expect("parked")["reason"], "agent_disconnected");
    assert!(!twilio.next_media().await.is_empty(), "hold audio");
    phones[0].send(json!({ "type": "decline", "call_id": call.call_id }));

    // The agent comes back within the grace period and is handed the call.
    let mut back = app.softphone(&agents[0].token).await;
    let state = back.wait_for("state", |_| true).await;
    assert_eq!(state["calls"][0]["call_id"], call.call_id.as_str());
    assert_eq!(state["calls"][0]["status"], "parked");
    unpark(&back, &call.call_id);
    back.wait_for("connected", |_| true).await;
    assert_bridged(&mut twilio, &mut back, 0x44).await;

    let record = app
        .wait_for_call(&call.call_id, |c| {
            event_kinds(c).contains(&"unparked".to_owned())
        })
        .await;
    let kinds = event_kinds(&record);
    assert!(
        kinds.contains(&"agent_disconnected".to_owned()),
        "{kinds:?}"
    );
}

#[actix_web::test]
async fn a_killed_softphone_leaves_the_caller_on_hold_until_another_agent_answers() {
    let app = spawn_app().await;
    let (_agents, mut phones) = app.floor(2).await;
    let (call, mut twilio) = app.answered_call(&mut phones[0]).await;
    twilio.wait_for("clear").await;
    drop(phones.remove(0));
    phones[0]
        .wait_for("ring", |m| m["call_id"] == call.call_id.as_str())
        .await;
    // Hold audio keeps flowing while the call is offered.
    for _ in 0..3 {
        assert!(!twilio.next_media().await.is_empty());
    }
    phones[0].answer(&call.call_id);
    phones[0].wait_for("connected", |_| true).await;
    assert_bridged(&mut twilio, &mut phones[0], 0x55).await;
}

#[actix_web::test]
async fn parking_and_unparking_what_is_not_yours_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let (_agents, mut phones) = app.floor(2).await;
    let (call, _twilio) = app.answered_call(&mut phones[0]).await;
    // B is not on the call: it may neither park nor hang it up.
    phones[1].send(json!({ "type": "park", "call_id": call.call_id }));
    assert_eq!(
        phones[1].wait_for("error", |_| true).await["code"],
        "not-on-call"
    );
    phones[1].send(json!({ "type": "hangup", "call_id": call.call_id }));
    assert_eq!(
        phones[1].wait_for("error", |_| true).await["code"],
        "not-on-call"
    );
    // Unknown and not-parked calls cannot be unparked.
    unpark(&phones[1], "nosuchcall");
    assert_eq!(
        phones[1].wait_for("error", |_| true).await["code"],
        "not-parked"
    );
    unpark(&phones[1], &call.call_id);
    assert_eq!(
        phones[1].wait_for("error", |_| true).await["code"],
        "not-parked"
    );
    let record = app
        .wait_for_call(&call.call_id, |c| c["status"] == "connected")
        .await;
    assert!(!event_kinds(&record).contains(&"parked".to_owned()));

    // Already retrieved: the second unpark is refused.
    park(&phones[0], &call.call_id);
    phones[1].wait_for("parked", |_| true).await;
    unpark(&phones[1], &call.call_id);
    phones[1].wait_for("connected", |_| true).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    phones[0].wait_for("unparked", |_| true).await;
    unpark(&phones[0], &call.call_id);
    let answer = phones[0].next().await;
    assert!(
        answer["type"] == "claim_lost"
            || (answer["type"] == "error" && answer["code"] == "not-parked"),
        "{answer}"
    );
}
