//! The conversation of an outbound call (issue 11, item 6): the fake Twilio
//! places the call, fetches `/twilio/outbound/answer` (signed), opens the Media
//! Stream the TwiML names and plays the callee; the fake OpenAI Realtime server
//! plays the model and the fake Anthropic API the reasoning model. The
//! dispatcher is another part: here the test submits the call through the API,
//! claims it as the dispatcher does (`dialing`, a fresh attempt id) and dials it
//! with the Twilio client.

use std::time::Duration;

use actix_web::http::StatusCode;
use secrecy::SecretString;
use serde_json::{json, Value};
use switchboard::config::{OnMachine, Settings, SummaryProvider};
use switchboard::outbound::clock::ManualClock;
use switchboard::providers::twilio::calls::{AmdMode, CallEvent, CreateCall, MachineDetection};
use switchboard::providers::twilio::TwilioClient;
use switchboard::twilio::signature::sign;
use switchboard_actors::dtmf::DTMF;

use crate::db::TestDb;
use crate::fake_providers::calls::LikeTwilio;
use crate::fake_providers::{FakeProvider, TWILIO_SECRET, TWILIO_SID};
use crate::fakes::llm::{FakeLlm, LlmAnswer};
use crate::fakes::openai::{FakeOpenAi, Mode, Reply, Script};
use crate::helpers::{
    event_kinds, new_call_sid, spawn_app_with_clock, TestApp, TwilioStream, User, ADMIN_TOKEN,
    PATIENCE,
};

/// San Francisco: Pacific time.
const CALLEE: &str = "+14155550123";
/// The workspace's pool number the call comes from.
const POOL: &str = "+14155550100";
const ATTEMPT: &str = "at_1";
/// 10:00 in San Francisco, a Wednesday: within calling hours.
const MORNING: &str = "2026-12-02T18:00:00Z";
const OBJECTIVE: &str = "Book a plumber's visit for Tuesday morning.";
const DISCLOSURE_SAID: &str = "Hello, this is an AI assistant calling for Ada Lovelace.";
const ADVICE: &str = "Accept Wednesday morning if Tuesday is full.";
/// μ-law silence.
const SILENCE: u8 = 0xFF;
/// Silence that ends a turn at the fake (300 ms) in 20 ms frames, and a margin.
const SILENT_FRAMES: usize = 20;

/// One outbound call in progress and everything around it.
struct Talk {
    app: TestApp,
    twilio: FakeProvider,
    openai: FakeOpenAi,
    llm: FakeLlm,
    user: User,
    /// The outbound call's id: its engine call id too.
    id: String,
    call_sid: String,
}

/// The outbound settings every test starts from; each changes what it checks.
fn quick(s: &mut Settings) {
    s.outbound.greeting_wait = Duration::from_millis(100);
    s.outbound.silence_timeout = Duration::from_secs(60);
    s.outbound.max_hold = Duration::from_secs(120);
}

async fn talk_app(
    db: TestDb,
    script: Script,
    configure: impl FnOnce(&mut Settings),
) -> (TestApp, FakeOpenAi, FakeLlm) {
    talk_app_with(db, FakeOpenAi::start(script).await, configure).await
}

async fn talk_app_with(
    db: TestDb,
    openai: FakeOpenAi,
    configure: impl FnOnce(&mut Settings),
) -> (TestApp, FakeOpenAi, FakeLlm) {
    let llm = FakeLlm::start(LlmAnswer::Text(ADVICE.to_owned())).await;
    let clock = ManualClock::new(MORNING.parse().expect("an instant"));
    let (url, key, llm_url) = (openai.url(), openai.api_key().to_owned(), llm.base_url());
    let llm_key = llm.api_key().to_owned();
    let app = spawn_app_with_clock(db, &clock, move |s| {
        s.twilio.auth_token = Some(SecretString::from(TWILIO_SECRET));
        s.openai.realtime_url = url.parse().expect("the fake's URL");
        s.openai.api_key = Some(SecretString::from(key));
        s.openai.exit_grace = Duration::from_secs(5);
        s.summary.provider = SummaryProvider::Anthropic;
        s.summary.base_url = Some(format!("{llm_url}/").parse().expect("the fake's URL"));
        s.summary.api_key = Some(SecretString::from(llm_key));
        quick(s);
        configure(s);
    })
    .await;
    (app, openai, llm)
}

