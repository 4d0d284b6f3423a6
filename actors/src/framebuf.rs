//! A reused buffer for the media hot paths (caller → softphone, softphone →
//! caller, caller → model, model → caller): each frame decoded from base64, and each
//! JSON message rendered for a socket, is written into one long-lived `BytesMut` and
//! split off it as `Bytes`. Once the frames split off earlier have been written and
//! dropped, the buffer's storage is taken back (`BytesMut::reserve` reclaims a buffer
//! nobody else holds), so a socket that keeps up allocates nothing per frame; one
//! whose frames wait in a queue costs one allocation per `chunk` bytes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::{BufMut as _, Bytes, BytesMut};

/// Bytes a buffer grows by when it must: 4 KiB, ~16 frames of 20 ms as JSON. Each
/// call holds two or three of these for as long as it lives, so this is most of
/// a call's share of RSS: 16 KiB put an AI call at ~105 KiB, past the 64 KiB
/// target; a frame larger than this (a long model delta) gets its own size.
pub const CHUNK: usize = 4 * 1024;

/// One socket's (or one relay's) reused frame buffer.
#[derive(Debug, Default)]
pub struct FrameBuf {
    buf: BytesMut,
}

impl FrameBuf {
    pub fn new() -> Self {
        Self::default()
    }

    /// Room for `len` more bytes: the old storage back if every frame split off it
    /// is gone, a new `CHUNK` otherwise.
    fn room(&mut self, len: usize) {
        if self.buf.capacity() - self.buf.len() < len {
            self.buf.reserve(len.max(CHUNK));
        }
    }

    /// Decodes standard base64 (Twilio's `media.payload`, the model's `delta`) into
    /// a frame of this buffer.
    pub fn decode_base64(&mut self, text: &[u8]) -> Result<Bytes, base64::DecodeSliceError> {
        let estimate = base64::decoded_len_estimate(text.len());
        self.room(estimate);
        let start = self.buf.len();
        self.buf.resize(start + estimate, 0);
        match STANDARD.decode_slice(text, &mut self.buf[start..]) {
            Ok(written) => {
                self.buf.truncate(start + written);
                Ok(self.buf.split().freeze())
            }
            Err(err) => {
                self.buf.truncate(start);
                Err(err)
            }
        }
    }

    /// `head`, `audio` as base64, `tail`: a fixed JSON template around a frame
    /// (Twilio's outbound `media`, the model's `input_audio_buffer.append`).
    pub fn base64_between(&mut self, head: &[u8], audio: &[u8], tail: &[u8]) -> Bytes {
        let encoded = base64::encoded_len(audio.len(), true).unwrap_or(0);
        self.room(head.len() + encoded + tail.len());
        self.buf.put_slice(head);
        let start = self.buf.len();
        self.buf.resize(start + encoded, 0);
        let written = STANDARD
            .encode_slice(audio, &mut self.buf[start..])
            .unwrap_or(0);
        self.buf.truncate(start + written);
        self.buf.put_slice(tail);
        self.buf.split().freeze()
    }

    /// Whatever `write` puts in, as one message (a `mark`, a `clear`).
    pub fn message(&mut self, len_hint: usize, write: impl FnOnce(&mut BytesMut)) -> Bytes {
        self.room(len_hint);
        write(&mut self.buf);
        self.buf.split().freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_encodes_byte_exact_and_refuses_what_is_not_base64() {
        let mut buf = FrameBuf::new();
        assert_eq!(
            buf.decode_base64(b"/wB/").expect("base64"),
            Bytes::from_static(&[0xFF, 0x00, 0x7F])
        );
        assert!(buf.decode_base64(b"!!").is_err());
        assert_eq!(
            buf.base64_between(b"<", &[0xFF, 0x00, 0x7F], b">"),
            Bytes::from_static(b"</wB/>")
        );
    }

    #[test]
    fn frames_split_off_stay_intact_while_the_buffer_is_reused() {
        let mut buf = FrameBuf::new();
        let kept: Vec<Bytes> = (0..500u16)
            .map(|n| buf.base64_between(b"", &n.to_be_bytes(), b""))
            .collect();
        for (n, frame) in (0..500u16).zip(&kept) {
            assert_eq!(
                buf.decode_base64(frame).expect("base64"),
                Bytes::copy_from_slice(&n.to_be_bytes())
            );
        }
    }
}
