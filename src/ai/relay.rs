//! `AiLeg`: the assistant's side of an AI-routed call — one actor per call, relaying
//! between the caller's Twilio media stream and an OpenAI Realtime WebSocket (GA
//! protocol, `audio/pcmu` both ways, so audio passes through untouched).
//!
//! - Caller audio arrives from the call's `MediaLeg` (`LegRoute::Assistant`, a
//!   bounded `CallerPort` read as a stream, no mailbox envelope per frame) and goes
//!   out as `input_audio_buffer.append`.
//! - Each `response.output_audio.delta` goes to Twilio; a uniquely named `mark`
//!   follows every `mark_interval_ms` of audio and the end of each burst (a
//!   response's or an item's last delta); Twilio echoes a mark once the audio
//!   before it has played, so the relay knows, per item, how much the caller has
//!   actually heard.
//! - Barge-in: on `input_audio_buffer.speech_started` while assistant audio is still
//!   queued or playing, Twilio is told to `clear`, the playing item is truncated at
//!   the played position (`conversation.item.truncate`), and late deltas of the
//!   interrupted response are dropped.
//! - Tools: `transfer_to_human` and `end_call` leave once the current response is
//!   done and has played; `log_event` writes to the trail; webhook tools are POSTed
//!   with a timeout and their answer (or error) goes back to the model.
//! - Failure (unreachable, refused, silent, dropped, or the node already holding
//!   `openai.max_connections` sessions) is reported to the call with the
//!   assistant's failure route at once; the call moves the caller on. The
//!   assistant is read before the socket is opened, so every failure after that
//!   knows its route.
//! - A response that ends `failed` (or `incomplete` because of an error) is asked
//!   for again once; a second failure in a row is a failure of the session.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::io::{SinkWrite, WriteHandler};
use actix::prelude::*;
use awc::error::WsProtocolError;
use awc::ws::{CloseCode, CloseReason, Frame, Message};
use bytes::BytesMut;
use bytestring::ByteString;
use futures_util::{Sink, StreamExt as _};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};
use switchboard_actors::assistant::{AssistantSession, AssistantUpdate, StopAssistant};
use switchboard_actors::call::CallHandle;
use switchboard_actors::framebuf::FrameBuf;
use switchboard_actors::journal::now_ms;
use switchboard_actors::leg::{caller_port, CallerInput, LegControl, LegHandle, LegRoute};
use switchboard_actors::number::Route;
use switchboard_actors::stats::EngineStats;
use switchboard_actors::AssistantId;

use crate::domain::assistant::ToolSpec;
use crate::store::outbound::OutboundId;

#[path = "outbound_tools.rs"]
mod outbound_tools;

type OpenAiSink = Pin<Box<dyn Sink<Message, Error = WsProtocolError>>>;

/// How the relay reaches the model.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// `wss://api.openai.com/v1/realtime` or a compatible server; `?model=` is added.
    pub realtime_url: String,
    pub api_key: Option<SecretString>,
    /// From the start of the call to `session.updated`; past it the caller goes to
    /// the failure route.
    pub connect_timeout: Duration,
    /// The input transcription model (`gpt-4o-mini-transcribe`, `whisper-1`…).
    pub transcription_model: String,
    /// How long `transfer_to_human` and `end_call` wait for the assistant's last
    /// words to play before they act anyway.
    pub exit_grace: Duration,
    /// Largest frame accepted from the model.
    pub max_frame_bytes: usize,
    /// A Twilio mark follows the model's audio every this many milliseconds
    /// while a burst plays, and each burst's end (0: after every delta). The
    /// played position a barge-in truncates at is exact to this; larger values
    /// save two socket messages per unmarked delta.
    pub mark_interval_ms: u64,
    /// Realtime connections open at once on this node, at most.
    pub max_connections: usize,
}

/// What an assistant is, as a call starts (read from the store then).
#[derive(Debug, Clone)]
pub struct AssistantConfig {
    pub id: AssistantId,
    pub model: String,
    pub voice: String,
    pub instructions: String,
    pub greeting: Option<String>,
    pub tools: Vec<ToolSpec>,
    pub on_failure: Route,
    /// Set for an outbound call's assistant: the relay waits for the callee's
    /// greeting, opens with the disclosure, has the outbound tools and limits
    /// (`outbound_tools`).
    pub outbound: Option<Arc<super::outbound::OutboundBrief>>,
}

/// Finds an assistant by id; `Err` carries why it could not be had.
pub type LoadAssistant = Arc<
    dyn Fn(AssistantId) -> futures_util::future::BoxFuture<'static, Result<AssistantConfig, String>>
        + Send
        + Sync,
>;

/// Starts the recording of an outbound call: the recording's sid, or why not.
pub type StartRecording = Arc<
    dyn Fn(OutboundId) -> futures_util::future::BoxFuture<'static, Result<String, String>>
        + Send
        + Sync,
>;

/// What every relay shares.
#[derive(Clone)]
pub struct RelayDeps {
    pub config: Arc<RelayConfig>,
    pub load: LoadAssistant,
    /// For webhook tools.
    pub http: reqwest::Client,
    /// The engine's counters; `ai_connections_open` counts the realtime
    /// connections of this node (each relay holds a [`ConnectionSlot`] from its
    /// handshake until it stops).
    pub stats: Arc<EngineStats>,
    /// The do-not-call lists (`opt_out`).
    pub store: crate::store::Store,
    /// Starts an outbound call's recording once its notice has played
    /// (`outbound::recording::starter`); `None` without a Twilio account.
    pub start_recording: Option<StartRecording>,
    /// The reasoning model `consult` asks (the summary's client and config).
    pub reasoner: Option<Arc<super::summary::Summarizer>>,
}

/// One of the node's `max_connections` realtime connections; given back on drop.
#[derive(Debug)]
pub struct ConnectionSlot(Arc<EngineStats>);

impl ConnectionSlot {
    /// A slot, unless `max` are taken.
    pub fn take(stats: &Arc<EngineStats>, max: usize) -> Option<ConnectionSlot> {
        stats
            .ai_connections_open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max as u64).then_some(n + 1)
            })
            .ok()?;
        Some(ConnectionSlot(Arc::clone(stats)))
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.ai_connections_open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One server event, borrowed from the frame. Only the fields the relay reads.
#[derive(Debug, Deserialize)]
struct ServerEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    delta: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    item_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    response_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    transcript: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    call_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    arguments: Option<Cow<'a, str>>,
    #[serde(default)]
    response: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    usage: Option<Value>,
}

