//! The generator threads: their plan, shared state and statistics, softphone
//! connections and call placement.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures_util::StreamExt as _;
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};

use switchboard_wire::signature::sign;

use super::ai::{fake_acceptor, AiShared};
use super::bridge::{softphone, twilio_stream};
use super::controller::{Phase, Target};
use super::frame::{decode_frame, find, Clock, Stamp};
use super::histogram::Histogram;
use super::parking::{park_driver, park_phone, park_twilio, ParkPlan, ParkStats, ParkWorld};
use super::procfs::thread_self_ticks;
use super::ws::{Frame, Message, WsClient};
use super::{
    AudioDirection, CALLER_TO_AGENT, CALL_SETUP_TIMEOUT, HANGUP_TIMEOUT, HTTP_TIMEOUT, MAX_NOTES,
};

/// One generator thread's share of the load.
pub(super) struct WorkerPlan {
    pub(super) id: usize,
    pub(super) threads: usize,
    pub(super) total_calls: usize,
    pub(super) clock: Clock,
    pub(super) audio: AudioDirection,
    pub(super) target: Target,
    /// (call index, agent token): softphone `i` answers call `i`.
    pub(super) phones: Vec<(usize, String)>,
    /// (call index, the number it dials).
    pub(super) calls: Vec<(usize, String)>,
    /// Parking: (agent index, agent token) of this thread's spare agents.
    pub(super) spares: Vec<(usize, String)>,
    pub(super) parking: Option<ParkPlan>,
    /// The AI scenario: this thread's share of the fake OpenAI's sessions.
    pub(super) ai: Option<AiPlan>,
    pub(super) concurrency: usize,
    /// Time between two calls placed by this thread (`--ramp-per-sec`).
    pub(super) ramp_spacing: Option<Duration>,
    pub(super) phases: watch::Receiver<Phase>,
    pub(super) events: mpsc::UnboundedSender<WorkerEvent>,
}

/// A generator thread's part of the fake OpenAI: the connections dealt to it.
pub(super) struct AiPlan {
    pub(super) shared: Arc<AiShared>,
    pub(super) api_key: String,
    pub(super) sockets: mpsc::UnboundedReceiver<std::net::TcpStream>,
}

#[derive(Debug)]
pub(super) enum WorkerEvent {
    PhonesReady { errors: Vec<String> },
    Bridged { setup: Duration },
    CallFailed { index: usize, error: String },
    PlacementDone,
    Done { stats: Box<WorkerStats> },
}

/// Counters of one direction of audio.
#[derive(Debug, Clone, Default)]
pub(super) struct DirectionStats {
    pub(super) sent: u64,
    pub(super) received: u64,
    /// Arrived behind a later frame of the same stream (reordered or duplicated).
    pub(super) out_of_order: u64,
    /// Carried another call's or the other direction's stamp: cross-talk.
    pub(super) misrouted: u64,
    /// Send time → receipt, in nanoseconds.
    pub(super) latency: Histogram,
}

impl DirectionStats {
    pub(super) fn merge(&mut self, other: &DirectionStats) {
        self.sent += other.sent;
        self.received += other.received;
        self.out_of_order += other.out_of_order;
        self.misrouted += other.misrouted;
        self.latency.merge(&other.latency);
    }
}

#[derive(Debug, Default)]
pub(super) struct WorkerStats {
    pub(super) caller_to_agent: DirectionStats,
    pub(super) agent_to_caller: DirectionStats,
    /// How late each paced send was against its schedule (generator health).
    pub(super) send_lag: Histogram,
    /// Engine→Twilio audio that was not a generator frame, while streaming.
    pub(super) foreign_audio: u64,
    pub(super) rings: u64,
    pub(super) ring_cancels: u64,
    pub(super) claims_lost: u64,
    pub(super) engine_errors: u64,
    pub(super) calls_ended: u64,
    pub(super) clears: u64,
    pub(super) unexpected_closes: u64,
    pub(super) send_errors: u64,
    pub(super) notes: Vec<String>,
    /// CPU ticks of each generator thread over the streaming phase.
    pub(super) thread_ticks: Vec<u64>,
    pub(super) parking: ParkStats,
}

