//! A database outage (issue 9, item 10): the engine keeps taking calls, callbacks
//! and softphones, tells API clients when to come back, and shuts down in bounded
//! time without losing the journal. The outage is real: PostgreSQL refuses
//! connections to the test's database and cuts the open ones
//! (`crate::db::set_postgres_reachable`).

use serde_json::json;
use std::time::Duration;

use crate::db::{set_postgres_reachable, TestDb};
use crate::helpers::{
    event_kinds, spawn_app_on, spawn_app_with, ADMIN_TOKEN, CALLER, NUMBER, PATIENCE,
};

// Twilio sends status callbacks to the StatusCallback URL after the call's events
// (twilio.com/docs/voice/api/call-resource#statuscallback) and retries nothing on
// a 5xx; a callback the engine answers 500 is gone. During an outage it must be
// taken (2xx) into the journal and land in the trail once the database is back.
#[actix_web::test]
async fn during_an_outage_a_status_callback_for_an_ended_call_is_taken_and_lands_later() {
    let first = spawn_app_with(TestDb::Postgres, |s| s.node_id = "node-a".into()).await;
    first
        .create_number(NUMBER, "production", json!({ "kind": "voicemail" }))
        .await;
    let call = first.ring_in(CALLER, NUMBER).await;
    let mut twilio = first.open_stream(&call).await;
    twilio.wait_for("mark").await;
    twilio.stop();
    first.wait_for_outcome(&call.call_id).await;
    // Another node of the cluster gets the callback: it never saw the call.
    let other = spawn_app_on(first.database_url.clone(), |s| s.node_id = "node-b".into()).await;

    set_postgres_reachable(&first.database_url, false).await;
    assert_eq!(
        other.status_callback(&call.call_sid, "completed").await,
        204
    );
    assert_eq!(
        first.status_callback(&call.call_sid, "completed").await,
        204
    );
    set_postgres_reachable(&first.database_url, true).await;

    let record = other
        .wait_for_call(&call.call_id, |c| {
            event_kinds(c)
                .iter()
                .filter(|k| *k == "twilio_status")
                .count()
                == 2
        })
        .await;
    let kinds = event_kinds(&record);
    assert_eq!(
        kinds.iter().rev().take(2).collect::<Vec<_>>(),
        ["twilio_status", "twilio_status"],
        "after the end: {kinds:?}"
    );
}

#[actix_web::test]
async fn during_an_outage_softphones_of_known_agents_still_connect() {
    let app = spawn_app_with(TestDb::Postgres, |_| {}).await;
    let agent = app.create_agent("a", "production").await;
    let gone = app.create_agent("b", "production").await;
    let response = app
        .client
        .delete(format!("{}/api/agents/{}", app.address, gone.id))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("the engine answers");
    assert!(response.status().is_success(), "{}", response.status());
    set_postgres_reachable(&app.database_url, false).await;

    let mut phone = app.available_softphone(&agent).await;
    phone.send(json!({ "type": "presence", "status": "away" }));
    assert_eq!(phone.expect("presence").await["status"], "away");
    // An unknown token, and a deleted agent's, are still refused.
    for token in ["sbt_unknown", gone.token.as_str()] {
        let url = format!("ws://127.0.0.1:{}/ws/agent?token={token}", app.port);
        assert!(crate::helpers::WsPeer::connect(&url, None).await.is_err());
    }
    set_postgres_reachable(&app.database_url, true).await;
}

