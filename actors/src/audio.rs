//! Telephone audio: 8 kHz G.711 mu-law, 20 ms frames; generated tones; the mu-law WAV
//! container used for voicemail recordings.

use std::sync::LazyLock;

use bytes::{BufMut, Bytes, BytesMut};

/// Samples per second on the phone network.
pub const SAMPLE_RATE: u32 = 8_000;
/// One 20 ms frame of 8 kHz mu-law: one byte per sample.
pub const FRAME_BYTES: usize = 160;
pub const FRAME_MS: u64 = 20;
/// Mu-law encoding of digital silence.
pub const ULAW_SILENCE: u8 = 0xFF;

/// `audio` cut into frames of at most [`FRAME_BYTES`], without copying: a peer that
/// sends seconds of audio in one message still reaches a softphone as the protocol's
/// 20 ms frames (and under its audio bound, frame by frame).
pub fn frames(audio: Bytes) -> impl Iterator<Item = Bytes> {
    let len = audio.len();
    (0..len)
        .step_by(FRAME_BYTES)
        .map(move |start| audio.slice(start..(start + FRAME_BYTES).min(len)))
}

/// Encodes one 16-bit linear PCM sample as G.711 mu-law.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32_635;
    let mut magnitude = i32::from(sample);
    let sign = if magnitude < 0 {
        magnitude = -magnitude;
        0x80
    } else {
        0
    };
    magnitude = magnitude.min(CLIP) + BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && magnitude & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (magnitude >> (exponent + 3)) & 0x0F;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// Decodes one G.711 mu-law byte to 16-bit linear PCM.
