//! `GET /twilio/stream`: Twilio Media Streams. The socket is read by the same
//! [`ws::frames`] as every other socket (frame bound, pings, close, violations); the
//! handshake (`connected`, `start`) is read here, and from `start` on the socket
//! drives the call's [`MediaLeg`] actor.
//!
//! In: `connected`, `start`, `media`, `mark`, `dtmf`, `stop`. Out: `media`, `mark`,
//! `clear`. Audio is 8 kHz mu-law, base64 in `media.payload`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{BufMut as _, Bytes};
use bytestring::ByteString;
use futures_util::{Stream, StreamExt as _};
use serde::Deserialize;
use switchboard_actors::framebuf::FrameBuf;
use switchboard_actors::leg::{LegControl, LegHandle, LegInput, MediaLeg};
use switchboard_actors::outbox::{Outbox, CLOSE_POLICY};
use switchboard_actors::CallId;

use super::verify_request;
use crate::engine::Engine;
use crate::error::{ApiError, ErrorBody};
use crate::net::socket::{self, Render, WireFrame};
use crate::ws::{self, Frame};

/// Twilio must send `start` this soon after opening the socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// One inbound Media Streams message. Borrowed where it matters: `media` arrives
/// fifty times a second per call.
#[derive(Debug, Deserialize)]
pub struct Inbound<'a> {
    #[serde(borrow)]
    pub event: Cow<'a, str>,
    #[serde(borrow, default)]
    pub media: Option<Media<'a>>,
    #[serde(default)]
    pub start: Option<Start>,
    #[serde(default)]
    pub mark: Option<Named>,
    #[serde(default)]
    pub dtmf: Option<Dtmf>,
}

#[derive(Debug, Deserialize)]
pub struct Media<'a> {
    #[serde(borrow)]
    pub payload: Cow<'a, str>,
}

#[derive(Debug, Deserialize)]
pub struct Start {
    #[serde(rename = "streamSid")]
    pub stream_sid: String,
    #[serde(rename = "callSid")]
    pub call_sid: String,
    #[serde(default, rename = "customParameters")]
    pub custom_parameters: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub struct Named {
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub struct Dtmf {
    pub digit: String,
}

/// Twilio Media Stream (WebSocket upgrade)
///
/// The caller's audio, both ways, for the call's life. The upgrade carries
/// `X-Twilio-Signature` over the `ws://`/`wss://` public URL and the path. The
/// messages are Twilio's Media Streams JSON: see docs/protocol.md §3.
#[utoipa::path(get, path = "/twilio/stream", tag = "sockets",
    security(("twilio_signature" = [])),
    responses(
        (status = 101, description = "Switching protocols: the media stream (docs/protocol.md §3)"),
        (status = 400, description = "`bad-upgrade`: not a WebSocket upgrade", body = ErrorBody),
        (status = 403, description = "A missing or wrong signature", body = ErrorBody),
    ))]
pub async fn stream(
    engine: web::Data<Engine>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let ws_base = engine
        .stream_url()
        .trim_end_matches("/twilio/stream")
        .to_owned();
    verify_request(&engine, &req, &ws_base, &[]).map_err(|err| {
        tracing::warn!(%err, "refused a media stream upgrade");
        ApiError::forbidden(err.to_string())
    })?;
    let outbox = Outbox::new(engine.outbox_limits, Arc::clone(&engine.stats));
    // The stream's `streamSid`, which every message out carries, comes with
    // `start`: until then the socket renders through an empty one (it sends
    // nothing but a close before `start`).
    let wire = Rc::new(RefCell::new(TwilioWire::new(String::new())));
    let frames = socket::Frames::fragmented(engine.settings.websocket.max_frame_bytes);
    let (response, messages) =
        socket::accept(&req, body, outbox.clone(), Rc::clone(&wire), frames)?;
    let engine = engine.into_inner();
    let mut frames = ws::frames(messages, outbox.clone()).boxed_local();
    actix_rt::spawn(async move {
        match handshake(&mut frames).await {
            Ok(start) => {
                *wire.borrow_mut() = TwilioWire::new(start.stream_sid.clone());
                attach(engine, start, frames, outbox).await;
            }
            Err(reason) => {
                tracing::warn!(%reason, "media stream closed before it started");
                outbox.close(CLOSE_POLICY, reason);
            }
        }
    });
    Ok(response)
}

