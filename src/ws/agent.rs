//! `GET /ws/agent?token=…`: an agent's softphone. JSON text frames are commands and
//! events (see docs/protocol.md); binary frames are the connected call's audio.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::MessageStream;
use bytes::Bytes;
use bytestring::ByteString;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use switchboard_actors::outbox::Outbox;
use switchboard_actors::seat::{
    Presence, SeatActor, SeatCommand, SeatInput, SeatOutput, SeatSetup,
};
use switchboard_actors::{AgentId, CallId};

use crate::engine::Engine;
use crate::error::ApiError;
use crate::ws::writer::{self, Render, WireFrame};
use crate::ws::Frame;

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
        .tokens
        .agent_for_token(&engine.store, &token)
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
            parking: engine.parking.clone(),
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
    super::frames(messages, outbox).map(|frame| match frame {
        Frame::Text(text) => parse(&text),
        Frame::Binary(audio) => SeatInput::Audio(audio),
        Frame::Pong => SeatInput::Pong,
        Frame::Unsupported(why) => SeatInput::Invalid {
            code: "unsupported-frame",
            message: why.into(),
        },
        Frame::Violation(why) => SeatInput::Violation(why),
    })
}

/// The client messages, as they are on the wire.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientMessage {
    Presence {
        status: String,
    },
    Answer {
        call_id: String,
    },
    Decline {
        call_id: String,
    },
    Hangup {
        call_id: String,
    },
    Park {
        call_id: String,
    },
    Unpark {
        call_id: String,
    },
    Transfer {
        call_id: String,
        agent_id: String,
        #[serde(default)]
        mode: Option<String>,
    },
    TransferComplete {
        call_id: String,
    },
    TransferCancel {
        call_id: String,
    },
}

const KNOWN_TYPES: &[&str] = &[
    "presence",
    "answer",
    "decline",
    "hangup",
    "park",
    "unpark",
    "transfer",
    "transfer_complete",
    "transfer_cancel",
];

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
        ClientMessage::Park { call_id } => call(call_id).map(SeatCommand::Park),
        ClientMessage::Unpark { call_id } => call(call_id).map(SeatCommand::Unpark),
        ClientMessage::TransferComplete { call_id } => {
            call(call_id).map(SeatCommand::TransferComplete)
        }
        ClientMessage::TransferCancel { call_id } => call(call_id).map(SeatCommand::TransferCancel),
        ClientMessage::Transfer {
            call_id,
            agent_id,
            mode,
        } => {
            let warm = match mode.as_deref() {
                None | Some("blind") => Ok(false),
                Some("warm") => Ok(true),
                Some(other) => Err(invalid(
                    "bad-message",
                    format!("transfer mode must be \"blind\" or \"warm\", not {other:?}"),
                )),
            };
            let agent_id = AgentId::parse(&agent_id)
                .map_err(|err| invalid("bad-message", format!("agent_id: {err}")));
            match (call(call_id), agent_id, warm) {
                (Ok(call_id), Ok(agent_id), Ok(warm)) => Ok(SeatCommand::Transfer {
                    call_id,
                    agent_id,
                    warm,
                }),
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
            }
        }
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
        #[serde(skip_serializing_if = "Option::is_none")]
        transferred_by: Option<&'a str>,
        #[serde(skip_serializing_if = "is_false")]
        consult: bool,
        /// An AI assistant's summary of the caller, after a handover.
        #[serde(skip_serializing_if = "Option::is_none")]
        summary: Option<&'a str>,
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
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'a str>,
    },
    CallEnded {
        call_id: &'a str,
        reason: &'a str,
    },
    Parked {
        call_id: &'a str,
        slot: u32,
        parked_by: Option<&'a str>,
        reason: &'a str,
    },
    Unparked {
        call_id: &'a str,
        slot: u32,
        agent_id: Option<&'a str>,
    },
    Released {
        call_id: &'a str,
        reason: &'a str,
    },
    TransferStatus {
        call_id: &'a str,
        agent_id: &'a str,
        status: &'a str,
    },
    State {
        calls: Vec<StateCallWire<'a>>,
    },
    Error {
        code: &'a str,
        message: &'a str,
    },
}

#[derive(Serialize)]
struct StateCallWire<'a> {
    call_id: &'a str,
    status: &'a str,
    slot: Option<u32>,
    from: &'a str,
    to: &'a str,
}

fn is_false(value: &bool) -> bool {
    !value
}

pub fn render(output: &SeatOutput) -> String {
    let message = match output {
        SeatOutput::Presence(presence) => ServerMessage::Presence {
            status: presence.as_str(),
        },
        SeatOutput::Ring {
            call_id,
            from,
            to,
            transferred_by,
            consult,
            summary,
        } => ServerMessage::Ring {
            call_id: call_id.as_str(),
            from,
            to,
            transferred_by: transferred_by.as_ref().map(AgentId::as_str),
            consult: *consult,
            summary: summary.as_deref(),
        },
        SeatOutput::RingCancel { call_id, reason } => ServerMessage::RingCancel {
            call_id: call_id.as_str(),
            reason: reason.as_str(),
        },
        SeatOutput::ClaimLost { call_id } => ServerMessage::ClaimLost {
            call_id: call_id.as_str(),
        },
        SeatOutput::Connected { call_id, reason } => ServerMessage::Connected {
            call_id: call_id.as_str(),
            reason: *reason,
        },
        SeatOutput::CallEnded { call_id, reason } => ServerMessage::CallEnded {
            call_id: call_id.as_str(),
            reason,
        },
        SeatOutput::Parked {
            call_id,
            slot,
            parked_by,
            reason,
        } => ServerMessage::Parked {
            call_id: call_id.as_str(),
            slot: *slot,
            parked_by: parked_by.as_ref().map(AgentId::as_str),
            reason,
        },
        SeatOutput::Unparked {
            call_id,
            slot,
            agent_id,
        } => ServerMessage::Unparked {
            call_id: call_id.as_str(),
            slot: *slot,
            agent_id: agent_id.as_ref().map(AgentId::as_str),
        },
        SeatOutput::Released { call_id, reason } => ServerMessage::Released {
            call_id: call_id.as_str(),
            reason,
        },
        SeatOutput::TransferStatus {
            call_id,
            agent_id,
            status,
        } => ServerMessage::TransferStatus {
            call_id: call_id.as_str(),
            agent_id: agent_id.as_str(),
            status,
        },
        SeatOutput::State { calls } => ServerMessage::State {
            calls: calls
                .iter()
                .map(|c| StateCallWire {
                    call_id: c.call_id.as_str(),
                    status: c.status,
                    slot: c.slot,
                    from: &c.from,
                    to: &c.to,
                })
                .collect(),
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
