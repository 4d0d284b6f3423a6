//! `--scenario claim` (issue 16, docs/BENCHMARKS.md "Cluster mode"): the claim
//! path across the nodes of a cluster. `--seats` softphones, spread over
//! `--engine-url` and every `--agent-url` in turn, all `available` in one
//! workspace; `--rounds` calls, one at a time, placed on `--engine-url` (which owns
//! them) and rung to every seat. Once every seat has the ring, three seats on
//! consecutive nodes (so on three nodes when there are three) answer at once; the
//! generator times, from the first `answer` sent, the winner's `connected` and the
//! last `ring_cancel` the other seats get (every seat that does not win gets one,
//! docs/protocol.md). Then the winner hangs up and the next round waits until the
//! owner sees every seat free again.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::Serialize;
use serde_json::{json, Value};

use switchboard_wire::signature::sign;

use super::admin::{cluster_seats, create_agents, create_numbers, wait_healthy};
use super::controller::{progress, Target};
use super::histogram::Histogram;
use super::procfs::machine_ticks;
use super::worker::{start_stream, voice_webhook, Announced};
use super::ws::{Frame, Message, WsClient};
use super::{random_hex, LoadtestArgs, RingMode, HTTP_TIMEOUT, MAX_NOTES};

/// Seats that answer each call at once.
const ANSWERS: usize = 3;
/// A ring, a verdict or the seats' return that takes longer fails the round.
const ROUND_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize)]
pub(super) struct ClaimReport {
    pub(super) command: String,
    pub(super) engine_url: String,
    pub(super) agent_urls: Vec<String>,
    pub(super) seats: usize,
    /// Seats per node, in the order of `engine_url` then `agent_urls`.
    pub(super) seats_per_node: Vec<usize>,
    pub(super) answers_per_round: usize,
    pub(super) rounds_requested: usize,
    pub(super) rounds_measured: usize,
    pub(super) rounds_failed: usize,
    /// First `answer` sent → the winner's `connected`.
    pub(super) answer_to_connected: Latency,
    /// First `answer` sent → the last of the other seats' `ring_cancel`.
    pub(super) answer_to_last_ring_cancel: Latency,
    /// Rounds the winner was on another node than the call's owner.
    pub(super) remote_winner_rounds: usize,
    /// Rounds with more than one `connected` (never expected).
    pub(super) double_claims: usize,
    /// The machine's CPUs busy over the rounds (every process), of all CPUs.
    pub(super) machine_busy_pct: Option<f64>,
    pub(super) notes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct Latency {
    pub(super) count: u64,
    pub(super) p50_ms: f64,
    pub(super) p90_ms: f64,
    pub(super) p99_ms: f64,
    pub(super) max_ms: f64,
    pub(super) mean_ms: f64,
}

impl Latency {
    fn of(h: &Histogram) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            count: h.count(),
            p50_ms: ms(h.percentile(0.50)),
            p90_ms: ms(h.percentile(0.90)),
            p99_ms: ms(h.percentile(0.99)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        }
    }
}

struct Seat {
    /// Index into the nodes (`--engine-url` first).
    node: usize,
    ws: WsClient,
}

/// What one round measured.
struct Round {
    connected_us: u64,
    last_cancel_us: u64,
    winner_node: usize,
    winners: usize,
}

