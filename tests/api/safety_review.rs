//! The post-call review and number health (issue 12, items 2 and 3): a threat
//! the assistant says on a live call (the fake Twilio and the fake OpenAI
//! Realtime playing both ends) pauses its user before their next queued call
//! dials (which ends `canceled`, `account-paused`); a call that ended while the
//! engine was down is reviewed once after it starts; a number that placed a
//! run of short calls rests and the next call goes out from another. The
//! dispatcher dials through the fake Twilio; time is a `ManualClock`.

use std::time::Duration;

use actix_web::http::StatusCode;
use jiff::SignedDuration;
use serde_json::{json, Value};
use switchboard::config::Settings;
use switchboard::outbound::clock::Clock as _;
use switchboard::outbound::dispatch::from_number;
use switchboard_actors::CallId;

use crate::db::TestDb;
use crate::fakes::openai::{Reply, Script};
use crate::helpers::{spawn_app_on, spawn_app_with_clock, TestApp, ADMIN_TOKEN, PATIENCE};
use crate::outbound_claims::outbound_request;
use crate::outbound_dispatch::{
    add_pool_number, creates, field, patch_user, pool, row, setup, submit_ok, wait_for_dials,
    wait_for_status, CALLEE, POOL_NUMBER,
};
use crate::outbound_e2e::{dialed, submit, until_live, world, DISCLOSURE, GREETING};
use crate::outbound_talk::{speak, until_heard};

/// Another callee, in New York.
const OTHER_CALLEE: &str = "+12125550188";
const THREAT: &str = "Pay today or we know where you live.";

/// The review and dispatch rounds run often; answered calls do not wait for
/// after-call work that no model will write.
fn quick_review(s: &mut Settings) {
    s.safety.review.poll = Duration::from_millis(50);
    s.safety.review.analysis_wait = Duration::ZERO;
}

async fn user_status(app: &TestApp, user: &str) -> String {
    let db = pool(app).await;
    let status: String = sqlx::query_scalar("SELECT status FROM users WHERE id = $1")
        .bind(user)
        .fetch_one(&db)
        .await
        .expect("the user");
    db.close().await;
    status
}

/// The flags on `user`: (type, severity, outbound_id, evidence).
async fn flags_of(app: &TestApp, user: &str) -> Vec<(String, String, Option<String>, Value)> {
    let db = pool(app).await;
    let rows: Vec<(String, String, Option<String>, String)> = sqlx::query_as(
        "SELECT type, severity, outbound_id, evidence FROM flags WHERE user_id = $1 \
         ORDER BY created_at, id",
    )
    .bind(user)
    .fetch_all(&db)
    .await
    .expect("flags");
    db.close().await;
    rows.into_iter()
        .map(|(t, s, o, e)| (t, s, o, serde_json::from_str(&e).expect("JSON evidence")))
        .collect()
}

