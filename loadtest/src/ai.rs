//! The AI scenario (`--scenario ai`): every call is routed to an assistant, and the
//! engine relays it to a fake OpenAI Realtime server that runs inside the generator.
//!
//! The fake speaks the GA protocol as far as a relay needs it: `session.created`
//! first; `session.update` → `session.updated`; every `input_audio_buffer.append`
//! answered at once by one `response.output_audio.delta` of the same length (the
//! call's `response_id`/`item_id`); other client events are counted and ignored. It
//! never sends `input_audio_buffer.speech_started`, so no barge-in happens. It
//! refuses a handshake without the engine's bearer key.
//!
//! One listener on the controller's thread accepts the engine's connections and
//! hands them round-robin to the generator threads, where each session runs as a
//! task next to the Twilio streams, on the generator's own `WsClient` framing
//! (`TCP_NODELAY`, no actix-http codec). A session learns its call from the stamp of
//! the first appended frame.
//!
//! Directions: `caller_to_agent` is caller → OpenAI (Twilio `media` sent → the fake
//! reads the `append`); `agent_to_caller` is OpenAI → caller (the fake sends the
//! delta, re-stamped → the Twilio stream reads the `media`).

use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Serialize;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::mpsc;

use super::frame::{decode_frame, encode_frame, find, Stamp};
use super::worker::{hanging_up, Worker};
use super::ws::{read_upgrade_head, switch_protocols, Frame, Message, WsClient};
use super::{random_hex, AGENT_TO_CALLER, CALLER_TO_AGENT, FRAME_BYTES};

/// The path the engine is pointed at (`OPENAI_REALTIME_URL`).
const REALTIME_PATH: &str = "/v1/realtime";

/// What every generator thread and the controller share about the fake.
#[derive(Debug, Default)]
pub(super) struct AiShared {
    /// Handshakes accepted (with the right bearer key).
    pub(super) sessions_opened: AtomicU64,
    /// `session.updated` sent: the relay is live from then on.
    pub(super) sessions_ready: AtomicU64,
    /// Handshakes refused for a missing or wrong `Authorization: Bearer`.
    pub(super) bearer_refused: AtomicU64,
    /// Handshakes that failed otherwise (bad request, wrong path).
    pub(super) handshake_failures: AtomicU64,
    /// `session.update`s whose audio was not `audio/pcmu` both ways.
    pub(super) sessions_not_pcmu: AtomicU64,
    /// Client events other than `append` and `session.update` (e.g. `response.create`,
    /// `conversation.item.truncate`).
    pub(super) other_events: AtomicU64,
    /// Client text frames that were not JSON events.
    pub(super) unreadable_events: AtomicU64,
    /// Appended audio that was not a generator frame.
    pub(super) foreign_appends: AtomicU64,
    /// Sessions the engine closed with a close frame.
    pub(super) sessions_closed: AtomicU64,
    /// Sessions whose socket ended without a close frame after the hang-up.
    pub(super) sessions_ended_without_close: AtomicU64,
    /// Sessions whose socket ended or failed before the hang-up.
    pub(super) sessions_dropped: AtomicU64,
}

/// The fake OpenAI server: its listener (bound before the engine starts, so that
/// the engine can be given its URL) and the key it requires.
pub(super) struct FakeOpenAi {
    pub(super) listener: std::net::TcpListener,
    pub(super) api_key: String,
    pub(super) shared: Arc<AiShared>,
}

impl FakeOpenAi {
    /// `listen`: `--fake-openai-listen` (default a free loopback port); `key`:
    /// `--fake-openai-key` (default a random `sk-loadtest-…`).
    pub(super) fn bind(
        listen: Option<std::net::SocketAddr>,
        key: Option<String>,
    ) -> anyhow::Result<FakeOpenAi> {
        let addr = listen.unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = std::net::TcpListener::bind(addr)
            .with_context(|| format!("binding the fake OpenAI on {addr}"))?;
        listener.set_nonblocking(true)?;
        let api_key = match key {
            Some(key) => key,
            None => format!("sk-loadtest-{}", random_hex(12)?),
        };
        Ok(FakeOpenAi {
            listener,
            api_key,
            shared: Arc::new(AiShared::default()),
        })
    }