/// Reads until `start`. Media before `start` has no call to go to: dropped, logged.
async fn handshake(frames: &mut (impl Stream<Item = Frame> + Unpin)) -> Result<Start, String> {
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        let next = tokio::time::timeout_at(deadline, frames.next())
            .await
            .map_err(|_| "no start message in time".to_owned())?;
        let text = match next {
            None => return Err("closed before start".into()),
            Some(Frame::Violation(reason)) => return Err(reason),
            Some(Frame::Text(text)) => text,
            Some(Frame::Binary(_) | Frame::Pong | Frame::Unsupported(_)) => continue,
        };
        let inbound: Inbound<'_> = match serde_json::from_str(&text) {
            Ok(inbound) => inbound,
            Err(err) => {
                tracing::warn!(%err, "unparseable media stream message before start");
                continue;
            }
        };
        match (inbound.event.as_ref(), inbound.start) {
            ("start", Some(start)) => return Ok(start),
            ("start", None) => return Err("start without a start object".into()),
            ("connected", _) => {}
            ("media", _) => tracing::warn!("media before start: dropped"),
            ("stop", _) => return Err("stopped before start".into()),
            (other, _) => tracing::warn!(event = other, "unexpected event before start"),
        }
    }
}

async fn attach(
    engine: Arc<Engine>,
    start: Start,
    frames: impl Stream<Item = Frame> + 'static,
    outbox: Outbox<LegControl>,
) {
    let call_id = start
        .custom_parameters
        .get("call_id")
        .and_then(|v| v.as_str())
        .and_then(|raw| CallId::parse(raw).ok());
    let call = match engine.registry.lookup_sid(start.call_sid.clone()).await {
        Ok(Some(call)) if Some(call.id()) == call_id.as_ref() => call,
        _ => {
            tracing::warn!(call_sid = %start.call_sid, ?call_id, "media stream for an unknown call");
            outbox.close(CLOSE_POLICY, "unknown call");
            return;
        }
    };
    let input = inputs(frames, outbox.clone());
    let leg = MediaLeg::start(
        call.clone(),
        outbox.clone(),
        Arc::clone(&engine.stats),
        input,
    );
    let handle = LegHandle {
        addr: leg,
        outbox: outbox.clone(),
        stream_sid: start.stream_sid,
        arbiter: actix::Arbiter::current(),
    };
    if let Err(err) = call.attach(handle.clone()).await {
        tracing::warn!(call_id = %call.id(), %err, "media stream refused");
        handle.hang_up(err.to_string());
    }
}

/// The socket after `start`, as leg input. Ends when Twilio closes the socket or
/// breaks the protocol (an oversized frame, say), which closes it with 1008.
fn inputs(
    frames: impl Stream<Item = Frame>,
    outbox: Outbox<LegControl>,
) -> impl Stream<Item = LegInput> {
    // The caller's frames are decoded into this buffer, reused frame after frame.
    let mut buf = FrameBuf::new();
    frames.filter_map(move |frame| {
        let input = match frame {
            Frame::Text(text) => parse(&text, &mut buf),
            Frame::Violation(reason) => {
                tracing::warn!(%reason, "media stream protocol violation");
                outbox.close(CLOSE_POLICY, reason);
                None
            }
            Frame::Binary(_) | Frame::Pong | Frame::Unsupported(_) => None,
        };
        std::future::ready(input)
    })
}

/// Reads one text frame of the stream after `start`: the inbound hot path (`media`
/// fifty times a second per call), a `media` payload decoded into `buf`. What is
/// not leg input is logged and skipped.
pub fn parse(text: &str, buf: &mut FrameBuf) -> Option<LegInput> {
    let inbound: Inbound<'_> = match serde_json::from_str(text) {
        Ok(inbound) => inbound,
        Err(err) => {
            tracing::warn!(%err, "unparseable media stream message");
            return None;
        }
    };
    match inbound.event.as_ref() {
        "media" => {
            let payload = inbound.media?.payload;
            match buf.decode_base64(payload.as_bytes()) {
                Ok(audio) => Some(LegInput::Media(audio)),
                Err(_) => {
                    tracing::warn!("media payload is not base64");
                    None
                }
            }
        }
        "mark" => inbound.mark.map(|m| LegInput::Mark(m.name)),
        "dtmf" => inbound.dtmf.map(|d| LegInput::Dtmf(d.digit)),
        "stop" => Some(LegInput::Stop),
        "connected" | "start" => None,
        other => {
            tracing::debug!(event = other, "ignored media stream event");
            None
        }
    }
}

/// Renders outgoing items as Twilio Media Streams JSON for one stream, into one
/// reused buffer (`media` by a fixed template: the outbound hot path).
pub struct TwilioWire {
    /// `{"event":"media","streamSid":"MZ…","media":{"payload":"` — built once.
    media_prefix: String,
    stream_sid_json: String,
    buf: FrameBuf,
}

