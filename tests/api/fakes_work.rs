//! The fakes speak their protocols: real awc clients against each fake, checked
//! against PROTOCOLS.md §5–§6.

use std::time::Duration;

use awc::error::{WsClientError, WsProtocolError};
use awc::ws::Frame;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use futures_util::{Sink, SinkExt as _, Stream, StreamExt as _};
use serde_json::{json, Value};

use crate::fakes::llm::{FakeLlm, LlmAnswer};
use crate::fakes::openai::{FakeOpenAi, Mode, Reply, Script};
use crate::fakes::tools::{FakeTools, ToolAnswer};
use crate::helpers::{spawn_app, WsPeer, CALLER, NUMBER, PATIENCE};

// ---- A Realtime client ---------------------------------------------------------

fn realtime_request(fake: &FakeOpenAi, key: &str) -> awc::ws::WebsocketsRequest {
    // twilio-samples append `temperature`, which the fake must ignore.
    let url = format!("{}?model=gpt-realtime&temperature=0.8", fake.url());
    awc::Client::new()
        .ws(url)
        .bearer_auth(key)
        .max_frame_size(1 << 20)
}

async fn connect(fake: &FakeOpenAi) -> WsPeer {
    WsPeer::open(realtime_request(fake, fake.api_key()))
        .await
        .expect("the fake accepts the relay's handshake")
}

async fn next(peer: &mut WsPeer) -> Value {
    peer.next_text().await.expect("the fake sends an event")
}

async fn expect(peer: &mut WsPeer, kind: &str) -> Value {
    let event = next(peer).await;
    assert_eq!(event["type"], kind, "expected {kind}, got {event}");
    assert!(event["event_id"].is_string(), "no event_id in {event}");
    event
}

/// Events up to and including the first of type `kind`.
async fn until(peer: &mut WsPeer, kind: &str) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let event = next(peer).await;
        assert!(event["event_id"].is_string(), "no event_id in {event}");
        let done = event["type"] == kind;
        events.push(event);
        if done {
            return events;
        }
    }
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default())
        .collect()
}

fn send(peer: &WsPeer, event: Value) {
    peer.send_text(event);
}

/// `ms` of caller audio in 20 ms appends of `byte`.
fn speak(peer: &WsPeer, ms: usize, byte: u8) {
    for _ in 0..ms / 20 {
        let audio = STANDARD.encode([byte; 160]);
        send(
            peer,
            json!({ "type": "input_audio_buffer.append", "audio": audio }),
        );
    }
}

fn decoded(event: &Value) -> Vec<u8> {
    STANDARD
        .decode(event["delta"].as_str().expect("a base64 delta"))
        .expect("decodable audio")
}

/// A connected session past `session.created`.
async fn session(fake: &FakeOpenAi) -> WsPeer {
    let mut peer = connect(fake).await;
    expect(&mut peer, "session.created").await;
    peer
}

const PCMU_SESSION: &str = r#"{"type":"realtime","model":"gpt-realtime","output_modalities":["audio"],
 "instructions":"Be brief.","audio":{"input":{"format":{"type":"audio/pcmu"},"turn_detection":{"type":"server_vad"}},
 "output":{"format":{"type":"audio/pcmu"},"voice":"marin"}}}"#;

// ---- FakeOpenAi ------------------------------------------------------------------

#[actix_web::test]
async fn the_fake_openai_opens_with_session_created_and_echoes_session_update_merged() {
    let fake = FakeOpenAi::start(Script::new()).await;
    let mut peer = connect(&fake).await;
    let created = expect(&mut peer, "session.created").await;
    assert_eq!(created["session"]["type"], "realtime");
    assert_eq!(created["session"]["model"], "gpt-realtime");
    assert!(created["session"]["id"].is_string());
    assert_eq!(fake.sessions(), 1);

    let update: Value = serde_json::from_str(PCMU_SESSION).expect("a session");
    send(
        &peer,
        json!({ "type": "session.update", "event_id": "c1", "session": update }),
    );
    let updated = expect(&mut peer, "session.updated").await;
    let audio = &updated["session"]["audio"];
    assert_eq!(audio["input"]["format"]["type"], "audio/pcmu");
    assert_eq!(audio["output"]["format"]["type"], "audio/pcmu");
    assert_eq!(audio["output"]["voice"], "marin");
    // Merged, not replaced: fields the update left out keep their defaults.
    assert_eq!(audio["output"]["speed"], 1.0);
    assert_eq!(updated["session"]["instructions"], "Be brief.");
    assert_eq!(fake.session_config(), Some(update));

    // GA requires session.type; the session stays open.
    send(
        &peer,
        json!({ "type": "session.update", "event_id": "c2", "session": { "instructions": "x" } }),
    );
    let error = expect(&mut peer, "error").await;
    assert_eq!(error["error"]["code"], "missing_required_parameter");
    assert_eq!(error["error"]["event_id"], "c2");
    let events = fake.client_events();
    assert_eq!(kinds(&events), ["session.update", "session.update"]);
}