    /// `OPENAI_REALTIME_URL` for the engine.
    pub(super) fn url(&self) -> anyhow::Result<String> {
        let addr = self.listener.local_addr()?;
        Ok(format!("ws://{addr}{REALTIME_PATH}"))
    }

    /// Accepts connections on the current (controller's) runtime and deals them to
    /// the generator threads in turn, until every thread has gone or the returned
    /// guard is dropped (which closes the listener).
    pub(super) fn serve(
        self,
        threads: Vec<mpsc::UnboundedSender<std::net::TcpStream>>,
    ) -> anyhow::Result<Acceptor> {
        let listener = tokio::net::TcpListener::from_std(self.listener)?;
        Ok(Acceptor(actix_rt::spawn(async move {
            let mut next = 0usize;
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of descriptors, most likely: the engine will time out.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let Ok(stream) = stream.into_std() else {
                    continue;
                };
                if threads.iter().all(|t| t.is_closed()) {
                    break;
                }
                let _ = threads[next % threads.len()].send(stream);
                next += 1;
            }
        })))
    }
}

/// The fake's accept loop; dropping it stops the loop and closes the listener.
pub(super) struct Acceptor(actix_rt::task::JoinHandle<()>);

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// On a generator thread: runs a session for every connection dealt to it.
pub(super) async fn fake_acceptor(
    worker: Rc<Worker>,
    shared: Arc<AiShared>,
    api_key: Rc<str>,
    mut sockets: mpsc::UnboundedReceiver<std::net::TcpStream>,
) {
    while let Some(socket) = sockets.recv().await {
        let Ok(stream) = tokio::net::TcpStream::from_std(socket) else {
            shared.handshake_failures.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let worker = Rc::clone(&worker);
        let shared = Arc::clone(&shared);
        let key = Rc::clone(&api_key);
        let tasks = Rc::clone(&worker);
        let task = actix_rt::spawn(async move {
            match handshake(stream, &key, &shared).await {
                Ok(ws) => fake_session(worker, shared, ws).await,
                Err(err) => tracing::debug!(error = %err, "fake OpenAI handshake failed"),
            }
        });
        tasks.tasks.borrow_mut().push(task);
    }
}

/// What the head of a WebSocket upgrade request says, as far as the fake cares.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct UpgradeRequest<'a> {
    pub(super) path: &'a str,
    pub(super) key: Option<&'a str>,
    pub(super) bearer: Option<&'a str>,
}

pub(super) fn parse_upgrade(head: &str) -> Option<UpgradeRequest<'_>> {
    let mut lines = head.split("\r\n");
    let mut request = lines.next()?.split_whitespace();
    if request.next()? != "GET" {
        return None;
    }
    let path = request.next()?;
    let (mut key, mut bearer) = (None, None);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.trim().eq_ignore_ascii_case("sec-websocket-key") {
            key = Some(value);
        } else if name.trim().eq_ignore_ascii_case("authorization") {
            bearer = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "));
        }
    }
    Some(UpgradeRequest { path, key, bearer })
}

