//! The parking scenario: calls parked by their agent and unparked by an idle agent
//! of the same workspace every `--park-interval`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::json;
use tokio::sync::mpsc;

use super::controller::Phase;
use super::frame::{decode_frame, encode_frame, find, tick_offset, twilio_media, Stamp};
use super::histogram::Histogram;
use super::peers::{
    closing, echo_mark, engine_error, engine_message, incoming, media_payload, no_close,
    own_call_ended, ring, send_stop, Incoming,
};
use super::worker::{next_tick, until, Worker, WorkerStats};
use super::ws::{Message, WsClient};
use super::{CALLER_TO_AGENT, FRAME_INTERVAL, HANGUP_TIMEOUT};

/// Extra caller frames sent right after an unpark, `BURST_SPACING` apart, so that
/// "unpark → audio flowing" is resolved to about a millisecond instead of 20 ms.
pub(super) const BURST_FRAMES: u32 = 30;
pub(super) const BURST_SPACING: Duration = Duration::from_millis(1);
/// A park whose call is not connected to another agent within this long is given
/// up (the call is then left alone for the rest of the run).
pub(super) const CYCLE_TIMEOUT: Duration = Duration::from_secs(10);
/// A caller frame sent less than this before its call's `park` was sent is "at the
/// switch": the engine may handle the park first and discard it.
pub(super) const SWITCH_EDGE: Duration = Duration::from_millis(20);

/// Who is where in the parking scenario. Agents `0..calls` answer call `i` (own
/// number); agents `calls..calls + spares` start idle. Call `i` lives on thread
/// `i % threads` (as in the bridge scenario); spare `j` on thread `j % threads`.
/// A workspace holds up to `per_workspace` calls of one thread and its share of
/// that thread's spares, so a whole park/unpark cycle stays on one thread.
#[derive(Debug, Clone, Copy)]
pub(super) struct ParkLayout {
    pub(super) threads: usize,
    pub(super) calls: usize,
    pub(super) spares: usize,
    pub(super) per_workspace: usize,
}

impl ParkLayout {
    pub(super) fn calls_on(&self, thread: usize) -> usize {
        (self.calls + self.threads - 1 - thread) / self.threads
    }

    pub(super) fn workspaces_on(&self, thread: usize) -> usize {
        self.calls_on(thread).div_ceil(self.per_workspace).max(1)
    }

    pub(super) fn thread(&self, agent: usize) -> usize {
        if agent < self.calls {
            agent % self.threads
        } else {
            (agent - self.calls) % self.threads
        }
    }

    /// The agent's phone on its thread: its call's index there, then the spares.
    pub(super) fn local(&self, agent: usize) -> usize {
        if agent < self.calls {
            agent / self.threads
        } else {
            self.calls_on(self.thread(agent)) + (agent - self.calls) / self.threads
        }
    }

    /// The agent's workspace among its thread's.
    pub(super) fn local_workspace(&self, agent: usize) -> usize {
        if agent < self.calls {
            (agent / self.threads) / self.per_workspace
        } else {
            ((agent - self.calls) / self.threads) % self.workspaces_on(self.thread(agent))
        }
    }

    /// The agent's workspace number (the suffix of its workspace's name).
    pub(super) fn workspace(&self, agent: usize) -> usize {
        self.thread(agent) + self.threads * self.local_workspace(agent)
    }