#[actix_web::test]
async fn a_scripted_greeting_follows_the_ga_event_order_with_pcmu_deltas_of_its_fill() {
    let text = "Hello there, how can I help?";
    let fake = FakeOpenAi::start(Script::new().greeting(Reply::say(text, 450, 0x11))).await;
    let mut peer = session(&fake).await;
    send(&peer, json!({ "type": "response.create" }));
    let events = until(&mut peer, "response.done").await;
    assert_eq!(
        kinds(&events),
        [
            "response.created",
            "rate_limits.updated",
            "response.output_item.added",
            "conversation.item.added",
            "response.content_part.added",
            "response.output_audio.delta",
            "response.output_audio_transcript.delta",
            "response.output_audio.delta",
            "response.output_audio_transcript.delta",
            "response.output_audio.delta",
            "response.output_audio_transcript.delta",
            "response.output_audio.delta",
            "response.output_audio.delta",
            "response.output_audio.done",
            "response.output_audio_transcript.done",
            "response.content_part.done",
            "response.output_item.done",
            "conversation.item.done",
            "response.done",
        ]
    );
    let response_id = events[0]["response"]["id"].as_str().expect("id");
    let item_id = events[2]["item"]["id"].as_str().expect("item id");
    let deltas: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "response.output_audio.delta")
        .collect();
    for delta in &deltas {
        assert_eq!(delta["response_id"], response_id);
        assert_eq!(delta["item_id"], item_id);
        assert_eq!(delta["output_index"], 0);
        assert_eq!(delta["content_index"], 0);
        assert!(decoded(delta).iter().all(|b| *b == 0x11));
    }
    let sizes: Vec<usize> = deltas.iter().map(|d| decoded(d).len()).collect();
    assert_eq!(sizes, [800, 800, 800, 800, 400], "100 ms per delta, 450 ms");
    let transcript: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_audio_transcript.delta")
        .map(|e| e["delta"].as_str().expect("delta"))
        .collect();
    assert_eq!(transcript, text);
    assert_eq!(events[14]["transcript"], text);

    let response = &events[18]["response"];
    assert_eq!(response["object"], "realtime.response");
    assert_eq!(response["id"], response_id);
    assert_eq!(response["status"], "completed");
    assert_eq!(response["output"][0]["type"], "message");
    assert_eq!(response["output"][0]["content"][0]["transcript"], text);
    let usage = &response["usage"];
    assert_eq!(usage["input_token_details"]["audio_tokens"], 0);
    assert_eq!(usage["input_token_details"]["text_tokens"], 100);
    assert_eq!(usage["input_token_details"]["cached_tokens"], 0);
    assert_eq!(
        usage["output_token_details"]["audio_tokens"], 9,
        "450 ms / 50"
    );
    assert_eq!(usage["output_token_details"]["text_tokens"], 6, "six words");
    assert_eq!(usage["input_tokens"], 100);
    assert_eq!(usage["output_tokens"], 15);
    assert_eq!(usage["total_tokens"], 115);
    assert_eq!(fake.sent_audio(), [(item_id.to_owned(), 3600)]);
}

