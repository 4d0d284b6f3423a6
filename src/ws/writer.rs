//! The one writer of a socket: drains an [`Outbox`] into an actix-ws [`Session`].
//!
//! A wake-up writes everything queued: the writer hands every item it finds to the
//! session before it yields, and actix-ws encodes the messages handed to it before
//! its connection is next polled into one buffer, which actix-http writes with one
//! syscall. So a `media` and the `mark` behind it, or the frames of several calls'
//! pushes that arrived while the writer slept, go out together. The engine counts
//! these writes (`socket_writes`) and the messages they carried (`socket_messages`).

use std::sync::atomic::Ordering;

use actix_ws::{CloseCode, CloseReason, Closed, Session};
use bytes::Bytes;
use bytestring::ByteString;
use switchboard_actors::outbox::{Close, Outbox, Outgoing};

/// How a socket puts its items on the wire.
pub enum WireFrame {
    Text(ByteString),
    Binary(Bytes),
}

pub trait Render<C> {
    fn control(&mut self, message: C) -> ByteString;
    fn audio(&mut self, frame: Bytes) -> WireFrame;
}

/// Messages actix-ws holds for its connection (its channel's capacity): a batch
/// larger than this is written in more than one go, and counted so.
const SESSION_QUEUE: u64 = 32;

/// Spawns the writer task on the current arbiter. It ends after the close item, or
/// when the socket is gone (then the outbox stops accepting items).
pub fn spawn<C, R>(outbox: Outbox<C>, mut session: Session, mut render: R)
where
    C: 'static,
    R: Render<C> + 'static,
{
    actix_rt::spawn(async move {
        outbox.drained_here();
        let stats = std::sync::Arc::clone(outbox.stats());
        'socket: while let Some(first) = outbox.next().await {
            let mut item = Some(first);
            let mut batch: u64 = 0;
            let mut close = None;
            while let Some(next) = item.take().or_else(|| outbox.try_next()) {
                if batch % SESSION_QUEUE == 0 {
                    stats.socket_writes.fetch_add(1, Ordering::Relaxed);
                }
                batch += 1;
                if let Outgoing::Close(reason) = next {
                    close = Some(reason);
                    break;
                }
                if put(&mut session, &mut render, next).await.is_err() {
                    stats.socket_messages.fetch_add(batch, Ordering::Relaxed);
                    break 'socket;
                }
            }
            stats.socket_messages.fetch_add(batch, Ordering::Relaxed);
            if let Some(close) = close {
                let _ = session.close(Some(close_reason(close))).await;
                break;
            }
        }
        outbox.finish();
    });
}

/// Hands one item to the session (the close item is the caller's).
async fn put<C, R: Render<C>>(
    session: &mut Session,
    render: &mut R,
    item: Outgoing<C>,
) -> Result<(), Closed> {
    match item {
        Outgoing::Control(message) => session.text(render.control(message)).await,
        Outgoing::Audio(frame) => match render.audio(frame) {
            WireFrame::Text(text) => session.text(text).await,
            WireFrame::Binary(bytes) => session.binary(bytes).await,
        },
        Outgoing::Ping => session.ping(b"").await,
        Outgoing::Pong(payload) => session.pong(&payload).await,
        Outgoing::Close(_) => Ok(()),
    }
}

fn close_reason(close: Close) -> CloseReason {
    CloseReason {
        code: CloseCode::from(close.code),
        description: (!close.reason.is_empty()).then_some(close.reason),
    }
}