async fn handshake(
    mut stream: tokio::net::TcpStream,
    api_key: &str,
    shared: &AiShared,
) -> anyhow::Result<WsClient> {
    let (head, read) = read_upgrade_head(&mut stream).await?;

    let refuse = |status: &str| format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
    let Some(request) = parse_upgrade(&head) else {
        shared.handshake_failures.fetch_add(1, Ordering::Relaxed);
        stream
            .write_all(refuse("400 Bad Request").as_bytes())
            .await?;
        anyhow::bail!("not an upgrade request");
    };
    if request.bearer != Some(api_key) {
        shared.bearer_refused.fetch_add(1, Ordering::Relaxed);
        stream
            .write_all(refuse("401 Unauthorized").as_bytes())
            .await?;
        anyhow::bail!("no or wrong bearer key");
    }
    let (Some(key), true) = (request.key, request.path.starts_with(REALTIME_PATH)) else {
        shared.handshake_failures.fetch_add(1, Ordering::Relaxed);
        stream.write_all(refuse("404 Not Found").as_bytes()).await?;
        anyhow::bail!("wrong path or no key: {}", request.path);
    };
    let ws = switch_protocols(stream, read, key).await?;
    shared.sessions_opened.fetch_add(1, Ordering::Relaxed);
    Ok(ws)
}

/// A client event, as the fake sorts it.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ClientEvent<'a> {
    /// `input_audio_buffer.append`: its base64 audio.
    Append(&'a [u8]),
    /// `session.update`; `pcmu`: both audio formats are `audio/pcmu`.
    SessionUpdate {
        pcmu: bool,
    },
    Other,
    Unreadable,
}

/// Sorts a client event. `append`s (50 a second per call) are found by scanning;
/// the rest, rare, are parsed.
pub(super) fn client_event(text: &[u8]) -> ClientEvent<'_> {
    const APPEND: &[u8] = br#""type":"input_audio_buffer.append""#;
    const AUDIO: &[u8] = br#""audio":""#;
    if find(text, APPEND).is_some() {
        if let Some(at) = find(text, AUDIO) {
            let rest = &text[at + AUDIO.len()..];
            if let Some(end) = rest.iter().position(|&b| b == b'"') {
                return ClientEvent::Append(&rest[..end]);
            }
        }
        return ClientEvent::Unreadable;
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(text) else {
        return ClientEvent::Unreadable;
    };
    match value["type"].as_str() {
        Some("session.update") => {
            let audio = &value["session"]["audio"];
            let pcmu = |dir: &str| audio[dir]["format"]["type"] == "audio/pcmu";
            ClientEvent::SessionUpdate {
                pcmu: pcmu("input") && pcmu("output"),
            }
        }
        Some(_) => ClientEvent::Other,
        None => ClientEvent::Unreadable,
    }
}

