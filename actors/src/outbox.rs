//! The outgoing queue of one socket: a bounded control lane and a drop-oldest audio lane.
//!
//! Actors push; exactly one reader per connection drains — the socket's response body
//! (`net::socket` in the engine), or a node link's writer task. Pushing never waits, so
//! a stalled peer can only ever lose its own oldest audio; it can never stall the actor
//! (or the call) that feeds it. A peer that cannot even keep up with control messages is
//! closed: it is no longer a usable endpoint.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::stats::EngineStats;

/// WebSocket close code for a peer that broke the rules (RFC 6455 §7.4.1: 1008).
pub const CLOSE_POLICY: u16 = 1008;
/// WebSocket close code for an orderly end (1000).
pub const CLOSE_NORMAL: u16 = 1000;
/// WebSocket close code for a server going away or giving up on a peer (1001).
pub const CLOSE_GOING_AWAY: u16 = 1001;

/// How a connection is to be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    pub code: u16,
    pub reason: String,
}

/// One item for the writer.
#[derive(Debug, PartialEq, Eq)]
pub enum Outgoing<C> {
    /// A protocol message (JSON on the wire), in order, never dropped.
    Control(C),
    /// One audio frame (mu-law), dropped oldest-first under pressure.
    Audio(Bytes),
    /// A WebSocket ping (heartbeat) or the pong answering the peer's ping.
    Ping,
    Pong(Bytes),
    /// The last item: close the socket with this code and reason.
    Close(Close),
}

/// Queue bounds for one connection.
#[derive(Debug, Clone, Copy)]
pub struct OutboxLimits {
    /// Audio frames kept while the peer is slow (50 = 1 s of 20 ms frames).
    pub audio_frames: usize,
    /// Control messages kept before the peer is declared dead.
    pub control_messages: usize,
    /// Audio pushed from another thread than the writer's wakes the writer at most
    /// this late, together with the other audio pushed meanwhile from that thread
    /// ([`Outbox::drained_here`]); zero wakes it at once, frame by frame.
    pub wake_batch: Duration,
}

impl Default for OutboxLimits {
    fn default() -> Self {
        Self {
            audio_frames: 50,
            control_messages: 1024,
            wake_batch: Duration::ZERO,
        }
    }
}

/// An item of the ordered lane: audio, or a control message that must follow the
/// audio queued before it (a Twilio `mark`).
enum Ordered<C> {
    Frame(Bytes),
    Marker(C),
}

struct Lanes<C> {
    control: VecDeque<C>,
    /// Audio and markers, in order.
    audio: VecDeque<Ordered<C>>,
    /// Frames (not markers) in `audio`: the bound applies to these.
    frames: usize,
    pong: Option<Bytes>,
    ping: bool,
    close: Option<Close>,
    /// The audio lane is reserved for one sender (DTMF digits): other audio is
    /// discarded, and clears are refused, until it is released.
    reserved: bool,
    /// Set once the writer has taken the close item: nothing more is accepted.
    finished: bool,
}

/// What wakes an outbox's writer. Shared with the wake batcher of the threads
/// that push audio into it from afar.
struct Doorbell {
    /// The waiting writer's waker, taken by the first ring: pushes while the writer
    /// has not yet run wake it once.
    waker: Mutex<Option<Waker>>,
    /// A batcher holds this bell, due to ring it: pushes meanwhile need not.
    deferred: AtomicBool,
    /// The thread whose writer drains the outbox (0: none yet).
    home: AtomicU64,
}

struct Inner<C> {
    lanes: Mutex<Lanes<C>>,
    bell: Arc<Doorbell>,
    limits: OutboxLimits,
    /// The close reason the peer is given when its control lane overflows.
    overflow_reason: &'static str,
    dropped: AtomicU64,
    stats: Arc<EngineStats>,
}

/// The sending half shared by actors; cheap to clone.
pub struct Outbox<C> {
    inner: Arc<Inner<C>>,
}

impl<C> Clone for Outbox<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C> std::fmt::Debug for Outbox<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("dropped", &self.dropped())
            .finish()
    }
}