    pub(super) fn workspace_count(&self) -> usize {
        (0..self.threads).map(|t| self.workspaces_on(t)).sum()
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct ParkPlan {
    pub(super) layout: ParkLayout,
    pub(super) interval: Duration,
}

/// One call of the parking scenario, as this thread sees it.
pub(super) struct ParkCall {
    pub(super) workspace: usize,
    pub(super) call_id: RefCell<Option<String>>,
    /// The phone the call is connected to (`None` before it is bridged).
    pub(super) holder: Cell<Option<usize>>,
    /// The phone that parked it last: its caller frames may still arrive there.
    pub(super) previous: Cell<Option<usize>>,
    /// The phone that is to take it back.
    pub(super) unparker: Cell<Option<usize>>,
    /// The generator's view: frames sent now must reach the holder (from its
    /// `connected` until its `park` is sent).
    pub(super) connected: Cell<bool>,
    /// When `park` was sent, until the first hold audio arrives.
    pub(super) park_sent: Cell<Option<u64>>,
    /// When `unpark` was sent, until the unparker's `connected`.
    pub(super) unpark_sent: Cell<Option<u64>>,
    /// When `unpark` was sent, until the first caller frame at the unparker.
    pub(super) flow_pending: Cell<Option<u64>>,
    /// Send times of every `park`.
    pub(super) parks: RefCell<Vec<u64>>,
    /// Per sequence number: send time, and whether the call was connected.
    pub(super) sent: RefCell<Vec<(u64, bool)>>,
    /// Per sequence number: arrived at some phone.
    pub(super) received: RefCell<Vec<bool>>,
    /// The unparker got `connected` (or the cycle failed).
    pub(super) cycle: tokio::sync::Notify,
    /// Start a burst of caller frames.
    pub(super) burst: tokio::sync::Notify,
}

pub(super) struct ParkPhone {
    pub(super) workspace: usize,
    /// Calls this phone is to park.
    pub(super) commands: mpsc::UnboundedSender<usize>,
    pub(super) inbox: RefCell<Option<mpsc::UnboundedReceiver<usize>>>,
    pub(super) current: Cell<Option<usize>>,
    /// The call this phone unparks as soon as it sees its `parked`.
    pub(super) pending_unpark: Cell<Option<usize>>,
}

/// A generator thread's calls, phones and idle phones in the parking scenario.
pub(super) struct ParkWorld {
    pub(super) layout: ParkLayout,
    /// This generator thread.
    pub(super) thread: usize,
    pub(super) interval: Duration,
    pub(super) calls: Vec<ParkCall>,
    pub(super) phones: Vec<ParkPhone>,
    /// Per workspace (of this thread): idle phones, longest idle first.
    pub(super) free: Vec<RefCell<std::collections::VecDeque<usize>>>,
    pub(super) by_id: RefCell<std::collections::HashMap<String, usize>>,
}

impl ParkWorld {
    pub(super) fn new(
        plan: &ParkPlan,
        thread: usize,
        calls: &[(usize, String)],
        spares: &[(usize, String)],
    ) -> ParkWorld {
        let layout = plan.layout;
        let call_states = calls
            .iter()
            .map(|&(i, _)| ParkCall {
                workspace: layout.local_workspace(i),
                call_id: RefCell::new(None),
                holder: Cell::new(None),
                previous: Cell::new(None),
                unparker: Cell::new(None),
                connected: Cell::new(false),
                park_sent: Cell::new(None),
                unpark_sent: Cell::new(None),
                flow_pending: Cell::new(None),
                parks: RefCell::new(Vec::new()),
                sent: RefCell::new(Vec::new()),
                received: RefCell::new(Vec::new()),
                cycle: tokio::sync::Notify::new(),
                burst: tokio::sync::Notify::new(),
            })
            .collect();
        let agents: Vec<usize> = calls
            .iter()
            .chain(spares)
            .map(|&(agent, _)| agent)
            .collect();
        let mut phones: Vec<(usize, ParkPhone)> = agents
            .iter()
            .map(|&agent| {
                let (commands, inbox) = mpsc::unbounded_channel();
                (
                    layout.local(agent),
                    ParkPhone {
                        workspace: layout.local_workspace(agent),
                        commands,
                        inbox: RefCell::new(Some(inbox)),
                        current: Cell::new(None),
                        pending_unpark: Cell::new(None),
                    },
                )
            })
            .collect();
        phones.sort_by_key(|(local, _)| *local);
        let free = (0..layout.workspaces_on(thread))
            .map(|_| RefCell::new(std::collections::VecDeque::new()))
            .collect::<Vec<_>>();
        for &(agent, _) in spares {
            free[layout.local_workspace(agent)]
                .borrow_mut()
                .push_back(layout.local(agent));
        }
        ParkWorld {
            layout,
            thread,
            interval: plan.interval,
            calls: call_states,
            phones: phones.into_iter().map(|(_, phone)| phone).collect(),
            free,
            by_id: RefCell::new(std::collections::HashMap::new()),
        }
    }

    pub(super) fn call_of(&self, call_id: Option<&str>) -> Option<usize> {
        self.by_id.borrow().get(call_id?).copied()
    }

    /// Sorts every caller frame of this thread into connected / parked, delivered
    /// or not (once the run is over).
    pub(super) fn account(&self, stats: &mut WorkerStats) {
        let edge = SWITCH_EDGE.as_nanos() as u64;
        let park = &mut stats.parking;
        for call in &self.calls {
            let parks = call.parks.borrow();
            let received = call.received.borrow();
            for (seq, &(sent_ns, connected)) in call.sent.borrow().iter().enumerate() {
                let arrived = received.get(seq).copied().unwrap_or(false);
                match (connected, arrived) {
                    (true, true) => park.connected_received += 1,
                    (true, false) => {
                        let at_switch = parks.iter().any(|&p| p >= sent_ns && p - sent_ns < edge);
                        if at_switch {
                            park.lost_at_switch += 1;
                        } else {
                            park.lost_outside_switch += 1;
                        }
                    }
                    (false, true) => park.parked_delivered += 1,
                    (false, false) => park.discarded_while_parked += 1,
                }
                if connected {
                    park.connected_sent += 1;
                } else {
                    park.parked_sent += 1;
                }
            }
        }
    }
}

/// Counters and latencies of the parking scenario (nanoseconds).
#[derive(Debug, Default)]
pub(super) struct ParkStats {
    pub(super) parks: u64,
    pub(super) unparks: u64,
    /// Unparks answered by `connected`.
    pub(super) cycles: u64,
    pub(super) claims_lost: u64,
    /// A park was due but the workspace had no idle agent: skipped.
    pub(super) no_free_agent: u64,
    /// Cycles that did not complete within `CYCLE_TIMEOUT`.
    pub(super) stuck: u64,
    /// Cycles whose caller got no hold audio before the unparker's `connected`.
    pub(super) no_hold_audio: u64,
    pub(super) parked_notices: u64,
    pub(super) unparked_notices: u64,
    pub(super) released: u64,
    pub(super) hold_messages: u64,
    pub(super) clears: u64,
    pub(super) misrouted: u64,
    /// `park` sent → the first hold-audio media message at the caller.
    pub(super) park_to_hold: Histogram,
    /// `unpark` sent → the first caller frame at the unparking softphone.
    pub(super) unpark_to_audio: Histogram,
    /// The same less the part that is the frame's own age when it was sent after
    /// the unpark: arrival − max(unpark sent, frame sent).
    pub(super) unpark_to_audio_adjusted: Histogram,
    /// `unpark` sent → `connected`.
    pub(super) unpark_to_connected: Histogram,
    pub(super) connected_sent: u64,
    pub(super) connected_received: u64,
    pub(super) lost_at_switch: u64,
    pub(super) lost_outside_switch: u64,
    pub(super) parked_sent: u64,
    pub(super) parked_delivered: u64,
    pub(super) discarded_while_parked: u64,
}

impl ParkStats {
    pub(super) fn merge(&mut self, o: &ParkStats) {
        self.parks += o.parks;
        self.unparks += o.unparks;
        self.cycles += o.cycles;
        self.claims_lost += o.claims_lost;
        self.no_free_agent += o.no_free_agent;
        self.stuck += o.stuck;
        self.no_hold_audio += o.no_hold_audio;
        self.parked_notices += o.parked_notices;
        self.unparked_notices += o.unparked_notices;
        self.released += o.released;
        self.hold_messages += o.hold_messages;
        self.clears += o.clears;
        self.misrouted += o.misrouted;
        self.park_to_hold.merge(&o.park_to_hold);
        self.unpark_to_audio.merge(&o.unpark_to_audio);
        self.unpark_to_audio_adjusted
            .merge(&o.unpark_to_audio_adjusted);
        self.unpark_to_connected.merge(&o.unpark_to_connected);
        self.connected_sent += o.connected_sent;
        self.connected_received += o.connected_received;
        self.lost_at_switch += o.lost_at_switch;
        self.lost_outside_switch += o.lost_outside_switch;
        self.parked_sent += o.parked_sent;
        self.parked_delivered += o.parked_delivered;
        self.discarded_while_parked += o.discarded_while_parked;
    }
}

/// A small deterministic generator for the park schedule's jitter.
pub(super) fn next_random(state: &mut u64) -> f64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state >> 11) as f64 / (1u64 << 53) as f64
}

