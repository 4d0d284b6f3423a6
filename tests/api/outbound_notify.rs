//! Callbacks to the user (issue 11, item 7's callback part): an event enqueued
//! through `outbound::notify` reaches the user's endpoint as a signed JSON POST,
//! is tried again with backoff on a 500 or a hang, is never posted again once
//! acknowledged, survives a restart, and is refused when it points into the
//! engine's own network. On SQLite and PostgreSQL; the retry schedule runs on a
//! clock the test controls.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use switchboard::outbound::clock::{ClockHandle, ManualClock};
use switchboard::outbound::notify::{self, CallbackConfig, DeliveryWorker, Event};
use switchboard::store::deliveries::DeliveryRecord;
use switchboard::store::Store;
use switchboard_actors::UserId;

use crate::db::TestDb;
use crate::helpers::{spawn_app_on, spawn_app_with, TestApp, User, PATIENCE};

/// What the receiver does with the next request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Answer {
    Status(u16),
    /// Never answers (within the test).
    Hang,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) event_id: Option<String>,
    pub(crate) signature: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Vec<u8>,
}

#[derive(Default)]
struct ReceiverState {
    /// Answers for the next requests, in order; then 200.
    script: VecDeque<Answer>,
    received: Vec<Received>,
}

/// A user's endpoint on a random local port.
#[derive(Clone)]
pub(crate) struct Receiver {
    pub(crate) url: String,
    state: Arc<Mutex<ReceiverState>>,
    /// Each answer waits this long first (to hold posts in flight).
    delay: Duration,
}

impl Receiver {
    pub(crate) fn start(script: &[Answer]) -> Receiver {
        Self::start_with_delay(script, Duration::ZERO)
    }

    fn start_with_delay(script: &[Answer], delay: Duration) -> Receiver {
        let state = Arc::new(Mutex::new(ReceiverState {
            script: script.iter().copied().collect(),
            received: Vec::new(),
        }));
        let shared = web::Data::new((Arc::clone(&state), delay));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("an address").port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .listen(listener)
        .expect("the receiver listens")
        .run();
        actix_rt::spawn(server);
        Receiver {
            url: format!("http://127.0.0.1:{port}/hooks/switchboard"),
            state,
            delay,
        }
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.state.lock().expect("receiver state").received.clone()
    }

    /// Waits until at least `n` requests arrived; returns them all.
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + PATIENCE + self.delay * n as u32;
        loop {
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {n} callbacks, got {}",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<(Arc<Mutex<ReceiverState>>, Duration)>,
) -> HttpResponse {
    let (state, delay) = shared.get_ref();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let answer = {
        let mut state = state.lock().expect("receiver state");
        state.received.push(Received {
            event_id: header("x-switchboard-event-id"),
            signature: header("x-switchboard-signature"),
            content_type: header("content-type"),
            body: body.to_vec(),
        });
        state.script.pop_front().unwrap_or(Answer::Status(200))
    };
    tokio::time::sleep(*delay).await;
    match answer {
        Answer::Status(code) => {
            HttpResponse::build(actix_web::http::StatusCode::from_u16(code).expect("a status"))
                .finish()
        }
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(3_600)).await;
            HttpResponse::Ok().finish()
        }
    }
}

/// The receiver's check: the signature is HMAC-SHA256 of the raw body under the
/// user's webhook secret, hex, after `sha256=`.
pub(crate) fn signature_is_valid(secret: &str, received: &Received) -> bool {
    let Some(hex_mac) = received
        .signature
        .as_deref()
        .and_then(|s| s.strip_prefix("sha256="))
    else {
        return false;
    };
    let Ok(mac_bytes) = hex::decode(hex_mac) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(&received.body);
    mac.verify_slice(&mac_bytes).is_ok()
}

fn status_event(status: &str) -> Event {
    Event {
        kind: "call.status".into(),
        data: json!({ "call_id": "c1", "status": status }),
    }
}

