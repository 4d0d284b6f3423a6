//! The WebSocket client.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{bail, Context as _};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use sha1::{Digest as _, Sha1};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::frame::find;

/// The server's answer to `Sec-WebSocket-Key` is keyed with this (RFC 6455 §1.3).
pub(super) const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Larger frames from the engine are a protocol error here.
pub(super) const WS_MAX_FRAME: usize = 1 << 20;

/// A frame from the engine.
#[derive(Debug)]
pub(super) enum Frame {
    Text(Bytes),
    Binary(Bytes),
    Ping(Bytes),
    Pong,
    Close(Option<u16>),
}

/// A frame to the engine.
pub(super) enum Message<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
    Pong(&'a [u8]),
    /// Close with 1000 (normal closure).
    Close,
}

/// A minimal RFC 6455 client on a `TCP_NODELAY` socket. The generator must not add
/// Nagle delays to the latency it measures, and awc offers no way to set the option;
/// this is also cheaper per frame than awc's framed codec. `ws://` only.
pub(super) struct WsClient {
    pub(super) stream: tokio::net::TcpStream,
    pub(super) read: BytesMut,
    /// Reused for every outgoing frame.
    pub(super) write: Vec<u8>,
    /// xorshift32 state for the masking keys (masking defeats proxy cache
    /// poisoning; on loopback any key will do, but it must be there).
    pub(super) mask: u32,
    /// A fragmented text or binary message being put together.
    pub(super) fragments: Option<(u8, BytesMut)>,
    /// The server end of a connection (the AI scenario's fake OpenAI): frames go
    /// out unmasked, as RFC 6455 requires of servers.
    pub(super) server: bool,
}

impl WsClient {
    pub(super) async fn connect(url: &str, headers: &[(&str, &str)]) -> anyhow::Result<WsClient> {
        let rest = url
            .strip_prefix("ws://")
            .with_context(|| format!("{url}: only ws:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        let mut stream = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::net::TcpStream::connect(authority),
        )
        .await
        .with_context(|| format!("connecting to {authority} timed out"))?
        .with_context(|| format!("connecting to {authority}"))?;
        stream.set_nodelay(true)?;
        let mut nonce = [0u8; 16];
        getrandom::getrandom(&mut nonce).context("random WebSocket key")?;
        let key = STANDARD.encode(nonce);
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        );
        for (name, value) in headers {
            let _ = write!(request, "{name}: {value}\r\n");
        }
        request.push_str("\r\n");
        let handshake = async {
            stream.write_all(request.as_bytes()).await?;
            let mut read = BytesMut::with_capacity(4096);
            loop {
                if let Some(at) = find(&read, b"\r\n\r\n") {
                    let head = read.split_to(at + 4);
                    return anyhow::Ok((head, read));
                }
                anyhow::ensure!(read.len() < 16 * 1024, "oversized handshake response");
                if stream.read_buf(&mut read).await? == 0 {
                    bail!("closed during the handshake");
                }
            }
        };
        let (head, read) = tokio::time::timeout(Duration::from_secs(10), handshake)
            .await
            .context("no handshake response in time")??;
        let head = String::from_utf8_lossy(&head);
        let status = head.lines().next().unwrap_or_default();
        anyhow::ensure!(
            status.split_whitespace().nth(1) == Some("101"),
            "handshake refused: {status}"
        );
        let accept = STANDARD.encode(Sha1::digest(format!("{key}{WS_GUID}").as_bytes()));
        let accepted = head.lines().any(|line| {
            line.split_once(':').is_some_and(|(name, value)| {
                name.trim().eq_ignore_ascii_case("sec-websocket-accept") && value.trim() == accept
            })
        });
        anyhow::ensure!(
            accepted,
            "the handshake answer has a wrong Sec-WebSocket-Accept"
        );
        let seed = u32::from_le_bytes([nonce[0], nonce[1], nonce[2], nonce[3]]) | 1;
        Ok(WsClient {
            stream,
            read,
            write: Vec::with_capacity(512),
            mask: seed,
            fragments: None,
            server: false,
        })
    }

    /// The server end of an accepted connection whose handshake is done; `read`
    /// holds whatever arrived after the request head.
    pub(super) fn server(stream: tokio::net::TcpStream, read: BytesMut) -> WsClient {
        WsClient {
            stream,
            read,
            write: Vec::with_capacity(512),
            mask: 1,
            fragments: None,
            server: true,
        }
    }