/// A call submitted through the API, then claimed as the dispatcher claims it.
async fn claimed_call(app: &TestApp, user: &User) -> String {
    claimed_call_with(app, user, json!({})).await
}

/// [`claimed_call`] with more fields in the request (`assistant_id`).
async fn claimed_call_with(app: &TestApp, user: &User, more: Value) -> String {
    let mut request = json!({
        "to": CALLEE,
        "contact_name": "Joe",
        "contact_company": "Acme Plumbing",
        "purpose": "existing_client",
        "objective": OBJECTIVE,
        "attestation": {
            "legitimate_purpose": true,
            "not_dnc": true,
            "reasonable_basis": true,
            "understands_recording": true,
            "accepts_responsibility": true,
            "wording_version": "2026-12-01",
            "signature_full_name": "Ada Lovelace",
            "signature_organization": "Analytical Engines Ltd",
        },
    });
    if let (Some(request), Some(more)) = (request.as_object_mut(), more.as_object()) {
        request.extend(more.clone());
    }
    let (status, body) = app
        .post_json("/api/calls/outbound", &request, Some(&user.api_key))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().expect("an id").to_owned();
    sql(
        app,
        "UPDATE outbound_calls SET status = 'dialing', attempt_id = $1, from_e164 = $2, \
         attempts = 1 WHERE id = $3",
        &[ATTEMPT, POOL, &id],
    )
    .await;
    id
}

async fn sql(app: &TestApp, statement: &str, binds: &[&str]) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.database_url)
        .await
        .expect("the test reaches the database");
    let mut query = sqlx::query(statement);
    for bind in binds {
        query = query.bind(*bind);
    }
    query.execute(&pool).await.expect("the statement runs");
    pool.close().await;
}

async fn answered_by(app: &TestApp, id: &str) -> Option<String> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.database_url)
        .await
        .expect("the test reaches the database");
    let value: Option<String> =
        sqlx::query_scalar("SELECT answered_by FROM outbound_calls WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("the row");
    pool.close().await;
    value
}

fn hook(app: &TestApp, which: &str, id: &str, attempt: &str) -> String {
    format!(
        "{}/twilio/outbound/{which}?call={id}&attempt={attempt}",
        app.address
    )
}

/// Dials the claimed call with the Twilio client, as the dispatcher does.
async fn dial(app: &TestApp, twilio: &FakeProvider, id: &str) -> String {
    let mut settings = Settings::defaults();
    settings.twilio.account_sid = TWILIO_SID.into();
    settings.twilio.auth_token = Some(SecretString::from(TWILIO_SECRET));
    settings.twilio.api_base = twilio.base.parse().expect("a base URL");
    let client = TwilioClient::for_calls(&settings)
        .expect("a client")
        .expect("credentials are set");
    let call = client
        .create_call(&CreateCall {
            to: CALLEE.into(),
            from: POOL.into(),
            url: hook(app, "answer", id, ATTEMPT),
            status_callback: hook(app, "status", id, ATTEMPT),
            status_callback_events: CallEvent::ALL.to_vec(),
            machine_detection: Some(MachineDetection {
                mode: AmdMode::DetectMessageEnd,
                async_callback: Some(hook(app, "amd", id, ATTEMPT)),
            }),
            timeout_secs: 30,
            time_limit_secs: 300,
            send_digits: None,
            record: false,
        })
        .await
        .expect("the fake Twilio creates the call");
    call.sid
}

/// A fake Twilio that plays calls like Twilio, opens their streams and holds
/// the AMD verdict until the test sends it.
async fn twilio_like() -> FakeProvider {
    let twilio = FakeProvider::start().await;
    {
        let mut state = twilio.state();
        state.calls.like_twilio = Some(LikeTwilio {
            answered_by: "human".into(),
        });
        state.calls.open_streams = true;
        state.calls.hold_amd = true;
    }
    twilio
}

/// Submits, claims and dials a call; the fake answers it and opens its stream.
async fn outbound_call(
    db: TestDb,
    script: Script,
    configure: impl FnOnce(&mut Settings),
) -> (Talk, TwilioStream) {
    let (app, openai, llm) = talk_app(db, script, configure).await;
    let user = app.create_user("ada@example.com").await;
    let id = claimed_call(&app, &user).await;
    let twilio = twilio_like().await;
    let call_sid = dial(&app, &twilio, &id).await;
    let stream = twilio.media_stream(&call_sid).await;
    let talk = Talk {
        app,
        twilio,
        openai,
        llm,
        user,
        id,
        call_sid,
    };
    (talk, stream)
}

