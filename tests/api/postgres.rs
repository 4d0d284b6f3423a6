//! The engine end to end on PostgreSQL (the store suite runs on both in store.rs).

use serde_json::json;

use crate::db::TestDb;
use crate::helpers::{event_kinds, frame, spawn_app_with, CALLER, NUMBER};

#[actix_web::test]
async fn an_answered_call_and_a_voicemail_work_on_postgres() {
    let app = spawn_app_with(TestDb::Postgres, |_| {}).await;
    let agent = app.create_agent("a", "production").await;
    app.number_for_everyone().await;
    let mut phone = app.available_softphone(&agent).await;
    let (call, mut twilio) = app.answered_call(&mut phone).await;
    twilio.send_media(&frame(1, 2));
    assert_eq!(phone.audio().await, frame(1, 2));
    phone.send(json!({ "type": "hangup", "call_id": call.call_id }));
    phone.expect("call_ended").await;
    let record = app.wait_for_outcome(&call.call_id).await;
    assert_eq!(record["outcome"], "answered");
    assert_eq!(
        event_kinds(&record),
        [
            "created",
            "media_started",
            "ring",
            "claimed",
            "hangup",
            "ended"
        ]
    );

    phone.send(json!({ "type": "presence", "status": "away" }));
    phone.expect("presence").await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let mut twilio = app.open_stream(&call).await;
    twilio.wait_for("mark").await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    twilio.send_media(&frame(3, 4));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    twilio.stop();
    let record = app
        .wait_for_call(&call.call_id, |c| c["recording_url"].is_string())
        .await;
    assert_eq!(record["outcome"], "voicemail");
}