/// Parks call `c` every interval (jittered) and hands it to an idle phone of its
/// workspace, which unparks it when it sees the `parked`.
pub(super) async fn park_driver(worker: Rc<Worker>, c: usize, start: Instant) {
    let Some(world) = &worker.park else { return };
    let call = &world.calls[c];
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ ((c as u64 + 1) * 0x2545_F491_4F6C_DD1D);
    let mut next = start + world.interval.mul_f64(next_random(&mut rng));
    loop {
        tokio::time::sleep_until(next.into()).await;
        if !worker.streaming.get() {
            break;
        }
        next =
            (next + world.interval.mul_f64(0.9 + 0.2 * next_random(&mut rng))).max(Instant::now());
        let Some(holder) = call.holder.get().filter(|_| call.connected.get()) else {
            continue;
        };
        let Some(unparker) = world.free[call.workspace].borrow_mut().pop_front() else {
            worker.stats.borrow_mut().parking.no_free_agent += 1;
            continue;
        };
        world.phones[unparker].pending_unpark.set(Some(c));
        call.unparker.set(Some(unparker));
        if world.phones[holder].commands.send(c).is_err() {
            break;
        }
        let done = tokio::time::timeout(CYCLE_TIMEOUT, call.cycle.notified()).await;
        if done.is_err() || !call.connected.get() {
            let mut stats = worker.stats.borrow_mut();
            stats.parking.stuck += 1;
            stats.note(format!(
                "parking: a call of thread {}: not connected again within {CYCLE_TIMEOUT:?} of its park; left alone",
                world.thread
            ));
            break;
        }
    }
}

