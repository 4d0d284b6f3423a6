//! The failover benchmark (issue 16): how long a caller is without a stream when
//! the node that holds their call dies. Ignored by default; run it with
//!
//! ```sh
//! SWITCHBOARD_TEST_BIN=/path/to/switchboard \
//!   cargo test -q --test api cluster::failover_bench -- --ignored --nocapture --test-threads 1
//! ```
//!
//! One cluster of three nodes behind the test's balancer lives through 20 kills:
//! each round a caller talks with Ada on the oldest live node (the balancer sends
//! the call there), that node is killed (SIGKILL), Ada's softphone reconnects to
//! a survivor, and the fake Twilio follows the TwiML's `<Redirect>` through the
//! balancer to a survivor, as Twilio does. Then a fresh node replaces the dead
//! one, so every round starts from three nodes, and the next round kills the
//! next oldest — the way a real cluster lives: a node dies, the orchestrator
//! starts another, and the survivors carry the dead nodes' records (listed dead,
//! their calls adopted or ended) into the next failure. A fresh cluster per
//! round would measure the same path while starting three nodes and a database
//! per sample.
//!
//! Times are taken by the fake Twilio, from just before the kill:
//!
//! - **close**: Twilio sees the stream's socket close (the kernel closes it when
//!   the process dies);
//! - **resume**: the redirect's TwiML arrives (a survivor decided the owner is
//!   dead, adopted the call with the compare-and-set and answered
//!   `<Connect><Stream>` to itself);
//! - **stream**: the new media stream is open on the survivor (`connected` and
//!   `start` sent) — the figure the target is about;
//! - **first**: the engine's first message on the new stream (the adopted call's
//!   hold audio);
//! - **ring**: Ada, reconnected to a survivor, is rung for the call again (the
//!   re-offer).
//!
//! `ttl` is what was left of the owner's membership key (Redis `PTTL`) at the
//! kill: how long the survivors could not yet see it dead from Redis.
//!
//! Each round still checks correctness: the call is adopted by exactly one
//! survivor, on whose node URL the new stream is; Ada takes it back and the
//! audio goes both ways; the trail has one `node_failure`, one `ended`, and no
//! gap or duplicate. Nothing asserts how fast: figures are in docs/BENCHMARKS.md
//! ("Cluster mode (issue 16)").

use std::time::{Duration, Instant};

use deadpool_redis::redis;

use super::failover::{
    assert_whole_trail, available, count, number_for_everyone, stream_url, until_call,
};
use super::twilio_player::PlayedCall;
use super::{redis_connection, TestCluster, Timings};
use crate::helpers::{assert_bridged, CALLER, NUMBER};

const KILLS: usize = 20;
const NODES: usize = 3;

/// One of a sample's times.
type Field = fn(&Sample) -> Duration;

/// One kill's times, from just before the SIGKILL.
struct Sample {
    owner: String,
    adopter: String,
    ttl_left: Duration,
    close: Duration,
    resume: Duration,
    stream: Duration,
    first: Duration,
    ring: Duration,
}

#[actix_web::test]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn failover_time_over_20_kills_with_the_default_timings() {
    failover_bench(Timings::Defaults).await;
}

#[actix_web::test]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn failover_time_over_20_kills_with_the_test_timings() {
    failover_bench(Timings::Tests).await;
}

