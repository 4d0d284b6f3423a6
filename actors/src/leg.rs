//! MediaLeg: the caller's side of a call — one Twilio Media Stream. Driven by the
//! stream's decoded input; sends caller audio wherever its call points it, and writes
//! the call's audio, marks and clears back through its [`Outbox`]; plays DTMF digits
//! into the call ([`PlayDigits`]).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::dev::SendError;
use actix::prelude::*;
use bytes::Bytes;

use crate::audio;
use crate::call::{CallHandle, CallerAudio};
use crate::dtmf::{self, DtmfError, DTMF};
use crate::error::EngineError;
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
    /// A mark named `prefix` and a number (`ai:7`), rendered straight onto the
    /// wire: an assistant marks its audio every 100 ms, without a `String` each.
    NumberedMark { prefix: &'static str, seq: u64 },
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
    Assistant(CallerPort),
}

/// The caller's side, as an assistant hears it.
#[derive(Debug)]
pub enum CallerInput {
    Media(Bytes),
    Mark(String),
}

/// The way into an assistant's [`CallerFeed`]: a bounded queue instead of the
/// assistant's mailbox, which would box every frame in an envelope (50 a second per
/// call). Pushing never waits: past the bound an item is dropped and counted in
/// `audio_frames_dropped`, as the outboxes' audio lanes do.
#[derive(Clone, Debug)]
pub struct CallerPort {
    tx: tokio::sync::mpsc::Sender<CallerInput>,
}

/// What the assistant reads (`ctx.add_stream`): the caller's frames and mark
/// echoes, in order. Ends when the leg routes the caller elsewhere or stops.
#[derive(Debug)]
pub struct CallerFeed {
    rx: tokio::sync::mpsc::Receiver<CallerInput>,
}

/// A caller port and its feed, holding up to `capacity` items.
pub fn caller_port(capacity: usize) -> (CallerPort, CallerFeed) {
    let (tx, rx) = tokio::sync::mpsc::channel(capacity);
    (CallerPort { tx }, CallerFeed { rx })
}

impl CallerPort {
    /// Hands one item on without waiting; true if the assistant will get it.
    pub fn offer(&self, input: CallerInput, stats: &EngineStats) -> bool {
        match self.tx.try_send(input) {
            Ok(()) => true,
            Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                stats.audio_frames_dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
            // The assistant is gone: nothing to relay to, nothing lost.
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

impl Stream for CallerFeed {
    type Item = CallerInput;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<CallerInput>> {
        self.rx.poll_recv(cx)
    }
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

/// Plays digits into the call as in-band DTMF tones ([`crate::dtmf`]), after the
/// audio already queued and before any sent later; digits asked for while others
/// play follow them. Until the last tone frame is queued the caller-bound audio
/// lane is the digits' alone: other audio sent meanwhile (an assistant's speech)
/// is discarded, not mixed in, and clears are refused. Answers how long the digits
/// take to play; an invalid digit is refused before anything is played.
#[derive(Message, Debug)]
#[rtype(result = "Result<Duration, DtmfError>")]
pub struct PlayDigits {
    pub digits: String,
}

/// Tone frames are queued this far ahead of play-out, then one per 20 ms, so
/// timer jitter never leaves a gap and the audio lane's bound is never reached.
const DIGITS_LEAD_FRAMES: u64 = 5;
const DIGITS_TICK: Duration = Duration::from_millis(100);

/// Digits being played: the frames not yet queued, paced against the clock.
struct DigitPlayer {
    frames: VecDeque<Bytes>,
    started: tokio::time::Instant,
    sent: u64,
    timer: SpawnHandle,
}

pub struct MediaLeg {
    call: CallHandle,
    outbox: Outbox<LegControl>,
    route: LegRoute,
    stats: Arc<EngineStats>,
    digits: Option<DigitPlayer>,
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
                digits: None,
                done: false,
            }
        })
    }

