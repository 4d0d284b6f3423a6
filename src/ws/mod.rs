//! WebSocket adapters: each socket's frames ([`frames`]: the one reader of every
//! socket, the Twilio media stream's too) become a stream of decoded input that
//! drives an actor, and the actor's outbox is the socket's response body
//! (`net::socket`). A text frame is read straight into its socket's command type
//! ([`command`]).

pub mod agent;
pub mod supervisor;

use actix_http::ws::{Message, ProtocolError};
use bytes::Bytes;
use bytestring::ByteString;
use futures_util::StreamExt as _;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Deserialize;
use switchboard_actors::outbox::Outbox;

/// A socket frame as the actors' adapters see it.
pub enum Frame {
    Text(ByteString),
    Binary(Bytes),
    /// The peer answered one of our pings: it reads what it is sent. (Its own pings
    /// are answered here and are no sign of that: a peer can send without reading.)
    Pong,
    /// A frame the protocol does not use (fragments).
    Unsupported(&'static str),
    /// The peer broke the protocol (an oversized frame); the stream ends after it.
    Violation(String),
}

/// The socket's frames until the peer closes or breaks the protocol. Pings are
/// answered through the outbox (the socket's one writer) and not passed on.
pub fn frames<C: 'static>(
    messages: crate::net::socket::Incoming,
    outbox: Outbox<C>,
) -> impl futures_util::Stream<Item = Frame> {
    futures_util::stream::unfold(Some((messages, outbox)), |state| async move {
        let (mut messages, outbox) = state?;
        let frame = loop {
            break match messages.next().await? {
                Ok(Message::Text(text)) => Frame::Text(text),
                Ok(Message::Binary(bytes)) => Frame::Binary(bytes),
                Ok(Message::Ping(payload)) => {
                    outbox.pong(payload);
                    continue;
                }
                Ok(Message::Nop) => continue,
                Ok(Message::Pong(_)) => Frame::Pong,
                Ok(Message::Close(_)) => return None,
                Ok(Message::Continuation(_)) => {
                    Frame::Unsupported("fragmented messages are not supported")
                }
                Err(ProtocolError::Overflow) => {
                    return Some((Frame::Violation("frame larger than allowed".into()), None));
                }
                Err(err) => {
                    return Some((Frame::Violation(format!("protocol error: {err}")), None))
                }
            };
        };
        Some((frame, Some((messages, outbox))))
    })
}

/// A text frame that is not a command, as its peer is told (an `error` message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub code: &'static str,
    pub message: String,
}

impl Rejected {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// The `type` of a frame that did not parse, read to say why.
#[derive(Deserialize)]
struct Tag<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
}

/// Reads a text frame straight into the socket's command type `T` (tagged by `type`,
/// whose values are `known`). A frame that is not one is looked at once more, to tell
/// the peer why: `invalid-json` (not JSON), `bad-message` (not an object with a
/// string `type`, or a known type with missing or invalid fields), `unknown-type`.
pub fn command<T: DeserializeOwned>(text: &str, known: &[&str]) -> Result<T, Rejected> {
    // An array would be read as a tagged enum too (tag first): only objects are messages.
    if !text.trim_start().starts_with('{') {
        return Err(match serde_json::from_str::<IgnoredAny>(text) {
            Err(err) => not_json(&err),
            Ok(_) => no_type(),
        });
    }
    serde_json::from_str(text).map_err(|err| {
        if err.is_syntax() || err.is_eof() {
            return not_json(&err);
        }
        match serde_json::from_str::<Tag<'_>>(text) {
            Err(tag_err) if tag_err.is_syntax() || tag_err.is_eof() => not_json(&tag_err),
            Err(_) | Ok(Tag { kind: None }) => no_type(),
            Ok(Tag { kind: Some(kind) }) if !known.contains(&kind.as_ref()) => {
                Rejected::new("unknown-type", format!("unknown message type {kind:?}"))
            }
            Ok(Tag { kind: Some(kind) }) => Rejected::new(
                "bad-message",
                format!("bad {kind} message: {}", without_position(&err)),
            ),
        }
    })
}

fn not_json(err: &serde_json::Error) -> Rejected {
    Rejected::new("invalid-json", format!("not JSON: {err}"))
}

fn no_type() -> Rejected {
    Rejected::new(
        "bad-message",
        "a message is a JSON object with a string \"type\"",
    )
}

/// What went wrong, without where: a message is one line, and its fields are named.
fn without_position(err: &serde_json::Error) -> String {
    let message = err.to_string();
    let position = format!(" at line {} column {}", err.line(), err.column());
    match message.strip_suffix(&position) {
        Some(bare) => bare.to_owned(),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
    enum Command {
        Answer { call_id: switchboard_actors::CallId },
    }

    fn code(text: &str) -> &'static str {
        match command::<Command>(text, &["answer"]) {
            Err(rejected) => rejected.code,
            Ok(command) => panic!("{text} parsed as {command:?}"),
        }
    }

    #[test]
    fn a_command_is_read_in_one_go_with_its_ids_parsed() {
        assert_eq!(
            command::<Command>(r#" {"call_id":"c1","type":"answer"}"#, &["answer"]),
            Ok(Command::Answer {
                call_id: switchboard_actors::CallId::parse("c1").expect("valid"),
            })
        );
    }

    #[test]
    fn what_is_not_a_command_is_told_why() {
        for text in [
            "{not json",
            "nope",
            "[1,",
            r#"{"type":"answer","call_id":"c1"} x"#,
        ] {
            assert_eq!(code(text), "invalid-json", "{text}");
        }
        // Trailing junk behind a bad command is still not JSON.
        assert_eq!(code(r#"{"type":"dance"} x"#), "invalid-json");
        for text in [
            "[1,2]",
            "5",
            r#""answer""#,
            "{}",
            r#"{"type":5}"#,
            r#"{"type":null}"#,
        ] {
            assert_eq!(code(text), "bad-message", "{text}");
        }
        // Not even in the order a tagged enum would take: tag first.
        assert_eq!(code(r#"["answer","c1"]"#), "bad-message");
        assert_eq!(code(r#"{"type":"dance","call_id":"c1"}"#), "unknown-type");
        for text in [
            r#"{"type":"answer"}"#,
            r#"{"type":"answer","call_id":5}"#,
            r#"{"type":"answer","call_id":"../x"}"#,
            r#"{"type":"answer","call_id":"c1","extra":1}"#,
        ] {
            assert_eq!(code(text), "bad-message", "{text}");
        }
    }

    #[test]
    fn a_bad_field_is_named_without_a_position() {
        let rejected = command::<Command>(r#"{"type":"answer","call_id":"../x"}"#, &["answer"])
            .expect_err("a bad call id");
        assert_eq!(
            rejected.message,
            "bad answer message: call id may only contain lowercase letters, digits, '-' and '_'"
        );
        let rejected =
            command::<Command>(r#"{"type":"answer"}"#, &["answer"]).expect_err("no call id");
        assert_eq!(
            rejected.message,
            "bad answer message: missing field `call_id`"
        );
    }
}