impl WorkerStats {
    pub(super) fn note(&mut self, note: String) {
        if self.notes.len() < MAX_NOTES {
            self.notes.push(note);
        }
    }

    pub(super) fn merge(&mut self, other: WorkerStats) {
        self.caller_to_agent.merge(&other.caller_to_agent);
        self.agent_to_caller.merge(&other.agent_to_caller);
        self.send_lag.merge(&other.send_lag);
        self.foreign_audio += other.foreign_audio;
        self.rings += other.rings;
        self.ring_cancels += other.ring_cancels;
        self.claims_lost += other.claims_lost;
        self.engine_errors += other.engine_errors;
        self.calls_ended += other.calls_ended;
        self.clears += other.clears;
        self.unexpected_closes += other.unexpected_closes;
        self.send_errors += other.send_errors;
        for note in other.notes {
            self.note(note);
        }
        self.thread_ticks.extend(other.thread_ticks);
        self.parking.merge(&other.parking);
    }
}

/// Softphone `i`'s side of call `i`, shared with whoever places the call.
#[derive(Default)]
pub(super) struct PhoneSlot {
    /// The call this phone answers, once the webhook has named it.
    pub(super) call_id: RefCell<Option<String>>,
    /// Told when the call is bridged (or is lost).
    pub(super) waiter: RefCell<Option<oneshot::Sender<Result<(), String>>>>,
    pub(super) bridged: Cell<bool>,
}

impl PhoneSlot {
    pub(super) fn settle(&self, result: Result<(), String>) {
        if let Some(waiter) = self.waiter.borrow_mut().take() {
            let _ = waiter.send(result);
        }
    }
}

/// One generator thread's state, shared by its tasks.
pub(super) struct Worker {
    pub(super) threads: usize,
    pub(super) total_calls: usize,
    pub(super) clock: Clock,
    pub(super) audio: AudioDirection,
    pub(super) target: Target,
    pub(super) client: awc::Client,
    pub(super) slots: Vec<PhoneSlot>,
    pub(super) stats: RefCell<WorkerStats>,
    pub(super) streaming: Cell<bool>,
    pub(super) tasks: RefCell<Vec<actix_rt::task::JoinHandle<()>>>,
    pub(super) phases: watch::Receiver<Phase>,
    /// The parking scenario's state (`None`: bridge).
    pub(super) park: Option<ParkWorld>,
    /// The AI scenario: calls go to an assistant, no softphone answers them.
    pub(super) ai: bool,
}

impl Worker {
    pub(super) fn slot(&self, index: usize) -> &PhoneSlot {
        &self.slots[index / self.threads]
    }

    pub(super) fn received(&self, expected: Stamp, audio: &[u8], next_seq: &mut u64) {
        let now = self.clock.now_ns();
        let mut stats = self.stats.borrow_mut();
        let Some(stamp) = decode_frame(audio) else {
            if self.streaming.get() {
                stats.foreign_audio += 1;
            }
            return;
        };
        let direction = if expected.direction == CALLER_TO_AGENT {
            &mut stats.caller_to_agent
        } else {
            &mut stats.agent_to_caller
        };
        if stamp.call != expected.call || stamp.direction != expected.direction {
            direction.misrouted += 1;
            return;
        }
        direction.received += 1;
        if stamp.seq < *next_seq {
            direction.out_of_order += 1;
        } else {
            *next_seq = stamp.seq + 1;
        }
        direction.latency.record(now.saturating_sub(stamp.sent_ns));
    }

    pub(super) fn sent(&self, direction: u8, ok: bool, scheduled: tokio::time::Instant) {
        let lag = Instant::now().saturating_duration_since(scheduled.into_std());
        let mut stats = self.stats.borrow_mut();
        stats.send_lag.record(lag.as_nanos() as u64);
        if !ok {
            stats.send_errors += 1;
        } else if direction == CALLER_TO_AGENT {
            stats.caller_to_agent.sent += 1;
        } else {
            stats.agent_to_caller.sent += 1;
        }
    }

    pub(super) fn note(&self, note: String) {
        self.stats.borrow_mut().note(note);
    }

    pub(super) fn unexpected_close(&self, note: String) {
        let mut stats = self.stats.borrow_mut();
        stats.unexpected_closes += 1;
        stats.note(note);
    }
}

