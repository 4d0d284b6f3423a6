//! DTMF as in-band audio: the digits `0-9 * # A-D` as ITU-T Q.23 dual tones, and `w`
//! as a half-second pause (Twilio's `SendDigits` convention), rendered as 8 kHz mu-law
//! in 20 ms frames ready for a caller's media stream.
//!
//! Every digit's tone is rendered once per [`Dtmf`] and then handed out as shared
//! `Bytes` slices, so a sequence costs one small `Vec` of reference-counted frames.

use std::sync::LazyLock;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::audio::{put_sines, FRAME_BYTES, FRAME_MS, ULAW_SILENCE};

/// The digits that have a tone, in the order of [`TONE_PAIRS`].
pub const DIGITS: &str = "123A456B789C*0#D";

/// Q.23's low group (rows) and high group (columns), in Hz.
pub const LOW_GROUP: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
pub const HIGH_GROUP: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];

/// The pause character and how long it lasts.
pub const PAUSE: char = 'w';
pub const PAUSE_DURATION: Duration = Duration::from_millis(500);

/// Q.24's shortest tone and shortest pause between digits that receivers must accept.
pub const MIN_DURATION: Duration = Duration::from_millis(40);

/// Peak of a 0 dBm0 sine in 16-bit linear: G.711 mu-law's full scale (8159 in 14
/// bits, ×4) is +3.17 dBm0.
const ZERO_DBM0_PEAK: f64 = 32_636.0 / 1.440_1;
/// Per-tone levels: the high group 2 dB above the low group (the usual "standard
/// twist", well inside Q.24's limits). Together they peak near −2 dBm0: no clipping.
pub const LOW_LEVEL_DBM0: f64 = -9.0;
pub const HIGH_LEVEL_DBM0: f64 = -7.0;

/// One 20 ms frame of silence.
static SILENT: [u8; FRAME_BYTES] = [ULAW_SILENCE; FRAME_BYTES];

/// The tones every call uses: 100 ms of tone, 100 ms of silence after each digit.
pub static DTMF: LazyLock<Dtmf> =
    LazyLock::new(|| Dtmf::new(DtmfTiming::default()).expect("the default timing is valid"));

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtmfError {
    #[error("'{character}' (at position {position}) is not a DTMF digit: use 0-9, *, #, A-D or w")]
    InvalidDigit { character: char, position: usize },
    #[error("no digits to send")]
    Empty,
    #[error("a DTMF {what} of {ms} ms is shorter than the 40 ms ITU-T Q.24 requires")]
    TooShort { what: &'static str, ms: u128 },
}

/// How long each tone and the silence after it last; both rounded up to whole frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfTiming {
    pub tone: Duration,
    pub gap: Duration,
}

impl Default for DtmfTiming {
    fn default() -> Self {
        Self {
            tone: Duration::from_millis(100),
            gap: Duration::from_millis(100),
        }
    }
}

/// The two frequencies (low, high) of a digit, if it has a tone.
pub fn tone_pair(digit: char) -> Option<(f64, f64)> {
    let index = DIGITS.find(digit)?;
    Some((LOW_GROUP[index / 4], HIGH_GROUP[index % 4]))
}

fn peak(dbm0: f64) -> f64 {
    ZERO_DBM0_PEAK * 10f64.powf(dbm0 / 20.0)
}

fn frames_in(duration: Duration) -> usize {
    (duration.as_millis() as usize).div_ceil(FRAME_MS as usize)
}

/// Every digit's tone, rendered for one timing.
#[derive(Debug, Clone)]
pub struct Dtmf {
    /// Per digit of [`DIGITS`], its tone frames.
    tones: Vec<Vec<Bytes>>,
    gap_frames: usize,
}

impl Dtmf {
    pub fn new(timing: DtmfTiming) -> Result<Self, DtmfError> {
        for (what, duration) in [("tone", timing.tone), ("gap", timing.gap)] {
            if duration < MIN_DURATION {
                return Err(DtmfError::TooShort {
                    what,
                    ms: duration.as_millis(),
                });
            }
        }
        let tone_frames = frames_in(timing.tone);
        let tones = DIGITS
            .chars()
            .filter_map(tone_pair)
            .map(|(low, high)| {
                let mut audio = BytesMut::with_capacity(tone_frames * FRAME_BYTES);
                put_sines(
                    &mut audio,
                    &[(low, peak(LOW_LEVEL_DBM0)), (high, peak(HIGH_LEVEL_DBM0))],
                    tone_frames * FRAME_BYTES,
                );
                crate::audio::frames(audio.freeze()).collect()
            })
            .collect();
        Ok(Self {
            tones,
            gap_frames: frames_in(timing.gap),
        })
    }

    /// The frames that play `digits` in order: each digit's tone followed by its gap,
    /// `w` as [`PAUSE_DURATION`] of silence. Anything else is refused, naming the
    /// first offending character, before any frame is made.
    pub fn frames(&self, digits: &str) -> Result<Vec<Bytes>, DtmfError> {
        if digits.is_empty() {
            return Err(DtmfError::Empty);
        }
        let mut count = 0;
        for (position, character) in digits.chars().enumerate() {
            count += match DIGITS.find(character) {
                Some(index) => self.tones[index].len() + self.gap_frames,
                None if character == PAUSE => frames_in(PAUSE_DURATION),
                None => {
                    return Err(DtmfError::InvalidDigit {
                        character,
                        position,
                    })
                }
            };
        }
        let silent = || Bytes::from_static(&SILENT);
        let mut frames = Vec::with_capacity(count);
        for character in digits.chars() {
            match DIGITS.find(character) {
                Some(index) => {
                    frames.extend(self.tones[index].iter().cloned());
                    frames.extend(std::iter::repeat_with(silent).take(self.gap_frames));
                }
                None => {
                    frames.extend(std::iter::repeat_with(silent).take(frames_in(PAUSE_DURATION)))
                }
            }
        }
        Ok(frames)
    }
}

