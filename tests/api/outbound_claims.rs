//! The outbound queue's claims (`store::outbound_dispatch`), on SQLite and
//! PostgreSQL: two claimers at once never take the same call, and a claim
//! honours the global, per-user and per-batch caps and closes batch windows.
//!
//! Calls are submitted through the API for an hour ahead (`scheduled`), so the
//! engine's own dispatcher, whose clock stays at `MORNING`, leaves them alone;
//! the claims here are made with "now" past that hour.

use std::collections::HashSet;

use actix_web::http::{Method, StatusCode};
use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};
use switchboard::outbound::clock::ManualClock;
use switchboard::store::outbound::{OutboundId, OutboundStatus, Transition};
use switchboard::store::outbound_dispatch::ClaimCaps;
use switchboard::store::Store;

use crate::db::TestDb;
use crate::helpers::{spawn_app_with_clock, TestApp, User, ADMIN_TOKEN};

/// 10:00 in San Francisco, a Wednesday.
const MORNING: &str = "2026-12-02T18:00:00Z";
/// San Francisco numbers, one per call (the tests never dial).
const CALLEE_PREFIX: &str = "+1415555";

fn morning() -> Timestamp {
    MORNING.parse().expect("an instant")
}

/// The instant the claims are made at: past every call's `run_at`.
fn later_ms() -> i64 {
    (morning() + SignedDuration::from_hours(2)).as_millisecond()
}

pub fn outbound_request(to: &str) -> Value {
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
        },
    })
}

/// A user whose quotas let `calls` through.
async fn user_with_room(app: &TestApp, email: &str) -> User {
    let user = app.create_user(email).await;
    let (status, body) = app
        .send_json_as(
            Method::PATCH,
            &format!("/api/users/{}", user.id),
            Some(&json!({"calls_per_hour": 100, "calls_per_day": 100, "monthly_budget_usd": 10000.0})),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    user
}

/// Submits `n` calls of `user` for an hour after `MORNING`; their ids.
async fn schedule(app: &TestApp, user: &User, n: usize, first_number: usize) -> Vec<String> {
    let at = (morning() + SignedDuration::from_hours(1)).to_string();
    let mut ids = Vec::new();
    for i in 0..n {
        let mut body = outbound_request(&format!("{CALLEE_PREFIX}{:04}", first_number + i));
        body["schedule_at"] = json!(at);
        let (status, answer) = app
            .post_json("/api/calls/outbound", &body, Some(&user.api_key))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        assert_eq!(answer["status"], "scheduled", "{answer}");
        ids.push(answer["id"].as_str().expect("an id").to_owned());
    }
    ids
}

async fn store_of(app: &TestApp, node: &str) -> Store {
    Store::connect(&app.database_url, node)
        .await
        .expect("the test reaches the database")
}

async fn app(db: TestDb, clock: &ManualClock) -> TestApp {
    spawn_app_with_clock(db, clock, |_| {}).await
}

async fn two_claimers_at_once_never_take_the_same_call(db: TestDb) {
    let clock = ManualClock::new(morning());
    let app = app(db, &clock).await;
    let mut all = HashSet::new();
    for (u, email) in ["a@example.com", "b@example.com", "c@example.com"]
        .iter()
        .enumerate()
    {
        let user = user_with_room(&app, email).await;
        all.extend(schedule(&app, &user, 8, u * 100).await);
    }
    let caps = ClaimCaps {
        max_concurrent: 1000,
        max_per_user: 1000,
        max_claims: 3,
    };
    let claimer = |node: &'static str| {
        let app_url = app.database_url.clone();
        async move {
            let store = Store::connect(&app_url, node).await.expect("a store");
            let mut mine = Vec::new();
            loop {
                let claims = store
                    .claim_due_outbound(&caps, later_ms())
                    .await
                    .expect("a claim");
                if claims.claimed.is_empty() {
                    return mine;
                }
                for call in claims.claimed {
                    assert_eq!(call.status, OutboundStatus::Dialing);
                    assert_eq!(call.progress.attempts, 1);
                    assert!(call.attempt_id.is_some());
                    mine.push(call.id.to_string());
                }
            }
        }
    };
    let (first, second) = tokio::join!(
        actix_rt::spawn(claimer("node-a")),
        actix_rt::spawn(claimer("node-b"))
    );
    let (first, second) = (first.expect("claimer a"), second.expect("claimer b"));
    let mut seen = HashSet::new();
    for id in first.iter().chain(&second) {
        assert!(seen.insert(id.clone()), "{id} was claimed twice");
    }
    assert_eq!(seen, all, "every due call is claimed, once");

    let store = store_of(&app, "check").await;
    for id in &all {
        let id = OutboundId::parse(id).expect("an id");
        let attempts = store.outbound_attempts(&id).await.expect("attempts");
        assert_eq!(attempts.len(), 1, "one attempt row per claim");
        let call = store
            .get_outbound(&id)
            .await
            .expect("read")
            .expect("a call");
        assert_eq!(
            call.attempt_id.as_deref(),
            Some(attempts[0].attempt_id.as_str())
        );
    }
}

