//! Criterion benches of the engine's two hot paths: the claim (50 seats ring, all 50
//! answer, one wins, 49 are cancelled) and the media relay (Twilio media JSON in →
//! softphone frame out, and back), plus the outbox alone.
//!
//! Actors live on an actix `System` on its own thread (`EngineThread`); criterion's
//! thread sends it jobs and gets back the time they took (`iter_custom`), so only the
//! measured part is timed. The claim bench also keeps every round's time and prints
//! p50/p99/max at the end: the target is a p99, which criterion does not report.
//!
//! Run: `cargo bench --bench engine` (about two minutes); see docs/BENCHMARKS.md.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput};
use futures_util::Stream;
use switchboard::twilio::stream::{self, TwilioWire};
use switchboard_actors::call::{CallActor, CallConfig, CallDeps, CallHandle, CallSetup};
use switchboard_actors::coordinator::CoordinatorHandle;
use switchboard_actors::dtmf::{Dtmf, DtmfTiming, DTMF};
use switchboard_actors::framebuf::FrameBuf;
use switchboard_actors::journal::{Journal, JournalEntry};
use switchboard_actors::leg::{LegControl, LegHandle, LegInput, MediaLeg};
use switchboard_actors::number::Route;
use switchboard_actors::outbox::{Outbox, OutboxLimits, Outgoing};
use switchboard_actors::parking::ParkingHandle;
use switchboard_actors::registry::RegistryHandle;
use switchboard_actors::seat::{
    Presence, SeatActor, SeatCommand, SeatConfig, SeatInput, SeatOutput, SeatSetup,
};
use switchboard_actors::stats::EngineStats;
use switchboard_actors::{AgentId, CallId, Workspace};
use tokio::sync::mpsc;

/// Seats rung by every call of the claim bench (the target is stated for 50).
const SEATS: usize = 50;
/// Frames per burst in the pipelined relay bench (below the 50-frame audio bound).
const BURST: usize = 32;
/// Heartbeats are not what is measured: no seat times out between benches; no
/// wrap-up time, so the winner of one round is rung again in the next.
fn quiet_seats() -> SeatConfig {
    SeatConfig {
        heartbeat_interval: Duration::from_secs(3600),
        client_timeout: Duration::from_secs(7200),
        wrap_up: Duration::ZERO,
        ..SeatConfig::default()
    }
}

// ---- the actor side ------------------------------------------------------------

/// Counts entries and drops them: a `MemoryJournal` would grow by ~10 entries per
/// call for the whole run and skew later rounds. Entries are still built, as in the
/// engine.
#[derive(Default)]
struct CountingJournal(AtomicU64);

impl Journal for CountingJournal {
    fn append(&self, _entry: JournalEntry) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// An unbounded channel as an actor's input stream (what a socket is to a seat).
fn input<T: 'static>(rx: mpsc::UnboundedReceiver<T>) -> impl Stream<Item = T> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) })
}

/// Waits for the next control message that `pick` accepts, skipping the rest.
async fn wait_for<T>(
    outbox: &Outbox<SeatOutput>,
    mut pick: impl FnMut(&SeatOutput) -> Option<T>,
) -> T {
    loop {
        match outbox.next().await {
            Some(Outgoing::Control(message)) => {
                if let Some(found) = pick(&message) {
                    return found;
                }
            }
            Some(_) => {}
            None => panic!("a seat's outbox closed during the bench"),
        }
    }
}

struct Seat {
    input: mpsc::UnboundedSender<SeatInput>,
    outbox: Outbox<SeatOutput>,
}

/// Seats of one workspace, every one available, and what a call needs.
struct Floor {
    deps: CallDeps,
    workspace: Workspace,
    stats: Arc<EngineStats>,
    seats: Vec<Seat>,
}

impl Floor {
    async fn new(seats: usize, config: CallConfig) -> Floor {
        let stats = Arc::new(EngineStats::default());
        let coordinator = CoordinatorHandle::start();
        let parking = ParkingHandle::start();
        let deps = CallDeps {
            coordinator: coordinator.clone(),
            registry: RegistryHandle::start(),
            parking: parking.clone(),
            journal: Arc::new(CountingJournal::default()),
            config: Arc::new(config),
            stats: Arc::clone(&stats),
            hooks: None,
        };
        let workspace = Workspace::parse("bench").expect("a valid workspace");
        let mut floor = Vec::with_capacity(seats);
        for _ in 0..seats {
            let (tx, rx) = mpsc::unbounded_channel();
            let outbox = Outbox::new(OutboxLimits::default(), Arc::clone(&stats));
            SeatActor::start(
                SeatSetup {
                    agent_id: AgentId::new(),
                    name: "bench".into(),
                    workspace: workspace.clone(),
                    outbox: outbox.clone(),
                    coordinator: coordinator.clone(),
                    parking: parking.clone(),
                    config: quiet_seats(),
                    stats: Arc::clone(&stats),
                },
                input(rx),
            );
            let available = SeatCommand::Presence {
                status: Presence::Available,
            };
            tx.send(SeatInput::Command(available))
                .expect("the seat is running");
            floor.push(Seat { input: tx, outbox });
        }
        for seat in &floor {
            wait_for(&seat.outbox, |m| {
                matches!(
                    m,
                    SeatOutput::Presence {
                        status: Presence::Available,
                        ..
                    }
                )
                .then_some(())
            })
            .await;
        }
        // The coordinator has every presence once it answers a later message.
        coordinator.seats().await.expect("the coordinator answers");
        Floor {
            deps,
            workspace,
            stats,
            seats: floor,
        }
    }

