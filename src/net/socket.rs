//! A server WebSocket whose writes come straight out of its [`Outbox`].
//!
//! actix-ws puts a writer task and a channel between a socket's queue and its
//! connection: an item pushed woke the writer task, which handed it to actix-ws's
//! channel, which woke the connection, whose body encoded it into a fresh buffer
//! that the HTTP/1 dispatcher then copied into its own. Here the response body
//! *is* the outbox's reader: the dispatcher polls [`OutboxBody`], which takes the
//! outbox's next item, renders it and encodes it (a small frame into a buffer
//! reused for the connection's life). A push wakes the connection itself, once however many items
//! arrive before it runs; the dispatcher keeps polling until its write buffer is
//! full or the outbox is empty, so everything queued (a `media` and the `mark`
//! behind it, a burst of frames) goes out in one write. Nothing is allocated per
//! message in steady state, and a slow peer leaves items in the outbox, whose
//! bounds decide what is dropped: the body never holds more than one message.
//!
//! A text message longer than [`FRAGMENT_BYTES`] (a roster of a thousand seats)
//! is sent as continuation frames of that size (RFC 6455 §5.4), so no connection
//! buffer ever grows past the size actix-http gives it; every WebSocket client
//! reassembles them.
//!
//! [`Incoming`] is the read half: the request's payload decoded into messages
//! with actix-http's codec, as actix-ws does, ending when the body is dropped.

use std::cell::RefCell;
use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use actix_codec::{Decoder as _, Encoder as _};
use actix_http::ws::{Codec, Frame, Item, Message, ProtocolError};
use actix_web::body::{BodySize, MessageBody};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use futures_util::Stream;
use switchboard_actors::outbox::{Close, Outbox, Outgoing};
use tokio::sync::oneshot;

/// How a socket puts its items on the wire.
pub enum WireFrame {
    Text(ByteString),
    Binary(Bytes),
}

/// A socket's protocol: its control messages and audio frames as WebSocket
/// messages.
pub trait Render<C> {
    fn control(&mut self, message: C) -> ByteString;
    fn audio(&mut self, frame: Bytes) -> WireFrame;
}

/// The render of an outbox whose control messages are their text already (a
/// node link's JSON): text frames as they are, audio as binary frames.
pub struct PlainWire;

impl Render<String> for PlainWire {
    fn control(&mut self, message: String) -> ByteString {
        message.into()
    }

    fn audio(&mut self, frame: Bytes) -> WireFrame {
        WireFrame::Binary(frame)
    }
}

/// Where the HTTP/1 dispatcher flushes a connection's write buffer (the
/// server's `h1_write_buffer_size`): it polls the body while the buffer holds
/// less than this. A socket write is counted per this many bytes of a run of
/// messages, and at the end of each run.
pub const WRITE_BYTES: usize = 4 * 1024;

/// Text messages longer than this go out in fragments of this size. With
/// [`WRITE_BYTES`], the dispatcher's buffer never holds more than 4 KiB plus one
/// fragment and its header, under the 8 KiB actix-http gives it: it never grows
/// (a grown buffer is kept for the connection's life, up to 128 KiB).
pub const FRAGMENT_BYTES: usize = 4 * 1024 - 16;

/// Frames up to this size (audio, `media`, marks, most control messages) are
/// encoded into the body's reused buffer; a larger one (a fragment of a roster,
/// a `state`) into a buffer of its own, freed once written, so that the reused
/// one stays the size of an audio frame rather than of the largest message the
/// socket ever carried.
const REUSED_FRAME_BYTES: usize = 1024;

/// A socket's frame rules.
#[derive(Debug, Clone, Copy)]
pub struct Frames {
    /// The largest frame the peer may send.
    pub max_in: usize,
    /// Text messages longer than this go out in fragments of this size.
    pub fragment_out: usize,
}

impl Frames {
    /// Long text in fragments of [`FRAGMENT_BYTES`]: the sockets of softphones,
    /// consoles and Twilio.
    pub fn fragmented(max_in: usize) -> Self {
        Self {
            max_in,
            fragment_out: FRAGMENT_BYTES,
        }
    }

