//! The real `switchboard` binary killed (SIGKILL) while outbound calls are
//! queued, dialing and in progress, then started again on the same database
//! (issue 11: "an engine killed while calls are queued, dialing and in
//! progress"): the queued call still runs, the dialing one is reconciled
//! (Twilio's list shows its call: adopted, never dialed again) and the one in
//! progress ends `interrupted`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::db::{fresh_database_url, TestDb};
use crate::engine_process::{config_file, serve_command, EngineProcess};
use crate::fake_providers::calls::LikeTwilio;
use crate::fake_providers::{FakeProvider, TWILIO_SECRET, TWILIO_SID};
use crate::helpers::{ADMIN_TOKEN, PATIENCE};
use crate::outbound_claims::outbound_request;

const IN_PROGRESS: &str = "+14155550131";
const DIALING: &str = "+14155550132";
const QUEUED: &str = "+14155550133";
const POOL_NUMBER: &str = "+14155550199";

/// `switchboard serve` on `database_url`, its Twilio the fake; once healthy.
async fn start(database_url: &str, fake: &FakeProvider, config: &std::path::Path) -> EngineProcess {
    let (mut command, port) = serve_command(database_url, config);
    command
        .env("TWILIO_ACCOUNT_SID", TWILIO_SID)
        .env("TWILIO_AUTH_TOKEN", TWILIO_SECRET)
        .env("TWILIO_API_BASE", &fake.base);
    EngineProcess::start(command, port, config.with_extension("log")).await
}

async fn post(url: &str, token: &str, body: &Value) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("the engine answers");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn status_of(db: &sqlx::AnyPool, id: &str) -> (String, Option<String>) {
    sqlx::query_as("SELECT status, call_sid FROM outbound_calls WHERE id = $1")
        .bind(id)
        .fetch_one(db)
        .await
        .expect("the call")
}

async fn wait_until(db: &sqlx::AnyPool, id: &str, done: impl Fn(&str, Option<&str>) -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (status, sid) = status_of(db, id).await;
        if done(&status, sid.as_deref()) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} stuck at {status} ({sid:?}); the engine's log is beside its config, {}",
            std::env::temp_dir().display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn engine_killed_while_calls_are_queued_dialing_and_in_progress(db_kind: TestDb) {
    let database_url = fresh_database_url(db_kind).await;
    let fake = FakeProvider::start().await;
    let config = config_file(
        &database_url,
        "[outbound]\nmax_per_user = 2\nreconcile_secs = 1.0\ndispatch_poll_secs = 0.1\n\
         dial_timeout_secs = 60.0\ncallback_poll_secs = 3600.0\n\
         calling_hours_start = \"00:00\"\ncalling_hours_end = \"23:59\"\n",
    );

    let mut engine = start(&database_url, &fake, &config).await;
    // The binary is found by path (`CARGO_BIN_EXE_switchboard`): in a target
    // directory shared with other checkouts it may be another branch's build.
    let probe = reqwest::Client::new()
        .post(format!("{}/twilio/outbound/status", engine.url))
        .send()
        .await
        .expect("the engine answers");
    assert_eq!(
        probe.status().as_u16(),
        403,
        "{} is not this build (no /twilio/outbound/status): rebuild it",
        env!("CARGO_BIN_EXE_switchboard")
    );
    let (status, user) = post(
        &format!("{}/api/users", engine.url),
        ADMIN_TOKEN,
        &json!({"email": "ada@example.com", "name": "Ada Lovelace"}),
    )
    .await;
    assert_eq!(status, 201, "{user}");
    let key = user["api_key"].as_str().expect("a key").to_owned();
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&database_url)
        .await
        .expect("the database");
    let workspace: String = sqlx::query_scalar("SELECT workspace FROM users WHERE id = $1")
        .bind(user["id"].as_str())
        .fetch_one(&db)
        .await
        .expect("a workspace");
    sqlx::query(
        "INSERT INTO phone_numbers (id, provider, provider_id, workspace, e164, number_type, \
         status, created_at, updated_at) \
         VALUES ('n1', 'twilio', 'PN1', $1, $2, 'local', 'AVAILABLE', 0, 0)",
    )
    .bind(&workspace)
    .bind(POOL_NUMBER)
    .execute(&db)
    .await
    .expect("a pool number");
    let submit = |to: &'static str| {
        let url = format!("{}/api/calls/outbound", engine.url);
        let key = key.clone();
        async move {
            let (status, answer) = post(&url, &key, &outbound_request(to)).await;
            assert_eq!(status, 202, "{answer}");
            answer["id"].as_str().expect("an id").to_owned()
        }
    };

    // In progress: Twilio plays the call up to its answer.
    fake.state().calls.like_twilio = Some(LikeTwilio {
        answered_by: "human".into(),
    });
    let in_progress = submit(IN_PROGRESS).await;
    wait_until(&db, &in_progress, |s, _| s == "in_progress").await;
    // Dialing: Twilio creates the call and does not answer the request.
    {
        let mut state = fake.state();
        state.calls.like_twilio = None;
        state.calls.hang_for = Some(Duration::from_secs(120));
    }
    let dialing = submit(DIALING).await;
    while fake.dials(DIALING) == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_until(&db, &dialing, |s, _| s == "dialing").await;
    // Queued: the user's two slots are taken.
    let queued = submit(QUEUED).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status_of(&db, &queued).await.0, "queued");

    engine.kill();

    // Meanwhile Twilio's call of the dialing attempt went on ringing.
    {
        let mut state = fake.state();
        state.calls.hang_for = None;
        for call in &mut state.calls.calls {
            if call.resource["to"] == DIALING {
                call.resource["status"] = "ringing".into();
            }
        }
    }
    let mut engine = start(&database_url, &fake, &config).await;

    wait_until(&db, &in_progress, |s, _| s == "interrupted").await;
    wait_until(&db, &dialing, |s, sid| s == "ringing" && sid.is_some()).await;
    wait_until(&db, &queued, |s, sid| s == "dialing" && sid.is_some()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(fake.dials(IN_PROGRESS), 1);
    assert_eq!(
        fake.dials(DIALING),
        1,
        "the dialing call is reconciled, not re-dialed"
    );
    assert_eq!(fake.dials(QUEUED), 1, "the queued call still runs");
    assert_eq!(status_of(&db, &dialing).await.0, "ringing");

    engine.kill();
    db.close().await;
    let _ = std::fs::remove_file(&config);
    let _ = std::fs::remove_file(config.with_extension("log"));
}

#[actix_rt::test]
async fn an_engine_killed_while_calls_are_queued_dialing_and_in_progress_recovers_each_on_sqlite() {
    engine_killed_while_calls_are_queued_dialing_and_in_progress(TestDb::Sqlite).await;
}

#[actix_rt::test]
async fn an_engine_killed_while_calls_are_queued_dialing_and_in_progress_recovers_each_on_postgres()
{
    engine_killed_while_calls_are_queued_dialing_and_in_progress(TestDb::Postgres).await;
}
