//! A fake OpenAI Realtime server (GA protocol, PROTOCOLS.md §6) for the AI-agent
//! relay's tests: an actix-web + actix-ws server on 127.0.0.1:0 that plays a
//! [`Script`]. "Realtime API reference" below is OpenAI's published reference:
//! https://platform.openai.com/docs/api-reference/realtime-server-events (server
//! events: `response.done`, `conversation.item.input_audio_transcription.completed`,
//! `error`) and https://platform.openai.com/docs/api-reference/realtime-client-events.
//!
//! # Public API
//!
//! * [`FakeOpenAi::start`]`(script)` / [`FakeOpenAi::start_with`]`(script, mode)`;
//!   [`url`](FakeOpenAi::url) (`ws://127.0.0.1:PORT/v1/realtime`, the relay appends
//!   `?model=…`), [`api_key`](FakeOpenAi::api_key) (the bearer it requires).
//! * What it saw: [`sessions`](FakeOpenAi::sessions),
//!   [`client_events`](FakeOpenAi::client_events),
//!   [`wait_for_client_event`](FakeOpenAi::wait_for_client_event) (the *n*-th call
//!   for a type returns the *n*-th event of that type, waiting up to `PATIENCE`),
//!   [`session_config`](FakeOpenAi::session_config) (the last `session.update`'s
//!   `session`), [`appended_bytes`](FakeOpenAi::appended_bytes),
//!   [`sent_audio`](FakeOpenAi::sent_audio) (audio bytes sent per assistant item),
//!   [`tool_outputs`](FakeOpenAi::tool_outputs).
//! * Faults: [`send_raw`](FakeOpenAi::send_raw) (a raw text frame),
//!   [`Mode::SlowHandshake`] (the HTTP 101 comes late),
//!   [`drop_session`](FakeOpenAi::drop_session) (TCP close, no close frame), and
//!   [`Mode`].
//!
//! # Protocol subset
//!
//! * Handshake: `Authorization: Bearer <api_key>` (else 401 `invalid_api_key`) and
//!   a `model` query parameter (else 400 `missing_required_parameter`); other query
//!   parameters are ignored. First event `session.created`.
//! * `session.update` → `session.updated` with the merged session (deep merge);
//!   `session.type` is required, as in GA (else `error`,
//!   `missing_required_parameter`).
//! * `input_audio_buffer.append`: μ-law bytes; silence is `0xFF` or `0x7F`. While
//!   idle, the first append holding a non-silent byte → `speech_started`
//!   (`audio_start_ms` = audio position at the start of that append, 8 bytes/ms).
//!   Once ≥ 300 ms of wholly silent appends follow → `speech_stopped`
//!   (`audio_end_ms` = position where the silence began), `committed`,
//!   `conversation.item.added` (user message), `…input_audio_transcription.completed`
//!   (`transcript` = the turn's `heard`), then the turn's reply (none while the
//!   session's `turn_detection.create_response` is `false`). No turns left: no
//!   transcription and no reply (logged). `input_audio_buffer.commit` ends a turn the same way; `.clear` →
//!   `input_audio_buffer.cleared`.
//! * A response follows §6.4: `response.created`, `rate_limits.updated`, then per
//!   item `response.output_item.added`, `conversation.item.added`, and for audio
//!   `response.content_part.added`, `response.output_audio.delta` (each `delta_ms`
//!   of audio, `delta_ms * 8` bytes of `fill`) interleaved with
//!   `response.output_audio_transcript.delta` (the words split over at most
//!   [`TRANSCRIPT_PIECES`] pieces), `response.output_audio.done`,
//!   `response.output_audio_transcript.done`, `response.content_part.done`; for a
//!   call `response.function_call_arguments.delta` / `.done`; then
//!   `response.output_item.done`, `conversation.item.done`; finally `response.done`.
//!   With `pace`, each audio delta after the first waits `pace`.
//! * Barge-in: `speech_started` or `response.cancel` while a response is still
//!   being sent → `late_deltas` more audio deltas of it, then `response.done` with
//!   `status:"cancelled"`, `status_details.reason` `turn_detected` /
//!   `client_cancelled`. `response.cancel` with nothing active → `error`
//!   `response_cancel_not_active`; `response.create` while one is active → `error`
//!   `conversation_already_has_active_response`.
//! * `response.create`: the first one plays `Script::greeting`; after a
//!   `function_call_output` for the pending call, the call's `after_output`;
//!   after a response that ended `failed`/`incomplete` ([`Reply::ends`]), its
//!   [`Reply::on_retry`]; otherwise an empty completed response.
//! * A reply that [`ends`](Reply::ends) other than `completed` sends its items,
//!   then `response.done` with that `status` and `status_details`
//!   `{type, reason?, error?}` (Realtime API reference, server events,
//!   `response.done`: `status` is `completed`, `cancelled`, `failed` or
//!   `incomplete`; `status_details.reason` is `turn_detected`/`client_cancelled`
//!   for cancelled, `max_output_tokens`/`content_filter` for incomplete;
//!   `status_details.error` `{type, code}` describes a failure).
//! * `conversation.item.truncate`: `audio_end_ms` ≤ audio sent for the item
//!   (bytes / 8) → `conversation.item.truncated`; beyond → `error` (param
//!   `audio_end_ms`); unknown item → `error` (`item_truncate_invalid_item_id`).
//! * `conversation.item.create`: `function_call_output` is recorded (unknown
//!   `call_id` → `error`); a `message` item's content must suit its role, as the
//!   GA item schema says (`system`: `input_text`; `user`: `input_text`,
//!   `input_audio`, `input_image`; `assistant`: `output_text`, `output_audio`;
//!   beta's `text` is not accepted) — else `error` `invalid_value` (param
//!   `item.content[i].type`, or `item.role`); any accepted item →
//!   `conversation.item.added`.
//! * Malformed JSON or an unknown client event → `error` (`invalid_request_error`),
//!   the session stays open, as OpenAI does.
//!
//! # Deterministic usage (`response.done.response.usage`)
//!
//! For the *n*-th response of a session (n = 0, 1, …):
//! * `input_token_details.audio_tokens` = ceil(caller speech ms of the turn that
//!   triggered it / 100) (speech ms = `audio_end_ms − audio_start_ms`; 0 for
//!   responses asked with `response.create`);
//! * `input_token_details.text_tokens` = 100 + 10·n;
//! * `cached_tokens` = 0 when n = 0, else 64 (all text:
//!   `cached_tokens_details.text_tokens` = 64);
//! * `output_token_details.audio_tokens` = ceil(ms of audio actually sent for the
//!   response / 50) (= ceil(`audio_ms` / 50) when it completes);
//! * `output_token_details.text_tokens` = words in the `say` text (0 without one);
//! * `input_tokens`, `output_tokens` = the sums of their details; `total_tokens` =
//!   both.
//!
//! # Deterministic transcription usage
//!
//! `conversation.item.input_audio_transcription.completed` carries `usage` as the
//! Realtime API reference has it: for `whisper-1` (the session's
//! `audio.input.transcription.model`) `{"type":"duration","seconds"}` with
//! seconds = ceil(speech ms / 1000); for any other model `{"type":"tokens",
//! "input_tokens","input_token_details":{"text_tokens":0,"audio_tokens"},
//! "output_tokens","total_tokens"}` with audio tokens = ceil(speech ms / 100) and
//! output tokens = words in `heard`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use actix_ws::{CloseCode, CloseReason, Message, MessageStream, Session};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::helpers::PATIENCE;

