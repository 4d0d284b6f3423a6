//! One outbound call through every part of issue 11 at once, nothing moved by
//! hand: a user submits `POST /api/calls/outbound` with a `callback_url`; the
//! `OutboundDispatcher` dials the fake Twilio, which behaves like Twilio
//! (signed status callbacks, the signed `Url` fetched, the Media Stream its
//! TwiML names opened, the AMD verdict); the answer webhook launches the call;
//! the outbound assistant talks to the fake OpenAI Realtime server; the call
//! ends; the status callback makes it terminal; the after-call work (fake
//! Anthropic) writes the summary and task outcome; the reconciler fetches
//! Twilio's price; `GET /api/calls/{id}` shows it all and the user's endpoint
//! got the signed `call.status` events in order and one `call.result`.
//! Also: a call nobody answers (busy, no-answer), a machine that answers
//! (`voicemail`), and a callee hanging up on a live call (the terminal status
//! forwarded to the CallActor).

use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use jiff::Timestamp;
use secrecy::SecretString;
use serde_json::{json, Value};
use switchboard::config::{OnMachine, Settings, SummaryProvider};
use switchboard::outbound::clock::ManualClock;

use crate::db::TestDb;
use crate::fake_providers::calls::{LikeTwilio, PER_MINUTE};
use crate::fake_providers::{FakeProvider, TWILIO_SECRET, TWILIO_SID};
use crate::fakes::llm::{FakeLlm, LlmAnswer};
use crate::fakes::openai::{FakeOpenAi, Reply, Script};
use crate::helpers::{
    event_kinds, spawn_app_with_clock, TestApp, TwilioStream, User, ADMIN_TOKEN, PATIENCE,
};
use crate::outbound_dispatch::add_pool_number;
use crate::outbound_notify::{fast_callbacks, signature_is_valid, Receiver};
use crate::outbound_talk::{speak, until_heard};

/// San Francisco.
pub(crate) const CALLEE: &str = "+14155550123";
/// The workspace's Twilio number calls are placed from.
const POOL: &str = "+14155550199";
pub(crate) const DISCLOSURE: &str = "Hello, this is an AI assistant calling for Ada Lovelace.";
pub(crate) const GREETING: &str = "Acme Plumbing, Joe speaking.";
pub(crate) const HEARD: &str = "Tuesday at nine works for us.";
const SUMMARY: &str =
    r#"{"summary":"Booked a plumber for Tuesday at nine.","outcome":"goal_achieved"}"#;
const OUTCOME: &str = r#"{"objective_met": true, "key_findings": "Visit booked for Tuesday 9 am.", "evidence": ["caller: Tuesday at nine works for us."]}"#;
/// μ-law silence.
const SILENCE: u8 = 0xFF;

/// The engine with Twilio credentials (so its dispatcher dials the fake), the
/// fakes, the user and their endpoint.
pub(crate) struct World {
    pub(crate) app: TestApp,
    pub(crate) twilio: FakeProvider,
    pub(crate) openai: FakeOpenAi,
    _llm: FakeLlm,
    pub(crate) user: User,
    /// The engine's clock: the calls' times, and when queued calls come due.
    pub(crate) clock: ManualClock,
    endpoint: Receiver,
}

