//! Generator frames: the stamp every frame carries, the shared clock and Twilio's
//! `media` message.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::{FRAME_BYTES, FRAME_INTERVAL, MAGIC};

/// Nanoseconds since the run's epoch, shared by every generator thread.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock(pub(super) Instant);

impl Clock {
    pub(super) fn now_ns(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

/// What a generator frame says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    pub(super) direction: u8,
    pub(super) call: u32,
    pub(super) seq: u64,
    pub(super) sent_ns: u64,
}

/// A 160-byte frame: magic, direction, call, sequence, send time; then mu-law silence.
pub(super) fn encode_frame(stamp: Stamp) -> [u8; FRAME_BYTES] {
    let mut frame = [0xFF; FRAME_BYTES];
    frame[..3].copy_from_slice(&MAGIC);
    frame[3] = stamp.direction;
    frame[4..8].copy_from_slice(&stamp.call.to_le_bytes());
    frame[8..16].copy_from_slice(&stamp.seq.to_le_bytes());
    frame[16..24].copy_from_slice(&stamp.sent_ns.to_le_bytes());
    frame
}

pub(super) fn decode_frame(frame: &[u8]) -> Option<Stamp> {
    if frame.len() != FRAME_BYTES || frame[..3] != MAGIC {
        return None;
    }
    let u32_at = |at: usize| frame[at..at + 4].try_into().ok().map(u32::from_le_bytes);
    let u64_at = |at: usize| frame[at..at + 8].try_into().ok().map(u64::from_le_bytes);
    Some(Stamp {
        direction: frame[3],
        call: u32_at(4)?,
        seq: u64_at(8)?,
        sent_ns: u64_at(16)?,
    })
}

/// A Twilio `media` message as Twilio sends it.
pub(super) fn twilio_media(stream_sid: &str, seq: u64, frame: &[u8]) -> String {
    let mut out = String::with_capacity(320);
    let _ = write!(
        out,
        r#"{{"event":"media","sequenceNumber":"{}","media":{{"track":"inbound","chunk":"{}","timestamp":"{}","payload":""#,
        seq + 2,
        seq + 1,
        seq * 20
    );
    STANDARD.encode_string(frame, &mut out);
    let _ = write!(out, r#""}},"streamSid":"{stream_sid}"}}"#);
    out
}

/// Where the first frame of stream `index` goes within the 20 ms period, so that
/// N streams spread evenly instead of firing together.
pub(super) fn tick_offset(index: usize, total: usize) -> Duration {
    FRAME_INTERVAL.mul_f64(index as f64 / total.max(1) as f64)
}

pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CALLER_TO_AGENT;

    #[test]
    fn frames_carry_their_stamp_through_base64() {
        let stamp = Stamp {
            direction: CALLER_TO_AGENT,
            call: 977,
            seq: 12_345,
            sent_ns: 987_654_321,
        };
        let text = twilio_media("MZ1", 3, &encode_frame(stamp));
        // Read back as Twilio's Media Streams format says a receiver reads it.
        let json: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(json["event"], "media");
        assert_eq!(json["streamSid"], "MZ1");
        let payload = json["media"]["payload"].as_str().expect("a payload");
        let received = STANDARD.decode(payload).expect("base64");
        assert_eq!(decode_frame(&received), Some(stamp));
        assert_eq!(decode_frame(&[0xFF; FRAME_BYTES]), None);
    }
}
