//! The real-app test harness: `spawn_app` starts the engine on a random port with a
//! fresh database; `TestApp` has a method per action; `TwilioStream` and `Softphone`
//! are real WebSocket clients that play Twilio's Media Streams and an agent's
//! softphone. Every feature's tests use these.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_http::ws::Item;
use actix_web::http::StatusCode;
use awc::ws::{CloseReason, Frame, Message};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use secrecy::SecretString;
use serde_json::{json, Value};
use switchboard::config::Settings;
use switchboard::outbound::clock::{ClockHandle, ManualClock};
use switchboard::startup::Application;
use switchboard::twilio::signature::sign;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::db::{fresh_database_url, TestDb};

pub const ADMIN_TOKEN: &str = "test-admin-token";
/// The number most tests call, and who calls it.
pub const NUMBER: &str = "+14155550100";
pub const CALLER: &str = "+14155559876";
pub const TWILIO_TOKEN: &str = "test-twilio-auth-token";
/// How long a test waits for something the engine should do "at once".
pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub database_url: String,
    pub client: awc::Client,
    /// Stops the engine like SIGTERM does.
    pub server: actix_web::dev::ServerHandle,
    /// Resolves when the engine has finished stopping.
    pub stopped: tokio::sync::oneshot::Receiver<()>,
}

pub struct Agent {
    pub id: String,
    pub token: String,
}

/// A user as `POST /api/users` answers: the only time the API key is shown.
pub struct User {
    pub id: String,
    pub api_key: String,
    pub webhook_secret: String,
}

/// A call Twilio announced with the voice webhook.
pub struct InboundCall {
    pub call_sid: String,
    pub call_id: String,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(TestDb::Sqlite, |_| {}).await
}

pub async fn spawn_app_with(db: TestDb, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let database_url = fresh_database_url(db).await;
    spawn_app_on(database_url, configure).await
}

/// [`spawn_app_with`] on an engine whose outbound gates read `clock` (a test's
/// `ManualClock`) instead of the wall.
pub async fn spawn_app_with_clock(
    db: TestDb,
    clock: &ManualClock,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let database_url = fresh_database_url(db).await;
    start_app(database_url, clock.handle(), configure).await
}

/// Starts an engine on an existing database (restarts, several nodes).
pub async fn spawn_app_on(database_url: String, configure: impl FnOnce(&mut Settings)) -> TestApp {
    start_app(database_url, ClockHandle::system(), configure).await
}

/// [`spawn_app_on`] with the clock the outbound gates read (a restart under a
/// test's `ManualClock`).
pub async fn spawn_app_on_with_clock(
    database_url: String,
    clock: &ManualClock,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    start_app(database_url, clock.handle(), configure).await
}

async fn start_app(
    database_url: String,
    clock: ClockHandle,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let mut settings = Settings::defaults();
    settings.bind = "127.0.0.1:0".into();
    settings.database_url = database_url.clone();
    settings.admin_token = Some(SecretString::from(ADMIN_TOKEN));
    settings.twilio.auth_token = Some(SecretString::from(TWILIO_TOKEN));
    settings.workers = 2;
    settings.journal.spill_path = spill_path_for(&database_url);
    configure(&mut settings);
    let app = Application::build_with_clock(settings, clock)
        .await
        .expect("the engine starts");
    let port = app.port();
    let server = app.handle();
    let (done, stopped) = tokio::sync::oneshot::channel();
    actix_rt::spawn(async move {
        let _ = app.run_until_stopped().await;
        let _ = done.send(());
    });
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        database_url,
        server,
        stopped,
        client: awc::Client::builder().timeout(PATIENCE).finish(),
    }
}

pub fn new_call_sid() -> String {
    format!("CA{}", uuid::Uuid::new_v4().simple())
}

