//! The result of an outbound call (issue 11, item 7): `GET /api/calls/{id}` for
//! an outbound id (the user's own, or any for the admin; another user's call or
//! an inbound call is a 404 for a user key), with its disposition, consent
//! record and cost estimated beside actual. On SQLite and PostgreSQL, time from
//! a `ManualClock`; rows are created by `POST /api/calls/outbound` and moved
//! with `Store::advance_outbound`, as dispatch and Twilio's callbacks move them.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use jiff::Timestamp;
use secrecy::SecretString;
use serde_json::{json, Value};
use switchboard::ai::hooks::{self, EngineHooks};
use switchboard::ai::task_outcome;
use switchboard::config::{Settings, SummaryProvider};
use switchboard::outbound::clock::ManualClock;
use switchboard::store::journal::{JournalConfig, JournalWriter};
use switchboard::store::outbound::{Advanced, OutboundId, OutboundStatus, Transition};
use switchboard::store::outbound_result::OutboundAnalysis;
use switchboard::store::Store;
use switchboard_actors::assistant::{AssistantReport, CallHooks as _, CallReport};
use switchboard_actors::journal::{CallOpened, Journal as _, JournalEntry};
use switchboard_actors::machine::Outcome;
use switchboard_actors::stats::EngineStats;
use switchboard_actors::{AssistantId, CallId};
use time::OffsetDateTime;

use crate::db::TestDb;
use crate::fake_providers::{FakeProvider, TWILIO_SECRET, TWILIO_SID};
use crate::fakes::llm::{FakeLlm, LlmAnswer};
use crate::helpers::{spawn_app_with_clock, TestApp, User, ADMIN_TOKEN, CALLER, NUMBER, PATIENCE};
use crate::outbound_notify::{fast_callbacks, signature_is_valid, Receiver};

pub const CALLEE: &str = "+14155550123";
/// 10:00 in San Francisco, a Wednesday.
pub const MORNING: &str = "2026-12-02T18:00:00Z";

pub fn at(instant: &str) -> Timestamp {
    instant.parse().expect("an instant")
}

pub fn request(to: &str) -> Value {
    json!({
        "to": to,
        "contact_name": "Front desk",
        "contact_company": "Acme Plumbing",
        "purpose": "existing_client",
        "objective": "Book a plumber's visit for Tuesday morning.",
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
    })
}

/// Submits `body` as `user`; the id of the call, which must be accepted.
pub async fn submit(app: &TestApp, user: &User, body: &Value) -> String {
    let (status, answer) = app
        .post_json("/api/calls/outbound", body, Some(&user.api_key))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    answer["id"].as_str().expect("an id").to_owned()
}

pub async fn store_of(app: &TestApp) -> Store {
    let store = Store::connect(&app.database_url, "result-test")
        .await
        .expect("the test reaches the database");
    store.migrate().await.expect("migrated");
    store
}

/// Moves the call to `next` as dispatch would (must be allowed).
pub async fn advance(
    store: &Store,
    id: &str,
    next: OutboundStatus,
    change: Transition<'_>,
    now: Timestamp,
) {
    let id = OutboundId::parse(id).expect("an outbound id");
    let moved = store
        .advance_outbound(&id, next, change, now.as_millisecond())
        .await
        .expect("advanced");
    assert!(matches!(moved, Advanced::Moved { .. }), "{moved:?}");
}

pub async fn get_as(app: &TestApp, id: &str, token: &str) -> (StatusCode, Value) {
    app.send_json_as(Method::GET, &format!("/api/calls/{id}"), None, Some(token))
        .await
}