/// A softphone of the parking scenario: answers its own call once, parks the call
/// it holds when told to, unparks the call it was given as soon as it is parked.
pub(super) async fn park_phone(worker: Rc<Worker>, p: usize, mut ws: WsClient) {
    let Some(world) = &worker.park else { return };
    let me = &world.phones[p];
    let Some(mut inbox) = me.inbox.borrow_mut().take() else {
        return;
    };
    let slot = (p < world.calls.len()).then(|| &worker.slots[p]);
    let mut phases = worker.phases.clone();
    let mut answered = false;
    let mut hangup: Option<tokio::time::Instant> = None;
    let mut ended = false;
    loop {
        tokio::select! {
            frame = ws.next() => {
                let is_closing = || closing(hangup, &phases);
                let text = match incoming(&worker, "softphone", p, &mut ws, frame, is_closing, is_closing).await {
                    Incoming::Binary(audio) => {
                        park_audio(&worker, world, p, &audio);
                        continue;
                    }
                    Incoming::Text(text) => text,
                    Incoming::Handled => continue,
                    Incoming::Done => break,
                };
                let Some(message) = engine_message(&worker, p, &text) else {
                    continue;
                };
                let call_id = message.call_id.as_deref();
                let own = slot.is_some_and(|slot| {
                    let mine = slot.call_id.borrow();
                    mine.is_some() && mine.as_deref() == call_id
                });
                match message.kind.as_ref() {
                    "ring" => ring(&worker, &mut ws, own, &mut answered, call_id, slot).await,
                    "connected" => {
                        if let (true, Some(slot), Some(id)) = (own, slot, call_id) {
                            if !slot.bridged.get() {
                                world.by_id.borrow_mut().insert(id.to_owned(), p);
                                *world.calls[p].call_id.borrow_mut() = Some(id.to_owned());
                            }
                        }
                        let Some(c) = world.call_of(call_id) else {
                            worker.note(format!("softphone {p}: connected to an unknown call"));
                            continue;
                        };
                        let call = &world.calls[c];
                        call.holder.set(Some(p));
                        call.unparker.set(None);
                        call.connected.set(true);
                        me.current.set(Some(c));
                        if let Some(sent) = call.unpark_sent.take() {
                            let mut stats = worker.stats.borrow_mut();
                            stats.parking.cycles += 1;
                            if call.park_sent.take().is_some() {
                                stats.parking.no_hold_audio += 1;
                            }
                            stats.parking.unpark_to_connected.record(worker.clock.now_ns().saturating_sub(sent));
                            call.cycle.notify_one();
                        }
                        if let Some(slot) = slot.filter(|slot| !slot.bridged.get() && own) {
                            slot.bridged.set(true);
                            slot.settle(Ok(()));
                        }
                    }
                    "claim_lost" => {
                        let mut stats = worker.stats.borrow_mut();
                        stats.claims_lost += 1;
                        stats.parking.claims_lost += 1;
                        if own {
                            if let Some(slot) = slot {
                                slot.settle(Err("claim_lost".into()));
                            }
                        }
                        if let Some(c) = world.call_of(call_id) {
                            if world.calls[c].unparker.get() == Some(p) {
                                world.calls[c].cycle.notify_one();
                                world.free[me.workspace].borrow_mut().push_back(p);
                            }
                        }
                    }
                    "released" => {
                        worker.stats.borrow_mut().parking.released += 1;
                        me.current.set(None);
                        world.free[me.workspace].borrow_mut().push_back(p);
                    }
                    "parked" => {
                        worker.stats.borrow_mut().parking.parked_notices += 1;
                        let Some(c) = me.pending_unpark.get() else { continue };
                        if world.call_of(call_id) != Some(c) {
                            continue;
                        }
                        me.pending_unpark.set(None);
                        let call = &world.calls[c];
                        let unpark = json!({ "type": "unpark", "call_id": call_id });
                        let now = worker.clock.now_ns();
                        call.unpark_sent.set(Some(now));
                        call.flow_pending.set(Some(now));
                        call.burst.notify_one();
                        worker.stats.borrow_mut().parking.unparks += 1;
                        if ws.send(Message::Text(&unpark.to_string())).await.is_err() {
                            worker.stats.borrow_mut().send_errors += 1;
                        }
                    }
                    "unparked" => worker.stats.borrow_mut().parking.unparked_notices += 1,
                    "call_ended" => {
                        worker.stats.borrow_mut().calls_ended += 1;
                        if me.current.get().is_some() && me.current.get() == world.call_of(call_id) {
                            me.current.set(None);
                            ended = true;
                            let closing = closing(hangup, &phases);
                            own_call_ended(&worker, p, &mut ws, &message, closing).await;
                        }
                    }
                    "error" => engine_error(&worker, p, &message),
                    _ => {}
                }
            }
            Some(c) = inbox.recv() => {
                let call = &world.calls[c];
                let Some(id) = call.call_id.borrow().clone() else { continue };
                let park = json!({ "type": "park", "call_id": id });
                let now = worker.clock.now_ns();
                call.connected.set(false);
                call.previous.set(Some(p));
                call.parks.borrow_mut().push(now);
                call.park_sent.set(Some(now));
                worker.stats.borrow_mut().parking.parks += 1;
                if ws.send(Message::Text(&park.to_string())).await.is_err() {
                    worker.stats.borrow_mut().send_errors += 1;
                }
            }
            changed = phases.changed() => {
                if changed.is_err() {
                    break;
                }
                if let Phase::Hangup = *phases.borrow_and_update() {
                    hangup = Some(tokio::time::Instant::now() + HANGUP_TIMEOUT);
                    if ended || me.current.get().is_none() {
                        let _ = ws.send(Message::Close).await;
                    }
                }
            }
            _ = until(hangup) => {
                no_close(&worker, "softphone", p, "the hang-up");
                break;
            }
        }
    }
    if let Some(slot) = slot {
        slot.settle(Err("softphone closed".into()));
    }
}