#[actix_rt::test]
async fn two_claimers_at_once_never_take_the_same_call_on_sqlite() {
    two_claimers_at_once_never_take_the_same_call(TestDb::Sqlite).await;
}

#[actix_rt::test]
async fn two_claimers_at_once_never_take_the_same_call_on_postgres() {
    two_claimers_at_once_never_take_the_same_call(TestDb::Postgres).await;
}

async fn a_claim_honours_the_global_and_per_user_caps(db: TestDb) {
    let clock = ManualClock::new(morning());
    let app = app(db, &clock).await;
    let ada = user_with_room(&app, "ada@example.com").await;
    let bob = user_with_room(&app, "bob@example.com").await;
    let ada_calls = schedule(&app, &ada, 4, 0).await;
    let bob_calls = schedule(&app, &bob, 4, 100).await;
    let store = store_of(&app, "node-a").await;
    let caps = ClaimCaps {
        max_concurrent: 3,
        max_per_user: 2,
        max_claims: 50,
    };
    let first = store
        .claim_due_outbound(&caps, later_ms())
        .await
        .expect("a claim");
    assert_eq!(first.claimed.len(), 3, "the global cap");
    let of = |ids: &[String], claimed: &[switchboard::store::outbound::OutboundCall]| {
        claimed
            .iter()
            .filter(|c| ids.contains(&c.id.to_string()))
            .count()
    };
    assert!(of(&ada_calls, &first.claimed) <= 2, "ada's cap");
    assert!(of(&bob_calls, &first.claimed) <= 2, "bob's cap");
    let again = store
        .claim_due_outbound(&caps, later_ms())
        .await
        .expect("a claim");
    assert!(again.claimed.is_empty(), "no room left");

    // One call ends: one slot frees, for a user below the cap.
    let done = &first.claimed[0];
    store
        .advance_outbound(
            &done.id,
            OutboundStatus::Completed,
            Transition::default(),
            later_ms(),
        )
        .await
        .expect("advance");
    let third = store
        .claim_due_outbound(&caps, later_ms())
        .await
        .expect("a claim");
    assert_eq!(third.claimed.len(), 1);
    let claimed: Vec<_> = first
        .claimed
        .iter()
        .chain(&third.claimed)
        .cloned()
        .collect();
    let active: Vec<_> = claimed
        .iter()
        .filter(|c| c.id != done.id)
        .cloned()
        .collect();
    assert!(of(&ada_calls, &active) <= 2 && of(&bob_calls, &active) <= 2);
}

#[actix_rt::test]
async fn a_claim_honours_the_global_and_per_user_caps_on_sqlite() {
    a_claim_honours_the_global_and_per_user_caps(TestDb::Sqlite).await;
}

#[actix_rt::test]
async fn a_claim_honours_the_global_and_per_user_caps_on_postgres() {
    a_claim_honours_the_global_and_per_user_caps(TestDb::Postgres).await;
}

async fn a_claim_honours_a_batch_cap_and_closes_a_passed_window(db: TestDb) {
    let clock = ManualClock::new(morning());
    let app = app(db, &clock).await;
    let ada = user_with_room(&app, "ada@example.com").await;
    let batch_calls = schedule(&app, &ada, 3, 0).await;
    let closing = schedule(&app, &ada, 1, 50).await.remove(0);
    let single = schedule(&app, &ada, 1, 100).await.remove(0);

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.database_url)
        .await
        .expect("the database");
    sqlx::query(
        "INSERT INTO outbound_batches (id, user_id, objective, window_start, window_end, \
         max_concurrency, created_at) VALUES ('b1', $1, 'o', '08:00', '21:00', 1, 0)",
    )
    .bind(&ada.id)
    .execute(&pool)
    .await
    .expect("a batch");
    for id in batch_calls.iter().chain([&closing]) {
        sqlx::query("UPDATE outbound_calls SET batch_id = 'b1', window_end_at = $1 WHERE id = $2")
            .bind(later_ms() + 3_600_000)
            .bind(id)
            .execute(&pool)
            .await
            .expect("into the batch");
    }
    sqlx::query("UPDATE outbound_calls SET window_end_at = $1 WHERE id = $2")
        .bind(later_ms() - 1)
        .bind(&closing)
        .execute(&pool)
        .await
        .expect("a passed window");
    pool.close().await;

    let store = store_of(&app, "node-a").await;
    let caps = ClaimCaps {
        max_concurrent: 100,
        max_per_user: 100,
        max_claims: 50,
    };
    let claims = store
        .claim_due_outbound(&caps, later_ms())
        .await
        .expect("a claim");
    let claimed: HashSet<String> = claims.claimed.iter().map(|c| c.id.to_string()).collect();
    assert_eq!(
        claimed.len(),
        2,
        "one of the batch (its cap) and the single call"
    );
    assert!(claimed.contains(&single));
    assert_eq!(
        batch_calls
            .iter()
            .filter(|id| claimed.contains(*id))
            .count(),
        1
    );
    assert_eq!(claims.window_closed.len(), 1);
    let (was, call) = &claims.window_closed[0];
    assert_eq!(call.id.to_string(), closing);
    assert_eq!(*was, OutboundStatus::Scheduled);
    assert_eq!(call.status, OutboundStatus::NotDialedWindowClosed);
    assert!(call.progress.ended_at.is_some());
    assert!(!claimed.contains(&closing));
}