async fn wait_until_paused(app: &TestApp, user: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while user_status(app, user).await != "paused" {
        assert!(tokio::time::Instant::now() < deadline, "never paused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_threat_in_the_transcript_pauses_the_user_before_their_next_queued_call_dials(
    db: TestDb,
) {
    // The assistant discloses, the callee greets it, and it answers with a
    // threat: all spoken on the live call, through the fake OpenAI Realtime.
    let script = Script::new()
        .greeting(Reply::say(DISCLOSURE, 200, 0x11))
        .turn(GREETING, Reply::say(THREAT, 200, 0x13));
    let w = world(db, script, "human", quick_review).await;
    let (app, user) = (&w.app, &w.user);
    let first = submit(&w).await;
    // The next call waits an hour in the queue.
    let mut later = outbound_request(OTHER_CALLEE);
    later["schedule_at"] = json!((w.clock.now() + SignedDuration::from_hours(1)).to_string());
    let next = submit_ok(app, user, &later).await;

    let sid = dialed(&w.twilio).await;
    let mut stream = w.twilio.media_stream(&sid).await;
    until_live(&w.openai, &mut stream).await;
    until_heard(&mut stream, 0x11).await;
    speak(&mut stream, 25, 0x22);
    until_heard(&mut stream, 0x13).await;
    // The callee hangs up after 40 s; Twilio says so.
    w.clock.advance(Duration::from_secs(40));
    w.twilio.complete_call(&sid, 40).await;
    while stream.next().await.is_some() {}
    wait_for_status(app, &first, "completed").await;

    // The review flags the call (critical: threats) and pauses the user.
    wait_until_paused(app, &user.id).await;
    let flags = flags_of(app, &user.id).await;
    let transcript: Vec<_> = flags.iter().filter(|f| f.0 == "transcript").collect();
    assert_eq!(transcript.len(), 1, "{flags:?}");
    let (_, severity, outbound_id, evidence) = transcript[0];
    assert_eq!(
        (severity.as_str(), outbound_id.as_deref()),
        ("critical", Some(first.as_str()))
    );
    assert_eq!(evidence["category"], "threats", "{evidence}");
    let quoted = evidence["turns"].as_array().expect("quoted turns");
    assert_eq!(
        quoted.len(),
        1,
        "only the turn that says it is quoted: {evidence}"
    );
    assert_eq!(
        (&quoted[0]["role"], &quoted[0]["text"]),
        (&json!("assistant"), &json!(THREAT)),
        "{evidence}"
    );
    let db = pool(app).await;
    let paused: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE user_id = $1 AND action = 'user_paused'",
    )
    .bind(&user.id)
    .fetch_one(&db)
    .await
    .expect("the trail");
    let reviewed: Option<i64> =
        sqlx::query_scalar("SELECT reviewed_at FROM outbound_calls WHERE id = $1")
            .bind(&first)
            .fetch_one(&db)
            .await
            .expect("the call");
    db.close().await;
    assert_eq!(paused, 1, "the automatic pause is in the audit trail");
    assert!(reviewed.is_some());

    // The queued call comes due: it ends canceled with the reason, never
    // dialed, its quota given back.
    w.clock.advance(Duration::from_secs(3600));
    wait_for_status(app, &next, "canceled").await;
    let (_, reason, _, _, refunded) = row(app, &next).await;
    assert_eq!((reason.as_deref(), refunded), (Some("account-paused"), 1));
    assert_eq!(w.twilio.dials(OTHER_CALLEE), 0);
    // Reviewing goes on; the call is not flagged twice.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        flags_of(app, &user.id)
            .await
            .iter()
            .filter(|f| f.0 == "transcript")
            .count(),
        1
    );
}

#[actix_rt::test]
async fn a_threat_in_the_transcript_pauses_the_user_before_their_next_queued_call_dials_on_sqlite()
{
    a_threat_in_the_transcript_pauses_the_user_before_their_next_queued_call_dials(TestDb::Sqlite)
        .await;
}

#[actix_rt::test]
async fn a_threat_in_the_transcript_pauses_the_user_before_their_next_queued_call_dials_on_postgres(
) {
    a_threat_in_the_transcript_pauses_the_user_before_their_next_queued_call_dials(
        TestDb::Postgres,
    )
    .await;
}

/// A consent record for seeded calls.
async fn seed_consent(db: &sqlx::AnyPool, user: &str) -> String {
    let id = format!("cr_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(
        "INSERT INTO consent_records (id, user_id, wording_version, wording_hash, affirmed, \
         signature_full_name, ip, created_at) VALUES ($1, $2, 'v1', 'h', '[]', 'Ada', '127.0.0.1', 0)",
    )
    .bind(&id)
    .bind(user)
    .execute(db)
    .await
    .expect("a consent record");
    id
}

/// One ended call to seed: answered after `answer_ms` (None: not answered),
/// lasting `talk_ms`, with these transcript turns.
pub struct Ended<'a> {
    pub from: &'a str,
    pub to: String,
    pub status: &'a str,
    pub answered: bool,
    pub talk_ms: i64,
    pub turns: &'a [(&'a str, &'a str)],
}

/// One answered, completed call of `user` from the pool's number to the callee
/// (ending at `end_ms`), talking `talk_ms`, with `turns`: its id.
async fn seed_answered_call(
    db: &sqlx::AnyPool,
    user: &str,
    talk_ms: i64,
    turns: &[(&str, &str)],
    end_ms: i64,
    record: Record,
) -> String {
    let call = Ended {
        from: POOL_NUMBER,
        to: CALLEE.to_owned(),
        status: "completed",
        answered: true,
        talk_ms,
        turns,
    };
    let mut ids = seed_calls(db, user, &[call], end_ms, record).await;
    ids.pop().expect("one call seeded")
}