/// A caller frame at softphone `p`.
pub(super) fn park_audio(worker: &Worker, world: &ParkWorld, p: usize, audio: &[u8]) {
    let now = worker.clock.now_ns();
    let mut stats = worker.stats.borrow_mut();
    let Some(stamp) = decode_frame(audio) else {
        if worker.streaming.get() {
            stats.foreign_audio += 1;
        }
        return;
    };
    let global = stamp.call as usize;
    let c = global / worker.threads;
    let call = world
        .calls
        .get(c)
        .filter(|_| stamp.direction == CALLER_TO_AGENT && global % worker.threads == world.thread);
    let Some(call) = call else {
        stats.caller_to_agent.misrouted += 1;
        stats.parking.misrouted += 1;
        return;
    };
    let mine = [call.holder.get(), call.previous.get(), call.unparker.get()].contains(&Some(p));
    if !mine {
        stats.caller_to_agent.misrouted += 1;
        stats.parking.misrouted += 1;
        return;
    }
    {
        let mut received = call.received.borrow_mut();
        let seq = stamp.seq as usize;
        if received.len() <= seq {
            received.resize(seq + 1, false);
        }
        if received[seq] {
            stats.caller_to_agent.out_of_order += 1;
        }
        received[seq] = true;
    }
    stats.caller_to_agent.received += 1;
    stats
        .caller_to_agent
        .latency
        .record(now.saturating_sub(stamp.sent_ns));
    if call.unparker.get() == Some(p) || call.holder.get() == Some(p) {
        if let Some(sent) = call.flow_pending.take() {
            stats
                .parking
                .unpark_to_audio
                .record(now.saturating_sub(sent));
            stats
                .parking
                .unpark_to_audio_adjusted
                .record(now.saturating_sub(sent.max(stamp.sent_ns)));
        }
    }
}

