//! Voicemail: no agent available, every agent declined, or nobody answered in time.

use std::time::Duration;

use serde_json::{json, Value};

use crate::db::TestDb;
use crate::helpers::{
    event_kinds, frame, spawn_app, spawn_app_with, TestApp, TwilioStream, CALLER, NUMBER,
};

/// Plays the caller's side of a voicemail: waits for the prompt's mark (echoed at
/// once), then speaks `frames` frames and hangs up.
async fn leave_message(twilio: &mut TwilioStream, frames: u8) {
    let mark = twilio.wait_for("mark").await;
    assert_eq!(mark["mark"]["name"], "voicemail-prompt");
    // Let the engine take the echoed mark before speaking.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for seq in 0..frames {
        twilio.send_media(&frame(0x33, seq));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    twilio.stop();
}

async fn assert_recording(app: &TestApp, call_id: &str, frames: u8) -> Value {
    let record = app
        .wait_for_call(call_id, |c| c["recording_url"].is_string())
        .await;
    assert_eq!(record["outcome"], "voicemail");
    let (status, wav) = app
        .get(
            &format!("/api/calls/{call_id}/recording"),
            Some(crate::helpers::ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(&wav[0..4], b"RIFF");
    assert_eq!(u16::from_le_bytes([wav[20], wav[21]]), 7, "mu-law WAV");
    let expected: Vec<u8> = (0..frames).flat_map(|seq| frame(0x33, seq)).collect();
    assert_eq!(&wav[58..], &expected[..], "the caller's audio, byte-exact");
    record
}

#[actix_web::test]
async fn with_no_agent_available_the_caller_leaves_a_voicemail() {
    let app = spawn_app().await;
    app.number_for_everyone().await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let mut twilio = app.open_stream(&call).await;
    // The prompt is audio before the mark.
    let prompt = twilio.next_media().await;
    assert!(!prompt.is_empty());
    leave_message(&mut twilio, 25).await;
    let record = assert_recording(&app, &call.call_id, 25).await;
    let kinds = event_kinds(&record);
    assert!(kinds.contains(&"voicemail".to_owned()), "{kinds:?}");
    let voicemail = record["events"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["kind"] == "voicemail"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(voicemail["detail"]["reason"], "no_agents");
    assert!(kinds.contains(&"recording_saved".to_owned()));
}

#[actix_web::test]
async fn when_every_rung_agent_declines_the_call_goes_to_voicemail() {
    let app = spawn_app().await;
    let a = app.create_agent("a", "production").await;
    let b = app.create_agent("b", "production").await;
    app.create_number(
        NUMBER,
        "production",
        json!({ "kind": "agents", "agent_ids": [a.id, b.id] }),
    )
    .await;
    let mut pa = app.available_softphone(&a).await;
    let mut pb = app.available_softphone(&b).await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let mut twilio = app.open_stream(&call).await;
    for phone in [&mut pa, &mut pb] {
        phone.expect_ring(&call.call_id).await;
        phone.send(json!({ "type": "decline", "call_id": call.call_id }));
        let ack = phone.expect("ring_cancel").await;
        assert_eq!(ack["reason"], "declined");
    }
    leave_message(&mut twilio, 10).await;
    let record = assert_recording(&app, &call.call_id, 10).await;
    let kinds = event_kinds(&record);
    assert_eq!(kinds.iter().filter(|k| *k == "declined").count(), 2);
}

#[actix_web::test]
async fn an_unanswered_ring_times_out_to_voicemail() {
    let app = spawn_app_with(TestDb::Sqlite, |s| {
        s.calls.ring_timeout = Duration::from_secs_f64(0.3)
    })
    .await;
    let a = app.create_agent("a", "production").await;
    app.number_for_everyone().await;
    let mut phone = app.available_softphone(&a).await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let mut twilio = app.open_stream(&call).await;
    phone.expect_ring(&call.call_id).await;
    let cancel = phone.expect("ring_cancel").await;
    assert_eq!(cancel["reason"], "timeout");
    leave_message(&mut twilio, 5).await;
    let record = assert_recording(&app, &call.call_id, 5).await;
    assert!(event_kinds(&record).contains(&"ring_timeout".to_owned()));
}

#[actix_web::test]
async fn a_voicemail_route_skips_the_agents() {
    let app = spawn_app().await;
    let a = app.create_agent("a", "production").await;
    let mut phone = app.available_softphone(&a).await;
    app.create_number(NUMBER, "production", json!({ "kind": "voicemail" }))
        .await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let mut twilio = app.open_stream(&call).await;
    leave_message(&mut twilio, 3).await;
    assert_recording(&app, &call.call_id, 3).await;
    assert!(
        phone.silent_for(Duration::from_millis(100)).await,
        "nobody was rung"
    );
}

#[actix_web::test]
async fn a_recording_stops_at_the_configured_limit_and_the_engine_hangs_up() {
    let app = spawn_app_with(TestDb::Sqlite, |s| {
        s.calls.voicemail_max = Duration::from_secs_f64(0.2)
    })
    .await;
    app.create_number(NUMBER, "production", json!({ "kind": "voicemail" }))
        .await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let mut twilio = app.open_stream(&call).await;
    twilio.wait_for("mark").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // 0.2 s is 1,600 bytes: ten frames; the caller keeps talking past it.
    for seq in 0..30 {
        twilio.send_media(&frame(0x33, seq));
    }
    twilio.closed().await;
    let record = app
        .wait_for_call(&call.call_id, |c| c["recording_url"].is_string())
        .await;
    assert_eq!(record["end_reason"], "recording_limit");
    let (_, wav) = app
        .get(
            &format!("/api/calls/{}/recording", call.call_id),
            Some(crate::helpers::ADMIN_TOKEN),
        )
        .await;
    assert_eq!(wav.len(), 58 + 1_600);
}

#[actix_web::test]
async fn a_caller_who_hangs_up_during_the_prompt_abandoned_the_call() {
    let app = spawn_app().await;
    app.create_number(NUMBER, "production", json!({ "kind": "voicemail" }))
        .await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let mut twilio = app.open_stream(&call).await;
    twilio.next_media().await;
    twilio.stop();
    let record = app.wait_for_outcome(&call.call_id).await;
    assert_eq!(record["outcome"], "abandoned");
    assert_eq!(record["recording_url"], Value::Null);
    let (status, _) = app
        .get(
            &format!("/api/calls/{}/recording", call.call_id),
            Some(crate::helpers::ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 404);
}

/// Rows of `recording_chunks` for a call, read straight from the database.
async fn chunks_stored(database_url: &str, call_id: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(database_url)
        .await
        .expect("the test reads the database");
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM recording_chunks WHERE call_id = $1")
        .bind(call_id)
        .fetch_one(&pool)
        .await
        .expect("count");
    pool.close().await;
    count
}

// Issue 9, item 15: a voicemail is persisted as it is recorded, so an engine that
// dies mid-message (no graceful shutdown, no journal flush) keeps what the caller
// said up to the last whole second; start-up recovery makes it the call's
// recording. Twilio sends the caller's audio as 20 ms mu-law `media` messages
// (twilio.com/docs/voice/media-streams/websocket-messages#media-message).
#[actix_web::test]
async fn a_voicemail_cut_off_by_a_crash_keeps_the_audio_up_to_the_last_chunk() {
    let database_url = crate::db::fresh_database_url(TestDb::Sqlite).await;
    let (app, crash) =
        crate::helpers::spawn_crashable_app_on(database_url.clone(), |s| s.node_id = "vm".into())
            .await;
    app.create_number(NUMBER, "production", json!({ "kind": "voicemail" }))
        .await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let mut twilio = app.open_stream(&call).await;
    twilio.wait_for("mark").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // 2.5 s: two whole one-second chunks and half a second that is still pending.
    for seq in 0..125u8 {
        twilio.send_media(&frame(0x5A, seq));
    }
    let deadline = tokio::time::Instant::now() + crate::helpers::PATIENCE;
    while chunks_stored(&database_url, &call.call_id).await < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the chunks never reached the database"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    crash.crash();
    drop(twilio);

    let restarted = crate::helpers::spawn_app_on(database_url, |s| s.node_id = "vm".into()).await;
    let record = restarted.call(&call.call_id).await;
    assert_eq!(record["outcome"], "interrupted");
    assert!(record["recording_url"].is_string(), "{record}");
    let (status, wav) = restarted
        .get(
            &format!("/api/calls/{}/recording", call.call_id),
            Some(crate::helpers::ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(&wav[0..4], b"RIFF");
    let sent: Vec<u8> = (0..125u8).flat_map(|seq| frame(0x5A, seq)).collect();
    assert_eq!(wav.len(), 58 + 16_000, "two whole seconds were kept");
    assert_eq!(
        &wav[58..],
        &sent[..16_000],
        "the caller's audio, byte-exact"
    );
}