async fn failover_bench(timings: Timings) {
    let (mut cluster, balancer) = TestCluster::behind_a_balancer_timed(NODES, timings, "").await;
    let first = &cluster.nodes[0];
    let (_, token) = first.create_agent("Ada", "blue").await;
    number_for_everyone(first).await;
    let mut samples = Vec::new();
    for round in 1..=KILLS {
        let live: Vec<usize> = (0..cluster.nodes.len())
            .filter(|&i| !cluster.nodes[i].is_dead())
            .collect();
        assert_eq!(live.len(), NODES);
        let (owner_at, ada_at) = (live[0], live[1]);
        let owner = &cluster.nodes[owner_at];
        let owner_id = owner.id.clone();

        // Ada answers the caller on the owner.
        let mut phone = available(owner, &token).await;
        balancer.set_backends(&[&owner.url]);
        let (mut call, next) = PlayedCall::dial(&balancer.url, CALLER, NUMBER).await;
        let mut stream = next.stream();
        let call_id = call.call_id.clone();
        phone.takes(&call_id).await;
        assert_bridged(&mut stream, &mut phone, 1).await;

        // Redirects may reach any node now; the balancer skips the dead one
        // when it refuses the connection.
        let urls: Vec<&str> = live
            .iter()
            .map(|&i| cluster.nodes[i].url.as_str())
            .collect();
        balancer.set_backends(&urls);
        let ttl_left = ttl_left(&cluster, &owner_id);
        let killed = Instant::now();
        cluster.nodes[owner_at].kill();
        drop(phone);
        let survivor = &cluster.nodes[ada_at];

        let twilio = async {
            let _ = stream.closed().await;
            let closed = killed.elapsed();
            // The socket is closed already: Twilio goes on with the TwiML.
            let mut stream = call.after_drop(stream).await.stream();
            let started = killed.elapsed();
            let first = stream
                .next()
                .await
                .expect("the engine speaks on the new stream");
            (closed, started, killed.elapsed(), first, stream)
        };
        let agent = async {
            let mut phone = available(survivor, &token).await;
            phone
                .wait_for("ring", |r| r["call_id"] == call_id.as_str())
                .await;
            (killed.elapsed(), phone)
        };
        let ((close, stream_at, first_at, first_message, mut stream), (ring, mut phone)) =
            tokio::join!(twilio, agent);
        let resume = *call
            .redirected_at
            .last()
            .expect("the redirect was followed")
            - killed;
        assert!(first_message["event"].is_string(), "{first_message}");

        // Exactly one survivor adopted the call, and the new stream is on it.
        let adopters: Vec<usize> = live
            .iter()
            .copied()
            .filter(|&i| i != owner_at)
            .filter(|&i| adopted_in(&cluster.nodes[i].log(), &call_id))
            .collect();
        assert_eq!(adopters.len(), 1, "round {round}: {:?}", call.redirects);
        let adopter = &cluster.nodes[adopters[0]];
        assert_eq!(call.streams.last(), Some(&stream_url(adopter)));
        assert_eq!(call.redirects.len(), 1, "{:?}", call.redirects);

        // Ada takes it back; the caller hangs up; the trail is whole.
        phone.answer(&call_id);
        phone
            .wait_for("connected", |c| c["call_id"] == call_id.as_str())
            .await;
        assert_bridged(&mut stream, &mut phone, 2).await;
        stream.stop();
        let ended = until_call(adopter, &call_id, "ended", |c| c["ended_at"].is_string()).await;
        assert_eq!(count(&ended, "node_failure"), 1, "{ended}");
        assert_eq!(count(&ended, "ended"), 1, "{ended}");
        assert_eq!(ended["outcome"], "answered", "{ended}");
        assert_whole_trail(&ended);
        drop(phone);

        // A resume slower than the key's expiry plus half a second: what the
        // adopter logged about the call, to see where the time went.
        if resume > ttl_left + Duration::from_millis(500) {
            println!(
                "kill {round:>2}: slow resume; {}'s log of the call:",
                adopter.id
            );
            for line in adopter
                .log()
                .lines()
                .filter(|l| l.contains(call_id.as_str()))
            {
                println!("    {line}");
            }
        }
        let sample = Sample {
            owner: owner_id,
            adopter: adopter.id.clone(),
            ttl_left,
            close,
            resume,
            stream: stream_at,
            first: first_at,
            ring,
        };
        println!(
            "kill {round:>2}: {} → {}  ttl left {:>5} ms  close {:>5} ms  resume {:>5} ms  \
             stream {:>5} ms  first {:>5} ms ({})  ring {:>5} ms",
            sample.owner,
            sample.adopter,
            sample.ttl_left.as_millis(),
            sample.close.as_millis(),
            sample.resume.as_millis(),
            sample.stream.as_millis(),
            sample.first.as_millis(),
            first_message["event"].as_str().unwrap_or_default(),
            sample.ring.as_millis(),
        );
        samples.push(sample);

        // A fresh node replaces the dead one.
        cluster.add_nodes(1).await;
        let urls: Vec<&str> = cluster
            .nodes
            .iter()
            .filter(|n| !n.is_dead())
            .map(|n| n.url.as_str())
            .collect();
        balancer.set_backends(&urls);
    }

    println!(
        "\nfailover over {KILLS} kills ({timings:?} timings), ms from the SIGKILL; \
         nearest rank, so with {KILLS} samples p99 is the largest:"
    );
    println!(
        "{:<34} {:>6} {:>6} {:>6} {:>6}",
        "", "p50", "p99", "min", "max"
    );
    let rows: [(&str, Field); 7] = [
        ("membership key left (PTTL)", |s| s.ttl_left),
        ("Twilio sees the stream close", |s| s.close),
        ("the resume answers (adopted)", |s| s.resume),
        ("  of which after the key expired", |s| {
            s.resume.saturating_sub(s.ttl_left)
        }),
        ("new stream open on a survivor", |s| s.stream),
        ("engine's first message on it", |s| s.first),
        ("Ada rung again (re-offer)", |s| s.ring),
    ];
    for (name, field) in rows {
        let mut ms: Vec<u128> = samples.iter().map(|s| field(s).as_millis()).collect();
        ms.sort_unstable();
        println!(
            "{name:<34} {:>6} {:>6} {:>6} {:>6}",
            rank(&ms, 50),
            rank(&ms, 99),
            ms[0],
            ms[ms.len() - 1]
        );
    }
    cluster.shutdown().await;
}

/// The nearest-rank `p`th percentile of sorted `ms`.
fn rank(ms: &[u128], p: usize) -> u128 {
    let at = (p * ms.len()).div_ceil(100).max(1);
    ms[at - 1]
}

/// What is left of node `id`'s membership key (Redis `PTTL`).
fn ttl_left(cluster: &TestCluster, id: &str) -> Duration {
    let left: i64 = redis::cmd("PTTL")
        .arg(format!("{}node:{id}", cluster.prefix))
        .query(&mut redis_connection())
        .expect("PTTL");
    assert!(left >= 0, "node {id}'s membership key has no TTL ({left})");
    Duration::from_millis(left as u64)
}

/// Whether a node's log says it adopted call `call_id`.
fn adopted_in(log: &str, call_id: &str) -> bool {
    log.lines()
        .any(|line| line.contains("adopted a call") && line.contains(call_id))
}

#[test]
fn nearest_rank_of_20_samples() {
    let ms: Vec<u128> = (1..=20).collect();
    assert_eq!((rank(&ms, 50), rank(&ms, 99), rank(&ms, 100)), (10, 20, 20));
}