pub(crate) fn fast_callbacks(settings: &mut switchboard::config::Settings) {
    settings.outbound.callback_allow_private = true;
    settings.outbound.callback_poll = Duration::from_millis(20);
    settings.outbound.callback_retry_base = Duration::from_millis(100);
    settings.outbound.callback_retry_max = Duration::from_millis(400);
}

/// Enqueues a `call.status` event for `user` at the wall clock's now.
async fn enqueue_status(store: &Store, user: &User, url: &str, status: &str) -> String {
    notify::enqueue(
        store,
        &ClockHandle::system(),
        &user_id(user),
        url,
        &status_event(status),
    )
    .await
    .expect("enqueued")
}

async fn store_of(app: &TestApp) -> Store {
    let store = Store::connect(&app.database_url, "notify-test")
        .await
        .expect("the test reaches the database");
    store.migrate().await.expect("migrated");
    store
}

fn user_id(user: &User) -> UserId {
    UserId::parse(&user.id).expect("a user id")
}

async fn wait_for_delivery(
    store: &Store,
    event_id: &str,
    done: impl Fn(&DeliveryRecord) -> bool,
) -> DeliveryRecord {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let record = store
            .get_delivery(event_id)
            .await
            .expect("reads the delivery")
            .expect("the delivery exists");
        if done(&record) {
            return record;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the delivery did not get there: {record:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The engine made a user and stopped: the test runs its own worker on the
/// database with a clock it controls.
async fn user_then_stop(db: TestDb) -> (String, User) {
    let app = spawn_app_with(db, |_| {}).await;
    let user = app.create_user("ada@example.com").await;
    let url = app.database_url.clone();
    app.server.stop(true).await;
    app.stopped.await.expect("the engine stops");
    (url, user)
}

fn test_worker(store: &Store, clock: &ManualClock, concurrency: usize) -> DeliveryWorker {
    DeliveryWorker::spawn(
        store.clone(),
        CallbackConfig {
            timeout: Duration::from_secs(5),
            concurrency,
            max_attempts: 12,
            retry_base: Duration::from_secs(60),
            retry_max: Duration::from_secs(8 * 3600),
            poll: Duration::from_millis(20),
            allow_private: true,
        },
        clock.handle(),
    )
    .expect("the worker starts")
}

async fn a_callback_arrives_signed_with_the_users_secret_and_is_acknowledged_once(db: TestDb) {
    let app = spawn_app_with(db, fast_callbacks).await;
    let user = app.create_user("ada@example.com").await;
    let receiver = Receiver::start(&[]);
    let store = store_of(&app).await;

    let event_id = enqueue_status(&store, &user, &receiver.url, "ringing").await;

    let received = receiver.wait_for(1).await;
    let got = &received[0];
    assert!(signature_is_valid(&user.webhook_secret, got), "{got:?}");
    assert!(!signature_is_valid("another secret", got));
    assert_eq!(got.event_id.as_deref(), Some(event_id.as_str()));
    assert_eq!(got.content_type.as_deref(), Some("application/json"));
    let body: Value = serde_json::from_slice(&got.body).expect("a JSON body");
    assert_eq!(body["event_id"], json!(event_id));
    assert_eq!(body["type"], json!("call.status"));
    assert_eq!(
        body["data"],
        json!({ "call_id": "c1", "status": "ringing" })
    );
    assert!(body["created_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));

    let record = wait_for_delivery(&store, &event_id, |r| r.delivered_at.is_some()).await;
    assert_eq!(record.attempts, 1);
    assert_eq!(
        record.body.as_bytes(),
        got.body.as_slice(),
        "the stored bytes are the signed ones"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.received().len(),
        1,
        "an acknowledged event is never posted again"
    );
}

#[actix_web::test]
async fn a_callback_arrives_signed_with_the_users_secret_and_is_acknowledged_once_on_sqlite() {
    a_callback_arrives_signed_with_the_users_secret_and_is_acknowledged_once(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn a_callback_arrives_signed_with_the_users_secret_and_is_acknowledged_once_on_postgres() {
    a_callback_arrives_signed_with_the_users_secret_and_is_acknowledged_once(TestDb::Postgres)
        .await;
}

async fn an_endpoint_answering_500_twice_gets_the_same_event_until_it_acknowledges(db: TestDb) {
    let (database_url, user) = user_then_stop(db).await;
    let store = Store::connect(&database_url, "notify-test")
        .await
        .expect("connects");
    let receiver = Receiver::start(&[Answer::Status(500), Answer::Status(500)]);
    let clock = ManualClock::new("2026-03-02T15:00:00Z".parse().expect("an instant"));
    let start = now_ms(&clock);
    let event_id = notify::enqueue(
        &store,
        &clock.handle(),
        &user_id(&user),
        &receiver.url,
        &status_event("completed"),
    )
    .await
    .expect("enqueued");
    let worker = test_worker(&store, &clock, 4);

    receiver.wait_for(1).await;
    let first = wait_for_delivery(&store, &event_id, |r| r.last_error.is_some()).await;
    assert_eq!(first.attempts, 1);
    assert!(first.delivered_at.is_none());
    assert!(
        first
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("500")),
        "{first:?}"
    );
    assert!(
        (start + 30_000..=start + 60_000).contains(&first.next_attempt_at),
        "the first wait is 30-60 s: {}",
        first.next_attempt_at - start
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        receiver.received().len(),
        1,
        "not due again before its time"
    );

    clock.advance(Duration::from_secs(60));
    receiver.wait_for(2).await;
    let now = now_ms(&clock);
    let second = wait_for_delivery(&store, &event_id, |r| {
        r.attempts == 2 && r.next_attempt_at > now
    })
    .await;
    assert!(
        second.next_attempt_at - now >= 60_000,
        "the second wait is longer (60-120 s)"
    );
    clock.advance(Duration::from_secs(120));
    receiver.wait_for(3).await;
    let done = wait_for_delivery(&store, &event_id, |r| r.delivered_at.is_some()).await;
    assert_eq!(done.attempts, 3);

    clock.advance(Duration::from_secs(2 * 86_400));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = receiver.received();
    assert_eq!(received.len(), 3, "never posted again once acknowledged");
    for got in &received {
        assert_eq!(got.event_id.as_deref(), Some(event_id.as_str()));
        assert_eq!(
            got.body, received[0].body,
            "every attempt sends the same bytes"
        );
        assert!(signature_is_valid(&user.webhook_secret, got));
    }
    worker.stop().await;
}

#[actix_web::test]
async fn an_endpoint_answering_500_twice_gets_the_same_event_until_it_acknowledges_on_sqlite() {
    an_endpoint_answering_500_twice_gets_the_same_event_until_it_acknowledges(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn an_endpoint_answering_500_twice_gets_the_same_event_until_it_acknowledges_on_postgres() {
    an_endpoint_answering_500_twice_gets_the_same_event_until_it_acknowledges(TestDb::Postgres)
        .await;
}

#[actix_web::test]
async fn a_hanging_endpoint_times_out_and_is_retried_while_the_engine_carries_on() {
    let app = spawn_app_with(TestDb::Sqlite, |s| {
        fast_callbacks(s);
        s.outbound.callback_timeout = Duration::from_millis(1_500);
    })
    .await;
    let user = app.create_user("ada@example.com").await;
    let receiver = Receiver::start(&[Answer::Hang, Answer::Hang]);
    let store = store_of(&app).await;
    let event_id = enqueue_status(&store, &user, &receiver.url, "ringing").await;

    receiver.wait_for(1).await;
    // While the endpoint hangs, the engine answers as usual, the database too.
    let (status, _) = app.get("/healthz", None).await;
    assert!(status.is_success());
    let (status, _) = app.get_json(&format!("/api/users/{}", user.id)).await;
    assert!(status.is_success());
    let during = store
        .get_delivery(&event_id)
        .await
        .expect("reads the delivery")
        .expect("the delivery exists");
    assert_eq!(
        (
            during.attempts,
            during.last_error.as_deref(),
            receiver.received().len()
        ),
        (1, None, 1),
        "the first post was still hanging"
    );

    let done = wait_for_delivery(&store, &event_id, |r| r.delivered_at.is_some()).await;
    assert_eq!(done.attempts, 3);
    assert!(
        done.last_error
            .as_deref()
            .is_some_and(|e| e.contains("timed out")),
        "{done:?}"
    );
    let received = receiver.received();
    assert_eq!(received.len(), 3);
    assert!(received
        .iter()
        .all(|got| got.event_id.as_deref() == Some(event_id.as_str())));
}

#[actix_web::test]
async fn a_restarted_engine_delivers_what_was_pending() {
    let (database_url, user) = user_then_stop(TestDb::Sqlite).await;
    let receiver = Receiver::start(&[]);
    let store = Store::connect(&database_url, "notify-test")
        .await
        .expect("connects");
    // Enqueued while no engine runs (as if the engine died right after).
    let event_id = enqueue_status(&store, &user, &receiver.url, "completed").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(receiver.received().is_empty());

    let _app = spawn_app_on(database_url, fast_callbacks).await;
    let received = receiver.wait_for(1).await;
    assert_eq!(received[0].event_id.as_deref(), Some(event_id.as_str()));
    assert!(signature_is_valid(&user.webhook_secret, &received[0]));
    wait_for_delivery(&store, &event_id, |r| r.delivered_at.is_some()).await;
}

#[actix_web::test]
async fn a_callback_url_in_the_engines_own_network_is_refused_and_the_reason_kept() {
    let app = spawn_app_with(TestDb::Sqlite, |s| {
        fast_callbacks(s);
        s.outbound.callback_allow_private = false;
        s.outbound.callback_max_attempts = 1;
    })
    .await;
    let user = app.create_user("ada@example.com").await;
    let receiver = Receiver::start(&[]);
    let store = store_of(&app).await;
    let by_name = receiver.url.replace("127.0.0.1", "localhost");
    for url in [receiver.url.as_str(), by_name.as_str()] {
        let event_id = enqueue_status(&store, &user, url, "ringing").await;
        let record = wait_for_delivery(&store, &event_id, |r| r.gave_up_at.is_some()).await;
        assert!(record.delivered_at.is_none());
        assert!(
            record
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("not a public address")),
            "{url}: {record:?}"
        );
    }
    assert!(
        receiver.received().is_empty(),
        "nothing reached the private address"
    );
}

#[actix_web::test]
async fn two_engines_on_one_postgres_never_post_the_same_event_twice() {
    let (database_url, user) = user_then_stop(TestDb::Postgres).await;
    let receiver = Receiver::start_with_delay(&[], Duration::from_millis(30));
    let clock = ManualClock::new("2026-03-02T15:00:00Z".parse().expect("an instant"));
    let one = Store::connect(&database_url, "node-a")
        .await
        .expect("connects");
    let two = Store::connect(&database_url, "node-b")
        .await
        .expect("connects");
    let mut event_ids = Vec::new();
    for n in 0..40 {
        let event = status_event(&format!("status-{n}"));
        let id = notify::enqueue(
            &one,
            &clock.handle(),
            &user_id(&user),
            &receiver.url,
            &event,
        )
        .await
        .expect("enqueued");
        event_ids.push(id);
    }
    let workers = [test_worker(&one, &clock, 4), test_worker(&two, &clock, 4)];
    let received = receiver.wait_for(40).await;
    for id in &event_ids {
        wait_for_delivery(&one, id, |r| r.delivered_at.is_some()).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let received_ids: std::collections::BTreeSet<_> = receiver
        .received()
        .into_iter()
        .filter_map(|got| got.event_id)
        .collect();
    assert_eq!(
        receiver.received().len(),
        40,
        "each event posted once: {}",
        received.len()
    );
    assert_eq!(received_ids, event_ids.into_iter().collect());
    for worker in workers {
        worker.stop().await;
    }
}

fn now_ms(clock: &ManualClock) -> i64 {
    clock.handle().now().as_millisecond()
}

/// A `call.status` event of call `call`.
fn call_event(call: &str, status: &str) -> Event {
    Event {
        kind: "call.status".into(),
        data: json!({ "id": call, "status": status }),
    }
}

/// `(data.id, data.status)` of each request, in the order they arrived.
fn arrivals(receiver: &Receiver) -> Vec<(String, String)> {
    receiver
        .received()
        .iter()
        .map(|got| {
            let body: Value = serde_json::from_slice(&got.body).expect("JSON");
            (
                body["data"]["id"].as_str().unwrap_or_default().to_owned(),
                body["data"]["status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

async fn the_events_of_one_call_arrive_in_order_and_a_retry_steps_aside(db: TestDb) {
    let (database_url, user) = user_then_stop(db).await;
    let store = Store::connect(&database_url, "notify-test")
        .await
        .expect("connects");
    // One instant for every event: only the enqueue order tells them apart.
    let clock = ManualClock::new("2026-03-02T15:00:00Z".parse().expect("an instant"));
    let statuses = ["dialing", "ringing", "in_progress", "completed", "result"];

    // Two calls' events, interleaved, to an endpoint that takes its time.
    let slow = Receiver::start_with_delay(&[], Duration::from_millis(20));
    for status in statuses {
        for call in ["call-b", "call-c"] {
            notify::enqueue(
                &store,
                &clock.handle(),
                &user_id(&user),
                &slow.url,
                &call_event(call, status),
            )
            .await
            .expect("enqueued");
        }
    }
    // The first post of call A fails: it waits for its retry (a minute, on
    // the manual clock) and the later ones go on meanwhile.
    let failing = Receiver::start(&[Answer::Status(500)]);
    for status in ["dialing", "ringing", "in_progress"] {
        notify::enqueue(
            &store,
            &clock.handle(),
            &user_id(&user),
            &failing.url,
            &call_event("call-a", status),
        )
        .await
        .expect("enqueued");
    }
    let worker = test_worker(&store, &clock, 8);

    slow.wait_for(10).await;
    let got = arrivals(&slow);
    for call in ["call-b", "call-c"] {
        let of_call: Vec<&str> = got
            .iter()
            .filter(|(id, _)| id == call)
            .map(|(_, status)| status.as_str())
            .collect();
        assert_eq!(of_call, statuses, "{call} in order: {got:?}");
    }
    let first_two: Vec<&str> = got[..2].iter().map(|(id, _)| id.as_str()).collect();
    assert!(
        first_two.contains(&"call-b") && first_two.contains(&"call-c"),
        "one call does not wait for another: {got:?}"
    );

    failing.wait_for(3).await;
    clock.advance(Duration::from_secs(120));
    failing.wait_for(4).await;
    let statuses_a: Vec<String> = arrivals(&failing).into_iter().map(|(_, s)| s).collect();
    assert_eq!(
        statuses_a,
        ["dialing", "ringing", "in_progress", "dialing"],
        "the failed one stepped aside, then came again"
    );
    worker.stop().await;
}

#[actix_web::test]
async fn the_events_of_one_call_arrive_in_order_and_a_retry_steps_aside_on_sqlite() {
    the_events_of_one_call_arrive_in_order_and_a_retry_steps_aside(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn the_events_of_one_call_arrive_in_order_and_a_retry_steps_aside_on_postgres() {
    the_events_of_one_call_arrive_in_order_and_a_retry_steps_aside(TestDb::Postgres).await;
}
