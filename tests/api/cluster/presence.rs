//! One floor, first half (issue 16, item 3): a node publishes its seats to Redis
//! (a hash per workspace and a channel of changes), and any node lists the seats
//! of every live node.

use deadpool_redis::redis;
use futures_util::StreamExt as _;
use serde_json::{json, Value};

use super::{redis_url, spawn_cluster, Node, TestCluster};

/// The seats `node` lists once `done` holds of them.
async fn until_seats(node: &Node, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let last = std::cell::RefCell::new(Value::Null);
    super::eventually(
        async || {
            let (status, body) = node.get("/api/cluster/seats?workspace=blue").await?;
            assert_eq!(status, 200, "{body}");
            let seats = body["seats"].as_array().cloned().unwrap_or_default();
            *last.borrow_mut() = body;
            done(&seats).then_some(seats)
        },
        || format!("node {} never listed {what}: {}", node.id, last.borrow()),
    )
    .await
}

fn seat<'a>(seats: &'a [Value], agent: &str) -> Option<&'a Value> {
    seats.iter().find(|s| s["agent_id"] == agent)
}

#[actix_web::test]
async fn a_seat_on_one_node_is_listed_by_every_node_with_its_presence_and_goes_with_its_node() {
    let mut cluster = spawn_cluster(3).await;
    let mut changes = redis::Client::open(redis_url())
        .expect("a Redis URL")
        .get_async_pubsub()
        .await
        .expect("a subscription");
    changes
        .subscribe(format!("{}presence", cluster.prefix))
        .await
        .expect("subscribed");
    let (ada, ada_token) = cluster.node("node-1").create_agent("Ada", "blue").await;
    let (bob, bob_token) = cluster.node("node-1").create_agent("Bob", "blue").await;
    // Ada on node 2, Bob on node 3; both visible from node 1, which has no seat.
    let ada_phone = cluster.node("node-2").softphone(&ada_token).await;
    let bob_phone = cluster.node("node-3").softphone(&bob_token).await;
    ada_phone.send(json!({"type": "presence", "status": "available"}));
    bob_phone.send(json!({"type": "presence", "status": "away"}));
    for node in &cluster.nodes {
        let seats = until_seats(node, "Ada available and Bob away", |seats| {
            seat(seats, &ada).is_some_and(|s| s["presence"] == "available")
                && seat(seats, &bob).is_some_and(|s| s["presence"] == "away")
        })
        .await;
        assert_eq!(seats.len(), 2, "{seats:?}");
        let ada_seat = seat(&seats, &ada).expect("Ada");
        assert_eq!(ada_seat["node"], "node-2", "{ada_seat}");
        assert_eq!(ada_seat["name"], "Ada", "{ada_seat}");
        assert_eq!(ada_seat["workspace"], "blue", "{ada_seat}");
        assert_eq!(seat(&seats, &bob).expect("Bob")["node"], "node-3");
    }
    // Each change went out on the channel too, as the node wrote it.
    let mut messages = changes.on_message();
    loop {
        let message = messages.next().await.expect("a presence change");
        let payload: String = message.get_payload().expect("text");
        let change: Value = serde_json::from_str(&payload).expect("JSON");
        if change["kind"] == "seat"
            && change["agent_id"] == ada.as_str()
            && change["presence"] == "available"
        {
            assert_eq!(change["node"], "node-2", "{change}");
            break;
        }
    }
    drop(messages);

    // Bob hangs up his softphone: his seat is gone everywhere.
    drop(bob_phone);
    until_seats(cluster.node("node-1"), "Bob gone", |seats| {
        seat(seats, &bob).is_none() && seat(seats, &ada).is_some()
    })
    .await;
    // Node 2 dies: Ada's seat goes with it once its membership key expires.
    cluster.node_mut("node-2").kill();
    until_seats(
        cluster.node("node-3"),
        "no seat of the dead node",
        |seats| seats.is_empty(),
    )
    .await;
    drop(ada_phone);
    cluster.shutdown().await;
}

#[actix_web::test]
async fn a_presence_change_made_while_redis_was_unreachable_is_published_once_it_is_back() {
    let (mut cluster, proxy) = TestCluster::behind_a_redis_proxy("node-1").await;
    super::wait_ready(cluster.node("node-1")).await;
    cluster.add_nodes(1).await;
    let (ada, token) = cluster.node("node-1").create_agent("Ada", "blue").await;
    let mut phone = cluster.node("node-1").softphone(&token).await;
    phone.send(json!({"type": "presence", "status": "available"}));
    let observer = cluster.node("node-2");
    until_seats(observer, "Ada available on node 1", |seats| {
        seat(seats, &ada).is_some_and(|s| s["presence"] == "available" && s["node"] == "node-1")
    })
    .await;

    proxy.cut();
    cluster.node("node-1").until_status("/readyz", 503).await;
    phone.send(json!({"type": "presence", "status": "away"}));
    phone
        .wait_for("presence", |ack| ack["status"] == "away")
        .await;
    proxy.heal();
    until_seats(
        observer,
        "Ada away, republished after the outage",
        |seats| seat(seats, &ada).is_some_and(|s| s["presence"] == "away" && s["node"] == "node-1"),
    )
    .await;
    drop(phone);
    cluster.shutdown().await;
}