// RFC 9110 §15.6.4: 503 is "temporarily overloaded or down for maintenance", and
// §10.2.3: the server MAY send Retry-After with it to say how long to wait.
#[actix_web::test]
async fn during_an_outage_the_admin_api_answers_503_with_retry_after() {
    let app = spawn_app_with(TestDb::Postgres, |_| {}).await;
    set_postgres_reachable(&app.database_url, false).await;
    let mut response = app
        .client
        .get(format!("{}/api/agents", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("the engine answers");
    set_postgres_reachable(&app.database_url, true).await;
    assert_eq!(response.status(), 503);
    let retry_after = response
        .headers()
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(retry_after.is_some_and(|secs| secs > 0), "{retry_after:?}");
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(body["code"], "database-unavailable");
}

/// A shutdown during an outage ends after `journal.shutdown_timeout_secs`; the
/// journal it could not write is in the spill file, and the next start on the
/// database writes it: the call ends as the shutdown ended it, not as a restart.
#[actix_web::test]
async fn a_shutdown_during_an_outage_is_bounded_and_the_next_start_writes_what_was_left() {
    let app = spawn_app_with(TestDb::Postgres, |s| {
        s.node_id = "node-a".into();
        s.journal.shutdown_timeout = Duration::from_secs_f64(0.3);
    })
    .await;
    app.number_for_everyone().await;
    let call = app.ring_in(CALLER, NUMBER).await;
    app.wait_for_call(&call.call_id, |c| c["status"] == "starting")
        .await;

    set_postgres_reachable(&app.database_url, false).await;
    app.server.stop(true).await;
    // Generous: the point is that it ends at all (before, it waited for ever).
    tokio::time::timeout(PATIENCE * 3, app.stopped)
        .await
        .expect("the shutdown is bounded")
        .expect("the engine stops");
    let spill = crate::helpers::spill_path_for(&app.database_url).replace("{node_id}", "node-a");
    assert!(std::path::Path::new(&spill).exists(), "{spill}");

    set_postgres_reachable(&app.database_url, true).await;
    let next = spawn_app_on(app.database_url.clone(), |s| s.node_id = "node-a".into()).await;
    let record = next.call(&call.call_id).await;
    assert_eq!(record["outcome"], "interrupted");
    assert_eq!(record["end_reason"], "engine_shutdown", "{record}");
    assert!(!std::path::Path::new(&spill).exists());
}

/// The database does not fail, it hangs (a network partition, through
/// `fault_proxy`): nothing errors, queries just never come back. A status callback
/// and a softphone connect are still answered — after a bounded wait, from the
/// journal and the token cache — and the callback lands once the network heals.
#[actix_web::test]
async fn when_the_database_hangs_callbacks_and_softphones_are_still_answered() {
    let direct = crate::db::fresh_database_url(TestDb::Postgres).await;
    let proxy = crate::fault_proxy::FaultProxy::start(
        "127.0.0.1:5432".parse().expect("the PostgreSQL address"),
    )
    .await;
    assert!(direct.contains("127.0.0.1:5432"), "{direct}");
    let via = direct.replace("127.0.0.1:5432", &proxy.addr.to_string());
    let first = spawn_app_on(via.clone(), |s| s.node_id = "node-a".into()).await;
    let agent = first.create_agent("a", "production").await;
    first
        .create_number(NUMBER, "production", json!({ "kind": "voicemail" }))
        .await;
    let call = first.ring_in(CALLER, NUMBER).await;
    let mut twilio = first.open_stream(&call).await;
    twilio.wait_for("mark").await;
    twilio.stop();
    first.wait_for_outcome(&call.call_id).await;
    let other = spawn_app_on(via, |s| s.node_id = "node-b".into()).await;

    proxy.hang();
    assert_eq!(
        other.status_callback(&call.call_sid, "completed").await,
        204
    );
    let mut phone = other.available_softphone(&agent).await;
    proxy.heal();

    phone.send(json!({ "type": "presence", "status": "away" }));
    assert_eq!(phone.expect("presence").await["status"], "away");
    let record = first
        .wait_for_call(&call.call_id, |c| {
            event_kinds(c).last().map(String::as_str) == Some("twilio_status")
        })
        .await;
    assert_eq!(record["outcome"], "abandoned");
}

/// The connection to the database is reset (through `fault_proxy`): the admin API
/// answers 503 with `Retry-After` (RFC 9110 §15.6.4, §10.2.3), then 200 once the
/// database is reachable again.
#[actix_web::test]
async fn when_the_database_connection_is_cut_the_admin_api_answers_503() {
    let direct = crate::db::fresh_database_url(TestDb::Postgres).await;
    let proxy = crate::fault_proxy::FaultProxy::start(
        "127.0.0.1:5432".parse().expect("the PostgreSQL address"),
    )
    .await;
    let app = spawn_app_on(
        direct.replace("127.0.0.1:5432", &proxy.addr.to_string()),
        |_| {},
    )
    .await;
    proxy.cut();
    let (status, body) = app.get_json("/api/agents").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "database-unavailable");
    proxy.heal();
    let (status, body) = app.get_json("/api/agents").await;
    assert_eq!(status, 200, "{body}");
}
