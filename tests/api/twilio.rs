//! The Twilio side: signatures, malformed requests, unknown numbers and calls,
//! status callbacks, and the media stream handshake.

use std::time::Duration;

use awc::ws::Message;
use serde_json::{json, Value};

use crate::helpers::{
    event_kinds, new_call_sid, spawn_app, TestApp, WsPeer, ADMIN_TOKEN, CALLER, NUMBER,
    TWILIO_TOKEN,
};
use switchboard::twilio::signature::sign;
use switchboard_actors::CallId;

async fn calls_for_sid(app: &TestApp, sid: &str) -> Vec<Value> {
    let (status, body) = app.get_json(&format!("/api/calls?call_sid={sid}")).await;
    assert_eq!(status, 200, "{body}");
    body.as_array().cloned().unwrap_or_default()
}

async fn with_number(app: &TestApp) {
    app.number_for_everyone().await;
}

#[actix_web::test]
async fn an_unsigned_webhook_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    with_number(&app).await;
    let sid = new_call_sid();
    let params = [("CallSid", sid.as_str()), ("From", CALLER), ("To", NUMBER)];
    let (status, _) = app.form_post("/twilio/voice", &params, None).await;
    assert_eq!(status, 403);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(calls_for_sid(&app, &sid).await.is_empty());
    assert_eq!(app.metric("switchboard_calls_started_total").await, 0.0);
}

#[actix_web::test]
async fn a_badly_signed_webhook_is_refused() {
    let app = spawn_app().await;
    with_number(&app).await;
    let sid = new_call_sid();
    let params = [("CallSid", sid.as_str()), ("From", CALLER), ("To", NUMBER)];
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    // Signed with the wrong token, over the wrong URL, or for other parameters.
    let wrong_token = sign(
        "not-the-token",
        &format!("{}/twilio/voice", app.address),
        &owned,
    );
    let wrong_url = sign(
        TWILIO_TOKEN,
        "https://elsewhere.example/twilio/voice",
        &owned,
    );
    let mut tampered = owned.clone();
    tampered[1].1 = "+14155550199".into();
    let other_params = sign(
        TWILIO_TOKEN,
        &format!("{}/twilio/voice", app.address),
        &tampered,
    );
    for signature in [wrong_token, wrong_url, other_params, "garbage".into()] {
        let (status, _) = app
            .form_post("/twilio/voice", &params, Some(&signature))
            .await;
        assert_eq!(status, 403, "{signature}");
    }
    assert!(calls_for_sid(&app, &sid).await.is_empty());
}

#[actix_web::test]
async fn a_malformed_form_is_a_bad_request() {
    let app = spawn_app().await;
    with_number(&app).await;
    // Signed, but without a CallSid, or with one of the wrong shape.
    let (status, body) = app
        .twilio_post("/twilio/voice", &[("From", CALLER), ("To", NUMBER)])
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("CallSid"));
    let (status, _) = app
        .twilio_post(
            "/twilio/voice",
            &[("CallSid", "CA123"), ("From", CALLER), ("To", NUMBER)],
        )
        .await;
    assert_eq!(status, 400);
    // Not a form at all.
    let res = app
        .client
        .post(format!("{}/twilio/voice", app.address))
        .insert_header((
            "X-Twilio-Signature",
            sign(TWILIO_TOKEN, &format!("{}/twilio/voice", app.address), &[]),
        ))
        .send_json(&json!({ "CallSid": "x" }))
        .await
        .expect("reaches the engine");
    assert_eq!(res.status(), 400);
}

