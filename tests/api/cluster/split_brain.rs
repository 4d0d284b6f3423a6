//! Split brain (issue 16): a node cut off from Redis *and* from its peers, but
//! not from the database or from Twilio, still streams and records its calls.
//! The survivors see its membership key expire and its link drop, but its beat
//! count in the database still moves, so they do not end its calls as
//! `interrupted` while its callers talk; once it is really dead they do.

use std::time::Duration;

use super::floor::{metric, ring_in, seats};
use super::{eventually, lists, redis_addr, wait_ready, TestCluster};
use crate::fault_proxy::FaultProxy;
use crate::helpers::{assert_bridged, free_port, TWILIO_TOKEN};

#[actix_web::test]
async fn a_node_cut_off_from_redis_and_its_peers_but_not_the_database_keeps_its_calls() {
    // Node 1 reaches Redis through one proxy, and node 2 through another (node
    // 1 dials the link: the lower id dials, at node 2's `SWITCHBOARD_NODE_URL`).
    let redis = FaultProxy::start(redis_addr()).await;
    let (port_one, port_two) = (free_port(), free_port());
    let link = FaultProxy::start(([127, 0, 0, 1], port_two).into()).await;
    // The survivors' sweep would end a dead node's calls after a second.
    let mut cluster =
        TestCluster::empty_with("resume_wait_secs = 1.0\nreap_interval_ms = 100").await;
    for (id, port) in [("node-1", port_one), ("node-2", port_two)] {
        let mut command = cluster.command(id, port);
        command
            .env("TWILIO_AUTH_TOKEN", TWILIO_TOKEN)
            .env("SWITCHBOARD_PUBLIC_URL", format!("http://127.0.0.1:{port}"));
        if id == "node-1" {
            command.env("REDIS_URL", format!("redis://{}", redis.addr));
        } else {
            command.env("SWITCHBOARD_NODE_URL", format!("http://{}", link.addr));
        }
        cluster.spawn_node(id, port, command);
    }
    for node in &cluster.nodes {
        wait_ready(node).await;
        eventually(
            async || {
                (metric(&node.metrics().await, "switchboard_cluster_links") == 1.0).then_some(())
            },
            || format!("node {} never linked: {}", node.id, node.log()),
        )
        .await;
    }
    // Agent 0-0 on node 1 answers a call node 1 owns.
    let mut phones = seats(&cluster, 1).await;
    let (call, mut twilio) = ring_in(&cluster.nodes[0].url).await;
    phones[0].1.expect_ring(&call).await;
    phones[0].1.answer(&call);
    phones[0].1.expect("connected").await;

    redis.cut();
    link.cut();
    let two = &cluster.nodes[1];
    two.until_members("node 1 gone from Redis", |m| lists(m, "node-1", false))
        .await;
    eventually(
        async || (metric(&two.metrics().await, "switchboard_cluster_links") == 0.0).then_some(()),
        || "node 2 still linked to node 1".to_owned(),
    )
    .await;
    // Well past the resume wait, sweeping every 100 ms.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, record) = two
        .get(&format!("/api/calls/{call}"))
        .await
        .expect("node 2 answers");
    assert!(record["ended_at"].is_null(), "swept while alive: {record}");
    assert_bridged(&mut twilio, &mut phones[0].1, 0x71).await;

    // Dead for real: its count stops, and node 2 ends the call.
    cluster.nodes[0].kill();
    let two = &cluster.nodes[1];
    let ended = eventually(
        async || {
            let (_, record) = two.get(&format!("/api/calls/{call}")).await?;
            (!record["ended_at"].is_null()).then_some(record)
        },
        || "node 2 never ended the dead node's call".to_owned(),
    )
    .await;
    assert_eq!(ended["outcome"], "interrupted", "{ended}");
    cluster.shutdown().await;
}