pub(crate) async fn world(
    db: TestDb,
    script: Script,
    like: &str,
    configure: impl FnOnce(&mut Settings),
) -> World {
    let twilio = FakeProvider::start().await;
    {
        let mut state = twilio.state();
        state.calls.like_twilio = Some(LikeTwilio {
            answered_by: like.into(),
        });
        state.calls.open_streams = true;
    }
    let openai = FakeOpenAi::start(script).await;
    let llm = FakeLlm::start(LlmAnswer::Text(SUMMARY.into())).await;
    llm.set_structured_answer(LlmAnswer::Text(OUTCOME.into()));
    // The fake's calls start on the wall clock; the engine's clock agrees, and
    // calling hours are always open.
    let clock = ManualClock::new(Timestamp::now());
    let (base, url, key) = (
        twilio.base.clone(),
        openai.url(),
        openai.api_key().to_owned(),
    );
    let (llm_url, llm_key) = (llm.base_url(), llm.api_key().to_owned());
    let app = spawn_app_with_clock(db, &clock, move |s| {
        s.twilio.account_sid = TWILIO_SID.into();
        s.twilio.auth_token = Some(SecretString::from(TWILIO_SECRET));
        s.twilio.api_base = base.parse().expect("a base URL");
        s.openai.realtime_url = url.parse().expect("the fake's URL");
        s.openai.api_key = Some(SecretString::from(key));
        s.openai.exit_grace = Duration::from_secs(5);
        s.summary.provider = SummaryProvider::Anthropic;
        s.summary.base_url = Some(format!("{llm_url}/").parse().expect("the fake's URL"));
        s.summary.api_key = Some(SecretString::from(llm_key));
        s.outbound.dispatch_poll = Duration::from_millis(50);
        s.outbound.result_poll = Duration::from_millis(50);
        s.outbound.greeting_wait = Duration::from_millis(100);
        s.outbound.silence_timeout = Duration::from_secs(60);
        s.outbound.max_hold = Duration::from_secs(120);
        s.outbound.calling_hours_start = jiff::civil::time(0, 0, 0, 0);
        s.outbound.calling_hours_end = jiff::civil::time(23, 59, 59, 0);
        fast_callbacks(s);
        configure(s);
    })
    .await;
    let user = app.create_user("ada@example.com").await;
    add_pool_number(&app, &user, POOL).await;
    World {
        app,
        twilio,
        openai,
        _llm: llm,
        user,
        clock,
        endpoint: Receiver::start(&[]),
    }
}

/// Submits the call with the user's endpoint as `callback_url`; its id.
pub(crate) async fn submit(w: &World) -> String {
    let mut body = crate::outbound_claims::outbound_request(CALLEE);
    body["callback_url"] = json!(w.endpoint.url);
    let (status, answer) = w
        .app
        .post_json("/api/calls/outbound", &body, Some(&w.user.api_key))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["status"], "queued", "{answer}");
    answer["id"].as_str().expect("an id").to_owned()
}