    /// Every message whole, however long: for a peer that reads only whole
    /// messages (a node link's dialer, which may be an older engine during a
    /// rolling upgrade).
    pub fn whole(max_in: usize) -> Self {
        Self {
            max_in,
            fragment_out: usize::MAX,
        }
    }
}

/// Accepts the upgrade of `req`: the response (101, its body draining `outbox`
/// through `render`) and the socket's incoming messages, both by `frames`. A
/// request that is not a WebSocket upgrade is refused with actix-http's
/// handshake error (400).
pub fn accept<C, R>(
    req: &HttpRequest,
    payload: web::Payload,
    outbox: Outbox<C>,
    render: R,
    frames: Frames,
) -> Result<(HttpResponse, Incoming), actix_web::Error>
where
    C: 'static,
    R: Render<C> + 'static,
{
    let mut response = actix_http::ws::handshake(req.head())?;
    let (closed_tx, closed_rx) = oneshot::channel();
    let mut body = OutboxBody::new(outbox, render, closed_tx);
    body.fragment = frames.fragment_out;
    let incoming = Incoming {
        payload: payload.into_inner(),
        codec: Codec::new().max_size(frames.max_in),
        buf: BytesMut::new(),
        body_gone: Some(closed_rx),
        ending: false,
        failed: false,
    };
    Ok((
        HttpResponse::from(response.message_body(body.boxed())?),
        incoming,
    ))
}

/// A render shared with whoever learns later what the socket is (the Twilio
/// stream's `streamSid` arrives after the upgrade): the body renders through it.
impl<C, R: Render<C>> Render<C> for Rc<RefCell<R>> {
    fn control(&mut self, message: C) -> ByteString {
        self.borrow_mut().control(message)
    }

    fn audio(&mut self, frame: Bytes) -> WireFrame {
        self.borrow_mut().audio(frame)
    }
}

/// The response body of an accepted socket: its outbox, encoded.
pub struct OutboxBody<C, R> {
    outbox: Outbox<C>,
    render: R,
    codec: Codec,
    /// Where small frames are encoded; the last one handed to the dispatcher
    /// shares it, and is reclaimed for the next once the dispatcher has copied
    /// (and dropped) it.
    buf: BytesMut,
    /// Text messages longer than this go out in fragments of this size.
    fragment: usize,
    /// What is left of a long text message: its next fragments.
    rest: Option<Bytes>,
    started: bool,
    /// The close frame is out: the body ends.
    closing: bool,
    /// Messages and bytes handed over since the last counted socket write.
    run_messages: u64,
    run_bytes: usize,
    /// Dropped with the body (the connection is gone): ends [`Incoming`].
    _closed: oneshot::Sender<()>,
}

// No field is ever pinned (the body is polled through `&mut`).
impl<C, R> Unpin for OutboxBody<C, R> {}

impl<C, R: Render<C>> OutboxBody<C, R> {
    /// The body of a socket writing `outbox` through `render`; `closed` is
    /// dropped with it.
    pub(crate) fn new(outbox: Outbox<C>, render: R, closed: oneshot::Sender<()>) -> Self {
        Self {
            outbox,
            render,
            codec: Codec::new(),
            buf: BytesMut::new(),
            fragment: FRAGMENT_BYTES,
            rest: None,
            started: false,
            closing: false,
            run_messages: 0,
            run_bytes: 0,
            _closed: closed,
        }
    }

    /// One item as the message to encode.
    fn message(&mut self, item: Outgoing<C>) -> Message {
        match item {
            Outgoing::Control(message) => {
                let text = self.render.control(message);
                if text.len() > self.fragment {
                    let bytes = text.into_bytes();
                    let first = bytes.slice(..self.fragment);
                    self.rest = Some(bytes.slice(self.fragment..));
                    Message::Continuation(Item::FirstText(first))
                } else {
                    Message::Text(text)
                }
            }
            Outgoing::Audio(frame) => match self.render.audio(frame) {
                WireFrame::Text(text) => Message::Text(text),
                WireFrame::Binary(bytes) => Message::Binary(bytes),
            },
            Outgoing::Ping => Message::Ping(Bytes::new()),
            Outgoing::Pong(payload) => Message::Pong(payload),
            Outgoing::Close(close) => {
                self.closing = true;
                Message::Close(Some(close_reason(close)))
            }
        }
    }