    /// Queues the tone frames that are due, and releases the audio lane after the last.
    fn play_digits(&mut self, ctx: &mut Context<Self>) {
        let Some(player) = &mut self.digits else {
            return;
        };
        let due =
            DIGITS_LEAD_FRAMES + player.started.elapsed().as_millis() as u64 / audio::FRAME_MS;
        while player.sent < due {
            let Some(frame) = player.frames.pop_front() else {
                break;
            };
            self.outbox.send_reserved_audio(frame);
            player.sent += 1;
        }
        if player.frames.is_empty() {
            ctx.cancel_future(player.timer);
            self.digits = None;
            self.outbox.release_audio();
        }
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
                    if assistant.offer(CallerInput::Media(frame), &self.stats) {
                        self.stats
                            .audio_frames_relayed
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
            },
            LegInput::Mark(name) => match &self.route {
                LegRoute::Assistant(assistant) => {
                    assistant.offer(CallerInput::Mark(name), &self.stats);
                }
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

impl Handler<PlayDigits> for MediaLeg {
    type Result = Result<Duration, DtmfError>;

    fn handle(&mut self, msg: PlayDigits, ctx: &mut Self::Context) -> Self::Result {
        let frames = DTMF.frames(&msg.digits)?;
        let duration = dtmf::play_time(frames.len());
        match &mut self.digits {
            Some(player) => player.frames.extend(frames),
            None => {
                self.outbox.reserve_audio();
                let timer = ctx.run_interval(DIGITS_TICK, |leg, ctx| leg.play_digits(ctx));
                self.digits = Some(DigitPlayer {
                    frames: frames.into(),
                    started: tokio::time::Instant::now(),
                    sent: 0,
                    timer,
                });
                self.play_digits(ctx);
            }
        }
        Ok(duration)
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
    /// Nothing is cleared while DTMF digits play ([`PlayDigits`]).
    pub fn clear(&self) {
        if self.outbox.clear_audio() {
            self.outbox.send(LegControl::Clear);
        }
    }

    /// Plays `digits` into the call as DTMF tones; see [`PlayDigits`].
    pub async fn play_digits(&self, digits: impl Into<String>) -> Result<Duration, EngineError> {
        let digits = digits.into();
        self.addr
            .send(PlayDigits { digits })
            .await
            .map_err(|e| EngineError::mailbox("media leg", e))?
            .map_err(|e| EngineError::Refused(e.to_string()))
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

    /// Takes recordings into its mailbox of two; never slow, just not run yet.
    struct Sink;

    impl Actor for Sink {
        type Context = Context<Self>;
    }

    impl Handler<CallerAudio> for Sink {
        type Result = ();

        fn handle(&mut self, _input: CallerAudio, _ctx: &mut Self::Context) {}
    }

    /// A media stream that stays open and says nothing.
    struct Quiet;

    impl Stream for Quiet {
        type Item = LegInput;

        fn poll_next(
            self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<LegInput>> {
            std::task::Poll::Pending
        }
    }

    fn leg(outbox: &Outbox<LegControl>) -> LegHandle {
        use crate::call::{CallActor, CallConfig, CallDeps, CallSetup};
        let stats = Arc::new(EngineStats::default());
        let call = CallActor::launch(
            CallSetup {
                id: crate::ids::CallId::new(),
                call_sid: None,
                from: "+14155559876".into(),
                to: "+14155550100".into(),
                workspace: crate::ids::Workspace::parse("test").expect("a valid workspace"),
                route: crate::number::Route::Agents {
                    agent_ids: Vec::new(),
                },
                raw: None,
                direction: "inbound",
            },
            CallDeps {
                coordinator: crate::coordinator::CoordinatorHandle::start(),
                registry: crate::registry::RegistryHandle::start(),
                parking: crate::parking::ParkingHandle::start(),
                journal: Arc::new(crate::journal::MemoryJournal::default()),
                config: Arc::new(CallConfig::default()),
                stats: Arc::clone(&stats),
                hooks: None,
            },
        );
        LegHandle {
            addr: MediaLeg::start(call, outbox.clone(), stats, Quiet),
            outbox: outbox.clone(),
            stream_sid: "MZtest".into(),
            arbiter: actix::Arbiter::current(),
        }
    }

    fn drain(outbox: &Outbox<LegControl>) -> Vec<Bytes> {
        std::iter::from_fn(|| outbox.try_next())
            .map(|item| match item {
                crate::outbox::Outgoing::Audio(frame) => frame,
                other => panic!("only audio was sent, got {other:?}"),
            })
            .collect()
    }

    #[actix_rt::test]
    async fn digits_play_paced_in_order_in_place_of_other_audio() {
        let outbox = Outbox::new(Default::default(), Arc::new(EngineStats::default()));
        let leg = leg(&outbox);
        let refused = leg.play_digits("1x").await.expect_err("x is no digit");
        assert!(refused.to_string().contains("'x'"), "{refused}");
        assert!(
            drain(&outbox).is_empty(),
            "nothing of a refused sequence plays"
        );

        let speech = Bytes::from_static(b"speech queued before");
        outbox.send_audio(speech.clone());
        let asked = tokio::time::Instant::now();
        let took = leg.play_digits("1#").await.expect("valid digits");
        assert_eq!(took, Duration::from_millis(400));
        let mut out = drain(&outbox);
        let ahead = asked.elapsed().as_millis() as usize / 20;
        assert!(
            out.len() <= 1 + DIGITS_LEAD_FRAMES as usize + ahead + 1,
            "paced, not dumped: {} frames queued at once",
            out.len()
        );
        // The assistant keeps talking: replaced by the digits, not mixed in or queued.
        outbox.send_audio(Bytes::from_static(b"speech during"));
        leg.clear();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while out.len() < 1 + 20 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            out.extend(drain(&outbox));
        }
        let mut expected = vec![speech];
        expected.extend(DTMF.frames("1#").expect("valid digits"));
        assert_eq!(out, expected);
        // The lane is released once the last tone is queued.
        tokio::time::sleep(Duration::from_millis(150)).await;
        outbox.send_audio(Bytes::from_static(b"speech after"));
        assert_eq!(drain(&outbox), [Bytes::from_static(b"speech after")]);
        assert!(!outbox.is_closed(), "the stream stays open");
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
            .filter(|_| {
                let frame = Bytes::from_static(b"f");
                offer(&sink, CallerAudio { frame }, &stats)
            })
            .count();
        let dropped = stats.audio_frames_dropped.load(Ordering::Relaxed);
        assert!(taken < 10, "the mailbox bound was ignored");
        assert_eq!(taken as u64 + dropped, 10, "each frame is taken or counted");
    }

    #[actix_rt::test]
    async fn frames_past_a_full_caller_port_are_dropped_and_counted_and_the_rest_arrive_in_order() {
        let stats = EngineStats::default();
        let (port, mut feed) = caller_port(4);
        let taken = (0..10u8)
            .filter(|n| port.offer(CallerInput::Media(Bytes::from(vec![*n])), &stats))
            .count();
        assert_eq!(taken, 4);
        assert_eq!(stats.audio_frames_dropped.load(Ordering::Relaxed), 6);
        for n in 0..4u8 {
            match next(&mut feed).await {
                Some(CallerInput::Media(frame)) => assert_eq!(frame[..], [n]),
                other => panic!("frame {n} expected, got {other:?}"),
            }
        }
        drop(port);
        assert!(
            next(&mut feed).await.is_none(),
            "the feed ends with its port"
        );
    }

    async fn next(feed: &mut CallerFeed) -> Option<CallerInput> {
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut *feed).poll_next(cx)).await
    }
}