/// The bearer the fake requires.
pub const API_KEY: &str = "sk-test-fake";
/// Silence that ends a caller's turn.
pub const SILENCE_TO_STOP_MS: usize = 300;
/// At most this many `response.output_audio_transcript.delta` per item.
pub const TRANSCRIPT_PIECES: usize = 3;

// ---- Script ------------------------------------------------------------------

/// What the fake model says: a greeting and one reply per caller turn.
#[derive(Clone, Debug)]
pub struct Script {
    /// Answers the client's first `response.create`.
    pub greeting: Option<Reply>,
    /// Each caller turn, in order.
    pub turns: Vec<Turn>,
    /// Audio per `response.output_audio.delta`.
    pub delta_ms: u32,
    /// Delay between deltas; `None` sends a response at once (OpenAI generates
    /// faster than real time).
    pub pace: Option<Duration>,
    /// On barge-in, deltas of the interrupted response still sent before its
    /// cancelled `response.done`.
    pub late_deltas: usize,
}

#[derive(Clone, Debug)]
pub struct Turn {
    /// The caller's transcript.
    pub heard: String,
    pub reply: Reply,
}

#[derive(Clone, Debug, Default)]
pub struct Reply {
    /// An audio item.
    pub say: Option<Say>,
    /// Then a function_call item in the same response.
    pub call: Option<ToolCall>,
    /// Played when the client sends the call's output and `response.create`.
    pub after_output: Option<Box<Reply>>,
    /// The response ends with this `status` and `status_details` instead of
    /// `completed`.
    pub ends: Option<(String, Value)>,
    /// Played on the next `response.create` after this reply ended as `ends`.
    pub on_retry: Option<Box<Reply>>,
}

#[derive(Clone, Debug)]
pub struct Say {
    pub text: String,
    pub audio_ms: u32,
    /// The audio is this byte repeated, so tests can tell replies apart.
    pub fill: u8,
}

#[derive(Clone, Debug)]
pub struct ToolCall {
    pub name: String,
    /// Raw, possibly invalid JSON on purpose.
    pub arguments: String,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            greeting: None,
            turns: Vec::new(),
            delta_ms: 100,
            pace: None,
            late_deltas: 0,
        }
    }
}

impl Script {
    pub fn new() -> Script {
        Script::default()
    }

    pub fn greeting(mut self, reply: Reply) -> Script {
        self.greeting = Some(reply);
        self
    }

    /// A caller turn: when the caller has said `heard`, the model answers `reply`.
    pub fn turn(mut self, heard: &str, reply: Reply) -> Script {
        self.turns.push(Turn {
            heard: heard.to_owned(),
            reply,
        });
        self
    }

    pub fn delta_ms(mut self, delta_ms: u32) -> Script {
        self.delta_ms = delta_ms;
        self
    }

    pub fn paced(mut self, pace: Duration) -> Script {
        self.pace = Some(pace);
        self
    }

    pub fn late_deltas(mut self, late_deltas: usize) -> Script {
        self.late_deltas = late_deltas;
        self
    }
}

impl Reply {
    /// An audio item: `audio_ms` of `fill` bytes, transcript `text`.
    pub fn say(text: &str, audio_ms: u32, fill: u8) -> Reply {
        Reply {
            say: Some(Say {
                text: text.to_owned(),
                audio_ms,
                fill,
            }),
            ..Reply::default()
        }
    }

    /// A response with only a function call.
    pub fn call(name: &str, arguments: &str) -> Reply {
        Reply::default().then_call(name, arguments)
    }

    /// Adds a function call after the audio item.
    pub fn then_call(mut self, name: &str, arguments: &str) -> Reply {
        self.call = Some(ToolCall {
            name: name.to_owned(),
            arguments: arguments.to_owned(),
        });
        self
    }

    /// What the model says once the call's output is back.
    pub fn after(mut self, reply: Reply) -> Reply {
        self.after_output = Some(Box::new(reply));
        self
    }

    /// The response ends `failed` with `status_details.error` `{type, code}`.
    pub fn fails(mut self, error_type: &str, code: &str) -> Reply {
        let details = json!({
            "type": "failed",
            "error": { "type": error_type, "code": code },
        });
        self.ends = Some(("failed".to_owned(), details));
        self
    }

    /// The response ends `incomplete` with this `status_details` (`type`
    /// `incomplete` is added).
    pub fn incomplete(mut self, mut details: Value) -> Reply {
        details["type"] = json!("incomplete");
        self.ends = Some(("incomplete".to_owned(), details));
        self
    }