/// How long `frames` take to play.
pub fn play_time(frames: usize) -> Duration {
    Duration::from_millis(frames as u64 * FRAME_MS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::ulaw_to_linear;

    /// Power of `frequency` in `samples` (Hann-windowed Goertzel), in dB.
    fn goertzel_db(samples: &[f64], frequency: f64) -> f64 {
        let n = samples.len() as f64;
        let coefficient = 2.0 * (2.0 * std::f64::consts::PI * frequency / 8_000.0).cos();
        let (mut s1, mut s2) = (0.0, 0.0);
        for (i, x) in samples.iter().enumerate() {
            let window = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / (n - 1.0)).cos();
            let s0 = x * window + coefficient * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        let power = s1 * s1 + s2 * s2 - coefficient * s1 * s2;
        10.0 * power.max(1e-12).log10()
    }

    fn linear(frames: &[Bytes]) -> Vec<f64> {
        frames
            .iter()
            .flat_map(|f| f.iter().map(|&b| f64::from(ulaw_to_linear(b))))
            .collect()
    }

    fn is_silent(frames: &[Bytes]) -> bool {
        frames.iter().all(|f| f.iter().all(|&b| b == ULAW_SILENCE))
    }

    #[test]
    fn each_digit_is_its_two_q23_tones_and_nothing_else_then_silence() {
        let dtmf = Dtmf::new(DtmfTiming::default()).expect("valid");
        let frames = dtmf.frames(DIGITS).expect("valid");
        assert_eq!(frames.len(), 16 * (5 + 5), "100 ms tone + 100 ms gap each");
        assert!(frames.iter().all(|f| f.len() == FRAME_BYTES));
        let all: Vec<f64> = LOW_GROUP.iter().chain(&HIGH_GROUP).copied().collect();
        for (i, digit) in DIGITS.chars().enumerate() {
            let (low, high) = tone_pair(digit).expect("a digit with a tone");
            let segment = &frames[i * 10..i * 10 + 10];
            let tone = linear(&segment[..5]);
            assert!(is_silent(&segment[5..]), "{digit}: the gap is silent");
            let low_db = goertzel_db(&tone, low);
            let high_db = goertzel_db(&tone, high);
            let twist = high_db - low_db;
            assert!((0.0..=4.0).contains(&twist), "{digit}: twist {twist:.1} dB");
            for other in all.iter().filter(|&&f| f != low && f != high) {
                let level = goertzel_db(&tone, *other);
                assert!(
                    low_db.min(high_db) - level >= 20.0,
                    "{digit}: {other} Hz at {level:.1} dB vs {low_db:.1}/{high_db:.1} dB"
                );
            }
            let peak = tone.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            assert!(peak < 30_000.0, "{digit}: peak {peak} clips");
            assert!(peak > 8_000.0, "{digit}: peak {peak} is too quiet");
        }
    }

    #[test]
    fn timing_sets_the_frame_counts_rounded_up_to_whole_frames() {
        let dtmf = Dtmf::new(DtmfTiming {
            tone: Duration::from_millis(50),
            gap: Duration::from_millis(40),
        })
        .expect("valid");
        let frames = dtmf.frames("19").expect("valid");
        assert_eq!(frames.len(), 2 * (3 + 2));
        assert!(!is_silent(&frames[2..3]));
        assert!(is_silent(&frames[3..5]));
        assert_eq!(play_time(frames.len()), Duration::from_millis(200));
        assert_eq!(
            Dtmf::new(DtmfTiming {
                tone: Duration::from_millis(30),
                gap: Duration::from_millis(100),
            })
            .expect_err("refused"),
            DtmfError::TooShort {
                what: "tone",
                ms: 30
            }
        );
        assert!(matches!(
            Dtmf::new(DtmfTiming {
                tone: Duration::from_millis(100),
                gap: Duration::from_millis(20),
            }),
            Err(DtmfError::TooShort { what: "gap", .. })
        ));
    }

    #[test]
    fn w_is_half_a_second_of_silence() {
        let frames = DTMF.frames("1w2").expect("valid");
        assert_eq!(frames.len(), 10 + 25 + 10);
        assert!(is_silent(&frames[5..35]), "gap, then the pause");
        assert!(!is_silent(&frames[35..36]), "then the next tone");
        assert_eq!(DTMF.frames("w").expect("valid").len(), 25);
    }

    #[test]
    fn anything_else_is_refused_naming_the_character() {
        for (digits, character, position) in [("12x3", 'x', 2), ("a", 'a', 0), ("9 1", ' ', 1)] {
            let error = DTMF.frames(digits).expect_err("refused");
            assert_eq!(
                error,
                DtmfError::InvalidDigit {
                    character,
                    position
                }
            );
            assert!(error.to_string().contains(&format!("'{character}'")));
        }
        assert_eq!(DTMF.frames("").expect_err("refused"), DtmfError::Empty);
    }

    #[test]
    fn repeated_digits_share_their_rendered_frames() {
        let frames = DTMF.frames("55").expect("valid");
        assert_eq!(frames[0].as_ptr(), frames[10].as_ptr());
    }
}