    /// A call with its caller leg attached: every available seat is being rung.
    async fn ring(
        &self,
    ) -> (
        CallHandle,
        Outbox<LegControl>,
        mpsc::UnboundedSender<LegInput>,
    ) {
        let call = CallActor::launch(
            CallSetup {
                id: CallId::new(),
                call_sid: None,
                from: "+14155559876".into(),
                to: "+14155550100".into(),
                workspace: self.workspace.clone(),
                route: Route::Agents {
                    agent_ids: Vec::new(),
                },
                raw: None,
                direction: "inbound",
            },
            self.deps.clone(),
        );
        let (leg_tx, leg_rx) = mpsc::unbounded_channel();
        let leg_outbox = Outbox::new(OutboxLimits::default(), Arc::clone(&self.stats));
        let leg = MediaLeg::start(
            call.clone(),
            leg_outbox.clone(),
            Arc::clone(&self.stats),
            input(leg_rx),
        );
        call.attach(LegHandle {
            addr: leg,
            outbox: leg_outbox.clone(),
            stream_sid: "MZbench".into(),
            arbiter: actix::Arbiter::current(),
        })
        .await
        .expect("the call takes its caller leg");
        let call_id = call.id().clone();
        for seat in &self.seats {
            wait_for(&seat.outbox, |m| {
                matches!(m, SeatOutput::Ring(ring) if ring.call_id == call_id).then_some(())
            })
            .await;
        }
        (call, leg_outbox, leg_tx)
    }

    /// Every seat answers at once. Returns the winner and the time from the answers
    /// to the last loser's `ring_cancel`.
    async fn claim(&self, call: &CallHandle) -> (usize, Duration) {
        let started = Instant::now();
        for seat in &self.seats {
            let answer = SeatCommand::Answer {
                call_id: call.id().clone(),
            };
            seat.input
                .send(SeatInput::Command(answer))
                .expect("the seat is running");
        }
        let outcomes = futures_util::future::join_all(self.seats.iter().map(|seat| async {
            let won = wait_for(&seat.outbox, |m| match m {
                SeatOutput::Connected { .. } => Some(true),
                SeatOutput::RingCancel { .. } => Some(false),
                _ => None,
            })
            .await;
            (won, Instant::now())
        }))
        .await;
        let winners: Vec<usize> = (0..outcomes.len()).filter(|&i| outcomes[i].0).collect();
        assert_eq!(winners.len(), 1, "exactly one answer wins");
        let last_cancel = outcomes
            .iter()
            .filter(|(won, _)| !won)
            .map(|(_, at)| *at)
            .max()
            .unwrap_or(started);
        (winners[0], last_cancel - started)
    }

    /// One full claim round, the call hung up afterwards; returns the timed part.
    async fn claim_round(&self) -> Duration {
        let (call, _leg_outbox, leg_tx) = self.ring().await;
        let (winner, elapsed) = self.claim(&call).await;
        leg_tx.send(LegInput::Stop).expect("the leg is running");
        wait_for(&self.seats[winner].outbox, |m| {
            matches!(m, SeatOutput::CallEnded { .. }).then_some(())
        })
        .await;
        elapsed
    }
}

/// One bridged call kept up for the relay benches.
struct Bridge {
    leg_input: mpsc::UnboundedSender<LegInput>,
    leg_outbox: Outbox<LegControl>,
    seat_input: mpsc::UnboundedSender<SeatInput>,
    seat_outbox: Outbox<SeatOutput>,
    _floor: Floor,
}

impl Bridge {
    async fn new() -> Bridge {
        let floor = Floor::new(1, CallConfig::default()).await;
        let (call, leg_outbox, leg_input) = floor.ring().await;
        floor.claim(&call).await;
        // Let the route reach the leg, and drain ringback, before measuring.
        tokio::time::sleep(Duration::from_millis(50)).await;
        while leg_outbox.try_next().is_some() {}
        let seat = &floor.seats[0];
        while seat.outbox.try_next().is_some() {}
        Bridge {
            leg_input,
            leg_outbox,
            seat_input: seat.input.clone(),
            seat_outbox: seat.outbox.clone(),
            _floor: floor,
        }
    }