    /// What the next `response.create` (the client's retry) plays.
    pub fn on_retry(mut self, reply: Reply) -> Reply {
        self.on_retry = Some(Box::new(reply));
        self
    }
}

/// How the fake misbehaves.
#[derive(Clone, Debug, Default)]
pub enum Mode {
    #[default]
    Normal,
    /// Answers the upgrade with this HTTP status and OpenAI's error JSON.
    RejectHandshake(u16),
    /// `session.created`, then an `error` for `session.update`, then a close frame
    /// (1008).
    SessionError,
    /// Accepts the WebSocket and never sends anything.
    Mute,
    /// Normal, then a TCP close without a close frame after that many appends.
    DropAfterAppends(usize),
    /// Reads the upgrade request, then waits this long before answering it (a
    /// slow or overloaded edge); normal after that.
    SlowHandshake(Duration),
}

// ---- The handle ----------------------------------------------------------------

/// A running fake; see the module doc.
pub struct FakeOpenAi {
    port: u16,
    shared: Arc<Mutex<Shared>>,
    /// How many events of each type `wait_for_client_event` already returned.
    waited: Mutex<HashMap<String, usize>>,
}

/// What the sessions record, read by the test.
#[derive(Default)]
struct Shared {
    sessions: usize,
    /// Sessions the client ended with a close frame.
    closed_by_client: usize,
    client_events: Vec<Value>,
    appended_bytes: usize,
    /// Audio bytes sent per assistant item, in order of the items.
    sent_audio: Vec<(String, usize)>,
    tool_outputs: Vec<(String, String)>,
    session_config: Option<Value>,
    /// Ids are unique across sessions (`sent_audio` is keyed by item id).
    ids: u64,
    /// The live (latest) session's command line.
    live: Option<mpsc::UnboundedSender<Command>>,
    /// Earlier sessions' command lines, kept so that they stay open (a session
    /// ends when its line is dropped).
    earlier: Vec<mpsc::UnboundedSender<Command>>,
}

enum Command {
    Raw(String),
    Drop,
}

/// What every connection's handler shares.
#[derive(Clone)]
struct Server {
    script: Script,
    mode: Mode,
    shared: Arc<Mutex<Shared>>,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl FakeOpenAi {
    pub async fn start(script: Script) -> FakeOpenAi {
        FakeOpenAi::start_with(script, Mode::Normal).await
    }

    pub async fn start_with(script: Script, mode: Mode) -> FakeOpenAi {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let server = Server {
            script,
            mode,
            shared: shared.clone(),
        };
        let http = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(server.clone()))
                .route("/v1/realtime", web::get().to(realtime))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("the fake OpenAI binds");
        let port = http.addrs()[0].port();
        actix_rt::spawn(http.run());
        FakeOpenAi {
            port,
            shared,
            waited: Mutex::new(HashMap::new()),
        }
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/v1/realtime", self.port)
    }

    pub fn api_key(&self) -> &str {
        API_KEY
    }

    /// WebSocket sessions accepted so far.
    pub fn sessions(&self) -> usize {
        lock(&self.shared).sessions
    }

    /// Sessions the client ended with a WebSocket close frame (not a bare TCP close).
    pub fn closed_by_client(&self) -> usize {
        lock(&self.shared).closed_by_client
    }

    /// Every client event of every session, in order.
    pub fn client_events(&self) -> Vec<Value> {
        lock(&self.shared).client_events.clone()
    }