impl TestApp {
    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Bytes) {
        let mut req = self.client.get(format!("{}{path}", self.address));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let mut res = req.send().await.expect("GET reaches the engine");
        let body = res.body().limit(16 << 20).await.expect("body");
        (res.status(), body)
    }

    pub async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let (status, body) = self.get(path, Some(ADMIN_TOKEN)).await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    pub async fn post_json(
        &self,
        path: &str,
        body: &Value,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.post(format!("{}{path}", self.address));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let mut res = req.send_json(body).await.expect("POST reaches the engine");
        let bytes = res.body().await.expect("body");
        (
            res.status(),
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub async fn create_agent(&self, name: &str, workspace: &str) -> Agent {
        let (status, body) = self
            .post_json(
                "/api/agents",
                &json!({ "name": name, "workspace": workspace }),
                Some(ADMIN_TOKEN),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        Agent {
            id: body["id"].as_str().expect("id").to_owned(),
            token: body["token"].as_str().expect("token").to_owned(),
        }
    }

    /// `POST /api/users` with `email` (name "Ada Lovelace", the defaults
    /// otherwise), which must succeed.
    pub async fn create_user(&self, email: &str) -> User {
        let (status, body) = self
            .post_json(
                "/api/users",
                &json!({ "email": email, "name": "Ada Lovelace" }),
                Some(ADMIN_TOKEN),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let field = |name: &str| body[name].as_str().expect(name).to_owned();
        User {
            id: field("id"),
            api_key: field("api_key"),
            webhook_secret: field("webhook_secret"),
        }
    }

    pub async fn create_number(&self, e164: &str, workspace: &str, route: Value) {
        let (status, body) = self
            .post_json(
                "/api/numbers",
                &json!({ "e164": e164, "workspace": workspace, "route": route }),
                Some(ADMIN_TOKEN),
            )
            .await;
        assert!(status.is_success(), "{status} {body}");
    }

    /// A form POST signed the way Twilio signs it (over the public URL).
    pub async fn twilio_post(&self, path: &str, params: &[(&str, &str)]) -> (StatusCode, String) {
        let owned: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let signature = sign(TWILIO_TOKEN, &format!("{}{path}", self.address), &owned);
        self.form_post(path, params, Some(&signature)).await
    }

    pub async fn form_post(
        &self,
        path: &str,
        params: &[(&str, &str)],
        signature: Option<&str>,
    ) -> (StatusCode, String) {
        let mut req = self.client.post(format!("{}{path}", self.address));
        if let Some(signature) = signature {
            req = req.insert_header(("X-Twilio-Signature", signature));
        }
        let mut res = req
            .send_form(&params)
            .await
            .expect("POST reaches the engine");
        let body = res.body().await.expect("body");
        (res.status(), String::from_utf8_lossy(&body).into_owned())
    }

    /// The incoming-call webhook with Twilio's usual fields.
    pub async fn voice_webhook(
        &self,
        call_sid: &str,
        from: &str,
        to: &str,
    ) -> (StatusCode, String) {
        self.twilio_post(
            "/twilio/voice",
            &[
                ("AccountSid", "AC00000000000000000000000000000000"),
                ("ApiVersion", "2010-04-01"),
                ("CallSid", call_sid),
                ("CallStatus", "ringing"),
                ("Called", to),
                ("Caller", from),
                ("Direction", "inbound"),
                ("From", from),
                ("FromCountry", "US"),
                ("StirVerstat", "TN-Validation-Passed-A"),
                ("To", to),
                ("ToCountry", "US"),
            ],
        )
        .await
    }

    /// Twilio announces a call; returns it with the engine's call id from the TwiML.
    pub async fn ring_in(&self, from: &str, to: &str) -> InboundCall {
        let call_sid = new_call_sid();
        let (status, twiml) = self.voice_webhook(&call_sid, from, to).await;
        assert_eq!(status, StatusCode::OK, "{twiml}");
        let call_id =
            stream_parameter(&twiml, "call_id").unwrap_or_else(|| panic!("no call_id in {twiml}"));
        InboundCall { call_sid, call_id }
    }

    pub async fn status_callback(&self, call_sid: &str, status: &str) -> StatusCode {
        self.twilio_post(
            "/twilio/status",
            &[
                ("AccountSid", "AC00000000000000000000000000000000"),
                ("CallSid", call_sid),
                ("CallStatus", status),
                ("CallbackSource", "call-progress-events"),
                ("SequenceNumber", "0"),
            ],
        )
        .await
        .0
    }

    pub fn stream_url(&self) -> String {
        format!("ws://127.0.0.1:{}/twilio/stream", self.port)
    }

    /// Opens the Media Stream for a call, as Twilio does after the TwiML, and sends
    /// `connected` and `start`.
    pub async fn open_stream(&self, call: &InboundCall) -> TwilioStream {
        self.open_stream_for(&call.call_sid, &call.call_id).await
    }

    pub async fn open_stream_for(&self, call_sid: &str, call_id: &str) -> TwilioStream {
        TwilioStream::open(
            &self.stream_url(),
            TWILIO_TOKEN,
            call_sid,
            json!({ "call_id": call_id }),
        )
        .await
        .expect("the engine accepts a signed media stream")
    }

    /// A softphone that passes over what every connection is told besides the
    /// test's subject (`welcome`, `roster`, `parking`; see [`Softphone::hidden`]).
    pub async fn softphone(&self, token: &str) -> Softphone {
        let mut phone = self.softphone_seeing_all(token).await;
        phone.hidden = FLOOR_MESSAGES;
        phone
    }

    /// A softphone that sees every message the engine sends.
    pub async fn softphone_seeing_all(&self, token: &str) -> Softphone {
        let url = format!("ws://127.0.0.1:{}/ws/agent?token={token}", self.port);
        Softphone {
            peer: WsPeer::connect(&url, None)
                .await
                .expect("the softphone connects"),
            hidden: &[],
        }
    }

    /// A supervisor console (its first message, the snapshot, is returned with it).
    pub async fn supervisor(&self) -> (Softphone, Value) {
        let url = format!(
            "ws://127.0.0.1:{}/ws/supervisor?token={ADMIN_TOKEN}",
            self.port
        );
        let mut console = Softphone {
            peer: WsPeer::connect(&url, None)
                .await
                .expect("the console connects"),
            hidden: &[],
        };
        let snapshot = console.expect("snapshot").await;
        (console, snapshot)
    }

    /// `n` agents of `production`, each with an available softphone; `NUMBER`
    /// rings the first one only.
    pub async fn floor(&self, n: usize) -> (Vec<Agent>, Vec<Softphone>) {
        let mut agents = Vec::new();
        let mut phones = Vec::new();
        for i in 0..n {
            let agent = self.create_agent(&format!("agent {i}"), "production").await;
            phones.push(self.available_softphone(&agent).await);
            agents.push(agent);
        }
        self.create_number(
            NUMBER,
            "production",
            json!({ "kind": "agents", "agent_ids": [agents[0].id] }),
        )
        .await;
        (agents, phones)
    }

    /// A softphone that is connected and `available`.
    pub async fn available_softphone(&self, agent: &Agent) -> Softphone {
        let mut phone = self.softphone(&agent.token).await;
        phone.send(json!({ "type": "presence", "status": "available" }));
        let ack = phone.expect("presence").await;
        assert_eq!(ack["status"], "available");
        phone
    }

    /// `NUMBER` rings every available agent of `production`.
    pub async fn number_for_everyone(&self) {
        self.create_number(
            NUMBER,
            "production",
            json!({ "kind": "agents", "agent_ids": [] }),
        )
        .await;
    }

    /// A call to `NUMBER` that `phone` (available, and the only one rung) answers.
    pub async fn answered_call(&self, phone: &mut Softphone) -> (InboundCall, TwilioStream) {
        let call = self.ring_in(CALLER, NUMBER).await;
        let twilio = self.open_stream(&call).await;
        phone.expect_ring(&call.call_id).await;
        phone.answer(&call.call_id);
        phone.expect("connected").await;
        (call, twilio)
    }

    pub async fn call(&self, call_id: &str) -> Value {
        let (status, body) = self.get_json(&format!("/api/calls/{call_id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Polls the call's record until `done` holds (records are written behind the
    /// call, by the journal).
    pub async fn wait_for_call(&self, call_id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let (status, body) = self.get_json(&format!("/api/calls/{call_id}")).await;
            if status == StatusCode::OK && done(&body) {
                return body;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("call {call_id} never reached the expected state: {body}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn wait_for_outcome(&self, call_id: &str) -> Value {
        self.wait_for_call(call_id, |c| c["ended_at"].is_string())
            .await
    }

    pub async fn metric(&self, name: &str) -> f64 {
        let (_, body) = self.get("/metrics", None).await;
        let text = String::from_utf8_lossy(&body).into_owned();
        text.lines()
            .find_map(|line| {
                let (metric, value) = line.split_once(' ')?;
                (metric == name).then(|| value.trim().parse().ok())?
            })
            .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
    }
}

/// The value of `<Parameter name=NAME value=…/>` in a TwiML document.
pub fn stream_parameter(twiml: &str, name: &str) -> Option<String> {
    let marker = format!(r#"<Parameter name="{name}" value=""#);
    let start = twiml.find(&marker)? + marker.len();
    let end = twiml[start..].find('"')? + start;
    Some(twiml[start..end].to_owned())
}

/// Kinds of a call's event trail, in order.
pub fn event_kinds(call: &Value) -> Vec<String> {
    call["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A 20 ms mu-law frame whose bytes say which frame it is.
pub fn frame(tag: u8, seq: u8) -> Bytes {
    Bytes::from(
        (0..160u8)
            .map(|i| tag ^ seq.wrapping_add(i))
            .collect::<Vec<_>>(),
    )
}

// ---- WebSocket plumbing --------------------------------------------------------

/// A text message as JSON, or as a string if it is not JSON.
fn text_value(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// A WebSocket client on its own task: answers pings, splits text and binary,
/// joins fragmented text.
pub struct WsPeer {
    out: mpsc::UnboundedSender<Message>,
    text: mpsc::UnboundedReceiver<Value>,
    binary: mpsc::UnboundedReceiver<Bytes>,
    closed: mpsc::UnboundedReceiver<Option<CloseReason>>,
}

impl WsPeer {
    pub async fn connect(
        url: &str,
        signature: Option<&str>,
    ) -> Result<WsPeer, awc::error::WsClientError> {
        let mut request = awc::Client::new().ws(url).max_frame_size(1 << 20);
        if let Some(signature) = signature {
            request = request.header("X-Twilio-Signature", signature);
        }
        WsPeer::open(request).await
    }

    /// Connects with a request the caller built (other headers, bearer auth).
    pub async fn open(
        request: awc::ws::WebsocketsRequest,
    ) -> Result<WsPeer, awc::error::WsClientError> {
        let (_response, mut framed) = request.connect().await?;
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let (text_tx, text) = mpsc::unbounded_channel();
        let (binary_tx, binary) = mpsc::unbounded_channel();
        let (closed_tx, closed) = mpsc::unbounded_channel();
        actix_rt::spawn(async move {
            let mut partial: Option<Vec<u8>> = None;
            loop {
                tokio::select! {
                    out = out_rx.recv() => match out {
                        Some(message) => {
                            if framed.send(message).await.is_err() {
                                break;
                            }
                        }
                        None => {
                            let _ = framed.close().await;
                            break;
                        }
                    },
                    frame = framed.next() => match frame {
                        Some(Ok(Frame::Text(bytes))) => {
                            let _ = text_tx.send(text_value(&bytes));
                        }
                        // A long message comes in fragments (RFC 6455 §5.4).
                        Some(Ok(Frame::Continuation(item))) => match item {
                            Item::FirstText(bytes) => partial = Some(bytes.to_vec()),
                            Item::FirstBinary(_) => partial = None,
                            Item::Continue(bytes) => {
                                if let Some(text) = partial.as_mut() {
                                    text.extend_from_slice(&bytes);
                                }
                            }
                            Item::Last(bytes) => {
                                if let Some(mut text) = partial.take() {
                                    text.extend_from_slice(&bytes);
                                    let _ = text_tx.send(text_value(&text));
                                }
                            }
                        },
                        Some(Ok(Frame::Binary(bytes))) => {
                            let _ = binary_tx.send(bytes);
                        }
                        Some(Ok(Frame::Ping(payload))) => {
                            let _ = framed.send(Message::Pong(payload)).await;
                        }
                        Some(Ok(Frame::Close(reason))) => {
                            let _ = closed_tx.send(reason);
                            break;
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => {
                            let _ = closed_tx.send(None);
                            break;
                        }
                    },
                }
            }
        });
        Ok(WsPeer {
            out: out_tx,
            text,
            binary,
            closed,
        })
    }

    pub fn send_text(&self, value: Value) {
        let _ = self.out.send(Message::Text(value.to_string().into()));
    }

    pub fn send_raw(&self, message: Message) {
        let _ = self.out.send(message);
    }

    pub async fn next_text(&mut self) -> Option<Value> {
        tokio::time::timeout(PATIENCE, self.text.recv())
            .await
            .ok()
            .flatten()
    }

    pub async fn next_binary(&mut self) -> Option<Bytes> {
        tokio::time::timeout(PATIENCE, self.binary.recv())
            .await
            .ok()
            .flatten()
    }

    pub fn next_binary_now(&mut self) -> Option<Bytes> {
        self.binary.try_recv().ok()
    }

    pub fn try_text(&mut self) -> Option<Value> {
        self.text.try_recv().ok()
    }

    /// The close frame's reason once the engine closes the socket.
    pub async fn closed(&mut self) -> Option<CloseReason> {
        tokio::time::timeout(PATIENCE, self.closed.recv())
            .await
            .expect("the engine closes the socket")
            .flatten()
    }
}

/// What the engine tells a softphone about the floor as it connects and whenever a
/// seat of its workspace changes: most tests are about something else and pass over
/// these (`softphone_seeing_all` does not).
pub const FLOOR_MESSAGES: &[&str] = &["welcome", "roster", "parking"];

/// The fake softphone.
pub struct Softphone {
    pub peer: WsPeer,
    /// Message types `next` (and everything built on it) passes over.
    pub hidden: &'static [&'static str],
}

impl Softphone {
    pub fn send(&self, message: Value) {
        self.peer.send_text(message);
    }

    pub fn send_audio(&self, frame: Bytes) {
        self.peer.send_raw(Message::Binary(frame));
    }

    pub async fn next(&mut self) -> Value {
        loop {
            let message = self
                .peer
                .next_text()
                .await
                .expect("the softphone gets a message");
            if !self.is_hidden(&message) {
                return message;
            }
        }
    }

    fn is_hidden(&self, message: &Value) -> bool {
        message["type"]
            .as_str()
            .is_some_and(|kind| self.hidden.contains(&kind))
    }

    /// The next message, which must be of this type.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let message = self.next().await;
        assert_eq!(message["type"], kind, "expected {kind}, got {message}");
        message
    }

    pub async fn expect_ring(&mut self, call_id: &str) -> Value {
        let ring = self.expect("ring").await;
        assert_eq!(ring["call_id"], call_id);
        ring
    }

    pub fn answer(&self, call_id: &str) {
        self.send(json!({ "type": "answer", "call_id": call_id }));
    }

    /// Waits for the call's `ring` (passing over other messages), answers it and
    /// waits for its `connected`.
    pub async fn takes(&mut self, call_id: &str) -> Value {
        self.wait_for("ring", |m| m["call_id"] == call_id).await;
        self.answer(call_id);
        self.wait_for("connected", |m| m["call_id"] == call_id)
            .await
    }

    pub async fn audio(&mut self) -> Bytes {
        self.peer
            .next_binary()
            .await
            .expect("the softphone gets audio")
    }

    /// Skips messages until one of type `kind` for which `pick` holds.
    pub async fn wait_for(&mut self, kind: &str, pick: impl Fn(&Value) -> bool) -> Value {
        loop {
            let message = self.next().await;
            if message["type"] == kind && pick(&message) {
                return message;
            }
        }
    }

    /// No text message arrives within `wait`.
    pub async fn silent_for(&mut self, wait: Duration) -> bool {
        tokio::time::sleep(wait).await;
        while let Some(message) = self.peer.try_text() {
            if !self.is_hidden(&message) {
                return false;
            }
        }
        true
    }
}

/// The fake Twilio Media Stream.
pub struct TwilioStream {
    pub peer: WsPeer,
    pub stream_sid: String,
    /// Shared with the play-out task, which sends mark echoes.
    sequence: Arc<AtomicU64>,
    media_sent: u64,
    /// Set by `play_out`: marks are echoed when their audio has played.
    play_out: Option<Arc<Mutex<PlayOut>>>,
}

impl TwilioStream {
    /// Opens a Media Stream on `url` as Twilio does after `<Connect><Stream>`:
    /// the handshake signed under `token`, then `connected` and `start` with the
    /// TwiML's `<Parameter>`s as `customParameters`.
    pub async fn open(
        url: &str,
        token: &str,
        call_sid: &str,
        custom_parameters: Value,
    ) -> Result<TwilioStream, awc::error::WsClientError> {
        let signature = sign(token, url, &[]);
        let peer = WsPeer::connect(url, Some(&signature)).await?;
        let stream_sid = format!("MZ{}", uuid::Uuid::new_v4().simple());
        let stream = TwilioStream {
            peer,
            stream_sid,
            sequence: Arc::new(AtomicU64::new(0)),
            media_sent: 0,
            play_out: None,
        };
        stream
            .peer
            .send_text(json!({ "event": "connected", "protocol": "Call", "version": "1.0.0" }));
        stream.peer.send_text(json!({
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": stream.stream_sid,
            "start": {
                "accountSid": "AC00000000000000000000000000000000",
                "streamSid": stream.stream_sid,
                "callSid": call_sid,
                "tracks": ["inbound"],
                "mediaFormat": { "encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1 },
                "customParameters": custom_parameters,
            },
        }));
        Ok(stream)
    }

    pub fn send_media(&mut self, audio: &[u8]) {
        let sequence = self.sequence.fetch_add(1, Ordering::SeqCst) + 1;
        self.media_sent += 1;
        let payload = STANDARD.encode(audio);
        self.peer.send_text(json!({
            "event": "media",
            "sequenceNumber": sequence.to_string(),
            "media": {
                "track": "inbound",
                "chunk": self.media_sent.to_string(),
                "timestamp": (self.media_sent * 20).to_string(),
                "payload": payload,
            },
            "streamSid": self.stream_sid,
        }));
    }

    pub fn send_event(&mut self, event: &str, body: Value) {
        twilio_event(
            &self.peer.out,
            &self.sequence,
            &self.stream_sid,
            event,
            body,
        );
    }

    pub fn stop(&mut self) {
        let call = json!({ "accountSid": "AC00000000000000000000000000000000" });
        self.send_event("stop", call);
    }

    /// The next message from the engine. Marks are echoed at once, as if the audio
    /// before them had finished playing (unless `play_out` is on).
    pub async fn next(&mut self) -> Option<Value> {
        let message = self.peer.next_text().await?;
        if message["event"] == "mark" && self.play_out.is_none() {
            let name = message["mark"]["name"].clone();
            self.send_event("mark", json!({ "name": name }));
        }
        Some(message)
    }

    /// Skips what the caller heard before (ringback, hold audio) until `frame`
    /// arrives; the frames after it can then be checked in order.
    pub async fn skip_to_media(&mut self, frame: &Bytes) {
        let mut skipped = 0;
        while self.next_media().await != frame {
            skipped += 1;
            assert!(skipped < 10_000, "the expected frame never came");
        }
    }

    /// Decoded audio of the next `media` message (other events are skipped).
    pub async fn next_media(&mut self) -> Bytes {
        loop {
            let message = self.next().await.expect("the engine sends media");
            if message["event"] == "media" {
                assert_eq!(message["streamSid"], self.stream_sid.as_str());
                let payload = message["media"]["payload"].as_str().expect("payload");
                return Bytes::from(STANDARD.decode(payload).expect("base64 payload"));
            }
        }
    }

    /// Waits for an event of this kind, skipping others (and echoing marks).
    pub async fn wait_for(&mut self, event: &str) -> Value {
        loop {
            let message = self
                .next()
                .await
                .unwrap_or_else(|| panic!("no {event} from the engine"));
            if message["event"] == event {
                return message;
            }
        }
    }

    /// The engine closed the stream (ending the Twilio call).
    pub async fn closed(&mut self) -> Option<CloseReason> {
        self.peer.closed().await
    }
}

/// Sends one Twilio event with the stream's next sequence number.
fn twilio_event(
    out: &mpsc::UnboundedSender<Message>,
    sequence: &AtomicU64,
    stream_sid: &str,
    event: &str,
    body: Value,
) {
    let sequence = sequence.fetch_add(1, Ordering::SeqCst) + 1;
    let mut message = json!({
        "event": event,
        "sequenceNumber": sequence.to_string(),
        "streamSid": stream_sid,
    });
    message[event] = body;
    let _ = out.send(Message::Text(message.to_string().into()));
}

// ---- Play-out-accurate Twilio ----------------------------------------------------

/// Twilio's playback buffer as `TwilioStream::play_out` models it: audio plays at
/// 8 bytes/ms from when it arrives, queued back to back; a mark is echoed when the
/// audio queued before it has played; `clear` drops unplayed audio and echoes every
/// pending mark at once.
#[derive(Default)]
struct PlayOut {
    /// Audio scheduled to play: (start, length), back to back.
    spans: Vec<(Instant, Duration)>,
    /// Marks waiting for their audio: (name, when that audio has played).
    marks: VecDeque<(String, Instant)>,
    /// Echoed marks with the audio played (ms) when they were echoed.
    echoed: Vec<(String, u64)>,
    /// Bytes of each `media` received, in order.
    media: Vec<usize>,
}

impl PlayOut {
    fn lock(state: &Mutex<PlayOut>) -> MutexGuard<'_, PlayOut> {
        state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// When everything queued has played (`now` if nothing is queued).
    fn idle_at(&self, now: Instant) -> Instant {
        self.spans
            .last()
            .map_or(now, |(start, length)| *start + *length)
            .max(now)
    }

    fn played_ms(&self, now: Instant) -> u64 {
        let played: Duration = self
            .spans
            .iter()
            .map(|(start, length)| now.saturating_duration_since(*start).min(*length))
            .sum();
        played.as_millis() as u64
    }

    /// Takes in one message from the engine.
    fn engine_sent(&mut self, message: &Value, now: Instant) {
        match message["event"].as_str() {
            Some("media") => {
                let bytes = message["media"]["payload"]
                    .as_str()
                    .and_then(|payload| STANDARD.decode(payload).ok())
                    .map_or(0, |audio| audio.len());
                let start = self.idle_at(now);
                self.spans
                    .push((start, Duration::from_micros(bytes as u64 * 125)));
                self.media.push(bytes);
            }
            Some("mark") => {
                let name = message["mark"]["name"].as_str().unwrap_or_default();
                let due = self.idle_at(now);
                self.marks.push_back((name.to_owned(), due));
            }
            Some("clear") => {
                self.spans.retain(|(start, _)| *start < now);
                if let Some((start, length)) = self.spans.last_mut() {
                    *length = (*length).min(now - *start);
                }
                for (_, due) in &mut self.marks {
                    *due = now;
                }
            }
            _ => {}
        }
    }

    /// Marks whose audio has played, oldest first.
    fn due_marks(&mut self, now: Instant) -> Vec<String> {
        let mut due = Vec::new();
        while self.marks.front().is_some_and(|(_, at)| *at <= now) {
            if let Some((name, _)) = self.marks.pop_front() {
                self.echoed.push((name.clone(), self.played_ms(now)));
                due.push(name);
            }
        }
        due
    }
}

impl TwilioStream {
    /// Turns on play-out-accurate marks: from now on a background task echoes each
    /// mark when the audio queued before it has played (or at once on `clear`),
    /// whether or not the test is reading; `next` still yields every engine message
    /// in order and no longer echoes marks itself.
    pub fn play_out(&mut self) {
        let state = Arc::new(Mutex::new(PlayOut::default()));
        self.play_out = Some(state.clone());
        let (forward, text) = mpsc::unbounded_channel();
        let mut engine = std::mem::replace(&mut self.peer.text, text);
        let out = self.peer.out.clone();
        let sequence = self.sequence.clone();
        let stream_sid = self.stream_sid.clone();
        actix_rt::spawn(async move {
            loop {
                let next_due = PlayOut::lock(&state).marks.front().map(|(_, at)| *at);
                tokio::select! {
                    message = engine.recv() => {
                        let Some(message) = message else { break };
                        PlayOut::lock(&state).engine_sent(&message, Instant::now());
                        let _ = forward.send(message);
                    }
                    _ = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {}
                }
                let due = PlayOut::lock(&state).due_marks(Instant::now());
                for name in due {
                    let body = json!({ "name": name });
                    twilio_event(&out, &sequence, &stream_sid, "mark", body);
                }
            }
        });
    }

    fn play_out_state(&self) -> MutexGuard<'_, PlayOut> {
        let state = self.play_out.as_ref().expect("play_out() was called");
        PlayOut::lock(state)
    }

    /// Audio the caller has heard so far (ms).
    pub fn played_ms(&self) -> u64 {
        self.play_out_state().played_ms(Instant::now())
    }

    /// Marks echoed so far, with the audio played (ms) when each was echoed.
    pub fn echoed_marks(&self) -> Vec<(String, u64)> {
        self.play_out_state().echoed.clone()
    }

    /// Bytes of each `media` the engine sent since `play_out`, in order.
    pub fn media_sizes(&self) -> Vec<usize> {
        self.play_out_state().media.clone()
    }
}

/// The caller and `phone` hear each other, byte-exact, both ways (what the caller
/// heard before — ringback, hold audio — is skipped).
pub async fn assert_bridged(twilio: &mut TwilioStream, phone: &mut Softphone, tag: u8) {
    for seq in 0..5 {
        twilio.send_media(&frame(tag, seq));
    }
    for seq in 0..5 {
        assert_eq!(
            phone.audio().await,
            frame(tag, seq),
            "caller → agent, frame {seq}"
        );
    }
    for seq in 0..5 {
        phone.send_audio(frame(tag ^ 0xFF, seq));
    }
    twilio.skip_to_media(&frame(tag ^ 0xFF, 0)).await;
    for seq in 1..5 {
        assert_eq!(
            twilio.next_media().await,
            frame(tag ^ 0xFF, seq),
            "agent → caller, frame {seq}"
        );
    }
}

// ---- phone numbers (issue 5) ---------------------------------------------------

/// What a run of the real `switchboard` binary printed.
pub struct CliRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

impl TestApp {
    /// Any method, a JSON body or none, as the admin; the answer as JSON (`Null`
    /// if it is not).
    pub async fn send_json(
        &self,
        method: actix_web::http::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        self.send_json_as(method, path, body, Some(ADMIN_TOKEN))
            .await
    }

    /// [`TestApp::send_json`] with another bearer token (a user's API key), or
    /// none.
    pub async fn send_json_as(
        &self,
        method: actix_web::http::Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.address));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let mut res = match body {
            Some(body) => req.send_json(body).await,
            None => req.send().await,
        }
        .expect("the request reaches the engine");
        let bytes = res.body().limit(256 << 20).await.expect("body");
        (
            res.status(),
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// `POST /api/numbers/sync`.
    pub async fn sync_numbers(&self, body: Value) -> (StatusCode, Value) {
        self.send_json(
            actix_web::http::Method::POST,
            "/api/numbers/sync",
            Some(&body),
        )
        .await
    }

    /// `GET /api/directory?…`, which must succeed.
    pub async fn directory(&self, query: &str) -> Vec<Value> {
        let (status, body) = self.get_json(&format!("/api/directory{query}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body.as_array().cloned().unwrap_or_default()
    }

    /// Runs the real `switchboard` binary with `args` against this engine
    /// (`SWITCHBOARD_URL`, `SWITCHBOARD_ADMIN_TOKEN`), off the actix thread so
    /// the engine's actors keep running meanwhile.
    pub async fn cli(&self, args: &[&str]) -> CliRun {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let url = self.address.clone();
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
                .args(&args)
                .env("SWITCHBOARD_URL", url)
                .env("SWITCHBOARD_ADMIN_TOKEN", ADMIN_TOKEN)
                .output()
        })
        .await
        .expect("the CLI thread")
        .expect("the switchboard binary runs");
        CliRun {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// A loopback port free now, for a process the test starts (which binds it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("bound")
        .port()
}

/// The journal spill file of an engine on `database_url` (per node): in the temp
/// folder, so that an engine restarted on the same database finds it.
pub fn spill_path_for(database_url: &str) -> String {
    let base = database_url.split('?').next().unwrap_or(database_url);
    let name: String = base
        .rsplit('/')
        .next()
        .unwrap_or(base)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    std::env::temp_dir()
        .join(format!("sb_spill_{name}_{{node_id}}.spill"))
        .display()
        .to_string()
}

/// An engine in its own actix `System` on its own thread, which [`Crash::crash`]
/// stops dead: no graceful shutdown, no journal flush — as if the process died.
pub struct Crash {
    system: actix_rt::System,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Crash {
    pub fn crash(mut self) {
        self.system.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub async fn spawn_crashable_app_on(
    database_url: String,
    configure: impl FnOnce(&mut Settings),
) -> (TestApp, Crash) {
    let mut settings = Settings::defaults();
    settings.bind = "127.0.0.1:0".into();
    settings.database_url = database_url.clone();
    settings.admin_token = Some(SecretString::from(ADMIN_TOKEN));
    settings.twilio.auth_token = Some(SecretString::from(TWILIO_TOKEN));
    settings.workers = 1;
    settings.journal.spill_path = spill_path_for(&database_url);
    configure(&mut settings);
    let (started, ready) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let system = actix_rt::System::new();
        system.block_on(async move {
            let app = Application::build(settings)
                .await
                .expect("the engine starts");
            let _ = started.send((app.port(), app.handle(), actix_rt::System::current()));
            actix_rt::spawn(async move {
                let _ = app.run_until_stopped().await;
            });
        });
        let _ = system.run();
    });
    let (port, server, system) = tokio::task::spawn_blocking(move || ready.recv())
        .await
        .expect("the starter thread")
        .expect("the engine started");
    let (_done, stopped) = tokio::sync::oneshot::channel();
    let app = TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        database_url,
        server,
        stopped,
        client: awc::Client::builder().timeout(PATIENCE).finish(),
    };
    (
        app,
        Crash {
            system,
            thread: Some(thread),
        },
    )
}