/// Silence until the relay is live and relays it (appends reach the model).
async fn until_live(talk: &Talk, stream: &mut TwilioStream) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while talk.openai.appended_bytes() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never live");
        stream.send_media(&[SILENCE; 160]);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads the engine's media until a chunk of the reply filled with `fill` plays.
pub(crate) async fn until_heard(stream: &mut TwilioStream, fill: u8) {
    let mut skipped = 0;
    loop {
        let audio = stream.next_media().await;
        if !audio.is_empty() && audio.iter().all(|b| *b == fill) {
            return;
        }
        skipped += 1;
        assert!(skipped < 10_000, "no audio filled with {fill:#x}");
    }
}

pub(crate) fn speak(stream: &mut TwilioStream, frames: usize, tag: u8) {
    for _ in 0..frames {
        stream.send_media(&[tag; 160]);
    }
    for _ in 0..SILENT_FRAMES {
        stream.send_media(&[SILENCE; 160]);
    }
}

fn script() -> Script {
    Script::new().greeting(Reply::say(DISCLOSURE_SAID, 200, 0x11))
}

/// The audio the model was sent before the first `response.create`.
fn audio_before_first_response(openai: &FakeOpenAi) -> Vec<u8> {
    use base64::Engine as _;
    let mut audio = Vec::new();
    for event in openai.client_events() {
        if event["type"] == "response.create" {
            return audio;
        }
        if event["type"] == "input_audio_buffer.append" {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(event["audio"].as_str().unwrap_or_default())
                .expect("base64");
            audio.extend(bytes);
        }
    }
    panic!("no response.create was sent");
}

/// Waits until the call's record is closed; its `hangup` event's reason.
async fn hangup_reason(app: &TestApp, id: &str) -> Value {
    let call = app.wait_for_call(id, |c| c["ended_at"].is_string()).await;
    call["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["kind"] == "hangup")
        .map(|e| e["detail"]["reason"].clone())
        .unwrap_or_else(|| panic!("no hangup in {:?}", event_kinds(&call)))
}

async fn signed_post(app: &TestApp, url: &str, params: &[(&str, &str)]) -> (StatusCode, String) {
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let signature = sign(TWILIO_SECRET, url, &owned);
    let path = url.trim_start_matches(&app.address);
    app.form_post(path, params, Some(&signature)).await
}

fn answer_form(call_sid: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AccountSid", TWILIO_SID.to_owned()),
        ("CallSid", call_sid.to_owned()),
        ("CallStatus", "in-progress".to_owned()),
        ("Direction", "outbound-api".to_owned()),
        ("From", POOL.to_owned()),
        ("To", CALLEE.to_owned()),
    ]
}

async fn answer(app: &TestApp, id: &str, attempt: &str, call_sid: &str) -> (StatusCode, String) {
    let form = answer_form(call_sid);
    let params: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    signed_post(app, &hook(app, "answer", id, attempt), &params).await
}

// ---- the answer webhook ----------------------------------------------------------

