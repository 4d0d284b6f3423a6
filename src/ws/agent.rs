//! `GET /ws/agent?token=…`: an agent's softphone. JSON text frames are commands and
//! events (see docs/protocol.md); binary frames are the connected call's audio.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use bytestring::ByteString;
use futures_util::StreamExt as _;
use serde::Deserialize;
use switchboard_actors::outbox::Outbox;
use switchboard_actors::seat::{SeatActor, SeatCommand, SeatInput, SeatOutput, SeatSetup};

use crate::engine::Engine;
use crate::error::{ApiError, ErrorBody};
use crate::net::socket::{self, Render, WireFrame};
use crate::ws::{Frame, Rejected};

/// `?token=`: a browser cannot set `Authorization` on a WebSocket.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// An agent's token.
    token: Option<String>,
}

/// Agent softphone socket (WebSocket upgrade)
///
/// The messages both ways are JSON text frames (and binary audio): see
/// docs/protocol.md §1. The token goes in the query.
#[utoipa::path(get, path = "/ws/agent", tag = "sockets",
    params(TokenQuery),
    responses(
        (status = 101, description = "Switching protocols: the socket (docs/protocol.md §1)"),
        (status = 400, description = "`bad-upgrade`: not a WebSocket upgrade", body = ErrorBody),
        (status = 401, description = "No token, or not an agent's token", body = ErrorBody),
        (status = 503, description = "The database is unavailable and the token is not cached", body = ErrorBody),
    ))]
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
    let outbox = Outbox::new(engine.outbox_limits, Arc::clone(&engine.stats));
    let frames = socket::Frames::fragmented(engine.settings.websocket.max_frame_bytes);
    let (response, messages) = socket::accept(&req, body, outbox.clone(), SeatWire, frames)?;
    tracing::info!(agent_id = %agent.id, "softphone connected");
    SeatActor::start(
        SeatSetup {
            agent_id: agent.id,
            name: agent.name,
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
    messages: socket::Incoming,
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

/// Turns one text frame into a command, or into the error the softphone is told.
pub fn parse(text: &str) -> SeatInput {
    match super::command(text, SeatCommand::TYPES) {
        Ok(command) => SeatInput::Command(command),
        Err(Rejected { code, message }) => SeatInput::Invalid { code, message },
    }
}

/// The seat's outbox on the wire: each message is serialised as it is; audio goes
/// out as binary frames, verbatim.
pub(crate) struct SeatWire;

impl Render<SeatOutput> for SeatWire {
    fn control(&mut self, message: SeatOutput) -> ByteString {
        match message {
            // Rendered once for every seat it goes to.
            SeatOutput::Roster(roster) => roster.json(),
            message => serde_json::to_string(&message).unwrap_or_default().into(),
        }
    }

    fn audio(&mut self, frame: Bytes) -> WireFrame {
        WireFrame::Binary(frame)
    }
}

#[cfg(test)]
mod tests {
    use switchboard_actors::machine::CancelReason;
    use switchboard_actors::seat::{
        Parked, Presence, Ring, Roster, RosterEntry, StateCall, Unparked,
    };
    use switchboard_actors::{AgentId, CallId, Workspace};

    use super::*;

    fn code(input: SeatInput) -> &'static str {
        match input {
            SeatInput::Invalid { code, .. } => code,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    fn id(raw: &str) -> CallId {
        CallId::parse(raw).expect("valid")
    }

    fn agent(raw: &str) -> AgentId {
        AgentId::parse(raw).expect("valid")
    }

    #[test]
    fn commands_parse() {
        assert_eq!(
            parse(r#"{"type":"presence","status":"available"}"#),
            SeatInput::Command(SeatCommand::Presence {
                status: Presence::Available
            })
        );
        assert_eq!(
            parse(r#"{"type":"answer","call_id":"abc123"}"#),
            SeatInput::Command(SeatCommand::Answer {
                call_id: id("abc123")
            })
        );
        assert_eq!(
            parse(r#"{"type":"transfer_cancel","call_id":"c1"}"#),
            SeatInput::Command(SeatCommand::TransferCancel { call_id: id("c1") })
        );
        for (mode, warm) in [
            ("", false),
            (r#","mode":null"#, false),
            (r#","mode":"blind""#, false),
            (r#","mode":"warm""#, true),
        ] {
            assert_eq!(
                parse(&format!(
                    r#"{{"type":"transfer","call_id":"c1","agent_id":"a1"{mode}}}"#
                )),
                SeatInput::Command(SeatCommand::Transfer {
                    call_id: id("c1"),
                    agent_id: agent("a1"),
                    warm
                }),
                "{mode}"
            );
        }
    }

    #[test]
    fn dtmf_digits_are_keypad_keys_one_to_thirty_two() {
        assert_eq!(
            parse(r#"{"type":"dtmf","call_id":"c1","digits":"0123456789*#ABCD"}"#),
            SeatInput::Command(SeatCommand::Dtmf {
                call_id: id("c1"),
                digits: "0123456789*#ABCD".into()
            })
        );
        let longest = "1".repeat(32);
        assert!(matches!(
            parse(&format!(
                r#"{{"type":"dtmf","call_id":"c1","digits":"{longest}"}}"#
            )),
            SeatInput::Command(SeatCommand::Dtmf { .. })
        ));
        for digits in ["", "12w3", "1 2", "e", "a", "\\u0000", &"1".repeat(33)] {
            let input = parse(&format!(
                r#"{{"type":"dtmf","call_id":"c1","digits":"{digits}"}}"#
            ));
            assert_eq!(code(input), "bad-message", "{digits:?}");
        }
        assert_eq!(
            code(parse(r#"{"type":"dtmf","call_id":"c1","digits":5}"#)),
            "bad-message"
        );
    }

    #[test]
    fn every_command_type_is_known() {
        for kind in SeatCommand::TYPES {
            let input = parse(&format!(r#"{{"type":"{kind}"}}"#));
            assert_eq!(code(input), "bad-message", "{kind} lacks its fields");
        }
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
            code(parse(r#"{"type":"answer","call_id":"c1","extra":1}"#)),
            "bad-message"
        );
        assert_eq!(
            code(parse(
                r#"{"type":"transfer","call_id":"c1","agent_id":"A"}"#
            )),
            "bad-message"
        );
        for status in ["asleep", "busy", "wrap_up"] {
            let input = parse(&format!(r#"{{"type":"presence","status":"{status}"}}"#));
            assert_eq!(
                input,
                SeatInput::Invalid {
                    code: "bad-message",
                    message: format!(
                        "bad presence message: presence status must be \"available\" or \"away\", not \"{status}\""
                    )
                }
            );
        }
        assert_eq!(
            code(parse(
                r#"{"type":"transfer","call_id":"c1","agent_id":"a1","mode":"cold"}"#
            )),
            "bad-message"
        );
    }

    /// Byte for byte what the softphone got before the seat's messages were
    /// serialised as they are (the strings are the former renderer's output).
    #[test]
    fn engine_messages_are_on_the_wire_as_the_protocol_says() {
        let (c, a) = (id("c1"), agent("a1"));
        let ring = Ring {
            call_id: c.clone(),
            from: "+1".into(),
            to: "+2".into(),
            transferred_by: None,
            consult: false,
            summary: None,
        };
        let cases = [
            (
                SeatOutput::Presence {
                    status: Presence::WrapUp,
                    until: None,
                },
                r#"{"type":"presence","status":"wrap_up"}"#,
            ),
            (
                SeatOutput::Presence {
                    status: Presence::WrapUp,
                    until: Some("2026-12-02T15:00:05Z".into()),
                },
                r#"{"type":"presence","status":"wrap_up","until":"2026-12-02T15:00:05Z"}"#,
            ),
            (
                SeatOutput::Welcome {
                    agent_id: a.clone(),
                    name: "Ada".into(),
                    workspace: Workspace::parse("production").expect("valid"),
                    presence: Presence::Away,
                },
                r#"{"type":"welcome","agent_id":"a1","name":"Ada","workspace":"production","presence":"away"}"#,
            ),
            (
                SeatOutput::Roster(Roster::new(vec![RosterEntry {
                    agent_id: a.clone(),
                    name: "Ada".into(),
                    presence: Presence::Busy,
                    on_call: true,
                }])),
                r#"{"type":"roster","agents":[{"agent_id":"a1","name":"Ada","presence":"busy","on_call":true}]}"#,
            ),
            (
                SeatOutput::Parking { calls: Vec::new() },
                r#"{"type":"parking","calls":[]}"#,
            ),
            (
                SeatOutput::Ring(ring.clone()),
                r#"{"type":"ring","call_id":"c1","from":"+1","to":"+2"}"#,
            ),
            (
                SeatOutput::Ring(Ring {
                    transferred_by: Some(a.clone()),
                    consult: true,
                    summary: Some("he \"said\"".into()),
                    ..ring
                }),
                r#"{"type":"ring","call_id":"c1","from":"+1","to":"+2","transferred_by":"a1","consult":true,"summary":"he \"said\""}"#,
            ),
            (
                SeatOutput::RingCancel {
                    call_id: c.clone(),
                    reason: CancelReason::AnsweredElsewhere,
                },
                r#"{"type":"ring_cancel","call_id":"c1","reason":"answered_elsewhere"}"#,
            ),
            (
                SeatOutput::ClaimLost { call_id: c.clone() },
                r#"{"type":"claim_lost","call_id":"c1"}"#,
            ),
            (
                SeatOutput::Connected {
                    call_id: c.clone(),
                    from: "+1".into(),
                    to: "+2".into(),
                    reason: None,
                },
                r#"{"type":"connected","call_id":"c1","from":"+1","to":"+2"}"#,
            ),
            (
                SeatOutput::Connected {
                    call_id: c.clone(),
                    from: "+1".into(),
                    to: "+2".into(),
                    reason: Some("supervisor"),
                },
                r#"{"type":"connected","call_id":"c1","from":"+1","to":"+2","reason":"supervisor"}"#,
            ),
            (
                SeatOutput::CallEnded {
                    call_id: c.clone(),
                    reason: "agent_hangup".into(),
                },
                r#"{"type":"call_ended","call_id":"c1","reason":"agent_hangup"}"#,
            ),
            (
                SeatOutput::Parked(Parked {
                    call_id: c.clone(),
                    slot: 3,
                    from: "+1".into(),
                    to: "+2".into(),
                    parked_by: None,
                    parked_by_name: None,
                    parked_at: "2026-12-02T15:00:00Z".into(),
                    reason: "supervisor",
                }),
                r#"{"type":"parked","call_id":"c1","slot":3,"from":"+1","to":"+2","parked_by":null,"parked_by_name":null,"parked_at":"2026-12-02T15:00:00Z","reason":"supervisor"}"#,
            ),
            (
                SeatOutput::Parked(Parked {
                    call_id: c.clone(),
                    slot: 3,
                    from: "+1".into(),
                    to: "+2".into(),
                    parked_by: Some(a.clone()),
                    parked_by_name: Some("Ada".into()),
                    parked_at: "2026-12-02T15:00:00Z".into(),
                    reason: "agent",
                }),
                r#"{"type":"parked","call_id":"c1","slot":3,"from":"+1","to":"+2","parked_by":"a1","parked_by_name":"Ada","parked_at":"2026-12-02T15:00:00Z","reason":"agent"}"#,
            ),
            (
                SeatOutput::Unparked(Unparked {
                    call_id: c.clone(),
                    slot: 3,
                    agent_id: None,
                }),
                r#"{"type":"unparked","call_id":"c1","slot":3,"agent_id":null}"#,
            ),
            (
                SeatOutput::Unparked(Unparked {
                    call_id: c.clone(),
                    slot: 3,
                    agent_id: Some(a.clone()),
                }),
                r#"{"type":"unparked","call_id":"c1","slot":3,"agent_id":"a1"}"#,
            ),
            (
                SeatOutput::Released {
                    call_id: c.clone(),
                    reason: "parked",
                },
                r#"{"type":"released","call_id":"c1","reason":"parked"}"#,
            ),
            (
                SeatOutput::TransferStatus {
                    call_id: c.clone(),
                    agent_id: a.clone(),
                    status: "ringing",
                },
                r#"{"type":"transfer_status","call_id":"c1","agent_id":"a1","status":"ringing"}"#,
            ),
            (
                SeatOutput::State {
                    calls: vec![
                        StateCall {
                            call_id: c.clone(),
                            status: "parked",
                            slot: Some(1),
                            from: "+1".into(),
                            to: "+2".into(),
                        },
                        StateCall {
                            call_id: c.clone(),
                            status: "parked",
                            slot: None,
                            from: "+1".into(),
                            to: "+2".into(),
                        },
                    ],
                },
                r#"{"type":"state","calls":[{"call_id":"c1","status":"parked","slot":1,"from":"+1","to":"+2"},{"call_id":"c1","status":"parked","slot":null,"from":"+1","to":"+2"}]}"#,
            ),
            (
                SeatOutput::Error {
                    code: "busy",
                    message: "x".into(),
                },
                r#"{"type":"error","code":"busy","message":"x"}"#,
            ),
        ];
        for (message, wire) in cases {
            assert_eq!(SeatWire.control(message), wire);
        }
    }

    #[test]
    fn a_roster_is_rendered_once_for_every_seat_it_goes_to() {
        let roster = Roster::new(vec![RosterEntry {
            agent_id: AgentId::parse("a1").expect("valid"),
            name: "Ada".into(),
            presence: Presence::Available,
            on_call: false,
        }]);
        let first = SeatWire.control(SeatOutput::Roster(roster.clone()));
        let second = SeatWire.control(SeatOutput::Roster(roster));
        assert_eq!(first, second);
        assert!(
            std::ptr::eq(first.as_ptr(), second.as_ptr()),
            "each seat rendered its own copy"
        );
    }
}