#[actix_web::test]
async fn a_call_to_an_unknown_number_is_told_so_hung_up_and_recorded() {
    let app = spawn_app().await;
    let sid = new_call_sid();
    let (status, twiml) = app.voice_webhook(&sid, CALLER, "+14155550111").await;
    assert_eq!(status, 200);
    assert!(twiml.contains("<Say>"), "{twiml}");
    assert!(twiml.contains("<Hangup/>"), "{twiml}");
    assert!(!twiml.contains("<Stream"), "{twiml}");
    let deadline = tokio::time::Instant::now() + crate::helpers::PATIENCE;
    let call = loop {
        if let Some(call) = calls_for_sid(&app, &sid).await.pop() {
            if call["ended_at"].is_string() {
                break call;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the call was never recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(call["outcome"], "failed");
    assert_eq!(call["end_reason"], "unknown_number");
    assert_eq!(event_kinds(&call), ["created", "rejected", "ended"]);
}

#[actix_web::test]
async fn the_answer_streams_the_call_to_the_engine_with_its_call_id() {
    let app = spawn_app().await;
    with_number(&app).await;
    let sid = new_call_sid();
    let (status, twiml) = app.voice_webhook(&sid, CALLER, NUMBER).await;
    assert_eq!(status, 200);
    let stream_url = format!(
        r#"<Stream url="ws://127.0.0.1:{}/twilio/stream">"#,
        app.port
    );
    assert!(twiml.contains("<Response><Connect>"), "{twiml}");
    assert!(twiml.contains(&stream_url), "{twiml}");
    let call_id = crate::helpers::stream_parameter(&twiml, "call_id").expect("call_id");
    // A retried webhook for the same CallSid is the same call.
    let (_, again) = app.voice_webhook(&sid, CALLER, NUMBER).await;
    assert_eq!(
        crate::helpers::stream_parameter(&again, "call_id"),
        Some(call_id)
    );
}

#[actix_web::test]
async fn status_callbacks_land_in_the_trail_and_completed_ends_an_open_call() {
    let app = spawn_app().await;
    with_number(&app).await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let mut twilio = app.open_stream(&call).await;
    // Voicemail prompt (nobody available); then Twilio reports the call progress.
    twilio.wait_for("mark").await;
    assert_eq!(
        app.status_callback(&call.call_sid, "in-progress").await,
        204
    );
    assert_eq!(app.status_callback(&call.call_sid, "completed").await, 204);
    let record = app.wait_for_outcome(&call.call_id).await;
    assert_eq!(record["end_reason"], "twilio_completed");
    let statuses: Vec<_> = record["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "twilio_status")
        .map(|e| e["detail"]["status"].clone())
        .collect();
    assert_eq!(statuses, [json!("in-progress"), json!("completed")]);
    twilio.closed().await;
    // A late callback for the ended call still lands, after the end.
    assert_eq!(app.status_callback(&call.call_sid, "completed").await, 204);
    let record = app
        .wait_for_call(&call.call_id, |c| {
            event_kinds(c).last().map(String::as_str) == Some("twilio_status")
        })
        .await;
    let seqs: Vec<i64> = record["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["seq"].as_i64().expect("seq"))
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

#[actix_web::test]
async fn a_failed_status_ends_a_ringing_call_as_failed() {
    let app = spawn_app().await;
    with_number(&app).await;
    let agent = app.create_agent("a", "production").await;
    let mut phone = app.available_softphone(&agent).await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let _twilio = app.open_stream(&call).await;
    phone.expect_ring(&call.call_id).await;
    assert_eq!(app.status_callback(&call.call_sid, "failed").await, 204);
    let cancel = phone.expect("ring_cancel").await;
    assert_eq!(cancel["reason"], "caller_hangup");
    let record = app.wait_for_outcome(&call.call_id).await;
    assert_eq!(record["outcome"], "failed");
}

#[actix_web::test]
async fn unsigned_status_callbacks_are_refused() {
    let app = spawn_app().await;
    let (status, _) = app
        .form_post(
            "/twilio/status",
            &[("CallSid", &new_call_sid()), ("CallStatus", "completed")],
            None,
        )
        .await;
    assert_eq!(status, 403);
}

#[actix_web::test]
async fn the_media_stream_upgrade_must_be_signed_over_the_ws_url() {
    let app = spawn_app().await;
    let unsigned = WsPeer::connect(&app.stream_url(), None).await;
    assert!(unsigned.is_err(), "an unsigned upgrade is refused");
    // Signed over the https form instead of ws: refused too.
    let https = sign(TWILIO_TOKEN, &format!("{}/twilio/stream", app.address), &[]);
    assert!(WsPeer::connect(&app.stream_url(), Some(&https))
        .await
        .is_err());
    let good = sign(TWILIO_TOKEN, &app.stream_url(), &[]);
    assert!(WsPeer::connect(&app.stream_url(), Some(&good))
        .await
        .is_ok());
}

#[actix_web::test]
async fn a_media_stream_for_an_unknown_call_is_closed() {
    let app = spawn_app().await;
    with_number(&app).await;
    // Unknown CallSid and call id.
    let mut stream = app.open_stream_for(&new_call_sid(), "nosuchcall").await;
    let reason = stream.closed().await.expect("a close reason");
    assert_eq!(u16::from(reason.code), 1008);
    // A real call id with someone else's CallSid.
    let call = app.ring_in(CALLER, NUMBER).await;
    let mut stream = app.open_stream_for(&new_call_sid(), &call.call_id).await;
    assert!(stream.closed().await.is_some());
}

#[actix_web::test]
async fn a_media_stream_frame_over_64_kib_closes_it_with_policy_violation() {
    let app = spawn_app().await;
    with_number(&app).await;
    let agent = app.create_agent("a", "production").await;
    let mut phone = app.available_softphone(&agent).await;
    let (_call, mut twilio) = app.answered_call(&mut phone).await;
    twilio
        .peer
        .send_raw(Message::Text("x".repeat(64 * 1024 + 1).into()));
    let reason = twilio.closed().await.expect("a close reason");
    assert_eq!(u16::from(reason.code), 1008);
    // The caller's side is gone: the call ends as when its socket closes.
    let ended = phone.expect("call_ended").await;
    assert_eq!(ended["reason"], "stream_closed");
}

#[actix_web::test]
async fn media_before_start_is_dropped_and_the_stream_goes_on() {
    let app = spawn_app().await;
    with_number(&app).await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let signature = sign(TWILIO_TOKEN, &app.stream_url(), &[]);
    let mut peer = WsPeer::connect(&app.stream_url(), Some(&signature))
        .await
        .expect("connects");
    peer.send_text(json!({ "event": "connected", "protocol": "Call" }));
    peer.send_text(json!({ "event": "media", "media": { "payload": "/wB/" } }));
    peer.send_raw(Message::Text("not json".into()));
    peer.send_text(json!({
        "event": "start",
        "streamSid": "MZ1",
        "start": { "streamSid": "MZ1", "callSid": call.call_sid, "customParameters": { "call_id": call.call_id } },
    }));
    // Nobody is available: the engine plays the voicemail prompt on this stream.
    let first = peer
        .next_text()
        .await
        .expect("the engine talks after start");
    assert!(
        first["event"] == "clear" || first["event"] == "media",
        "{first}"
    );
    let record = app
        .wait_for_call(&call.call_id, |c| c["status"] == "voicemail")
        .await;
    assert!(event_kinds(&record).contains(&"media_started".to_owned()));
}

#[actix_web::test]
async fn a_stream_that_never_starts_leaves_the_call_failed_after_the_media_timeout() {
    let app = crate::helpers::spawn_app_with(crate::db::TestDb::Sqlite, |s| {
        s.calls.media_timeout = Duration::from_secs_f64(0.2);
    })
    .await;
    with_number(&app).await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let record = app.wait_for_outcome(&call.call_id).await;
    assert_eq!(record["outcome"], "failed");
    assert_eq!(record["end_reason"], "media_timeout");
    let _ = ADMIN_TOKEN;
}

// ---- issue 9: hostile and repeated webhooks ------------------------------------

/// Twilio signs the URL and the POST parameters; a request whose signature does not
/// match is not Twilio's, whatever its body (docs: "validating requests",
/// <https://www.twilio.com/docs/usage/security#validating-requests>). So a wrong
/// signature is 403 even when the form is bad too: the signature is checked first.
#[actix_web::test]
async fn a_wrongly_signed_webhook_with_a_bad_form_is_forbidden_not_a_bad_request() {
    let app = spawn_app().await;
    let url = format!("{}/twilio/voice", app.address);
    let wrong = sign("not-the-token", &url, &[]);
    // Signed with the wrong token: no CallSid, then a CallSid of the wrong shape.
    for params in [
        vec![("From", CALLER), ("To", NUMBER)],
        vec![("CallSid", "CA123"), ("From", CALLER), ("To", NUMBER)],
    ] {
        let (status, body) = app.form_post("/twilio/voice", &params, Some(&wrong)).await;
        assert_eq!(status, 403, "{body}");
    }
    // Not a form, or a form that is not UTF-8: still 403 when wrongly signed...
    for (content_type, body) in [
        ("application/json", b"{\"CallSid\":\"x\"}".to_vec()),
        (
            "application/x-www-form-urlencoded",
            b"From=%FF%FE&To=\xff".to_vec(),
        ),
    ] {
        let res = app
            .client
            .post(&url)
            .insert_header(("X-Twilio-Signature", wrong.as_str()))
            .insert_header(("Content-Type", content_type))
            .send_body(body.clone())
            .await
            .expect("reaches the engine");
        assert_eq!(res.status(), 403, "{content_type}");
        // ...and 400 when signed right (over the URL alone: there are no parameters).
        let right = sign(TWILIO_TOKEN, &url, &[]);
        let res = app
            .client
            .post(&url)
            .insert_header(("X-Twilio-Signature", right.as_str()))
            .insert_header(("Content-Type", content_type))
            .send_body(body)
            .await
            .expect("reaches the engine");
        assert_eq!(res.status(), 400, "{content_type}");
    }
}

/// `From` and `To` are E.164 numbers, SIP URIs or `client:` identifiers
/// (<https://www.twilio.com/docs/voice/twiml#request-parameters>); a client
/// identifier is at most 256 characters (<https://www.twilio.com/docs/voice/twiml/client>).
/// Anything far longer is not Twilio's and is refused, naming the field.
#[actix_web::test]
async fn from_and_to_longer_than_any_twilio_address_are_refused() {
    let app = spawn_app().await;
    with_number(&app).await;
    let long = format!("client:{}", "a".repeat(1000));
    for (from, to, field) in [
        (long.as_str(), NUMBER, "From"),
        (CALLER, long.as_str(), "To"),
    ] {
        let sid = new_call_sid();
        let (status, body) = app.voice_webhook(&sid, from, to).await;
        assert_eq!(status, 400, "{body}");
        let error: Value = serde_json::from_str(&body).expect("json error");
        assert_eq!(error["code"], "bad-field");
        assert!(
            error["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with(field),
            "{error}"
        );
        assert!(calls_for_sid(&app, &sid).await.is_empty());
    }
    // A client identity of the documented 256 characters is fine.
    let client = format!("client:{}", "a".repeat(256));
    let (status, body) = app.voice_webhook(&new_call_sid(), &client, NUMBER).await;
    assert_eq!(status, 200, "{body}");
}

/// A NUL (or another control character) in a text field cannot be stored in
/// PostgreSQL TEXT; the call still gets its record: the value is cleaned (U+FFFD)
/// and the original is kept, escaped, in the `created` event.
async fn a_nul_in_from_is_cleaned_and_the_original_kept_in_the_trail(db: crate::db::TestDb) {
    let app = crate::helpers::spawn_app_with(db, |_| {}).await;
    with_number(&app).await;
    let agent = app.create_agent("a", "production").await;
    let mut phone = app.available_softphone(&agent).await;
    let call = app.ring_in("+1415555\u{0}9876", NUMBER).await;
    let _twilio = app.open_stream(&call).await;
    let ring = phone.expect_ring(&call.call_id).await;
    assert_eq!(ring["from"], "+1415555\u{FFFD}9876");
    let record = app
        .wait_for_call(&call.call_id, |c| c["status"] == "ringing")
        .await;
    assert_eq!(record["from"], "+1415555\u{FFFD}9876");
    let created = &record["events"][0];
    assert_eq!(created["kind"], "created");
    assert_eq!(created["detail"]["raw"]["From"], "+1415555\\09876");
    assert_eq!(created["detail"]["raw"]["Caller"], "+1415555\\09876");
    // A call to an unknown number keeps it too.
    let sid = new_call_sid();
    let (status, _) = app.voice_webhook(&sid, "+1\u{7}415", "+14155550111").await;
    assert_eq!(status, 200);
    let deadline = tokio::time::Instant::now() + crate::helpers::PATIENCE;
    let unknown = loop {
        if let Some(call) = calls_for_sid(&app, &sid).await.pop() {
            if call["ended_at"].is_string() {
                break call;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "never recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(unknown["from"], "+1\u{FFFD}415");
    assert_eq!(unknown["events"][0]["detail"]["raw"]["From"], "+1\\u{7}415");
}

#[actix_web::test]
async fn a_nul_in_from_is_cleaned_and_the_original_kept_in_the_trail_on_sqlite() {
    a_nul_in_from_is_cleaned_and_the_original_kept_in_the_trail(crate::db::TestDb::Sqlite).await;
}

#[actix_web::test]
async fn a_nul_in_from_is_cleaned_and_the_original_kept_in_the_trail_on_postgres() {
    a_nul_in_from_is_cleaned_and_the_original_kept_in_the_trail(crate::db::TestDb::Postgres).await;
}

/// Twilio may deliver a webhook more than once (a timed-out request is retried,
/// <https://www.twilio.com/docs/usage/webhooks/webhooks-connection-overrides>): one
/// CallSid is one call, enforced by a unique index — after the call ended, and after
/// the engine restarted on the same database.
async fn a_known_call_sid_never_makes_a_second_record(db: crate::db::TestDb) {
    let app = crate::helpers::spawn_app_with(db, |_| {}).await;
    with_number(&app).await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let mut twilio = app.open_stream(&call).await;
    twilio.wait_for("mark").await; // the voicemail prompt: nobody is available
    twilio.stop();
    app.wait_for_outcome(&call.call_id).await;
    // The call is over: a retry is hung up on, and makes no record.
    let (status, twiml) = app.voice_webhook(&call.call_sid, CALLER, NUMBER).await;
    assert_eq!(status, 200);
    assert!(twiml.contains("<Hangup/>"), "{twiml}");
    assert!(!twiml.contains("<Stream"), "{twiml}");
    assert_eq!(rows_for_sid(&app.database_url, &call.call_sid).await, 1);

    // A call still open when the engine stops; then the engine starts again.
    let open = app.ring_in(CALLER, NUMBER).await;
    let url = app.database_url.clone();
    app.server.stop(true).await;
    let _ = app.stopped.await;
    let app = crate::helpers::spawn_app_on(url, |_| {}).await;
    for sid in [&call.call_sid, &open.call_sid] {
        let (status, twiml) = app.voice_webhook(sid, CALLER, NUMBER).await;
        assert_eq!(status, 200);
        assert!(twiml.contains("<Hangup/>"), "{twiml}");
        assert_eq!(rows_for_sid(&app.database_url, sid).await, 1);
    }
    let reopened = calls_for_sid(&app, &open.call_sid).await;
    assert_eq!(reopened[0]["outcome"], "interrupted", "{reopened:?}");
    assert_eq!(app.metric("switchboard_calls_started_total").await, 0.0);
}

#[actix_web::test]
async fn a_known_call_sid_never_makes_a_second_record_on_sqlite() {
    a_known_call_sid_never_makes_a_second_record(crate::db::TestDb::Sqlite).await;
}

#[actix_web::test]
async fn a_known_call_sid_never_makes_a_second_record_on_postgres() {
    a_known_call_sid_never_makes_a_second_record(crate::db::TestDb::Postgres).await;
}

/// How many `calls` rows carry this CallSid (the API shows only one).
async fn rows_for_sid(database_url: &str, sid: &str) -> i64 {
    use sqlx::{Connection as _, Row as _};
    sqlx::any::install_default_drivers();
    let mut db = sqlx::AnyConnection::connect(database_url)
        .await
        .expect("the test database");
    let row = sqlx::query("SELECT COUNT(*) AS n FROM calls WHERE call_sid = $1")
        .bind(sid)
        .fetch_one(&mut db)
        .await
        .expect("counting calls");
    row.try_get::<i64, _>("n").expect("a count")
}

/// Migration 0004 makes CallSid unique; records made before it (three for one
/// CallSid, as the issue found) are kept, the earliest with the CallSid, the others
/// without it and with a `call_sid_duplicate` event naming it.
async fn duplicate_call_sids_recorded_before_are_merged_by_the_migration(db: crate::db::TestDb) {
    use sqlx::Connection as _;
    let url = crate::db::fresh_database_url(db).await;
    let store = switchboard::store::Store::connect(&url, "local")
        .await
        .expect("store");
    store.migrate().await.expect("migrations");
    store.close().await;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&url).await.expect("db");
    // Back to the schema before 0004, with three records of one CallSid.
    for sql in [
        "DROP INDEX calls_by_call_sid",
        "CREATE INDEX calls_by_call_sid ON calls (call_sid)",
        "DELETE FROM _sqlx_migrations WHERE version = 4",
    ] {
        sqlx::query(sql).execute(&mut conn).await.expect(sql);
    }
    let sid = new_call_sid();
    for (id, started_at) in [("first", 1000_i64), ("second", 2000), ("third", 3000)] {
        sqlx::query(
            "INSERT INTO calls (id, call_sid, node_id, direction, from_number, to_number, \
                 status, started_at, ended_at) \
             VALUES ($1, $2, 'local', 'inbound', '+1', '+2', 'ended', $3, $3)",
        )
        .bind(id)
        .bind(&sid)
        .bind(started_at)
        .execute(&mut conn)
        .await
        .expect("a duplicate");
    }
    sqlx::query(
        "INSERT INTO call_events (call_id, seq, at, kind, detail) \
         VALUES ('second', 1, 2000, 'created', '{}')",
    )
    .execute(&mut conn)
    .await
    .expect("an event");
    conn.close().await.expect("close");

    let store = switchboard::store::Store::connect(&url, "local")
        .await
        .expect("store");
    store.migrate().await.expect("0004 applies over duplicates");
    assert_eq!(rows_for_sid(&url, &sid).await, 1);
    assert_eq!(
        store
            .call_id_by_sid(&sid)
            .await
            .expect("lookup")
            .as_ref()
            .map(CallId::as_str),
        Some("first")
    );
    for (id, seq) in [("second", 2), ("third", 1)] {
        let id = CallId::parse(id).expect("a call id");
        let call = store.get_call(&id).await.expect("read").expect("kept");
        assert_eq!(call.call_sid, None);
        let event = call.events.last().expect("an event");
        assert_eq!(
            (event.seq, event.kind.as_str()),
            (seq, "call_sid_duplicate")
        );
        assert_eq!(event.detail["call_sid"], sid.as_str());
        assert_eq!(event.detail["kept_by"], "first");
    }
    // From now on the database itself refuses a second record of a CallSid.
    let mut conn = sqlx::AnyConnection::connect(&url).await.expect("db");
    let again = sqlx::query(
        "INSERT INTO calls (id, call_sid, node_id, direction, from_number, to_number, \
             status, started_at) VALUES ('fourth', $1, 'local', 'inbound', '+1', '+2', 'ended', 4)",
    )
    .bind(&sid)
    .execute(&mut conn)
    .await;
    assert!(again.is_err(), "the unique index holds");
}

#[actix_web::test]
async fn duplicate_call_sids_recorded_before_are_merged_by_the_migration_on_sqlite() {
    duplicate_call_sids_recorded_before_are_merged_by_the_migration(crate::db::TestDb::Sqlite)
        .await;
}

#[actix_web::test]
async fn duplicate_call_sids_recorded_before_are_merged_by_the_migration_on_postgres() {
    duplicate_call_sids_recorded_before_are_merged_by_the_migration(crate::db::TestDb::Postgres)
        .await;
}