/// Twilio's media stream for call `index` in the parking scenario: paced caller
/// frames (and a burst at every unpark); hold audio is any media that is not a
/// generator frame.
pub(super) async fn park_twilio(
    worker: Rc<Worker>,
    index: usize,
    stream_sid: String,
    mut ws: WsClient,
) {
    let Some(world) = &worker.park else { return };
    let c = index / worker.threads;
    let call = &world.calls[c];
    let slot = worker.slot(index);
    let mut phases = worker.phases.clone();
    let offset = tick_offset(index, worker.total_calls);
    let mut ticker: Option<tokio::time::Interval> = None;
    let mut burst: Option<(tokio::time::Interval, u32)> = None;
    let mut seq: u64 = 0;
    let mut hangup: Option<tokio::time::Instant> = None;
    let mut audio = [0u8; 4096];
    loop {
        let send = tokio::select! {
            frame = ws.next() => {
                let is_closing = || closing(hangup, &phases);
                let text = match incoming(&worker, "twilio stream", index, &mut ws, frame, is_closing, is_closing).await {
                    Incoming::Text(text) => text,
                    Incoming::Binary(_) | Incoming::Handled => continue,
                    Incoming::Done => break,
                };
                if let Some(payload) = media_payload(&text) {
                    let generator = STANDARD
                        .decode_slice(payload, &mut audio)
                        .ok()
                        .and_then(|len| decode_frame(&audio[..len]));
                    let now = worker.clock.now_ns();
                    let mut stats = worker.stats.borrow_mut();
                    if generator.is_some() {
                        // One-way audio: nothing of ours comes back.
                        stats.agent_to_caller.misrouted += 1;
                    } else {
                        stats.parking.hold_messages += 1;
                        if let Some(sent) = call.park_sent.take() {
                            stats.parking.park_to_hold.record(now.saturating_sub(sent));
                        }
                    }
                } else if find(&text, br#""event":"clear""#).is_some() {
                    let mut stats = worker.stats.borrow_mut();
                    stats.clears += 1;
                    stats.parking.clears += 1;
                } else if find(&text, br#""event":"mark""#).is_some() {
                    echo_mark(&mut ws, &stream_sid, &text).await;
                }
                None
            }
            scheduled = next_tick(&mut ticker) => Some(scheduled),
            scheduled = next_burst(&mut burst) => Some(scheduled),
            () = call.burst.notified(), if ticker.is_some() => {
                let mut interval = tokio::time::interval(BURST_SPACING);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                burst = Some((interval, BURST_FRAMES));
                None
            }
            changed = phases.changed() => {
                if changed.is_err() {
                    break;
                }
                match *phases.borrow_and_update() {
                    Phase::Stream { start } => {
                        if ticker.is_none() && slot.bridged.get() {
                            let first = tokio::time::Instant::from_std(start + offset);
                            ticker = Some(tokio::time::interval_at(first, FRAME_INTERVAL));
                        }
                    }
                    Phase::Hangup => {
                        ticker = None;
                        burst = None;
                        hangup = Some(tokio::time::Instant::now() + HANGUP_TIMEOUT);
                        seq += 1;
                        send_stop(&mut ws, &stream_sid, seq).await;
                    }
                    _ => {
                        ticker = None;
                        burst = None;
                    }
                }
                None
            }
            _ = until(hangup) => {
                no_close(&worker, "twilio stream", index, "stop");
                break;
            }
        };
        if let Some(scheduled) = send {
            let sent_ns = worker.clock.now_ns();
            call.sent.borrow_mut().push((sent_ns, call.connected.get()));
            let frame = encode_frame(Stamp {
                direction: CALLER_TO_AGENT,
                call: index as u32,
                seq,
                sent_ns,
            });
            let text = twilio_media(&stream_sid, seq, &frame);
            seq += 1;
            let ok = ws.send(Message::Text(&text)).await.is_ok();
            worker.sent(CALLER_TO_AGENT, ok, scheduled);
        }
    }
}