/// The state of a seeded call's record (`calls` row): the journal closes it
/// after the outbound call has ended, so it can still be open.
#[derive(Clone, Copy)]
enum Record {
    Closed,
    /// `in_progress`, no `ended_at`: the journal has not written it all yet.
    Open,
}

/// Writes ended, analysed calls of `user` (ending at `end_ms`) straight into
/// the database, with their closed call records and transcripts, in
/// multi-row INSERTs of up to 200 calls. Answers their ids.
pub async fn seed_ended_calls(
    db: &sqlx::AnyPool,
    user: &str,
    calls: &[Ended<'_>],
    end_ms: i64,
) -> Vec<String> {
    seed_calls(db, user, calls, end_ms, Record::Closed).await
}

/// [`seed_ended_calls`] with the records in the state `record`.
async fn seed_calls(
    db: &sqlx::AnyPool,
    user: &str,
    calls: &[Ended<'_>],
    end_ms: i64,
    record: Record,
) -> Vec<String> {
    let workspace: String = sqlx::query_scalar("SELECT workspace FROM users WHERE id = $1")
        .bind(user)
        .fetch_one(db)
        .await
        .expect("the user's workspace");
    let consent = seed_consent(db, user).await;
    let mut ids = Vec::with_capacity(calls.len());
    for chunk in calls.chunks(200) {
        let chunk_ids: Vec<String> = chunk.iter().map(|_| CallId::new().to_string()).collect();
        let mut outbound = String::from(
            "INSERT INTO outbound_calls (id, user_id, workspace, to_e164, purpose, objective, \
             consent_id, status, run_at, estimated_cost_usd, created_at, updated_at, from_e164, \
             attempts, dialed_at, answered_at, ended_at, analyzed_at) VALUES ",
        );
        let mut records = String::from(
            "INSERT INTO calls (id, node_id, direction, from_number, to_number, status, \
             started_at, answered_at, ended_at) VALUES ",
        );
        let mut turns =
            String::from("INSERT INTO call_turns (call_id, seq, at, role, text) VALUES ");
        let mut n_turns = 0;
        for (i, call) in chunk.iter().enumerate() {
            let start = end_ms - call.talk_ms - 10_000;
            let answered = if call.answered {
                (start + 10_000).to_string()
            } else {
                "NULL".to_owned()
            };
            let sep = if i == 0 { "" } else { ", " };
            outbound.push_str(&format!(
                "{sep}('{id}', '{user}', '{workspace}', '{to}', 'existing_client', 'Book a visit', \
                 '{consent}', '{status}', {start}, 0.1, {start}, {end_ms}, '{from}', 1, {start}, \
                 {answered}, {end_ms}, {end_ms})",
                id = chunk_ids[i],
                to = call.to,
                status = call.status,
                from = call.from,
            ));
            let (record_status, record_end) = match record {
                Record::Closed => ("ended", end_ms.to_string()),
                Record::Open => ("in_progress", "NULL".to_owned()),
            };
            records.push_str(&format!(
                "{sep}('{id}', 'seed', 'outbound', '{from}', '{to}', '{record_status}', {start}, \
                 {answered}, {record_end})",
                id = chunk_ids[i],
                from = call.from,
                to = call.to,
            ));
            for (seq, (role, text)) in call.turns.iter().enumerate() {
                let sep = if n_turns == 0 { "" } else { ", " };
                turns.push_str(&format!(
                    "{sep}('{id}', {seq}, {at}, '{role}', '{text}')",
                    id = chunk_ids[i],
                    seq = seq + 1,
                    at = start + 10_000 + seq as i64,
                    text = text.replace('\'', "''"),
                ));
                n_turns += 1;
            }
        }
        // The records first: an outbound call without one is reviewable.
        sqlx::query(&records)
            .execute(db)
            .await
            .expect("seeded records");
        sqlx::query(&outbound)
            .execute(db)
            .await
            .expect("seeded calls");
        if n_turns > 0 {
            sqlx::query(&turns).execute(db).await.expect("seeded turns");
        }
        ids.extend(chunk_ids);
    }
    ids
}

async fn a_call_that_ended_while_the_engine_was_down_is_reviewed_once_after_it_starts(db: TestDb) {
    // The first engine reviews at start (nothing yet), then not for an hour.
    let clock = switchboard::outbound::clock::ManualClock::new(jiff::Timestamp::now());
    let mut first = spawn_app_with_clock(db, &clock, |s| {
        s.safety.review.poll = Duration::from_secs(3600);
    })
    .await;
    let user = first.create_user("ada@example.com").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    first.server.stop(true).await;
    let _ = (&mut first.stopped).await;

    // While it is down, a call ends with an impersonation in its transcript.
    let db = pool(&first).await;
    let now = jiff::Timestamp::now().as_millisecond();
    let id = seed_answered_call(
        &db,
        &user.id,
        60_000,
        &[
            ("assistant", "This is the I.R.S. calling about your taxes."),
            ("caller", "That is an issue, I will pursue it."),
        ],
        now - 1_000,
        Record::Closed,
    )
    .await;
    db.close().await;

    // The next engine reviews it: one critical flag, the user paused.
    let url = first.database_url.clone();
    let second = spawn_app_on(url.clone(), quick_review).await;
    wait_until_paused(&second, &user.id).await;
    let flags = flags_of(&second, &user.id).await;
    assert_eq!(flags.len(), 1, "{flags:?}");
    assert_eq!(
        (
            flags[0].0.as_str(),
            flags[0].1.as_str(),
            flags[0].2.as_deref()
        ),
        ("transcript", "critical", Some(id.as_str()))
    );
    assert_eq!(
        flags[0].3["terms"],
        json!(["IRS"]),
        "not sue in issue/pursue"
    );
    // Another engine on the same database reviews nothing twice.
    let third = spawn_app_on(url, quick_review).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(flags_of(&third, &user.id).await.len(), 1);
}

#[actix_rt::test]
async fn a_call_that_ended_while_the_engine_was_down_is_reviewed_once_after_it_starts_on_sqlite() {
    a_call_that_ended_while_the_engine_was_down_is_reviewed_once_after_it_starts(TestDb::Sqlite)
        .await;
}

#[actix_rt::test]
async fn a_call_that_ended_while_the_engine_was_down_is_reviewed_once_after_it_starts_on_postgres()
{
    a_call_that_ended_while_the_engine_was_down_is_reviewed_once_after_it_starts(TestDb::Postgres)
        .await;
}

/// Twilio's status callback can end an outbound call before the journal has
/// written its record's last turns and closed it: the review waits for the
/// record, so the threat said last is in the transcript it screens.
async fn a_call_is_reviewed_only_once_its_record_is_closed(db: TestDb) {
    let app = spawn_app_with_clock(
        db,
        &switchboard::outbound::clock::ManualClock::new(jiff::Timestamp::now()),
        quick_review,
    )
    .await;
    let user = app.create_user("ada@example.com").await;
    let pool = pool(&app).await;
    // A completed call whose record is still open: its last turn not written.
    let now = jiff::Timestamp::now().as_millisecond();
    let id = seed_answered_call(
        &pool,
        &user.id,
        30_000,
        &[("assistant", "Hello, this is the clinic.")],
        now - 1_000,
        Record::Open,
    )
    .await;
    // Review rounds run every 50 ms; none takes the call.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reviewed: Option<i64> =
        sqlx::query_scalar("SELECT reviewed_at FROM outbound_calls WHERE id = $1")
            .bind(&id)
            .fetch_one(&pool)
            .await
            .expect("the call");
    assert_eq!(reviewed, None, "reviewed before its record was closed");
    // The journal writes the last turn, then closes the record.
    sqlx::query(
        "INSERT INTO call_turns (call_id, seq, at, role, text) VALUES ($1, 2, $2, 'assistant', $3)",
    )
    .bind(&id)
    .bind(now - 1_500)
    .bind(THREAT)
    .execute(&pool)
    .await
    .expect("the last turn");
    sqlx::query("UPDATE calls SET status = 'ended', ended_at = $2 WHERE id = $1")
        .bind(&id)
        .bind(now - 1_000)
        .execute(&pool)
        .await
        .expect("closed");
    pool.close().await;
    wait_until_paused(&app, &user.id).await;
    let flags = flags_of(&app, &user.id).await;
    assert_eq!(flags.len(), 1, "{flags:?}");
    assert_eq!(flags[0].3["category"], "threats", "{flags:?}");
}

#[actix_rt::test]
async fn a_call_is_reviewed_only_once_its_record_is_closed_on_sqlite() {
    a_call_is_reviewed_only_once_its_record_is_closed(TestDb::Sqlite).await;
}

#[actix_rt::test]
async fn a_call_is_reviewed_only_once_its_record_is_closed_on_postgres() {
    a_call_is_reviewed_only_once_its_record_is_closed(TestDb::Postgres).await;
}

/// A second Twilio number of the pool.
const SPARE_NUMBER: &str = "+14155550177";

async fn a_number_is_rested_after_a_run_of_short_calls_and_the_next_call_is_placed_from_another(
    db: TestDb,
) {
    let s = setup(db, |_, settings| {
        quick_review(settings);
        settings.safety.number_health.min_calls = 10;
        // The user's pattern is not what this test is about.
        settings.safety.review.min_calls = 1_000;
    })
    .await;
    let (app, fake, clock, user) = (&s.app, &s.fake, &s.clock, &s.user);
    add_pool_number(app, user, SPARE_NUMBER).await;
    patch_user(
        app,
        user,
        json!({"calls_per_hour": 100, "calls_per_day": 100, "monthly_budget_usd": 10000.0}),
    )
    .await;
    let mut numbers = vec![POOL_NUMBER.to_owned(), SPARE_NUMBER.to_owned()];
    numbers.sort();
    let own = from_number(&numbers, &user.id)
        .expect("a number")
        .to_owned();
    let other = numbers
        .iter()
        .find(|n| **n != own)
        .expect("another")
        .clone();

    // Twelve answered calls from the user's number, each over in 3 s.
    let db = pool(app).await;
    let short: Vec<Ended<'_>> = (0..12)
        .map(|i| Ended {
            from: &own,
            to: format!("+1415555{:04}", 2000 + i),
            status: "completed",
            answered: true,
            talk_ms: 3_000,
            turns: &[],
        })
        .collect();
    seed_ended_calls(&db, &user.id, &short, clock.now().as_millisecond() - 60_000).await;
    db.close().await;

    // Rested, and the admin sees why.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let report = loop {
        let (status, report) = app
            .send_json_as(
                actix_web::http::Method::GET,
                "/api/numbers/health",
                None,
                Some(ADMIN_TOKEN),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{report}");
        let rested = report["numbers"]
            .as_array()
            .expect("numbers")
            .iter()
            .any(|n| n["e164"] == own.as_str() && n["rested"] == true);
        if rested {
            break report;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never rested: {report}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let entries = report["numbers"].as_array().expect("numbers");
    assert_eq!(entries.len(), 2, "{report}");
    let mine = entries
        .iter()
        .find(|n| n["e164"] == own.as_str())
        .expect("own");
    assert!(
        mine["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("short_call_ratio")),
        "{mine}"
    );
    assert_eq!(
        (&mine["figures"]["calls"], &mine["figures"]["short_calls"]),
        (&json!(12), &json!(12))
    );
    let spare = entries
        .iter()
        .find(|n| n["e164"] == other.as_str())
        .expect("other");
    assert_eq!(spare["rested"], false, "{spare}");
    // Not for users.
    let (status, _) = app
        .send_json_as(
            actix_web::http::Method::GET,
            "/api/numbers/health",
            None,
            Some(&user.api_key),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The next call is placed from the healthy number.
    submit_ok(app, user, &outbound_request(CALLEE)).await;
    wait_for_dials(fake, CALLEE, 1).await;
    let forms = creates(fake);
    assert_eq!(field(&forms[0], "From"), Some(other.as_str()));
}

#[actix_rt::test]
async fn a_number_is_rested_after_a_run_of_short_calls_and_the_next_call_is_placed_from_another_on_sqlite(
) {
    a_number_is_rested_after_a_run_of_short_calls_and_the_next_call_is_placed_from_another(
        TestDb::Sqlite,
    )
    .await;
}

#[actix_rt::test]
async fn a_number_is_rested_after_a_run_of_short_calls_and_the_next_call_is_placed_from_another_on_postgres(
) {
    a_number_is_rested_after_a_run_of_short_calls_and_the_next_call_is_placed_from_another(
        TestDb::Postgres,
    )
    .await;
}
