//! AI voice agents: a number routed to an assistant that talks over the (fake)
//! OpenAI Realtime API, barges in, uses tools, hands over to humans, fails over,
//! and leaves a transcript, a summary and a cost.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::{json, Value};
use switchboard::config::{Settings, SummaryProvider};
use switchboard_actors::audio::RINGBACK;

use crate::db::TestDb;
use crate::fakes::llm::{FakeLlm, LlmAnswer};
use crate::fakes::openai::{FakeOpenAi, Mode, Reply, Script};
use crate::fakes::tools::{FakeTools, ToolAnswer};
use crate::helpers::{
    assert_bridged, event_kinds, frame, spawn_app_with, InboundCall, Softphone, TestApp,
    TwilioStream, CALLER, NUMBER,
};

const GREETING: &str = "Hello, this is Ada from Acme.";
const INSTRUCTIONS: &str = "You are Ada. You help Acme's callers with their orders.";

/// An engine whose realtime API is `fake`; summaries off unless `configure` says.
async fn ai_app(fake: &FakeOpenAi, configure: impl FnOnce(&mut Settings)) -> TestApp {
    ai_app_on(TestDb::Sqlite, fake, configure).await
}

async fn ai_app_on(
    db: TestDb,
    fake: &FakeOpenAi,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let url = fake.url();
    let key = fake.api_key().to_owned();
    spawn_app_with(db, move |s| {
        s.openai.realtime_url = url.parse().expect("the fake's URL");
        s.openai.api_key = Some(SecretString::from(key));
        s.openai.exit_grace = Duration::from_secs_f64(5.0);
        s.summary.provider = SummaryProvider::Off;
        configure(s);
    })
    .await
}

fn assistant(tools: Value, on_failure: Value) -> Value {
    json!({
        "name": "Ada",
        "workspace": "production",
        "instructions": INSTRUCTIONS,
        "voice": "marin",
        "model": "gpt-realtime",
        "greeting": GREETING,
        "tools": tools,
        "on_failure": on_failure,
    })
}

fn builtin_tools() -> Value {
    json!([{ "type": "transfer_to_human" }, { "type": "end_call" }, { "type": "log_event" }])
}

fn everyone() -> Value {
    json!({ "kind": "agents", "agent_ids": [] })
}

/// Creates the assistant and routes `NUMBER` to it.
async fn route_to_assistant(app: &TestApp, body: Value) -> String {
    let (status, created) = app
        .post_json("/api/assistants", &body, Some(crate::helpers::ADMIN_TOKEN))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("an assistant id").to_owned();
    app.create_number(
        NUMBER,
        "production",
        json!({ "kind": "ai", "assistant_id": id }),
    )
    .await;
    id
}

/// A call to `NUMBER` whose caller has heard the 200 ms greeting (`0x11`) the
/// tests' scripts open with.
async fn greeted_caller(app: &TestApp) -> (InboundCall, TwilioStream) {
    let call = app.ring_in(CALLER, NUMBER).await;
    let mut twilio = app.open_stream(&call).await;
    hear(&mut twilio, 0x11, 200).await;
    (call, twilio)
}

/// The caller says something (non-silent frames), then is silent long enough for
/// the model's voice detection to end the turn.
fn speak(twilio: &mut TwilioStream, tag: u8, frames: u8) {
    for seq in 0..frames {
        twilio.send_media(&frame(tag, seq));
    }
    for _ in 0..20 {
        twilio.send_media(&[0xFF; 160]);
    }
}

/// Reads what the caller hears until `ms` of audio filled with `fill` arrived.
async fn hear(twilio: &mut TwilioStream, fill: u8, ms: usize) {
    let mut heard = 0;
    while heard < ms * 8 {
        let audio = twilio.next_media().await;
        assert!(
            audio.iter().all(|b| *b == fill),
            "expected audio filled with {fill:#x}, got {:#x}…",
            audio[0]
        );
        heard += audio.len();
    }
    assert_eq!(heard, ms * 8, "exactly the reply's audio");
}

fn event<'a>(call: &'a Value, kind: &str) -> &'a Value {
    call["events"]
        .as_array()
        .and_then(|events| events.iter().find(|e| e["kind"] == kind))
        .unwrap_or_else(|| panic!("no {kind} event in {}", call["events"]))
}

fn at_ms(event: &Value) -> i64 {
    let at = event["at"].as_str().expect("an RFC 3339 time");
    let parsed = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
        .expect("an RFC 3339 time");
    (parsed.unix_timestamp_nanos() / 1_000_000) as i64
}

