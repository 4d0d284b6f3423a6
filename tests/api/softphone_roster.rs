//! Issue 13, the engine's side of the web softphone and console: `welcome`, `roster`
//! and `parking` as a softphone connects, the roster following the floor, the new
//! fields of `parked`, `presence` (wrap-up `until`) and `connected`, the keypad's
//! `dtmf` played into the call as Q.23 tones, the console's `name` and `since`,
//! `GET /api/session`, and tokens kept out of the logs. Over real WebSockets.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::StatusCode;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::helpers::{
    spawn_app, spawn_app_with, Agent, Softphone, TestApp, ADMIN_TOKEN, CALLER, NUMBER,
};

/// A number ringing only `agent`.
async fn number_for(app: &TestApp, agent: &Agent) {
    app.create_number(
        NUMBER,
        "production",
        json!({ "kind": "agents", "agent_ids": [agent.id] }),
    )
    .await;
}

/// Skips rosters until one for which `pick` holds (rosters of a burst coalesce, so
/// a test waits for the state it expects rather than counting messages).
async fn roster_where(phone: &mut Softphone, pick: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    loop {
        let message = phone.next().await;
        if message["type"] == "roster" {
            let agents = message["agents"].as_array().expect("agents").clone();
            if pick(&agents) {
                return agents;
            }
        }
    }
}

fn entry<'a>(agents: &'a [Value], agent: &Agent) -> Option<&'a Value> {
    agents.iter().find(|a| a["agent_id"] == agent.id.as_str())
}

fn instant(value: &Value) -> OffsetDateTime {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is a string"));
    OffsetDateTime::parse(text, &Rfc3339).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[actix_rt::test]
async fn a_softphone_is_welcomed_then_told_the_roster_then_the_parking_lot() {
    let app = spawn_app().await;
    let bea = app.create_agent("Bea", "production").await;
    app.create_agent("Elsewhere", "staging").await;
    let mut phone = app.softphone_seeing_all(&bea.token).await;

    let welcome = phone.next().await;
    assert_eq!(
        welcome,
        json!({ "type": "welcome", "agent_id": bea.id, "name": "Bea",
                "workspace": "production", "presence": "away" })
    );
    let roster = phone.next().await;
    assert_eq!(
        roster,
        json!({ "type": "roster", "agents": [
            { "agent_id": bea.id, "name": "Bea", "presence": "away", "on_call": false }
        ] })
    );
    assert_eq!(
        phone.next().await,
        json!({ "type": "parking", "calls": [] })
    );
    // Its own connect is no news to itself: no second, identical roster.
    assert!(phone.silent_for(Duration::from_millis(200)).await);
}

#[actix_rt::test]
async fn the_roster_follows_every_seat_of_the_workspace_sorted_by_name() {
    let app = spawn_app().await;
    let (bea, al) = (
        app.create_agent("Bea", "production").await,
        app.create_agent("Al", "production").await,
    );
    let other = app.create_agent("Other", "staging").await;
    number_for(&app, &al).await;
    let mut watcher = app.softphone_seeing_all(&bea.token).await;
    roster_where(&mut watcher, |agents| agents.len() == 1).await;

    // Another seat connects (and one of another workspace, which is not listed).
    let mut al_phone = app.softphone(&al.token).await;
    let _other_phone = app.softphone(&other.token).await;
    let agents = roster_where(&mut watcher, |agents| agents.len() == 2).await;
    let names: Vec<&str> = agents.iter().filter_map(|a| a["name"].as_str()).collect();
    assert_eq!(names, ["Al", "Bea"], "sorted by name");
    assert_eq!(
        entry(&agents, &al),
        Some(&json!({ "agent_id": al.id, "name": "Al", "presence": "away", "on_call": false }))
    );

    // Its presence.
    al_phone.send(json!({ "type": "presence", "status": "available" }));
    al_phone.expect("presence").await;
    roster_where(&mut watcher, |agents| {
        entry(agents, &al).is_some_and(|a| a["presence"] == "available")
    })
    .await;

    // A call starts and ends.
    let (call, _twilio) = app.answered_call(&mut al_phone).await;
    roster_where(&mut watcher, |agents| {
        entry(agents, &al).is_some_and(|a| a["on_call"] == true && a["presence"] == "busy")
    })
    .await;
    al_phone.send(json!({ "type": "hangup", "call_id": call.call_id }));
    roster_where(&mut watcher, |agents| {
        entry(agents, &al).is_some_and(|a| a["on_call"] == false && a["presence"] == "available")
    })
    .await;

    // It disconnects.
    drop(al_phone);
    let agents = roster_where(&mut watcher, |agents| entry(agents, &al).is_none()).await;
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0]["agent_id"], bea.id.as_str());
}

