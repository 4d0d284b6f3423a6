//! PostgreSQL unreachable (issue 16, bad input): every node's readiness fails,
//! calls in progress go on — across the node link too, parked on one node and
//! taken back on another —, new calls are still taken, each node's journal
//! holds what it could not write, and once the database answers again every
//! event of every call lands, in order, once.

use super::eventually;
use super::failover::{assert_whole_trail, until_call};
use super::floor::{metric, ring_in, seats, telephony_cluster};
use crate::db::set_postgres_reachable;
use crate::helpers::{assert_bridged, event_kinds};

#[actix_web::test]
async fn while_postgresql_is_unreachable_nodes_are_not_ready_calls_go_on_across_nodes_and_every_event_lands_after(
) {
    let cluster = telephony_cluster(2).await;
    let (one, two) = (&cluster.nodes[0], &cluster.nodes[1]);
    // Agent 0 on node 1, agent 1 on node 2.
    let mut phones = seats(&cluster, 1).await;
    let (first, mut first_twilio) = ring_in(&one.url).await;
    for (_, phone) in &mut phones {
        phone.expect_ring(&first).await;
    }
    phones[1].1.answer(&first);
    phones[1].1.expect("connected").await;
    phones[0].1.expect("ring_cancel").await;

    set_postgres_reachable(&cluster.database_url, false).await;
    for node in [one, two] {
        node.until_status("/readyz", 503).await;
    }
    // The agent on node 2 parks node 1's call; the agent on node 1 takes it.
    phones[1]
        .1
        .send(serde_json::json!({ "type": "park", "call_id": first }));
    phones[0]
        .1
        .wait_for("parked", |m| m["call_id"] == first.as_str())
        .await;
    phones[0]
        .1
        .send(serde_json::json!({ "type": "unpark", "call_id": first }));
    phones[0]
        .1
        .wait_for("connected", |m| m["call_id"] == first.as_str())
        .await;
    assert_bridged(&mut first_twilio, &mut phones[0].1, 0x71).await;
    // A new call is taken, rung across the link, answered and hung up.
    let (second, mut second_twilio) = ring_in(&one.url).await;
    phones[1].1.takes(&second).await;
    assert_bridged(&mut second_twilio, &mut phones[1].1, 0x72).await;
    phones[1]
        .1
        .send(serde_json::json!({ "type": "hangup", "call_id": second }));
    phones[1]
        .1
        .wait_for("call_ended", |m| m["call_id"] == second.as_str())
        .await;
    let backlog = metric(&one.metrics().await, "switchboard_journal_backlog");
    assert!(backlog > 0.0, "node 1 held nothing back: {backlog}");

    set_postgres_reachable(&cluster.database_url, true).await;
    for node in [one, two] {
        node.until_status("/readyz", 200).await;
    }
    eventually(
        async || (metric(&one.metrics().await, "switchboard_journal_backlog") == 0.0).then_some(()),
        || "node 1's journal never drained".to_owned(),
    )
    .await;
    // Read from the other node: it is all in the database.
    let first_record = until_call(two, &first, "parked and taken back", |c| {
        event_kinds(c).iter().any(|k| k == "unparked")
    })
    .await;
    let kinds = event_kinds(&first_record);
    for kind in ["claimed", "parked", "unparked"] {
        assert_eq!(
            kinds.iter().filter(|k| *k == kind).count(),
            1,
            "{kind} in {kinds:?}"
        );
    }
    assert!(first_record["ended_at"].is_null(), "{first_record}");
    assert_whole_trail(&first_record);
    let second_record = until_call(two, &second, "answered", |c| c["outcome"] == "answered").await;
    assert_whole_trail(&second_record);
    assert_eq!(
        event_kinds(&second_record).last().map(String::as_str),
        Some("ended"),
        "{second_record}"
    );
    assert_bridged(&mut first_twilio, &mut phones[0].1, 0x73).await;
    cluster.shutdown().await;
}