pub fn ulaw_to_linear(byte: u8) -> i16 {
    let byte = !byte;
    let sign = byte & 0x80;
    let exponent = (byte >> 4) & 0x07;
    let mantissa = i32::from(byte & 0x0F);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    if sign != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// `samples` of a sum of sine tones, each `(frequency in Hz, peak amplitude in 16-bit
/// linear)`, starting at phase zero, encoded as mu-law into `out`.
pub(crate) fn put_sines(out: &mut BytesMut, tones: &[(f64, f64)], samples: usize) {
    for n in 0..samples {
        let t = n as f64 / f64::from(SAMPLE_RATE);
        let value: f64 = tones
            .iter()
            .map(|(f, amplitude)| (2.0 * std::f64::consts::PI * f * t).sin() * amplitude)
            .sum();
        out.put_u8(linear_to_ulaw(value as i16));
    }
}

/// A sum of sine tones, switched on and off in a cadence, as mu-law bytes.
fn tone(freqs: &[f64], amplitude: f64, on_ms: u64, off_ms: u64) -> Bytes {
    let on = (SAMPLE_RATE as u64 * on_ms / 1000) as usize;
    let off = (SAMPLE_RATE as u64 * off_ms / 1000) as usize;
    let mut out = BytesMut::with_capacity(on + off);
    let share = amplitude / freqs.len() as f64;
    let tones: Vec<(f64, f64)> = freqs.iter().map(|&f| (f, share)).collect();
    put_sines(&mut out, &tones, on);
    out.put_bytes(ULAW_SILENCE, off);
    out.freeze()
}

/// North American ringback: 440 + 480 Hz, 2 s on, 4 s off (one 6 s cycle).
pub static RINGBACK: LazyLock<Bytes> =
    LazyLock::new(|| tone(&[440.0, 480.0], 6_000.0, 2_000, 4_000));

/// The beep that tells a caller the recording has started: 1 kHz for 400 ms.
pub static BEEP: LazyLock<Bytes> = LazyLock::new(|| tone(&[1_000.0], 8_000.0, 400, 100));

/// Hold audio: a soft C–E–G arpeggio, then a pause; a 2 s loop.
pub static HOLD: LazyLock<Bytes> = LazyLock::new(|| {
    let mut out = BytesMut::new();
    for freq in [523.25, 659.25, 783.99] {
        out.extend_from_slice(&tone(&[freq], 3_000.0, 250, 0));
    }
    out.put_bytes(ULAW_SILENCE, 8 * 1_250);
    out.freeze()
});

/// Sums two mu-law frames sample by sample (what a listener hears of both sides).
pub fn mix(a: &[u8], b: &[u8]) -> Bytes {
    let len = a.len().max(b.len());
    let mut out = BytesMut::with_capacity(len);
    for i in 0..len {
        let x = a.get(i).map_or(0, |&s| i32::from(ulaw_to_linear(s)));
        let y = b.get(i).map_or(0, |&s| i32::from(ulaw_to_linear(s)));
        let sum = (x + y).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
        out.put_u8(linear_to_ulaw(sum));
    }
    out.freeze()
}

/// Plays a looping sound in chunks, remembering where it stopped (shared slices, no copy).
#[derive(Debug, Clone)]
pub struct Looper {
    sound: Bytes,
    position: usize,
}

impl Looper {
    pub fn new(sound: Bytes) -> Self {
        Self { sound, position: 0 }
    }

    /// The next `len` bytes of the loop, possibly as two slices at the wrap point.
    pub fn next_chunks(&mut self, len: usize) -> Vec<Bytes> {
        let mut chunks = Vec::with_capacity(2);
        let mut wanted = len;
        while wanted > 0 && !self.sound.is_empty() {
            let end = (self.position + wanted).min(self.sound.len());
            chunks.push(self.sound.slice(self.position..end));
            wanted -= end - self.position;
            self.position = if end == self.sound.len() { 0 } else { end };
        }
        chunks
    }
}

/// Wraps raw mu-law samples in a WAV (RIFF) container: format tag 7 (mu-law), mono,
/// 8 kHz, 8 bits, with the `fact` chunk that non-PCM WAV files carry.
///
/// Written here rather than with `hound` because hound writes only PCM and float WAV.
pub fn ulaw_wav(samples: &[u8]) -> Bytes {
    const FMT_LEN: u32 = 18;
    let data_len = samples.len() as u32;
    let pad = data_len % 2;
    let riff_len = 4 + (8 + FMT_LEN) + (8 + 4) + (8 + data_len + pad);
    let mut out = BytesMut::with_capacity(riff_len as usize + 8);
    out.put_slice(b"RIFF");
    out.put_u32_le(riff_len);
    out.put_slice(b"WAVE");
    out.put_slice(b"fmt ");
    out.put_u32_le(FMT_LEN);
    out.put_u16_le(7); // WAVE_FORMAT_MULAW
    out.put_u16_le(1); // channels
    out.put_u32_le(SAMPLE_RATE);
    out.put_u32_le(SAMPLE_RATE); // bytes per second
    out.put_u16_le(1); // block align
    out.put_u16_le(8); // bits per sample
    out.put_u16_le(0); // no extension
    out.put_slice(b"fact");
    out.put_u32_le(4);
    out.put_u32_le(data_len); // samples per channel
    out.put_slice(b"data");
    out.put_u32_le(data_len);
    out.put_slice(samples);
    if pad == 1 {
        out.put_u8(0);
    }
    out.freeze()
}

/// Milliseconds of audio in `len` mu-law bytes.
pub fn duration_ms(len: usize) -> u64 {
    len as u64 * 1000 / u64::from(SAMPLE_RATE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_is_cut_into_frames_of_at_most_160_bytes_in_order() {
        let audio = Bytes::from((0..400u32).map(|i| i as u8).collect::<Vec<_>>());
        let cut: Vec<Bytes> = frames(audio.clone()).collect();
        assert_eq!(
            cut.iter().map(Bytes::len).collect::<Vec<_>>(),
            [160, 160, 80]
        );
        assert_eq!(cut.concat(), audio.to_vec());
        assert_eq!(frames(Bytes::from_static(&[1; 160])).count(), 1);
        assert_eq!(frames(Bytes::new()).count(), 0);
    }

    #[test]
    fn mu_law_round_trips_within_quantisation_error() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        for sample in [-32_000i16, -1_000, -10, 0, 10, 1_000, 32_000] {
            let back = ulaw_to_linear(linear_to_ulaw(sample));
            let error = (i32::from(back) - i32::from(sample)).abs();
            assert!(
                error <= i32::from(sample).abs() / 16 + 8,
                "{sample} -> {back}"
            );
        }
    }

    #[test]
    fn ringback_is_a_six_second_cadence_with_silence() {
        assert_eq!(RINGBACK.len(), 6 * 8_000);
        assert!(RINGBACK[16_000..].iter().all(|&b| b == ULAW_SILENCE));
        assert!(RINGBACK[..16_000].iter().any(|&b| b != ULAW_SILENCE));
    }

    #[test]
    fn mixing_adds_both_sides_and_keeps_the_longer_tail() {
        let loud = linear_to_ulaw(8_000);
        let quiet = linear_to_ulaw(1_000);
        let mixed = mix(&[loud, quiet], &[quiet]);
        assert_eq!(mixed.len(), 2);
        let first = i32::from(ulaw_to_linear(mixed[0]));
        assert!((first - 9_000).abs() < 400, "{first}");
        assert_eq!(mixed[1], linear_to_ulaw(ulaw_to_linear(quiet)));
        assert_eq!(
            mix(&[ULAW_SILENCE; 4], &[ULAW_SILENCE; 4])[..],
            [ULAW_SILENCE; 4]
        );
    }

    #[test]
    fn hold_audio_is_a_two_second_loop() {
        assert_eq!(HOLD.len(), 2 * 8_000);
    }

    #[test]
    fn looper_wraps_without_losing_bytes() {
        let mut looper = Looper::new(Bytes::from_static(b"abcde"));
        let first: Vec<u8> = looper.next_chunks(3).concat();
        let second: Vec<u8> = looper.next_chunks(4).concat();
        assert_eq!(first, b"abc");
        assert_eq!(second, b"deab");
    }

    #[test]
    fn wav_header_describes_mono_8khz_mu_law() {
        let wav = ulaw_wav(&[0xFF; 801]);
        assert_eq!(&wav[0..4], b"RIFF");
        assert_eq!(&wav[8..12], b"WAVE");
        assert_eq!(u16::from_le_bytes([wav[20], wav[21]]), 7);
        assert_eq!(
            u32::from_le_bytes([wav[24], wav[25], wav[26], wav[27]]),
            8_000
        );
        assert_eq!(&wav[50..54], b"data");
        assert_eq!(
            u32::from_le_bytes([wav[54], wav[55], wav[56], wav[57]]),
            801
        );
        let riff = u32::from_le_bytes([wav[4], wav[5], wav[6], wav[7]]) as usize;
        assert_eq!(riff + 8, wav.len());
    }
}
