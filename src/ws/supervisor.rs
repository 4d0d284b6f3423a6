//! `GET /ws/supervisor?token=ADMIN_TOKEN`: the supervisor console. A `snapshot` of
//! the floor, then every change as an event; commands `park`, `unpark`,
//! `transfer`, `hangup`, `listen`, each answered with `ack` or `error`. Binary frames
//! out are the mixed audio of the calls it listens to.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use bytestring::ByteString;
use futures_util::StreamExt as _;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{json, Value};
use switchboard_actors::coordinator::{FloorCall, FloorEvent, SeatState};
use switchboard_actors::supervisor::{
    console_outbox, SupervisorActor, SupervisorCommand, SupervisorInput, SupervisorOutput,
    SupervisorSetup,
};
use switchboard_actors::{AgentId, CallId};

use crate::auth::secrets_equal;
use crate::engine::Engine;
use crate::error::ApiError;
use crate::ws::writer::{self, Render, WireFrame};
use crate::ws::Frame;

#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

pub async fn supervisor_socket(
    engine: web::Data<Engine>,
    req: HttpRequest,
    body: web::Payload,
    query: web::Query<TokenQuery>,
) -> Result<HttpResponse, ApiError> {
    let token = query.into_inner().token.unwrap_or_default();
    if token.is_empty() || !secrets_equal(&token, engine.admin_token.expose_secret()) {
        return Err(ApiError::unauthorized("a supervisor needs the admin token"));
    }
    let (response, session, messages) = actix_ws::handle(&req, body)?;
    let messages = messages.max_frame_size(engine.settings.websocket.max_frame_bytes);
    let outbox = console_outbox(engine.outbox_limits, Arc::clone(&engine.stats));
    writer::spawn(outbox.clone(), session, SupervisorWire);
    let inputs = super::frames(messages, outbox.clone()).map(|frame| match frame {
        Frame::Text(text) => parse(&text),
        Frame::Binary(_) => invalid("unsupported-frame", "a supervisor sends no audio"),
        Frame::Pong => SupervisorInput::Pong,
        Frame::Unsupported(why) => invalid("unsupported-frame", why),
        Frame::Violation(why) => SupervisorInput::Violation(why),
    });
    SupervisorActor::start(
        SupervisorSetup {
            outbox,
            coordinator: engine.coordinator.clone(),
            registry: engine.registry.clone(),
            config: engine.seat_config,
        },
        inputs,
    );
    Ok(response)
}

fn invalid(code: &'static str, message: impl Into<String>) -> SupervisorInput {
    SupervisorInput::Invalid {
        code,
        message: message.into(),
    }
}

/// Turns one text frame into a command, or into the error the console is told.
pub fn parse(text: &str) -> SupervisorInput {
    let value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(err) => return invalid("invalid-json", format!("not JSON: {err}")),
    };
    let Some(kind) = value.get("type").and_then(Value::as_str) else {
        return invalid(
            "bad-message",
            "a message is a JSON object with a string \"type\"",
        );
    };
    let field = |name: &str| value.get(name).and_then(Value::as_str);
    let call_id = match field("call_id").map(CallId::parse) {
        Some(Ok(id)) => id,
        Some(Err(err)) => return invalid("bad-message", format!("call_id: {err}")),
        None if ["park", "unpark", "transfer", "hangup", "listen"].contains(&kind) => {
            return invalid("bad-message", format!("{kind} needs a call_id"))
        }
        None => return invalid("unknown-type", format!("unknown message type {kind:?}")),
    };
    let agent = || match field("agent_id").map(AgentId::parse) {
        Some(Ok(id)) => Ok(id),
        Some(Err(err)) => Err(invalid("bad-message", format!("agent_id: {err}"))),
        None => Err(invalid("bad-message", format!("{kind} needs an agent_id"))),
    };
    let command = match kind {
        "park" => SupervisorCommand::Park { call_id },
        "hangup" => SupervisorCommand::Hangup { call_id },
        "listen" => SupervisorCommand::Listen { call_id },
        "unpark" => match agent() {
            Ok(agent_id) => SupervisorCommand::Unpark { call_id, agent_id },
            Err(input) => return input,
        },
        "transfer" => match agent() {
            Ok(agent_id) => SupervisorCommand::Transfer { call_id, agent_id },
            Err(input) => return input,
        },
        other => return invalid("unknown-type", format!("unknown message type {other:?}")),
    };
    SupervisorInput::Command(command)
}