/// An optional string borrowed from the frame unless it has escapes. (serde only
/// borrows a `Cow` that is a field itself: inside an `Option` it would allocate,
/// three times per audio delta.)
fn borrowed<'de: 'a, 'a, D>(deserializer: D) -> Result<Option<Cow<'a, str>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    struct Text<'b>(#[serde(borrow)] Cow<'b, str>);
    Ok(Option::<Text<'de>>::deserialize(deserializer)?.map(|text| text.0))
}

/// An assistant item's audio: how much went to Twilio and how much has played.
#[derive(Debug)]
struct ItemAudio {
    id: Rc<str>,
    response_id: String,
    sent_ms: u64,
    played_ms: u64,
    /// When its first audio went out (the turn's timestamp).
    first_at: i64,
}

/// A mark sent after a delta: once echoed, `item` has played up to `end_ms`.
#[derive(Debug)]
struct PendingMark {
    seq: u64,
    item: Rc<str>,
    end_ms: u64,
}

/// How the assistant leaves the call, once its last words have played.
#[derive(Debug, Clone)]
enum Exit {
    Handover { summary: String, reason: String },
    HangUp { reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Connecting,
    /// Socket open; waiting for `session.created`, then `session.updated`.
    Configuring,
    Live,
    Done,
}

pub struct AiLeg {
    call: CallHandle,
    leg: LegHandle,
    assistant_id: AssistantId,
    deps: RelayDeps,
    assistant: Option<AssistantConfig>,
    stage: Stage,
    sink: Option<SinkWrite<Message, OpenAiSink>>,
    /// A text message arriving in continuation frames.
    partial: Option<BytesMut>,
    /// The model's audio is decoded, and the caller's appends rendered, into this
    /// reused buffer: no allocation per frame either way.
    frames: FrameBuf,
    items: HashMap<Rc<str>, ItemAudio>,
    marks: VecDeque<PendingMark>,
    /// Audio sent since the last mark (its item, and where it ends), and how much.
    unmarked: Option<(Rc<str>, u64)>,
    unmarked_ms: u64,
    mark_seq: u64,
    /// The response being generated, if any.
    active_response: Option<String>,
    /// The `response.create` sent and not yet answered by `response.created`, and
    /// the one behind the active response: what a retry sends again.
    pending_request: Option<Value>,
    active_request: Option<Value>,
    /// A response of the current turn failed and was asked for again.
    retried: bool,
    /// This relay's share of `max_connections`, from the handshake on.
    slot: Option<ConnectionSlot>,
    /// Responses (and items) the caller interrupted: their late audio is dropped.
    cancelled_responses: HashSet<String>,
    cancelled_items: HashSet<String>,
    /// A tool answered while a response was active: ask for the next one after it.
    want_response: bool,
    /// When the caller's current utterance started, by input item.
    speech_at: HashMap<String, i64>,
    exit: Option<Exit>,
    /// The close frame has been written; the socket is on its way out.
    closing: bool,
    started: Instant,
    /// An outbound call's state (`outbound_tools`).
    outbound: Option<outbound_tools::Outbound>,
    /// An answering machine's verdict that came before the assistant was read.
    early_verdict: Option<String>,
    /// The conversation before the call moved nodes (`resumed`); empty for a
    /// call new to its assistant.
    history: Vec<(String, String)>,
}

impl AiLeg {
    /// Starts the relay on the arbiter of the caller's leg, so a frame's round trip
    /// (Twilio in, model out, model in, Twilio out, mark, echo) stays on one thread.
    pub fn start(session: AssistantSession, deps: RelayDeps) -> Addr<AiLeg> {
        let arbiter = session.leg.arbiter.clone();
        AiLeg::start_in_arbiter(&arbiter, move |_ctx| AiLeg {
            call: session.call,
            leg: session.leg,
            assistant_id: session.assistant_id,
            deps,
            assistant: None,
            stage: Stage::Connecting,
            sink: None,
            partial: None,
            frames: FrameBuf::new(),
            items: HashMap::new(),
            marks: VecDeque::new(),
            unmarked: None,
            unmarked_ms: 0,
            mark_seq: 0,
            active_response: None,
            pending_request: None,
            active_request: None,
            retried: false,
            slot: None,
            cancelled_responses: HashSet::new(),
            cancelled_items: HashSet::new(),
            want_response: false,
            speech_at: HashMap::new(),
            exit: None,
            closing: false,
            started: Instant::now(),
            outbound: None,
            early_verdict: None,
            history: session.history,
        })
    }

    fn update(&self, update: AssistantUpdate) {
        self.call.assistant_update(update);
    }