pub(super) async fn run(args: &LoadtestArgs) -> anyhow::Result<ClaimReport> {
    let url = args
        .engine_url
        .as_ref()
        .context("--scenario claim needs --engine-url")?;
    let target = Target::running(url, args)?;
    let client = awc::Client::builder().timeout(HTTP_TIMEOUT).finish();
    wait_healthy(&client, &target, None).await?;
    let mut nodes = vec![target.base.clone()];
    nodes.extend(target.agent_bases.iter().cloned());

    let workspace = format!("claim-{}", random_hex(4)?);
    let agents = create_agents(&client, &target, &vec![workspace.clone(); args.seats]).await?;
    let numbers = create_numbers(
        &client,
        &target,
        std::slice::from_ref(&workspace),
        &agents,
        RingMode::All,
    )
    .await?;
    let number = numbers.into_iter().next().context("no number")?;
    let mut seats = Vec::with_capacity(args.seats);
    for (i, agent) in agents.iter().enumerate() {
        let node = i % nodes.len();
        let ws = connect_seat(&target, i, &agent.token).await?;
        seats.push(Seat { node, ws });
    }
    progress(format_args!(
        "claim: {} seats on {} nodes, workspace {workspace}",
        seats.len(),
        nodes.len()
    ));
    wait_seats_free(&client, &target, &workspace, args.seats, &mut seats).await?;

    let mut connected = Histogram::default();
    let mut last_cancel = Histogram::default();
    let (mut failed, mut remote, mut doubles) = (0, 0, 0);
    let mut notes = Vec::new();
    let machine_before = machine_ticks();
    for round in 0..args.rounds {
        let outcome = async {
            let measured = one_round(&client, &target, &number, round, &mut seats).await?;
            wait_seats_free(&client, &target, &workspace, args.seats, &mut seats).await?;
            anyhow::Ok(measured)
        }
        .await;
        match outcome {
            Ok(r) => {
                connected.record(r.connected_us);
                last_cancel.record(r.last_cancel_us);
                remote += usize::from(r.winner_node != 0);
                doubles += usize::from(r.winners > 1);
            }
            Err(err) => {
                failed += 1;
                if notes.len() < MAX_NOTES {
                    notes.push(format!("round {round}: {err:#}"));
                }
                if failed > args.rounds / 10 + 3 {
                    bail!("too many failed rounds: {}", notes.join("; "));
                }
            }
        }
        if (round + 1) % 50 == 0 {
            progress(format_args!("claim: {} rounds", round + 1));
        }
    }
    let machine_after = machine_ticks();
    let machine_busy_pct = match (machine_before, machine_after) {
        (Some(b), Some(a)) if a.total > b.total => {
            Some(100.0 * (a.busy - b.busy) as f64 / (a.total - b.total) as f64)
        }
        _ => None,
    };
    for seat in &mut seats {
        let _ = seat.ws.send(Message::Close).await;
    }
    Ok(ClaimReport {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        engine_url: target.base.clone(),
        agent_urls: target.agent_bases.clone(),
        seats: args.seats,
        seats_per_node: (0..nodes.len())
            .map(|n| seats.iter().filter(|s| s.node == n).count())
            .collect(),
        answers_per_round: ANSWERS.min(args.seats),
        rounds_requested: args.rounds,
        rounds_measured: connected.count() as usize,
        rounds_failed: failed,
        answer_to_connected: Latency::of(&connected),
        answer_to_last_ring_cancel: Latency::of(&last_cancel),
        remote_winner_rounds: remote,
        double_claims: doubles,
        machine_busy_pct,
        notes,
    })
}

