//! What each side hears: ringback and hold audio looping into the caller's leg,
//! the caller's and the agents' audio pointed at each other (caller ↔ agent when
//! connected, agent ↔ agent while consulting), and the mixer that listening
//! supervisors hear (`Listen`).

use std::sync::Arc;

use actix::prelude::*;
use bytes::Bytes;
use serde_json::json;

use crate::audio::Looper;
use crate::error::EngineError;
use crate::leg::LegRoute;
use crate::machine::Phase;
use crate::mixer::{Side, Tee};
use crate::outbox::AudioPort;
use crate::seat::{SeatLink, SeatNotice};

use super::CallActor;

/// A supervisor listens in: both sides, mixed, to `port`, under `listener` (its
/// session's id; listening again re-points, it does not double).
#[derive(Message)]
#[rtype(result = "Result<(), EngineError>")]
pub struct Listen {
    pub listener: u64,
    pub port: AudioPort,
}

/// A supervisor stops listening; a no-op if `listener` was not listening.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unlisten {
    pub listener: u64,
}

impl CallActor {
    pub(super) fn start_background(&mut self, sound: Bytes, ctx: &mut Context<Self>) {
        self.stop_background(ctx);
        let chunk = self.deps.config.ringback_chunk;
        let handle = ctx.run_interval(chunk, |act, _ctx| act.play_background());
        self.background = Some((handle, Looper::new(sound)));
        // Keep one chunk buffered at Twilio so timer jitter never leaves a gap.
        self.play_background();
        self.play_background();
    }

    fn play_background(&mut self) {
        let (Some(leg), Some((_, looper))) = (&self.leg, &mut self.background) else {
            return;
        };
        let bytes = (self.deps.config.ringback_chunk.as_millis() as usize) * 8;
        for chunk in looper.next_chunks(bytes) {
            leg.outbox.send_audio(chunk);
        }
    }

    /// Stops ringback or hold audio and drops what Twilio still has buffered of it.
    pub(super) fn stop_background(&mut self, ctx: &mut Context<Self>) {
        if let Some((handle, _)) = self.background.take() {
            ctx.cancel_future(handle);
            if let Some(leg) = &self.leg {
                leg.clear();
            }
        }
    }

    /// The caller's audio port as an agent's softphone sees it.
    pub(super) fn caller_port(&self) -> Option<AudioPort> {
        let leg = self.leg.as_ref()?;
        let port: AudioPort = Arc::new(leg.outbox.clone());
        Some(match &self.mixer {
            Some(mixer) => Arc::new(Tee {
                primary: port,
                mixer: Arc::clone(mixer),
                side: Side::Agent,
            }),
            None => port,
        })
    }

    fn seat_port(&self, seat: &SeatLink) -> AudioPort {
        match &self.mixer {
            Some(mixer) => Arc::new(Tee {
                primary: Arc::clone(&seat.audio),
                mixer: Arc::clone(mixer),
                side: Side::Caller,
            }),
            None => Arc::clone(&seat.audio),
        }
    }

    /// Points every side's audio where the call's phase says: caller ↔ agent when
    /// connected; agent ↔ agent (caller on hold) while consulting.
    pub(super) fn bridge(&mut self, ctx: &mut Context<Self>) {
        self.point_audio(true, ctx);
    }

    /// [`Self::bridge`]; `tell_agent` false when the connected agent learns where its
    /// audio goes from the answer to its own claim (it is still claiming, and an
    /// `AudioTo` would reach it before it knows it has the call).
    pub(super) fn point_audio(&mut self, tell_agent: bool, ctx: &mut Context<Self>) {
        let Some(leg) = self.leg.clone() else {
            return;
        };
        match (
            self.machine.phase(),
            self.connected.clone(),
            &self.consulted,
        ) {
            (Phase::Connected, Some(agent), _) => {
                self.stop_background(ctx);
                leg.route(LegRoute::Port(self.seat_port(&agent)));
                if let Some(caller) = self.caller_port().filter(|_| tell_agent) {
                    Self::notify(
                        &agent,
                        SeatNotice::AudioTo {
                            call_id: self.setup.id.clone(),
                            peer_audio: caller,
                        },
                    );
                }
            }
            (Phase::Consulting, Some(agent), Some(target)) => {
                leg.route(LegRoute::Nowhere);
                Self::notify(
                    &agent,
                    SeatNotice::AudioTo {
                        call_id: self.setup.id.clone(),
                        peer_audio: Arc::clone(&target.audio),
                    },
                );
            }
            _ => leg.route(LegRoute::Nowhere),
        }
    }
}

impl Handler<Listen> for CallActor {
    type Result = Result<(), EngineError>;

    fn handle(&mut self, msg: Listen, ctx: &mut Self::Context) -> Self::Result {
        if self.machine.phase() == Phase::Assistant {
            // The assistant's audio comes in bursts ahead of play-out; it cannot be
            // mixed frame by frame with the caller's. Listening starts with a human.
            return Err(EngineError::Refused(
                "an AI assistant has this call; listening is possible once an agent has it".into(),
            ));
        }
        let mixer = Arc::clone(self.mixer.get_or_insert_with(Default::default));
        mixer.add_listener(msg.listener, msg.port);
        self.event("listen", None, json!({ "listeners": mixer.listeners() }));
        self.bridge(ctx);
        Ok(())
    }
}

impl Handler<Unlisten> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: Unlisten, _ctx: &mut Self::Context) {
        if let Some(mixer) = &self.mixer {
            if mixer.remove_listener(msg.listener) {
                self.event("unlisten", None, json!({ "listeners": mixer.listeners() }));
            }
        }
    }
}
