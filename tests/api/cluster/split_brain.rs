//! Split brain (issue 16): a node cut off from Redis *and* from its peers, but
//! not from the database or from Twilio, still streams and records its calls.
//! The survivors see its membership key expire and its link drop, but its beat
//! count in the database still moves, so they do not end its calls as
//! `interrupted` while its callers talk; once it is really dead they do. A node
//! cut off from the database too is swept, and what it writes once it is back
//! is fenced out of the record the survivor closed.

use std::time::Duration;

use super::failover::assert_whole_trail;
use super::floor::{metric, ring_in, seats};
use super::{eventually, lists, redis_addr, wait_ready, TestCluster};
use crate::fault_proxy::FaultProxy;
use crate::helpers::{assert_bridged, free_port, Softphone, TwilioStream, TWILIO_TOKEN};

/// Two nodes where node 1 reaches Redis, its link to node 2 and (when
/// `database` is set) PostgreSQL each through a proxy the test can cut, and a
/// call node 1 owns, answered by agent 0-0 on node 1. The survivors' sweep would
/// end a dead node's calls after a second.
struct Split {
    cluster: TestCluster,
    redis: FaultProxy,
    link: FaultProxy,
    database: Option<FaultProxy>,
    phones: Vec<(usize, Softphone)>,
    call: String,
    twilio: TwilioStream,
}

async fn split(cut_database_too: bool) -> Split {
    // Node 1 dials the link (the lower id dials, at node 2's `SWITCHBOARD_NODE_URL`).
    let redis = FaultProxy::start(redis_addr()).await;
    let (port_one, port_two) = (free_port(), free_port());
    let link = FaultProxy::start(([127, 0, 0, 1], port_two).into()).await;
    let mut cluster =
        TestCluster::empty_with("resume_wait_secs = 1.0\nreap_interval_ms = 100").await;
    let database = match cut_database_too {
        true => Some(FaultProxy::start("127.0.0.1:5432".parse().expect("PostgreSQL")).await),
        false => None,
    };
    for (id, port) in [("node-1", port_one), ("node-2", port_two)] {
        let mut command = cluster.command(id, port);
        command
            .env("TWILIO_AUTH_TOKEN", TWILIO_TOKEN)
            .env("SWITCHBOARD_PUBLIC_URL", format!("http://127.0.0.1:{port}"));
        if id == "node-1" {
            command.env("REDIS_URL", format!("redis://{}", redis.addr));
            if let Some(database) = &database {
                assert!(cluster.database_url.contains("127.0.0.1:5432"));
                let via = cluster
                    .database_url
                    .replace("127.0.0.1:5432", &database.addr.to_string());
                command.env("DATABASE_URL", via);
            }
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
    let mut phones = seats(&cluster, 1).await;
    let (call, twilio) = ring_in(&cluster.nodes[0].url).await;
    phones[0].1.expect_ring(&call).await;
    phones[0].1.answer(&call);
    phones[0].1.expect("connected").await;
    Split {
        cluster,
        redis,
        link,
        database,
        phones,
        call,
        twilio,
    }
}

impl Split {
    /// Cuts node 1 off and waits until node 2 sees it gone from Redis and unlinked.
    async fn cut(&self) {
        self.redis.cut();
        self.link.cut();
        if let Some(database) = &self.database {
            database.cut();
        }
        let two = &self.cluster.nodes[1];
        two.until_members("node 1 gone from Redis", |m| lists(m, "node-1", false))
            .await;
        eventually(
            async || {
                (metric(&two.metrics().await, "switchboard_cluster_links") == 0.0).then_some(())
            },
            || "node 2 still linked to node 1".to_owned(),
        )
        .await;
    }

    /// The call's record once node 2 reads it ended.
    async fn ended_on_two(&self) -> serde_json::Value {
        let two = &self.cluster.nodes[1];
        eventually(
            async || {
                let (_, record) = two.get(&format!("/api/calls/{}", self.call)).await?;
                (!record["ended_at"].is_null()).then_some(record)
            },
            || "node 2 never ended node 1's call".to_owned(),
        )
        .await
    }
}

#[actix_web::test]
async fn a_node_cut_off_from_redis_and_its_peers_but_not_the_database_keeps_its_calls() {
    let mut split = split(false).await;
    split.cut().await;
    // Well past the resume wait, sweeping every 100 ms.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, record) = split.cluster.nodes[1]
        .get(&format!("/api/calls/{}", split.call))
        .await
        .expect("node 2 answers");
    assert!(record["ended_at"].is_null(), "swept while alive: {record}");
    assert_bridged(&mut split.twilio, &mut split.phones[0].1, 0x71).await;

    // Dead for real: its count stops, and node 2 ends the call.
    split.cluster.nodes[0].kill();
    let ended = split.ended_on_two().await;
    assert_eq!(ended["outcome"], "interrupted", "{ended}");
    split.cluster.shutdown().await;
}

#[actix_web::test]
async fn a_node_cut_off_from_the_database_too_is_swept_and_what_it_writes_when_back_is_fenced_out()
{
    let mut split = split(true).await;
    let one = &split.cluster.nodes[0];
    // The answer is in the record before the cut.
    eventually(
        async || {
            let (_, record) = one.get(&format!("/api/calls/{}", split.call)).await?;
            (!record["answered_at"].is_null()).then_some(())
        },
        || "the answer never reached the record".to_owned(),
    )
    .await;
    split.cut().await;
    // Node 1 cannot count its beat: node 2 ends its call.
    let swept = split.ended_on_two().await;
    assert_eq!(swept["outcome"], "interrupted", "{swept}");
    assert_eq!(swept["end_reason"], "node_failure", "{swept}");
    // Node 1 was only cut off: its caller and agent still talk, then the agent
    // hangs up. Its journal holds those entries until the database is back.
    assert_bridged(&mut split.twilio, &mut split.phones[0].1, 0x72).await;
    let agent = &mut split.phones[0].1;
    agent.send(serde_json::json!({ "type": "hangup", "call_id": split.call }));
    agent
        .wait_for("call_ended", |m| m["call_id"] == split.call.as_str())
        .await;
    let one = &split.cluster.nodes[0];
    split.database.as_ref().expect("a proxy").heal();
    split.redis.heal();
    eventually(
        async || {
            let backlog = metric(&one.metrics().await, "switchboard_journal_backlog");
            (backlog == 0.0).then_some(())
        },
        || format!("node 1's journal never caught up: {}", one.log()),
    )
    .await;
    // The record is the one node 2 closed: its `ended` last and once, the trail
    // whole, nothing of node 1's hang-up after it.
    let (_, record) = split.cluster.nodes[1]
        .get(&format!("/api/calls/{}", split.call))
        .await
        .expect("node 2 answers");
    assert_eq!(record["outcome"], "interrupted", "{record}");
    assert_eq!(record["ended_at"], swept["ended_at"], "{record}");
    assert_whole_trail(&record);
    let kinds: Vec<&str> = record["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "ended").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&"ended"), "{kinds:?}");
    let fenced = metric(&one.metrics().await, "switchboard_journal_fenced_total");
    assert!(fenced > 0.0, "nothing fenced");
    assert!(
        one.log().contains("left out"),
        "fenced {fenced} without a word"
    );
    split.cluster.shutdown().await;
}
