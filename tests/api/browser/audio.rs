//! Audio for the browser tests: the WAVs the fake microphone plays, μ-law as
//! Twilio carries it (ITU-T G.711), and the Goertzel filter that finds a tone.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Writes a mono 16-bit WAV at `rate` Hz: `seconds` of a sine at `hz` (silence
/// when `hz` is 0) at `amplitude` (0–1), after `lead_silence` seconds of silence.
pub fn tone_wav(
    path: &Path,
    rate: u32,
    hz: f64,
    amplitude: f64,
    lead_silence: f64,
    seconds: f64,
) -> PathBuf {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).expect("create the WAV");
    let lead = (lead_silence * f64::from(rate)) as usize;
    let total = lead + (seconds * f64::from(rate)) as usize;
    for n in 0..total {
        let sample = if n < lead || hz == 0.0 {
            0.0
        } else {
            let t = (n - lead) as f64 / f64::from(rate);
            amplitude * (2.0 * std::f64::consts::PI * hz * t).sin()
        };
        writer
            .write_sample((sample * f64::from(i16::MAX)) as i16)
            .expect("write a sample");
    }
    writer.finalize().expect("finish the WAV");
    path.to_path_buf()
}

/// G.711 μ-law byte → linear 16-bit sample.
pub fn mulaw_decode(byte: u8) -> i16 {
    let u = !byte;
    let sign = u & 0x80;
    let exponent = (u >> 4) & 0x07;
    let mantissa = u & 0x0f;
    let magnitude = ((i32::from(mantissa) << 3) + 0x84) << exponent;
    let sample = magnitude - 0x84;
    (if sign != 0 { -sample } else { sample }) as i16
}

/// Linear 16-bit sample → G.711 μ-law byte.
pub fn mulaw_encode(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut value = i32::from(sample);
    let sign = if value < 0 {
        value = -value;
        0x80
    } else {
        0
    };
    value = value.min(CLIP) + BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && value & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (value >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// μ-law samples of a sine at `hz` (8 kHz), from sample `start` on.
pub fn mulaw_tone(hz: f64, amplitude: f64, start: usize, count: usize) -> Vec<u8> {
    (start..start + count)
        .map(|n| {
            let t = n as f64 / 8000.0;
            let sample = amplitude * (2.0 * std::f64::consts::PI * hz * t).sin();
            mulaw_encode((sample * f64::from(i16::MAX)) as i16)
        })
        .collect()
}

/// The power of `hz` in `samples` (Goertzel), normalised by the block's length.
pub fn goertzel(samples: &[f64], rate: f64, hz: f64) -> f64 {
    let coefficient = 2.0 * (2.0 * std::f64::consts::PI * hz / rate).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s0 = x + coefficient * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coefficient * s1 * s2) / (samples.len() as f64).powi(2)
}

/// RMS of μ-law bytes, 0–1.
pub fn mulaw_rms(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    let sum: f64 = bytes
        .iter()
        .map(|&b| (f64::from(mulaw_decode(b)) / 32768.0).powi(2))
        .sum();
    (sum / bytes.len() as f64).sqrt()
}

#[test]
fn mulaw_round_trips_and_goertzel_finds_the_tone() {
    for sample in [-32000i16, -1000, -1, 0, 1, 1000, 32000] {
        let back = mulaw_decode(mulaw_encode(sample));
        assert!((i32::from(back) - i32::from(sample)).abs() <= i32::from(sample).abs() / 16 + 8);
    }
    let tone: Vec<f64> = mulaw_tone(1000.0, 0.5, 0, 800)
        .into_iter()
        .map(|b| f64::from(mulaw_decode(b)))
        .collect();
    let at = goertzel(&tone, 8000.0, 1000.0);
    for other in [300.0, 500.0, 700.0, 1400.0, 2000.0] {
        assert!(at > 100.0 * goertzel(&tone, 8000.0, other), "{other} Hz");
    }
}
