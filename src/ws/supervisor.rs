//! `GET /ws/supervisor?token=ADMIN_TOKEN`: the supervisor console. A `snapshot` of
//! the floor, then every change as an event; commands `park`, `unpark`,
//! `transfer`, `hangup`, `listen`, `unlisten`, each answered with `ack` or `error`. Binary frames
//! out are the mixed audio of the calls it listens to.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use bytestring::ByteString;
use futures_util::StreamExt as _;
use secrecy::ExposeSecret;
use serde::Deserialize;
use switchboard_actors::supervisor::{
    console_outbox, SupervisorActor, SupervisorCommand, SupervisorInput, SupervisorOutput,
    SupervisorSetup,
};

use crate::auth::secrets_equal;
use crate::engine::Engine;
use crate::error::{ApiError, ErrorBody};
use crate::net::socket::{self, Render, WireFrame};
use crate::ws::{Frame, Rejected};

/// `?token=`: a browser cannot set `Authorization` on a WebSocket.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// The admin token.
    token: Option<String>,
}

/// Supervisor console socket (WebSocket upgrade)
///
/// The messages both ways are JSON text frames (and binary audio): see
/// docs/protocol.md §2. The token goes in the query.
#[utoipa::path(get, path = "/ws/supervisor", tag = "sockets",
    params(TokenQuery),
    responses(
        (status = 101, description = "Switching protocols: the socket (docs/protocol.md §2)"),
        (status = 400, description = "`bad-upgrade`: not a WebSocket upgrade", body = ErrorBody),
        (status = 401, description = "No token, or not the admin token", body = ErrorBody),
        (status = 503, description = "The database is unavailable and the token is not cached", body = ErrorBody),
    ))]
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
    let outbox = console_outbox(engine.outbox_limits, Arc::clone(&engine.stats));
    let frames = socket::Frames::fragmented(engine.settings.websocket.max_frame_bytes);
    let (response, messages) = socket::accept(&req, body, outbox.clone(), SupervisorWire, frames)?;
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
    match super::command(text, SupervisorCommand::TYPES) {
        Ok(command) => SupervisorInput::Command(command),
        Err(Rejected { code, message }) => invalid(code, message),
    }
}

/// The console's outbox on the wire: each message is serialised as it is; audio (what
/// it listens to) goes out as binary frames.
struct SupervisorWire;

impl Render<SupervisorOutput> for SupervisorWire {
    fn control(&mut self, message: SupervisorOutput) -> ByteString {
        serde_json::to_string(&message).unwrap_or_default().into()
    }