    /// `frames` caller frames into the leg, `burst` at a time, each burst awaited
    /// at the softphone's outbox.
    async fn caller_to_agent(&self, frames: u64, burst: usize) -> Duration {
        relay_frames(frames, burst, &self.seat_outbox, "softphone", |frame| {
            let _ = self.leg_input.send(LegInput::Media(frame));
        })
        .await
    }

    async fn agent_to_caller(&self, frames: u64, burst: usize) -> Duration {
        relay_frames(frames, burst, &self.leg_outbox, "caller", |frame| {
            let _ = self.seat_input.send(SeatInput::Audio(frame));
        })
        .await
    }
}

/// Feeds `frames` frames in through `send`, `burst` at a time, awaiting each burst
/// at `outbox` (the other side's socket).
async fn relay_frames<C>(
    frames: u64,
    burst: usize,
    outbox: &Outbox<C>,
    side: &str,
    send: impl Fn(Bytes),
) -> Duration {
    let frame = Bytes::from_static(&[0x7F; 160]);
    let started = Instant::now();
    let mut left = frames;
    while left > 0 {
        let n = left.min(burst as u64);
        for _ in 0..n {
            send(frame.clone());
        }
        let mut got = 0;
        while got < n {
            match outbox.next().await {
                Some(Outgoing::Audio(_)) => got += 1,
                Some(_) => {}
                None => panic!("the {side} outbox closed"),
            }
        }
        left -= n;
    }
    started.elapsed()
}

enum Job {
    Claims {
        rounds: u64,
        reply: std::sync::mpsc::Sender<Duration>,
    },
    Relay {
        caller_to_agent: bool,
        frames: u64,
        burst: usize,
        reply: std::sync::mpsc::Sender<Duration>,
    },
    ClaimSamples {
        reply: std::sync::mpsc::Sender<Vec<Duration>>,
    },
}

/// The actix `System` thread where the actors live.
struct EngineThread {
    jobs: mpsc::UnboundedSender<Job>,
}

impl EngineThread {
    fn start() -> EngineThread {
        let (jobs, mut rx) = mpsc::unbounded_channel::<Job>();
        std::thread::Builder::new()
            .name("bench-actors".into())
            .spawn(move || {
                actix_rt::System::new().block_on(async move {
                    let floor = Floor::new(SEATS, CallConfig::default()).await;
                    let bridge = Bridge::new().await;
                    let mut samples = Vec::new();
                    while let Some(job) = rx.recv().await {
                        match job {
                            Job::Claims { rounds, reply } => {
                                let mut total = Duration::ZERO;
                                for _ in 0..rounds {
                                    let elapsed = floor.claim_round().await;
                                    samples.push(elapsed);
                                    total += elapsed;
                                }
                                let _ = reply.send(total);
                            }
                            Job::Relay {
                                caller_to_agent,
                                frames,
                                burst,
                                reply,
                            } => {
                                let elapsed = if caller_to_agent {
                                    bridge.caller_to_agent(frames, burst).await
                                } else {
                                    bridge.agent_to_caller(frames, burst).await
                                };
                                let _ = reply.send(elapsed);
                            }
                            Job::ClaimSamples { reply } => {
                                let _ = reply.send(std::mem::take(&mut samples));
                            }
                        }
                    }
                })
            })
            .expect("the actor thread starts");
        EngineThread { jobs }
    }

    fn run<T>(&self, job: impl FnOnce(std::sync::mpsc::Sender<T>) -> Job) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        self.jobs
            .send(job(tx))
            .expect("the actor thread is running");
        rx.recv().expect("the actor thread answers")
    }
}

// ---- the benches ---------------------------------------------------------------

fn claim(c: &mut Criterion, engine: &EngineThread) {
    let mut group = c.benchmark_group("claim");
    group.sample_size(20);
    group.bench_function(
        BenchmarkId::new("answers_to_last_ring_cancel", format!("{SEATS}_seats")),
        |b| b.iter_custom(|rounds| engine.run(|reply| Job::Claims { rounds, reply })),
    );
    group.finish();
}

/// A Twilio `media` message as Twilio sends it, 20 ms of audio.
fn twilio_media_json() -> String {
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::STANDARD.encode([0x7Fu8; 160]);
    format!(
        r#"{{"event":"media","sequenceNumber":"4711","media":{{"track":"inbound","chunk":"4710","timestamp":"94200","payload":"{payload}"}},"streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0"}}"#
    )
}