pub(super) async fn next_burst(
    burst: &mut Option<(tokio::time::Interval, u32)>,
) -> tokio::time::Instant {
    match burst {
        Some((interval, left)) if *left > 0 => {
            let at = interval.tick().await;
            *left -= 1;
            if *left == 0 {
                *burst = None;
            }
            at
        }
        _ => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parking_layout_keeps_a_workspace_on_one_thread() {
        let layout = ParkLayout {
            threads: 3,
            calls: 100,
            spares: 50,
            per_workspace: 7,
        };
        let mut seen = std::collections::HashMap::new();
        let mut locals = std::collections::HashSet::new();
        for agent in 0..150 {
            let thread = layout.thread(agent);
            assert!(
                locals.insert((thread, layout.local(agent))),
                "agent {agent}"
            );
            assert!(layout.local_workspace(agent) < layout.workspaces_on(thread));
            let workspace = layout.workspace(agent);
            assert_eq!(*seen.entry(workspace).or_insert(thread), thread);
            if agent < 100 {
                assert_eq!(layout.local(agent), agent / 3);
            }
        }
        assert_eq!(seen.len(), layout.workspace_count());
        assert_eq!((0..3).map(|t| layout.calls_on(t)).sum::<usize>(), 100);
        // Every workspace has a spare agent.
        for workspace in seen.keys() {
            assert!((100..150).any(|agent| layout.workspace(agent) == *workspace));
        }
    }
}