#[actix_rt::test]
async fn a_softphone_that_connects_is_told_the_parked_calls_and_may_take_one() {
    let app = spawn_app().await;
    let (al, bea) = (
        app.create_agent("Al", "production").await,
        app.create_agent("Bea", "production").await,
    );
    number_for(&app, &al).await;
    let mut al_phone = app.available_softphone(&al).await;
    let (call, _twilio) = app.answered_call(&mut al_phone).await;
    let before = OffsetDateTime::now_utc();
    al_phone.send(json!({ "type": "park", "call_id": call.call_id }));
    let parked = al_phone.wait_for("parked", |_| true).await;
    let fields = json!({
        "type": "parked", "call_id": call.call_id, "slot": 1, "from": CALLER, "to": NUMBER,
        "parked_by": al.id, "parked_by_name": "Al", "reason": "agent",
    });
    let mut without_time = parked.clone();
    let parked_at = without_time
        .as_object_mut()
        .and_then(|m| m.remove("parked_at"))
        .expect("parked_at");
    assert_eq!(without_time, fields);
    let at = instant(&parked_at);
    assert!(
        at >= before - Duration::from_secs(1) && at <= OffsetDateTime::now_utc(),
        "{at}"
    );

    // Bea connects later: the lot is in her `parking`, with the same fields.
    let mut bea_phone = app.softphone_seeing_all(&bea.token).await;
    assert_eq!(bea_phone.next().await["type"], "welcome");
    assert_eq!(bea_phone.next().await["type"], "roster");
    let parking = bea_phone.next().await;
    assert_eq!(parking["type"], "parking");
    let mut listed = parked.clone();
    listed.as_object_mut().map(|m| m.remove("type"));
    assert_eq!(parking["calls"], json!([listed]));

    // And she can take it from the list alone; `connected` names both numbers.
    bea_phone.send(json!({ "type": "unpark", "call_id": call.call_id }));
    let connected = bea_phone.wait_for("connected", |_| true).await;
    assert_eq!(
        connected,
        json!({ "type": "connected", "call_id": call.call_id, "from": CALLER, "to": NUMBER })
    );
}

#[actix_rt::test]
async fn wrap_up_says_until_when() {
    let app = spawn_app_with(crate::db::TestDb::Sqlite, |s| {
        s.calls.wrap_up = Duration::from_secs(2);
    })
    .await;
    let al = app.create_agent("Al", "production").await;
    number_for(&app, &al).await;
    let mut phone = app.available_softphone(&al).await;
    let (call, _twilio) = app.answered_call(&mut phone).await;
    let before = OffsetDateTime::now_utc();
    phone.send(json!({ "type": "hangup", "call_id": call.call_id }));
    let wrap_up = phone
        .wait_for("presence", |m| m["status"] == "wrap_up")
        .await;
    let after = OffsetDateTime::now_utc();
    let until = instant(&wrap_up["until"]);
    // The end of the wrap-up: the hang-up plus the configured 2 s (to the ms).
    assert!(
        until >= before + Duration::from_millis(1999) && until <= after + Duration::from_secs(2),
        "{until} is not 2 s after the hang-up ({before} .. {after})"
    );
    // The return from it carries no `until`.
    let back = phone.wait_for("presence", |_| true).await;
    assert_eq!(back, json!({ "type": "presence", "status": "available" }));
}

// ---- DTMF from the keypad ----------------------------------------------------------

const LOW: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const HIGH: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// G.711 mu-law to linear (the test's own decoder).
fn ulaw(byte: u8) -> f64 {
    let byte = !byte;
    let exponent = (byte >> 4) & 0x07;
    let mantissa = i32::from(byte & 0x0F);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    f64::from(if byte & 0x80 != 0 {
        -magnitude
    } else {
        magnitude
    })
}

