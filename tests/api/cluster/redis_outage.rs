//! Redis unreachable (issue 16, bad input): media never goes through Redis, so a
//! call in progress keeps its audio across the node link; a node that cannot
//! reach Redis rings its own seats only and tells its consoles the floor is
//! partial; once Redis answers again rings reach every node, the floor is whole,
//! and what changed meanwhile is published. No claim is ever doubled: a claim is
//! decided in the owner's call, never in Redis.

use serde_json::Value;

use super::floor::{console, ring_in, seats, telephony_cluster_with, WORKSPACE};
use super::{eventually, lists, redis_addr};
use crate::fault_proxy::FaultProxy;
use crate::helpers::assert_bridged;

fn partial_for_redis(message: &Value) -> bool {
    message["partial"] == true
        && message["partial_reasons"]
            .as_array()
            .is_some_and(|reasons| reasons.iter().any(|r| r == "redis-unreachable"))
}

#[actix_web::test]
async fn while_redis_is_unreachable_a_node_keeps_its_calls_audio_rings_its_own_seats_and_says_the_floor_is_partial(
) {
    // Node 1 reaches Redis through a proxy the test cuts; node 2 directly.
    let proxy = FaultProxy::start(redis_addr()).await;
    let through = format!("redis://{}", proxy.addr);
    // The survivors' sweep would end a silent node's calls after a second.
    let sweep_soon = "resume_wait_secs = 1.0\nreap_interval_ms = 100";
    let cluster = telephony_cluster_with(2, sweep_soon, |id, command| {
        if id == "node-1" {
            command.env("REDIS_URL", &through);
        }
    })
    .await;
    let (one, two) = (&cluster.nodes[0], &cluster.nodes[1]);
    // Two agents on each node: 0 and 1 on node 1, 2 and 3 on node 2.
    let mut phones = seats(&cluster, 2).await;
    let (mut live, snapshot) = console(&one.url).await;
    assert_eq!(snapshot["partial"], false, "{snapshot}");
    assert_eq!(
        snapshot["partial_reasons"],
        serde_json::json!([]),
        "{snapshot}"
    );

    // A call node 1 owns, answered by an agent on node 2.
    let (first, mut first_twilio) = ring_in(&one.url).await;
    for (_, phone) in &mut phones {
        phone.expect_ring(&first).await;
    }
    phones[2].1.answer(&first);
    phones[2].1.expect("connected").await;
    for i in [0, 1, 3] {
        phones[i].1.expect("ring_cancel").await;
    }

    proxy.cut();
    let told = live.wait_for("floor", |m| m["partial"] == true).await;
    assert!(partial_for_redis(&told), "{told}");
    // Long enough that node 2 sees node 1's membership key expire, and sweeps
    // a few times past the resume wait: node 1 is still linked, so its calls
    // are not dead nodes' calls.
    two.until_members("node 1 gone", |m| lists(m, "node-1", false))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (_, record) = two
        .get(&format!("/api/calls/{first}"))
        .await
        .expect("node 2 answers");
    assert!(record["ended_at"].is_null(), "swept while alive: {record}");
    // The call's audio never went through Redis: it still flows both ways.
    assert_bridged(&mut first_twilio, &mut phones[2].1, 0x61).await;
    let (_, during) = console(&one.url).await;
    assert!(partial_for_redis(&during), "{during}");

    // A new call on node 1 rings node 1's free agents only, and one answer wins:
    // whichever reached the call first (the two sockets race).
    let (second, _second_twilio) = ring_in(&one.url).await;
    phones[0].1.expect_ring(&second).await;
    phones[1].1.expect_ring(&second).await;
    phones[0].1.answer(&second);
    phones[1].1.answer(&second);
    // The loser gets a `ring_cancel` and a `claim_lost`, in either order: both
    // are read here, so neither is taken for the next call's.
    let mut told = Vec::new();
    for (_, phone) in &mut phones[..2] {
        let (mut cancelled, mut lost) = (false, false);
        told.push(loop {
            let message = phone.next().await;
            let of_second = message["call_id"] == second.as_str();
            match message["type"].as_str() {
                Some("connected") => break true,
                Some("ring_cancel") if of_second => cancelled = true,
                Some("claim_lost") if of_second => lost = true,
                _ => {}
            }
            if cancelled && lost {
                break false;
            }
        });
    }
    let (won, lost) = match told[..] {
        [true, false] => (0, 1),
        [false, true] => (1, 0),
        _ => panic!("not exactly one winner of two answers: {told:?}"),
    };

    proxy.heal();
    let whole = live.wait_for("floor", |m| m["partial"] == false).await;
    assert_eq!(whole["partial_reasons"], serde_json::json!([]), "{whole}");
    two.until_members("node 1 back", |m| lists(m, "node-1", true))
        .await;
    // What changed on node 1 meanwhile reached Redis: node 2 sees the winner on
    // the second call.
    let winner = format!("agent 0-{won}");
    eventually(
        async || {
            let (_, body) = two
                .get(&format!("/api/cluster/seats?workspace={WORKSPACE}"))
                .await?;
            body["seats"]
                .as_array()?
                .iter()
                .any(|s| s["name"] == winner.as_str() && s["call_id"] == second.as_str())
                .then_some(())
        },
        || format!("node 2 never saw {winner} on the second call"),
    )
    .await;

    // Rings reach node 2 again: agent 3's next ring is the third call (it was
    // never rung for the second).
    let (third, mut third_twilio) = ring_in(&one.url).await;
    let ring = phones[3].1.wait_for("ring", |_| true).await;
    assert_eq!(ring["call_id"], third.as_str(), "{ring}");
    phones[lost].1.expect_ring(&third).await;
    phones[3].1.answer(&third);
    phones[3].1.expect("connected").await;
    phones[lost].1.expect("ring_cancel").await;
    assert_bridged(&mut third_twilio, &mut phones[3].1, 0x62).await;
    // The first call lived through it all: still bridged, never ended.
    assert_bridged(&mut first_twilio, &mut phones[2].1, 0x63).await;
    let (_, record) = one
        .get(&format!("/api/calls/{first}"))
        .await
        .expect("node 1 answers");
    assert!(record["ended_at"].is_null(), "{record}");
    cluster.shutdown().await;
}
