//! What the softphone and Twilio stream tasks of both scenarios share: reading the
//! next frame (pings, closes and broken sockets), the engine messages every
//! softphone treats alike, and the Twilio media stream's own chores.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;

use super::controller::Phase;
use super::frame::find;
use super::worker::{hanging_up, PhoneSlot, Worker};
use super::ws::{Frame, Message, WsClient};
use super::HANGUP_TIMEOUT;

/// What the softphone side needs from one engine message.
#[derive(Deserialize)]
pub(super) struct EngineMessage<'a> {
    #[serde(rename = "type", borrow)]
    pub(super) kind: Cow<'a, str>,
    #[serde(default, borrow)]
    pub(super) call_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(super) reason: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(super) code: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(super) message: Option<Cow<'a, str>>,
}

/// A frame read by [`incoming`], as far as the scenario is concerned.
pub(super) enum Incoming {
    Binary(Bytes),
    Text(Bytes),
    /// Taken care of (a ping, or a frame nobody needs): read on.
    Handled,
    /// The socket is done: leave the loop.
    Done,
}

/// Whether the test is hanging up: the task has seen the phase change (and set its
/// close deadline `hangup`), or the controller has called it already.
pub(super) fn closing(
    hangup: Option<tokio::time::Instant>,
    phases: &watch::Receiver<Phase>,
) -> bool {
    hangup.is_some() || hanging_up(phases)
}

/// Sorts the result of `ws.next()` for `peer` `index` ("softphone 3", "twilio
/// stream 3"): pings are answered here; an error, the socket ending (unless
/// `end_expected()`) or a close from the engine (unless `closing()`) is an
/// unexpected close and ends the loop.
pub(super) async fn incoming(
    worker: &Worker,
    peer: &str,
    index: usize,
    ws: &mut WsClient,
    frame: Option<std::io::Result<Frame>>,
    end_expected: impl FnOnce() -> bool,
    closing: impl FnOnce() -> bool,
) -> Incoming {
    let frame = match frame {
        Some(Ok(frame)) => frame,
        Some(Err(err)) => {
            worker.unexpected_close(format!("{peer} {index}: {err}"));
            return Incoming::Done;
        }
        None => {
            if !end_expected() {
                worker.unexpected_close(format!("{peer} {index}: socket ended"));
            }
            return Incoming::Done;
        }
    };
    match frame {
        Frame::Binary(audio) => Incoming::Binary(audio),
        Frame::Text(text) => Incoming::Text(text),
        Frame::Ping(payload) => {
            let _ = ws.send(Message::Pong(&payload)).await;
            Incoming::Handled
        }
        Frame::Close(reason) => {
            if !closing() {
                worker
                    .unexpected_close(format!("{peer} {index}: closed by the engine: {reason:?}"));
            }
            Incoming::Done
        }
        Frame::Pong => Incoming::Handled,
    }
}

/// Notes that `peer` `index` did not close in time after the hang-up (`after`:
/// "the hang-up" or "stop").
pub(super) fn no_close(worker: &Worker, peer: &str, index: usize, after: &str) {
    worker.note(format!(
        "{peer} {index}: no close within {HANGUP_TIMEOUT:?} of {after}"
    ));
}

// ---- softphones ----------------------------------------------------------------

/// The engine message in `text`, or `None` (noted) when it is unreadable.
pub(super) fn engine_message<'a>(
    worker: &Worker,
    index: usize,
    text: &'a [u8],
) -> Option<EngineMessage<'a>> {
    let message = serde_json::from_slice::<EngineMessage<'_>>(text);
    if message.is_err() {
        worker.note(format!("softphone {index}: unreadable {text:?}"));
    }
    message.ok()
}

/// `ring`: counted; the phone's `own` call is answered, once. A failed answer
/// settles `slot`.
pub(super) async fn ring(
    worker: &Worker,
    ws: &mut WsClient,
    own: bool,
    answered: &mut bool,
    call_id: Option<&str>,
    slot: Option<&PhoneSlot>,
) {
    worker.stats.borrow_mut().rings += 1;
    if own && !*answered {
        *answered = true;
        let answer = json!({ "type": "answer", "call_id": call_id });
        if ws.send(Message::Text(&answer.to_string())).await.is_err() {
            if let Some(slot) = slot {
                slot.settle(Err("could not send answer".into()));
            }
        }
    }
}

/// `call_ended` for the phone's own call: the socket closes if the test is
/// `closing`; otherwise the call ended early, which is noted.
pub(super) async fn own_call_ended(
    worker: &Worker,
    index: usize,
    ws: &mut WsClient,
    message: &EngineMessage<'_>,
    closing: bool,
) {
    if closing {
        let _ = ws.send(Message::Close).await;
    } else {
        let reason = message.reason.as_deref().unwrap_or("?");
        worker.note(format!("softphone {index}: call ended early ({reason})"));
    }
}

/// `error`: counted and noted.
pub(super) fn engine_error(worker: &Worker, index: usize, message: &EngineMessage<'_>) {
    worker.stats.borrow_mut().engine_errors += 1;
    worker.note(format!(
        "softphone {index}: error {} {}",
        message.code.as_deref().unwrap_or("?"),
        message.message.as_deref().unwrap_or("")
    ));
}

// ---- Twilio media streams ------------------------------------------------------

/// The base64 payload of a Twilio `media` message, if `text` is one.
pub(super) fn media_payload(text: &[u8]) -> Option<&[u8]> {
    const PAYLOAD: &[u8] = br#""payload":""#;
    let at = find(text, PAYLOAD)?;
    let rest = &text[at + PAYLOAD.len()..];
    let end = rest.iter().position(|&b| b == b'"').unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Echoes a `mark` at once, as if the audio before it had played.
pub(super) async fn echo_mark(ws: &mut WsClient, stream_sid: &str, text: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(text) {
        let echo = json!({
            "event": "mark",
            "streamSid": stream_sid,
            "mark": { "name": value["mark"]["name"] },
        });
        let _ = ws.send(Message::Text(&echo.to_string())).await;
    }
}

/// Twilio's `stop` at the hang-up; `seq` is the stream's message count so far.
pub(super) async fn send_stop(ws: &mut WsClient, stream_sid: &str, seq: u64) {
    let stop = json!({
        "event": "stop",
        "sequenceNumber": (seq + 1).to_string(),
        "streamSid": stream_sid,
        "stop": { "accountSid": "AC00000000000000000000000000000000" },
    });
    let _ = ws.send(Message::Text(&stop.to_string())).await;
}
