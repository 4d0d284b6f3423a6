//! `GET /api/calls/{id}/events`: a user's outbound call as server-sent events —
//! the view at once, then each change, and the end of the stream once the call
//! changes no more; another user's call or an unknown one is a 404.

use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use serde_json::Value;

use crate::db::TestDb;
use crate::helpers::{spawn_app_with_clock, TestApp, User, ADMIN_TOKEN, PATIENCE};
use switchboard::outbound::clock::ManualClock;

/// The events stream of a call, as its bytes arrive.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    async fn open(app: &TestApp, id: &str, token: &str) -> Result<Events, StatusCode> {
        let response = reqwest::Client::new()
            .get(format!("{}/api/calls/{id}/events", app.address))
            .bearer_auth(token)
            .send()
            .await
            .expect("the engine answers");
        let status = StatusCode::from_u16(response.status().as_u16()).expect("a status");
        if status != StatusCode::OK {
            return Err(status);
        }
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        Ok(Events {
            response,
            buffer: String::new(),
        })
    }

    /// The next `call` event's data, or `None` when the stream ended.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if block.starts_with(':') {
                    continue; // a keep-alive comment
                }
                assert!(block.starts_with("event: call\n"), "{block:?}");
                let data = block
                    .lines()
                    .find_map(|line| line.strip_prefix("data: "))
                    .expect("a data line");
                return Some(serde_json::from_str(data).expect("JSON data"));
            }
            let chunk = tokio::time::timeout(PATIENCE, self.response.chunk())
                .await
                .expect("the stream moves on")
                .expect("the stream reads");
            match chunk {
                Some(bytes) => self
                    .buffer
                    .push_str(std::str::from_utf8(&bytes).expect("UTF-8")),
                None => return None,
            }
        }
    }
}

/// 10:00 in San Francisco, where the calls below ring: within calling hours, so a
/// call is `queued`, not deferred, whatever the hour the tests run at.
fn open_hours() -> ManualClock {
    ManualClock::new("2026-12-02T18:00:00Z".parse().expect("an instant"))
}

/// A call the user asked for (nothing dials it here: it stays queued).
async fn queued_call(app: &TestApp, user: &User) -> Value {
    let (status, placed) = app
        .post_json(
            "/api/calls/outbound",
            &crate::outbound_claims::outbound_request("+14155550123"),
            Some(&user.api_key),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{placed}");
    placed
}

#[actix_web::test]
async fn a_call_streams_its_view_then_each_change_and_the_stream_ends_once_it_is_settled() {
    let app = spawn_app_with_clock(TestDb::Sqlite, &open_hours(), |_| {}).await;
    let user = app.create_user("ada@example.com").await;
    let placed = queued_call(&app, &user).await;
    let id = placed["id"].as_str().expect("an id");
    let mut events = Events::open(&app, id, &user.api_key)
        .await
        .expect("the owner follows the call");
    let first = events.next().await.expect("the view at once");
    assert_eq!(first["id"], placed["id"]);
    assert_eq!(first["disposition"], "queued", "{first}");
    // Nothing changes for a while: no event (the next read waits).
    let quiet = tokio::time::timeout(Duration::from_millis(1_500), events.next()).await;
    assert!(quiet.is_err(), "no event without a change: {quiet:?}");
    let (status, _) = app
        .send_json_as(
            Method::DELETE,
            &format!("/api/calls/outbound/{id}"),
            None,
            Some(&user.api_key),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let canceled = events.next().await.expect("the change");
    assert_eq!(canceled["disposition"], "canceled", "{canceled}");
    assert!(
        events.next().await.is_none(),
        "a call never dialed is settled once over"
    );

    // The admin may follow it too; another user, or an unknown call, may not.
    assert!(Events::open(&app, id, ADMIN_TOKEN).await.is_ok());
    let grace = app.create_user("grace@example.com").await;
    assert_eq!(
        Events::open(&app, id, &grace.api_key).await.err(),
        Some(StatusCode::NOT_FOUND)
    );
    assert_eq!(
        Events::open(&app, "out_nope", &user.api_key).await.err(),
        Some(StatusCode::NOT_FOUND)
    );
    assert_eq!(
        Events::open(&app, id, "sbu_wrong").await.err(),
        Some(StatusCode::UNAUTHORIZED)
    );
}

#[actix_web::test]
async fn past_the_open_streams_limit_a_stream_is_refused_with_503_until_one_closes() {
    let app = spawn_app_with_clock(TestDb::Sqlite, &open_hours(), |s| {
        s.calls.max_event_streams = 3
    })
    .await;
    let user = app.create_user("ada@example.com").await;
    let placed = queued_call(&app, &user).await;
    let id = placed["id"].as_str().expect("an id");
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut events = Events::open(&app, id, &user.api_key)
            .await
            .expect("within the limit");
        events.next().await.expect("the view");
        open.push(events);
    }
    assert_eq!(
        Events::open(&app, id, &user.api_key).await.err(),
        Some(StatusCode::SERVICE_UNAVAILABLE),
        "a fourth is refused"
    );
    // The call itself still reads.
    let (status, _) = app
        .send_json_as(
            Method::GET,
            &format!("/api/calls/{id}"),
            None,
            Some(&user.api_key),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // One client goes: its slot is given back once the engine notices (its next
    // write, the 5 s keep-alive at the latest).
    drop(open.pop());
    let deadline = tokio::time::Instant::now() + 2 * PATIENCE;
    loop {
        match Events::open(&app, id, &user.api_key).await {
            Ok(mut events) => {
                events.next().await.expect("the view");
                break;
            }
            Err(status) => {
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the slot never came back"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
