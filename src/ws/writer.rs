//! The one writer of a socket: drains an [`Outbox`] into an actix-ws [`Session`].

use actix_ws::{CloseCode, CloseReason, Session};
use bytes::Bytes;
use bytestring::ByteString;
use switchboard_actors::outbox::{Outbox, Outgoing};

/// How a socket puts its items on the wire.
pub enum WireFrame {
    Text(ByteString),
    Binary(Bytes),
}

pub trait Render<C> {
    fn control(&mut self, message: C) -> ByteString;
    fn audio(&mut self, frame: Bytes) -> WireFrame;
}

/// Spawns the writer task on the current arbiter. It ends after the close item, or
/// when the socket is gone (then the outbox stops accepting items).
pub fn spawn<C, R>(outbox: Outbox<C>, mut session: Session, mut render: R)
where
    C: 'static,
    R: Render<C> + 'static,
{
    actix_rt::spawn(async move {
        while let Some(item) = outbox.next().await {
            let sent = match item {
                Outgoing::Control(message) => session.text(render.control(message)).await,
                Outgoing::Audio(frame) => match render.audio(frame) {
                    WireFrame::Text(text) => session.text(text).await,
                    WireFrame::Binary(bytes) => session.binary(bytes).await,
                },
                Outgoing::Ping => session.ping(b"").await,
                Outgoing::Pong(payload) => session.pong(&payload).await,
                Outgoing::Close(close) => {
                    let reason = CloseReason {
                        code: CloseCode::from(close.code),
                        description: (!close.reason.is_empty()).then_some(close.reason),
                    };
                    let _ = session.close(Some(reason)).await;
                    break;
                }
            };
            if sent.is_err() {
                break;
            }
        }
        outbox.finish();
    });
}