#[actix_rt::test]
async fn a_claim_honours_a_batch_cap_and_closes_a_passed_window_on_sqlite() {
    a_claim_honours_a_batch_cap_and_closes_a_passed_window(TestDb::Sqlite).await;
}

#[actix_rt::test]
async fn a_claim_honours_a_batch_cap_and_closes_a_passed_window_on_postgres() {
    a_claim_honours_a_batch_cap_and_closes_a_passed_window(TestDb::Postgres).await;
}

async fn a_released_claim_waits_again_and_recovery_reconciles_dialing_calls(db: TestDb) {
    let clock = ManualClock::new(morning());
    let app = app(db, &clock).await;
    let ada = user_with_room(&app, "ada@example.com").await;
    schedule(&app, &ada, 4, 0).await;
    let store = store_of(&app, "node-a").await;
    let caps = ClaimCaps {
        max_concurrent: 100,
        max_per_user: 100,
        max_claims: 50,
    };
    let claimed = store
        .claim_due_outbound(&caps, later_ms())
        .await
        .expect("a claim")
        .claimed;
    assert_eq!(claimed.len(), 4);
    let attempt =
        |c: &switchboard::store::outbound::OutboundCall| c.attempt_id.clone().expect("an attempt");

    // Given back (a gate deferred it): scheduled again, the attempt uncounted.
    let deferred = &claimed[0];
    let run_at = later_ms() + 60_000;
    assert!(store
        .release_outbound_claim(
            &deferred.id,
            &attempt(deferred),
            OutboundStatus::Scheduled,
            run_at,
            Some("calling_hours"),
            later_ms()
        )
        .await
        .expect("release"));
    let back = store
        .get_outbound(&deferred.id)
        .await
        .expect("read")
        .expect("a call");
    assert_eq!(
        (back.status, back.run_at, back.progress.attempts),
        (OutboundStatus::Scheduled, run_at, 0)
    );
    assert!(
        !store
            .release_outbound_claim(
                &deferred.id,
                &attempt(deferred),
                OutboundStatus::Queued,
                run_at,
                None,
                later_ms()
            )
            .await
            .expect("release"),
        "a claim is given back once"
    );

    // One ringing, one in progress, one still dialing; another node's recovery
    // touches none of them, this node's moves each.
    for (call, status) in [
        (&claimed[1], OutboundStatus::Ringing),
        (&claimed[2], OutboundStatus::InProgress),
    ] {
        store
            .advance_outbound(&call.id, status, Transition::default(), later_ms())
            .await
            .expect("advance");
    }
    let other = store_of(&app, "node-b").await;
    let nothing = other.recover_outbound(later_ms()).await.expect("recover");
    assert!(nothing.in_doubt.is_empty() && nothing.interrupted.is_empty());
    let recovered = store.recover_outbound(later_ms()).await.expect("recover");
    assert_eq!(recovered.in_doubt.len(), 1);
    assert_eq!(recovered.in_doubt[0].1.id, claimed[3].id);
    assert_eq!(recovered.in_doubt[0].1.status, OutboundStatus::DialUnknown);
    assert_eq!(recovered.interrupted.len(), 2);
    assert!(recovered
        .interrupted
        .iter()
        .all(|(_, c)| c.status == OutboundStatus::Interrupted));

    // In doubt: listed for reconciliation once the window passed, not before.
    let due = store
        .outbound_to_reconcile(later_ms() - 1, 10)
        .await
        .expect("list");
    assert!(due.is_empty());
    let due = store
        .outbound_to_reconcile(later_ms(), 10)
        .await
        .expect("list");
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].id, claimed[3].id);
}

#[actix_rt::test]
async fn a_released_claim_waits_again_and_recovery_reconciles_dialing_calls_on_sqlite() {
    a_released_claim_waits_again_and_recovery_reconciles_dialing_calls(TestDb::Sqlite).await;
}

#[actix_rt::test]
async fn a_released_claim_waits_again_and_recovery_reconciles_dialing_calls_on_postgres() {
    a_released_claim_waits_again_and_recovery_reconciles_dialing_calls(TestDb::Postgres).await;
}