async fn an_answered_call_streams_to_its_assistant_and_a_retry_gets_the_same_call(db: TestDb) {
    let (talk, _stream) = outbound_call(db, script(), |_| {}).await;
    let app = &talk.app;
    let twiml = talk
        .twilio
        .deliveries(3)
        .await
        .into_iter()
        .find(|d| d.url.contains("/twilio/outbound/answer"))
        .expect("the fake fetched the answer URL");
    assert_eq!(twiml.status, 200, "{twiml:?}");
    assert!(
        twiml.body.contains(&format!(
            r#"<Connect><Stream url="{}"><Parameter name="call_id" value="{}"/>"#,
            app.stream_url(),
            talk.id
        )),
        "{}",
        twiml.body
    );

    // The call's record shares the outbound id; it is outbound, to the callee.
    let call = app
        .wait_for_call(&talk.id, |c| {
            event_kinds(c).contains(&"ai_connected".to_owned())
        })
        .await;
    assert_eq!(
        (&call["direction"], &call["to"], &call["from"]),
        (&json!("outbound"), &json!(CALLEE), &json!(POOL)),
        "{call}"
    );
    let session = talk.openai.wait_for_client_event("session.update").await["session"].clone();
    assert_eq!(
        session["audio"]["input"]["turn_detection"]["create_response"], false,
        "the model waits for the greeting"
    );
    let tools: Vec<&str> = session["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for tool in ["end_call", "consult", "opt_out", "send_digits"] {
        assert!(tools.contains(&tool), "{tool} in {tools:?}");
    }
    let instructions = session["instructions"].as_str().expect("instructions");
    for part in [
        OBJECTIVE,
        "Ada Lovelace of Analytical Engines Ltd",
        "Joe at Acme Plumbing",
        "call screener",
        "AI assistant",
    ] {
        assert!(instructions.contains(part), "{part:?} in {instructions}");
    }
    assert_eq!(session["model"], "gpt-realtime");
    assert_eq!(session["audio"]["output"]["voice"], "marin");

    // Twilio retries the webhook: the same CallSid gets the same call.
    let (status, body) = answer(app, &talk.id, ATTEMPT, &talk.call_sid).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(&format!(r#"value="{}""#, talk.id)), "{body}");
    assert_eq!(talk.openai.sessions(), 1, "no second assistant");

    // A stale attempt, and a call that is over, are hung up.
    let (status, body) = answer(app, &talk.id, "at_0", &new_call_sid()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("<Hangup/>"), "{body}");
    // A forged request changes nothing.
    let url = hook(app, "answer", &talk.id, ATTEMPT);
    let form = answer_form(&new_call_sid());
    let params: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let forged = sign("not-the-token", &url, &[]);
    let (status, _) = app
        .form_post(url.trim_start_matches(&app.address), &params, Some(&forged))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    sql(
        app,
        "UPDATE outbound_calls SET status = 'completed' WHERE id = $1",
        &[&talk.id],
    )
    .await;
    let (status, body) = answer(app, &talk.id, ATTEMPT, &new_call_sid()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("<Hangup/>"), "{body}");
}

#[actix_web::test]
async fn an_answered_call_streams_to_its_assistant_and_a_retry_gets_the_same_call_on_sqlite() {
    an_answered_call_streams_to_its_assistant_and_a_retry_gets_the_same_call(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn an_answered_call_streams_to_its_assistant_and_a_retry_gets_the_same_call_on_postgres() {
    an_answered_call_streams_to_its_assistant_and_a_retry_gets_the_same_call(TestDb::Postgres)
        .await;
}

// ---- the greeting and the disclosure ---------------------------------------------

#[actix_web::test]
async fn the_disclosure_is_asked_for_only_after_the_callees_greeting_has_stopped() {
    let script = script().turn(
        "Acme Plumbing, Joe speaking.",
        Reply::say("unused", 100, 0x99),
    );
    let (talk, mut stream) = outbound_call(TestDb::Sqlite, script, |s| {
        s.outbound.greeting_wait = Duration::from_secs(3_600);
    })
    .await;
    until_live(&talk, &mut stream).await;
    speak(&mut stream, 25, 0x22);

    let create = talk.openai.wait_for_client_event("response.create").await;
    let instructions = create["response"]["instructions"].as_str().expect("text");
    for part in [
        "AI assistant",
        "on behalf of Ada Lovelace of Analytical Engines Ltd",
        OBJECTIVE,
    ] {
        assert!(instructions.contains(part), "{part:?} in {instructions}");
    }
    // Before it, the model heard the greeting and then the silence that ended it.
    let heard = audio_before_first_response(&talk.openai);
    let last_voice = heard
        .iter()
        .rposition(|b| *b != SILENCE)
        .expect("the greeting reached the model first");
    assert!(
        heard.len() - last_voice > 300 * 8,
        "the disclosure came after the greeting's end: {} silent bytes",
        heard.len() - last_voice - 1
    );
    // Then the model answers turns by itself, and the disclosure is heard.
    let update = talk.openai.wait_for_client_event("session.update").await;
    assert_eq!(
        update["session"]["audio"]["input"]["turn_detection"]["create_response"],
        false
    );
    let update = talk.openai.wait_for_client_event("session.update").await;
    assert_eq!(
        update["session"]["audio"]["input"]["turn_detection"]["create_response"],
        true
    );
    until_heard(&mut stream, 0x11).await;
}

#[actix_web::test]
async fn without_a_greeting_the_disclosure_comes_after_the_wait_with_nothing_heard() {
    let (talk, mut stream) = outbound_call(TestDb::Sqlite, script(), |_| {}).await;
    until_live(&talk, &mut stream).await;
    let create = talk.openai.wait_for_client_event("response.create").await;
    assert!(
        create["response"]["instructions"]
            .as_str()
            .is_some_and(|i| i.contains("AI assistant")),
        "{create}"
    );
    assert!(
        audio_before_first_response(&talk.openai)
            .iter()
            .all(|b| *b == SILENCE),
        "nobody spoke before it"
    );
    until_heard(&mut stream, 0x11).await;
}

// ---- the tools -------------------------------------------------------------------

#[actix_web::test]
async fn consult_asks_the_reasoning_model_with_the_objective_and_transcript() {
    let script = script().turn(
        "Tuesday is full. Would Wednesday do?",
        Reply::call("consult", r#"{"question":"Is Wednesday acceptable?"}"#).after(Reply::say(
            "Wednesday morning works.",
            100,
            0x44,
        )),
    );
    let (talk, mut stream) = outbound_call(TestDb::Sqlite, script, |_| {}).await;
    until_live(&talk, &mut stream).await;
    until_heard(&mut stream, 0x11).await;
    speak(&mut stream, 25, 0x22);

    let output = talk
        .openai
        .wait_for_client_event("conversation.item.create")
        .await;
    assert_eq!(output["item"]["type"], "function_call_output");
    let answer: Value =
        serde_json::from_str(output["item"]["output"].as_str().expect("output")).expect("json");
    assert_eq!(answer, json!({ "advice": ADVICE }));
    until_heard(&mut stream, 0x44).await;

    // The same model classified the objective at submit (issue 12's
    // `[safety.classifier]`): the consult is the request after that one.
    let asked = talk.llm.seen();
    let consult = asked
        .iter()
        .find(|r| r.body["tool_choice"]["name"] != "classify_objective")
        .expect("the consult's request");
    assert_eq!(consult.path, "/v1/messages");
    let prompt = consult.body["messages"][0]["content"]
        .as_str()
        .expect("a prompt");
    for part in [
        OBJECTIVE,
        "Is Wednesday acceptable?",
        &format!("assistant: {DISCLOSURE_SAID}"),
        "callee: Tuesday is full. Would Wednesday do?",
    ] {
        assert!(prompt.contains(part), "{part:?} in {prompt}");
    }
    let call = talk
        .app
        .wait_for_call(&talk.id, |c| {
            c["events"].as_array().is_some_and(|events| {
                events
                    .iter()
                    .any(|e| e["kind"] == "tool_call" && e["detail"]["name"] == "consult")
            })
        })
        .await;
    let tool = call["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["kind"] == "tool_call")
        .expect("the consult event")
        .clone();
    assert_eq!(tool["detail"]["ok"], true, "{tool}");
    // The reasoning model's usage, as the Messages API reported it (the fake
    // counts ceil(characters / 4)), is the call's reasoning usage.
    let usage = &tool["detail"]["detail"]["usage"];
    assert_eq!(
        usage["output_tokens"],
        json!(ADVICE.chars().count().div_ceil(4)),
        "{tool}"
    );
    assert!(
        usage["input_tokens"].as_u64().is_some_and(|n| n > 0),
        "{usage}"
    );
    assert_eq!(tool["detail"]["detail"]["model"], "claude-haiku-4-5");
}

#[actix_web::test]
async fn opt_out_lists_the_number_for_the_user_and_everyone_and_hangs_up() {
    let script = script().turn(
        "Take me off your list. Never call again.",
        Reply::say("I am sorry. Goodbye.", 100, 0x55)
            .then_call("opt_out", r#"{"reason":"asked not to be called"}"#),
    );
    let (talk, mut stream) = outbound_call(TestDb::Sqlite, script, |_| {}).await;
    until_live(&talk, &mut stream).await;
    until_heard(&mut stream, 0x11).await;
    speak(&mut stream, 25, 0x22);
    until_heard(&mut stream, 0x55).await;
    // The goodbye plays (marks are echoed), then the engine ends the call.
    while stream.next().await.is_some() {}

    assert_eq!(hangup_reason(&talk.app, &talk.id).await, json!("opt_out"));
    let (status, listed) = talk.app.get("/api/dnc", Some(&talk.user.api_key)).await;
    assert_eq!(status, StatusCode::OK);
    let listed: Value = serde_json::from_slice(&listed).expect("json");
    let mut scopes: Vec<String> = listed
        .as_array()
        .expect("a list")
        .iter()
        .filter(|e| e["e164"] == CALLEE)
        .map(|e| e["scope"].as_str().unwrap_or_default().to_owned())
        .collect();
    scopes.sort();
    assert_eq!(scopes, ["global", "user"], "{listed}");
    let (status, admin) = talk.app.get("/api/dnc", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        String::from_utf8_lossy(&admin).contains(CALLEE),
        "on the admin's global list"
    );
}

#[actix_web::test]
async fn send_digits_plays_dtmf_tones_on_the_stream_and_the_session_goes_on() {
    let script = script()
        .turn(
            "For sales press one, for service press two.",
            Reply::call("send_digits", r#"{"digits":"2"}"#),
        )
        .turn(
            "Enter your account number.",
            Reply::call("send_digits", r#"{"digits":"12x"}"#),
        );
    let (talk, mut stream) = outbound_call(TestDb::Sqlite, script, |_| {}).await;
    until_live(&talk, &mut stream).await;
    until_heard(&mut stream, 0x11).await;
    speak(&mut stream, 25, 0x22);

    let tones = DTMF.frames("2").expect("tones");
    stream.skip_to_media(&tones[0]).await;
    for expected in &tones[1..] {
        assert_eq!(&stream.next_media().await, expected);
    }
    let output = talk
        .openai
        .wait_for_client_event("conversation.item.create")
        .await;
    let output: Value =
        serde_json::from_str(output["item"]["output"].as_str().expect("output")).expect("json");
    assert_eq!(
        (&output["ok"], &output["digits"]),
        (&json!(true), &json!("2"))
    );
    // The session is intact: the model still hears the callee.
    let before = talk.openai.appended_bytes();
    stream.send_media(&[SILENCE; 160]);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while talk.openai.appended_bytes() == before {
        assert!(tokio::time::Instant::now() < deadline, "audio stopped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(talk.openai.sessions(), 1);

    // Keys a phone does not have are refused, naming the first.
    speak(&mut stream, 25, 0x22);
    let refused = talk
        .openai
        .wait_for_client_event("conversation.item.create")
        .await;
    let refused: Value =
        serde_json::from_str(refused["item"]["output"].as_str().expect("output")).expect("json");
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("'x' (at position 2)")),
        "{refused}"
    );
}

// ---- the hard limits -------------------------------------------------------------

#[actix_web::test]
async fn nobody_speaking_for_the_silence_timeout_ends_the_call() {
    let (talk, mut stream) = outbound_call(TestDb::Sqlite, script(), |s| {
        s.outbound.silence_timeout = Duration::from_millis(300);
    })
    .await;
    until_live(&talk, &mut stream).await;
    while stream.next().await.is_some() {}
    assert_eq!(
        hangup_reason(&talk.app, &talk.id).await,
        json!("silence_timeout")
    );
    // Twilio retrying the answer webhook of a call that is over starts nothing.
    let (status, body) = answer(&talk.app, &talk.id, ATTEMPT, &talk.call_sid).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("<Hangup/>"), "{body}");
    assert_eq!(talk.openai.sessions(), 1);
}

#[actix_web::test]
async fn no_turn_from_the_callee_within_the_hold_cap_ends_the_call() {
    let (talk, mut stream) = outbound_call(TestDb::Sqlite, script(), |s| {
        s.outbound.max_hold = Duration::from_millis(300);
    })
    .await;
    until_live(&talk, &mut stream).await;
    // Hold music: sound, but never a turn that ends.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        stream.send_media(&[0x33; 160]);
        if talk.app.call(&talk.id).await["ended_at"].is_string() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the call went on");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(hangup_reason(&talk.app, &talk.id).await, json!("max_hold"));
}

// ---- answering machines ----------------------------------------------------------

async fn amd(talk: &Talk, answered_by: &str) -> StatusCode {
    let url = hook(&talk.app, "amd", &talk.id, ATTEMPT);
    let params = [
        ("AccountSid", TWILIO_SID),
        ("CallSid", talk.call_sid.as_str()),
        ("AnsweredBy", answered_by),
        ("MachineDetectionDuration", "1840"),
    ];
    signed_post(&talk.app, &url, &params).await.0
}

async fn verdicts_are_signed_noted_once_and_a_human_carries_on(db: TestDb) {
    let (talk, mut stream) = outbound_call(db, script(), |_| {}).await;
    until_live(&talk, &mut stream).await;
    let app = &talk.app;

    let url = hook(app, "amd", &talk.id, ATTEMPT);
    let params = [
        ("AccountSid", TWILIO_SID),
        ("CallSid", talk.call_sid.as_str()),
        ("AnsweredBy", "fax"),
    ];
    let (status, _) = app
        .form_post(
            url.trim_start_matches(&app.address),
            &params,
            Some(&sign("forged", &url, &[])),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .form_post(url.trim_start_matches(&app.address), &params, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(answered_by(app, &talk.id).await, None, "no change");

    talk.twilio.send_amd(&talk.call_sid, "human").await;
    let delivered = talk.twilio.deliveries(1).await;
    let verdict = delivered
        .iter()
        .find(|d| d.url.contains("/twilio/outbound/amd"))
        .expect("the fake sent the verdict");
    assert_eq!(verdict.status, 200, "{verdict:?}");
    assert_eq!(answered_by(app, &talk.id).await.as_deref(), Some("human"));
    // A replay, even with another verdict, is taken and changes nothing.
    assert_eq!(amd(&talk, "fax").await, StatusCode::OK);
    assert_eq!(answered_by(app, &talk.id).await.as_deref(), Some("human"));

    // A human: the conversation goes on (the disclosure plays, nobody hangs up).
    until_heard(&mut stream, 0x11).await;
    let call = app.call(&talk.id).await;
    assert!(call["ended_at"].is_null(), "{call}");
    let kinds = event_kinds(
        &app.wait_for_call(&talk.id, |c| {
            event_kinds(c).contains(&"answered_by".to_owned())
        })
        .await,
    );
    assert!(!kinds.contains(&"hangup".to_owned()), "{kinds:?}");
}

#[actix_web::test]
async fn verdicts_are_signed_noted_once_and_a_human_carries_on_on_sqlite() {
    verdicts_are_signed_noted_once_and_a_human_carries_on(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn verdicts_are_signed_noted_once_and_a_human_carries_on_on_postgres() {
    verdicts_are_signed_noted_once_and_a_human_carries_on(TestDb::Postgres).await;
}

#[actix_web::test]
async fn a_machine_gets_the_voicemail_message_then_a_hang_up() {
    let (talk, mut stream) = outbound_call(TestDb::Sqlite, script(), |s| {
        s.outbound.greeting_wait = Duration::from_secs(3_600);
        s.outbound.on_machine = OnMachine::LeaveMessage;
    })
    .await;
    until_live(&talk, &mut stream).await;
    assert_eq!(amd(&talk, "machine_end_beep").await, StatusCode::OK);

    let create = talk.openai.wait_for_client_event("response.create").await;
    let instructions = create["response"]["instructions"].as_str().expect("text");
    for part in [
        "answering machine",
        "on behalf of Ada Lovelace of Analytical Engines Ltd",
        "Book a plumber's visit for Tuesday morning",
    ] {
        assert!(instructions.contains(part), "{part:?} in {instructions}");
    }
    until_heard(&mut stream, 0x11).await;
    while stream.next().await.is_some() {}
    assert_eq!(
        hangup_reason(&talk.app, &talk.id).await,
        json!("voicemail_left")
    );
    let creates = talk
        .openai
        .client_events()
        .iter()
        .filter(|e| e["type"] == "response.create")
        .count();
    assert_eq!(creates, 1, "the message only, no disclosure");
    assert_eq!(
        answered_by(&talk.app, &talk.id).await.as_deref(),
        Some("machine_end_beep")
    );
}

#[actix_web::test]
async fn a_machine_is_hung_up_on_at_once_when_configured_and_a_fax_always() {
    for (verdict, on_machine, reason) in [
        (
            "machine_end_silence",
            OnMachine::HangUp,
            "answering_machine",
        ),
        ("fax", OnMachine::LeaveMessage, "fax"),
    ] {
        let (talk, mut stream) = outbound_call(TestDb::Sqlite, script(), move |s| {
            s.outbound.greeting_wait = Duration::from_secs(3_600);
            s.outbound.on_machine = on_machine;
        })
        .await;
        until_live(&talk, &mut stream).await;
        assert_eq!(amd(&talk, verdict).await, StatusCode::OK);
        while stream.next().await.is_some() {}
        assert_eq!(hangup_reason(&talk.app, &talk.id).await, json!(reason));
        assert!(
            !talk
                .openai
                .client_events()
                .iter()
                .any(|e| e["type"] == "response.create"),
            "{verdict}: nothing said"
        );
    }
}

#[actix_web::test]
async fn a_verdict_noted_before_the_answer_reaches_the_assistant_once_it_is_live() {
    let (app, openai, _llm) = talk_app(TestDb::Sqlite, script(), |s| {
        s.outbound.greeting_wait = Duration::from_secs(3_600);
        s.outbound.on_machine = OnMachine::HangUp;
    })
    .await;
    let user = app.create_user("ada@example.com").await;
    let id = claimed_call(&app, &user).await;
    let url = hook(&app, "amd", &id, ATTEMPT);
    let sid = new_call_sid();
    let params = [
        ("AccountSid", TWILIO_SID),
        ("CallSid", sid.as_str()),
        ("AnsweredBy", "machine_end_other"),
    ];
    assert_eq!(signed_post(&app, &url, &params).await.0, StatusCode::OK);
    assert_eq!(
        answered_by(&app, &id).await.as_deref(),
        Some("machine_end_other")
    );

    let twilio = twilio_like().await;
    let call_sid = dial(&app, &twilio, &id).await;
    let mut stream = twilio.media_stream(&call_sid).await;
    while stream.next().await.is_some() {}
    assert_eq!(hangup_reason(&app, &id).await, json!("answering_machine"));
    assert!(
        !openai
            .client_events()
            .iter()
            .any(|e| e["type"] == "response.create"),
        "nothing said to the machine"
    );
}

#[actix_web::test]
async fn a_users_own_assistant_speaks_with_its_model_voice_and_tools_and_the_calls_brief() {
    let (app, openai, _llm) = talk_app(TestDb::Sqlite, script(), |_| {}).await;
    let own = json!({
        "name": "Booker",
        "workspace": "production",
        "instructions": "You are Booker, Ada's booking assistant.",
        "voice": "cedar",
        "model": "gpt-realtime-mini",
        "tools": [{ "type": "transfer_to_human" }, { "type": "log_event" }],
        "on_failure": { "kind": "voicemail" },
    });
    let (status, created) = app
        .post_json("/api/assistants", &own, Some(ADMIN_TOKEN))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let assistant_id = created["id"].as_str().expect("an id");
    let user = app.create_user("ada@example.com").await;
    let id = claimed_call_with(&app, &user, json!({ "assistant_id": assistant_id })).await;
    let twilio = twilio_like().await;
    let call_sid = dial(&app, &twilio, &id).await;
    let mut stream = twilio.media_stream(&call_sid).await;
    until_heard(&mut stream, 0x11).await;

    let session = openai.wait_for_client_event("session.update").await["session"].clone();
    assert_eq!(
        (&session["model"], &session["audio"]["output"]["voice"]),
        (&json!("gpt-realtime-mini"), &json!("cedar"))
    );
    let instructions = session["instructions"].as_str().expect("instructions");
    assert!(
        instructions.starts_with("You are Booker, Ada's booking assistant."),
        "{instructions}"
    );
    assert!(instructions.contains(OBJECTIVE), "{instructions}");
    let mut tools: Vec<&str> = session["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    tools.sort_unstable();
    assert_eq!(
        tools,
        ["consult", "end_call", "log_event", "opt_out", "send_digits"],
        "no transfer: there is nobody to hand a callee to"
    );
}

#[actix_web::test]
async fn an_outbound_assistant_that_fails_ends_the_call_as_there_is_nobody_to_hand_it_to() {
    let openai = FakeOpenAi::start_with(script(), Mode::DropAfterAppends(3)).await;
    let (app, _openai, _llm) = talk_app_with(TestDb::Sqlite, openai, |_| {}).await;
    let user = app.create_user("ada@example.com").await;
    let id = claimed_call(&app, &user).await;
    let twilio = twilio_like().await;
    let call_sid = dial(&app, &twilio, &id).await;
    let mut stream = twilio.media_stream(&call_sid).await;
    // The callee's line hiss reaches the model until the model's socket drops.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !app.call(&id).await["ended_at"].is_string() {
        assert!(tokio::time::Instant::now() < deadline, "the call went on");
        stream.send_media(&[SILENCE; 160]);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reason = hangup_reason(&app, &id).await;
    assert!(
        reason
            .as_str()
            .is_some_and(|r| r.starts_with("assistant_failed: ")),
        "{reason}"
    );
    let call = app.call(&id).await;
    let kinds = event_kinds(&call);
    assert!(
        !kinds.iter().any(|k| k == "ringing" || k == "voicemail"),
        "{kinds:?}"
    );
}
