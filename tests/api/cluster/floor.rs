//! One floor across nodes (issue 16, items 2–4): a call owned by one node rings
//! the available agents of its workspace on every node, an answer from any node is
//! a claim in the owner's call (exactly one wins), and the winner's audio crosses
//! the node link byte-exact both ways. Node links refuse a wrong secret.

use serde_json::{json, Value};
use switchboard::cluster::link::handshake;
use switchboard::twilio::signature::sign;

use super::{eventually, wait_ready, TestCluster};
use crate::helpers::{
    assert_bridged, free_port, stream_parameter, Softphone, TwilioStream, ADMIN_TOKEN, CALLER,
    NUMBER, PATIENCE, TWILIO_TOKEN,
};

pub(super) const WORKSPACE: &str = "floor";

/// `n` nodes that take Twilio's signed webhooks (each its own public URL), with
/// every link up.
pub(super) async fn telephony_cluster(n: usize) -> TestCluster {
    telephony_cluster_with(n, "", |_, _| {}).await
}

/// [`telephony_cluster`], with `cluster_toml` added to the nodes' `[cluster]`
/// section and each node's command changed by `adjust` (given the node's id)
/// before it is spawned.
pub(super) async fn telephony_cluster_with(
    n: usize,
    cluster_toml: &str,
    adjust: impl Fn(&str, &mut std::process::Command),
) -> TestCluster {
    let mut cluster = TestCluster::empty_with(cluster_toml).await;
    for k in 1..=n {
        let id = format!("node-{k}");
        let port = free_port();
        let mut command = cluster.command(&id, port);
        command
            .env("TWILIO_AUTH_TOKEN", TWILIO_TOKEN)
            .env("SWITCHBOARD_PUBLIC_URL", format!("http://127.0.0.1:{port}"));
        adjust(&id, &mut command);
        cluster.spawn_node(&id, port, command);
    }
    for node in &cluster.nodes {
        wait_ready(node).await;
    }
    for node in &cluster.nodes {
        eventually(
            async || {
                let links = metric(&node.metrics().await, "switchboard_cluster_links");
                (links == (n - 1) as f64).then_some(())
            },
            || {
                format!(
                    "node {} never linked to the others: {}",
                    node.id,
                    node.log()
                )
            },
        )
        .await;
    }
    cluster
}

pub(super) fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let (key, value) = line.split_once(' ')?;
            (key == name).then(|| value.trim().parse().ok())?
        })
        .unwrap_or(f64::NAN)
}