pub(super) async fn worker(plan: WorkerPlan) {
    let client = awc::Client::builder()
        .connector(awc::Connector::new().limit(0))
        .timeout(HTTP_TIMEOUT)
        .finish();
    let slots = (0..plan.phones.len().max(plan.calls.len()))
        .map(|_| PhoneSlot::default())
        .collect();
    let worker = Rc::new(Worker {
        threads: plan.threads,
        total_calls: plan.total_calls,
        clock: plan.clock,
        audio: plan.audio,
        target: plan.target,
        client,
        slots,
        stats: RefCell::new(WorkerStats::default()),
        streaming: Cell::new(false),
        tasks: RefCell::new(Vec::new()),
        phases: plan.phases.clone(),
        park: plan
            .parking
            .as_ref()
            .map(|park| ParkWorld::new(park, plan.id, &plan.calls, &plan.spares)),
        ai: plan.ai.is_some(),
    });
    let events = plan.events;
    if let Some(ai) = plan.ai {
        actix_rt::spawn(fake_acceptor(
            Rc::clone(&worker),
            ai.shared,
            ai.api_key.into(),
            ai.sockets,
        ));
    }

    let errors: Vec<String> =
        futures_util::stream::iter(plan.phones.into_iter().chain(plan.spares))
            .map(|(index, token)| {
                let worker = Rc::clone(&worker);
                async move { connect_phone(worker, index, token).await.err() }
            })
            .buffer_unordered(16)
            .filter_map(|error| async move { error.map(|e| format!("{e:#}")) })
            .collect()
            .await;
    let _ = events.send(WorkerEvent::PhonesReady { errors });

    let mut phases = plan.phases;
    let mut placed = false;
    let mut ticks_at_start = None;
    loop {
        if phases.changed().await.is_err() {
            break;
        }
        let phase = *phases.borrow_and_update();
        match phase {
            Phase::Setup => {}
            Phase::Place if !placed => {
                placed = true;
                place_calls(
                    &worker,
                    &plan.calls,
                    plan.concurrency,
                    plan.ramp_spacing,
                    &events,
                )
                .await;
                let _ = events.send(WorkerEvent::PlacementDone);
            }
            Phase::Place => {}
            Phase::Stream { start } => {
                worker.streaming.set(true);
                ticks_at_start = thread_self_ticks();
                if let Some(world) = &worker.park {
                    for c in 0..world.calls.len() {
                        if world.calls[c].holder.get().is_some() {
                            let task = actix_rt::spawn(park_driver(Rc::clone(&worker), c, start));
                            worker.tasks.borrow_mut().push(task);
                        }
                    }
                }
            }
            Phase::Quiet => {
                worker.streaming.set(false);
                if let (Some(start), Some(end)) = (ticks_at_start, thread_self_ticks()) {
                    worker.stats.borrow_mut().thread_ticks.push(end - start);
                }
            }
            Phase::Hangup => break,
        }
    }
    // Every task ends by itself after the hang-up (bounded by HANGUP_TIMEOUT).
    let tasks: Vec<_> = worker.tasks.borrow_mut().drain(..).collect();
    let _ = tokio::time::timeout(
        HANGUP_TIMEOUT + Duration::from_secs(2),
        futures_util::future::join_all(tasks),
    )
    .await;
    if let Some(world) = &worker.park {
        world.account(&mut worker.stats.borrow_mut());
    }
    let stats = std::mem::take(&mut *worker.stats.borrow_mut());
    tracing::debug!(worker = plan.id, "generator thread done");
    let _ = events.send(WorkerEvent::Done {
        stats: Box::new(stats),
    });
}

