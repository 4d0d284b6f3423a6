//! Listening in: a call's two sides mixed for supervisors. The call re-points both
//! sides' audio through [`Tee`]s, which pass every frame on unchanged and also hand
//! it to the call's [`Mixer`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::audio::mix;
use crate::outbox::{AudioOut, AudioPort};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Caller,
    Agent,
}

/// A side whose partner is silent for this many frames is sent alone.
const MAX_SKEW: usize = 3;

#[derive(Default)]
struct MixState {
    caller: VecDeque<Bytes>,
    agent: VecDeque<Bytes>,
    /// Each listener by the key it listens under (a supervisor session's id).
    listeners: Vec<(u64, AudioPort)>,
}

#[derive(Default)]
pub struct Mixer {
    state: Mutex<MixState>,
}

impl Mixer {
    /// Adds `port` under `key`; a key already listening is re-pointed, not doubled.
    pub fn add_listener(&self, key: u64, port: AudioPort) {
        if let Ok(mut state) = self.state.lock() {
            state.listeners.retain(|(k, _)| *k != key);
            state.listeners.push((key, port));
        }
    }

    /// Stops what `key` hears; false if it was not listening.
    pub fn remove_listener(&self, key: u64) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        let before = state.listeners.len();
        state.listeners.retain(|(k, _)| *k != key);
        state.listeners.len() != before
    }

    pub fn listeners(&self) -> usize {
        self.state.lock().map_or(0, |s| s.listeners.len())
    }

    fn push(&self, side: Side, frame: Bytes) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        match side {
            Side::Caller => state.caller.push_back(frame),
            Side::Agent => state.agent.push_back(frame),
        }
        loop {
            let mixed = match (state.caller.front(), state.agent.front()) {
                (Some(a), Some(b)) => {
                    let out = mix(a, b);
                    state.caller.pop_front();
                    state.agent.pop_front();
                    out
                }
                _ if state.caller.len() > MAX_SKEW => state.caller.pop_front().unwrap_or_default(),
                _ if state.agent.len() > MAX_SKEW => state.agent.pop_front().unwrap_or_default(),
                _ => break,
            };
            for (_, listener) in &state.listeners {
                listener.push_audio(mixed.clone());
            }
        }
    }
}

/// Passes audio on to `primary` and a copy to the mixer.
pub struct Tee {
    pub primary: AudioPort,
    pub mixer: Arc<Mixer>,
    pub side: Side,
}

impl AudioOut for Tee {
    fn push_audio(&self, frame: Bytes) {
        self.primary.push_audio(frame.clone());
        self.mixer.push(self.side, frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::ULAW_SILENCE;
    use crate::outbox::{Outbox, OutboxLimits, Outgoing};
    use crate::stats::EngineStats;

    #[test]
    fn listeners_hear_both_sides_and_a_lone_side_after_a_short_wait() {
        let mixer = Arc::new(Mixer::default());
        let listener: Outbox<()> =
            Outbox::new(OutboxLimits::default(), Arc::new(EngineStats::default()));
        mixer.add_listener(1, Arc::new(listener.clone()));
        let sink: Outbox<()> =
            Outbox::new(OutboxLimits::default(), Arc::new(EngineStats::default()));
        let caller = Tee {
            primary: Arc::new(sink.clone()),
            mixer: Arc::clone(&mixer),
            side: Side::Caller,
        };
        let agent = Tee {
            primary: Arc::new(sink.clone()),
            mixer: Arc::clone(&mixer),
            side: Side::Agent,
        };
        caller.push_audio(Bytes::from_static(&[ULAW_SILENCE; 4]));
        assert_eq!(listener.try_next(), None, "waits for the other side");
        agent.push_audio(Bytes::from_static(&[ULAW_SILENCE; 4]));
        assert!(matches!(listener.try_next(), Some(Outgoing::Audio(f)) if f.len() == 4));
        for _ in 0..=MAX_SKEW {
            caller.push_audio(Bytes::from_static(&[0x10; 4]));
        }
        assert!(matches!(listener.try_next(), Some(Outgoing::Audio(f)) if f[..] == [0x10; 4]));
        // The tee never changes what the primary gets.
        let mut passed = 0;
        while let Some(Outgoing::Audio(_)) = sink.try_next() {
            passed += 1;
        }
        assert_eq!(passed, 2 + MAX_SKEW + 1);
    }
}