/// The CallSid of the fake's one call, once the dispatcher dialed it.
pub(crate) async fn dialed(twilio: &FakeProvider) -> String {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(call) = twilio.state().calls.calls.first() {
            return call.resource["sid"].as_str().expect("a sid").to_owned();
        }
        assert!(tokio::time::Instant::now() < deadline, "never dialed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Silence until the relay relays it (appends reach the model).
pub(crate) async fn until_live(openai: &FakeOpenAi, stream: &mut TwilioStream) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while openai.appended_bytes() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never live");
        stream.send_media(&[SILENCE; 160]);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn view(app: &TestApp, id: &str, token: &str) -> (StatusCode, Value) {
    app.send_json_as(Method::GET, &format!("/api/calls/{id}"), None, Some(token))
        .await
}

/// Polls the user's view of the call until `done` holds.
async fn wait_for_view(w: &World, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (status, body) = view(&w.app, id, &w.user.api_key).await;
        if status == StatusCode::OK && done(&body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "call {id} never got there: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The events the user's endpoint got, each checked against the user's secret,
/// once a `call.result` arrived (and a moment for anything after it).
async fn events(w: &World) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let received = w.endpoint.received();
        let bodies: Vec<Value> = received
            .iter()
            .map(|r| serde_json::from_slice(&r.body).expect("JSON"))
            .collect();
        if bodies.iter().any(|b| b["type"] == "call.result") {
            // Anything sent after the result would show up now.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let received = w.endpoint.received();
            for r in &received {
                assert!(signature_is_valid(&w.user.webhook_secret, r), "signed");
            }
            return received
                .iter()
                .map(|r| serde_json::from_slice(&r.body).expect("JSON"))
                .collect();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no call.result among {bodies:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The statuses of the `call.status` events, in the order they arrived, and
/// the `call.result` events.
fn statuses_and_results(events: &[Value]) -> (Vec<String>, Vec<Value>) {
    let statuses = events
        .iter()
        .filter(|e| e["type"] == "call.status")
        .map(|e| e["data"]["status"].as_str().unwrap_or_default().to_owned())
        .collect();
    let results = events
        .iter()
        .filter(|e| e["type"] == "call.result")
        .cloned()
        .collect();
    (statuses, results)
}

/// Every `call.status` event names its previous status: one chain, no gap.
fn assert_chained(events: &[Value]) {
    let mut previous = "queued".to_owned();
    for event in events.iter().filter(|e| e["type"] == "call.status") {
        assert_eq!(event["data"]["previous"], json!(previous), "{events:?}");
        previous = event["data"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
    }
}

// ---- answered by a person, ended by the assistant ---------------------------------

async fn an_outbound_call_runs_from_the_request_to_its_result(db: TestDb) {
    let script = Script::new()
        .greeting(Reply::say(DISCLOSURE, 200, 0x11))
        .turn(
            GREETING,
            Reply::say("unused: the engine asks itself", 100, 0x99),
        )
        .turn(
            HEARD,
            Reply::say("Wonderful, Tuesday at nine it is. Goodbye!", 200, 0x13)
                .then_call("end_call", r#"{"reason":"objective met"}"#),
        );
    let w = world(db, script, "human", |s| {
        s.outbound.on_machine = OnMachine::HangUp;
        // The disclosure waits for the callee's greeting, however long.
        s.outbound.greeting_wait = Duration::from_secs(3_600);
    })
    .await;
    let id = submit(&w).await;
    let sid = dialed(&w.twilio).await;
    assert_eq!(w.twilio.dials(CALLEE), 1);
    let mut stream = w.twilio.media_stream(&sid).await;
    until_live(&w.openai, &mut stream).await;
    // The callee answers with a greeting; then the assistant discloses.
    speak(&mut stream, 25, 0x21);
    until_heard(&mut stream, 0x11).await;
    speak(&mut stream, 25, 0x22);
    until_heard(&mut stream, 0x13).await;
    // The assistant hangs up once its goodbye has played: the stream closes.
    while stream.next().await.is_some() {}
    let call = w
        .app
        .wait_for_call(&id, |c| c["end_reason"].is_string())
        .await;
    assert!(
        event_kinds(&call).contains(&"hangup".to_owned()),
        "{:?}",
        event_kinds(&call)
    );
    // Twilio then ends the call: the status callback makes it completed.
    w.twilio.complete_call(&sid, 125).await;

    let call = wait_for_view(&w, &id, |c| c["reconciled_at"].is_string()).await;
    assert_eq!(call["direction"], "outbound", "{call}");
    assert_eq!(call["disposition"], "completed", "{call}");
    assert_eq!(call["answered_by"], "human", "{call}");
    assert_eq!(call["call_sid"], json!(sid));
    assert_eq!(call["from"], POOL, "{call}");
    let transcript = call["transcript"].to_string();
    let at = |text: &str| {
        transcript
            .find(text)
            .unwrap_or_else(|| panic!("{text:?} in {transcript}"))
    };
    assert!(
        at(GREETING) < at(DISCLOSURE) && at(DISCLOSURE) < at(HEARD),
        "greeting, disclosure, answer: {transcript}"
    );
    assert_eq!(call["summary"], "Booked a plumber for Tuesday at nine.");
    assert_eq!(call["task_outcome"]["objective_met"], true, "{call}");
    assert_eq!(
        call["consent"]["attestation"]["signature_full_name"],
        "Ada Lovelace"
    );
    let cost = &call["cost"];
    assert!(
        cost["estimated"]["total"].as_f64().is_some_and(|t| t > 0.0),
        "{cost}"
    );
    // 2 min 5 s: three started minutes, priced by the fake Twilio.
    let telephony = &cost["actual"]["telephony"];
    assert_eq!(telephony["status"], "actual", "{cost}");
    let price = telephony["amount"].as_f64().expect("an amount");
    assert!((price - 3.0 * PER_MINUTE).abs() < 1e-9, "{cost}");
    assert!(
        cost["actual"]["realtime_model"]["amount"]
            .as_f64()
            .is_some_and(|a| a > 0.0),
        "{cost}"
    );

    // The user's endpoint: each change in order, then one result.
    let events = events(&w).await;
    let (statuses, results) = statuses_and_results(&events);
    assert_eq!(
        statuses,
        ["dialing", "ringing", "in_progress", "completed"],
        "{events:?}"
    );
    assert_chained(&events);
    assert_eq!(results.len(), 1, "{events:?}");
    assert_eq!(results[0]["data"]["id"], json!(id));
    assert_eq!(results[0]["data"]["disposition"], "completed");
    assert_eq!(results[0]["data"]["summary"], call["summary"]);
    assert_eq!(
        events.last().map(|e| e["type"].clone()),
        Some(json!("call.result")),
        "the result comes last"
    );
    let ids: std::collections::HashSet<_> = events.iter().map(|e| e["event_id"].clone()).collect();
    assert_eq!(ids.len(), events.len(), "each event once");
    assert_eq!(w.twilio.dials(CALLEE), 1, "dialed exactly once");
    let (status, _) = view(&w.app, &id, ADMIN_TOKEN).await;
    assert_eq!(status, StatusCode::OK);
}

#[actix_web::test]
async fn an_outbound_call_runs_from_the_request_to_its_result_on_sqlite() {
    an_outbound_call_runs_from_the_request_to_its_result(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn an_outbound_call_runs_from_the_request_to_its_result_on_postgres() {
    an_outbound_call_runs_from_the_request_to_its_result(TestDb::Postgres).await;
}

// ---- nobody answers ---------------------------------------------------------------

async fn a_call_nobody_answers_ends_with_twilios_status_and_a_result(db: TestDb, ending: &str) {
    let w = world(db, Script::new(), "human", |_| {}).await;
    w.twilio.state().calls.unanswered = Some(ending.into());
    let id = submit(&w).await;
    dialed(&w.twilio).await;
    let disposition = ending.replace('-', "_");
    let call = wait_for_view(&w, &id, |c| c["reconciled_at"].is_string()).await;
    assert_eq!(call["disposition"], json!(disposition), "{call}");
    assert_eq!(call["answered_by"], Value::Null, "{call}");
    assert_eq!(call["transcript"], json!([]), "{call}");
    assert_eq!(call["summary"], Value::Null, "{call}");
    assert_eq!(
        call["cost"]["actual"]["telephony"]["amount"],
        json!(0.0),
        "{call}"
    );
    assert_eq!(
        w.openai.sessions(),
        0,
        "no assistant for a call nobody took"
    );

    let events = events(&w).await;
    let (statuses, results) = statuses_and_results(&events);
    assert_eq!(
        statuses,
        ["dialing", "ringing", disposition.as_str()],
        "{events:?}"
    );
    assert_chained(&events);
    assert_eq!(results.len(), 1, "{events:?}");
    assert_eq!(results[0]["data"]["disposition"], json!(disposition));
    assert_eq!(w.twilio.dials(CALLEE), 1, "not dialed again");
}

#[actix_web::test]
async fn a_busy_line_ends_busy_with_one_result_on_sqlite() {
    a_call_nobody_answers_ends_with_twilios_status_and_a_result(TestDb::Sqlite, "busy").await;
}

#[actix_web::test]
async fn a_busy_line_ends_busy_with_one_result_on_postgres() {
    a_call_nobody_answers_ends_with_twilios_status_and_a_result(TestDb::Postgres, "busy").await;
}

#[actix_web::test]
async fn a_call_nobody_picks_up_ends_no_answer_with_one_result_on_sqlite() {
    a_call_nobody_answers_ends_with_twilios_status_and_a_result(TestDb::Sqlite, "no-answer").await;
}

#[actix_web::test]
async fn a_call_nobody_picks_up_ends_no_answer_with_one_result_on_postgres() {
    a_call_nobody_answers_ends_with_twilios_status_and_a_result(TestDb::Postgres, "no-answer")
        .await;
}

// ---- a machine answers ------------------------------------------------------------

async fn a_machine_that_answers_gets_the_message_and_the_call_ends_voicemail(db: TestDb) {
    let script = Script::new().greeting(Reply::say(DISCLOSURE, 200, 0x11));
    let w = world(db, script, "machine_end_beep", |s| {
        s.outbound.greeting_wait = Duration::from_secs(3_600);
        s.outbound.on_machine = OnMachine::LeaveMessage;
    })
    .await;
    let id = submit(&w).await;
    let sid = dialed(&w.twilio).await;
    let mut stream = w.twilio.media_stream(&sid).await;
    until_live(&w.openai, &mut stream).await;
    let create = w.openai.wait_for_client_event("response.create").await;
    assert!(
        create["response"]["instructions"]
            .as_str()
            .is_some_and(|i| i.contains("answering machine")),
        "{create}"
    );
    until_heard(&mut stream, 0x11).await;
    while stream.next().await.is_some() {}
    w.twilio.complete_call(&sid, 40).await;

    let call = wait_for_view(&w, &id, |c| c["reconciled_at"].is_string()).await;
    assert_eq!(call["disposition"], "voicemail", "{call}");
    assert_eq!(call["answered_by"], "machine_end_beep", "{call}");
    let telephony = &call["cost"]["actual"]["telephony"];
    assert_eq!(telephony["status"], "actual", "{call}");
    assert!(
        telephony["amount"]
            .as_f64()
            .is_some_and(|a| (a - PER_MINUTE).abs() < 1e-9),
        "{call}"
    );
    let events = events(&w).await;
    let (statuses, results) = statuses_and_results(&events);
    assert_eq!(
        statuses,
        ["dialing", "ringing", "in_progress", "voicemail"],
        "{events:?}"
    );
    assert_chained(&events);
    assert_eq!(results.len(), 1, "{events:?}");
    assert_eq!(results[0]["data"]["disposition"], "voicemail");
}

#[actix_web::test]
async fn a_machine_that_answers_gets_the_message_and_the_call_ends_voicemail_on_sqlite() {
    a_machine_that_answers_gets_the_message_and_the_call_ends_voicemail(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn a_machine_that_answers_gets_the_message_and_the_call_ends_voicemail_on_postgres() {
    a_machine_that_answers_gets_the_message_and_the_call_ends_voicemail(TestDb::Postgres).await;
}

// ---- the callee hangs up: Twilio's terminal status reaches the live call --------

async fn a_callee_hanging_up_ends_the_live_call_through_the_status_callback(db: TestDb) {
    let script = Script::new().greeting(Reply::say(DISCLOSURE, 200, 0x11));
    let w = world(db, script, "human", |_| {}).await;
    let id = submit(&w).await;
    let sid = dialed(&w.twilio).await;
    let mut stream = w.twilio.media_stream(&sid).await;
    until_live(&w.openai, &mut stream).await;
    until_heard(&mut stream, 0x11).await;
    // The callee hangs up; Twilio says `completed` while the stream is open.
    w.twilio.complete_call(&sid, 30).await;

    let call = w
        .app
        .wait_for_call(&id, |c| c["end_reason"].is_string())
        .await;
    let kinds = event_kinds(&call);
    assert!(kinds.contains(&"twilio_status".to_owned()), "{kinds:?}");
    let reason = call["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["kind"] == "hangup")
        .map(|e| e["detail"]["reason"].clone());
    assert_eq!(call["end_reason"], "twilio_completed", "{call}");
    assert_eq!(reason, None, "the callee hung up, not the engine: {call}");
    while stream.next().await.is_some() {}

    let view = wait_for_view(&w, &id, |c| c["reconciled_at"].is_string()).await;
    assert_eq!(view["disposition"], "completed", "{view}");
    assert!(
        view["summary"].is_string(),
        "the after-call work ran: {view}"
    );
    let events = events(&w).await;
    let (statuses, results) = statuses_and_results(&events);
    assert_eq!(
        statuses,
        ["dialing", "ringing", "in_progress", "completed"],
        "{events:?}"
    );
    assert_eq!(results.len(), 1, "{events:?}");
}

#[actix_web::test]
async fn a_callee_hanging_up_ends_the_live_call_through_the_status_callback_on_sqlite() {
    a_callee_hanging_up_ends_the_live_call_through_the_status_callback(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn a_callee_hanging_up_ends_the_live_call_through_the_status_callback_on_postgres() {
    a_callee_hanging_up_ends_the_live_call_through_the_status_callback(TestDb::Postgres).await;
}

// ---- recording after the notice (issue 12, item 6) --------------------------------

/// The engine's media until `bytes` of audio filled with `fill` went out, and the
/// marks after it within `settle`; nothing is echoed, as if Twilio had not yet
/// played any of it. Answers the marks' names.
async fn unplayed_marks(
    stream: &mut TwilioStream,
    fill: u8,
    bytes: usize,
    settle: Duration,
) -> Vec<String> {
    use base64::Engine as _;
    let (mut heard, mut marks) = (0, Vec::new());
    loop {
        let next = if heard < bytes {
            Some(
                stream
                    .peer
                    .next_text()
                    .await
                    .expect("the engine sends media"),
            )
        } else {
            tokio::time::timeout(settle, stream.peer.next_text())
                .await
                .ok()
                .flatten()
        };
        let Some(message) = next else {
            return marks;
        };
        match message["event"].as_str() {
            Some("media") => {
                let audio = base64::engine::general_purpose::STANDARD
                    .decode(message["media"]["payload"].as_str().unwrap_or_default())
                    .expect("base64");
                heard += audio.iter().filter(|b| **b == fill).count();
            }
            Some("mark") => {
                marks.push(message["mark"]["name"].as_str().expect("a name").to_owned())
            }
            _ => {}
        }
    }
}

/// The call's `recording` event, once there is one.
async fn recording_event(app: &TestApp, id: &str) -> Value {
    let call = app
        .wait_for_call(id, |c| event_kinds(c).contains(&"recording".to_owned()))
        .await;
    call["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["kind"] == "recording")
        .expect("a recording event")
        .clone()
}

async fn a_call_to_an_all_party_consent_state_is_recorded_only_once_the_notice_has_played(
    db: TestDb,
) {
    let script = Script::new().greeting(Reply::say(DISCLOSURE, 200, 0x11));
    let w = world(db, script, "human", |s| {
        s.safety.recording.workspaces = vec![s.numbers.default_workspace.to_string()];
    })
    .await;
    let id = submit(&w).await;
    let sid = dialed(&w.twilio).await;
    let create = w.twilio.state().calls.create_bodies[0].clone();
    assert!(!create.contains("Record="), "not from the dial: {create}");
    let mut stream = w.twilio.media_stream(&sid).await;
    until_live(&w.openai, &mut stream).await;
    // The disclosure tells the callee the call is recorded.
    let create = w.openai.wait_for_client_event("response.create").await;
    let instructions = create["response"]["instructions"].as_str().expect("text");
    assert!(
        instructions.contains("This call is recorded."),
        "{instructions}"
    );

    // Its audio went out, but Twilio has not played it (no mark echoed): no
    // recording yet.
    let marks = unplayed_marks(&mut stream, 0x11, 1_600, Duration::from_millis(300)).await;
    assert!(!marks.is_empty(), "the disclosure's audio is marked");
    assert!(
        w.twilio.recordings().is_empty(),
        "recorded before the notice played"
    );
    // Twilio played it all: the recording starts, on this call, both parties.
    for name in &marks {
        stream.send_event("mark", json!({ "name": name }));
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while w.twilio.recordings().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "never recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let recordings = w.twilio.recordings();
    assert_eq!(recordings.len(), 1);
    assert_eq!(recordings[0].call_sid, sid);
    assert!(recordings[0]
        .form
        .contains(&("RecordingChannels".to_owned(), "dual".to_owned())));
    let event = recording_event(&w.app, &id).await;
    assert_eq!(event["detail"]["status"], "started", "{event}");
    assert_eq!(event["detail"]["recording_sid"], json!(recordings[0].sid));
}

#[actix_web::test]
async fn a_call_to_an_all_party_consent_state_is_recorded_only_once_the_notice_has_played_on_sqlite(
) {
    a_call_to_an_all_party_consent_state_is_recorded_only_once_the_notice_has_played(
        TestDb::Sqlite,
    )
    .await;
}

#[actix_web::test]
async fn a_call_to_an_all_party_consent_state_is_recorded_only_once_the_notice_has_played_on_postgres(
) {
    a_call_to_an_all_party_consent_state_is_recorded_only_once_the_notice_has_played(
        TestDb::Postgres,
    )
    .await;
}

#[actix_web::test]
async fn a_notice_the_callee_talks_over_is_not_a_notice_heard_and_nothing_is_recorded() {
    let script = Script::new().greeting(Reply::say(DISCLOSURE, 2_000, 0x11));
    let w = world(TestDb::Sqlite, script, "human", |s| {
        s.safety.recording.workspaces = vec![s.numbers.default_workspace.to_string()];
    })
    .await;
    let id = submit(&w).await;
    let sid = dialed(&w.twilio).await;
    let mut stream = w.twilio.media_stream(&sid).await;
    until_live(&w.openai, &mut stream).await;
    let _ = unplayed_marks(&mut stream, 0x11, 800, Duration::ZERO).await;
    // The callee speaks over the notice before it has played: a barge-in.
    speak(&mut stream, 25, 0x22);
    let event = recording_event(&w.app, &id).await;
    assert_eq!(event["detail"]["status"], "skipped", "{event}");
    assert_eq!(event["detail"]["reason"], "notice_interrupted", "{event}");
    // Whatever plays after, the call is never recorded.
    for _ in 0..20 {
        if let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_millis(20), stream.peer.next_text()).await
        {
            if message["event"] == "mark" {
                stream.send_event("mark", json!({ "name": message["mark"]["name"] }));
            }
        }
    }
    assert!(w.twilio.recordings().is_empty());
}

#[actix_web::test]
async fn a_workspace_that_does_not_record_says_nothing_of_recording() {
    let script = Script::new().greeting(Reply::say(DISCLOSURE, 200, 0x11));
    let w = world(TestDb::Sqlite, script, "human", |_| {}).await;
    let _id = submit(&w).await;
    let sid = dialed(&w.twilio).await;
    let mut stream = w.twilio.media_stream(&sid).await;
    until_live(&w.openai, &mut stream).await;
    let create = w.openai.wait_for_client_event("response.create").await;
    let instructions = create["response"]["instructions"].as_str().expect("text");
    assert!(instructions.contains("AI assistant"), "{instructions}");
    assert!(!instructions.contains("record"), "{instructions}");
    until_heard(&mut stream, 0x11).await;
    assert!(w.twilio.recordings().is_empty());
}