    /// The next client event of this `type` not yet returned by this method;
    /// panics after `PATIENCE`.
    pub async fn wait_for_client_event(&self, kind: &str) -> Value {
        let index = {
            let mut waited = self.waited.lock().unwrap_or_else(|p| p.into_inner());
            let seen = waited.entry(kind.to_owned()).or_default();
            *seen += 1;
            *seen - 1
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            let found = lock(&self.shared)
                .client_events
                .iter()
                .filter(|e| e["type"] == kind)
                .nth(index)
                .cloned();
            if let Some(event) = found {
                return event;
            }
            if Instant::now() > deadline {
                panic!(
                    "no client event {kind} (#{index}); got {:?}",
                    self.client_events()
                        .iter()
                        .map(|e| e["type"].clone())
                        .collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The last `session.update`'s `session`.
    pub fn session_config(&self) -> Option<Value> {
        lock(&self.shared).session_config.clone()
    }

    /// Decoded audio bytes received via `input_audio_buffer.append`.
    pub fn appended_bytes(&self) -> usize {
        lock(&self.shared).appended_bytes
    }

    /// Audio bytes sent per assistant item (late deltas included).
    pub fn sent_audio(&self) -> Vec<(String, usize)> {
        lock(&self.shared).sent_audio.clone()
    }

    /// `function_call_output` items received: (call_id, output).
    pub fn tool_outputs(&self) -> Vec<(String, String)> {
        lock(&self.shared).tool_outputs.clone()
    }

    /// Injects a raw text frame into the live session.
    pub fn send_raw(&self, text: &str) {
        self.command(Command::Raw(text.to_owned()));
    }

    /// Closes the live session abruptly: TCP close, no close frame.
    pub fn drop_session(&self) {
        self.command(Command::Drop);
    }

    fn command(&self, command: Command) {
        let live = lock(&self.shared).live.clone();
        live.expect("a live session")
            .send(command)
            .unwrap_or_else(|_| panic!("the live session has ended"));
    }
}

// ---- The handshake -------------------------------------------------------------

fn openai_error(status: u16, kind: &str, code: Option<&str>, message: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status).expect("an HTTP status");
    HttpResponse::build(status).json(json!({
        "error": { "type": kind, "code": code, "message": message, "param": null }
    }))
}

/// OpenAI's error body for a status it answers with.
fn rejection(status: u16) -> HttpResponse {
    match status {
        401 => openai_error(
            401,
            "invalid_request_error",
            Some("invalid_api_key"),
            "Incorrect API key provided: sk-wrong. You can find your API key at https://platform.openai.com/account/api-keys.",
        ),
        403 => openai_error(
            403,
            "invalid_request_error",
            Some("model_not_found"),
            "Project does not have access to model gpt-realtime",
        ),
        429 => openai_error(
            429,
            "insufficient_quota",
            Some("insufficient_quota"),
            "You exceeded your current quota, please check your plan and billing details.",
        ),
        s if s >= 500 => openai_error(
            s,
            "server_error",
            None,
            "The server had an error while processing your request.",
        ),
        s => openai_error(s, "invalid_request_error", None, "Request rejected."),
    }
}

async fn realtime(
    req: HttpRequest,
    body: web::Payload,
    server: web::Data<Server>,
) -> actix_web::Result<HttpResponse> {
    if let Mode::RejectHandshake(status) = server.mode {
        return Ok(rejection(status));
    }
    if let Mode::SlowHandshake(delay) = server.mode {
        tokio::time::sleep(delay).await;
    }
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(API_KEY) {
        return Ok(rejection(401));
    }
    let query: HashMap<String, String> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let Some(model) = query.get("model").cloned() else {
        return Ok(openai_error(
            400,
            "invalid_request_error",
            Some("missing_required_parameter"),
            "Missing required parameter: 'model'.",
        ));
    };
    let (response, ws, stream) = actix_ws::handle(&req, body)?;
    let (commands, command_rx) = mpsc::unbounded_channel();
    {
        let mut shared = lock(&server.shared);
        shared.sessions += 1;
        if let Some(earlier) = shared.live.replace(commands) {
            shared.earlier.push(earlier);
        }
    }
    let session = RealtimeSession::new(&server, &model, ws);
    actix_rt::spawn(session.run(stream.max_frame_size(16 << 20), command_rx));
    Ok(response)
}

// ---- A session -------------------------------------------------------------------

/// A response being sent.
struct Active {
    id: String,
    /// What is left to send, in order.
    queue: VecDeque<Out>,
    /// Audio deltas sent so far (pacing applies from the second).
    deltas_sent: usize,
    next_at: Instant,
    /// Output items for `response.done`.
    output: Vec<Value>,
    /// For usage.
    input_audio_ms: usize,
    text_words: usize,
    audio_bytes_sent: usize,
    /// Tool call whose output the next `response.create` waits for.
    pending: Option<(String, Reply)>,
    /// Ends other than `completed`, and what a retry plays.
    ends: Option<(String, Value)>,
    on_retry: Option<Reply>,
}

enum Out {
    Event(Value),
    Audio { item_id: String, event: Value },
    Done,
}

struct RealtimeSession {
    script: Script,
    mode: Mode,
    shared: Arc<Mutex<Shared>>,
    ws: Option<Session>,
    session: Value,
    // VAD
    input_bytes: usize,
    speech: Option<Speech>,
    turn: usize,
    last_user_item: Option<String>,
    appends: usize,
    // responses
    responses: usize,
    greeted: bool,
    active: Option<Active>,
    /// A function call's (call_id, reply after its output).
    pending: Option<(String, Reply)>,
    /// Its output arrived: the next `response.create` plays it.
    output_ready: bool,
    /// The last response did not complete: the next `response.create` plays this.
    retry: Option<Reply>,
    /// Audio bytes sent per assistant item of this session.
    items: HashMap<String, usize>,
}

struct Speech {
    item_id: String,
    start_byte: usize,
    /// Input position where the current silent run began.
    voice_end: usize,
    silent: usize,
}

fn is_silent(byte: u8) -> bool {
    byte == 0xFF || byte == 0x7F
}

fn ceil_div(n: usize, d: usize) -> usize {
    n.div_ceil(d)
}

/// `text` in at most `pieces` pieces that concatenate back to it.
fn split_text(text: &str, pieces: usize) -> Vec<String> {
    let words: Vec<&str> = text.split_inclusive(' ').collect();
    if words.is_empty() {
        return Vec::new();
    }
    let per = ceil_div(words.len(), pieces.max(1));
    words.chunks(per).map(|chunk| chunk.concat()).collect()
}

impl RealtimeSession {
    fn new(server: &Server, model: &str, ws: Session) -> RealtimeSession {
        let mut this = RealtimeSession {
            script: server.script.clone(),
            mode: server.mode.clone(),
            shared: server.shared.clone(),
            ws: Some(ws),
            session: Value::Null,
            input_bytes: 0,
            speech: None,
            turn: 0,
            last_user_item: None,
            appends: 0,
            responses: 0,
            greeted: false,
            active: None,
            pending: None,
            output_ready: false,
            retry: None,
            items: HashMap::new(),
        };
        this.session = json!({
            "type": "realtime",
            "object": "realtime.session",
            "id": this.id("sess"),
            "model": model,
            "output_modalities": ["audio"],
            "instructions": "",
            "tools": [],
            "tool_choice": "auto",
            "max_output_tokens": "inf",
            "tracing": null,
            "prompt": null,
            "expires_at": 0,
            "audio": {
                "input": {
                    "format": { "type": "audio/pcm", "rate": 24000 },
                    "transcription": null,
                    "noise_reduction": null,
                    "turn_detection": {
                        "type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                        "silence_duration_ms": 200, "create_response": true,
                        "interrupt_response": true, "idle_timeout_ms": null
                    }
                },
                "output": { "format": { "type": "audio/pcm", "rate": 24000 }, "voice": "alloy", "speed": 1.0 }
            },
        });
        this
    }

    fn id(&mut self, prefix: &str) -> String {
        let mut shared = lock(&self.shared);
        shared.ids += 1;
        format!("{prefix}_{:04}", shared.ids)
    }

    async fn run(
        mut self,
        mut stream: MessageStream,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        if !matches!(self.mode, Mode::Mute) {
            let created = json!({ "type": "session.created", "session": self.session.clone() });
            self.send(created).await;
        }
        while self.ws.is_some() {
            let paced = self.active.as_ref().map(|a| a.next_at);
            tokio::select! {
                message = stream.recv() => match message {
                    Some(Ok(Message::Text(text))) => self.on_text(&text).await,
                    Some(Ok(Message::Ping(bytes))) => {
                        if let Some(ws) = self.ws.as_mut() {
                            let _ = ws.pong(&bytes).await;
                        }
                    }
                    Some(Ok(Message::Close(_))) => {
                        lock(&self.shared).closed_by_client += 1;
                        break;
                    }
                    Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
                command = commands.recv() => match command {
                    Some(Command::Raw(text)) => {
                        if let Some(ws) = self.ws.as_mut() {
                            let _ = ws.text(text).await;
                        }
                    }
                    Some(Command::Drop) | None => self.ws = None,
                },
                _ = tokio::time::sleep_until(paced.unwrap_or_else(Instant::now)), if paced.is_some() => {
                    self.pump().await;
                }
            }
        }
        // Dropping the session and the stream ends the response body: the
        // connection closes without a close frame.
        drop(stream);
    }

    async fn send(&mut self, mut event: Value) {
        event["event_id"] = json!(self.id("event"));
        if let Some(ws) = self.ws.as_mut() {
            if ws.text(event.to_string()).await.is_err() {
                self.ws = None;
            }
        }
    }

    async fn error(&mut self, code: &str, message: &str, param: Option<&str>, client: &Value) {
        let error = json!({
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "code": code,
                "message": message,
                "param": param,
                "event_id": client.get("event_id"),
            }
        });
        self.send(error).await;
    }

    async fn on_text(&mut self, text: &str) {
        let Ok(event) = serde_json::from_str::<Value>(text) else {
            lock(&self.shared)
                .client_events
                .push(Value::String(text.to_owned()));
            if !matches!(self.mode, Mode::Mute) {
                let message = "We could not parse the JSON body of your request.";
                self.error("invalid_json", message, None, &Value::Null)
                    .await;
            }
            return;
        };
        lock(&self.shared).client_events.push(event.clone());
        if matches!(self.mode, Mode::Mute) {
            return;
        }
        let kind = event["type"].as_str().unwrap_or_default().to_owned();
        match kind.as_str() {
            "session.update" => self.on_session_update(&event).await,
            "input_audio_buffer.append" => self.on_append(&event).await,
            "input_audio_buffer.commit" => {
                if self.speech.is_some() {
                    self.end_turn().await;
                } else {
                    let message = "Error committing input audio buffer: buffer too small.";
                    self.error("input_audio_buffer_commit_empty", message, None, &event)
                        .await;
                }
            }
            "input_audio_buffer.clear" => {
                self.speech = None;
                self.send(json!({ "type": "input_audio_buffer.cleared" }))
                    .await;
            }
            "response.create" => self.on_response_create(&event).await,
            "response.cancel" => {
                if self.active.is_some() {
                    self.cancel("client_cancelled").await;
                } else {
                    let message = "Cancellation failed: no active response found";
                    self.error("response_cancel_not_active", message, None, &event)
                        .await;
                }
            }
            "conversation.item.truncate" => self.on_truncate(&event).await,
            "conversation.item.create" => self.on_item_create(&event).await,
            "conversation.item.delete" => {
                let item_id = event["item_id"].clone();
                let deleted = json!({ "type": "conversation.item.deleted", "item_id": item_id });
                self.send(deleted).await;
            }
            other => {
                let message = format!(
                    "Invalid value: '{other}'. Supported values are: 'session.update', \
                     'input_audio_buffer.append', 'input_audio_buffer.commit', \
                     'input_audio_buffer.clear', 'conversation.item.create', \
                     'conversation.item.truncate', 'conversation.item.delete', \
                     'response.create', and 'response.cancel'."
                );
                self.error("invalid_value", &message, Some("type"), &event)
                    .await;
            }
        }
    }

    async fn on_session_update(&mut self, event: &Value) {
        let update = event["session"].clone();
        lock(&self.shared).session_config = Some(update.clone());
        if matches!(self.mode, Mode::SessionError) {
            let message = "Invalid value: 'audio/wav'. Supported values are: 'audio/pcm', 'audio/pcmu', and 'audio/pcma'.";
            self.error(
                "invalid_request_error",
                message,
                Some("session.audio.input.format.type"),
                event,
            )
            .await;
            if let Some(ws) = self.ws.take() {
                let reason = CloseReason {
                    code: CloseCode::Policy,
                    description: Some("session error".into()),
                };
                let _ = ws.close(Some(reason)).await;
            }
            return;
        }
        if update["type"] != "realtime" {
            let message = "Missing required parameter: 'session.type'.";
            self.error(
                "missing_required_parameter",
                message,
                Some("session.type"),
                event,
            )
            .await;
            return;
        }
        merge(&mut self.session, &update);
        let updated = json!({ "type": "session.updated", "session": self.session.clone() });
        self.send(updated).await;
    }

    async fn on_append(&mut self, event: &Value) {
        let audio = event["audio"]
            .as_str()
            .and_then(|b64| STANDARD.decode(b64).ok());
        let Some(audio) = audio else {
            let message = "Invalid 'audio'. Expected base64-encoded audio bytes.";
            self.error("invalid_value", message, Some("audio"), event)
                .await;
            return;
        };
        lock(&self.shared).appended_bytes += audio.len();
        let start = self.input_bytes;
        self.input_bytes += audio.len();
        let silent = audio.iter().copied().all(is_silent);
        match self.speech.as_mut() {
            None if !silent => {
                let item_id = self.id("item");
                self.speech = Some(Speech {
                    item_id: item_id.clone(),
                    start_byte: start,
                    voice_end: self.input_bytes,
                    silent: 0,
                });
                let started = json!({
                    "type": "input_audio_buffer.speech_started",
                    "audio_start_ms": start / 8,
                    "item_id": item_id,
                });
                self.send(started).await;
                if self.active.is_some() {
                    self.cancel("turn_detected").await;
                }
            }
            None => {}
            Some(speech) if silent => {
                speech.silent += audio.len();
                if speech.silent >= SILENCE_TO_STOP_MS * 8 {
                    self.end_turn().await;
                }
            }
            Some(speech) => {
                speech.silent = 0;
                speech.voice_end = self.input_bytes;
            }
        }
        self.appends += 1;
        if let Mode::DropAfterAppends(n) = self.mode {
            if self.appends >= n {
                self.ws = None;
            }
        }
    }

    /// The caller stopped speaking: commit, transcribe and answer the turn.
    async fn end_turn(&mut self) {
        let Some(speech) = self.speech.take() else {
            return;
        };
        let item_id = speech.item_id;
        let stopped = json!({
            "type": "input_audio_buffer.speech_stopped",
            "audio_end_ms": speech.voice_end / 8,
            "item_id": item_id,
        });
        self.send(stopped).await;
        let previous = self.last_user_item.replace(item_id.clone());
        let committed = json!({
            "type": "input_audio_buffer.committed",
            "previous_item_id": previous,
            "item_id": item_id,
        });
        self.send(committed).await;
        let added = json!({
            "type": "conversation.item.added",
            "previous_item_id": previous,
            "item": {
                "id": item_id, "object": "realtime.item", "type": "message",
                "status": "completed", "role": "user",
                "content": [{ "type": "input_audio", "transcript": null }],
            },
        });
        self.send(added).await;
        let Some(turn) = self.script.turns.get(self.turn).cloned() else {
            tracing::info!(
                turn = self.turn,
                "the fake OpenAI has no turn left to answer"
            );
            self.turn += 1;
            return;
        };
        self.turn += 1;
        let speech_bytes = speech.voice_end - speech.start_byte;
        let usage = if self.session["audio"]["input"]["transcription"]["model"] == "whisper-1" {
            json!({ "type": "duration", "seconds": ceil_div(speech_bytes, 8000) })
        } else {
            let audio = ceil_div(speech_bytes / 8, 100);
            let words = turn.heard.split_whitespace().count();
            json!({
                "type": "tokens",
                "input_tokens": audio,
                "input_token_details": { "text_tokens": 0, "audio_tokens": audio },
                "output_tokens": words,
                "total_tokens": audio + words,
            })
        };
        let transcribed = json!({
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": item_id,
            "content_index": 0,
            "transcript": turn.heard,
            "usage": usage,
        });
        self.send(transcribed).await;
        // `turn_detection.create_response: false`: the turn is committed, and the
        // client asks for a response itself (Realtime API reference, session
        // `audio.input.turn_detection.create_response`).
        if self.session["audio"]["input"]["turn_detection"]["create_response"] == false {
            tracing::info!(
                turn = self.turn,
                "create_response is off: no reply to this turn"
            );
            return;
        }
        let speech_ms = (speech.voice_end - speech.start_byte) / 8;
        self.respond(turn.reply, speech_ms).await;
    }

    async fn on_response_create(&mut self, event: &Value) {
        if self.active.is_some() {
            let message = "Conversation already has an active response in progress.";
            self.error(
                "conversation_already_has_active_response",
                message,
                None,
                event,
            )
            .await;
            return;
        }
        let reply = if let Some(retry) = self.retry.take() {
            Some(retry)
        } else if self.output_ready {
            self.output_ready = false;
            self.pending.take().map(|(_, reply)| reply)
        } else if !self.greeted && self.script.greeting.is_some() {
            self.script.greeting.clone()
        } else {
            None
        };
        self.greeted = true;
        self.respond(reply.unwrap_or_default(), 0).await;
    }

    /// Queues `reply` as a response and starts sending it.
    async fn respond(&mut self, reply: Reply, input_audio_ms: usize) {
        let response_id = self.id("resp");
        let mut queue = VecDeque::new();
        queue.push_back(Out::Event(json!({
            "type": "response.created",
            "response": {
                "object": "realtime.response", "id": response_id, "status": "in_progress",
                "status_details": null, "output": [], "output_modalities": ["audio"], "usage": null,
            },
        })));
        queue.push_back(Out::Event(json!({
            "type": "rate_limits.updated",
            "rate_limits": [
                { "name": "requests", "limit": 5000, "remaining": 4999, "reset_seconds": 0.012 },
                { "name": "tokens", "limit": 40000, "remaining": 38000, "reset_seconds": 3.0 },
            ],
        })));
        let mut output = Vec::new();
        if let Some(say) = &reply.say {
            let done = self.queue_say(&mut queue, &response_id, output.len(), say);
            output.push(done);
        }
        let mut pending = None;
        if let Some(call) = &reply.call {
            let (done, call_id) = self.queue_call(&mut queue, &response_id, output.len(), call);
            output.push(done);
            pending = Some((call_id, reply.after_output.map(|r| *r).unwrap_or_default()));
        }
        queue.push_back(Out::Done);
        self.active = Some(Active {
            id: response_id,
            queue,
            deltas_sent: 0,
            next_at: Instant::now(),
            output,
            input_audio_ms,
            text_words: reply
                .say
                .as_ref()
                .map_or(0, |say| say.text.split_whitespace().count()),
            audio_bytes_sent: 0,
            pending,
            ends: reply.ends,
            on_retry: reply.on_retry.map(|r| *r),
        });
        self.pump().await;
    }

    /// Queues an assistant audio item; returns the item as done.
    fn queue_say(
        &mut self,
        queue: &mut VecDeque<Out>,
        response_id: &str,
        index: usize,
        say: &Say,
    ) -> Value {
        let item_id = self.id("item");
        self.items.insert(item_id.clone(), 0);
        lock(&self.shared).sent_audio.push((item_id.clone(), 0));
        let item = |status: &str, transcript: Option<&str>| {
            json!({
                "id": item_id, "object": "realtime.item", "type": "message", "status": status,
                "role": "assistant",
                "content": [{ "type": "output_audio", "transcript": transcript }],
            })
        };
        let at = json!({ "response_id": response_id, "item_id": item_id, "output_index": index, "content_index": 0 });
        let with = |kind: &str, extra: Value| {
            let mut event = at.clone();
            event["type"] = json!(kind);
            if let Value::Object(fields) = extra {
                for (key, value) in fields {
                    event[key] = value;
                }
            }
            event
        };
        queue.push_back(Out::Event(json!({
            "type": "response.output_item.added", "response_id": response_id,
            "output_index": index, "item": item("in_progress", None),
        })));
        queue.push_back(Out::Event(json!({
            "type": "conversation.item.added", "previous_item_id": self.last_user_item,
            "item": item("in_progress", None),
        })));
        queue.push_back(Out::Event(with(
            "response.content_part.added",
            json!({ "part": { "type": "audio", "transcript": "" } }),
        )));
        let total = say.audio_ms as usize * 8;
        let chunk = (self.script.delta_ms.max(1) as usize) * 8;
        let deltas = ceil_div(total, chunk);
        let pieces = split_text(&say.text, TRANSCRIPT_PIECES.min(deltas.max(1)));
        for n in 0..deltas.max(pieces.len()) {
            let size = chunk.min(total.saturating_sub(n * chunk));
            if size > 0 {
                let delta = STANDARD.encode(vec![say.fill; size]);
                queue.push_back(Out::Audio {
                    item_id: item_id.clone(),
                    event: with("response.output_audio.delta", json!({ "delta": delta })),
                });
            }
            if let Some(piece) = pieces.get(n) {
                queue.push_back(Out::Event(with(
                    "response.output_audio_transcript.delta",
                    json!({ "delta": piece }),
                )));
            }
        }
        queue.push_back(Out::Event(with("response.output_audio.done", json!({}))));
        queue.push_back(Out::Event(with(
            "response.output_audio_transcript.done",
            json!({ "transcript": say.text }),
        )));
        queue.push_back(Out::Event(with(
            "response.content_part.done",
            json!({ "part": { "type": "audio", "transcript": say.text } }),
        )));
        let done = item("completed", Some(&say.text));
        queue.push_back(Out::Event(json!({
            "type": "response.output_item.done", "response_id": response_id,
            "output_index": index, "item": done,
        })));
        queue.push_back(Out::Event(
            json!({ "type": "conversation.item.done", "item": done }),
        ));
        done
    }

    /// Queues a function_call item; returns the item as done and its call_id.
    fn queue_call(
        &mut self,
        queue: &mut VecDeque<Out>,
        response_id: &str,
        index: usize,
        call: &ToolCall,
    ) -> (Value, String) {
        let item_id = self.id("item");
        let call_id = self.id("call");
        let item = |status: &str, arguments: &str| {
            json!({
                "id": item_id, "object": "realtime.item", "type": "function_call",
                "status": status, "call_id": call_id, "name": call.name, "arguments": arguments,
            })
        };
        queue.push_back(Out::Event(json!({
            "type": "response.output_item.added", "response_id": response_id,
            "output_index": index, "item": item("in_progress", ""),
        })));
        queue.push_back(Out::Event(json!({
            "type": "conversation.item.added", "item": item("in_progress", ""),
        })));
        queue.push_back(Out::Event(json!({
            "type": "response.function_call_arguments.delta", "response_id": response_id,
            "item_id": item_id, "output_index": index, "call_id": call_id,
            "delta": call.arguments,
        })));
        queue.push_back(Out::Event(json!({
            "type": "response.function_call_arguments.done", "response_id": response_id,
            "item_id": item_id, "output_index": index, "call_id": call_id,
            "name": call.name, "arguments": call.arguments,
        })));
        let done = item("completed", &call.arguments);
        queue.push_back(Out::Event(json!({
            "type": "response.output_item.done", "response_id": response_id,
            "output_index": index, "item": done,
        })));
        queue.push_back(Out::Event(
            json!({ "type": "conversation.item.done", "item": done }),
        ));
        (done, call_id)
    }

    /// Sends what is due of the active response.
    async fn pump(&mut self) {
        loop {
            let Some(active) = self.active.as_mut() else {
                return;
            };
            let due = match active.queue.front() {
                None => true,
                Some(Out::Audio { .. }) => {
                    active.deltas_sent == 0
                        || self.script.pace.is_none()
                        || Instant::now() >= active.next_at
                }
                Some(_) => true,
            };
            if !due {
                return;
            }
            match active.queue.pop_front() {
                Some(Out::Event(event)) => self.send(event).await,
                Some(Out::Audio { item_id, event }) => self.send_audio(&item_id, event).await,
                Some(Out::Done) | None => {
                    let ends = self.active.as_mut().and_then(|a| a.ends.take());
                    match ends {
                        Some((status, details)) => self.finish_as(&status, details).await,
                        None => self.finish("completed", None).await,
                    }
                    return;
                }
            }
        }
    }

    async fn send_audio(&mut self, item_id: &str, event: Value) {
        let bytes = event["delta"]
            .as_str()
            .and_then(|b64| STANDARD.decode(b64).ok())
            .map_or(0, |audio| audio.len());
        if let Some(active) = self.active.as_mut() {
            active.deltas_sent += 1;
            active.audio_bytes_sent += bytes;
            active.next_at = Instant::now() + self.script.pace.unwrap_or_default();
        }
        *self.items.entry(item_id.to_owned()).or_default() += bytes;
        if let Some(entry) = lock(&self.shared)
            .sent_audio
            .iter_mut()
            .find(|(id, _)| id == item_id)
        {
            entry.1 += bytes;
        }
        self.send(event).await;
    }

    /// Barge-in or `response.cancel`: `late_deltas` more deltas, then a cancelled
    /// `response.done`.
    async fn cancel(&mut self, reason: &str) {
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let late: Vec<(String, Value)> = std::mem::take(&mut active.queue)
            .into_iter()
            .filter_map(|out| match out {
                Out::Audio { item_id, event } => Some((item_id, event)),
                _ => None,
            })
            .take(self.script.late_deltas)
            .collect();
        for (item_id, event) in late {
            self.send_audio(&item_id, event).await;
        }
        self.finish("cancelled", Some(reason)).await;
    }

    async fn finish(&mut self, status: &str, reason: Option<&str>) {
        let details = match reason {
            Some(reason) => json!({ "type": status, "reason": reason }),
            None => Value::Null,
        };
        self.finish_as(status, details).await;
    }

    /// `response.done` with this `status` and `status_details` (null when
    /// completed).
    async fn finish_as(&mut self, status: &str, status_details: Value) {
        let Some(mut active) = self.active.take() else {
            return;
        };
        if status == "failed" || status == "incomplete" {
            self.retry = active.on_retry.take();
        }
        let n = self.responses;
        self.responses += 1;
        let audio_in = ceil_div(active.input_audio_ms, 100);
        let text_in = 100 + 10 * n;
        let cached = if n == 0 { 0 } else { 64 };
        let audio_out = ceil_div(active.audio_bytes_sent / 8, 50);
        let text_out = active.text_words;
        let usage = json!({
            "total_tokens": audio_in + text_in + audio_out + text_out,
            "input_tokens": audio_in + text_in,
            "output_tokens": audio_out + text_out,
            "input_token_details": {
                "text_tokens": text_in, "audio_tokens": audio_in, "image_tokens": 0,
                "cached_tokens": cached,
                "cached_tokens_details": { "text_tokens": cached, "audio_tokens": 0, "image_tokens": 0 },
            },
            "output_token_details": { "text_tokens": text_out, "audio_tokens": audio_out },
        });
        let mut output = active.output;
        if status != "completed" {
            for item in &mut output {
                item["status"] = json!("incomplete");
            }
        }
        if status == "completed" {
            if let Some(pending) = active.pending {
                self.pending = Some(pending);
                self.output_ready = false;
            }
        }
        let done = json!({
            "type": "response.done",
            "response": {
                "object": "realtime.response", "id": active.id, "status": status,
                "status_details": status_details, "output": output,
                "conversation_id": "conv_fake", "output_modalities": ["audio"],
                "usage": usage, "metadata": null,
            },
        });
        self.send(done).await;
    }

    async fn on_truncate(&mut self, event: &Value) {
        let item_id = event["item_id"].as_str().unwrap_or_default().to_owned();
        let audio_end_ms = event["audio_end_ms"].as_u64().unwrap_or(u64::MAX);
        match self.items.get(&item_id) {
            None => {
                let message = format!("Item with item_id '{item_id}' not found.");
                self.error(
                    "item_truncate_invalid_item_id",
                    &message,
                    Some("item_id"),
                    event,
                )
                .await;
            }
            Some(&bytes) if audio_end_ms > (bytes / 8) as u64 => {
                let message = format!(
                    "Audio content of {}ms is already shorter than {audio_end_ms}ms",
                    bytes / 8
                );
                self.error("invalid_value", &message, Some("audio_end_ms"), event)
                    .await;
            }
            Some(_) => {
                let truncated = json!({
                    "type": "conversation.item.truncated",
                    "item_id": item_id,
                    "content_index": event["content_index"],
                    "audio_end_ms": audio_end_ms,
                });
                self.send(truncated).await;
            }
        }
    }

    async fn on_item_create(&mut self, event: &Value) {
        let mut item = event["item"].clone();
        if item["type"] == "message" {
            if let Err((param, message)) = message_content_fits_role(&item) {
                self.error("invalid_value", &message, Some(&param), event)
                    .await;
                return;
            }
        }
        if item["type"] == "function_call_output" {
            let call_id = item["call_id"].as_str().unwrap_or_default().to_owned();
            let output = item["output"].as_str().unwrap_or_default().to_owned();
            lock(&self.shared)
                .tool_outputs
                .push((call_id.clone(), output));
            match &self.pending {
                Some((pending, _)) if *pending == call_id => self.output_ready = true,
                _ => {
                    let message = format!("Tool call ID '{call_id}' not found in conversation.");
                    self.error("invalid_value", &message, Some("item.call_id"), event)
                        .await;
                    return;
                }
            }
        }
        if item.get("id").is_none() {
            item["id"] = json!(self.id("item"));
        }
        item["object"] = json!("realtime.item");
        item["status"] = json!("completed");
        let added = json!({
            "type": "conversation.item.added",
            "previous_item_id": event.get("previous_item_id"),
            "item": item,
        });
        self.send(added).await;
    }
}

/// A `message` item's content types against its role: the GA API reference,
/// client event `conversation.item.create`, item `RealtimeConversationItem…`
/// (system message: `input_text`; user message: `input_text`, `input_audio`,
/// `input_image`; assistant message: `output_text`, `output_audio`)
/// <https://platform.openai.com/docs/api-reference/realtime-client-events/conversation/item/create>.
/// The error is the API's `invalid_request_error` with code `invalid_value`.
fn message_content_fits_role(item: &Value) -> Result<(), (String, String)> {
    let role = item["role"].as_str().unwrap_or_default();
    let allowed: &[&str] = match role {
        "system" => &["input_text"],
        "user" => &["input_text", "input_audio", "input_image"],
        "assistant" => &["output_text", "output_audio"],
        other => {
            return Err((
                "item.role".to_owned(),
                format!("Invalid value: '{other}'. Supported values are: 'system', 'user', and 'assistant'."),
            ))
        }
    };
    let content = item["content"].as_array().cloned().unwrap_or_default();
    for (i, part) in content.iter().enumerate() {
        let kind = part["type"].as_str().unwrap_or_default();
        if !allowed.contains(&kind) {
            return Err((
                format!("item.content[{i}].type"),
                format!("Invalid value: '{kind}'. Supported values for a {role} message are: {allowed:?}."),
            ));
        }
    }
    Ok(())
}

/// Deep-merges `update` into `into` (objects merge, anything else replaces).
fn merge(into: &mut Value, update: &Value) {
    match (into, update) {
        (Value::Object(into), Value::Object(update)) => {
            for (key, value) in update {
                merge(into.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (into, update) => *into = update.clone(),
    }
}