/// The close reason of a peer whose control lane overflowed, unless its socket says
/// otherwise ([`Outbox::with_overflow_reason`]).
const TOO_SLOW: &str = "peer too slow to read control messages";

impl<C> Outbox<C> {
    pub fn new(limits: OutboxLimits, stats: Arc<EngineStats>) -> Self {
        Self::with_overflow_reason(limits, stats, TOO_SLOW)
    }

    /// An outbox whose peer, when it falls `limits.control_messages` behind, is closed
    /// with `overflow_reason` (what that socket's protocol documents).
    pub fn with_overflow_reason(
        limits: OutboxLimits,
        stats: Arc<EngineStats>,
        overflow_reason: &'static str,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                lanes: Mutex::new(Lanes {
                    control: VecDeque::new(),
                    // Grown on demand and kept: a socket that keeps up holds a
                    // frame or two, so reserving the whole bound up front cost
                    // every socket ~3 KiB for nothing (a heap profile at 250
                    // calls); a burst grows it once, and steady state allocates
                    // nothing either way.
                    audio: VecDeque::new(),
                    frames: 0,
                    pong: None,
                    ping: false,
                    close: None,
                    reserved: false,
                    finished: false,
                }),
                bell: Arc::new(Doorbell {
                    waker: Mutex::new(None),
                    deferred: AtomicBool::new(false),
                    home: AtomicU64::new(0),
                }),
                limits,
                overflow_reason,
                dropped: AtomicU64::new(0),
                stats,
            }),
        }
    }

    fn lanes(&self) -> MutexGuard<'_, Lanes<C>> {
        // A panic while holding this lock cannot leave the queues half-updated (every
        // critical section is a single push or pop), so a poisoned lock is still usable.
        self.inner
            .lanes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a protocol message. Returns false if the connection is closing or the
    /// peer is so far behind that it has been closed.
    pub fn send(&self, message: C) -> bool {
        self.send_superseding(message, |_| false)
    }

    /// Queues a protocol message that supersedes every still-queued message for which
    /// `superseded` holds (a newer state of the same seat, say): those are dropped and
    /// this one goes to the back, behind everything queued before it. A peer that reads
    /// slowly thus gets the latest state of each thing instead of falling behind a
    /// burst of changes. Returns false as [`Outbox::send`] does.
    pub fn send_superseding(&self, message: C, superseded: impl Fn(&C) -> bool) -> bool {
        let mut lanes = self.lanes();
        if lanes.close.is_some() || lanes.finished {
            return false;
        }
        lanes.control.retain(|queued| !superseded(queued));
        if lanes.control.len() >= self.inner.limits.control_messages {
            lanes.close = Some(Close {
                code: CLOSE_GOING_AWAY,
                reason: self.inner.overflow_reason.into(),
            });
            self.inner
                .stats
                .slow_peers_closed
                .fetch_add(1, Ordering::Relaxed);
            drop(lanes);
            self.inner.bell.ring();
            return false;
        }
        lanes.control.push_back(message);
        drop(lanes);
        self.inner.bell.ring();
        true
    }

    /// Queues one audio frame, dropping the oldest queued frame if the lane is full.
    /// While the lane is reserved ([`Outbox::reserve_audio`]) the frame is discarded:
    /// the reserved audio replaces it rather than mixing with it.
    pub fn send_audio(&self, frame: Bytes) {
        self.push_frame(frame, false);
    }

    /// Queues one frame of the audio the lane is reserved for (as
    /// [`Outbox::send_audio`], but never discarded by the reservation).
    pub fn send_reserved_audio(&self, frame: Bytes) {
        self.push_frame(frame, true);
    }

    /// Reserves the audio lane for [`Outbox::send_reserved_audio`] until
    /// [`Outbox::release_audio`]. Audio already queued stays, and plays first.
    pub fn reserve_audio(&self) {
        self.lanes().reserved = true;
    }

    pub fn release_audio(&self) {
        self.lanes().reserved = false;
    }

    fn push_frame(&self, frame: Bytes, reserved: bool) {
        let mut lanes = self.lanes();
        if lanes.close.is_some() || lanes.finished || (lanes.reserved && !reserved) {
            return;
        }
        if lanes.frames >= self.inner.limits.audio_frames {
            if let Some(oldest) = lanes
                .audio
                .iter()
                .position(|item| matches!(item, Ordered::Frame(_)))
            {
                lanes.audio.remove(oldest);
                lanes.frames -= 1;
            }
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
            self.inner
                .stats
                .audio_frames_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
        lanes.audio.push_back(Ordered::Frame(frame));
        lanes.frames += 1;
        drop(lanes);
        self.wake_for_audio();
    }

    /// Wakes the writer for audio: at once on its own thread (no syscall, it runs
    /// after the pusher) or where no batcher runs; from another thread, through
    /// this thread's batcher, which rings every bell due at most `wake_batch` later
    /// — one wake-up of the writer's thread for all the frames pushed meanwhile,
    /// instead of one per frame.
    fn wake_for_audio(&self) {
        let bell = &self.inner.bell;
        let home = bell.home.load(Ordering::Relaxed);
        if home == 0 || home == thread_no() || !BATCHER.with(|b| b.defer(bell)) {
            bell.ring();
        }
    }

    /// Called by the writer on its thread: this outbox is drained here, and audio
    /// pushed from another thread is batched per `limits.wake_batch` (that thread
    /// needs a batcher too; every thread that runs a writer has one).
    pub fn drained_here(&self) {
        self.inner.bell.home.store(thread_no(), Ordering::Relaxed);
        let period = self.inner.limits.wake_batch;
        if !period.is_zero() {
            BATCHER.with(|b| b.start(period));
        }
    }

    /// Queues a protocol message behind the audio already queued (it is never
    /// dropped, and does not count against the audio bound).
    pub fn send_after_audio(&self, message: C) -> bool {
        let mut lanes = self.lanes();
        if lanes.close.is_some() || lanes.finished {
            return false;
        }
        lanes.audio.push_back(Ordered::Marker(message));
        drop(lanes);
        self.inner.bell.ring();
        true
    }

    /// Drops every queued audio frame (markers stay, in order). Refused (false) while
    /// the lane is reserved: the reserved audio must play whole.
    pub fn clear_audio(&self) -> bool {
        let mut lanes = self.lanes();
        if lanes.reserved {
            return false;
        }
        lanes
            .audio
            .retain(|item| matches!(item, Ordered::Marker(_)));
        lanes.frames = 0;
        true
    }

    pub fn ping(&self) {
        let mut lanes = self.lanes();
        lanes.ping = true;
        drop(lanes);
        self.inner.bell.ring();
    }

    pub fn pong(&self, payload: Bytes) {
        let mut lanes = self.lanes();
        lanes.pong = Some(payload);
        drop(lanes);
        self.inner.bell.ring();
    }

    /// Asks the writer to close the socket once the queued control messages are out.
    /// The first close wins; later ones are ignored.
    pub fn close(&self, code: u16, reason: impl Into<String>) {
        let mut lanes = self.lanes();
        if lanes.close.is_none() && !lanes.finished {
            lanes.close = Some(Close {
                code,
                reason: reason.into(),
            });
        }
        drop(lanes);
        self.inner.bell.ring();
    }

    pub fn is_closed(&self) -> bool {
        let lanes = self.lanes();
        lanes.close.is_some() || lanes.finished
    }

    /// The engine's counters (the writer counts its socket writes there).
    pub fn stats(&self) -> &Arc<EngineStats> {
        &self.inner.stats
    }

    /// Audio frames dropped on this connection because its peer was slow.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Takes the next item without waiting. Control messages go first, then a pong,
    /// then audio; the close item comes once every queued control message is out.
    pub fn try_next(&self) -> Option<Outgoing<C>> {
        let mut lanes = self.lanes();
        if lanes.finished {
            return None;
        }
        if let Some(message) = lanes.control.pop_front() {
            return Some(Outgoing::Control(message));
        }
        if let Some(close) = lanes.close.take() {
            lanes.finished = true;
            lanes.audio.clear();
            lanes.frames = 0;
            return Some(Outgoing::Close(close));
        }
        if let Some(payload) = lanes.pong.take() {
            return Some(Outgoing::Pong(payload));
        }
        if std::mem::take(&mut lanes.ping) {
            return Some(Outgoing::Ping);
        }
        match lanes.audio.pop_front()? {
            Ordered::Frame(frame) => {
                lanes.frames -= 1;
                Some(Outgoing::Audio(frame))
            }
            Ordered::Marker(message) => Some(Outgoing::Control(message)),
        }
    }

    /// The next item, or the writer's waker kept to be woken when there is one;
    /// `None` once the close item has been taken (or the socket is gone). One
    /// writer drains an outbox: only the last waker given is woken.
    pub fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<Outgoing<C>>> {
        if let Some(item) = self.try_next() {
            return Poll::Ready(Some(item));
        }
        self.inner.bell.listen(cx.waker());
        // An item pushed between the look above and the waker being kept rang no one.
        match self.try_next() {
            Some(item) => Poll::Ready(Some(item)),
            None if self.lanes().finished => Poll::Ready(None),
            None => Poll::Pending,
        }
    }

    /// Waits for the next item; `None` once the close item has been taken.
    pub async fn next(&self) -> Option<Outgoing<C>> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Marks the connection as gone (the writer hit a closed socket): later pushes are
    /// discarded instead of piling up.
    pub fn finish(&self) {
        let mut lanes = self.lanes();
        lanes.finished = true;
        lanes.control.clear();
        lanes.audio.clear();
        lanes.frames = 0;
        drop(lanes);
        self.inner.bell.ring();
    }
}