    fn audio(&mut self, frame: Bytes) -> WireFrame {
        WireFrame::Binary(frame)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use switchboard_actors::coordinator::{
        FloorCall, FloorCoverage, FloorEvent, SeatState, Snapshot,
    };
    use switchboard_actors::seat::{Parked, Presence, Unparked};
    use switchboard_actors::{AgentId, CallId, Workspace};

    use super::*;

    fn code(input: SupervisorInput) -> &'static str {
        match input {
            SupervisorInput::Invalid { code, .. } => code,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn commands_parse_and_bad_ones_get_codes() {
        assert_eq!(
            parse(r#"{"type":"unpark","call_id":"c1","agent_id":"a1"}"#),
            SupervisorInput::Command(SupervisorCommand::Unpark {
                call_id: CallId::parse("c1").expect("valid"),
                agent_id: AgentId::parse("a1").expect("valid"),
            })
        );
        // Fields a command does not use are ignored.
        assert!(matches!(
            parse(r#"{"type":"park","call_id":"c1","agent_id":"a1","extra":1}"#),
            SupervisorInput::Command(SupervisorCommand::Park { .. })
        ));
        assert_eq!(code(parse("nope")), "invalid-json");
        assert_eq!(code(parse("[1]")), "bad-message");
        assert_eq!(code(parse(r#"{"type":"dance"}"#)), "unknown-type");
        assert_eq!(code(parse(r#"{"type":"park"}"#)), "bad-message");
        assert_eq!(code(parse(r#"{"type":"park","call_id":5}"#)), "bad-message");
        assert_eq!(
            code(parse(r#"{"type":"unpark","call_id":"c1"}"#)),
            "bad-message"
        );
        assert_eq!(
            code(parse(r#"{"type":"unpark","call_id":"c1","agent_id":"A"}"#)),
            "bad-message"
        );
    }

    #[test]
    fn every_command_type_is_known_and_acked_by_its_name() {
        for kind in SupervisorCommand::TYPES {
            let input = parse(&format!(r#"{{"type":"{kind}"}}"#));
            assert_eq!(code(input), "bad-message", "{kind} lacks its fields");
            let full = format!(r#"{{"type":"{kind}","call_id":"c1","agent_id":"a1"}}"#);
            match parse(&full) {
                SupervisorInput::Command(command) => assert_eq!(command.name(), *kind),
                other => panic!("{full}: {other:?}"),
            }
        }
    }

    /// What the console got before its messages were serialised as they are (the
    /// former renderer's output: the same fields and values; JSON objects are
    /// unordered, and `type` now comes first).
    #[test]
    fn console_messages_are_on_the_wire_as_the_protocol_says() {
        let (c, a) = (
            CallId::parse("c1").expect("valid"),
            AgentId::parse("a1").expect("valid"),
        );
        let w = Workspace::parse("production").expect("valid");
        let seat = SeatState {
            agent_id: a.clone(),
            name: "Ada".into(),
            workspace: w.clone(),
            presence: Presence::Busy,
            call_id: Some(c.clone()),
        };
        let call = FloorCall {
            call_id: c.clone(),
            workspace: w.clone(),
            status: "parked",
            since: "2026-12-02T15:00:00Z".into(),
            agent_id: None,
            ringing: vec![a.clone()],
            slot: Some(2),
            from: "+1".into(),
            to: "+2".into(),
        };
        let ringing = FloorCall {
            call_id: CallId::parse("c2").expect("valid"),
            status: "ringing",
            slot: None,
            ..call.clone()
        };
        let parked = Parked {
            call_id: c.clone(),
            slot: 2,
            from: "+1".into(),
            to: "+2".into(),
            parked_by: None,
            parked_by_name: None,
            parked_at: "2026-12-02T15:00:00Z".into(),
            reason: "supervisor",
        };
        let cases = [
            (
                SupervisorOutput::snapshot(Snapshot {
                    seats: vec![seat.clone()],
                    calls: vec![call.clone(), ringing],
                    parking: vec![(w.clone(), parked.clone())],
                    coverage: FloorCoverage::default(),
                }),
                r#"{"calls":[{"agent_id":null,"call_id":"c1","from":"+1","ringing":["a1"],"since":"2026-12-02T15:00:00Z","slot":2,"status":"parked","to":"+2","workspace":"production"},{"agent_id":null,"call_id":"c2","from":"+1","ringing":["a1"],"since":"2026-12-02T15:00:00Z","slot":null,"status":"ringing","to":"+2","workspace":"production"}],"parking":[{"call_id":"c1","slot":2,"from":"+1","to":"+2","parked_by":null,"parked_by_name":null,"parked_at":"2026-12-02T15:00:00Z","reason":"supervisor","workspace":"production"}],"partial":false,"partial_reasons":[],"seats":[{"agent_id":"a1","name":"Ada","call_id":"c1","presence":"busy","workspace":"production"}],"type":"snapshot"}"#,
            ),
            (
                SupervisorOutput::Floor(FloorCoverage::with_reasons(vec![
                    "redis-unreachable".into(),
                    "node-unlinked:node-2".into(),
                ])),
                r#"{"partial":true,"partial_reasons":["redis-unreachable","node-unlinked:node-2"],"type":"floor"}"#,
            ),
            (
                SupervisorOutput::Event(FloorEvent::Seat(seat)),
                r#"{"agent_id":"a1","name":"Ada","call_id":"c1","presence":"busy","type":"seat","workspace":"production"}"#,
            ),
            (
                SupervisorOutput::Event(FloorEvent::SeatGone {
                    agent_id: a.clone(),
                    workspace: w.clone(),
                }),
                r#"{"agent_id":"a1","type":"seat_gone","workspace":"production"}"#,
            ),
            (
                SupervisorOutput::Event(FloorEvent::Call(call)),
                r#"{"agent_id":null,"call_id":"c1","from":"+1","ringing":["a1"],"since":"2026-12-02T15:00:00Z","slot":2,"status":"parked","to":"+2","type":"call","workspace":"production"}"#,
            ),
            (
                SupervisorOutput::Event(FloorEvent::CallEnded {
                    call_id: c.clone(),
                    workspace: w.clone(),
                    outcome: "answered",
                }),
                r#"{"call_id":"c1","outcome":"answered","type":"call_ended","workspace":"production"}"#,
            ),
            (
                SupervisorOutput::Event(FloorEvent::Parked {
                    parked,
                    workspace: w.clone(),
                }),
                r#"{"call_id":"c1","from":"+1","to":"+2","parked_by":null,"parked_by_name":null,"parked_at":"2026-12-02T15:00:00Z","reason":"supervisor","slot":2,"type":"parked","workspace":"production"}"#,
            ),
            (
                SupervisorOutput::Event(FloorEvent::Unparked {
                    unparked: Unparked {
                        call_id: c.clone(),
                        slot: 2,
                        agent_id: Some(a),
                    },
                    workspace: w,
                }),
                r#"{"agent_id":"a1","call_id":"c1","slot":2,"type":"unparked","workspace":"production"}"#,
            ),
            (
                SupervisorOutput::Ack {
                    command: "park",
                    call_id: c,
                },
                r#"{"call_id":"c1","command":"park","type":"ack"}"#,
            ),
            (
                SupervisorOutput::Error {
                    code: "not-found",
                    message: "x".into(),
                },
                r#"{"code":"not-found","message":"x","type":"error"}"#,
            ),
        ];
        for (message, before) in cases {
            let wire = SupervisorWire.control(message);
            assert!(wire.starts_with(r#"{"type":"#), "{wire}");
            let now: Value = serde_json::from_str(&wire).expect("JSON");
            let before: Value = serde_json::from_str(before).expect("JSON");
            assert_eq!(now, before);
        }
    }
}