/// Softphone `index` on its node, `available` and acknowledged.
async fn connect_seat(target: &Target, index: usize, token: &str) -> anyhow::Result<WsClient> {
    let url = format!(
        "{}/ws/agent?token={token}",
        target.agent_ws_base_with_engine(index)
    );
    let mut ws = WsClient::connect(&url, &[])
        .await
        .with_context(|| format!("seat {index} at {url}"))?;
    ws.send(Message::Text(r#"{"type":"presence","status":"available"}"#))
        .await?;
    until_message(&mut ws, |m| m["type"] == "presence")
        .await
        .with_context(|| format!("seat {index}: no presence ack"))?;
    Ok(ws)
}

/// Reads `ws` (answering pings) until a text message `wanted` holds of; its time.
async fn until_message(
    ws: &mut WsClient,
    mut wanted: impl FnMut(&Value) -> bool,
) -> anyhow::Result<Instant> {
    let read = async {
        while let Some(frame) = ws.next().await {
            match frame? {
                Frame::Text(text) => {
                    let at = Instant::now();
                    if serde_json::from_slice::<Value>(&text).is_ok_and(|m| wanted(&m)) {
                        return Ok(at);
                    }
                }
                Frame::Ping(payload) => ws.send(Message::Pong(&payload)).await?,
                Frame::Close(reason) => bail!("closed by the engine: {reason:?}"),
                Frame::Binary(_) | Frame::Pong => {}
            }
        }
        bail!("the socket ended")
    };
    tokio::time::timeout(ROUND_TIMEOUT, read)
        .await
        .map_err(|_| anyhow::anyhow!("nothing within {ROUND_TIMEOUT:?}"))?
}

/// One call: the signed webhook on the owner, its media stream, the ring on every
/// seat, `ANSWERS` answers at once, the verdicts; then the hang-up.
async fn one_round(
    client: &awc::Client,
    target: &Target,
    number: &str,
    round: usize,
    seats: &mut [Seat],
) -> anyhow::Result<Round> {
    let from = format!("+1415555{:04}", round % 10_000);
    let Announced {
        call_sid,
        call_id,
        stream_url,
    } = voice_webhook(client, target, number, &from).await?;
    let signature = sign(&target.twilio_token, &stream_url, &[]);
    let ws = WsClient::connect(&stream_url, &[("X-Twilio-Signature", &signature)])
        .await
        .context("media stream")?;
    let (stream_sid, mut twilio) =
        start_stream(ws, &call_sid, json!({ "call_id": call_id })).await?;

    let of_call = |m: &Value, kind: &str| m["type"] == kind && m["call_id"] == call_id.as_str();
    let rung = futures_util::future::join_all(
        seats
            .iter_mut()
            .map(|seat| until_message(&mut seat.ws, |m| of_call(m, "ring"))),
    )
    .await;
    for (i, r) in rung.into_iter().enumerate() {
        r.with_context(|| format!("seat {i} was not rung"))?;
    }

    let n = seats.len();
    let answering: Vec<usize> = (0..ANSWERS.min(n)).map(|k| (round + k) % n).collect();
    let answer = json!({ "type": "answer", "call_id": call_id }).to_string();
    let t0 = Instant::now();
    for &i in &answering {
        seats[i].ws.send(Message::Text(&answer)).await?;
    }
    // Each seat's verdict: `connected`, or `ring_cancel` (every seat that does not
    // win gets exactly one, answered or not; a loser's `claim_lost` may come
    // either side of it).
    let verdicts = futures_util::future::join_all(seats.iter_mut().map(|seat| async {
        let mut kind = String::new();
        let at = until_message(&mut seat.ws, |m| {
            let hit = of_call(m, "connected") || of_call(m, "ring_cancel");
            if hit {
                kind = m["type"].as_str().unwrap_or_default().to_owned();
            }
            hit
        })
        .await;
        at.map(|at| (kind, at))
    }))
    .await;
    let (mut winner, mut winners, mut connected_at, mut last_cancel) = (None, 0, t0, t0);
    for (i, verdict) in verdicts.into_iter().enumerate() {
        let (kind, at) = verdict.with_context(|| format!("seat {i}: no verdict"))?;
        if kind == "connected" {
            winners += 1;
            winner = Some(i);
            connected_at = at;
        } else {
            last_cancel = last_cancel.max(at);
        }
    }
    let winner = winner.context("no seat connected")?;
    let us = |at: Instant| at.duration_since(t0).as_micros() as u64;
    let measured = Round {
        connected_us: us(connected_at),
        last_cancel_us: us(last_cancel),
        winner_node: seats[winner].node,
        winners,
    };

    let hangup = json!({ "type": "hangup", "call_id": call_id }).to_string();
    seats[winner].ws.send(Message::Text(&hangup)).await?;
    until_message(&mut seats[winner].ws, |m| of_call(m, "call_ended"))
        .await
        .context("the winner's call_ended")?;
    let stop = json!({ "event": "stop", "sequenceNumber": "2", "streamSid": stream_sid,
        "stop": { "accountSid": "AC00000000000000000000000000000000", "callSid": call_sid } });
    let _ = twilio.send(Message::Text(&stop.to_string())).await;
    let _ = twilio.send(Message::Close).await;
    Ok(measured)
}

/// Polls the owner's `/api/cluster/seats` until every seat of `workspace` is
/// available with no call (reading the seats' sockets meanwhile, so that what
/// the engine sends them does not pile up).
async fn wait_seats_free(
    client: &awc::Client,
    target: &Target,
    workspace: &str,
    seats_wanted: usize,
    seats: &mut [Seat],
) -> anyhow::Result<()> {
    let deadline = Instant::now() + ROUND_TIMEOUT;
    loop {
        let free = cluster_seats(client, target, workspace, |s| {
            s["presence"] == "available" && s["call_id"].is_null()
        })
        .await;
        if free == Some(seats_wanted) {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the seats of {workspace} never all came back free (last: {free:?} of {seats_wanted})"
        );
        drain(seats, Duration::from_millis(20)).await;
    }
}

/// Reads whatever the seats were sent for `within`, answering pings.
async fn drain(seats: &mut [Seat], within: Duration) {
    let _ = tokio::time::timeout(
        within,
        futures_util::future::join_all(seats.iter_mut().map(|seat| async {
            while let Some(Ok(frame)) = seat.ws.next().await {
                if let Frame::Ping(payload) = frame {
                    let _ = seat.ws.send(Message::Pong(&payload)).await;
                }
            }
        })),
    )
    .await;
}

pub(super) fn render_text(r: &ClaimReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "claim path: {}", r.command);
    let _ = writeln!(
        s,
        "  {} seats (per node {:?}: {} then {:?}), {} answers per call; {} of {} rounds measured, {} failed; winner on another node than the owner in {} rounds; double claims {}",
        r.seats,
        r.seats_per_node,
        r.engine_url,
        r.agent_urls,
        r.answers_per_round,
        r.rounds_measured,
        r.rounds_requested,
        r.rounds_failed,
        r.remote_winner_rounds,
        r.double_claims
    );
    for (name, l) in [
        ("answer → connected", &r.answer_to_connected),
        ("answer → last ring_cancel", &r.answer_to_last_ring_cancel),
    ] {
        let _ = writeln!(
            s,
            "  {name:<26} p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  mean {:.2} ms",
            l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms, l.mean_ms
        );
    }
    if let Some(busy) = r.machine_busy_pct {
        let _ = writeln!(s, "  machine busy over the rounds: {busy:.0} % of all CPUs");
    }
    for note in &r.notes {
        let _ = writeln!(s, "  note: {note}");
    }
    s
}