impl TwilioWire {
    pub fn new(stream_sid: String) -> Self {
        let stream_sid_json = serde_json::to_string(&stream_sid).unwrap_or_default();
        Self {
            media_prefix: format!(
                r#"{{"event":"media","streamSid":{stream_sid_json},"media":{{"payload":""#
            ),
            stream_sid_json,
            buf: FrameBuf::new(),
        }
    }

    /// One outbound `media` message (the outbound hot path).
    pub fn media(&mut self, frame: &[u8]) -> ByteString {
        text(
            self.buf
                .base64_between(self.media_prefix.as_bytes(), frame, br#""}}"#),
        )
    }
}

/// What the wire templates render is UTF-8 by construction.
fn text(bytes: Bytes) -> ByteString {
    ByteString::try_from(bytes).unwrap_or_default()
}

impl Render<LegControl> for TwilioWire {
    fn control(&mut self, message: LegControl) -> ByteString {
        let sid = self.stream_sid_json.as_bytes();
        text(match message {
            LegControl::Mark(name) => {
                let name = serde_json::to_string(&name).unwrap_or_default();
                self.buf.message(sid.len() + name.len() + 48, |out| {
                    out.put_slice(br#"{"event":"mark","streamSid":"#);
                    out.put_slice(sid);
                    out.put_slice(br#","mark":{"name":"#);
                    out.put_slice(name.as_bytes());
                    out.put_slice(b"}}");
                })
            }
            LegControl::NumberedMark { prefix, seq } => {
                self.buf.message(sid.len() + prefix.len() + 68, |out| {
                    out.put_slice(br#"{"event":"mark","streamSid":"#);
                    out.put_slice(sid);
                    out.put_slice(br#","mark":{"name":""#);
                    // `fmt` writes the number straight into the buffer: no String.
                    let _ = write!(out, "{prefix}{seq}");
                    out.put_slice(br#""}}"#);
                })
            }
            LegControl::Clear => self.buf.message(sid.len() + 32, |out| {
                out.put_slice(br#"{"event":"clear","streamSid":"#);
                out.put_slice(sid);
                out.put_slice(b"}");
            }),
        })
    }

    fn audio(&mut self, frame: Bytes) -> WireFrame {
        WireFrame::Text(self.media(&frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbound_media_carries_the_stream_sid_and_base64_audio() {
        let mut wire = TwilioWire::new("MZ123".into());
        let json: serde_json::Value =
            serde_json::from_str(&wire.media(&[0xFF, 0x00, 0x7F])).expect("valid JSON");
        assert_eq!(json["event"], "media");
        assert_eq!(json["streamSid"], "MZ123");
        assert_eq!(json["media"]["payload"], "/wB/");
    }

    #[test]
    fn inbound_media_decodes_byte_exact() {
        let text = r#"{"event":"media","sequenceNumber":"3","media":{"track":"inbound","chunk":"1","timestamp":"5","payload":"/wB/"},"streamSid":"MZ1"}"#;
        assert_eq!(
            parse(text, &mut FrameBuf::new()),
            Some(LegInput::Media(Bytes::from_static(&[0xFF, 0x00, 0x7F])))
        );
    }

    #[test]
    fn marks_dtmf_and_stop_are_recognised_and_junk_is_not() {
        let buf = &mut FrameBuf::new();
        let mut parse = |text: &str| parse(text, buf);
        assert_eq!(
            parse(r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"m1"}}"#),
            Some(LegInput::Mark("m1".into()))
        );
        assert_eq!(
            parse(r#"{"event":"dtmf","dtmf":{"track":"inbound_track","digit":"7"}}"#),
            Some(LegInput::Dtmf("7".into()))
        );
        assert_eq!(parse(r#"{"event":"stop","stop":{}}"#), Some(LegInput::Stop));
        assert_eq!(parse("not json"), None);
        assert_eq!(parse(r#"{"event":"media","media":{"payload":"!!"}}"#), None);
    }

    /// Twilio's inbound `media` for one 20 ms frame (fields as Twilio sends them).
    pub(crate) fn inbound_media(n: u32) -> String {
        use base64::Engine as _;
        let frame = [n as u8; 160];
        let payload = base64::engine::general_purpose::STANDARD.encode(frame);
        format!(
            r#"{{"event":"media","sequenceNumber":"{n}","media":{{"track":"inbound","chunk":"{n}","timestamp":"{}","payload":"{payload}"}},"streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0"}}"#,
            n * 20
        )
    }

    #[test]
    fn no_frame_allocates_at_steady_state_caller_to_softphone_or_softphone_to_caller() {
        use std::hint::black_box;
        use std::pin::Pin;
        use std::task::{Context, Poll, Waker};

        use actix_web::body::MessageBody as _;
        use switchboard_actors::outbox::{Outbox, OutboxLimits};

        use crate::net::socket::OutboxBody;
        use switchboard_actors::seat::SeatOutput;
        use switchboard_actors::stats::EngineStats;

        let stats = Arc::new(EngineStats::default());
        let seat: Outbox<SeatOutput> = Outbox::new(OutboxLimits::default(), Arc::clone(&stats));
        let leg: Outbox<LegControl> = Outbox::new(OutboxLimits::default(), stats);
        let texts: Vec<String> = (0..50).map(inbound_media).collect();
        let softphone_frames: Vec<Bytes> = (0..50u8).map(|n| Bytes::from(vec![n; 160])).collect();
        let mut buf = FrameBuf::new();
        let (closed, _gone) = tokio::sync::oneshot::channel();
        let mut seat_body = OutboxBody::new(seat.clone(), crate::ws::agent::SeatWire, closed);
        let (closed, _gone) = tokio::sync::oneshot::channel();
        let wire = TwilioWire::new("MZ18ad3ab5a668481ce02b83e7395059f0".into());
        let mut leg_body = OutboxBody::new(leg.clone(), wire, closed);
        let mut cx = Context::from_waker(Waker::noop());

        // Caller → softphone: the stream's parse (base64 into the reused buffer),
        // cut into 20 ms frames, the softphone's outbox, its socket's body (the
        // frame rendered and encoded as the HTTP/1 dispatcher polls it).
        let mut caller_to_softphone = |frames: usize| {
            for n in 0..frames {
                let Some(LegInput::Media(audio)) = parse(&texts[n % 50], &mut buf) else {
                    panic!("media is media")
                };
                for frame in switchboard_actors::audio::frames(audio) {
                    seat.send_audio(frame);
                }
                let Poll::Ready(Some(Ok(out))) = Pin::new(&mut seat_body).poll_next(&mut cx) else {
                    panic!("one frame in, one out")
                };
                // A binary frame (FIN, opcode 2), its 16-bit length (160), the audio.
                assert_eq!(
                    black_box(&out[..5]),
                    &[0x82, 126, 0, 160, (n % 50) as u8][..]
                );
                assert!(Pin::new(&mut seat_body).poll_next(&mut cx).is_pending());
            }
        };
        caller_to_softphone(1_000);
        let counted = allocation_counter::measure(|| caller_to_softphone(10_000));
        assert_eq!(
            counted.count_total, 0,
            "caller → softphone allocated {} times in 10,000 frames",
            counted.count_total
        );

        // Softphone → caller: the leg's outbox, Twilio's `media` by its template
        // through the stream's body; a mark behind every fifth frame (an
        // assistant's, every 100 ms).
        let mut softphone_to_caller = |frames: usize| {
            for n in 0..frames {
                leg.send_audio(softphone_frames[n % 50].clone());
                if n % 5 == 4 {
                    leg.send_after_audio(LegControl::NumberedMark {
                        prefix: "ai:",
                        seq: n as u64,
                    });
                }
                while let Poll::Ready(Some(Ok(out))) = Pin::new(&mut leg_body).poll_next(&mut cx) {
                    // A text frame (FIN, opcode 1); a 16-bit length follows a
                    // length byte of 126 (a `media`), not a shorter one (a mark).
                    assert_eq!(black_box(out[0]), 0x81);
                    let json = if out[1] == 126 { &out[4..] } else { &out[2..] };
                    assert!(json.starts_with(br#"{"event":""#));
                }
            }
        };
        softphone_to_caller(1_000);
        let counted = allocation_counter::measure(|| softphone_to_caller(10_000));
        assert_eq!(
            counted.count_total, 0,
            "softphone → caller allocated {} times in 10,000 frames",
            counted.count_total
        );
    }

    #[test]
    fn a_numbered_mark_and_a_clear_render_as_twilio_expects() {
        let mut wire = TwilioWire::new("MZ1".into());
        let mark: serde_json::Value =
            serde_json::from_str(&wire.control(LegControl::NumberedMark {
                prefix: "ai:",
                seq: 42,
            }))
            .expect("valid JSON");
        assert_eq!(
            mark,
            serde_json::json!({"event": "mark", "streamSid": "MZ1", "mark": {"name": "ai:42"}})
        );
        let clear: serde_json::Value =
            serde_json::from_str(&wire.control(LegControl::Clear)).expect("valid JSON");
        assert_eq!(
            clear,
            serde_json::json!({"event": "clear", "streamSid": "MZ1"})
        );
    }
}