/// Connects softphone `index`, sets it `available` and leaves it to its task.
pub(super) async fn connect_phone(
    worker: Rc<Worker>,
    index: usize,
    token: String,
) -> anyhow::Result<()> {
    let url = format!(
        "{}/ws/agent?token={token}",
        worker.target.agent_ws_base(index)
    );
    let mut ws = WsClient::connect(&url, &[])
        .await
        .with_context(|| format!("softphone {index}"))?;
    let presence = r#"{"type":"presence","status":"available"}"#;
    ws.send(Message::Text(presence)).await?;
    let ack = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(frame) = ws.next().await {
            if let Frame::Text(text) = frame? {
                if find(&text, br#""type":"presence""#).is_some() {
                    return Ok(());
                }
            }
        }
        bail!("softphone {index}: closed before the presence ack")
    })
    .await;
    ack.map_err(|_| anyhow::anyhow!("softphone {index}: no presence ack"))??;
    let task = match &worker.park {
        Some(world) => {
            let phone = world.layout.local(index);
            actix_rt::spawn(park_phone(Rc::clone(&worker), phone, ws))
        }
        None => actix_rt::spawn(softphone(Rc::clone(&worker), index, ws)),
    };
    worker.tasks.borrow_mut().push(task);
    Ok(())
}

pub(super) async fn place_calls(
    worker: &Rc<Worker>,
    calls: &[(usize, String)],
    concurrency: usize,
    spacing: Option<Duration>,
    events: &mpsc::UnboundedSender<WorkerEvent>,
) {
    let started = Instant::now();
    futures_util::stream::iter(calls.iter().enumerate())
        .for_each_concurrent(concurrency, |(k, (index, to))| async move {
            if let Some(spacing) = spacing {
                tokio::time::sleep_until((started + spacing * k as u32).into()).await;
            }
            let begun = Instant::now();
            let event = match place_call(worker, *index, to).await {
                Ok(()) => WorkerEvent::Bridged {
                    setup: begun.elapsed(),
                },
                Err(err) => WorkerEvent::CallFailed {
                    index: *index,
                    error: format!("{err:#}"),
                },
            };
            let _ = events.send(event);
        })
        .await;
}

/// Twilio's side of a call: the signed webhook, then the media stream (`connected`,
/// `start`); done when softphone `index` has it. Against a `--peer-url` relay only
/// the media stream, as Twilio opens it for `<Connect><Stream>`, unsigned.
pub(super) async fn place_call(worker: &Rc<Worker>, index: usize, to: &str) -> anyhow::Result<()> {
    let target = &worker.target;
    if let Some(peer) = &target.peer {
        let call_sid = format!("CA{}", uuid::Uuid::new_v4().simple());
        let ws = WsClient::connect(peer.as_str(), &[])
            .await
            .with_context(|| format!("the peer's media stream {}", peer.as_str()))?;
        let (stream_sid, ws) = start_stream(ws, &call_sid, json!({})).await?;
        stream_started(worker, index, stream_sid, ws);
        return Ok(());
    }
    let from = format!("+1415555{:04}", index % 10_000);
    let Announced {
        call_sid,
        call_id,
        stream_url,
    } = voice_webhook(&worker.client, target, to, &from).await?;

    let slot = worker.slot(index);
    let (tx, rx) = oneshot::channel();
    *slot.call_id.borrow_mut() = Some(call_id.clone());
    *slot.waiter.borrow_mut() = Some(tx);

    let signature = sign(&target.twilio_token, &stream_url, &[]);
    let ws = WsClient::connect(&stream_url, &[("X-Twilio-Signature", &signature)])
        .await
        .context("media stream")?;
    let (stream_sid, ws) = start_stream(ws, &call_sid, json!({ "call_id": call_id })).await?;
    if worker.ai {
        // No softphone: the call is the assistant's once its stream has started
        // (the controller waits for the fake OpenAI's sessions to be ready).
        stream_started(worker, index, stream_sid, ws);
        return Ok(());
    }
    let task = if worker.park.is_some() {
        actix_rt::spawn(park_twilio(Rc::clone(worker), index, stream_sid, ws))
    } else {
        actix_rt::spawn(twilio_stream(Rc::clone(worker), index, stream_sid, ws))
    };
    worker.tasks.borrow_mut().push(task);

    match tokio::time::timeout(CALL_SETUP_TIMEOUT, rx).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(reason))) => bail!("call {call_id}: {reason}"),
        Ok(Err(_)) => bail!("call {call_id}: softphone {index} went away"),
        Err(_) => bail!("call {call_id}: not bridged within {CALL_SETUP_TIMEOUT:?}"),
    }
}

