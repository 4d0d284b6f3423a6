//! `GET /ws/agent?token=…`: an agent's softphone. JSON text frames are commands and
//! events (see docs/protocol.md); binary frames are the connected call's audio.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{Message, MessageStream, ProtocolError};
use bytes::Bytes;
use bytestring::ByteString;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use switchboard_actors::outbox::Outbox;
use switchboard_actors::seat::{
    Presence, SeatActor, SeatCommand, SeatInput, SeatOutput, SeatSetup,
};
use switchboard_actors::CallId;

use crate::api::auth::token_hash;
use crate::api::error::ApiError;
use crate::startup::Engine;
use crate::ws::writer::{self, Render, WireFrame};

#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

pub async fn agent_socket(
    engine: web::Data<Engine>,
    req: HttpRequest,
    body: web::Payload,
    query: web::Query<TokenQuery>,
) -> Result<HttpResponse, ApiError> {
    let token = query
        .into_inner()
        .token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("the token query parameter is missing"))?;
    let agent = engine
        .store
        .agent_by_token_hash(&token_hash(&token))
        .await?
        .ok_or_else(|| ApiError::unauthorized("unknown agent token"))?;
    let (response, session, messages) = actix_ws::handle(&req, body)?;
    let messages = messages.max_frame_size(engine.settings.websocket.max_frame_bytes);
    let outbox = Outbox::new(engine.outbox_limits, Arc::clone(&engine.stats));
    writer::spawn(outbox.clone(), session, SeatWire);
    tracing::info!(agent_id = %agent.id, "softphone connected");
    SeatActor::start(
        SeatSetup {
            agent_id: agent.id,
            workspace: agent.workspace,
            outbox: outbox.clone(),
            coordinator: engine.coordinator.clone(),
            config: engine.seat_config,
            stats: Arc::clone(&engine.stats),
        },
        inputs(messages, outbox),
    );
    Ok(response)
}

/// The socket as seat input. Ends when the peer closes or breaks the protocol.
fn inputs(
    messages: MessageStream,
    outbox: Outbox<SeatOutput>,
) -> impl futures_util::Stream<Item = SeatInput> {
    futures_util::stream::unfold(Some((messages, outbox)), |state| async move {
        let (mut messages, outbox) = state?;
        let input = match messages.next().await? {
            Ok(Message::Text(text)) => parse(&text),
            Ok(Message::Binary(frame)) => SeatInput::Audio(frame),
            Ok(Message::Ping(payload)) => {
                outbox.pong(payload);
                SeatInput::Heartbeat
            }
            Ok(Message::Pong(_)) | Ok(Message::Nop) => SeatInput::Heartbeat,
            Ok(Message::Close(_)) => return None,
            Ok(Message::Continuation(_)) => SeatInput::Invalid {
                code: "unsupported-frame",
                message: "fragmented messages are not supported".into(),
            },
            Err(ProtocolError::Overflow) => {
                // Yield the violation, then end the stream.
                return Some((
                    SeatInput::Violation("frame larger than allowed".into()),
                    None,
                ));
            }
            Err(err) => {
                return Some((SeatInput::Violation(format!("protocol error: {err}")), None))
            }
        };
        Some((input, Some((messages, outbox))))
    })
}

/// The client messages, as they are on the wire.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientMessage {
    Presence { status: String },
    Answer { call_id: String },
    Decline { call_id: String },
    Hangup { call_id: String },
}

const KNOWN_TYPES: &[&str] = &["presence", "answer", "decline", "hangup"];

fn invalid(code: &'static str, message: impl Into<String>) -> SeatInput {
    SeatInput::Invalid {
        code,
        message: message.into(),
    }
}