    /// The model is out of reach: hand the caller to the failure route and stop.
    fn fail(&mut self, reason: String, ctx: &mut Context<Self>) {
        if self.stage == Stage::Done {
            return;
        }
        let live = self.stage == Stage::Live;
        self.stage = Stage::Done;
        self.deps
            .stats
            .ai_failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if !live {
            self.deps
                .stats
                .ai_start_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        tracing::warn!(call_id = %self.call.id(), assistant_id = %self.assistant_id, %reason, live, "assistant failed");
        if self.outbound.is_some() {
            // Nobody to hand an outbound callee to: the call ends.
            self.update(AssistantUpdate::HangUp {
                reason: format!("assistant_failed: {reason}"),
            });
            return self.close(ctx);
        }
        let route = self
            .assistant
            .as_ref()
            .map(|a| a.on_failure.clone())
            .unwrap_or_else(Route::everyone);
        self.update(AssistantUpdate::Failed { route, reason });
        self.close(ctx);
    }

    /// Starts the WebSocket closing handshake: a close frame, then the actor stops
    /// when the model answers with its own (or closes), or after a second at the
    /// most. The server closes the TCP connection, as RFC 6455 has it.
    fn close(&mut self, ctx: &mut Context<Self>) {
        match &mut self.sink {
            Some(sink) if !self.closing => {
                self.closing = true;
                let _ = sink.write(Message::Close(Some(CloseReason {
                    code: CloseCode::Normal,
                    description: None,
                })));
                ctx.run_later(Duration::from_secs(1), |_act, ctx| ctx.stop());
            }
            Some(_) => {}
            None => ctx.stop(),
        }
    }

    fn send(&mut self, event: Value) {
        if let Some(sink) = &mut self.sink {
            let _ = sink.write(Message::Text(event.to_string().into()));
        }
    }

    /// Sends a `response.create`, kept until its response is done so that a
    /// failed response can be asked for again as it was.
    fn request_response(&mut self, request: Value) {
        self.pending_request = Some(request.clone());
        self.send(request);
    }

    // ---- connecting ----

    /// Reads the assistant (so every later failure knows its route), then opens
    /// the socket; the whole set-up must be done within `connect_timeout`.
    fn connect(&mut self, ctx: &mut Context<Self>) {
        let load = Arc::clone(&self.deps.load);
        let id = self.assistant_id.clone();
        ctx.spawn(async move { load(id).await }.into_actor(self).map(
            |result, act, ctx| match result {
                Err(reason) => act.fail(reason, ctx),
                Ok(assistant) => {
                    if act.stage != Stage::Connecting {
                        return;
                    }
                    act.outbound = assistant.outbound.clone().map(|brief| {
                        outbound_tools::Outbound::new(brief, act.early_verdict.take())
                    });
                    act.assistant = Some(assistant);
                    act.open_socket(ctx);
                }
            },
        ));
        let deadline = self.deps.config.connect_timeout;
        ctx.run_later(deadline, move |act, ctx| {
            if matches!(act.stage, Stage::Connecting | Stage::Configuring) {
                let reason = format!(
                    "the realtime session was not ready within {} ms",
                    deadline.as_millis()
                );
                act.fail(reason, ctx);
            }
        });
    }

    fn open_socket(&mut self, ctx: &mut Context<Self>) {
        let config = Arc::clone(&self.deps.config);
        let Some(slot) = ConnectionSlot::take(&self.deps.stats, config.max_connections) else {
            let reason = format!(
                "this node already has {} realtime sessions open (openai.max_connections)",
                config.max_connections
            );
            return self.fail(reason, ctx);
        };
        self.slot = Some(slot);
        let model = self
            .assistant
            .as_ref()
            .map(|a| a.model.clone())
            .unwrap_or_default();
        let work = async move {
            let url = realtime_url(&config.realtime_url, &model);
            let mut request = realtime_client(config.max_connections)
                .ws(url)
                .max_frame_size(config.max_frame_bytes);
            if let Some(key) = &config.api_key {
                request = request.bearer_auth(key.expose_secret());
            }
            let timeout = config.connect_timeout;
            match actix_rt::time::timeout(timeout, request.connect()).await {
                Ok(Ok((_response, framed))) => Ok(framed),
                Ok(Err(awc::error::WsClientError::InvalidResponseStatus(status))) => Err(format!(
                    "the realtime API refused the connection with HTTP {}",
                    status.as_u16()
                )),
                Ok(Err(e)) => Err(format!("the realtime API could not be reached: {e}")),
                Err(_) => Err(format!(
                    "the realtime API did not complete the handshake within {} ms",
                    timeout.as_millis()
                )),
            }
        };
        ctx.spawn(work.into_actor(self).map(|result, act, ctx| match result {
            Err(reason) => act.fail(reason, ctx),
            Ok(framed) => {
                if act.stage != Stage::Connecting {
                    return;
                }
                let (sink, stream) = framed.split();
                let sink: OpenAiSink = Box::pin(sink);
                act.sink = Some(SinkWrite::new(sink, ctx));
                ctx.add_stream(stream);
                act.stage = Stage::Configuring;
            }
        }));
    }

    fn configure(&mut self) {
        let Some(assistant) = &self.assistant else {
            return;
        };
        let mut tools: Vec<Value> = assistant
            .tools
            .iter()
            .map(ToolSpec::realtime_definition)
            .collect();
        // An outbound assistant speaks first only after the callee's greeting
        // (`outbound_tools`): the model does not answer turns until then.
        let outbound = assistant.outbound.is_some();
        if outbound {
            tools.extend(super::outbound::tool_definitions());
        }
        let update = json!({
            "type": "session.update",
            "session": {
                "type": "realtime",
                "model": assistant.model,
                "output_modalities": ["audio"],
                "instructions": assistant.instructions,
                "audio": {
                    "input": {
                        "format": { "type": "audio/pcmu" },
                        "turn_detection": {
                            "type": "server_vad",
                            "create_response": !outbound,
                            "interrupt_response": true,
                        },
                        "transcription": { "model": self.deps.config.transcription_model },
                    },
                    "output": {
                        "format": { "type": "audio/pcmu" },
                        "voice": assistant.voice,
                    },
                },
                "tools": tools,
                "tool_choice": "auto",
            },
        });
        self.send(update);
    }

    fn session_ready(&mut self, ctx: &mut Context<Self>) {
        if self.stage != Stage::Configuring {
            return;
        }
        self.stage = Stage::Live;
        self.deps
            .stats
            .ai_sessions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (model, greeting) = match &self.assistant {
            Some(a) => (a.model.clone(), a.greeting.clone()),
            None => return,
        };
        tracing::info!(
            call_id = %self.call.id(),
            assistant_id = %self.assistant_id,
            ready_ms = self.started.elapsed().as_millis() as u64,
            "assistant session ready"
        );
        self.update(AssistantUpdate::Connected { model });
        // A call back from another node: the session gets the conversation so
        // far, and says it was cut off rather than greeting the caller again.
        let history = std::mem::take(&mut self.history);
        for item in super::resumed::history_items(&history) {
            self.send(item);
        }
        if self.outbound.is_some() {
            return self.outbound_ready(ctx);
        }
        if !history.is_empty() {
            self.request_response(json!({
                "type": "response.create",
                "response": { "instructions": super::resumed::RESUMED_INSTRUCTIONS },
            }));
            return;
        }
        if let Some(greeting) = greeting.filter(|g| !g.trim().is_empty()) {
            self.request_response(json!({
                "type": "response.create",
                "response": {
                    "instructions": format!(
                        "Greet the caller by saying exactly this, and nothing else: {greeting}"
                    ),
                },
            }));
        }
    }

    // ---- the model's events ----

    fn on_text(&mut self, text: &[u8], ctx: &mut Context<Self>) {
        let event: ServerEvent<'_> = match serde_json::from_slice(text) {
            Ok(event) => event,
            Err(e) => {
                self.ignored();
                tracing::warn!(call_id = %self.call.id(), error = %e, "malformed realtime event ignored");
                return;
            }
        };
        match event.kind.as_ref() {
            "response.output_audio.delta" => {
                self.outbound_heard_speech(ctx);
                self.on_audio(&event)
            }
            "response.output_audio.done" => self.send_mark(),
            "session.created" => self.configure(),
            "session.updated" => self.session_ready(ctx),
            "input_audio_buffer.speech_started" => {
                self.outbound_speech_started(ctx);
                self.on_speech_started(&event);
                self.outbound_notice_check(ctx);
            }
            "input_audio_buffer.speech_stopped" => self.outbound_speech_stopped(ctx),
            "response.created" => {
                self.active_response = event
                    .response
                    .as_ref()
                    .and_then(|r| r.get("id"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                self.active_request = self.pending_request.take();
                if let Some(id) = self.active_response.clone() {
                    self.outbound_response_created(&id);
                }
            }
            "response.done" => self.on_response_done(&event, ctx),
            "conversation.item.input_audio_transcription.completed" => {
                if let Some(usage) = event.usage.as_ref().filter(|u| u.is_object()) {
                    self.update(AssistantUpdate::TranscriptionUsage {
                        model: self.deps.config.transcription_model.clone(),
                        usage: usage.clone(),
                    });
                }
                let item = event.item_id.as_deref().unwrap_or_default();
                let at = self.speech_at.remove(item).unwrap_or_else(now_ms);
                if let Some(text) = event.transcript.filter(|t| !t.trim().is_empty()) {
                    self.outbound_turn("caller", text.trim());
                    self.update(AssistantUpdate::Turn {
                        role: "caller",
                        text: text.trim().to_owned(),
                        at,
                    });
                }
            }
            "response.output_audio_transcript.done" => {
                let item = event.item_id.as_deref().unwrap_or_default();
                let at = self
                    .items
                    .get(item)
                    .map(|i| i.first_at)
                    .unwrap_or_else(now_ms);
                if let Some(text) = event.transcript.filter(|t| !t.trim().is_empty()) {
                    self.outbound_turn("assistant", text.trim());
                    self.update(AssistantUpdate::Turn {
                        role: "assistant",
                        text: text.trim().to_owned(),
                        at,
                    });
                }
            }
            "response.function_call_arguments.done" => self.on_function_call(&event, ctx),
            "error" => self.on_error(&event, ctx),
            // Known events the relay has no use for.
            "conversation.created"
            | "conversation.item.added"
            | "conversation.item.done"
            | "conversation.item.created"
            | "conversation.item.truncated"
            | "conversation.item.deleted"
            | "conversation.item.retrieved"
            | "conversation.item.input_audio_transcription.delta"
            | "conversation.item.input_audio_transcription.segment"
            | "conversation.item.input_audio_transcription.failed"
            | "input_audio_buffer.committed"
            | "input_audio_buffer.cleared"
            | "input_audio_buffer.timeout_triggered"
            | "response.output_item.added"
            | "response.output_item.done"
            | "response.content_part.added"
            | "response.content_part.done"
            | "response.output_audio_transcript.delta"
            | "response.output_text.delta"
            | "response.output_text.done"
            | "response.function_call_arguments.delta"
            | "rate_limits.updated" => {}
            other => {
                self.ignored();
                tracing::debug!(call_id = %self.call.id(), kind = other, "unknown realtime event ignored");
            }
        }
    }

    fn ignored(&self) {
        self.deps
            .stats
            .ai_events_ignored
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn on_error(&mut self, event: &ServerEvent<'_>, ctx: &mut Context<Self>) {
        self.ignored();
        let error = event.error.clone().unwrap_or(Value::Null);
        if self.stage == Stage::Configuring {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no message");
            let code = error
                .get("code")
                .and_then(Value::as_str)
                .or_else(|| error.get("type").and_then(Value::as_str))
                .unwrap_or("error");
            return self.fail(
                format!("the realtime API refused the session: {code}: {message}"),
                ctx,
            );
        }
        // Most errors are recoverable and the session stays open (OpenAI's words).
        tracing::warn!(call_id = %self.call.id(), %error, "realtime error event");
    }

    fn on_audio(&mut self, event: &ServerEvent<'_>) {
        if self.stage != Stage::Live {
            return;
        }
        let (Some(item), Some(delta)) = (event.item_id.as_deref(), event.delta.as_deref()) else {
            self.ignored();
            return;
        };
        let response = event.response_id.as_deref().unwrap_or_default();
        if self.cancelled_responses.contains(response) || self.cancelled_items.contains(item) {
            self.deps
                .stats
                .ai_late_deltas_dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        let audio = match delta_audio(&mut self.frames, delta) {
            Some(audio) if !audio.is_empty() => audio,
            Some(_) => return,
            None => {
                self.ignored();
                return;
            }
        };
        if !self.items.contains_key(item) {
            let id: Rc<str> = Rc::from(item);
            let audio = ItemAudio {
                id: Rc::clone(&id),
                response_id: response.to_owned(),
                first_at: now_ms(),
                sent_ms: 0,
                played_ms: 0,
            };
            self.items.insert(id, audio);
        }
        let Some(entry) = self.items.get_mut(item) else {
            return;
        };
        let ms = (audio.len() / 8) as u64;
        entry.sent_ms += ms;
        let end_ms = entry.sent_ms;
        let item = Rc::clone(&entry.id);
        if self
            .unmarked
            .as_ref()
            .is_some_and(|(other, _)| *other != item)
        {
            self.send_mark(); // the previous item's tail gets its own mark
        }
        self.leg.outbox.send_audio(audio);
        self.unmarked = Some((item, end_ms));
        self.unmarked_ms += ms;
        if self.unmarked_ms >= self.deps.config.mark_interval_ms {
            self.send_mark();
        }
    }

    /// Asks Twilio to echo a mark once the audio sent so far has played.
    fn send_mark(&mut self) {
        let Some((item, end_ms)) = self.unmarked.take() else {
            return;
        };
        self.unmarked_ms = 0;
        self.mark_seq += 1;
        self.leg.outbox.send_after_audio(LegControl::NumberedMark {
            prefix: "ai:",
            seq: self.mark_seq,
        });
        self.marks.push_back(PendingMark {
            seq: self.mark_seq,
            item,
            end_ms,
        });
    }

    /// Twilio played everything up to this mark.
    fn on_mark(&mut self, name: &str, ctx: &mut Context<Self>) {
        let Some(seq) = name.strip_prefix("ai:").and_then(|n| n.parse::<u64>().ok()) else {
            return;
        };
        while self.marks.front().is_some_and(|m| m.seq <= seq) {
            if let Some(mark) = self.marks.pop_front() {
                if let Some(item) = self.items.get_mut(&mark.item) {
                    item.played_ms = item.played_ms.max(mark.end_ms);
                }
            }
        }
        self.outbound_heard_speech(ctx);
        self.outbound_notice_check(ctx);
        self.maybe_exit(ctx);
    }

    fn on_speech_started(&mut self, event: &ServerEvent<'_>) {
        if let Some(item) = event.item_id.as_deref() {
            self.speech_at.insert(item.to_owned(), now_ms());
        }
        if self.exit.is_some() {
            // The assistant is leaving; let its last words play.
            return;
        }
        // The item playing now, and any queued behind it, are cut where the caller
        // stopped hearing them.
        let unmarked = self.unmarked.take().map(|(item, _)| item);
        self.unmarked_ms = 0;
        let mut items: Vec<Rc<str>> = Vec::new();
        for item in self.marks.iter().map(|m| &m.item).chain(unmarked.as_ref()) {
            if !items.contains(item) {
                items.push(Rc::clone(item));
            }
        }
        let Some(playing) = items.first().cloned() else {
            return; // nothing of the assistant is playing
        };
        self.leg.clear();
        self.marks.clear();
        if let Some(response) = self.active_response.take() {
            self.cancelled_responses.insert(response);
        }
        let mut played_now = 0;
        for item_id in items {
            let Some(item) = self.items.get(&item_id) else {
                continue;
            };
            let played = item.played_ms.min(item.sent_ms);
            self.cancelled_responses.insert(item.response_id.clone());
            self.cancelled_items.insert(item_id.to_string());
            if item_id == playing {
                played_now = played;
            }
            self.send(json!({
                "type": "conversation.item.truncate",
                "item_id": &*item_id,
                "content_index": 0,
                "audio_end_ms": played,
            }));
        }
        self.deps
            .stats
            .ai_barge_ins
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.update(AssistantUpdate::BargeIn {
            item_id: playing.to_string(),
            played_ms: played_now,
        });
    }

    fn on_response_done(&mut self, event: &ServerEvent<'_>, ctx: &mut Context<Self>) {
        self.send_mark();
        let response = event.response.as_ref();
        let id = response
            .and_then(|r| r.get("id"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if self.active_response.as_deref() == Some(id) || id.is_empty() {
            self.active_response = None;
        }
        if let Some(usage) = response
            .and_then(|r| r.get("usage"))
            .filter(|u| u.is_object())
        {
            let model = self
                .assistant
                .as_ref()
                .map(|a| a.model.clone())
                .unwrap_or_default();
            self.update(AssistantUpdate::Usage {
                model,
                usage: usage.clone(),
            });
        }
        let request = self.active_request.take();
        match response.and_then(turn_failure) {
            Some(reason) => return self.turn_failed(reason, request, ctx),
            None => {
                if response
                    .and_then(|r| r.get("status"))
                    .and_then(Value::as_str)
                    == Some("completed")
                {
                    self.retried = false;
                }
            }
        }
        if self.want_response && self.active_response.is_none() && self.exit.is_none() {
            self.want_response = false;
            self.request_response(json!({ "type": "response.create" }));
        }
        self.outbound_notice_check(ctx);
        self.maybe_exit(ctx);
    }

    /// A response failed: ask for it again once (as it was asked for, if the relay
    /// asked), then hand the caller to the failure route.
    fn turn_failed(&mut self, reason: String, request: Option<Value>, ctx: &mut Context<Self>) {
        if self.stage != Stage::Live {
            return;
        }
        if self.exit.is_some() {
            // The assistant is leaving anyway; let it.
            self.update(AssistantUpdate::TurnFailed {
                reason,
                retrying: false,
            });
            return self.maybe_exit(ctx);
        }
        if self.retried {
            return self.fail(format!("{reason}, again after a retry"), ctx);
        }
        self.retried = true;
        tracing::warn!(call_id = %self.call.id(), %reason, "a realtime response failed; asking again");
        self.update(AssistantUpdate::TurnFailed {
            reason,
            retrying: true,
        });
        self.want_response = false;
        self.request_response(request.unwrap_or_else(|| json!({ "type": "response.create" })));
    }

    // ---- tools ----

    fn on_function_call(&mut self, event: &ServerEvent<'_>, ctx: &mut Context<Self>) {
        let call_id = event.call_id.as_deref().unwrap_or_default().to_owned();
        let name = event.name.as_deref().unwrap_or_default().to_owned();
        let raw = event.arguments.as_deref().unwrap_or("{}");
        if self.outbound.is_some() && super::outbound::TOOLS.contains(&name.as_str()) {
            return self.outbound_tool(call_id, name, raw, ctx);
        }
        let tool = self
            .assistant
            .as_ref()
            .and_then(|a| a.tools.iter().find(|t| t.name() == name))
            .cloned();
        let Some(tool) = tool else {
            self.update(AssistantUpdate::Tool {
                name: name.clone(),
                ok: false,
                detail: json!({ "error": "no such tool" }),
            });
            return self.tool_output(
                &call_id,
                json!({ "error": format!("no tool named {name:?}") }),
            );
        };
        let arguments = match serde_json::from_str::<Value>(raw) {
            Ok(value @ Value::Object(_)) => value,
            Ok(_) => {
                return self.bad_arguments(&call_id, &name, "the arguments must be a JSON object")
            }
            Err(e) => {
                return self.bad_arguments(
                    &call_id,
                    &name,
                    &format!("the arguments are not valid JSON: {e}"),
                )
            }
        };
        let text = |key: &str| {
            arguments
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        match tool {
            ToolSpec::TransferToHuman => {
                let reason = text("reason");
                let summary = match text("summary") {
                    s if !s.trim().is_empty() => s,
                    _ => reason.clone(),
                };
                self.update(AssistantUpdate::Tool {
                    name,
                    ok: true,
                    detail: arguments.clone(),
                });
                self.leave(Exit::Handover { summary, reason }, ctx);
            }
            ToolSpec::EndCall => {
                self.update(AssistantUpdate::Tool {
                    name,
                    ok: true,
                    detail: arguments.clone(),
                });
                let reason = match text("reason") {
                    r if r.is_empty() => "goodbye".to_owned(),
                    r => r,
                };
                self.leave(Exit::HangUp { reason }, ctx);
            }
            ToolSpec::LogEvent => {
                let event_name = match text("name") {
                    n if n.is_empty() => "event".to_owned(),
                    n => n,
                };
                let detail = arguments.get("detail").cloned().unwrap_or(Value::Null);
                self.update(AssistantUpdate::Logged {
                    name: event_name,
                    detail,
                });
                self.update(AssistantUpdate::Tool {
                    name,
                    ok: true,
                    detail: json!({}),
                });
                self.tool_output(&call_id, json!({ "ok": true }));
            }
            ToolSpec::Webhook {
                url, timeout_ms, ..
            } => self.call_webhook(call_id, name, url, timeout_ms, arguments, ctx),
        }
    }

    fn bad_arguments(&mut self, call_id: &str, name: &str, error: &str) {
        self.update(AssistantUpdate::Tool {
            name: name.to_owned(),
            ok: false,
            detail: json!({ "error": error }),
        });
        self.tool_output(call_id, json!({ "error": error }));
    }

    /// Gives the model a tool's answer and asks it to go on.
    fn tool_output(&mut self, call_id: &str, output: Value) {
        if self.stage != Stage::Live {
            return;
        }
        self.send(json!({
            "type": "conversation.item.create",
            "item": {
                "type": "function_call_output",
                "call_id": call_id,
                "output": output.to_string(),
            },
        }));
        if self.active_response.is_some() {
            self.want_response = true;
        } else {
            self.request_response(json!({ "type": "response.create" }));
        }
    }

    fn call_webhook(
        &mut self,
        call_id: String,
        name: String,
        url: String,
        timeout_ms: u64,
        arguments: Value,
        ctx: &mut Context<Self>,
    ) {
        let request = self
            .deps
            .http
            .post(&url)
            .timeout(Duration::from_millis(timeout_ms))
            .header("x-switchboard-call-id", self.call.id().as_str())
            .json(&json!({
                "tool": name,
                "call_id": self.call.id().as_str(),
                "arguments": arguments,
            }));
        let started = Instant::now();
        let work = async move {
            let response = request.send().await?;
            let status = response.status();
            let body = response.text().await?;
            Ok::<_, reqwest::Error>((status, body))
        };
        ctx.spawn(work.into_actor(self).map(move |result, act, _ctx| {
            let ms = started.elapsed().as_millis() as u64;
            let (ok, output, detail) = match result {
                Ok((status, body)) if status.is_success() => {
                    let answer = serde_json::from_str::<Value>(&body)
                        .unwrap_or_else(|_| Value::String(truncate(&body, 8_000)));
                    (true, answer, json!({ "status": status.as_u16(), "ms": ms }))
                }
                Ok((status, body)) => {
                    let error = format!("the tool answered HTTP {}", status.as_u16());
                    let detail = json!({ "status": status.as_u16(), "ms": ms, "error": error });
                    let output = json!({ "error": error, "body": truncate(&body, 2_000) });
                    (false, output, detail)
                }
                Err(e) if e.is_timeout() => {
                    let error = format!("the tool did not answer within {timeout_ms} ms");
                    (
                        false,
                        json!({ "error": error }),
                        json!({ "ms": ms, "error": error }),
                    )
                }
                Err(e) => {
                    let error = format!("the tool could not be reached: {e}");
                    (
                        false,
                        json!({ "error": error }),
                        json!({ "ms": ms, "error": error }),
                    )
                }
            };
            act.update(AssistantUpdate::Tool {
                name: name.clone(),
                ok,
                detail,
            });
            act.tool_output(&call_id, output);
        }));
    }

    /// The assistant leaves once its current response is done and has played (or
    /// after the grace period).
    fn leave(&mut self, exit: Exit, ctx: &mut Context<Self>) {
        let grace = self.deps.config.exit_grace;
        self.leave_within(exit, grace, ctx);
    }

    /// [`leave`](Self::leave), acting anyway after `grace`.
    fn leave_within(&mut self, exit: Exit, grace: Duration, ctx: &mut Context<Self>) {
        if self.exit.is_some() {
            return;
        }
        self.exit = Some(exit);
        ctx.run_later(grace, |act, ctx| act.exit_now(ctx));
        self.maybe_exit(ctx);
    }

    fn maybe_exit(&mut self, ctx: &mut Context<Self>) {
        if self.exit.is_some()
            && self.active_response.is_none()
            && self.pending_request.is_none()
            && self.marks.is_empty()
            && self.unmarked.is_none()
        {
            self.exit_now(ctx);
        }
    }

    /// Whom a handover rings: the agents of the failure route, or everyone when
    /// that route is voicemail (the caller asked for a human).
    fn handover_route(&self) -> Route {
        match self.assistant.as_ref().map(|a| &a.on_failure) {
            Some(route @ Route::Agents { .. }) => route.clone(),
            _ => Route::everyone(),
        }
    }

    fn exit_now(&mut self, ctx: &mut Context<Self>) {
        let Some(exit) = self.exit.take() else {
            return;
        };
        if self.stage == Stage::Done {
            return;
        }
        self.stage = Stage::Done;
        self.update(match exit {
            Exit::Handover { summary, reason } => AssistantUpdate::Handover {
                route: self.handover_route(),
                summary,
                reason,
            },
            Exit::HangUp { reason } => AssistantUpdate::HangUp { reason },
        });
        self.close(ctx);
    }
}

thread_local! {
    /// The realtime client of this worker thread: its connector (and TLS roots)
    /// is built once per thread, not once per call.
    static REALTIME_CLIENT: std::cell::OnceCell<awc::Client> = const { std::cell::OnceCell::new() };
}

/// The thread's client. awc's connector admits `limit` connections at once (100
/// unless set) and every upgraded WebSocket keeps its connection's permit until
/// the socket is dropped — it never goes back to the pool (awc 3.11
/// `client/pool.rs` `Acquired`, `client/h1proto.rs` `open_tunnel`) — so the
/// limit is the number of sessions the thread can hold. It is set to the node's
/// `max_connections`, which [`ConnectionSlot`] enforces before a handshake
/// starts: no handshake ever waits in the pool for a permit. The timeout is the
/// relay's own (`connect_timeout`, around `connect`).
fn realtime_client(limit: usize) -> awc::Client {
    REALTIME_CLIENT.with(|client| {
        client
            .get_or_init(|| {
                awc::Client::builder()
                    .connector(
                        awc::Connector::new()
                            .connector(crate::net::nodelay_tcp())
                            .limit(limit),
                    )
                    .disable_timeout()
                    .finish()
            })
            .clone()
    })
}

/// Why a `response.done` is a failed turn, if it is one (Realtime API reference,
/// server events, `response.done`: `status` is `completed`, `cancelled`,
/// `failed` or `incomplete`; `status_details.error` says what failed). A
/// `cancelled` response (barge-in, `turn_detected`) and an `incomplete` one cut
/// by `max_output_tokens` or `content_filter` are not failures; an `incomplete`
/// one that carries an error is.
fn turn_failure(response: &Value) -> Option<String> {
    let details = &response["status_details"];
    let error = &details["error"];
    let described = || {
        let text = |key: &str| error[key].as_str().filter(|t| !t.is_empty());
        let mut parts: Vec<&str> = Vec::new();
        parts.extend(text("type"));
        parts.extend(text("code"));
        parts.extend(text("message"));
        if parts.is_empty() {
            parts.extend(details["reason"].as_str());
        }
        if parts.is_empty() {
            "no details".to_owned()
        } else {
            parts.join(": ")
        }
    };
    match response["status"].as_str() {
        Some("failed") => Some(format!("the model's response failed ({})", described())),
        Some("incomplete") if error.is_object() => Some(format!(
            "the model's response was cut short by an error ({})",
            described()
        )),
        _ => None,
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// The realtime URL with the model as its `model` query parameter.
pub fn realtime_url(base: &str, model: &str) -> String {
    let separator = if base.contains('?') { '&' } else { '?' };
    let model: String = form_urlencoded_component(model);
    format!("{base}{separator}model={model}")
}

fn form_urlencoded_component(value: &str) -> String {
    serde_urlencoded::to_string([("", value)])
        .map(|s| s.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

impl Actor for AiLeg {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
        // The caller's frames and mark echoes come through a bounded queue read as a
        // stream, not the mailbox: no envelope to allocate per frame.
        let (port, feed) = caller_port(1024);
        ctx.add_stream(feed);
        self.leg.route(LegRoute::Assistant(port));
        self.connect(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        tracing::debug!(call_id = %self.call.id(), "assistant relay stopped");
    }
}

/// The caller's frame as `input_audio_buffer.append`, by a fixed template into
/// the relay's reused buffer (the caller → model hot path).
fn append_event(frames: &mut FrameBuf, frame: &[u8]) -> ByteString {
    let text = frames.base64_between(
        br#"{"type":"input_audio_buffer.append","audio":""#,
        frame,
        br#""}"#,
    );
    ByteString::try_from(text).unwrap_or_default()
}

/// The audio of a `response.output_audio.delta`, decoded into the relay's reused
/// buffer (the model → caller hot path); `None` if it is not base64.
fn delta_audio(frames: &mut FrameBuf, delta: &str) -> Option<bytes::Bytes> {
    frames.decode_base64(delta.as_bytes()).ok()
}

impl StreamHandler<CallerInput> for AiLeg {
    fn handle(&mut self, msg: CallerInput, ctx: &mut Self::Context) {
        match msg {
            CallerInput::Media(frame) => {
                if self.stage != Stage::Live {
                    return;
                }
                if let Some(sink) = &mut self.sink {
                    let _ = sink.write(Message::Text(append_event(&mut self.frames, &frame)));
                }
            }
            CallerInput::Mark(name) => self.on_mark(&name, ctx),
        }
    }

    /// The leg routed the caller elsewhere or stopped: the call decides what
    /// becomes of the relay (`StopAssistant`), not the end of its feed.
    fn finished(&mut self, _ctx: &mut Self::Context) {}
}

impl Handler<StopAssistant> for AiLeg {
    type Result = ();

    fn handle(&mut self, msg: StopAssistant, ctx: &mut Self::Context) {
        tracing::debug!(call_id = %self.call.id(), reason = msg.reason, "assistant stopped by its call");
        self.stage = Stage::Done;
        self.close(ctx);
    }
}

impl StreamHandler<Result<Frame, WsProtocolError>> for AiLeg {
    fn handle(&mut self, item: Result<Frame, WsProtocolError>, ctx: &mut Self::Context) {
        let frame = match item {
            Ok(frame) => frame,
            Err(e) => return self.fail(format!("the realtime socket failed: {e}"), ctx),
        };
        match frame {
            Frame::Text(text) => self.on_text(&text, ctx),
            Frame::Continuation(part) => match part {
                actix_http::ws::Item::FirstText(bytes) => {
                    self.partial = Some(BytesMut::from(&bytes[..]))
                }
                actix_http::ws::Item::FirstBinary(_) => self.partial = None,
                actix_http::ws::Item::Continue(bytes) => {
                    if let Some(partial) = &mut self.partial {
                        partial.extend_from_slice(&bytes);
                    }
                }
                actix_http::ws::Item::Last(bytes) => {
                    if let Some(mut partial) = self.partial.take() {
                        partial.extend_from_slice(&bytes);
                        self.on_text(&partial, ctx);
                    }
                }
            },
            Frame::Ping(payload) => {
                if let Some(sink) = &mut self.sink {
                    let _ = sink.write(Message::Pong(payload));
                }
            }
            Frame::Close(_) if self.closing => ctx.stop(),
            Frame::Close(reason) => {
                let why = reason
                    .map(|r| format!("{:?} {}", r.code, r.description.unwrap_or_default()))
                    .unwrap_or_else(|| "no reason".into());
                self.fail(format!("the realtime API closed the session ({why})"), ctx);
            }
            Frame::Binary(_) | Frame::Pong(_) => {}
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        if self.closing {
            return ctx.stop();
        }
        self.fail("the realtime socket dropped".into(), ctx);
    }
}

impl WriteHandler<WsProtocolError> for AiLeg {
    fn error(&mut self, err: WsProtocolError, ctx: &mut Self::Context) -> Running {
        self.fail(format!("writing to the realtime socket failed: {err}"), ctx);
        Running::Stop
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_goes_in_the_query_string() {
        assert_eq!(
            realtime_url("wss://api.openai.com/v1/realtime", "gpt-realtime"),
            "wss://api.openai.com/v1/realtime?model=gpt-realtime"
        );
        assert_eq!(
            realtime_url("ws://127.0.0.1:9/v1/realtime?x=1", "a b"),
            "ws://127.0.0.1:9/v1/realtime?x=1&model=a+b"
        );
    }

    #[test]
    fn connection_slots_stop_at_the_limit_and_come_back_when_dropped() {
        let stats = Arc::new(EngineStats::default());
        let open = || stats.ai_connections_open.load(Ordering::Acquire);
        let first = ConnectionSlot::take(&stats, 2);
        let second = ConnectionSlot::take(&stats, 2);
        assert!(first.is_some() && second.is_some());
        assert!(
            ConnectionSlot::take(&stats, 2).is_none(),
            "a third is refused"
        );
        drop(first);
        assert_eq!(open(), 1);
        assert!(ConnectionSlot::take(&stats, 2).is_some());
        assert_eq!(open(), 1, "the temporary slot was dropped");
    }

    #[test]
    fn only_failed_responses_and_errors_are_failed_turns() {
        // `response.done` statuses as the Realtime API reference lists them.
        let failed = json!({"status":"failed","status_details":{"type":"failed",
            "error":{"type":"server_error","code":"internal_error"}}});
        assert_eq!(
            turn_failure(&failed).as_deref(),
            Some("the model's response failed (server_error: internal_error)")
        );
        let broken = json!({"status":"incomplete","status_details":{"type":"incomplete",
            "error":{"type":"server_error","message":"stream ended"}}});
        assert!(turn_failure(&broken).is_some_and(|r| r.contains("stream ended")));
        for fine in [
            json!({"status":"completed","status_details":null}),
            json!({"status":"cancelled","status_details":{"type":"cancelled","reason":"turn_detected"}}),
            json!({"status":"incomplete","status_details":{"type":"incomplete","reason":"max_output_tokens"}}),
            json!({"status":"incomplete","status_details":{"type":"incomplete","reason":"content_filter"}}),
        ] {
            assert_eq!(turn_failure(&fine), None, "{fine}");
        }
    }

    #[test]
    fn long_tool_answers_are_cut() {
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("abc", 3), "abc");
    }

    #[test]
    fn no_frame_allocates_at_steady_state_caller_to_model_or_model_to_caller() {
        use base64::Engine as _;
        use std::hint::black_box;
        use switchboard_actors::outbox::{Outbox, OutboxLimits, Outgoing};

        let b64 = |n: u8| base64::engine::general_purpose::STANDARD.encode([n; 160]);
        let caller: Vec<bytes::Bytes> = (0..50u8)
            .map(|n| bytes::Bytes::from(vec![n; 160]))
            .collect();
        let deltas: Vec<String> = (0..50u8)
            .map(|n| {
                format!(
                    r#"{{"type":"response.output_audio.delta","event_id":"event_{n}","response_id":"resp_1","item_id":"item_1","output_index":0,"content_index":0,"delta":"{}"}}"#,
                    b64(n)
                )
            })
            .collect();
        let mut frames = FrameBuf::new();

        // Caller → model: the leg's port to the relay, its feed, the append
        // rendered by its template.
        let stats = EngineStats::default();
        let (port, mut feed) = caller_port(1024);
        let mut caller_to_model = |count: usize| {
            use futures_util::{FutureExt as _, StreamExt as _};
            for n in 0..count {
                assert!(port.offer(CallerInput::Media(caller[n % 50].clone()), &stats));
                let Some(Some(CallerInput::Media(frame))) = feed.next().now_or_never() else {
                    panic!("the frame is in the feed")
                };
                let text = append_event(&mut frames, &frame);
                assert!(black_box(text).ends_with(r#""}"#));
            }
        };
        caller_to_model(1_000);
        let counted = allocation_counter::measure(|| caller_to_model(10_000));
        assert_eq!(counted.count_total, 0, "caller → model: {counted:?}");

        // Model → caller: the event read (borrowed), its audio decoded, queued on
        // the caller's outbox with a mark every fifth delta, taken off for the writer.
        let leg: Outbox<LegControl> =
            Outbox::new(OutboxLimits::default(), Arc::new(EngineStats::default()));
        let mut model_to_caller = |count: usize| {
            for n in 0..count {
                let event: ServerEvent<'_> =
                    serde_json::from_str(&deltas[n % 50]).expect("a delta");
                assert_eq!(event.kind, "response.output_audio.delta");
                let audio = delta_audio(&mut frames, event.delta.as_deref().unwrap_or_default())
                    .expect("base64");
                leg.send_audio(audio);
                if n % 5 == 4 {
                    leg.send_after_audio(LegControl::NumberedMark {
                        prefix: "ai:",
                        seq: n as u64,
                    });
                }
                while let Some(item) = leg.try_next() {
                    if let Outgoing::Audio(frame) = item {
                        assert_eq!(black_box(frame)[0], (n % 50) as u8);
                    }
                }
            }
        };
        model_to_caller(1_000);
        let counted = allocation_counter::measure(|| model_to_caller(10_000));
        assert_eq!(counted.count_total, 0, "model → caller: {counted:?}");
    }
}