/// `POST path` with the admin token on `url`.
pub(super) async fn post(url: &str, path: &str, body: Value) -> Value {
    let res = reqwest::Client::new()
        .post(format!("{url}{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("the node answers");
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "POST {path}: {status} {body}");
    body
}

/// A call from Twilio to `NUMBER` on `node_url`, its stream opened there.
pub(super) async fn ring_in(node_url: &str) -> (String, TwilioStream) {
    let call_sid = crate::helpers::new_call_sid();
    let params: Vec<(String, String)> = [
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("CallSid", call_sid.as_str()),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
        ("From", CALLER),
        ("To", NUMBER),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let signature = sign(TWILIO_TOKEN, &format!("{node_url}/twilio/voice"), &params);
    let res = reqwest::Client::new()
        .post(format!("{node_url}/twilio/voice"))
        .header("X-Twilio-Signature", signature)
        .form(&params)
        .send()
        .await
        .expect("the webhook answers");
    let twiml = res.text().await.expect("TwiML");
    let call_id = stream_parameter(&twiml, "call_id").unwrap_or_else(|| panic!("{twiml}"));
    let stream_url = format!("{}/twilio/stream", node_url.replacen("http://", "ws://", 1));
    let stream = TwilioStream::open(
        &stream_url,
        TWILIO_TOKEN,
        &call_sid,
        json!({ "call_id": call_id }),
    )
    .await
    .expect("the owner accepts the stream");
    (call_id, stream)
}

/// Agents of `WORKSPACE`, `per_node` on each node, each with an available
/// softphone on its node; returns them as (node index, phone).
pub(super) async fn seats(cluster: &TestCluster, per_node: usize) -> Vec<(usize, Softphone)> {
    let mut phones = Vec::new();
    let first = &cluster.nodes[0];
    for (i, node) in cluster.nodes.iter().enumerate() {
        for k in 0..per_node {
            let (_, token) = first
                .create_agent(&format!("agent {i}-{k}"), WORKSPACE)
                .await;
            let mut phone = node.softphone(&token).await;
            phone.send(json!({ "type": "presence", "status": "available" }));
            phone.expect("presence").await;
            phones.push((i, phone));
        }
    }
    // Every node sees every seat available before a call relies on it.
    let total = phones.len();
    for node in &cluster.nodes {
        eventually(
            async || {
                let (_, body) = node
                    .get(&format!("/api/cluster/seats?workspace={WORKSPACE}"))
                    .await?;
                let available = body["seats"]
                    .as_array()?
                    .iter()
                    .filter(|s| s["presence"] == "available" && s["call_id"].is_null())
                    .count();
                (available == total).then_some(())
            },
            || format!("node {} never saw the {total} seats available", node.id),
        )
        .await;
    }
    post(
        &first.url,
        "/api/numbers",
        json!({ "e164": NUMBER, "workspace": WORKSPACE, "route": { "kind": "agents", "agent_ids": [] } }),
    )
    .await;
    phones
}

#[actix_web::test]
async fn a_call_owned_by_one_node_rings_agents_on_every_node_and_an_agent_on_another_node_talks_with_the_caller(
) {
    let cluster = telephony_cluster(3).await;
    let mut phones = seats(&cluster, 1).await;
    let (call_id, mut twilio) = ring_in(&cluster.nodes[0].url).await;
    for (node, phone) in &mut phones {
        let ring = phone.expect_ring(&call_id).await;
        assert_eq!(ring["from"], CALLER, "the ring on node {node}: {ring}");
    }
    // The agent on node 3 answers the call node 1 owns.
    let (_, winner) = &mut phones[2];
    winner.answer(&call_id);
    let connected = winner.expect("connected").await;
    assert_eq!(connected["call_id"], call_id.as_str());
    for (_, phone) in &mut phones[..2] {
        let cancel = phone.expect("ring_cancel").await;
        assert_eq!(cancel["reason"], "answered_elsewhere", "{cancel}");
    }
    let (_, winner) = &mut phones[2];
    assert_bridged(&mut twilio, winner, 0x31).await;
    // Hanging up on node 3 ends the call on node 1.
    winner.send(json!({ "type": "hangup", "call_id": call_id }));
    let ended = winner.expect("call_ended").await;
    assert_eq!(ended["call_id"], call_id.as_str());
    let record = eventually(
        async || {
            let (status, call) = cluster.nodes[0]
                .get(&format!("/api/calls/{call_id}"))
                .await?;
            (status == 200 && call["outcome"] == "answered").then_some(call)
        },
        || "the call never ended answered on its owner".to_owned(),
    )
    .await;
    assert!(record["agent_id"].is_string(), "{record}");
    cluster.shutdown().await;
}

/// Rounds of the claim race; each is a whole call.
const ROUNDS: usize = 100;

#[actix_web::test]
async fn thirty_seats_on_three_nodes_answer_the_same_call_at_once_and_exactly_one_wins_every_time()
{
    let cluster = telephony_cluster(3).await;
    let mut phones = seats(&cluster, 10).await;
    for round in 0..ROUNDS {
        let (call_id, mut twilio) = ring_in(&cluster.nodes[round % 3].url).await;
        for (_, phone) in &mut phones {
            // The last round's `ring_cancel`s may still be queued before this ring.
            phone
                .wait_for("ring", |m| m["call_id"] == call_id.as_str())
                .await;
        }
        for (_, phone) in &phones {
            phone.answer(&call_id);
        }
        let mut winners = Vec::new();
        for (i, (node, phone)) in phones.iter_mut().enumerate() {
            let verdict = loop {
                let message = phone.next().await;
                let kind = message["type"].as_str().unwrap_or_default().to_owned();
                if message["call_id"] == call_id.as_str()
                    && ["connected", "claim_lost"].contains(&kind.as_str())
                {
                    break kind;
                }
            };
            if verdict == "connected" {
                winners.push((i, *node));
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let (winner, _) = winners[0];
        phones[winner]
            .1
            .send(json!({ "type": "hangup", "call_id": call_id }));
        phones[winner].1.expect("call_ended").await;
        twilio.stop();
        // Every seat is free again (the owner's view) before the next round rings.
        let owner = &cluster.nodes[round % 3];
        eventually(
            async || {
                let (_, body) = owner
                    .get(&format!("/api/cluster/seats?workspace={WORKSPACE}"))
                    .await?;
                let free = body["seats"]
                    .as_array()?
                    .iter()
                    .filter(|s| s["presence"] == "available" && s["call_id"].is_null())
                    .count();
                (free == 30).then_some(())
            },
            || format!("round {round}: the seats never all came back"),
        )
        .await;
    }
    cluster.shutdown().await;
}

#[actix_web::test]
async fn a_node_link_without_the_cluster_secret_is_refused_and_counted_and_a_signed_one_is_not() {
    let cluster = telephony_cluster(2).await;
    let target = &cluster.nodes[1];
    // The dialer's id is any valid node id (letters of either case, digits, `.-_`).
    let dial = |secret: &str, nonce: &str| {
        let time = chrono_ms();
        let signature = handshake::dial_signature(
            &secrecy::SecretString::from(secret.to_owned()),
            "Edge.9",
            &target.id,
            time,
            nonce,
        );
        awc::Client::new()
            .ws(format!("{}/cluster/link", target.url))
            .header(handshake::NODE_HEADER, "Edge.9")
            .header(handshake::TARGET_HEADER, target.id.as_str())
            .header(handshake::TIME_HEADER, time.to_string())
            .header(handshake::NONCE_HEADER, nonce.to_owned())
            .header(handshake::SIGNATURE_HEADER, signature)
    };
    let refused = dial("not the cluster's secret at all", "n-1")
        .connect()
        .await;
    match refused {
        Err(awc::error::WsClientError::InvalidResponseStatus(status)) => {
            assert_eq!(status.as_u16(), 401)
        }
        other => panic!("a wrong secret was not refused: {:?}", other.map(|_| ())),
    }
    let text = target.metrics().await;
    assert_eq!(
        metric(&text, "switchboard_cluster_links_refused_total"),
        1.0,
        "{text}"
    );
    assert!(
        target.log().contains("refused a node link"),
        "{}",
        target.log()
    );
    // The cluster's own secret opens a link, and the node proves it back.
    let (_, mut framed) = dial(&cluster.secret, "n-2")
        .connect()
        .await
        .expect("a signed link is accepted");
    use futures_util::StreamExt as _;
    let proof = tokio::time::timeout(PATIENCE, framed.next())
        .await
        .expect("the proof comes")
        .expect("a frame")
        .expect("readable");
    let awc::ws::Frame::Text(proof) = proof else {
        panic!("the first frame is the proof: {proof:?}");
    };
    let proof = std::str::from_utf8(&proof).expect("text");
    let signature = proof.strip_prefix("accept:").expect("accept:…");
    assert!(handshake::accepted(
        &secrecy::SecretString::from(cluster.secret.clone()),
        &target.id,
        "Edge.9",
        "n-2",
        signature
    ));
    cluster.shutdown().await;
}

fn chrono_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}

/// A console on `node_url` and its snapshot.
pub(super) async fn console(node_url: &str) -> (Softphone, Value) {
    let url = format!(
        "{}/ws/supervisor?token={ADMIN_TOKEN}",
        node_url.replacen("http://", "ws://", 1)
    );
    let mut console = Softphone {
        peer: crate::helpers::WsPeer::connect(&url, None)
            .await
            .expect("the console connects"),
        hidden: &[],
    };
    let snapshot = console.expect("snapshot").await;
    (console, snapshot)
}

#[actix_web::test]
async fn an_agent_on_one_node_parks_a_call_another_node_owns_and_an_agent_on_a_third_node_unparks_it(
) {
    let cluster = telephony_cluster(3).await;
    let mut phones = seats(&cluster, 1).await;
    let (call_id, mut twilio) = ring_in(&cluster.nodes[0].url).await;
    for (_, phone) in &mut phones {
        phone.expect_ring(&call_id).await;
    }
    phones[1].1.answer(&call_id);
    phones[1].1.expect("connected").await;
    phones[1]
        .1
        .send(json!({ "type": "park", "call_id": call_id }));
    // Every seat of the workspace, on every node, is told, with one slot.
    let mut slots = Vec::new();
    for (node, phone) in &mut phones {
        let parked = phone
            .wait_for("parked", |m| m["call_id"] == call_id.as_str())
            .await;
        assert!(parked["slot"].as_u64().is_some(), "node {node}: {parked}");
        slots.push(parked["slot"].clone());
    }
    assert!(slots.windows(2).all(|w| w[0] == w[1]), "{slots:?}");
    // The agent on node 3 takes it back from the lot.
    phones[2]
        .1
        .send(json!({ "type": "unpark", "call_id": call_id }));
    phones[2]
        .1
        .wait_for("connected", |m| m["call_id"] == call_id.as_str())
        .await;
    for (_, phone) in &mut phones[..2] {
        let unparked = phone
            .wait_for("unparked", |m| m["call_id"] == call_id.as_str())
            .await;
        assert!(unparked["agent_id"].is_string(), "{unparked}");
    }
    let (_, taker) = &mut phones[2];
    assert_bridged(&mut twilio, taker, 0x52).await;
    cluster.shutdown().await;
}

#[actix_web::test]
async fn a_supervisor_on_one_node_sees_the_seats_and_calls_of_every_node() {
    let cluster = telephony_cluster(2).await;
    let mut phones = seats(&cluster, 1).await;
    let (mut live, _) = console(&cluster.nodes[1].url).await;
    let (call_id, _twilio) = ring_in(&cluster.nodes[0].url).await;
    // Told as it happens on node 1, to a console on node 2.
    let call = live
        .wait_for("call", |m| {
            m["call_id"] == call_id.as_str() && m["status"] == "ringing"
        })
        .await;
    assert_eq!(call["from"], CALLER, "{call}");
    phones[0].1.expect_ring(&call_id).await;
    phones[0].1.answer(&call_id);
    live.wait_for("call", |m| {
        m["call_id"] == call_id.as_str() && m["status"] == "connected"
    })
    .await;
    // A console connecting now gets both nodes' seats and the call in its snapshot.
    let (_, snapshot) = console(&cluster.nodes[1].url).await;
    let seats = snapshot["seats"].as_array().expect("seats");
    assert_eq!(seats.len(), 2, "{snapshot}");
    let calls = snapshot["calls"].as_array().expect("calls");
    assert!(
        calls
            .iter()
            .any(|c| c["call_id"] == call_id.as_str() && c["status"] == "connected"),
        "{snapshot}"
    );
    cluster.shutdown().await;
}

#[actix_web::test]
async fn two_calls_parked_at_once_on_two_nodes_get_two_slots_which_are_given_back_when_they_end() {
    let cluster = telephony_cluster(2).await;
    let mut phones = seats(&cluster, 1).await;
    let (first, mut first_twilio) = ring_in(&cluster.nodes[0].url).await;
    phones[0].1.takes(&first).await;
    let (second, mut second_twilio) = ring_in(&cluster.nodes[1].url).await;
    phones[1].1.takes(&second).await;
    // Both park at the same instant, each on its own node.
    phones[0]
        .1
        .send(json!({ "type": "park", "call_id": first }));
    phones[1]
        .1
        .send(json!({ "type": "park", "call_id": second }));
    // The node-1 seat is told of both, in whichever order they parked.
    let mut slots = std::collections::BTreeMap::new();
    while slots.len() < 2 {
        let parked = phones[0].1.wait_for("parked", |_| true).await;
        slots.insert(
            parked["call_id"].as_str().unwrap_or_default().to_owned(),
            parked["slot"].as_u64().expect("a slot"),
        );
    }
    assert!(
        slots.contains_key(&first) && slots.contains_key(&second),
        "{slots:?}"
    );
    let mut slots: Vec<u64> = slots.into_values().collect();
    slots.sort_unstable();
    assert_eq!(
        slots,
        [1, 2],
        "one number per parked call across the cluster"
    );
    let key = format!("{}parking:{WORKSPACE}", cluster.prefix);
    let held = || -> usize {
        let mut conn = super::redis_connection();
        deadpool_redis::redis::cmd("HLEN")
            .arg(&key)
            .query(&mut conn)
            .expect("HLEN")
    };
    assert_eq!(held(), 2);
    // The callers hang up: both slots are given back.
    first_twilio.stop();
    second_twilio.stop();
    eventually(
        async || (held() == 0).then_some(()),
        || "the slots of ended calls were never given back".to_owned(),
    )
    .await;
    cluster.shutdown().await;
}

#[actix_web::test]
async fn an_agent_opening_a_second_softphone_on_another_node_replaces_the_first() {
    let cluster = telephony_cluster(2).await;
    let (agent, token) = cluster.nodes[0].create_agent("Ada", WORKSPACE).await;
    let mut first = cluster.nodes[0].softphone(&token).await;
    first.send(json!({ "type": "presence", "status": "available" }));
    first.expect("presence").await;
    // Node 2 knows the seat on node 1 before the second softphone opens.
    eventually(
        async || {
            let (_, floor) = console(&cluster.nodes[1].url).await;
            floor["seats"]
                .as_array()?
                .iter()
                .any(|s| s["agent_id"] == agent.as_str())
                .then_some(())
        },
        || "node 2 never saw the first seat".to_owned(),
    )
    .await;
    let mut second = cluster.nodes[1].softphone(&token).await;
    let error = first.expect("error").await;
    assert_eq!(error["code"], "replaced", "{error}");
    assert!(
        first.peer.closed().await.is_some(),
        "the first softphone is closed"
    );
    // The second one stays, and rings.
    second.send(json!({ "type": "presence", "status": "available" }));
    second.expect("presence").await;
    assert!(
        second
            .silent_for(std::time::Duration::from_millis(300))
            .await
    );
    cluster.shutdown().await;
}

#[actix_web::test]
async fn a_supervisor_on_one_node_listens_to_parks_and_hangs_up_a_call_another_node_owns() {
    let cluster = telephony_cluster(2).await;
    let mut phones = seats(&cluster, 1).await;
    let (mut console, _) = console(&cluster.nodes[1].url).await;
    let (call_id, mut twilio) = ring_in(&cluster.nodes[0].url).await;
    phones[0].1.takes(&call_id).await;
    console
        .wait_for("call", |m| {
            m["call_id"] == call_id.as_str() && m["status"] == "connected"
        })
        .await;
    // Listening: the mix of a call on node 1 reaches a console on node 2.
    console.send(json!({ "type": "listen", "call_id": call_id }));
    console.wait_for("ack", |m| m["command"] == "listen").await;
    let tone = crate::helpers::frame(0x2A, 0);
    for _ in 0..10 {
        twilio.send_media(&[0xFF; 160]);
        phones[0].1.send_audio(tone.clone());
    }
    assert_eq!(console.audio().await.len(), 160, "a mixed frame");
    // Parking it from node 2 releases the agent on node 1.
    console.send(json!({ "type": "park", "call_id": call_id }));
    console.wait_for("ack", |m| m["command"] == "park").await;
    phones[0]
        .1
        .wait_for("released", |m| m["call_id"] == call_id.as_str())
        .await;
    // And hanging up from node 2 ends it on node 1.
    console.send(json!({ "type": "hangup", "call_id": call_id }));
    // The owner ends the call (and tells the floor) before it answers the request,
    // so the console's `call_ended` may come before or after its `ack`.
    let (mut acked, mut ended) = (false, false);
    while !(acked && ended) {
        let message = console.next().await;
        acked |= message["type"] == "ack" && message["command"] == "hangup";
        ended |= message["type"] == "call_ended" && message["call_id"] == call_id.as_str();
    }
    eventually(
        async || {
            let (status, call) = cluster.nodes[0]
                .get(&format!("/api/calls/{call_id}"))
                .await?;
            (status == 200 && call["ended_at"].is_string()).then_some(())
        },
        || "the call never ended on its owner".to_owned(),
    )
    .await;
    cluster.shutdown().await;
}