/// Turns one text frame into a command, or into the error the softphone is told.
pub fn parse(text: &str) -> SeatInput {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(err) => return invalid("invalid-json", format!("not JSON: {err}")),
    };
    let Some(kind) = value.get("type").and_then(|t| t.as_str()) else {
        return invalid(
            "bad-message",
            "a message is a JSON object with a string \"type\"",
        );
    };
    if !KNOWN_TYPES.contains(&kind) {
        return invalid("unknown-type", format!("unknown message type {kind:?}"));
    }
    let message: ClientMessage = match serde_json::from_value(value.clone()) {
        Ok(message) => message,
        Err(err) => return invalid("bad-message", format!("bad {kind} message: {err}")),
    };
    let call = |raw: String| {
        CallId::parse(&raw).map_err(|err| invalid("bad-message", format!("call_id: {err}")))
    };
    let command = match message {
        ClientMessage::Presence { status } => match status.as_str() {
            "available" => Ok(SeatCommand::Presence(Presence::Available)),
            "away" => Ok(SeatCommand::Presence(Presence::Away)),
            other => Err(invalid(
                "bad-message",
                format!("presence status must be \"available\" or \"away\", not {other:?}"),
            )),
        },
        ClientMessage::Answer { call_id } => call(call_id).map(SeatCommand::Answer),
        ClientMessage::Decline { call_id } => call(call_id).map(SeatCommand::Decline),
        ClientMessage::Hangup { call_id } => call(call_id).map(SeatCommand::Hangup),
    };
    command.map_or_else(|input| input, SeatInput::Command)
}

/// The engine's messages, as they are on the wire.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ServerMessage<'a> {
    Presence {
        status: &'a str,
    },
    Ring {
        call_id: &'a str,
        from: &'a str,
        to: &'a str,
    },
    RingCancel {
        call_id: &'a str,
        reason: &'a str,
    },
    ClaimLost {
        call_id: &'a str,
    },
    Connected {
        call_id: &'a str,
    },
    CallEnded {
        call_id: &'a str,
        reason: &'a str,
    },
    Error {
        code: &'a str,
        message: &'a str,
    },
}

pub fn render(output: &SeatOutput) -> String {
    let message = match output {
        SeatOutput::Presence(presence) => ServerMessage::Presence {
            status: presence.as_str(),
        },
        SeatOutput::Ring { call_id, from, to } => ServerMessage::Ring {
            call_id: call_id.as_str(),
            from,
            to,
        },
        SeatOutput::RingCancel { call_id, reason } => ServerMessage::RingCancel {
            call_id: call_id.as_str(),
            reason: reason.as_str(),
        },
        SeatOutput::ClaimLost { call_id } => ServerMessage::ClaimLost {
            call_id: call_id.as_str(),
        },
        SeatOutput::Connected { call_id } => ServerMessage::Connected {
            call_id: call_id.as_str(),
        },
        SeatOutput::CallEnded { call_id, reason } => ServerMessage::CallEnded {
            call_id: call_id.as_str(),
            reason,
        },
        SeatOutput::Error { code, message } => ServerMessage::Error { code, message },
    };
    serde_json::to_string(&message).unwrap_or_default()
}

struct SeatWire;

impl Render<SeatOutput> for SeatWire {
    fn control(&mut self, message: SeatOutput) -> ByteString {
        render(&message).into()
    }

    fn audio(&mut self, frame: Bytes) -> WireFrame {
        WireFrame::Binary(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(input: SeatInput) -> &'static str {
        match input {
            SeatInput::Invalid { code, .. } => code,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn commands_parse() {
        assert_eq!(
            parse(r#"{"type":"presence","status":"available"}"#),
            SeatInput::Command(SeatCommand::Presence(Presence::Available))
        );
        assert!(matches!(
            parse(r#"{"type":"answer","call_id":"abc123"}"#),
            SeatInput::Command(SeatCommand::Answer(_))
        ));
    }

    #[test]
    fn bad_messages_get_distinct_codes() {
        assert_eq!(code(parse("{not json")), "invalid-json");
        assert_eq!(code(parse("[1,2]")), "bad-message");
        assert_eq!(code(parse(r#"{"type":"dance"}"#)), "unknown-type");
        assert_eq!(code(parse(r#"{"type":"answer"}"#)), "bad-message");
        assert_eq!(
            code(parse(r#"{"type":"answer","call_id":"../x"}"#)),
            "bad-message"
        );
        assert_eq!(
            code(parse(r#"{"type":"presence","status":"asleep"}"#)),
            "bad-message"
        );
    }

    #[test]
    fn engine_messages_render_as_the_protocol_says() {
        let call_id = CallId::parse("c1").expect("valid");
        assert_eq!(
            render(&SeatOutput::RingCancel {
                call_id,
                reason: switchboard_actors::machine::CancelReason::AnsweredElsewhere
            }),
            r#"{"type":"ring_cancel","call_id":"c1","reason":"answered_elsewhere"}"#
        );
    }
}