#[actix_web::test]
async fn the_assistant_greets_first_over_a_pcmu_session_and_hears_the_caller_untouched() {
    let fake = FakeOpenAi::start(Script::new().greeting(Reply::say(GREETING, 400, 0x11))).await;
    let app = ai_app(&fake, |_| {}).await;
    route_to_assistant(&app, assistant(builtin_tools(), everyone())).await;

    let call = app.ring_in(CALLER, NUMBER).await;
    let mut twilio = app.open_stream(&call).await;
    // The first thing the caller hears is the greeting: no ringback.
    hear(&mut twilio, 0x11, 400).await;

    let session = fake.session_config().expect("a session.update");
    assert_eq!(session["type"], "realtime");
    assert_eq!(session["model"], "gpt-realtime");
    assert_eq!(session["instructions"], INSTRUCTIONS);
    assert_eq!(session["audio"]["input"]["format"]["type"], "audio/pcmu");
    assert_eq!(session["audio"]["output"]["format"]["type"], "audio/pcmu");
    assert_eq!(session["audio"]["output"]["voice"], "marin");
    let tools: Vec<&str> = session["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(tools, ["transfer_to_human", "end_call", "log_event"]);
    let create = fake.wait_for_client_event("response.create").await;
    let asked = create["response"]["instructions"]
        .as_str()
        .unwrap_or_default();
    assert!(asked.contains(GREETING), "{create}");

    // Caller audio reaches the model byte for byte (no transcoding).
    for seq in 0..10 {
        twilio.send_media(&frame(0x40, seq));
    }
    let appended = fake
        .wait_for_client_event("input_audio_buffer.append")
        .await;
    let first = base64_decode(appended["audio"].as_str().expect("audio"));
    assert_eq!(first, frame(0x40, 0));

    let record = app
        .wait_for_call(&call.call_id, |c| c["status"] == "assistant")
        .await;
    let kinds = event_kinds(&record);
    assert!(kinds.contains(&"assistant".to_owned()), "{kinds:?}");
    assert!(kinds.contains(&"ai_connected".to_owned()), "{kinds:?}");
    assert!(record["assistant_id"].is_string(), "{record}");
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64")
}

#[actix_web::test]
async fn a_barge_in_clears_twilio_and_truncates_at_the_audio_actually_played() {
    barge_in(0, 100).await;
}

#[actix_web::test]
async fn with_sparser_marks_a_barge_in_truncates_at_the_last_mark_that_played() {
    // A mark every 300 ms: after every third 100 ms delta.
    barge_in(300, 300).await;
}

/// The caller speaks over the assistant: waits for Twilio's `clear` and the
/// model's `conversation.item.truncate`; answers where it truncated, and what the
/// marks echoed because their audio played (not those flushed by the clear) say
/// was heard — `ai:N` follows the first N × `step_ms` of the answer — with them.
async fn interrupt(
    twilio: &mut TwilioStream,
    fake: &FakeOpenAi,
    step_ms: u64,
) -> (u64, u64, Vec<u64>) {
    speak(twilio, 0x50, 10);
    loop {
        let message = twilio.next().await.expect("the engine sends clear");
        if message["event"] == "clear" {
            break;
        }
    }
    let truncate = fake
        .wait_for_client_event("conversation.item.truncate")
        .await;
    let truncated_at = truncate["audio_end_ms"].as_u64().expect("audio_end_ms");
    let played: Vec<u64> = twilio
        .echoed_marks()
        .iter()
        .filter_map(|(name, played_ms)| {
            let n: u64 = name.strip_prefix("ai:")?.parse().ok()?;
            (*played_ms >= n * step_ms).then_some(n * step_ms)
        })
        .collect();
    let heard = played.iter().copied().max().unwrap_or(0);
    (truncated_at, heard, played)
}

/// `mark_interval_ms` as configured; `step_ms`, the audio between two marks.
async fn barge_in(mark_interval_ms: u64, step_ms: u64) {
    // 4 s of greeting generated four times faster than it plays, so at the barge-in
    // far more has been sent than played; two deltas arrive after the interruption.
    let script = Script::new()
        .greeting(Reply::say("A long welcome message.", 4_000, 0x22))
        .paced(Duration::from_millis(25))
        .late_deltas(2)
        .turn("Stop, I need help", Reply::say("Sure.", 200, 0x23));
    let fake = FakeOpenAi::start(script).await;
    let app = ai_app(&fake, |s| {
        s.openai.mark_interval = Duration::from_millis(mark_interval_ms)
    })
    .await;
    route_to_assistant(&app, assistant(builtin_tools(), everyone())).await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let mut twilio = app.open_stream(&call).await;
    twilio.play_out();

    // Let about a second of the greeting arrive (and some of it play).
    for _ in 0..10 {
        let media = twilio.next_media().await;
        assert_eq!(media[0], 0x22);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (truncated_at, heard, played) = interrupt(&mut twilio, &fake, step_ms).await;
    let sent: usize = fake.sent_audio().iter().map(|(_, bytes)| bytes / 8).sum();
    assert!(
        truncated_at == heard || (heard >= step_ms && truncated_at == heard - step_ms),
        "truncated at {truncated_at} ms; marks say {heard} ms had played ({played:?})"
    );
    assert!(
        (truncated_at as usize) < sent,
        "truncated at what was sent ({sent} ms), not what was played"
    );

    // No audio of the interrupted greeting reaches the caller after the clear; the
    // next reply does.
    hear(&mut twilio, 0x23, 200).await;
    let record = app
        .wait_for_call(&call.call_id, |c| {
            event_kinds(c).contains(&"barge_in".to_owned())
        })
        .await;
    assert_eq!(
        event(&record, "barge_in")["detail"]["played_ms"],
        truncated_at
    );
    assert!(app.metric("switchboard_ai_late_deltas_dropped_total").await >= 1.0);
}

#[actix_web::test]
async fn transfer_to_human_rings_the_agents_with_the_summary_and_connects_one() {
    let script = Script::new()
        .greeting(Reply::say(GREETING, 200, 0x11))
        .turn(
            "I want a refund for order 42",
            Reply::say("Let me get you a person.", 300, 0x12).then_call(
                "transfer_to_human",
                r#"{"reason":"refund","summary":"Caller wants a refund for order 42."}"#,
            ),
        );
    let fake = FakeOpenAi::start(script).await;
    let app = ai_app(&fake, |_| {}).await;
    let agent = app.create_agent("Grace", "production").await;
    let mut phone = app.available_softphone(&agent).await;
    route_to_assistant(&app, assistant(builtin_tools(), everyone())).await;

    let (call, mut twilio) = greeted_caller(&app).await;
    speak(&mut twilio, 0x51, 10);
    hear(&mut twilio, 0x12, 300).await;
    // Then ringback, from its start, while the agents ring.
    let ringback = twilio.next_media().await;
    assert_eq!(
        ringback[..],
        RINGBACK[..ringback.len()],
        "the caller hears ringback"
    );

    let ring = phone.expect_ring(&call.call_id).await;
    assert_eq!(ring["summary"], "Caller wants a refund for order 42.");
    phone.answer(&call.call_id);
    phone.expect("connected").await;
    assert_bridged(&mut twilio, &mut phone, 0x61).await;

    let record = app
        .wait_for_call(&call.call_id, |c| c["status"] == "connected")
        .await;
    assert_eq!(record["agent_id"], agent.id.as_str());
    let handover = event(&record, "ai_handover");
    assert_eq!(handover["detail"]["reason"], "refund");
    let kinds = event_kinds(&record);
    let at = |k: &str| kinds.iter().position(|x| x == k).expect(k);
    assert!(
        at("ai_handover") < at("ring") && at("ring") < at("claimed"),
        "{kinds:?}"
    );
}

#[actix_web::test]
async fn end_call_hangs_up_once_the_goodbye_has_played() {
    let script = Script::new()
        .greeting(Reply::say(GREETING, 200, 0x11))
        .turn(
            "That's all, thanks",
            Reply::say("Goodbye!", 600, 0x13).then_call("end_call", r#"{"reason":"done"}"#),
        );
    let fake = FakeOpenAi::start(script).await;
    let app = ai_app(&fake, |_| {}).await;
    route_to_assistant(&app, assistant(builtin_tools(), everyone())).await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let mut twilio = app.open_stream(&call).await;
    twilio.play_out();
    hear(&mut twilio, 0x11, 200).await;
    speak(&mut twilio, 0x52, 10);
    hear(&mut twilio, 0x13, 600).await;

    twilio.closed().await;
    // Every mark of the goodbye had been echoed as played before the hang-up.
    // greeting: marks ai:1–2; goodbye: ai:3–8, the last echoed once 600 ms of it
    // had played.
    let echoed = twilio.echoed_marks();
    assert_eq!(echoed.len(), 8, "{echoed:?}");
    let last = echoed.last().expect("marks were echoed");
    assert_eq!(last.0, "ai:8");
    assert!(last.1 >= 600, "only {} ms had played: {echoed:?}", last.1);

    let record = app.wait_for_outcome(&call.call_id).await;
    assert_eq!(record["outcome"], "answered");
    assert_eq!(record["end_reason"], "assistant_end_call");
    let hangup = event(&record, "hangup");
    assert_eq!(hangup["detail"]["by"], "assistant");
    assert_eq!(hangup["detail"]["reason"], "done");
    // The model's socket was closed with a close frame, not dropped.
    let deadline = tokio::time::Instant::now() + crate::helpers::PATIENCE;
    while fake.closed_by_client() < 1 {
        assert!(tokio::time::Instant::now() < deadline, "no close frame");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn webhook_tool(tools: &FakeTools, timeout_ms: u64) -> Value {
    json!([{
        "type": "webhook",
        "name": "order_status",
        "description": "Looks up where an order is.",
        "parameters": { "type": "object", "properties": { "order": { "type": "string" } } },
        "url": tools.url("/orders"),
        "timeout_ms": timeout_ms,
    }])
}

fn order_script() -> Script {
    Script::new()
        .greeting(Reply::say(GREETING, 200, 0x11))
        .turn(
            "Where is my order 42?",
            Reply::call("order_status", r#"{"order":"42"}"#).after(Reply::say(
                "Here is what I found.",
                200,
                0x14,
            )),
        )
}

/// Plays the order conversation; returns the tool output the model got and the
/// `tool_call` event of the call's trail.
async fn ask_for_order(app: &TestApp, fake: &FakeOpenAi) -> (String, Value) {
    let (output, record) = converse_with_tool(app, fake).await;
    (output, event(&record, "tool_call").clone())
}

/// The order conversation; returns the tool output and the call's record.
async fn converse_with_tool(app: &TestApp, fake: &FakeOpenAi) -> (String, Value) {
    let (call, mut twilio) = greeted_caller(app).await;
    speak(&mut twilio, 0x53, 10);
    // The model goes on talking after the tool, whatever the tool said.
    hear(&mut twilio, 0x14, 200).await;
    let outputs = fake.tool_outputs();
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    let record = app
        .wait_for_call(&call.call_id, |c| {
            event_kinds(c).contains(&"tool_call".to_owned())
        })
        .await;
    (outputs[0].1.clone(), record)
}

#[actix_web::test]
async fn a_webhook_tool_gets_the_arguments_and_its_answer_goes_back_to_the_model() {
    let tools = FakeTools::start().await;
    tools.on(
        "/orders",
        ToolAnswer::Json(json!({ "status": "shipped", "eta": "tomorrow" })),
    );
    let fake = FakeOpenAi::start(order_script()).await;
    let app = ai_app(&fake, |_| {}).await;
    route_to_assistant(&app, assistant(webhook_tool(&tools, 2_000), everyone())).await;

    let (output, trail) = ask_for_order(&app, &fake).await;
    let posted = tools.calls("/orders");
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0]["tool"], "order_status");
    assert_eq!(posted[0]["arguments"], json!({ "order": "42" }));
    let answer: Value = serde_json::from_str(&output).expect("JSON output");
    assert_eq!(answer, json!({ "status": "shipped", "eta": "tomorrow" }));
    assert_eq!(trail["detail"]["name"], "order_status");
    assert_eq!(trail["detail"]["ok"], true);
}

#[actix_web::test]
async fn a_webhook_tool_that_hangs_times_out_and_the_model_is_told() {
    let tools = FakeTools::start().await;
    tools.on("/orders", ToolAnswer::Hang);
    let fake = FakeOpenAi::start(order_script()).await;
    let app = ai_app(&fake, |_| {}).await;
    route_to_assistant(&app, assistant(webhook_tool(&tools, 300), everyone())).await;

    let (output, trail) = ask_for_order(&app, &fake).await;
    let answer: Value = serde_json::from_str(&output).expect("JSON output");
    assert_eq!(
        answer["error"], "the tool did not answer within 300 ms",
        "{answer}"
    );
    assert_eq!(trail["detail"]["ok"], false);
}

#[actix_web::test]
async fn a_webhook_tool_that_answers_500_returns_the_error_to_the_model() {
    let tools = FakeTools::start().await;
    tools.on("/orders", ToolAnswer::Status(500));
    let fake = FakeOpenAi::start(order_script()).await;
    let app = ai_app(&fake, |_| {}).await;
    route_to_assistant(&app, assistant(webhook_tool(&tools, 2_000), everyone())).await;

    let (output, trail) = ask_for_order(&app, &fake).await;
    let answer: Value = serde_json::from_str(&output).expect("JSON output");
    assert_eq!(answer["error"], "the tool answered HTTP 500", "{answer}");
    assert_eq!(trail["detail"]["detail"]["status"], 500);
}

#[actix_web::test]
async fn log_event_puts_the_assistants_event_in_the_call_trail() {
    let script = Script::new()
        .greeting(Reply::say(GREETING, 200, 0x11))
        .turn(
            "Call me back tomorrow",
            Reply::call(
                "log_event",
                r#"{"name":"callback_promised","detail":{"when":"tomorrow"}}"#,
            )
            .after(Reply::say("Noted.", 200, 0x14)),
        );
    let fake = FakeOpenAi::start(script).await;
    let app = ai_app(&fake, |_| {}).await;
    route_to_assistant(&app, assistant(builtin_tools(), everyone())).await;

    let (output, record) = converse_with_tool(&app, &fake).await;
    assert_eq!(
        serde_json::from_str::<Value>(&output).expect("JSON output"),
        json!({ "ok": true })
    );
    assert_eq!(event(&record, "tool_call")["detail"]["name"], "log_event");
    let logged = event(&record, "ai_log");
    assert_eq!(logged["detail"]["name"], "callback_promised");
    assert_eq!(logged["detail"]["detail"], json!({ "when": "tomorrow" }));
}

#[actix_web::test]
async fn a_tool_call_with_invalid_json_arguments_gets_an_error_and_the_call_goes_on() {
    let script = Script::new()
        .greeting(Reply::say(GREETING, 200, 0x11))
        .turn(
            "Note that please",
            Reply::call("log_event", r#"{"name": "note", "#).after(Reply::say("Sorry.", 200, 0x14)),
        );
    let fake = FakeOpenAi::start(script).await;
    let app = ai_app(&fake, |_| {}).await;
    route_to_assistant(&app, assistant(builtin_tools(), everyone())).await;

    let (output, trail) = ask_for_order(&app, &fake).await;
    let answer: Value = serde_json::from_str(&output).expect("JSON output");
    let error = answer["error"].as_str().expect("an error for the model");
    assert!(
        error.starts_with("the arguments are not valid JSON"),
        "{error}"
    );
    assert_eq!(trail["detail"]["ok"], false);
}

#[actix_web::test]
async fn malformed_and_unknown_realtime_events_are_ignored_and_the_call_goes_on() {
    let script = Script::new()
        .greeting(Reply::say(GREETING, 200, 0x11))
        .turn("Hello?", Reply::say("Still here.", 200, 0x15));
    let fake = FakeOpenAi::start(script).await;
    let app = ai_app(&fake, |_| {}).await;
    route_to_assistant(&app, assistant(builtin_tools(), everyone())).await;
    let (call, mut twilio) = greeted_caller(&app).await;

    fake.send_raw("{this is not json");
    fake.send_raw(r#"{"type":"response.hologram.delta","delta":"?"}"#);
    fake.send_raw(r#"{"no_type":true}"#);
    fake.send_raw(r#"{"type":"response.output_audio.delta","delta":"@@not base64@@","item_id":"x","response_id":"y"}"#);
    speak(&mut twilio, 0x54, 10);
    hear(&mut twilio, 0x15, 200).await;
    assert!(app.metric("switchboard_ai_events_ignored_total").await >= 4.0);
    let record = app.call(&call.call_id).await;
    assert_eq!(record["status"], "assistant");
}

// ---- failure: the caller is never left in silence ----

/// Waits until the call is in voicemail (its assistant's failure route) and returns
/// its record with the reason of its `ai_failed` event.
async fn in_voicemail_after_ai_failed(app: &TestApp, call_id: &str) -> (Value, String) {
    let record = app
        .wait_for_call(call_id, |c| c["status"] == "voicemail")
        .await;
    let reason = event(&record, "ai_failed")["detail"]["reason"]
        .as_str()
        .expect("a reason")
        .to_owned();
    (record, reason)
}

/// The call reached its failure route: returns the ring the agent got and the
/// milliseconds between `at_event` and that ring in the trail.
async fn assert_rang_after(app: &TestApp, call_id: &str, at_event: &str) -> (Value, i64) {
    let record = app
        .wait_for_call(call_id, |c| event_kinds(c).contains(&"ring".to_owned()))
        .await;
    let failed = event(&record, "ai_failed");
    let since = at_ms(event(&record, "ring")) - at_ms(event(&record, at_event));
    (failed.clone(), since)
}

/// A call to an assistant that cannot start: an available agent is rung within
/// 2 s of the media starting, and the trail's `ai_failed` says why.
async fn fails_over_to_an_agent(
    app: &TestApp,
    why: &str,
) -> (InboundCall, TwilioStream, Softphone) {
    let agent = app.create_agent("Grace", "production").await;
    let mut phone = app.available_softphone(&agent).await;
    route_to_assistant(app, assistant(builtin_tools(), everyone())).await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let twilio = app.open_stream(&call).await;
    phone.expect_ring(&call.call_id).await;
    let (failed, after_ms) = assert_rang_after(app, &call.call_id, "media_started").await;
    let reason = failed["detail"]["reason"].as_str().expect("a reason");
    assert!(reason.contains(why), "{reason}");
    assert!(
        after_ms < 2_000,
        "the agents rang {after_ms} ms after the media started"
    );
    (call, twilio, phone)
}

#[actix_web::test]
async fn a_refused_realtime_connection_sends_the_caller_to_the_agents_at_once() {
    let fake = FakeOpenAi::start_with(Script::new(), Mode::RejectHandshake(401)).await;
    let app = ai_app(&fake, |_| {}).await;
    let (call, mut twilio, mut phone) = fails_over_to_an_agent(&app, "HTTP 401").await;
    phone.answer(&call.call_id);
    phone.expect("connected").await;
    assert_bridged(&mut twilio, &mut phone, 0x62).await;
}

#[actix_web::test]
async fn a_refused_session_sends_the_caller_to_voicemail_when_that_is_the_failure_route() {
    let fake = FakeOpenAi::start_with(Script::new(), Mode::SessionError).await;
    let app = ai_app(&fake, |_| {}).await;
    route_to_assistant(
        &app,
        assistant(builtin_tools(), json!({ "kind": "voicemail" })),
    )
    .await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let mut twilio = app.open_stream(&call).await;
    let mark = twilio.wait_for("mark").await;
    assert_eq!(mark["mark"]["name"], "voicemail-prompt");

    let (record, reason) = in_voicemail_after_ai_failed(&app, &call.call_id).await;
    assert!(reason.contains("refused the session"), "{reason}");
    let since = at_ms(event(&record, "voicemail")) - at_ms(event(&record, "media_started"));
    assert!(since < 2_000, "voicemail came {since} ms after the media");
}

#[actix_web::test]
async fn a_realtime_api_that_never_answers_times_out_to_the_failure_route_within_two_seconds() {
    let fake = FakeOpenAi::start_with(Script::new(), Mode::Mute).await;
    let app = ai_app(&fake, |_| {}).await;
    fails_over_to_an_agent(&app, "not ready within 1500 ms").await;
}

#[actix_web::test]
async fn an_unreachable_realtime_api_sends_the_caller_to_the_agents() {
    let fake = FakeOpenAi::start(Script::new()).await;
    let app = spawn_app_with(TestDb::Sqlite, |s| {
        // Nothing listens on port 1.
        s.openai.realtime_url = "ws://127.0.0.1:1/v1/realtime".parse().expect("a URL");
        s.openai.api_key = Some(SecretString::from(fake.api_key()));
        s.summary.provider = SummaryProvider::Off;
    })
    .await;
    fails_over_to_an_agent(&app, "could not be reached").await;
}

#[actix_web::test]
async fn a_realtime_session_dropped_mid_call_hands_the_caller_to_an_agent() {
    let fake = FakeOpenAi::start(Script::new().greeting(Reply::say(GREETING, 200, 0x11))).await;
    let app = ai_app(&fake, |_| {}).await;
    let agent = app.create_agent("Grace", "production").await;
    let mut phone = app.available_softphone(&agent).await;
    route_to_assistant(&app, assistant(builtin_tools(), everyone())).await;
    let (call, mut twilio) = greeted_caller(&app).await;
    app.wait_for_call(&call.call_id, |c| {
        event_kinds(c).contains(&"ai_connected".to_owned())
    })
    .await;

    fake.drop_session();
    phone.expect_ring(&call.call_id).await;
    let (failed, after_ms) = assert_rang_after(&app, &call.call_id, "ai_failed").await;
    let reason = failed["detail"]["reason"].as_str().expect("a reason");
    assert!(
        reason.contains("dropped") || reason.contains("failed"),
        "{reason}"
    );
    assert!(
        after_ms < 2_000,
        "the agents rang {after_ms} ms after the drop"
    );
    phone.answer(&call.call_id);
    phone.expect("connected").await;
    assert_bridged(&mut twilio, &mut phone, 0x63).await;
    assert_eq!(app.metric("switchboard_ai_failures_total").await, 1.0);
}

// ---- the record: transcript, summary, cost ----

/// USD per token of gpt-realtime (PROTOCOLS.md §7.1).
const TEXT_IN: f64 = 4.0 / 1e6;
const TEXT_CACHED: f64 = 0.4 / 1e6;
const TEXT_OUT: f64 = 16.0 / 1e6;
const AUDIO_IN: f64 = 32.0 / 1e6;
const AUDIO_OUT: f64 = 64.0 / 1e6;

#[actix_web::test]
async fn an_ai_call_leaves_its_transcript_a_summary_an_outcome_and_a_cost() {
    // Anthropic's dated model id (docs.anthropic.com, models overview:
    // `claude-haiku-4-5-20251001`, alias `claude-haiku-4-5`) is priced as its alias.
    leaves_transcript_summary_and_cost(
        TestDb::Sqlite,
        SummaryProvider::Anthropic,
        "claude-haiku-4-5-20251001",
    )
    .await;
}

#[actix_web::test]
async fn an_ai_call_on_postgres_summarized_by_openai_leaves_the_same_record() {
    leaves_transcript_summary_and_cost(TestDb::Postgres, SummaryProvider::OpenAi, "gpt-4.1-mini")
        .await;
}

async fn leaves_transcript_summary_and_cost(db: TestDb, provider: SummaryProvider, model: &str) {
    let llm = FakeLlm::start(LlmAnswer::Text(
        r#"{"summary":"The caller asked where order 42 is; it shipped.","outcome":"goal_achieved"}"#
            .into(),
    ))
    .await;
    let script = Script::new()
        .greeting(Reply::say(GREETING, 400, 0x11))
        .turn(
            "Where is order 42?",
            Reply::say("It shipped yesterday.", 1_000, 0x16),
        );
    let fake = FakeOpenAi::start(script).await;
    let base = llm.base_url();
    let key = llm.api_key().to_owned();
    let summary_model = model.to_owned();
    let app = ai_app_on(db, &fake, move |s| {
        s.summary.provider = provider;
        s.summary.base_url = Some(base.parse().expect("the fake's URL"));
        s.summary.model = summary_model;
        s.summary.api_key = Some(SecretString::from(key));
    })
    .await;
    route_to_assistant(&app, assistant(builtin_tools(), everyone())).await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let mut twilio = app.open_stream(&call).await;
    hear(&mut twilio, 0x11, 400).await;
    // 15 frames of speech: 300 ms, 3 audio tokens for the model.
    speak(&mut twilio, 0x55, 15);
    hear(&mut twilio, 0x16, 1_000).await;
    // The transcript of the reply arrives after its audio; give it a moment.
    app.wait_for_call(&call.call_id, |c| {
        event_kinds(c).iter().filter(|k| *k == "transcript").count() == 3
    })
    .await;
    twilio.stop();

    let record = app
        .wait_for_call(&call.call_id, |c| c["ai_outcome"].is_string())
        .await;
    assert_eq!(record["outcome"], "answered");
    assert_eq!(record["ai_outcome"], "goal_achieved");
    assert_eq!(
        record["summary"],
        "The caller asked where order 42 is; it shipped."
    );
    let asked = llm.requests();
    assert_eq!(asked.len(), 1);
    let prompt = asked[0].to_string();
    assert!(prompt.contains("Where is order 42?") && prompt.contains("It shipped yesterday."));

    let (status, transcript) = app
        .get_json(&format!("/api/calls/{}/transcript", call.call_id))
        .await;
    assert_eq!(status, 200, "{transcript}");
    let turns: Vec<(String, String)> = transcript["turns"]
        .as_array()
        .expect("turns")
        .iter()
        .map(|t| {
            (
                t["role"].as_str().unwrap_or_default().to_owned(),
                t["text"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        turns,
        [
            ("assistant".to_owned(), GREETING.to_owned()),
            ("caller".to_owned(), "Where is order 42?".to_owned()),
            ("assistant".to_owned(), "It shipped yesterday.".to_owned()),
        ]
    );

    // The fake's usage: greeting — text in 100, audio out 400/50 = 8, text out 6
    // words; reply — audio in 3, text in 110 of which 64 cached, audio out 20, text
    // out 3 words.
    let cost = &record["cost"];
    let greeting = 100.0 * TEXT_IN + 8.0 * AUDIO_OUT + 6.0 * TEXT_OUT;
    let reply =
        46.0 * TEXT_IN + 64.0 * TEXT_CACHED + 3.0 * AUDIO_IN + 20.0 * AUDIO_OUT + 3.0 * TEXT_OUT;
    let realtime = cost["realtime"]["amount"]
        .as_f64()
        .expect("realtime amount");
    assert!((realtime - (greeting + reply)).abs() < 2e-6, "{cost}");
    let legs = cost["telephony"]["legs"].as_array().expect("legs");
    assert!(
        legs.iter()
            .any(|l| l["leg"] == "inbound" && l["minutes"] == 1),
        "{cost}"
    );
    assert_eq!(cost["summary"]["model"], model);
    assert_eq!(cost["summary"]["priced"], true, "{cost}");
    assert!(
        cost["summary"]["input_tokens"].as_u64().unwrap_or(0) > 0,
        "{cost}"
    );
    // The caller's transcription, billed apart by OpenAI
    // (`conversation.item.input_audio_transcription.completed` `usage`): the
    // fake's 300 ms of speech are 3 audio tokens, "Where is order 42?" 4 text
    // tokens out; gpt-4o-mini-transcribe costs $3 per 1M audio tokens in and $5
    // per 1M text tokens out.
    let transcription = &cost["transcription"]["models"][0];
    assert_eq!(transcription["model"], "gpt-4o-mini-transcribe", "{cost}");
    assert_eq!(transcription["input_audio_tokens"], 3, "{cost}");
    assert_eq!(transcription["output_text_tokens"], 4, "{cost}");
    let transcribed = cost["transcription"]["amount"]
        .as_f64()
        .expect("transcription amount");
    assert!(
        (transcribed - (3.0 * 3.0 + 4.0 * 5.0) / 1e6).abs() < 2e-6,
        "{cost}"
    );
    let parts = cost["telephony"]["amount"].as_f64().unwrap_or(0.0)
        + realtime
        + transcribed
        + cost["summary"]["amount"].as_f64().unwrap_or(0.0);
    let total = cost["total"].as_f64().expect("total");
    assert!((total - parts).abs() < 2e-6, "{cost}");
}

#[actix_web::test]
async fn a_call_without_ai_carries_its_telephony_cost() {
    let fake = FakeOpenAi::start(Script::new()).await;
    let app = ai_app(&fake, |_| {}).await;
    app.create_number(NUMBER, "production", json!({ "kind": "voicemail" }))
        .await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let mut twilio = app.open_stream(&call).await;
    twilio.wait_for("mark").await;
    twilio.stop();
    let record = app
        .wait_for_call(&call.call_id, |c| c["cost"].is_object())
        .await;
    let cost = &record["cost"];
    assert_eq!(cost["realtime"]["amount"], 0.0, "{cost}");
    let legs = cost["telephony"]["legs"].as_array().expect("legs");
    assert!(
        legs.iter()
            .any(|l| l["leg"] == "inbound" && l["minutes"] == 1),
        "{cost}"
    );
    assert!(cost["total"].as_f64().unwrap_or(0.0) > 0.0, "{cost}");
    assert_eq!(fake.sessions(), 0);
}

#[actix_web::test]
async fn switching_a_number_between_agents_and_ai_takes_effect_on_the_next_call() {
    let fake = FakeOpenAi::start(Script::new().greeting(Reply::say(GREETING, 200, 0x11))).await;
    let app = ai_app(&fake, |_| {}).await;
    let agent = app.create_agent("Grace", "production").await;
    let mut phone = app.available_softphone(&agent).await;
    let id = route_to_assistant(&app, assistant(builtin_tools(), everyone())).await;

    let first = app.ring_in(CALLER, NUMBER).await;
    let mut twilio = app.open_stream(&first).await;
    hear(&mut twilio, 0x11, 200).await;

    // Live switch to the agents, no restart: the call in progress stays with the
    // assistant, the next one rings.
    app.number_for_everyone().await;
    let second = app.ring_in(CALLER, NUMBER).await;
    let _second_stream = app.open_stream(&second).await;
    phone.expect_ring(&second.call_id).await;
    assert_eq!(app.call(&first.call_id).await["status"], "assistant");

    // And back to the assistant.
    app.create_number(
        NUMBER,
        "production",
        json!({ "kind": "ai", "assistant_id": id }),
    )
    .await;
    let third = app.ring_in(CALLER, NUMBER).await;
    let mut third_stream = app.open_stream(&third).await;
    hear(&mut third_stream, 0x11, 200).await;
    assert_eq!(fake.sessions(), 2);
}

#[actix_web::test]
async fn a_long_answer_generated_at_once_reaches_the_caller_whole() {
    // The model sends 12 s of audio as 120 deltas in one burst: more than the
    // outbox's audio bound, so nothing of it may be dropped on the way to Twilio.
    let fake = FakeOpenAi::start(Script::new().greeting(Reply::say(GREETING, 12_000, 0x17))).await;
    let app = ai_app(&fake, |_| {}).await;
    route_to_assistant(&app, assistant(builtin_tools(), everyone())).await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let mut twilio = app.open_stream(&call).await;
    hear(&mut twilio, 0x17, 12_000).await;
    assert_eq!(
        app.metric("switchboard_audio_frames_dropped_total").await,
        0.0
    );
}

#[actix_web::test]
async fn a_supervisor_cannot_listen_to_the_assistant_and_the_call_goes_on_but_can_hang_it_up() {
    let script = Script::new()
        .greeting(Reply::say(GREETING, 200, 0x11))
        .turn("Are you still there?", Reply::say("Yes.", 200, 0x18));
    let fake = FakeOpenAi::start(script).await;
    let app = ai_app(&fake, |_| {}).await;
    route_to_assistant(&app, assistant(builtin_tools(), everyone())).await;
    let (call, mut twilio) = greeted_caller(&app).await;

    let (mut console, _) = app.supervisor().await;
    console.send(json!({ "type": "listen", "call_id": call.call_id }));
    let refused = console.wait_for("error", |_| true).await;
    assert_eq!(refused["code"], "refused", "{refused}");
    // The assistant still hears the caller and answers.
    speak(&mut twilio, 0x56, 10);
    hear(&mut twilio, 0x18, 200).await;

    console.send(json!({ "type": "hangup", "call_id": call.call_id }));
    console.wait_for("ack", |m| m["command"] == "hangup").await;
    twilio.closed().await;
    let record = app.wait_for_outcome(&call.call_id).await;
    assert_eq!(record["outcome"], "answered");
}

// ---- issue 9: past 100 sessions, the assistant's own failure route, failed turns ----

/// Open-file limit of this process, from `/proc/self/limits` (Linux).
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[actix_web::test]
async fn three_hundred_ai_calls_at_once_all_get_a_ready_session_and_none_fails() {
    // awc's connector admits 100 connections at once unless told otherwise
    // (awc 3 `Connector::limit`: "The default limit size is 100"), and an
    // upgraded WebSocket holds its permit for as long as it is open; one client
    // per worker thread must still carry every call the node has.
    const CALLS: usize = 300;
    let fake = FakeOpenAi::start(Script::new()).await;
    // A generous set-up time: 300 handshakes at once on a shared 2-core machine.
    let app = ai_app(&fake, |s| {
        s.openai.connect_timeout = Duration::from_millis(20_000)
    })
    .await;
    // Each call is a Twilio socket and a model socket, both ends in this process
    // (the engine raised the soft limit to the hard one as it started).
    if let Some(limit) = open_files_limit() {
        assert!(
            limit >= 2_048,
            "this test opens ~1,300 sockets: raise `ulimit -Hn` (now {limit}) to 2048 or more"
        );
    }
    route_to_assistant(
        &app,
        assistant(builtin_tools(), json!({ "kind": "voicemail" })),
    )
    .await;

    use futures_util::StreamExt as _;
    let calls: Vec<(InboundCall, TwilioStream)> = futures_util::stream::iter(0..CALLS)
        .map(|_| async {
            let call = app.ring_in(CALLER, NUMBER).await;
            let twilio = app.open_stream(&call).await;
            (call, twilio)
        })
        .buffer_unordered(25)
        .collect()
        .await;
    assert_eq!(calls.len(), CALLS);

    // Every session either becomes ready or fails (by the connect timeout at the
    // latest); wait for all of them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let (ready, failed) = loop {
        let ready = app.metric("switchboard_ai_sessions_total").await;
        let failed = app.metric("switchboard_ai_failures_total").await;
        if ready + failed >= CALLS as f64 || tokio::time::Instant::now() > deadline {
            break (ready, failed);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if failed > 0.0 {
        let mut reasons = Vec::new();
        for (call, _) in &calls {
            let (_, record) = app.get_json(&format!("/api/calls/{}", call.call_id)).await;
            if let Some(failed) = record["events"]
                .as_array()
                .and_then(|events| events.iter().find(|e| e["kind"] == "ai_failed"))
            {
                reasons.push(failed["detail"]["reason"].to_string());
            }
        }
        reasons.sort();
        reasons.dedup();
        panic!("{failed} AI sessions failed ({ready} ready): {reasons:?}");
    }
    assert_eq!(ready, CALLS as f64);
    assert_eq!(fake.sessions(), CALLS);
    assert_eq!(
        app.metric("switchboard_ai_connections_open").await,
        CALLS as f64
    );
    // They are all still up, together.
    let (first, _) = &calls[0];
    let (last, _) = &calls[CALLS - 1];
    for call in [first, last] {
        app.wait_for_call(&call.call_id, |c| c["status"] == "assistant")
            .await;
    }
}

#[actix_web::test]
async fn a_call_past_max_connections_goes_to_the_failure_route_at_once() {
    let fake = FakeOpenAi::start(Script::new().greeting(Reply::say(GREETING, 200, 0x11))).await;
    let app = ai_app(&fake, |s| s.openai.max_connections = 1).await;
    route_to_assistant(
        &app,
        assistant(builtin_tools(), json!({ "kind": "voicemail" })),
    )
    .await;
    let (_first, _first_stream) = greeted_caller(&app).await;

    let second = app.ring_in(CALLER, NUMBER).await;
    let mut twilio = app.open_stream(&second).await;
    let mark = twilio.wait_for("mark").await;
    assert_eq!(mark["mark"]["name"], "voicemail-prompt");
    let (_, reason) = in_voicemail_after_ai_failed(&app, &second.call_id).await;
    assert!(reason.contains("openai.max_connections"), "{reason}");
    assert_eq!(fake.sessions(), 1, "no second handshake was attempted");
}

/// Where an assistant sends its callers when it fails.
#[derive(Clone, Copy)]
enum OnFailure {
    Voicemail,
    /// `{"kind":"agents","agent_ids":[one agent]}`, with another agent available.
    NamedAgent,
}

/// A call to an assistant that cannot start goes to the assistant's own
/// `on_failure` (as POST /api/assistants documents it), never to everyone: an
/// available agent who is not on that route is never rung.
async fn goes_to_its_own_failure_route(app: &TestApp, on_failure: OnFailure, why: &str) {
    let grace = app.create_agent("Grace", "production").await;
    let mut grace_phone = app.available_softphone(&grace).await;
    let alan = app.create_agent("Alan", "production").await;
    let mut alan_phone = app.available_softphone(&alan).await;
    let route = match on_failure {
        OnFailure::Voicemail => json!({ "kind": "voicemail" }),
        OnFailure::NamedAgent => json!({ "kind": "agents", "agent_ids": [alan.id] }),
    };
    route_to_assistant(app, assistant(builtin_tools(), route.clone())).await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let mut twilio = app.open_stream(&call).await;

    let record = match on_failure {
        OnFailure::Voicemail => {
            let mark = twilio.wait_for("mark").await;
            assert_eq!(mark["mark"]["name"], "voicemail-prompt");
            app.wait_for_call(&call.call_id, |c| c["status"] == "voicemail")
                .await
        }
        OnFailure::NamedAgent => {
            alan_phone.expect_ring(&call.call_id).await;
            app.wait_for_call(&call.call_id, |c| {
                event_kinds(c).contains(&"ring".to_owned())
            })
            .await
        }
    };
    let failed = event(&record, "ai_failed");
    let reason = failed["detail"]["reason"].as_str().expect("a reason");
    assert!(reason.contains(why), "{reason}");
    assert_eq!(failed["detail"]["route"], route, "{failed}");
    for ring in record["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "ring")
    {
        assert_eq!(ring["detail"]["agent_ids"], json!([alan.id]), "{ring}");
    }
    assert!(
        grace_phone.silent_for(Duration::from_millis(300)).await,
        "an agent off the failure route was rung"
    );
}

async fn refused_handshake(on_failure: OnFailure) {
    // OpenAI answers a bad key with 401 `invalid_api_key` before the upgrade.
    let fake = FakeOpenAi::start_with(Script::new(), Mode::RejectHandshake(401)).await;
    let app = ai_app(&fake, |_| {}).await;
    goes_to_its_own_failure_route(&app, on_failure, "HTTP 401").await;
}

async fn unreachable_model(on_failure: OnFailure) {
    let fake = FakeOpenAi::start(Script::new()).await;
    let app = ai_app(&fake, |s| {
        // Nothing listens on port 1.
        s.openai.realtime_url = "ws://127.0.0.1:1/v1/realtime".parse().expect("a URL");
    })
    .await;
    goes_to_its_own_failure_route(&app, on_failure, "could not be reached").await;
}

async fn slow_handshake(on_failure: OnFailure) {
    // The upgrade answer comes long after the connect timeout.
    let fake =
        FakeOpenAi::start_with(Script::new(), Mode::SlowHandshake(Duration::from_secs(5))).await;
    let app = ai_app(&fake, |s| {
        s.openai.connect_timeout = Duration::from_millis(300)
    })
    .await;
    goes_to_its_own_failure_route(&app, on_failure, "within 300 ms").await;
}

#[actix_web::test]
async fn a_refused_handshake_sends_the_caller_to_the_assistants_voicemail() {
    refused_handshake(OnFailure::Voicemail).await;
}

#[actix_web::test]
async fn a_refused_handshake_rings_only_the_assistants_named_agents() {
    refused_handshake(OnFailure::NamedAgent).await;
}

#[actix_web::test]
async fn an_unreachable_model_sends_the_caller_to_the_assistants_voicemail() {
    unreachable_model(OnFailure::Voicemail).await;
}

#[actix_web::test]
async fn an_unreachable_model_rings_only_the_assistants_named_agents() {
    unreachable_model(OnFailure::NamedAgent).await;
}

#[actix_web::test]
async fn a_handshake_slower_than_the_connect_timeout_sends_the_caller_to_the_assistants_voicemail()
{
    slow_handshake(OnFailure::Voicemail).await;
}

#[actix_web::test]
async fn a_handshake_slower_than_the_connect_timeout_rings_only_the_assistants_named_agents() {
    slow_handshake(OnFailure::NamedAgent).await;
}

// Failed turns. Realtime API reference, server events, `response.done`:
// `response.status` is `completed`, `cancelled`, `failed` or `incomplete`;
// `status_details.error` describes a failure; `incomplete` with reason
// `max_output_tokens` or `content_filter` is a cut-off answer, not an error.

/// The `response.create`s the relay sent.
fn response_creates(fake: &FakeOpenAi) -> usize {
    fake.client_events()
        .iter()
        .filter(|e| e["type"] == "response.create")
        .count()
}

#[actix_web::test]
async fn a_failed_response_is_asked_for_again_once_and_the_caller_hears_the_retry() {
    let script = Script::new()
        .greeting(Reply::say(GREETING, 200, 0x11))
        .turn(
            "What are your hours?",
            Reply::default()
                .fails("server_error", "internal_error")
                .on_retry(Reply::say("We open at nine.", 200, 0x1A)),
        );
    let fake = FakeOpenAi::start(script).await;
    let app = ai_app(&fake, |_| {}).await;
    route_to_assistant(
        &app,
        assistant(builtin_tools(), json!({ "kind": "voicemail" })),
    )
    .await;
    let (call, mut twilio) = greeted_caller(&app).await;
    speak(&mut twilio, 0x57, 10);
    hear(&mut twilio, 0x1A, 200).await;

    let record = app
        .wait_for_call(&call.call_id, |c| {
            event_kinds(c).contains(&"ai_turn_failed".to_owned())
        })
        .await;
    let failed = event(&record, "ai_turn_failed");
    let reason = failed["detail"]["reason"].as_str().expect("a reason");
    assert!(
        reason.contains("failed") && reason.contains("server_error"),
        "{reason}"
    );
    assert_eq!(failed["detail"]["retrying"], true);
    assert_eq!(record["status"], "assistant");
    assert_eq!(response_creates(&fake), 2, "the greeting and one retry");
}

#[actix_web::test]
async fn a_response_that_fails_again_after_its_retry_sends_the_caller_to_the_failure_route() {
    let script = Script::new()
        .greeting(Reply::say(GREETING, 200, 0x11))
        .turn(
            "What are your hours?",
            Reply::default()
                .fails("server_error", "internal_error")
                .on_retry(Reply::default().incomplete(json!({
                    "reason": null,
                    "error": { "type": "server_error", "code": "stream_interrupted" },
                }))),
        );
    let fake = FakeOpenAi::start(script).await;
    let app = ai_app(&fake, |_| {}).await;
    route_to_assistant(
        &app,
        assistant(builtin_tools(), json!({ "kind": "voicemail" })),
    )
    .await;
    let (call, mut twilio) = greeted_caller(&app).await;
    speak(&mut twilio, 0x58, 10);
    // The greeting's marks come first.
    while twilio.wait_for("mark").await["mark"]["name"] != "voicemail-prompt" {}

    let (record, reason) = in_voicemail_after_ai_failed(&app, &call.call_id).await;
    assert_eq!(event(&record, "ai_turn_failed")["detail"]["retrying"], true);
    assert!(
        reason.contains("cut short by an error")
            && reason.contains("stream_interrupted")
            && reason.contains("after a retry"),
        "{reason}"
    );
    assert_eq!(response_creates(&fake), 2, "the greeting and one retry");
}

#[actix_web::test]
async fn a_response_cut_off_at_max_output_tokens_is_not_a_failure() {
    let script = Script::new()
        .greeting(Reply::say(GREETING, 200, 0x11))
        .turn(
            "What are your hours?",
            Reply::say("We open at", 200, 0x1B)
                .incomplete(json!({ "reason": "max_output_tokens" })),
        )
        .turn("And on Sunday?", Reply::say("Closed.", 200, 0x1C));
    let fake = FakeOpenAi::start(script).await;
    let app = ai_app(&fake, |_| {}).await;
    route_to_assistant(
        &app,
        assistant(builtin_tools(), json!({ "kind": "voicemail" })),
    )
    .await;
    let (call, mut twilio) = greeted_caller(&app).await;
    speak(&mut twilio, 0x59, 10);
    hear(&mut twilio, 0x1B, 200).await;
    speak(&mut twilio, 0x5A, 10);
    hear(&mut twilio, 0x1C, 200).await;
    let record = app.call(&call.call_id).await;
    assert_eq!(record["status"], "assistant");
    let kinds = event_kinds(&record);
    assert!(!kinds.contains(&"ai_turn_failed".to_owned()), "{kinds:?}");
    assert_eq!(
        response_creates(&fake),
        1,
        "only the greeting was asked for"
    );
}

// Cost of OpenAI summaries with cached prompt tokens (Chat Completions
// `usage.prompt_tokens_details.cached_tokens`, part of `prompt_tokens`, billed at
// the cached-input rate; gpt-4.1-mini: $0.40 input, $0.10 cached, $1.60 output
// per 1M tokens, OpenAI's pricing page).

#[actix_web::test]
async fn cached_prompt_tokens_of_an_openai_summary_are_priced_at_the_cached_rate() {
    let llm = FakeLlm::start(LlmAnswer::Text(
        r#"{"summary":"The caller said nothing.","outcome":"no_answer"}"#.into(),
    ))
    .await;
    let fake = FakeOpenAi::start(Script::new().greeting(Reply::say(GREETING, 200, 0x11))).await;
    let base = llm.base_url();
    let key = llm.api_key().to_owned();
    let app = ai_app(&fake, move |s| {
        s.summary.provider = SummaryProvider::OpenAi;
        s.summary.base_url = Some(base.parse().expect("the fake's URL"));
        s.summary.model = "gpt-4.1-mini".into();
        s.summary.api_key = Some(SecretString::from(key));
    })
    .await;
    // Long instructions: the prompts of two calls share more than 1,024 tokens.
    let mut body = assistant(builtin_tools(), everyone());
    body["instructions"] = json!(format!("{INSTRUCTIONS} {}", "Be kind. ".repeat(600)));
    route_to_assistant(&app, body).await;

    let mut costs = Vec::new();
    for _ in 0..2 {
        let (call, mut twilio) = greeted_caller(&app).await;
        twilio.stop();
        let record = app
            .wait_for_call(&call.call_id, |c| c["ai_outcome"].is_string())
            .await;
        costs.push(record["cost"]["summary"].clone());
    }
    assert_eq!(costs[0]["cached_input_tokens"], 0, "{}", costs[0]);
    let summary = &costs[1];
    let n = |key: &str| {
        summary[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} in {summary}"))
    };
    let (input, cached, output) = (
        n("input_tokens"),
        n("cached_input_tokens"),
        n("output_tokens"),
    );
    assert!(cached >= 1_024 && cached % 128 == 0, "{summary}");
    let expected =
        ((input - cached) as f64 * 0.4 + cached as f64 * 0.1 + output as f64 * 1.6) / 1e6;
    let amount = summary["amount"].as_f64().expect("an amount");
    assert!(
        (amount - expected).abs() < 2e-6,
        "{amount} ≠ {expected}: {summary}"
    );
}

#[actix_web::test]
async fn a_media_and_the_mark_behind_it_go_out_in_one_socket_write() {
    // 4 s of answer in 100 ms deltas, one every 25 ms (steady, faster than it plays),
    // with a mark after every delta: two messages per delta, one write if batched.
    let script = Script::new()
        .greeting(Reply::say(GREETING, 4_000, 0x19))
        .paced(Duration::from_millis(25));
    let fake = FakeOpenAi::start(script).await;
    let app = ai_app(&fake, |s| s.openai.mark_interval = Duration::ZERO).await;
    route_to_assistant(&app, assistant(builtin_tools(), everyone())).await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let mut twilio = app.open_stream(&call).await;
    // Warm-up: the session's set-up messages and the first deltas.
    for _ in 0..5 {
        assert_eq!(twilio.next_media().await[0], 0x19);
    }
    let writes_before = app.metric("switchboard_socket_writes_total").await;
    let messages_before = app.metric("switchboard_socket_messages_total").await;
    let (mut media, mut marks) = (0u32, 0u32);
    while media < 30 {
        let message = twilio.next().await.expect("the engine streams the answer");
        match message["event"].as_str() {
            Some("media") => media += 1,
            Some("mark") => marks += 1,
            _ => {}
        }
    }
    let writes = app.metric("switchboard_socket_writes_total").await - writes_before;
    let messages = app.metric("switchboard_socket_messages_total").await - messages_before;
    assert!(
        marks >= media - 1,
        "a mark after every delta ({marks} for {media})"
    );
    assert!(
        messages >= f64::from(media + marks),
        "{messages} messages counted for {media} media and {marks} marks"
    );
    let per_media = writes / f64::from(media);
    assert!(
        per_media < 1.1,
        "{writes} socket writes for {media} media and {marks} marks: {per_media:.2} per relayed media"
    );
}

#[actix_web::test]
async fn ten_seconds_of_audio_in_one_burst_reach_twilio_whole_with_sparse_marks_and_barge_in_stays_exact(
) {
    // The whole 10 s answer as 500 deltas of 20 ms, sent at once; marks as
    // configured by default (one every 100 ms of audio and one at the end).
    let script = Script::new()
        .greeting(Reply::say("A very long welcome message.", 10_000, 0x26))
        .delta_ms(20)
        .turn("Stop, I need help", Reply::say("Sure.", 200, 0x27));
    let fake = FakeOpenAi::start(script).await;
    let app = ai_app(&fake, |_| {}).await;
    route_to_assistant(&app, assistant(builtin_tools(), everyone())).await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let mut twilio = app.open_stream(&call).await;
    twilio.play_out();

    let (mut audio_ms, mut marks) = (0, 0);
    while audio_ms < 10_000 {
        let message = twilio.next().await.expect("the engine sends the answer");
        match message["event"].as_str() {
            Some("media") => {
                let audio = base64_decode(message["media"]["payload"].as_str().expect("payload"));
                assert!(audio.iter().all(|b| *b == 0x26), "only the answer's audio");
                audio_ms += audio.len() / 8;
            }
            Some("mark") => marks += 1,
            _ => {}
        }
    }
    assert_eq!(audio_ms, 10_000, "the whole answer, nothing dropped");
    assert_eq!(
        app.metric("switchboard_audio_frames_dropped_total").await,
        0.0
    );
    assert!(
        (90..=101).contains(&marks),
        "a mark per 100 ms of audio, not per delta: {marks} for 500 deltas"
    );

    // The caller speaks over it once about a second has played.
    while twilio.played_ms() < 1_000 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (truncated_at, heard, _) = interrupt(&mut twilio, &fake, 100).await;
    assert!(
        truncated_at == heard || (heard >= 100 && truncated_at == heard - 100),
        "truncated at {truncated_at} ms; marks say {heard} ms had played"
    );
    assert!(
        (900..10_000).contains(&truncated_at),
        "cut where the caller was, not at what was sent: {truncated_at} ms"
    );
    hear(&mut twilio, 0x27, 200).await;
}