async fn a_user_sees_their_own_outbound_call_with_its_consent_and_estimate(db: TestDb) {
    let clock = ManualClock::new(at(MORNING));
    let app = spawn_app_with_clock(db, &clock, |_| {}).await;
    let ada = app.create_user("ada@example.com").await;
    let grace = app.create_user("grace@example.com").await;
    let id = submit(&app, &ada, &request(CALLEE)).await;

    let (status, call) = get_as(&app, &id, &ada.api_key).await;
    assert_eq!(status, StatusCode::OK, "{call}");
    assert_eq!(call["id"], json!(id));
    assert_eq!(call["direction"], "outbound");
    assert_eq!(call["disposition"], "queued");
    assert_eq!(call["to"], CALLEE);
    assert_eq!(call["transcript"], json!([]));
    assert_eq!(call["summary"], Value::Null);
    assert_eq!(call["task_outcome"], Value::Null);
    let consent = &call["consent"];
    assert_eq!(consent["wording_version"], "2026-12-01");
    assert_eq!(consent["wording_hash"].as_str().map(str::len), Some(64));
    assert_eq!(consent["ip"], "127.0.0.1");
    assert_eq!(consent["signed_at"].as_str().map(at), Some(at(MORNING)));
    assert_eq!(consent["attestation"]["not_dnc"], true);
    assert_eq!(
        consent["attestation"]["signature_full_name"],
        "Ada Lovelace"
    );
    assert_eq!(
        consent["attestation"]["signature_organization"],
        "Analytical Engines Ltd"
    );
    // free: 5 minutes × (USD 0.014 telephony + 0.30 model) per minute.
    let cost = &call["cost"];
    assert_eq!(cost["estimated"]["total"], json!(1.57));
    assert_eq!(cost["estimated"]["telephony"], json!(0.07));
    assert_eq!(cost["estimated"]["realtime_model"], json!(1.5));
    assert_eq!(cost["actual"]["status"], "estimated");
    assert_eq!(cost["actual"]["telephony"]["status"], "estimated");
    assert_eq!(cost["actual"]["realtime_model"]["amount"], Value::Null);

    let (status, body) = get_as(&app, &id, &grace.api_key).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another user's call: {body}");
    let (status, body) = get_as(&app, &id, ADMIN_TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["disposition"], "queued");

    // An inbound call: the admin's to see, never a user's.
    app.number_for_everyone().await;
    let inbound = app.ring_in(CALLER, NUMBER).await;
    let (status, body) = get_as(&app, &inbound.call_id, ADMIN_TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["direction"], "inbound");
    let (status, body) = get_as(&app, &inbound.call_id, &ada.api_key).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an inbound call: {body}");
    let (status, _) = get_as(&app, &OutboundId::new().to_string(), &ada.api_key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn a_user_sees_their_own_outbound_call_with_its_consent_and_estimate_on_sqlite() {
    a_user_sees_their_own_outbound_call_with_its_consent_and_estimate(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn a_user_sees_their_own_outbound_call_with_its_consent_and_estimate_on_postgres() {
    a_user_sees_their_own_outbound_call_with_its_consent_and_estimate(TestDb::Postgres).await;
}

async fn an_answered_call_shows_its_disposition_times_and_a_running_estimate(db: TestDb) {
    let clock = ManualClock::new(at(MORNING));
    let app = spawn_app_with_clock(db, &clock, |_| {}).await;
    let ada = app.create_user("ada@example.com").await;
    let id = submit(&app, &ada, &request(CALLEE)).await;
    let store = store_of(&app).await;

    advance(
        &store,
        &id,
        OutboundStatus::InProgress,
        Transition {
            call_sid: Some("CA00000000000000000000000000000001"),
            answered_by: Some("human"),
            ..Transition::default()
        },
        at("2026-12-02T18:00:05Z"),
    )
    .await;
    advance(
        &store,
        &id,
        OutboundStatus::Completed,
        Transition::default(),
        at("2026-12-02T18:02:10Z"),
    )
    .await;

    let (status, call) = get_as(&app, &id, &ada.api_key).await;
    assert_eq!(status, StatusCode::OK, "{call}");
    assert_eq!(call["disposition"], "completed");
    assert_eq!(call["answered_by"], "human");
    assert_eq!(call["call_sid"], "CA00000000000000000000000000000001");
    assert_eq!(
        call["answered_at"].as_str().map(at),
        Some(at("2026-12-02T18:00:05Z"))
    );
    assert_eq!(
        call["ended_at"].as_str().map(at),
        Some(at("2026-12-02T18:02:10Z"))
    );
    // 2 min 5 s: three started minutes at USD 0.014, until Twilio's price.
    let telephony = &call["cost"]["actual"]["telephony"];
    assert_eq!(telephony["amount"], json!(0.042));
    assert_eq!(telephony["status"], "estimated");
    assert_eq!(call["reconciled_at"], Value::Null);
}

#[actix_web::test]
async fn an_answered_call_shows_its_disposition_times_and_a_running_estimate_on_sqlite() {
    an_answered_call_shows_its_disposition_times_and_a_running_estimate(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn an_answered_call_shows_its_disposition_times_and_a_running_estimate_on_postgres() {
    an_answered_call_shows_its_disposition_times_and_a_running_estimate(TestDb::Postgres).await;
}

// After-call work: `EngineHooks::call_ended` for an `outbound-<id>` assistant.

/// The hooks of an engine on `app`'s database whose reasoning model is `llm`
/// (its summary settings), on `clock`.
async fn hooks_for(
    app: &TestApp,
    llm: &FakeLlm,
    provider: SummaryProvider,
    clock: &ManualClock,
) -> EngineHooks {
    let mut settings = Settings::defaults();
    settings.summary.provider = provider;
    settings.summary.base_url = Some(format!("{}/", llm.base_url()).parse().expect("a URL"));
    settings.summary.api_key = Some(SecretString::from(llm.api_key()));
    let store = store_of(app).await;
    let journal = JournalWriter::spawn_with(
        store.clone(),
        JournalConfig {
            spill_path: std::env::temp_dir()
                .join(format!("sb_result_{}.spill", uuid::Uuid::new_v4().simple())),
            ..JournalConfig::default()
        },
    );
    let handle = clock.handle();
    hooks::build(
        &settings,
        store,
        None,
        Arc::new(journal),
        Arc::new(EngineStats::default()),
        Arc::new(move || handle.now().as_millisecond()),
    )
    .expect("the hooks")
}

fn conversation() -> Vec<(String, String)> {
    [
        ("caller", "Acme Plumbing, this is Sam."),
        (
            "assistant",
            "Hi Sam, I'm an AI assistant calling for Ada Lovelace to book a visit.",
        ),
        ("caller", "Tuesday at nine works for us."),
    ]
    .iter()
    .map(|(role, text)| ((*role).to_owned(), (*text).to_owned()))
    .collect()
}

/// What the CallActor reports when the answered outbound call `id` ends.
fn ended_report(id: &str) -> CallReport {
    CallReport {
        call_id: CallId::parse(id).expect("an outbound id is a call id"),
        from: "+14155550100".into(),
        to: CALLEE.into(),
        direction: "outbound",
        outcome: Outcome::Answered,
        reason: "end_call".into(),
        started_at: at("2026-12-02T18:00:05Z").as_millisecond(),
        ended_at: at("2026-12-02T18:02:10Z").as_millisecond(),
        media: Some((
            at("2026-12-02T18:00:06Z").as_millisecond(),
            at("2026-12-02T18:02:10Z").as_millisecond(),
        )),
        assistant: Some(AssistantReport {
            assistant_id: AssistantId::parse(&format!("outbound-{id}")).expect("an assistant id"),
            turns: conversation(),
            usage: vec![(
                "gpt-realtime".into(),
                json!({"input_tokens": 1000, "output_tokens": 500,
                       "input_token_details": {"text_tokens": 200, "audio_tokens": 800},
                       "output_token_details": {"text_tokens": 100, "audio_tokens": 400}}),
            )],
            transcription_usage: Vec::new(),
            reasoning_usage: vec![(
                "claude-haiku-4-5".into(),
                json!({"input_tokens": 1000, "output_tokens": 200}),
            )],
            tools_used: vec!["consult".into()],
            ended_by: "end_call".into(),
        }),
    }
}

const SUMMARY: &str =
    r#"{"summary":"Booked a plumber for Tuesday at nine.","outcome":"goal_achieved"}"#;
const OUTCOME: &str = r#"{"objective_met": true, "key_findings": "Visit booked for Tuesday 9 am.", "evidence": ["caller: Tuesday at nine works for us."]}"#;

/// Submits a call and moves it through answer to `completed`, as Twilio's
/// callbacks would; its id.
async fn completed_call(app: &TestApp, user: &User, body: &Value) -> String {
    let id = submit(app, user, body).await;
    let store = store_of(app).await;
    advance(
        &store,
        &id,
        OutboundStatus::InProgress,
        Transition {
            call_sid: Some("CA00000000000000000000000000000002"),
            answered_by: Some("human"),
            ..Transition::default()
        },
        at("2026-12-02T18:00:05Z"),
    )
    .await;
    advance(
        &store,
        &id,
        OutboundStatus::Completed,
        Transition::default(),
        at("2026-12-02T18:02:10Z"),
    )
    .await;
    id
}

/// Polls the view until `done` holds.
async fn wait_for_view(app: &TestApp, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (status, body) = get_as(app, id, ADMIN_TOKEN).await;
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

async fn the_after_call_work_extracts_the_task_outcome_through_a_forced_tool_and_prices_the_models(
    db: TestDb,
) {
    let clock = ManualClock::new(at(MORNING));
    let app = spawn_app_with_clock(db, &clock, |_| {}).await;
    let ada = app.create_user("ada@example.com").await;
    let id = completed_call(&app, &ada, &request(CALLEE)).await;
    let llm = FakeLlm::start(LlmAnswer::Text(SUMMARY.into())).await;
    llm.set_structured_answer(LlmAnswer::Text(OUTCOME.into()));
    let hooks = hooks_for(&app, &llm, SummaryProvider::Anthropic, &clock).await;
    clock.advance(Duration::from_secs(30));

    hooks.call_ended(ended_report(&id));
    let call = wait_for_view(&app, &id, |c| c["analyzed_at"].is_string()).await;

    assert_eq!(call["summary"], "Booked a plumber for Tuesday at nine.");
    assert_eq!(
        call["task_outcome"],
        json!({"objective_met": true, "key_findings": "Visit booked for Tuesday 9 am.",
               "evidence": ["caller: Tuesday at nine works for us."]})
    );
    assert_eq!(call["task_outcome_error"], Value::Null);
    assert_eq!(
        call["analyzed_at"].as_str().map(at),
        Some(at("2026-12-02T18:00:30Z")),
        "the engine's clock"
    );
    let forced = llm
        .requests()
        .into_iter()
        .find(|r| r.get("tool_choice").is_some())
        .expect("a forced tool request");
    assert_eq!(
        forced["tool_choice"],
        json!({"type": "tool", "name": "record_task_outcome"})
    );
    assert_eq!(forced["tools"][0]["input_schema"], task_outcome::schema());
    assert!(
        forced["messages"][0]["content"]
            .as_str()
            .is_some_and(|c| c.contains("Book a plumber's visit") && c.contains("Tuesday at nine")),
        "the objective and the transcript: {forced}"
    );

    // The realtime model: 800 audio in × 32 + 200 text in × 4 + 400 audio out
    // × 64 + 100 text out × 16, per million (default gpt-realtime rates).
    let actual = &call["cost"]["actual"];
    let realtime = actual["realtime_model"]["amount"].as_f64().expect("priced");
    assert!(realtime > 0.0, "{actual}");
    // The reasoning model: consult (1,000 in, 200 out at haiku's 1 and 5 per
    // million = 0.002), plus the summary and the extraction.
    let detail = &call["cost"]["detail"]["reasoning_model"];
    assert_eq!(detail["consult"][0]["amount"], json!(0.002));
    let parts = ["summary", "task_outcome"]
        .iter()
        .map(|p| detail[p]["amount"].as_f64().expect("priced"))
        .sum::<f64>()
        + 0.002;
    let reasoning = actual["reasoning_model"]["amount"]
        .as_f64()
        .expect("priced");
    assert!((reasoning - parts).abs() < 1e-9, "{detail}");
    assert_eq!(actual["reasoning_model"]["status"], "estimated");

    // A second report of the same call changes nothing.
    hooks.call_ended(ended_report(&id));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = wait_for_view(&app, &id, |c| c["analyzed_at"].is_string()).await;
    assert_eq!(again["analyzed_at"], call["analyzed_at"]);
}

#[actix_web::test]
async fn the_after_call_work_extracts_the_task_outcome_through_a_forced_tool_and_prices_the_models_on_sqlite(
) {
    the_after_call_work_extracts_the_task_outcome_through_a_forced_tool_and_prices_the_models(
        TestDb::Sqlite,
    )
    .await;
}

#[actix_web::test]
async fn the_after_call_work_extracts_the_task_outcome_through_a_forced_tool_and_prices_the_models_on_postgres(
) {
    the_after_call_work_extracts_the_task_outcome_through_a_forced_tool_and_prices_the_models(
        TestDb::Postgres,
    )
    .await;
}

async fn a_malformed_task_outcome_is_no_outcome_with_its_reason_and_the_rest_is_written(
    db: TestDb,
) {
    let clock = ManualClock::new(at(MORNING));
    let app = spawn_app_with_clock(db, &clock, |_| {}).await;
    let ada = app.create_user("ada@example.com").await;
    let id = completed_call(&app, &ada, &request(CALLEE)).await;
    let llm = FakeLlm::start(LlmAnswer::Text(SUMMARY.into())).await;
    llm.set_structured_answer(LlmAnswer::Text(
        r#"{"objective_met": "probably", "key_findings": "?", "evidence": []}"#.into(),
    ));
    let hooks = hooks_for(&app, &llm, SummaryProvider::OpenAi, &clock).await;

    hooks.call_ended(ended_report(&id));
    let call = wait_for_view(&app, &id, |c| c["analyzed_at"].is_string()).await;

    assert_eq!(call["task_outcome"], Value::Null);
    assert!(
        call["task_outcome_error"]
            .as_str()
            .is_some_and(|e| e.contains("objective_met")),
        "{call}"
    );
    assert_eq!(call["summary"], "Booked a plumber for Tuesday at nine.");
    let asked = llm
        .requests()
        .into_iter()
        .find(|r| r["response_format"]["type"] == "json_schema")
        .expect("a JSON-schema request");
    assert_eq!(asked["response_format"]["json_schema"]["strict"], true);
    assert_eq!(
        asked["response_format"]["json_schema"]["schema"],
        task_outcome::schema()
    );
    // The unusable answer's tokens are still counted.
    let detail = &call["cost"]["detail"]["reasoning_model"];
    assert!(
        detail["task_outcome"]["amount"].as_f64() > Some(0.0),
        "{detail}"
    );

    // The reasoning model down: still no crash, the reason kept.
    let id = completed_call(&app, &ada, &request("+14155550124")).await;
    llm.set_structured_answer(LlmAnswer::Status(500));
    hooks.call_ended(ended_report(&id));
    let call = wait_for_view(&app, &id, |c| c["analyzed_at"].is_string()).await;
    assert_eq!(call["task_outcome"], Value::Null);
    assert!(
        call["task_outcome_error"]
            .as_str()
            .is_some_and(|e| e.contains("500")),
        "{call}"
    );
}

#[actix_web::test]
async fn a_malformed_task_outcome_is_no_outcome_with_its_reason_and_the_rest_is_written_on_sqlite()
{
    a_malformed_task_outcome_is_no_outcome_with_its_reason_and_the_rest_is_written(TestDb::Sqlite)
        .await;
}

#[actix_web::test]
async fn a_malformed_task_outcome_is_no_outcome_with_its_reason_and_the_rest_is_written_on_postgres(
) {
    a_malformed_task_outcome_is_no_outcome_with_its_reason_and_the_rest_is_written(
        TestDb::Postgres,
    )
    .await;
}

// The reconciler: Twilio's price, the actual cost, and one `call.result`.

fn reconciling(fake_base: String) -> impl FnOnce(&mut Settings) {
    move |s| {
        fast_callbacks(s);
        s.twilio.account_sid = TWILIO_SID.into();
        s.twilio.auth_token = Some(SecretString::from(TWILIO_SECRET));
        s.twilio.api_base = fake_base.parse().expect("the fake's URL");
        s.outbound.result_poll = Duration::from_millis(50);
        s.outbound.price_wait = Duration::from_secs(600);
    }
}

/// With Twilio's credentials set the dispatcher would dial a due call itself; these
/// calls are scheduled a week ahead, so the tests move them as Twilio would.
fn with_callback(to: &str, url: &str) -> Value {
    let mut body = request(to);
    body["callback_url"] = url.into();
    body["schedule_at"] = "2026-12-09T18:00:00Z".into();
    body
}

/// The analysis the after-call work would write: model costs only.
async fn analyzed(store: &Store, id: &str, now: Timestamp) {
    let written = store
        .record_outbound_analysis(
            &OutboundId::parse(id).expect("an id"),
            &OutboundAnalysis {
                summary: Some("Booked for Tuesday.".into()),
                task_outcome: Some(json!({"objective_met": true,
                    "key_findings": "Booked for Tuesday.", "evidence": []})),
                cost_detail: json!({"currency": "USD",
                    "realtime_model": {"amount": 0.5},
                    "reasoning_model": {"amount": 0.01}}),
            },
            now.as_millisecond(),
        )
        .await
        .expect("written");
    assert!(written);
}

fn fetches(fake: &FakeProvider, sid: &str) -> usize {
    let path = format!("GET /2010-04-01/Accounts/{TWILIO_SID}/Calls/{sid}.json");
    fake.requests().iter().filter(|r| **r == path).count()
}

fn result_events(receiver: &Receiver) -> Vec<Value> {
    receiver
        .received()
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).expect("JSON"))
        .filter(|body| body["type"] == "call.result")
        .collect()
}

async fn twilios_price_settles_the_cost_and_the_result_is_posted_once_signed(db: TestDb) {
    let clock = ManualClock::new(at(MORNING));
    let fake = FakeProvider::start().await;
    let app = spawn_app_with_clock(db, &clock, reconciling(fake.base.clone())).await;
    let ada = app.create_user("ada@example.com").await;
    let receiver = Receiver::start(&[]);
    let id = submit(&app, &ada, &with_callback(CALLEE, &receiver.url)).await;
    let store = store_of(&app).await;
    let sid = fake.add_call(CALLEE, NUMBER, OffsetDateTime::now_utc());
    advance(
        &store,
        &id,
        OutboundStatus::InProgress,
        Transition {
            call_sid: Some(&sid),
            answered_by: Some("human"),
            ..Transition::default()
        },
        at("2026-12-02T18:00:05Z"),
    )
    .await;
    advance(
        &store,
        &id,
        OutboundStatus::Completed,
        Transition::default(),
        at("2026-12-02T18:02:10Z"),
    )
    .await;
    clock.set(at("2026-12-02T18:02:20Z"));

    // Not analyzed yet: the reconciler waits for the after-call work.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fetches(&fake, &sid),
        0,
        "nothing fetched before the analysis"
    );
    analyzed(&store, &id, at("2026-12-02T18:02:20Z")).await;

    // Twilio has no price yet: asked again each round, nothing settled.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while fetches(&fake, &sid) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "Twilio was not asked twice"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, call) = get_as(&app, &id, &ada.api_key).await;
    assert_eq!(call["reconciled_at"], Value::Null, "{call}");
    assert_eq!(call["cost"]["actual"]["telephony"]["status"], "estimated");
    assert!(result_events(&receiver).is_empty());

    // 2 min 5 s: Twilio bills 3 minutes at USD 0.014 ("-0.04200").
    fake.complete_call(&sid, 125).await;
    let call = wait_for_view(&app, &id, |c| c["reconciled_at"].is_string()).await;
    let actual = &call["cost"]["actual"];
    assert_eq!(
        actual["telephony"],
        json!({"amount": 0.042, "status": "actual"})
    );
    assert_eq!(
        actual["realtime_model"],
        json!({"amount": 0.5, "status": "actual"})
    );
    assert_eq!(
        actual["reasoning_model"],
        json!({"amount": 0.01, "status": "actual"})
    );
    assert_eq!(actual["total"], json!(0.552));
    assert_eq!(actual["status"], "actual");
    assert_eq!(call["cost"]["detail"]["telephony"]["price"], json!(-0.042));
    assert_eq!(
        call["reconciled_at"].as_str().map(at),
        Some(at("2026-12-02T18:02:20Z")),
        "the engine's clock"
    );

    let received = receiver.wait_for(1).await;
    let results = result_events(&receiver);
    assert_eq!(results.len(), 1, "{results:?}");
    assert!(signature_is_valid(&ada.webhook_secret, &received[0]));
    assert_eq!(results[0]["data"], call, "the event carries the GET view");
    // Rounds go on: the result is never sent again.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(result_events(&receiver).len(), 1);
    assert_eq!(receiver.received().len(), 1);
}

#[actix_web::test]
async fn twilios_price_settles_the_cost_and_the_result_is_posted_once_signed_on_sqlite() {
    twilios_price_settles_the_cost_and_the_result_is_posted_once_signed(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn twilios_price_settles_the_cost_and_the_result_is_posted_once_signed_on_postgres() {
    twilios_price_settles_the_cost_and_the_result_is_posted_once_signed(TestDb::Postgres).await;
}

async fn unanswered_calls_settle_at_no_line_cost_and_a_missing_price_keeps_the_estimate(
    db: TestDb,
) {
    let clock = ManualClock::new(at(MORNING));
    let fake = FakeProvider::start().await;
    let app = spawn_app_with_clock(db, &clock, reconciling(fake.base.clone())).await;
    let ada = app.create_user("ada@example.com").await;
    let receiver = Receiver::start(&[]);
    let store = store_of(&app).await;

    // Busy, with a CallSid: never connected, not fetched.
    let busy = submit(&app, &ada, &with_callback(CALLEE, &receiver.url)).await;
    let busy_sid = fake.add_call(CALLEE, NUMBER, OffsetDateTime::now_utc());
    advance(
        &store,
        &busy,
        OutboundStatus::Busy,
        Transition {
            call_sid: Some(&busy_sid),
            ..Transition::default()
        },
        at(MORNING),
    )
    .await;
    // Canceled before it was dialed.
    let canceled = submit(&app, &ada, &with_callback("+14155550124", &receiver.url)).await;
    let (status, body) = app
        .send_json_as(
            Method::DELETE,
            &format!("/api/calls/outbound/{canceled}"),
            None,
            Some(&ada.api_key),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    for id in [&busy, &canceled] {
        let call = wait_for_view(&app, id, |c| c["reconciled_at"].is_string()).await;
        let actual = &call["cost"]["actual"];
        assert_eq!(
            actual["telephony"],
            json!({"amount": 0.0, "status": "actual", "note": "not_connected"}),
            "{call}"
        );
        assert_eq!(actual["total"], json!(0.0));
        assert_eq!(actual["realtime_model"]["amount"], json!(0.0));
    }
    assert_eq!(
        fetches(&fake, &busy_sid),
        0,
        "an unanswered call is not priced"
    );
    receiver.wait_for(2).await;
    let mut ids: Vec<_> = result_events(&receiver)
        .iter()
        .map(|e| e["data"]["id"].as_str().expect("an id").to_owned())
        .collect();
    ids.sort();
    let mut expected = vec![busy.clone(), canceled.clone()];
    expected.sort();
    assert_eq!(ids, expected);

    // Answered, but Twilio never gives a price: after price_wait_secs the
    // engine's count is kept, marked.
    let mut later = request("+14155550125");
    later["schedule_at"] = "2026-12-09T18:00:00Z".into();
    let quiet = submit(&app, &ada, &later).await;
    let sid = fake.add_call("+14155550125", NUMBER, OffsetDateTime::now_utc());
    advance(
        &store,
        &quiet,
        OutboundStatus::InProgress,
        Transition {
            call_sid: Some(&sid),
            ..Transition::default()
        },
        at("2026-12-02T18:00:05Z"),
    )
    .await;
    advance(
        &store,
        &quiet,
        OutboundStatus::Completed,
        Transition::default(),
        at("2026-12-02T18:02:10Z"),
    )
    .await;
    analyzed(&store, &quiet, at("2026-12-02T18:02:10Z")).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while fetches(&fake, &sid) < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "Twilio was not asked"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, call) = get_as(&app, &quiet, &ada.api_key).await;
    assert_eq!(call["reconciled_at"], Value::Null, "still waiting: {call}");
    clock.set(at("2026-12-02T18:12:10Z"));
    let call = wait_for_view(&app, &quiet, |c| c["reconciled_at"].is_string()).await;
    assert_eq!(
        call["cost"]["actual"]["telephony"],
        json!({"amount": 0.042, "status": "estimated", "note": "twilio_price_unavailable"})
    );
    assert_eq!(call["cost"]["actual"]["total"], json!(0.552));
    assert_eq!(call["cost"]["actual"]["realtime_model"]["status"], "actual");
}

#[actix_web::test]
async fn unanswered_calls_settle_at_no_line_cost_and_a_missing_price_keeps_the_estimate_on_sqlite()
{
    unanswered_calls_settle_at_no_line_cost_and_a_missing_price_keeps_the_estimate(TestDb::Sqlite)
        .await;
}

#[actix_web::test]
async fn unanswered_calls_settle_at_no_line_cost_and_a_missing_price_keeps_the_estimate_on_postgres(
) {
    unanswered_calls_settle_at_no_line_cost_and_a_missing_price_keeps_the_estimate(
        TestDb::Postgres,
    )
    .await;
}

async fn the_answered_calls_record_and_transcript_join_its_outbound_view(db: TestDb) {
    let clock = ManualClock::new(at(MORNING));
    let app = spawn_app_with_clock(db, &clock, |_| {}).await;
    let ada = app.create_user("ada@example.com").await;
    let id = completed_call(&app, &ada, &request(CALLEE)).await;

    // What the answered call's CallActor journals under the same id.
    let store = store_of(&app).await;
    let journal = JournalWriter::spawn_with(
        store.clone(),
        JournalConfig {
            spill_path: std::env::temp_dir()
                .join(format!("sb_result_{}.spill", uuid::Uuid::new_v4().simple())),
            ..JournalConfig::default()
        },
    );
    let call_id = CallId::parse(&id).expect("a call id");
    journal.append(JournalEntry::Opened(CallOpened {
        id: call_id.clone(),
        call_sid: Some("CA00000000000000000000000000000002".into()),
        from: NUMBER.into(),
        to: CALLEE.into(),
        workspace: None,
        direction: "outbound",
        started_at: at("2026-12-02T18:00:05Z").as_millisecond(),
    }));
    for (seq, (role, text)) in [
        ("caller", "Acme Plumbing, this is Sam."),
        (
            "assistant",
            "Hi Sam, I'm an AI assistant calling for Ada Lovelace.",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        journal.append(JournalEntry::Turn {
            call_id: call_id.clone(),
            seq: seq as i64 + 1,
            at: at("2026-12-02T18:00:07Z").as_millisecond() + seq as i64,
            role,
            text: text.into(),
        });
    }
    journal.flush().await;

    let (status, call) = get_as(&app, &id, &ada.api_key).await;
    assert_eq!(status, StatusCode::OK, "{call}");
    assert_eq!(call["direction"], "outbound");
    assert_eq!(call["disposition"], "completed");
    assert_eq!(
        call["from"], NUMBER,
        "the record's, while dispatch noted none"
    );
    assert!(call["events"].is_array(), "the record's fields: {call}");
    assert_eq!(
        call["started_at"].as_str().map(at),
        Some(at("2026-12-02T18:00:05Z"))
    );
    let transcript: Vec<_> = call["transcript"]
        .as_array()
        .expect("a transcript")
        .iter()
        .map(|t| (t["role"].clone(), t["text"].clone()))
        .collect();
    assert_eq!(
        transcript,
        vec![
            (json!("caller"), json!("Acme Plumbing, this is Sam.")),
            (
                json!("assistant"),
                json!("Hi Sam, I'm an AI assistant calling for Ada Lovelace.")
            ),
        ]
    );
}

#[actix_web::test]
async fn the_answered_calls_record_and_transcript_join_its_outbound_view_on_sqlite() {
    the_answered_calls_record_and_transcript_join_its_outbound_view(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn the_answered_calls_record_and_transcript_join_its_outbound_view_on_postgres() {
    the_answered_calls_record_and_transcript_join_its_outbound_view(TestDb::Postgres).await;
}