fn media(c: &mut Criterion) {
    let stats = Arc::new(EngineStats::default());
    let text = twilio_media_json();
    let mut group = c.benchmark_group("media");
    group.throughput(Throughput::Elements(1));
    // What the stream adapter does with every text frame after `start`.
    let mut buf = FrameBuf::new();
    group.bench_function("decode_twilio_media_json", |b| {
        b.iter(|| stream::parse(std::hint::black_box(&text), &mut buf))
    });
    // The caller→agent path minus the sockets and the actor hop: parse, queue on
    // the softphone's outbox, take it off as the binary frame the writer sends.
    let seat_outbox: Outbox<SeatOutput> = Outbox::new(OutboxLimits::default(), Arc::clone(&stats));
    group.bench_function("twilio_json_in_to_softphone_frame_out", |b| {
        b.iter(|| {
            let Some(LegInput::Media(frame)) = stream::parse(std::hint::black_box(&text), &mut buf)
            else {
                unreachable!("a media message is media")
            };
            seat_outbox.send_audio(frame);
            match seat_outbox.try_next() {
                Some(Outgoing::Audio(frame)) => frame,
                _ => unreachable!("one frame in, one frame out"),
            }
        })
    });
    // The agent→caller path likewise: queue on the leg's outbox, render Twilio JSON.
    let leg_outbox: Outbox<LegControl> = Outbox::new(OutboxLimits::default(), Arc::clone(&stats));
    let mut wire = TwilioWire::new("MZ18ad3ab5a668481ce02b83e7395059f0".into());
    let frame = Bytes::from_static(&[0x7F; 160]);
    group.bench_function("softphone_frame_in_to_twilio_json_out", |b| {
        b.iter(|| {
            leg_outbox.send_audio(std::hint::black_box(frame.clone()));
            match leg_outbox.try_next() {
                Some(Outgoing::Audio(frame)) => wire.media(&frame),
                _ => unreachable!("one frame in, one frame out"),
            }
        })
    });
    group.finish();
}

fn outbox(c: &mut Criterion) {
    let stats = Arc::new(EngineStats::default());
    let frame = Bytes::from_static(&[0x7F; 160]);
    let mut group = c.benchmark_group("outbox");
    group.throughput(Throughput::Elements(1));
    let outbox: Outbox<SeatOutput> = Outbox::new(OutboxLimits::default(), Arc::clone(&stats));
    group.bench_function("push_pop_audio", |b| {
        b.iter(|| {
            outbox.send_audio(frame.clone());
            outbox.try_next()
        })
    });
    // A slow peer: the lane is full, every push drops the oldest frame.
    let full: Outbox<SeatOutput> = Outbox::new(OutboxLimits::default(), Arc::clone(&stats));
    for _ in 0..OutboxLimits::default().audio_frames {
        full.send_audio(frame.clone());
    }
    group.bench_function("push_audio_full_drop_oldest", |b| {
        b.iter(|| full.send_audio(frame.clone()))
    });
    group.finish();
}

fn dtmf(c: &mut Criterion) {
    let mut group = c.benchmark_group("dtmf");
    // What `PlayDigits` does per command: ten digits as shared 20 ms frames.
    group.bench_function("frames_for_10_digits", |b| {
        b.iter(|| DTMF.frames(std::hint::black_box("555123456#")))
    });
    // Rendering every digit's tone once (per timing; the default is rendered once).
    group.bench_function("render_16_tones", |b| {
        b.iter(|| Dtmf::new(std::hint::black_box(DtmfTiming::default())))
    });
    group.finish();
}

fn relay(c: &mut Criterion, engine: &EngineThread) {
    let mut group = c.benchmark_group("relay_through_actors");
    group.throughput(Throughput::Elements(1));
    for (name, caller_to_agent) in [("caller_to_agent", true), ("agent_to_caller", false)] {
        for burst in [1, BURST] {
            group.bench_function(BenchmarkId::new(name, format!("burst_{burst}")), |b| {
                b.iter_custom(|frames| {
                    engine.run(|reply| Job::Relay {
                        caller_to_agent,
                        frames,
                        burst,
                        reply,
                    })
                })
            });
        }
    }
    group.finish();
}

fn print_claim_percentiles(engine: &EngineThread) {
    let mut samples = engine.run(|reply| Job::ClaimSamples { reply });
    if samples.is_empty() {
        return;
    }
    samples.sort();
    let at =
        |q: f64| samples[((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1];
    println!(
        "claim/answers_to_last_ring_cancel/{SEATS}_seats over {} rounds (warm-up included): \
         p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        samples.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        samples[samples.len() - 1]
    );
}

fn main() {
    let engine = EngineThread::start();
    let mut criterion = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    claim(&mut criterion, &engine);
    media(&mut criterion);
    outbox(&mut criterion);
    dtmf(&mut criterion);
    relay(&mut criterion, &engine);
    criterion.final_summary();
    print_claim_percentiles(&engine);
}