    /// Sends one unfragmented, masked frame.
    pub(super) async fn send(&mut self, message: Message<'_>) -> std::io::Result<()> {
        const NORMAL_CLOSURE: [u8; 2] = 1000u16.to_be_bytes();
        let (opcode, payload): (u8, &[u8]) = match message {
            Message::Text(text) => (0x1, text.as_bytes()),
            Message::Binary(bytes) => (0x2, bytes),
            Message::Pong(bytes) => (0xA, bytes),
            Message::Close => (0x8, &NORMAL_CLOSURE),
        };
        let out = &mut self.write;
        out.clear();
        out.push(0x80 | opcode);
        let masked: u8 = if self.server { 0 } else { 0x80 };
        match payload.len() {
            len @ 0..=125 => out.push(masked | len as u8),
            len @ 126..=0xFFFF => {
                out.push(masked | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                out.push(masked | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        if self.server {
            out.extend_from_slice(payload);
            return self.stream.write_all(out).await;
        }
        self.mask ^= self.mask << 13;
        self.mask ^= self.mask >> 17;
        self.mask ^= self.mask << 5;
        let key = self.mask.to_be_bytes();
        out.extend_from_slice(&key);
        let start = out.len();
        out.extend_from_slice(payload);
        for (i, byte) in out[start..].iter_mut().enumerate() {
            *byte ^= key[i & 3];
        }
        self.stream.write_all(out).await
    }

    /// The next frame; `None` once the engine closed the TCP connection.
    /// Cancel-safe: a partly received frame stays buffered.
    pub(super) async fn next(&mut self) -> Option<std::io::Result<Frame>> {
        loop {
            match self.parse() {
                Ok(Some(frame)) => return Some(Ok(frame)),
                Ok(None) => {}
                Err(err) => return Some(Err(err)),
            }
            match self.stream.read_buf(&mut self.read).await {
                Ok(0) => return None,
                Ok(_) => {}
                Err(err) => return Some(Err(err)),
            }
        }
    }

    /// Takes one complete frame off the read buffer, if there is one.
    pub(super) fn parse(&mut self) -> std::io::Result<Option<Frame>> {
        let invalid =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
        loop {
            let buf = &self.read[..];
            if buf.len() < 2 {
                return Ok(None);
            }
            let fin = buf[0] & 0x80 != 0;
            let opcode = buf[0] & 0x0F;
            let masked = buf[1] & 0x80 != 0;
            let (len, mut at) = match buf[1] & 0x7F {
                126 if buf.len() >= 4 => (usize::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
                127 if buf.len() >= 10 => {
                    let mut len = [0u8; 8];
                    len.copy_from_slice(&buf[2..10]);
                    (u64::from_be_bytes(len) as usize, 10)
                }
                126 | 127 => return Ok(None),
                len => (usize::from(len), 2),
            };
            if len > WS_MAX_FRAME {
                return Err(invalid("frame too large"));
            }
            let key = if masked {
                if buf.len() < at + 4 {
                    return Ok(None);
                }
                let key = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
                at += 4;
                Some(key)
            } else {
                None
            };
            if buf.len() < at + len {
                return Ok(None);
            }
            let mut payload = self.read.split_to(at + len).split_off(at);
            if let Some(key) = key {
                for (i, byte) in payload.iter_mut().enumerate() {
                    *byte ^= key[i & 3];
                }
            }
            let data = |opcode: u8, payload: Bytes| {
                if opcode == 0x1 {
                    Frame::Text(payload)
                } else {
                    Frame::Binary(payload)
                }
            };
            return Ok(Some(match opcode {
                0x0 => {
                    let Some((_, message)) = &mut self.fragments else {
                        return Err(invalid("continuation without a first fragment"));
                    };
                    message.extend_from_slice(&payload);
                    if !fin {
                        continue;
                    }
                    let Some((opcode, message)) = self.fragments.take() else {
                        return Err(invalid("lost fragments"));
                    };
                    data(opcode, message.freeze())
                }
                0x1 | 0x2 if !fin => {
                    self.fragments = Some((opcode, payload));
                    continue;
                }
                0x1 | 0x2 => data(opcode, payload.freeze()),
                0x8 => Frame::Close(
                    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]])),
                ),
                0x9 => Frame::Ping(payload.freeze()),
                0xA => Frame::Pong,
                _ => return Err(invalid("unknown opcode")),
            }));
        }
    }
}

/// Server side: reads an upgrade request's head (bounded, 10 s); returns it and
/// whatever arrived after it.
pub(super) async fn read_upgrade_head(
    stream: &mut tokio::net::TcpStream,
) -> anyhow::Result<(String, BytesMut)> {
    let mut read = BytesMut::with_capacity(4096);
    let head = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(at) = find(&read, b"\r\n\r\n") {
                return anyhow::Ok(read.split_to(at + 4));
            }
            anyhow::ensure!(read.len() < 16 * 1024, "oversized handshake");
            anyhow::ensure!(
                stream.read_buf(&mut read).await? > 0,
                "closed during the handshake"
            );
        }
    })
    .await
    .context("no handshake in time")??;
    Ok((String::from_utf8_lossy(&head).into_owned(), read))
}

/// Server side: answers `101 Switching Protocols` to the client's
/// `Sec-WebSocket-Key` and returns the server end of the socket.
pub(super) async fn switch_protocols(
    mut stream: tokio::net::TcpStream,
    read: BytesMut,
    key: &str,
) -> anyhow::Result<WsClient> {
    let accept = STANDARD.encode(Sha1::digest(format!("{key}{WS_GUID}").as_bytes()));
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    stream.write_all(response.as_bytes()).await?;
    Ok(WsClient::server(stream, read))
}
