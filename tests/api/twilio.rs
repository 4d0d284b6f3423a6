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
        s.calls.media_timeout_secs = 0.2;
    })
    .await;
    with_number(&app).await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let record = app.wait_for_outcome(&call.call_id).await;
    assert_eq!(record["outcome"], "failed");
    assert_eq!(record["end_reason"], "media_timeout");
    let _ = ADMIN_TOKEN;
}
