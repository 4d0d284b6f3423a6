//! MediaLeg: the caller's side of a call — one Twilio Media Stream. Driven by the
//! stream's decoded input; sends caller audio wherever its call points it, and writes
//! the call's audio, marks and clears back through its [`Outbox`].

use std::sync::atomic::Ordering;
use std::sync::Arc;

use actix::dev::SendError;
use actix::prelude::*;
use bytes::Bytes;

use crate::audio;
use crate::call::{CallHandle, CallerAudio};
use crate::outbox::{AudioPort, Outbox, CLOSE_NORMAL};
use crate::stats::EngineStats;

/// One item of the media stream after `start` (decoded at the edge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegInput {
    /// One inbound audio chunk (mu-law, base64-decoded).
    Media(Bytes),
    /// Twilio finished playing the audio queued before the mark of this name.
    Mark(String),
    Dtmf(String),
    /// Twilio's `stop`: the call is over.
    Stop,
}

/// Protocol messages to Twilio, besides audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegControl {
    /// Ask Twilio to echo this name once the audio queued so far has played.
    Mark(String),
    /// Drop the audio Twilio has buffered but not played.
    Clear,
}

/// Where the caller's audio goes.
#[derive(Clone, Default)]
pub enum LegRoute {
    /// Discarded (ringing, prompts).
    #[default]
    Nowhere,
    /// Straight to an agent's softphone.
    Port(AudioPort),
    /// To the call itself (voicemail recording).
    Call(Recipient<CallerAudio>),
    /// To an AI assistant, with Twilio's mark echoes (it tracks what has played).
    Assistant(Recipient<CallerInput>),
}

/// The caller's side, as an assistant hears it.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub enum CallerInput {
    Media(Bytes),
    Mark(String),
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct RouteAudio {
    pub route: LegRoute,
}

/// Ends the stream from our side; Twilio ends the call when its stream closes.
#[derive(Message)]
#[rtype(result = "()")]
pub struct HangUp {
    pub reason: String,
}

pub struct MediaLeg {
    call: CallHandle,
    outbox: Outbox<LegControl>,
    route: LegRoute,
    stats: Arc<EngineStats>,
    /// The call has been told the caller left (or told us to hang up).
    done: bool,
}

impl MediaLeg {
    pub fn start<S>(
        call: CallHandle,
        outbox: Outbox<LegControl>,
        stats: Arc<EngineStats>,
        input: S,
    ) -> Addr<MediaLeg>
    where
        S: Stream<Item = LegInput> + 'static,
    {
        MediaLeg::create(|ctx| {
            ctx.add_stream(input);
            MediaLeg {
                call,
                outbox,
                route: LegRoute::Nowhere,
                stats,
                done: false,
            }
        })
    }

    fn caller_left(&mut self, reason: &'static str) {
        if !std::mem::replace(&mut self.done, true) {
            self.call.caller_left(reason);
        }
    }
}

impl Actor for MediaLeg {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(256);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.caller_left("stream_closed");
        self.outbox.close(CLOSE_NORMAL, "call ended");
    }
}

impl StreamHandler<LegInput> for MediaLeg {
    fn handle(&mut self, input: LegInput, ctx: &mut Self::Context) {
        match input {
            LegInput::Media(frame) => match &self.route {
                LegRoute::Nowhere => {}
                LegRoute::Port(port) => {
                    // Twilio sends 20 ms frames; a larger payload is cut to them.
                    for frame in audio::frames(frame) {
                        port.push_audio(frame);
                        self.stats
                            .audio_frames_relayed
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
                LegRoute::Call(call) => {
                    offer(call, CallerAudio { frame }, &self.stats);
                }
                LegRoute::Assistant(assistant) => {
                    if offer(assistant, CallerInput::Media(frame), &self.stats) {
                        self.stats
                            .audio_frames_relayed
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
            },
            LegInput::Mark(name) => match &self.route {
                LegRoute::Assistant(assistant) => assistant.do_send(CallerInput::Mark(name)),
                _ => self.call.caller_mark(name),
            },
            LegInput::Dtmf(digit) => self.call.caller_dtmf(digit),
            LegInput::Stop => {
                self.caller_left("caller_hangup");
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        self.caller_left("stream_closed");
        ctx.stop();
    }
}

/// Hands one audio frame (50 a second) to an actor without waiting and without
/// growing a queue past that actor's mailbox bound: a frame that does not fit is
/// dropped and counted in `audio_frames_dropped`, as the outboxes' drop-oldest lanes
/// do. (`do_send` ignores the bound.) True if the actor took it.
fn offer<M>(to: &Recipient<M>, frame: M, stats: &EngineStats) -> bool
where
    M: Message + Send,
    M::Result: Send,
{
    match to.try_send(frame) {
        Ok(()) => true,
        Err(SendError::Full(_)) => {
            stats.audio_frames_dropped.fetch_add(1, Ordering::Relaxed);
            false
        }
        // The route is ending: nothing to relay to, nothing lost.
        Err(SendError::Closed(_)) => false,
    }
}

impl Handler<RouteAudio> for MediaLeg {
    type Result = ();

    fn handle(&mut self, msg: RouteAudio, _ctx: &mut Self::Context) {
        self.route = msg.route;
    }
}

impl Handler<HangUp> for MediaLeg {
    type Result = ();

    fn handle(&mut self, msg: HangUp, ctx: &mut Self::Context) {
        self.done = true;
        self.outbox.close(CLOSE_NORMAL, msg.reason);
        ctx.stop();
    }
}

/// The call's grip on its caller leg.
#[derive(Clone)]
pub struct LegHandle {
    pub addr: Addr<MediaLeg>,
    pub outbox: Outbox<LegControl>,
    /// Twilio's id of the stream (`MZ…`).
    pub stream_sid: String,
    /// The arbiter the leg runs on: whatever relays its audio (an assistant) runs
    /// there too, so a frame's round trip stays on one thread.
    pub arbiter: actix::ArbiterHandle,
}

impl LegHandle {
    pub fn route(&self, route: LegRoute) {
        self.addr.do_send(RouteAudio { route });
    }

    /// Stops whatever the caller is hearing: our queued audio and Twilio's buffer.
    pub fn clear(&self) {
        self.outbox.clear_audio();
        self.outbox.send(LegControl::Clear);
    }

    pub fn hang_up(&self, reason: impl Into<String>) {
        self.addr.do_send(HangUp {
            reason: reason.into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes frames into its mailbox of two; never slow, just not run yet.
    struct Sink;

    impl Actor for Sink {
        type Context = Context<Self>;
    }

    impl Handler<CallerInput> for Sink {
        type Result = ();

        fn handle(&mut self, _input: CallerInput, _ctx: &mut Self::Context) {}
    }

    #[actix_rt::test]
    async fn frames_past_a_full_mailbox_are_dropped_and_counted_not_queued() {
        let stats = EngineStats::default();
        let sink = Sink::create(|ctx| {
            ctx.set_mailbox_capacity(2);
            Sink
        })
        .recipient();
        // The sink cannot run between these sends: its mailbox fills.
        let taken = (0..10)
            .filter(|_| offer(&sink, CallerInput::Media(Bytes::from_static(b"f")), &stats))
            .count();
        let dropped = stats.audio_frames_dropped.load(Ordering::Relaxed);
        assert!(taken < 10, "the mailbox bound was ignored");
        assert_eq!(taken as u64 + dropped, 10, "each frame is taken or counted");
    }
}
