//! WebSocket adapters: each socket's frames become a stream of decoded input that
//! drives an actor, and the actor's outbox is written back by one writer task.

pub mod agent;
pub mod supervisor;
pub mod writer;

use actix_ws::{Message, MessageStream, ProtocolError};
use bytes::Bytes;
use bytestring::ByteString;
use futures_util::StreamExt as _;
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
    messages: MessageStream,
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