#[actix_web::test]
async fn caller_speech_then_silence_yields_a_committed_transcribed_turn_and_its_reply() {
    let script = Script::new().greeting(Reply::say("Hi", 100, 0x11)).turn(
        "I need help with billing",
        Reply::say("Sure thing", 200, 0x22),
    );
    let fake = FakeOpenAi::start(script).await;
    let mut peer = session(&fake).await;
    send(&peer, json!({ "type": "response.create" }));
    until(&mut peer, "response.done").await;

    // Silence alone starts nothing; then 500 ms of speech and 300 ms of silence.
    speak(&peer, 100, 0xFF);
    speak(&peer, 500, 0x10);
    speak(&peer, 300, 0x7F);
    let started = expect(&mut peer, "input_audio_buffer.speech_started").await;
    assert_eq!(started["audio_start_ms"], 100);
    let stopped = expect(&mut peer, "input_audio_buffer.speech_stopped").await;
    assert_eq!(stopped["audio_end_ms"], 600);
    let item_id = started["item_id"].clone();
    assert_eq!(stopped["item_id"], item_id);
    let committed = expect(&mut peer, "input_audio_buffer.committed").await;
    assert_eq!(committed["item_id"], item_id);
    let added = expect(&mut peer, "conversation.item.added").await;
    assert_eq!(added["item"]["id"], item_id);
    assert_eq!(added["item"]["role"], "user");
    let transcribed = expect(
        &mut peer,
        "conversation.item.input_audio_transcription.completed",
    )
    .await;
    assert_eq!(transcribed["item_id"], item_id);
    assert_eq!(transcribed["content_index"], 0);
    assert_eq!(transcribed["transcript"], "I need help with billing");
    let reply = until(&mut peer, "response.done").await;
    assert_eq!(reply[0]["type"], "response.created");
    let audio: Vec<u8> = reply
        .iter()
        .filter(|e| e["type"] == "response.output_audio.delta")
        .flat_map(decoded)
        .collect();
    assert_eq!(audio, vec![0x22; 1600]);
    let usage = &reply.last().expect("response.done")["response"]["usage"];
    assert_eq!(
        usage["input_token_details"]["audio_tokens"], 5,
        "500 ms / 100"
    );
    assert_eq!(
        usage["input_token_details"]["text_tokens"], 110,
        "2nd response"
    );
    assert_eq!(usage["input_token_details"]["cached_tokens"], 64);
    assert_eq!(
        usage["input_token_details"]["cached_tokens_details"]["text_tokens"],
        64
    );
    assert_eq!(usage["output_token_details"]["audio_tokens"], 4);
    assert_eq!(usage["output_token_details"]["text_tokens"], 2);
    assert_eq!(usage["total_tokens"], 5 + 110 + 4 + 2);
    assert_eq!(fake.appended_bytes(), 900 * 8);

    // No turn left: the speech is committed but nobody answers.
    speak(&peer, 100, 0x10);
    speak(&peer, 300, 0xFF);
    let rest = until(&mut peer, "conversation.item.added").await;
    assert_eq!(
        kinds(&rest),
        [
            "input_audio_buffer.speech_started",
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            "conversation.item.added"
        ]
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(peer.try_text(), None);
}

#[actix_web::test]
async fn a_function_call_waits_for_its_output_and_then_plays_after_output() {
    let greeting = Reply::say("One moment", 100, 0x33)
        .then_call("transfer_to_human", r#"{"reason":"billing"}"#)
        .after(Reply::say("Transferring you now", 200, 0x44));
    let fake = FakeOpenAi::start(Script::new().greeting(greeting)).await;
    let mut peer = session(&fake).await;
    send(&peer, json!({ "type": "response.create" }));
    let events = until(&mut peer, "response.done").await;
    let tail: Vec<&str> = kinds(&events).into_iter().skip(12).collect();
    assert_eq!(
        tail,
        [
            "response.output_item.added",
            "conversation.item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "conversation.item.done",
            "response.done",
        ]
    );
    let args_done = &events[15];
    assert_eq!(args_done["name"], "transfer_to_human");
    assert_eq!(args_done["arguments"], r#"{"reason":"billing"}"#);
    assert_eq!(args_done["output_index"], 1);
    let call_id = args_done["call_id"].as_str().expect("call_id").to_owned();
    assert!(call_id.starts_with("call_"), "{call_id}");
    let item = &events[16]["item"];
    assert_eq!(item["type"], "function_call");
    assert_eq!(item["status"], "completed");
    assert_eq!(item["call_id"], call_id.as_str());
    assert_eq!(item["name"], "transfer_to_human");
    let output = &events[18]["response"]["output"];
    assert_eq!(output[1]["type"], "function_call");
    assert_eq!(output[1]["arguments"], r#"{"reason":"billing"}"#);

    // An output for a call the model never made is refused.
    send(
        &peer,
        json!({ "type": "conversation.item.create",
                "item": { "type": "function_call_output", "call_id": "call_nope", "output": "{}" } }),
    );
    assert_eq!(
        expect(&mut peer, "error").await["error"]["param"],
        "item.call_id"
    );
    send(
        &peer,
        json!({ "type": "conversation.item.create",
                "item": { "type": "function_call_output", "call_id": call_id, "output": "{\"ok\":true}" } }),
    );
    let added = expect(&mut peer, "conversation.item.added").await;
    assert_eq!(added["item"]["type"], "function_call_output");
    send(&peer, json!({ "type": "response.create" }));
    let after = until(&mut peer, "response.done").await;
    let audio: Vec<u8> = after
        .iter()
        .filter(|e| e["type"] == "response.output_audio.delta")
        .flat_map(decoded)
        .collect();
    assert_eq!(audio, vec![0x44; 1600]);
    assert_eq!(
        fake.tool_outputs(),
        [
            ("call_nope".to_owned(), "{}".to_owned()),
            (call_id.clone(), "{\"ok\":true}".to_owned())
        ]
    );

    // Nothing pending: an empty completed response.
    send(&peer, json!({ "type": "response.create" }));
    let empty = until(&mut peer, "response.done").await;
    assert_eq!(
        kinds(&empty),
        ["response.created", "rate_limits.updated", "response.done"]
    );
    assert_eq!(empty[2]["response"]["status"], "completed");
    assert_eq!(empty[2]["response"]["output"], json!([]));
    // wait_for_client_event walks through the events of a type in order.
    assert!(fake
        .wait_for_client_event("response.create")
        .await
        .get("response")
        .is_none());
    fake.wait_for_client_event("response.create").await;
    fake.wait_for_client_event("response.create").await;
    let third = fake.client_events();
    assert_eq!(
        third
            .iter()
            .filter(|e| e["type"] == "response.create")
            .count(),
        3
    );
}

#[actix_web::test]
async fn a_call_only_reply_passes_its_arguments_through_verbatim() {
    let script = Script::new().greeting(Reply::call("end_call", "{not json"));
    let fake = FakeOpenAi::start(script).await;
    let mut peer = session(&fake).await;
    send(&peer, json!({ "type": "response.create" }));
    let events = until(&mut peer, "response.done").await;
    assert_eq!(
        kinds(&events),
        [
            "response.created",
            "rate_limits.updated",
            "response.output_item.added",
            "conversation.item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "conversation.item.done",
            "response.done",
        ]
    );
    assert_eq!(events[5]["output_index"], 0);
    assert_eq!(events[5]["arguments"], "{not json");
    let usage = &events[8]["response"]["usage"];
    assert_eq!(usage["output_tokens"], 0, "no audio, no words");
}

#[actix_web::test]
async fn truncate_is_accepted_within_the_audio_sent_and_refused_beyond_it() {
    let fake = FakeOpenAi::start(Script::new().greeting(Reply::say("Hello", 500, 0x11))).await;
    let mut peer = session(&fake).await;
    send(&peer, json!({ "type": "response.create" }));
    let events = until(&mut peer, "response.done").await;
    let item_id = events[2]["item"]["id"].clone();
    let truncate = |ms: u64, item: &Value| json!({ "type": "conversation.item.truncate", "item_id": item, "content_index": 0, "audio_end_ms": ms });
    send(&peer, truncate(300, &item_id));
    let truncated = expect(&mut peer, "conversation.item.truncated").await;
    assert_eq!(truncated["item_id"], item_id);
    assert_eq!(truncated["content_index"], 0);
    assert_eq!(truncated["audio_end_ms"], 300);
    send(&peer, truncate(500, &item_id));
    expect(&mut peer, "conversation.item.truncated").await;
    send(&peer, truncate(501, &item_id));
    let error = expect(&mut peer, "error").await;
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(error["error"]["param"], "audio_end_ms");
    send(&peer, truncate(10, &json!("item_unknown")));
    let error = expect(&mut peer, "error").await;
    assert_eq!(error["error"]["code"], "item_truncate_invalid_item_id");
}

#[actix_web::test]
async fn message_items_are_added_when_their_content_suits_their_role_and_refused_when_not() {
    let fake = FakeOpenAi::start(Script::new()).await;
    let mut peer = session(&fake).await;
    let message = |role: &str, kind: &str| {
        json!({ "type": "conversation.item.create", "item": {
            "type": "message", "role": role, "content": [{ "type": kind, "text": "Hi" }] } })
    };
    for (role, kind) in [("user", "input_text"), ("assistant", "output_text")] {
        send(&peer, message(role, kind));
        let added = expect(&mut peer, "conversation.item.added").await;
        assert_eq!(added["item"]["role"], role);
        assert_eq!(added["item"]["content"][0]["type"], kind);
        assert!(added["item"]["id"].is_string(), "{added}");
    }
    // Beta's `text` for an assistant, a user's `output_text`, an unknown role.
    for (role, kind, param) in [
        ("assistant", "text", "item.content[0].type"),
        ("user", "output_text", "item.content[0].type"),
        ("caller", "input_text", "item.role"),
    ] {
        send(&peer, message(role, kind));
        let error = expect(&mut peer, "error").await;
        assert_eq!(error["error"]["code"], "invalid_value", "{error}");
        assert_eq!(error["error"]["param"], param, "{error}");
    }
}

#[actix_web::test]
async fn response_cancel_cuts_a_paced_response_and_errors_when_nothing_is_active() {
    let script = Script::new()
        .greeting(Reply::say("A long greeting", 3000, 0x55))
        .paced(Duration::from_millis(50))
        .late_deltas(1);
    let fake = FakeOpenAi::start(script).await;
    let mut peer = session(&fake).await;
    send(
        &peer,
        json!({ "type": "response.cancel", "event_id": "c9" }),
    );
    let error = expect(&mut peer, "error").await;
    assert_eq!(error["error"]["code"], "response_cancel_not_active");
    assert_eq!(error["error"]["event_id"], "c9");

    send(&peer, json!({ "type": "response.create" }));
    until(&mut peer, "response.output_audio.delta").await;
    send(&peer, json!({ "type": "response.create" }));
    let busy = until(&mut peer, "error").await;
    assert_eq!(
        busy.last().expect("error")["error"]["code"],
        "conversation_already_has_active_response"
    );
    send(&peer, json!({ "type": "response.cancel" }));
    let rest = until(&mut peer, "response.done").await;
    let done = &rest.last().expect("done")["response"];
    assert_eq!(done["status"], "cancelled");
    assert_eq!(done["status_details"]["reason"], "client_cancelled");
    let sent = fake.sent_audio()[0].1;
    assert!(sent < 3000 * 8, "cut short: {sent}");
    assert_eq!(
        done["usage"]["output_token_details"]["audio_tokens"],
        (sent / 8).div_ceil(50)
    );
    // Unknown events and malformed JSON are errors; the session stays open.
    send(&peer, json!({ "type": "response.frobnicate" }));
    let error = expect(&mut peer, "error").await;
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(error["error"]["code"], "invalid_value");
    peer.send_raw(awc::ws::Message::Text("{not json".into()));
    assert_eq!(
        expect(&mut peer, "error").await["error"]["code"],
        "invalid_json"
    );
    // Raw frames from the fake reach the client as they are.
    fake.send_raw("{oops");
    assert_eq!(next(&mut peer).await, json!("{oops"));
    fake.send_raw(r#"{"type":"response.future_event","event_id":"e"}"#);
    assert_eq!(next(&mut peer).await["type"], "response.future_event");
}

#[actix_web::test]
async fn a_caller_barging_in_gets_the_late_deltas_then_a_cancelled_response_done() {
    let script = Script::new()
        .greeting(Reply::say("A long greeting that goes on", 3000, 0x55))
        .delta_ms(50)
        .paced(Duration::from_millis(25))
        .late_deltas(2);
    let fake = FakeOpenAi::start(script).await;
    let mut peer = session(&fake).await;
    send(&peer, json!({ "type": "response.create" }));
    let before = until(&mut peer, "response.output_audio.delta").await;
    let response_id = before[0]["response"]["id"].clone();
    speak(&peer, 20, 0x10);
    let mut deltas_before = 1;
    loop {
        let event = next(&mut peer).await;
        match event["type"].as_str() {
            Some("input_audio_buffer.speech_started") => break,
            Some("response.output_audio.delta") => deltas_before += 1,
            _ => {}
        }
    }
    let rest = until(&mut peer, "response.done").await;
    assert_eq!(
        kinds(&rest),
        [
            "response.output_audio.delta",
            "response.output_audio.delta",
            "response.done"
        ],
        "exactly the late deltas, then done"
    );
    assert!(rest[..2].iter().all(|d| d["response_id"] == response_id));
    let done = &rest[2]["response"];
    assert_eq!(done["status"], "cancelled");
    assert_eq!(done["status_details"]["type"], "cancelled");
    assert_eq!(done["status_details"]["reason"], "turn_detected");
    assert!(done["usage"]["total_tokens"].as_u64().expect("usage") > 0);
    let sent = (deltas_before + 2) * 400;
    assert_eq!(fake.sent_audio()[0].1, sent);
    assert!(sent < 3000 * 8, "the response was cut short");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(peer.try_text(), None, "nothing after the cancelled done");
}

#[actix_web::test]
async fn a_bad_bearer_or_a_missing_model_is_refused_at_the_handshake() {
    let fake = FakeOpenAi::start(Script::new()).await;
    match WsPeer::open(realtime_request(&fake, "sk-wrong")).await {
        Err(WsClientError::InvalidResponseStatus(status)) => assert_eq!(status, 401),
        Err(other) => panic!("expected 401, got {other}"),
        Ok(_) => panic!("a bad bearer was accepted"),
    }
    let client = awc::Client::new();
    let mut res = client
        .get(fake.url().replace("ws://", "http://") + "?model=gpt-realtime")
        .bearer_auth("sk-wrong")
        .send()
        .await
        .expect("the fake answers");
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.expect("OpenAI's error JSON");
    assert_eq!(body["error"]["code"], "invalid_api_key");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let request = awc::Client::new()
        .ws(fake.url())
        .bearer_auth(fake.api_key());
    match WsPeer::open(request).await {
        Err(WsClientError::InvalidResponseStatus(status)) => assert_eq!(status, 400),
        _ => panic!("a missing model was accepted"),
    }
    assert_eq!(fake.sessions(), 0);
}

#[actix_web::test]
async fn reject_handshake_mode_answers_the_upgrade_with_its_status() {
    let fake = FakeOpenAi::start_with(Script::new(), Mode::RejectHandshake(429)).await;
    match WsPeer::open(realtime_request(&fake, fake.api_key())).await {
        Err(WsClientError::InvalidResponseStatus(status)) => assert_eq!(status, 429),
        _ => panic!("the handshake was not rejected"),
    }
    let mut res = awc::Client::new()
        .get(fake.url().replace("ws://", "http://") + "?model=gpt-realtime")
        .bearer_auth(fake.api_key())
        .send()
        .await
        .expect("the fake answers");
    assert_eq!(res.status(), 429);
    let body: Value = res.json().await.expect("OpenAI's error JSON");
    assert_eq!(body["error"]["code"], "insufficient_quota");
    assert_eq!(fake.sessions(), 0);
}

#[actix_web::test]
async fn session_error_mode_answers_session_update_with_an_error_and_closes() {
    let fake = FakeOpenAi::start_with(Script::new(), Mode::SessionError).await;
    let mut peer = session(&fake).await;
    let update: Value = serde_json::from_str(PCMU_SESSION).expect("a session");
    send(
        &peer,
        json!({ "type": "session.update", "session": update }),
    );
    let error = expect(&mut peer, "error").await;
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(error["error"]["code"], "invalid_request_error");
    let reason = peer.closed().await.expect("a close frame");
    assert_eq!(reason.code, awc::ws::CloseCode::Policy);
}

#[actix_web::test]
async fn mute_mode_accepts_the_socket_and_never_speaks() {
    let fake = FakeOpenAi::start_with(Script::new(), Mode::Mute).await;
    let mut peer = connect(&fake).await;
    send(&peer, json!({ "type": "session.update", "session": {} }));
    send(&peer, json!({ "type": "response.create" }));
    fake.wait_for_client_event("response.create").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(peer.try_text(), None);
    assert_eq!(fake.sessions(), 1);
    assert_eq!(fake.client_events().len(), 2);
}

/// A raw awc connection (`Framed<BoxedSocket, ws::Codec>`).
trait Framed:
    Stream<Item = Result<Frame, WsProtocolError>>
    + Sink<awc::ws::Message, Error = WsProtocolError>
    + Unpin
{
}

impl<T> Framed for T where
    T: Stream<Item = Result<Frame, WsProtocolError>>
        + Sink<awc::ws::Message, Error = WsProtocolError>
        + Unpin
{
}

/// A raw client, to see exactly how the fake ends the socket.
async fn raw_session(fake: &FakeOpenAi) -> impl Framed {
    let (_response, mut framed) = realtime_request(fake, fake.api_key())
        .connect()
        .await
        .expect("the fake accepts");
    match framed.next().await {
        Some(Ok(Frame::Text(text))) => assert!(
            String::from_utf8_lossy(&text).contains("session.created"),
            "{text:?}"
        ),
        other => panic!("expected session.created, got {other:?}"),
    }
    framed
}

async fn raw_send(framed: &mut impl Framed, event: Value) {
    framed
        .send(awc::ws::Message::Text(event.to_string().into()))
        .await
        .expect("the fake reads");
}

/// The socket ends with no close frame (what a dropped TCP connection looks like).
async fn assert_cut_without_close_frame(framed: &mut impl Framed) {
    loop {
        let frame = tokio::time::timeout(PATIENCE, framed.next())
            .await
            .expect("the fake ends the socket");
        match frame {
            Some(Ok(Frame::Close(reason))) => panic!("a close frame: {reason:?}"),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return,
        }
    }
}

#[actix_web::test]
async fn drop_after_appends_mode_closes_without_a_close_frame() {
    let fake = FakeOpenAi::start_with(Script::new(), Mode::DropAfterAppends(3)).await;
    let mut framed = raw_session(&fake).await;
    for _ in 0..3 {
        let audio = STANDARD.encode([0xFF; 160]);
        raw_send(
            &mut framed,
            json!({ "type": "input_audio_buffer.append", "audio": audio }),
        )
        .await;
    }
    assert_cut_without_close_frame(&mut framed).await;
    assert_eq!(fake.appended_bytes(), 3 * 160);
    assert_eq!(fake.sessions(), 1);
}

#[actix_web::test]
async fn drop_session_cuts_the_live_session_and_a_new_one_can_connect() {
    let fake = FakeOpenAi::start(Script::new()).await;
    let mut first = raw_session(&fake).await;
    raw_send(
        &mut first,
        json!({ "type": "conversation.item.delete", "item_id": "x" }),
    )
    .await;
    fake.wait_for_client_event("conversation.item.delete").await;
    fake.drop_session();
    assert_cut_without_close_frame(&mut first).await;
    let mut second = session(&fake).await;
    send(&second, json!({ "type": "input_audio_buffer.clear" }));
    expect(&mut second, "input_audio_buffer.cleared").await;
    assert_eq!(fake.sessions(), 2);
    assert_eq!(
        kinds(&fake.client_events()),
        ["conversation.item.delete", "input_audio_buffer.clear"]
    );
}

// ---- FakeLlm and FakeTools -----------------------------------------------------

#[actix_web::test]
async fn the_fake_llm_answers_anthropic_and_openai_and_refuses_bad_keys() {
    let summary = r#"{"summary":"Caller asked about billing.","outcome":"goal_achieved"}"#;
    let llm = FakeLlm::start(LlmAnswer::Text(summary.to_owned())).await;
    let client = awc::Client::builder()
        .timeout(Duration::from_millis(500))
        .finish();
    let anthropic = json!({
        "model": "claude-x", "max_tokens": 256, "system": "Summarise.",
        "messages": [{ "role": "user", "content": "caller: hi" }],
    });
    let messages = format!("{}/v1/messages", llm.base_url());
    let mut res = client
        .post(&messages)
        .insert_header(("x-api-key", llm.api_key()))
        .insert_header(("anthropic-version", "2023-06-01"))
        .send_json(&anthropic)
        .await
        .expect("the fake answers");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("JSON");
    assert_eq!(body["type"], "message");
    assert_eq!(body["model"], "claude-x");
    assert_eq!(body["content"][0]["text"], summary);
    assert_eq!(body["stop_reason"], "end_turn");
    // ceil((10 + 10) / 4) = 5 in; ceil(69 / 4) = 18 out.
    assert_eq!(body["usage"]["input_tokens"], 5);
    assert_eq!(
        body["usage"]["output_tokens"],
        summary.chars().count().div_ceil(4)
    );

    let mut res = client
        .post(&messages)
        .insert_header(("x-api-key", "wrong"))
        .insert_header(("anthropic-version", "2023-06-01"))
        .send_json(&anthropic)
        .await
        .expect("the fake answers");
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.expect("JSON");
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "authentication_error");
    let res = client
        .post(&messages)
        .insert_header(("x-api-key", llm.api_key()))
        .send_json(&anthropic)
        .await
        .expect("the fake answers");
    assert_eq!(res.status(), 400, "anthropic-version is required");

    let chat = json!({
        "model": "gpt-x",
        "messages": [{ "role": "system", "content": "Summarise." }, { "role": "user", "content": "caller: hi" }],
    });
    let completions = format!("{}/v1/chat/completions", llm.base_url());
    let mut res = client
        .post(&completions)
        .bearer_auth(llm.api_key())
        .send_json(&chat)
        .await
        .expect("the fake answers");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("JSON");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["content"], summary);
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["prompt_tokens"], 5);
    assert_eq!(
        body["usage"]["total_tokens"],
        5 + summary.chars().count().div_ceil(4)
    );
    let res = client
        .post(&completions)
        .bearer_auth("wrong")
        .send_json(&chat)
        .await
        .expect("the fake answers");
    assert_eq!(res.status(), 401);
    assert_eq!(llm.requests(), [anthropic.clone(), chat.clone()]);

    llm.set_answer(LlmAnswer::Status(529));
    let mut res = client
        .post(&messages)
        .insert_header(("x-api-key", llm.api_key()))
        .insert_header(("anthropic-version", "2023-06-01"))
        .send_json(&anthropic)
        .await
        .expect("the fake answers");
    assert_eq!(res.status(), 529);
    let body: Value = res.json().await.expect("JSON");
    assert_eq!(body["error"]["type"], "overloaded_error");
    llm.set_answer(LlmAnswer::Hang);
    let hung = client
        .post(&completions)
        .bearer_auth(llm.api_key())
        .send_json(&chat)
        .await;
    assert!(hung.is_err(), "a hanging fake never answers");
    assert_eq!(llm.requests().len(), 4);
}

#[actix_web::test]
async fn the_fake_tools_answer_per_path_and_record_bodies_in_order() {
    let tools = FakeTools::start().await;
    tools.on("/crm/lookup", ToolAnswer::Json(json!({ "plan": "gold" })));
    tools.on("/broken", ToolAnswer::Status(503));
    tools.on("/slow", ToolAnswer::Hang);
    let client = awc::Client::builder()
        .timeout(Duration::from_millis(500))
        .finish();
    for n in 1..=2 {
        let mut res = client
            .post(tools.url("/crm/lookup"))
            .send_json(&json!({ "n": n }))
            .await
            .expect("the fake answers");
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.expect("JSON");
        assert_eq!(body, json!({ "plan": "gold" }));
    }
    let res = client
        .post(tools.url("/broken"))
        .send_body("not json")
        .await
        .expect("the fake answers");
    assert_eq!(res.status(), 503);
    assert!(client.post(tools.url("/slow")).send().await.is_err());
    let res = client
        .post(tools.url("/nowhere"))
        .send()
        .await
        .expect("the fake answers");
    assert_eq!(res.status(), 404);

    assert_eq!(
        tools.calls("/crm/lookup"),
        [json!({ "n": 1 }), json!({ "n": 2 })]
    );
    assert_eq!(
        tools.content_types("/crm/lookup"),
        [
            Some("application/json".to_owned()),
            Some("application/json".to_owned())
        ]
    );
    assert_eq!(tools.calls("/broken"), [json!("not json")]);
    assert_eq!(tools.calls("/slow"), [Value::Null]);
    assert_eq!(tools.calls("/nowhere").len(), 1);
}

// ---- The play-out Twilio -------------------------------------------------------

#[actix_web::test]
async fn the_play_out_twilio_echoes_a_mark_only_once_its_audio_has_played() {
    let app = spawn_app().await;
    app.number_for_everyone().await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let mut twilio = app.open_stream(&call).await;
    twilio.play_out();
    // No agent: ringback is cleared, the voicemail prompt plays, then its mark.
    let mut ringback_bytes = 0;
    let mut prompt_bytes = 0;
    let mut cleared = false;
    loop {
        let message = twilio.next().await.expect("the engine speaks");
        match message["event"].as_str() {
            Some("media") => {
                let payload = message["media"]["payload"].as_str().expect("payload");
                prompt_bytes += STANDARD.decode(payload).expect("base64").len();
            }
            Some("clear") => {
                cleared = true;
                ringback_bytes += prompt_bytes;
                prompt_bytes = 0;
            }
            Some("mark") => {
                assert_eq!(message["mark"]["name"], "voicemail-prompt");
                break;
            }
            _ => {}
        }
    }
    let read_at = std::time::Instant::now();
    let played_at_read = twilio.played_ms();
    let (prompt_ms, ringback_ms) = (prompt_bytes as u64 / 8, ringback_bytes as u64 / 8);
    assert!(cleared, "the ringback was cleared");
    assert!(prompt_ms > 200, "the prompt is audio");
    assert!(
        twilio.echoed_marks().is_empty(),
        "not echoed before the prompt has played ({prompt_ms} ms)"
    );
    let (name, played_at_echo) = loop {
        if let Some(echoed) = twilio.echoed_marks().first().cloned() {
            break echoed;
        }
        assert!(read_at.elapsed() < PATIENCE, "the mark is never echoed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let waited = read_at.elapsed().as_millis() as u64;
    assert_eq!(name, "voicemail-prompt");
    // What played before the echo: the whole prompt, plus any ringback heard
    // before the clear.
    assert!(
        played_at_echo >= prompt_ms && played_at_echo <= prompt_ms + ringback_ms,
        "echoed at {played_at_echo} ms; prompt {prompt_ms} ms, ringback {ringback_ms} ms"
    );
    assert!(
        played_at_read + waited + 20 >= prompt_ms,
        "the echo waited for the rest of the prompt ({played_at_read} + {waited} ms)"
    );
    // Whatever followed the mark plays on after it, back to back.
    let total_ms = twilio.media_sizes().iter().sum::<usize>() as u64 / 8;
    assert!(twilio.played_ms() >= played_at_echo && twilio.played_ms() <= total_ms);
}