    /// The next fragment of a long text message.
    fn next_fragment(&mut self, mut rest: Bytes) -> Message {
        let item = if rest.len() > self.fragment {
            let next = rest.split_to(self.fragment);
            self.rest = Some(rest);
            Item::Continue(next)
        } else {
            Item::Last(rest)
        };
        Message::Continuation(item)
    }

    /// `message` as a WebSocket frame: in the reused buffer if it is small (the
    /// frame shares its storage, taken back once the dispatcher has copied and
    /// dropped it), in one of its own otherwise.
    fn encode(&mut self, message: Message) -> Result<Bytes, ProtocolError> {
        let size = match &message {
            Message::Text(text) => text.len(),
            Message::Binary(bytes) => bytes.len(),
            Message::Continuation(
                Item::FirstText(bytes)
                | Item::FirstBinary(bytes)
                | Item::Continue(bytes)
                | Item::Last(bytes),
            ) => bytes.len(),
            _ => 0,
        };
        if size > REUSED_FRAME_BYTES {
            let mut own = BytesMut::with_capacity(size + 14);
            self.codec.encode(message, &mut own)?;
            return Ok(own.freeze());
        }
        self.codec.encode(message, &mut self.buf)?;
        Ok(self.buf.split().freeze())
    }

    /// Counts the socket write that ends a run of messages.
    /// A message whose fragments span several writes is counted with the first.
    fn count_write(&mut self) {
        if self.run_bytes > 0 {
            let stats = self.outbox.stats();
            stats.socket_writes.fetch_add(1, Ordering::Relaxed);
            stats
                .socket_messages
                .fetch_add(self.run_messages, Ordering::Relaxed);
            self.run_messages = 0;
            self.run_bytes = 0;
        }
    }
}

impl<C, R: Render<C>> MessageBody for OutboxBody<C, R> {
    type Error = ProtocolError;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = Pin::into_inner(self);
        if this.closing && this.rest.is_none() {
            this.count_write();
            return Poll::Ready(None);
        }
        if !this.started {
            this.started = true;
            this.outbox.drained_here();
        }
        let message = match this.rest.take() {
            Some(rest) => this.next_fragment(rest),
            None => match this.outbox.poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    this.run_messages += 1;
                    this.message(item)
                }
                Poll::Ready(None) => {
                    this.count_write();
                    return Poll::Ready(None);
                }
                Poll::Pending => {
                    this.count_write();
                    return Poll::Pending;
                }
            },
        };
        let frame = match this.encode(message) {
            Ok(frame) => frame,
            Err(err) => return Poll::Ready(Some(Err(err))),
        };
        // The dispatcher flushes each time its buffer fills: one write per
        // `WRITE_BYTES` of a long run.
        this.run_bytes += frame.len();
        if this.run_bytes >= WRITE_BYTES {
            this.count_write();
        }
        Poll::Ready(Some(Ok(frame)))
    }
}

impl<C, R> Drop for OutboxBody<C, R> {
    /// The connection is gone (or closed): later pushes are discarded.
    fn drop(&mut self) {
        self.outbox.finish();
    }
}

fn close_reason(close: Close) -> actix_http::ws::CloseReason {
    actix_http::ws::CloseReason {
        code: actix_http::ws::CloseCode::from(close.code),
        description: (!close.reason.is_empty()).then_some(close.reason),
    }
}

/// The messages a peer sends, decoded from the upgraded request's payload. Ends
/// when the peer's stream ends, after a protocol error, or once the response
/// body is gone (the connection closed from this side).
pub struct Incoming {
    payload: actix_http::Payload,
    codec: Codec,
    buf: BytesMut,
    body_gone: Option<oneshot::Receiver<()>>,
    /// No more bytes will be read: what is buffered is decoded, then the end.
    ending: bool,
    /// A protocol error was given: the end.
    failed: bool,
}

