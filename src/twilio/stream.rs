//! `GET /twilio/stream`: Twilio Media Streams. The socket is read by the same
//! [`ws::frames`] as every other socket (frame bound, pings, close, violations); the
//! handshake (`connected`, `start`) is read here, and from `start` on the socket
//! drives the call's [`MediaLeg`] actor.
//!
//! In: `connected`, `start`, `media`, `mark`, `dtmf`, `stop`. Out: `media`, `mark`,
//! `clear`. Audio is 8 kHz mu-law, base64 in `media.payload`.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use bytestring::ByteString;
use futures_util::{Stream, StreamExt as _};
use serde::Deserialize;
use switchboard_actors::leg::{LegControl, LegHandle, LegInput, MediaLeg};
use switchboard_actors::outbox::{Outbox, CLOSE_POLICY};
use switchboard_actors::CallId;

use super::verify_request;
use crate::engine::Engine;
use crate::error::{ApiError, ErrorBody};
use crate::ws::writer::{self, Render, WireFrame};
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
    #[serde(default, rename = "streamSid")]
    pub stream_sid: Option<String>,
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
    let (response, session, messages) = actix_ws::handle(&req, body)?;
    let messages = messages.max_frame_size(engine.settings.websocket.max_frame_bytes);
    let outbox = Outbox::new(engine.outbox_limits, Arc::clone(&engine.stats));
    let engine = engine.into_inner();
    let mut frames = ws::frames(messages, outbox.clone()).boxed_local();
    actix_rt::spawn(async move {
        match handshake(&mut frames).await {
            Ok(start) => attach(engine, start, frames, outbox, session).await,
            Err(reason) => {
                tracing::warn!(%reason, "media stream closed before it started");
                outbox.close(CLOSE_POLICY, reason);
                writer::spawn(outbox, session, TwilioWire::new(String::new()));
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
    session: actix_ws::Session,
) {
    writer::spawn(
        outbox.clone(),
        session,
        TwilioWire::new(start.stream_sid.clone()),
    );
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
    frames.filter_map(move |frame| {
        let input = match frame {
            Frame::Text(text) => parse(&text),
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
/// fifty times a second per call). What is not leg input is logged and skipped.
pub fn parse(text: &str) -> Option<LegInput> {
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
            match STANDARD.decode(payload.as_bytes()) {
                Ok(audio) => Some(LegInput::Media(Bytes::from(audio))),
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

/// Renders outgoing items as Twilio Media Streams JSON for one stream.
pub struct TwilioWire {
    /// `{"event":"media","streamSid":"MZ…","media":{"payload":"` — built once.
    media_prefix: String,
    stream_sid_json: String,
}

impl TwilioWire {
    pub fn new(stream_sid: String) -> Self {
        let stream_sid_json = serde_json::to_string(&stream_sid).unwrap_or_default();
        Self {
            media_prefix: format!(
                r#"{{"event":"media","streamSid":{stream_sid_json},"media":{{"payload":""#
            ),
            stream_sid_json,
        }
    }

    /// One outbound `media` message (the outbound hot path).
    pub fn media(&self, frame: &[u8]) -> String {
        let mut out = String::with_capacity(self.media_prefix.len() + frame.len() * 4 / 3 + 8);
        out.push_str(&self.media_prefix);
        STANDARD.encode_string(frame, &mut out);
        out.push_str(r#""}}"#);
        out
    }
}

impl Render<LegControl> for TwilioWire {
    fn control(&mut self, message: LegControl) -> ByteString {
        let sid = &self.stream_sid_json;
        match message {
            LegControl::Mark(name) => {
                let name = serde_json::to_string(&name).unwrap_or_default();
                format!(r#"{{"event":"mark","streamSid":{sid},"mark":{{"name":{name}}}}}"#).into()
            }
            LegControl::Clear => format!(r#"{{"event":"clear","streamSid":{sid}}}"#).into(),
        }
    }

    fn audio(&mut self, frame: Bytes) -> WireFrame {
        WireFrame::Text(self.media(&frame).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbound_media_carries_the_stream_sid_and_base64_audio() {
        let wire = TwilioWire::new("MZ123".into());
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
            parse(text),
            Some(LegInput::Media(Bytes::from_static(&[0xFF, 0x00, 0x7F])))
        );
    }

    #[test]
    fn marks_dtmf_and_stop_are_recognised_and_junk_is_not() {
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
}