/// The `response.output_audio.delta` answering an append of call `call`.
pub(super) fn audio_delta(out: &mut String, call: u32, event: u64, frame: &[u8]) {
    out.clear();
    let _ = write!(
        out,
        r#"{{"type":"response.output_audio.delta","event_id":"event_lt{event}","response_id":"resp_lt{call}","item_id":"item_lt{call}","output_index":0,"content_index":0,"delta":""#
    );
    STANDARD.encode_string(frame, out);
    out.push_str(r#""}"#);
}

fn session_json(id: &str) -> serde_json::Value {
    serde_json::json!({
        "object": "realtime.session",
        "type": "realtime",
        "id": id,
        "model": "gpt-realtime",
        "output_modalities": ["audio"],
        "audio": {
            "input": { "format": { "type": "audio/pcmu" }, "turn_detection": { "type": "server_vad" } },
            "output": { "format": { "type": "audio/pcmu" }, "voice": "marin" },
        },
    })
}

/// One realtime session: answers every appended frame with a delta at once.
async fn fake_session(worker: Rc<Worker>, shared: Arc<AiShared>, mut ws: WsClient) {
    let session_id = format!("sess_lt{}", uuid::Uuid::new_v4().simple());
    let created = serde_json::json!({
        "type": "session.created",
        "event_id": "event_lt0",
        "session": session_json(&session_id),
    });
    if ws.send(Message::Text(&created.to_string())).await.is_err() {
        shared.sessions_dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let mut expected = Stamp {
        direction: CALLER_TO_AGENT,
        call: 0,
        seq: 0,
        sent_ns: 0,
    };
    let mut known = false;
    let mut next_seq = 0;
    let mut events = 0u64;
    let mut audio = [0u8; 2048];
    let mut out = String::with_capacity(512);
    loop {
        let text = match ws.next().await {
            Some(Ok(Frame::Text(text))) => text,
            Some(Ok(Frame::Ping(payload))) => {
                let _ = ws.send(Message::Pong(&payload)).await;
                continue;
            }
            Some(Ok(Frame::Binary(_) | Frame::Pong)) => continue,
            Some(Ok(Frame::Close(_))) => {
                shared.sessions_closed.fetch_add(1, Ordering::Relaxed);
                let _ = ws.send(Message::Close).await;
                break;
            }
            Some(Err(_)) | None => {
                if hanging_up(&worker.phases) {
                    shared
                        .sessions_ended_without_close
                        .fetch_add(1, Ordering::Relaxed);
                } else {
                    shared.sessions_dropped.fetch_add(1, Ordering::Relaxed);
                }
                break;
            }
        };
        events += 1;
        match client_event(&text) {
            ClientEvent::Append(payload) => {
                let Ok(len) = STANDARD.decode_slice(payload, &mut audio) else {
                    shared.foreign_appends.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let Some(stamp) = (len == FRAME_BYTES)
                    .then(|| decode_frame(&audio[..len]))
                    .flatten()
                else {
                    shared.foreign_appends.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                if !known {
                    known = true;
                    expected.call = stamp.call;
                }
                worker.received(expected, &audio[..len], &mut next_seq);
                let reply = encode_frame(Stamp {
                    direction: AGENT_TO_CALLER,
                    call: stamp.call,
                    seq: stamp.seq,
                    sent_ns: worker.clock.now_ns(),
                });
                audio_delta(&mut out, stamp.call, events, &reply);
                let ok = ws.send(Message::Text(&out)).await.is_ok();
                let mut stats = worker.stats.borrow_mut();
                if ok {
                    stats.agent_to_caller.sent += 1;
                } else {
                    stats.send_errors += 1;
                }
            }
            ClientEvent::SessionUpdate { pcmu } => {
                if !pcmu {
                    shared.sessions_not_pcmu.fetch_add(1, Ordering::Relaxed);
                }
                let updated = serde_json::json!({
                    "type": "session.updated",
                    "event_id": format!("event_lt{events}"),
                    "session": session_json(&session_id),
                });
                if ws.send(Message::Text(&updated.to_string())).await.is_ok() {
                    shared.sessions_ready.fetch_add(1, Ordering::Relaxed);
                }
            }
            ClientEvent::Other => {
                shared.other_events.fetch_add(1, Ordering::Relaxed);
            }
            ClientEvent::Unreadable => {
                shared.unreadable_events.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The fake's counters in the report.
#[derive(Debug, Serialize)]
pub(super) struct FakeOpenAiReport {
    pub(super) sessions_opened: u64,
    pub(super) sessions_ready: u64,
    pub(super) bearer_refused: u64,
    pub(super) handshake_failures: u64,
    pub(super) sessions_not_pcmu: u64,
    pub(super) other_client_events: u64,
    pub(super) unreadable_events: u64,
    pub(super) foreign_appends: u64,
    pub(super) sessions_closed: u64,
    pub(super) sessions_ended_without_close: u64,
    pub(super) sessions_dropped: u64,
}

impl From<&AiShared> for FakeOpenAiReport {
    fn from(s: &AiShared) -> Self {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FakeOpenAiReport {
            sessions_opened: get(&s.sessions_opened),
            sessions_ready: get(&s.sessions_ready),
            bearer_refused: get(&s.bearer_refused),
            handshake_failures: get(&s.handshake_failures),
            sessions_not_pcmu: get(&s.sessions_not_pcmu),
            other_client_events: get(&s.other_events),
            unreadable_events: get(&s.unreadable_events),
            foreign_appends: get(&s.foreign_appends),
            sessions_closed: get(&s.sessions_closed),
            sessions_ended_without_close: get(&s.sessions_ended_without_close),
            sessions_dropped: get(&s.sessions_dropped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_are_found_without_parsing_and_the_rest_is_parsed() {
        let append = br#"{"type":"input_audio_buffer.append","audio":"//8A"}"#;
        assert_eq!(client_event(append), ClientEvent::Append(b"//8A"));
        let update = serde_json::json!({
            "type": "session.update",
            "session": {
                "type": "realtime",
                "audio": {
                    "input": { "format": { "type": "audio/pcmu" } },
                    "output": { "format": { "type": "audio/pcmu" }, "voice": "marin" },
                },
            },
        })
        .to_string();
        assert_eq!(
            client_event(update.as_bytes()),
            ClientEvent::SessionUpdate { pcmu: true }
        );
        let pcm = update.replacen("audio/pcmu", "audio/pcm", 1);
        assert_eq!(
            client_event(pcm.as_bytes()),
            ClientEvent::SessionUpdate { pcmu: false }
        );
        let truncate = br#"{"type":"conversation.item.truncate","item_id":"i","content_index":0,"audio_end_ms":20}"#;
        assert_eq!(client_event(truncate), ClientEvent::Other);
        assert_eq!(client_event(b"not json"), ClientEvent::Unreadable);
        assert_eq!(client_event(br#"{"no":"type"}"#), ClientEvent::Unreadable);
    }

    #[test]
    fn the_delta_carries_the_frame_and_the_call_ids() {
        let stamp = Stamp {
            direction: AGENT_TO_CALLER,
            call: 42,
            seq: 7,
            sent_ns: 123,
        };
        let mut out = String::new();
        audio_delta(&mut out, 42, 9, &encode_frame(stamp));
        let value: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        assert_eq!(value["type"], "response.output_audio.delta");
        assert_eq!(value["response_id"], "resp_lt42");
        assert_eq!(value["item_id"], "item_lt42");
        let delta = STANDARD
            .decode(value["delta"].as_str().expect("a delta"))
            .expect("base64");
        assert_eq!(decode_frame(&delta), Some(stamp));
    }

    #[actix_rt::test]
    async fn the_fake_requires_the_bearer_key() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "ws://{}/v1/realtime?model=m",
            listener.local_addr().expect("addr")
        );
        let shared = Arc::new(AiShared::default());
        let server = Arc::clone(&shared);
        actix_rt::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = handshake(stream, "sk-right", &server).await;
            }
        });
        let refused = WsClient::connect(&url, &[("Authorization", "Bearer sk-wrong")]).await;
        assert!(refused.err().is_some_and(|e| e.to_string().contains("401")));
        let anonymous = WsClient::connect(&url, &[]).await;
        assert!(anonymous.is_err());
        let accepted = WsClient::connect(&url, &[("Authorization", "Bearer sk-right")]).await;
        assert!(accepted.is_ok());
        assert_eq!(shared.bearer_refused.load(Ordering::Relaxed), 2);
        assert_eq!(shared.sessions_opened.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_upgrade_request_names_its_key_and_bearer() {
        let head = "GET /v1/realtime?model=gpt-realtime HTTP/1.1\r\nHost: x\r\n\
                    authorization: Bearer sk-1\r\nSec-WebSocket-Key: abc==\r\n\r\n";
        assert_eq!(
            parse_upgrade(head),
            Some(UpgradeRequest {
                path: "/v1/realtime?model=gpt-realtime",
                key: Some("abc=="),
                bearer: Some("sk-1"),
            })
        );
        let no_auth = "GET /v1/realtime HTTP/1.1\r\nSec-WebSocket-Key: k\r\n\r\n";
        assert_eq!(parse_upgrade(no_auth).and_then(|r| r.bearer), None);
        assert_eq!(parse_upgrade("POST / HTTP/1.1\r\n\r\n"), None);
    }
}