impl Incoming {
    /// The next whole frame already read, if any. A protocol error ends the stream.
    fn decoded(&mut self) -> Option<Result<Message, ProtocolError>> {
        match self.codec.decode(&mut self.buf) {
            Ok(None) => None,
            Ok(Some(frame)) => Some(message(frame)),
            Err(err) => Some(Err(err)),
        }
    }
}

impl Stream for Incoming {
    type Item = Result<Message, ProtocolError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = Pin::into_inner(self);
        if this.failed {
            return Poll::Ready(None);
        }
        loop {
            // A frame already read is given before anything else is read.
            if let Some(next) = this.decoded() {
                this.failed = next.is_err();
                return Poll::Ready(Some(next));
            }
            if this.ending {
                return Poll::Ready(None);
            }
            if let Some(gone) = this.body_gone.as_mut() {
                if Pin::new(gone).poll(cx).is_ready() {
                    this.body_gone = None;
                    this.ending = true;
                    continue;
                }
            }
            match Pin::new(&mut this.payload).poll_next(cx) {
                // Copied into the reused buffer: the chunk shares the dispatcher's
                // read buffer, which taking it over whole would copy anyway.
                Poll::Ready(Some(Ok(bytes))) => this.buf.extend_from_slice(&bytes),
                Poll::Ready(Some(Err(err))) => {
                    this.failed = true;
                    return Poll::Ready(Some(Err(ProtocolError::Io(io::Error::other(err)))));
                }
                Poll::Ready(None) => this.ending = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// A decoded frame as a message (a text frame's UTF-8 checked).
fn message(frame: Frame) -> Result<Message, ProtocolError> {
    Ok(match frame {
        Frame::Text(bytes) => ByteString::try_from(bytes)
            .map(Message::Text)
            .map_err(|err| ProtocolError::Io(io::Error::new(io::ErrorKind::InvalidData, err)))?,
        Frame::Binary(bytes) => Message::Binary(bytes),
        Frame::Ping(bytes) => Message::Ping(bytes),
        Frame::Pong(bytes) => Message::Pong(bytes),
        Frame::Close(reason) => Message::Close(reason),
        Frame::Continuation(item) => Message::Continuation(item),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::task::Waker;

    use switchboard_actors::outbox::OutboxLimits;
    use switchboard_actors::stats::EngineStats;

    use super::*;

    #[test]
    fn a_long_message_goes_out_in_fragments_counted_as_one_message_over_the_writes_it_takes() {
        let stats = Arc::new(EngineStats::default());
        let outbox = Outbox::new(OutboxLimits::default(), Arc::clone(&stats));
        let (closed, _gone) = oneshot::channel();
        let mut body = OutboxBody::new(outbox.clone(), PlainWire, closed);
        outbox.send("é".repeat(10_000));
        let mut cx = Context::from_waker(Waker::noop());
        let mut frames = Vec::new();
        while let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut body).poll_next(&mut cx) {
            frames.push(frame);
        }
        // 20,000 bytes: a text frame without FIN (opcode 1), continuations
        // (opcode 0), the last with FIN; each at most a fragment and its header.
        assert_eq!(frames.len(), 20_000_usize.div_ceil(FRAGMENT_BYTES));
        assert_eq!(frames[0][0], 0x01);
        assert!(frames[1..frames.len() - 1].iter().all(|f| f[0] == 0x00));
        assert_eq!(frames[frames.len() - 1][0], 0x80);
        assert!(frames.iter().all(|f| f.len() <= FRAGMENT_BYTES + 4));
        let payload: Vec<u8> = frames.iter().flat_map(|f| f[4..].to_vec()).collect();
        assert_eq!(
            String::from_utf8(payload).expect("UTF-8 joined"),
            "é".repeat(10_000)
        );
        // The dispatcher flushes once its buffer holds 4 KiB: after fragments
        // 2 and 4, and at the wait after the last.
        assert_eq!(stats.socket_writes.load(Ordering::Relaxed), 3);
        assert_eq!(stats.socket_messages.load(Ordering::Relaxed), 1);
    }
}