fn seat_json(seat: &SeatState) -> Value {
    json!({
        "agent_id": seat.agent_id,
        "workspace": seat.workspace,
        "presence": seat.presence.as_str(),
        "call_id": seat.call_id,
    })
}

fn call_json(call: &FloorCall) -> Value {
    json!({
        "call_id": call.call_id,
        "workspace": call.workspace,
        "status": call.status,
        "agent_id": call.agent_id,
        "ringing": call.ringing,
        "slot": call.slot,
        "from": call.from,
        "to": call.to,
    })
}

pub fn render(output: &SupervisorOutput) -> Value {
    match output {
        SupervisorOutput::Snapshot(snapshot) => json!({
            "type": "snapshot",
            "seats": snapshot.seats.iter().map(seat_json).collect::<Vec<_>>(),
            "calls": snapshot.calls.iter().map(call_json).collect::<Vec<_>>(),
            "parking": snapshot
                .calls
                .iter()
                .filter(|c| c.slot.is_some() && c.status == "parked")
                .map(|c| json!({ "call_id": c.call_id, "workspace": c.workspace, "slot": c.slot }))
                .collect::<Vec<_>>(),
        }),
        SupervisorOutput::Event(event) => match event {
            FloorEvent::Seat(seat) => {
                let mut value = seat_json(seat);
                value["type"] = "seat".into();
                value
            }
            FloorEvent::SeatGone {
                agent_id,
                workspace,
            } => {
                json!({ "type": "seat_gone", "agent_id": agent_id, "workspace": workspace })
            }
            FloorEvent::Call(call) => {
                let mut value = call_json(call);
                value["type"] = "call".into();
                value
            }
            FloorEvent::CallEnded {
                call_id,
                workspace,
                outcome,
            } => {
                json!({ "type": "call_ended", "call_id": call_id, "workspace": workspace, "outcome": outcome })
            }
            FloorEvent::Parked {
                call_id,
                workspace,
                slot,
                parked_by,
                reason,
            } => json!({
                "type": "parked", "call_id": call_id, "workspace": workspace, "slot": slot,
                "parked_by": parked_by, "reason": reason,
            }),
            FloorEvent::Unparked {
                call_id,
                workspace,
                slot,
                agent_id,
            } => json!({
                "type": "unparked", "call_id": call_id, "workspace": workspace, "slot": slot,
                "agent_id": agent_id,
            }),
        },
        SupervisorOutput::Ack { command, call_id } => {
            json!({ "type": "ack", "command": command, "call_id": call_id })
        }
        SupervisorOutput::Error { code, message } => {
            json!({ "type": "error", "code": code, "message": message })
        }
    }
}

struct SupervisorWire;

impl Render<SupervisorOutput> for SupervisorWire {
    fn control(&mut self, message: SupervisorOutput) -> ByteString {
        render(&message).to_string().into()
    }

    fn audio(&mut self, frame: Bytes) -> WireFrame {
        WireFrame::Binary(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(input: SupervisorInput) -> &'static str {
        match input {
            SupervisorInput::Invalid { code, .. } => code,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn commands_parse_and_bad_ones_get_codes() {
        assert!(matches!(
            parse(r#"{"type":"unpark","call_id":"c1","agent_id":"a1"}"#),
            SupervisorInput::Command(SupervisorCommand::Unpark { .. })
        ));
        assert_eq!(code(parse("nope")), "invalid-json");
        assert_eq!(code(parse(r#"{"type":"dance"}"#)), "unknown-type");
        assert_eq!(code(parse(r#"{"type":"park"}"#)), "bad-message");
        assert_eq!(
            code(parse(r#"{"type":"unpark","call_id":"c1"}"#)),
            "bad-message"
        );
    }
}