/// Sends Twilio's first two messages on a new media stream, `connected` and `start`
/// (as https://www.twilio.com/docs/voice/media-streams/websocket-messages shows
/// them); returns the stream's SID.
pub(super) async fn start_stream(
    mut ws: WsClient,
    call_sid: &str,
    custom_parameters: serde_json::Value,
) -> anyhow::Result<(String, WsClient)> {
    let stream_sid = format!("MZ{}", uuid::Uuid::new_v4().simple());
    let connected = json!({ "event": "connected", "protocol": "Call", "version": "1.0.0" });
    let start = json!({
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": stream_sid,
        "start": {
            "accountSid": "AC00000000000000000000000000000000",
            "streamSid": stream_sid,
            "callSid": call_sid,
            "tracks": ["inbound"],
            "mediaFormat": { "encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1 },
            "customParameters": custom_parameters,
        },
    });
    ws.send(Message::Text(&connected.to_string())).await?;
    ws.send(Message::Text(&start.to_string())).await?;
    Ok((stream_sid, ws))
}

/// A call with no softphone (AI, or a peer relay) counts as bridged once its stream
/// has started; its Twilio stream task takes over.
fn stream_started(worker: &Rc<Worker>, index: usize, stream_sid: String, ws: WsClient) {
    let slot = worker.slot(index);
    slot.bridged.set(true);
    *slot.waiter.borrow_mut() = None;
    let task = actix_rt::spawn(twilio_stream(Rc::clone(worker), index, stream_sid, ws));
    worker.tasks.borrow_mut().push(task);
}

/// The (unescaped) attribute value that follows `marker` in a TwiML document.
pub(super) fn xml_attribute(twiml: &str, marker: &str) -> Option<String> {
    let start = twiml.find(marker)? + marker.len();
    let end = twiml[start..].find('"')? + start;
    quick_xml::escape::unescape(&twiml[start..end])
        .ok()
        .map(Cow::into_owned)
}

/// The controller has called the hang-up (a task may see a frame caused by it
/// before it sees the phase change itself).
pub(super) fn hanging_up(phases: &watch::Receiver<Phase>) -> bool {
    matches!(*phases.borrow(), Phase::Hangup)
}

pub(super) async fn next_tick(ticker: &mut Option<tokio::time::Interval>) -> tokio::time::Instant {
    match ticker {
        Some(ticker) => ticker.tick().await,
        None => std::future::pending().await,
    }
}

pub(super) async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// A call Twilio announced: its CallSid, and what the TwiML answered.
pub(crate) struct Announced {
    pub call_sid: String,
    pub call_id: String,
    pub stream_url: String,
}

/// Twilio's signed voice webhook for a new call from `from` to `to`, with
/// Twilio's usual fields; the engine's call id and stream URL from its TwiML.
pub(crate) async fn voice_webhook(
    client: &awc::Client,
    target: &Target,
    to: &str,
    from: &str,
) -> anyhow::Result<Announced> {
    let call_sid = format!("CA{}", uuid::Uuid::new_v4().simple());
    let params: Vec<(String, String)> = [
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", call_sid.as_str()),
        ("CallStatus", "ringing"),
        ("Called", to),
        ("Caller", from),
        ("Direction", "inbound"),
        ("From", from),
        ("To", to),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let url = format!("{}/twilio/voice", target.base);
    let signature = sign(&target.twilio_token, &url, &params);
    let mut res = client
        .post(&url)
        .insert_header(("X-Twilio-Signature", signature))
        .send_form(&params)
        .await
        .map_err(|e| anyhow::anyhow!("voice webhook: {e}"))?;
    let body = res.body().await?;
    let twiml = String::from_utf8_lossy(&body);
    anyhow::ensure!(
        res.status().is_success(),
        "voice webhook: {} {twiml}",
        res.status()
    );
    let call_id = xml_attribute(&twiml, r#"<Parameter name="call_id" value=""#)
        .with_context(|| format!("no call_id in {twiml}"))?;
    let stream_url = xml_attribute(&twiml, r#"<Stream url=""#)
        .with_context(|| format!("no stream url in {twiml}"))?;
    Ok(Announced {
        call_sid,
        call_id,
        stream_url,
    })
}
