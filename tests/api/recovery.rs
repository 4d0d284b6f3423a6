//! Every call ends with exactly one final record, also when its engine died.

use switchboard_actors::CallId;

use crate::db::TestDb;
use crate::helpers::{event_kinds, spawn_app_on, spawn_app_with, CALLER, NUMBER};

#[actix_web::test]
async fn calls_left_open_by_a_dead_engine_are_closed_as_interrupted_on_start_up() {
    let first = spawn_app_with(TestDb::Sqlite, |s| s.node_id = "node-a".into()).await;
    let agent = first.create_agent("a", "production").await;
    first.number_for_everyone().await;
    let mut phone = first.available_softphone(&agent).await;
    let call = first.ring_in(CALLER, NUMBER).await;
    let _twilio = first.open_stream(&call).await;
    phone.expect_ring(&call.call_id).await;
    phone.answer(&call.call_id);
    phone.expect("connected").await;
    first
        .wait_for_call(&call.call_id, |c| c["status"] == "connected")
        .await;

    // Another node's open call must survive this node's recovery.
    let other = spawn_app_on(first.database_url.clone(), |s| s.node_id = "node-b".into()).await;
    let other_call = other.ring_in(CALLER, NUMBER).await;
    other
        .wait_for_call(&other_call.call_id, |c| c["status"] == "starting")
        .await;

    // "node-a" starts again on the same database, as after a crash.
    let restarted = spawn_app_on(first.database_url.clone(), |s| s.node_id = "node-a".into()).await;
    let record = restarted.call(&call.call_id).await;
    assert_eq!(record["outcome"], "interrupted");
    assert_eq!(record["status"], "ended");
    assert!(record["ended_at"].is_string());
    let kinds = event_kinds(&record);
    assert_eq!(kinds.last().map(String::as_str), Some("ended"));
    assert!(
        kinds.contains(&"claimed".to_owned()),
        "the trail is kept: {kinds:?}"
    );
    assert_eq!(
        restarted.call(&other_call.call_id).await["ended_at"],
        serde_json::Value::Null
    );
}

#[actix_web::test]
async fn a_graceful_shutdown_closes_open_calls_as_interrupted_before_exiting() {
    let app = crate::helpers::spawn_app().await;
    app.number_for_everyone().await;
    let call = app.ring_in(CALLER, NUMBER).await;
    app.wait_for_call(&call.call_id, |c| c["status"] == "starting")
        .await;

    app.server.stop(true).await;
    app.stopped.await.expect("the engine stops");
    let store = switchboard::store::Store::connect(&app.database_url, "reader")
        .await
        .expect("the database is still there");
    let record = store
        .get_call(&CallId::parse(&call.call_id).expect("a call id"))
        .await
        .expect("readable")
        .expect("the call has its record");
    assert_eq!(record.outcome.as_deref(), Some("interrupted"));
    assert_eq!(record.end_reason.as_deref(), Some("engine_shutdown"));
    assert_eq!(record.events.last().map(|e| e.kind.as_str()), Some("ended"));
}