impl Doorbell {
    fn lock_waker(&self) -> MutexGuard<'_, Option<Waker>> {
        self.waker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keeps the writer's waker (a clone only when it is not the one kept).
    fn listen(&self, waker: &Waker) {
        let mut kept = self.lock_waker();
        match kept.as_ref() {
            Some(old) if old.will_wake(waker) => {}
            _ => *kept = Some(waker.clone()),
        }
    }

    /// Wakes the waiting writer, if one waits.
    fn ring(&self) {
        let waker = self.lock_waker().take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// This thread's number (threads are numbered as they first ask).
fn thread_no() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local!(static NO: Cell<u64> = const { Cell::new(0) });
    NO.with(|no| {
        if no.get() == 0 {
            no.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        no.get()
    })
}

/// A thread's batch of writer wake-ups for other threads: the bells of the outboxes
/// this thread pushed audio into since its last flush.
#[derive(Default)]
struct Batcher {
    /// Bells due; swapped with `spare` at each flush so neither reallocates.
    due: Rc<RefCell<Vec<Arc<Doorbell>>>>,
    /// Wakes the flush task (same thread: no syscall) when the first bell is due.
    kick: Rc<Notify>,
    started: Cell<bool>,
}

thread_local!(static BATCHER: Batcher = Batcher::default());

impl Batcher {
    /// Starts this thread's flush task (once): it rings the bells due `period`
    /// after the first of them. Must run inside the thread's tokio `LocalSet`.
    fn start(&self, period: Duration) {
        if self.started.replace(true) {
            return;
        }
        let due = Rc::clone(&self.due);
        let kick = Rc::clone(&self.kick);
        tokio::task::spawn_local(async move {
            let mut ringing = Vec::new();
            loop {
                kick.notified().await;
                tokio::time::sleep(period).await;
                std::mem::swap(&mut *due.borrow_mut(), &mut ringing);
                for bell in ringing.drain(..) {
                    bell.deferred.store(false, Ordering::Release);
                    bell.ring();
                }
            }
        });
    }

    /// Takes the bell to ring with the next flush; false if this thread has no
    /// flush task (then the caller rings it at once).
    fn defer(&self, bell: &Arc<Doorbell>) -> bool {
        if !self.started.get() {
            return false;
        }
        if bell.deferred.swap(true, Ordering::AcqRel) {
            return true; // already due
        }
        let mut due = self.due.borrow_mut();
        due.push(Arc::clone(bell));
        if due.len() == 1 {
            self.kick.notify_one();
        }
        true
    }
}

/// Where one side's audio frames go; implemented by every outbox.
pub trait AudioOut: Send + Sync + 'static {
    fn push_audio(&self, frame: Bytes);
}

impl<C: Send + 'static> AudioOut for Outbox<C> {
    fn push_audio(&self, frame: Bytes) {
        self.send_audio(frame);
    }
}