/// The energy of `frequency` in `samples` (Goertzel), on the scale of Σx².
fn goertzel(samples: &[f64], frequency: f64) -> f64 {
    let coefficient = 2.0 * (2.0 * std::f64::consts::PI * frequency / 8000.0).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for x in samples {
        let s0 = x + coefficient * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coefficient * s1 * s2;
    2.0 * power / samples.len() as f64
}

/// The key a 20 ms frame is a tone of: its strongest row and column frequencies
/// carry most of its energy, each far above the other frequencies of its group.
fn key_of(frame: &[u8]) -> Option<char> {
    let samples: Vec<f64> = frame.iter().map(|b| ulaw(*b)).collect();
    let energy: f64 = samples.iter().map(|x| x * x).sum();
    if energy < 1e3 * samples.len() as f64 {
        return None;
    }
    let strongest = |group: &[f64; 4]| {
        let powers: Vec<f64> = group.iter().map(|f| goertzel(&samples, *f)).collect();
        let (index, best) =
            powers.iter().enumerate().fold(
                (0, 0.0),
                |acc, (i, p)| if *p > acc.1 { (i, *p) } else { acc },
            );
        let runner_up = powers
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != index)
            .fold(0.0_f64, |acc, (_, p)| acc.max(*p));
        (index, best, runner_up)
    };
    let (row, row_power, row_next) = strongest(&LOW);
    let (column, column_power, column_next) = strongest(&HIGH);
    let dual = row_power + column_power > 0.7 * energy
        && row_power > 10.0 * row_next
        && column_power > 10.0 * column_next;
    dual.then_some(KEYS[row][column])
}

#[actix_rt::test]
async fn keypad_digits_reach_the_caller_as_q23_tones() {
    let app = spawn_app().await;
    let al = app.create_agent("Al", "production").await;
    number_for(&app, &al).await;
    let mut phone = app.available_softphone(&al).await;
    let (call, mut twilio) = app.answered_call(&mut phone).await;
    phone.send(json!({ "type": "dtmf", "call_id": call.call_id, "digits": "159#*0D" }));

    // Each key is 100 ms of tone and 100 ms of silence: runs of tone frames.
    let mut keys = String::new();
    let mut previous = None;
    let mut frames = 0;
    while keys.len() < 7 {
        let media = twilio.next_media().await;
        frames += 1;
        assert!(frames < 2_000, "only {keys:?} arrived");
        for frame in media.chunks(160) {
            let key = key_of(frame);
            if let (Some(key), None) = (key, previous) {
                keys.push(key);
            }
            previous = key;
        }
    }
    assert_eq!(keys, "159#*0D");
    let record = app
        .wait_for_call(&call.call_id, |c| {
            c["events"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["kind"] == "dtmf"))
        })
        .await;
    let event = record["events"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["kind"] == "dtmf"))
        .cloned()
        .expect("a dtmf event");
    assert_eq!(event["agent_id"], al.id.as_str());
    assert_eq!(event["detail"]["digits"], "159#*0D");
}

#[actix_rt::test]
async fn keypad_digits_are_checked_and_need_a_call() {
    let app = spawn_app().await;
    let al = app.create_agent("Al", "production").await;
    number_for(&app, &al).await;
    let mut phone = app.available_softphone(&al).await;
    for digits in [
        json!(""),
        json!("12x"),
        json!("1w2"),
        json!("1".repeat(33)),
        json!(7),
    ] {
        phone.send(json!({ "type": "dtmf", "call_id": "c1", "digits": digits }));
        let error = phone.expect("error").await;
        assert_eq!(error["code"], "bad-message", "{digits}: {error}");
    }
    phone.send(json!({ "type": "dtmf", "call_id": "c1" }));
    assert_eq!(phone.expect("error").await["code"], "bad-message");
    // Well-formed, but this seat is on no call.
    phone.send(json!({ "type": "dtmf", "call_id": "c1", "digits": "123" }));
    assert_eq!(phone.expect("error").await["code"], "not-on-call");
    // On a call, but not that one.
    let (call, _twilio) = app.answered_call(&mut phone).await;
    phone.send(json!({ "type": "dtmf", "call_id": "c1", "digits": "123" }));
    assert_eq!(phone.expect("error").await["code"], "not-on-call");
    phone.send(json!({ "type": "dtmf", "call_id": call.call_id, "digits": &"9".repeat(32) }));
    assert!(phone.silent_for(Duration::from_millis(200)).await);
}

// ---- the console's new fields ----------------------------------------------------------

#[actix_rt::test]
async fn the_supervisor_console_sees_names_since_and_the_parked_fields() {
    let app = spawn_app().await;
    let al = app.create_agent("Al", "production").await;
    number_for(&app, &al).await;
    let mut phone = app.available_softphone(&al).await;
    let (call, _twilio) = app.answered_call(&mut phone).await;
    phone.send(json!({ "type": "park", "call_id": call.call_id }));
    phone.wait_for("parked", |_| true).await;

    let (mut console, snapshot) = app.supervisor().await;
    let seat = &snapshot["seats"][0];
    assert_eq!(seat["agent_id"], al.id.as_str());
    assert_eq!(seat["name"], "Al");
    let listed = &snapshot["calls"][0];
    assert_eq!(listed["status"], "parked");
    let since = instant(&listed["since"]);
    assert!(since <= OffsetDateTime::now_utc());
    let lot = &snapshot["parking"][0];
    assert_eq!(lot["call_id"], call.call_id.as_str());
    assert_eq!(lot["workspace"], "production");
    assert_eq!(lot["slot"], 1);
    assert_eq!(lot["from"], CALLER);
    assert_eq!(lot["to"], NUMBER);
    assert_eq!(lot["parked_by_name"], "Al");
    instant(&lot["parked_at"]);

    // The status changes: `since` moves with it; the seat event carries the name.
    phone.send(json!({ "type": "unpark", "call_id": call.call_id }));
    let connected = console
        .wait_for("call", |m| m["status"] == "connected")
        .await;
    assert!(instant(&connected["since"]) >= since);
    let seat = console.wait_for("seat", |m| m["presence"] == "busy").await;
    assert_eq!(seat["name"], "Al");
}

// ---- GET /api/session ------------------------------------------------------------------

#[actix_rt::test]
async fn the_session_says_whose_token_it_is() {
    let app = spawn_app().await;
    let al = app.create_agent("Al", "production").await;
    let user = app.create_user("ada@example.com").await;
    let session = |token: Option<String>| {
        let app = &app;
        async move {
            let (status, body) = app.get("/api/session", token.as_deref()).await;
            (
                status,
                serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null),
            )
        }
    };

    let (status, body) = session(Some(al.token.clone())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({ "role": "agent", "agent_id": al.id, "name": "Al", "workspace": "production" })
    );
    let (status, body) = session(Some(ADMIN_TOKEN.to_owned())).await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "role": "admin" })));
    let (status, body) = session(Some(user.api_key.clone())).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({ "role": "user", "user_id": user.id })
        )
    );
    for token in [Some("sb_wrong".to_owned()), None] {
        let (status, body) = session(token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["code"], "unauthorized", "{body}");
    }
}

// ---- tokens are not logged ----------------------------------------------------------------

/// Every log line of this process, as the engine's text format writes them.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut lines) = self.0.lock() {
            lines.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[actix_rt::test]
async fn tokens_never_reach_the_log() {
    let captured = Captured::default();
    let writer = captured.clone();
    // At every level, spans included: whatever any part of the engine logs.
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber)
        .expect("this test owns the log of its process (cargo nextest runs one per process)");

    let app = spawn_app().await;
    let al = app.create_agent("Al", "production").await;
    let mut phone = app.softphone(&al.token).await;
    phone.send(json!({ "type": "presence", "status": "available" }));
    phone.expect("presence").await;
    drop(phone);
    let (mut console, _) = app.supervisor().await;
    console.send(json!({ "type": "hangup", "call_id": "nosuchcall" }));
    // Al's seat may still be in the snapshot: its `seat_gone` can come first.
    console.wait_for("error", |_| true).await;
    // A wrong token is refused (and not logged either).
    let wrong = format!("{}x", al.token);
    let url = format!("ws://127.0.0.1:{}/ws/agent?token={wrong}", app.port);
    assert!(crate::helpers::WsPeer::connect(&url, None).await.is_err());
    let (status, _) = app.get("/api/session", Some(&al.token)).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let log = String::from_utf8_lossy(&captured.0.lock().expect("log")).into_owned();
    assert!(
        log.contains("/ws/agent") && log.contains("token=[redacted]"),
        "the requests are logged, with the token redacted:\n{log}"
    );
    for secret in [al.token.as_str(), wrong.as_str(), ADMIN_TOKEN] {
        assert!(!log.contains(secret), "{secret} is in the log:\n{log}");
    }
}