/// A type-erased audio destination.
pub type AudioPort = Arc<dyn AudioOut>;

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(audio: usize, control: usize) -> Outbox<u32> {
        Outbox::new(
            OutboxLimits {
                audio_frames: audio,
                control_messages: control,
                wake_batch: Duration::ZERO,
            },
            Arc::new(EngineStats::default()),
        )
    }

    #[test]
    fn control_goes_before_audio_and_in_order() {
        let out = outbox(4, 4);
        out.send_audio(Bytes::from_static(b"a"));
        out.send(1);
        out.send(2);
        assert_eq!(out.try_next(), Some(Outgoing::Control(1)));
        assert_eq!(out.try_next(), Some(Outgoing::Control(2)));
        assert_eq!(
            out.try_next(),
            Some(Outgoing::Audio(Bytes::from_static(b"a")))
        );
        assert_eq!(out.try_next(), None);
    }

    #[test]
    fn a_full_audio_lane_drops_the_oldest_frame_and_counts_it() {
        let out = outbox(2, 4);
        for frame in [&b"1"[..], b"2", b"3"] {
            out.send_audio(Bytes::copy_from_slice(frame));
        }
        assert_eq!(out.dropped(), 1);
        assert_eq!(
            out.try_next(),
            Some(Outgoing::Audio(Bytes::from_static(b"2")))
        );
        assert_eq!(
            out.try_next(),
            Some(Outgoing::Audio(Bytes::from_static(b"3")))
        );
    }

    #[test]
    fn markers_keep_their_place_behind_audio_and_survive_drops_and_clears() {
        let out = outbox(2, 4);
        out.send_audio(Bytes::from_static(b"1"));
        out.send_after_audio(9);
        out.send_audio(Bytes::from_static(b"2"));
        out.send_audio(Bytes::from_static(b"3"));
        assert_eq!(out.dropped(), 1, "frame 1 made way");
        assert_eq!(out.try_next(), Some(Outgoing::Control(9)));
        out.send_after_audio(10);
        out.clear_audio();
        assert_eq!(out.try_next(), Some(Outgoing::Control(10)));
        assert_eq!(out.try_next(), None);
        out.send_audio(Bytes::from_static(b"4"));
        out.send_audio(Bytes::from_static(b"5"));
        out.send_audio(Bytes::from_static(b"6"));
        assert_eq!(out.dropped(), 2, "the bound still holds after a clear");
    }

    #[test]
    fn a_reserved_lane_takes_only_reserved_audio_and_refuses_clears_until_released() {
        let out = outbox(8, 4);
        out.send_audio(Bytes::from_static(b"before"));
        out.reserve_audio();
        out.send_audio(Bytes::from_static(b"other"));
        out.send_reserved_audio(Bytes::from_static(b"tone"));
        out.send_after_audio(9);
        assert!(!out.clear_audio());
        out.release_audio();
        out.send_audio(Bytes::from_static(b"after"));
        let mut taken = Vec::new();
        while let Some(item) = out.try_next() {
            taken.push(item);
        }
        assert_eq!(
            taken,
            [
                Outgoing::Audio(Bytes::from_static(b"before")),
                Outgoing::Audio(Bytes::from_static(b"tone")),
                Outgoing::Control(9),
                Outgoing::Audio(Bytes::from_static(b"after")),
            ]
        );
        out.send_audio(Bytes::from_static(b"x"));
        assert!(out.clear_audio());
        assert_eq!(out.try_next(), None);
    }

    #[test]
    fn a_peer_that_cannot_take_control_messages_is_closed() {
        let out = outbox(2, 2);
        assert!(out.send(1));
        assert!(out.send(2));
        assert!(!out.send(3));
        assert!(out.is_closed());
        assert_eq!(out.try_next(), Some(Outgoing::Control(1)));
        assert_eq!(out.try_next(), Some(Outgoing::Control(2)));
        assert!(matches!(out.try_next(), Some(Outgoing::Close(c)) if c.code == CLOSE_GOING_AWAY));
        assert_eq!(out.try_next(), None);
    }

    #[test]
    fn a_superseding_message_replaces_its_queued_predecessors_and_goes_last() {
        let out = outbox(2, 3);
        for state in [10, 20, 11, 12, 13, 14] {
            // Messages of the same "thing" (same tens) supersede each other.
            assert!(out.send_superseding(state, |queued| queued / 10 == state / 10));
        }
        assert!(
            !out.is_closed(),
            "six changes of two things fit in three places"
        );
        assert_eq!(out.try_next(), Some(Outgoing::Control(20)));
        assert_eq!(out.try_next(), Some(Outgoing::Control(14)));
        assert_eq!(out.try_next(), None);
    }

    #[test]
    fn an_overflowing_peer_is_closed_with_its_sockets_own_reason() {
        let out = Outbox::with_overflow_reason(
            OutboxLimits {
                audio_frames: 1,
                control_messages: 1,
                wake_batch: Duration::ZERO,
            },
            Arc::new(EngineStats::default()),
            "fell behind",
        );
        assert!(out.send(1));
        assert!(!out.send(2));
        assert_eq!(out.try_next(), Some(Outgoing::Control(1)));
        assert!(matches!(out.try_next(), Some(Outgoing::Close(c)) if c.reason == "fell behind"));
    }

    #[test]
    fn close_comes_after_queued_control_and_only_once() {
        let out = outbox(2, 8);
        out.send(7);
        out.close(CLOSE_NORMAL, "bye");
        out.close(CLOSE_POLICY, "ignored");
        assert!(!out.send(8));
        assert_eq!(out.try_next(), Some(Outgoing::Control(7)));
        assert_eq!(
            out.try_next(),
            Some(Outgoing::Close(Close {
                code: CLOSE_NORMAL,
                reason: "bye".into()
            }))
        );
        assert_eq!(out.try_next(), None);
    }

    #[actix_rt::test]
    async fn audio_pushed_from_another_thread_reaches_its_writer_whole_and_in_order_in_batches() {
        let limits = OutboxLimits {
            audio_frames: 1_000,
            control_messages: 4,
            wake_batch: Duration::from_millis(1),
        };
        let out: Outbox<u32> = Outbox::new(limits, Arc::new(EngineStats::default()));
        // The pushing thread runs a writer too (as every HTTP worker does): it has
        // a batcher.
        let local: Outbox<u32> = Outbox::new(limits, Arc::new(EngineStats::default()));
        local.drained_here();
        let writer = actix_rt::Arbiter::new();
        let (done, received) = tokio::sync::oneshot::channel();
        let drained = out.clone();
        assert!(writer.spawn(async move {
            drained.drained_here();
            let (mut frames, mut wakes) = (Vec::new(), 0);
            while frames.len() < 500 {
                let Some(Outgoing::Audio(first)) = drained.next().await else {
                    panic!("only audio")
                };
                wakes += 1;
                frames.push(first);
                while let Some(Outgoing::Audio(frame)) = drained.try_next() {
                    frames.push(frame);
                }
            }
            let _ = done.send((frames, wakes));
        }));
        // Let the writer start and wait on the outbox, then push a burst.
        tokio::time::sleep(Duration::from_millis(20)).await;
        for n in 0..500u16 {
            out.send_audio(Bytes::copy_from_slice(&n.to_be_bytes()));
        }
        let (frames, wakes) = received.await.expect("the writer got every frame");
        let expected: Vec<Bytes> = (0..500u16)
            .map(|n| Bytes::copy_from_slice(&n.to_be_bytes()))
            .collect();
        assert_eq!(frames, expected);
        assert!(
            wakes < 500,
            "one wake-up per batch, not per frame ({wakes})"
        );
        writer.stop();
    }
}
