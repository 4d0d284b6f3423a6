//! Failover and drain (issue 16, items 5 and 6), played end to end: nodes are
//! real processes behind the test's load balancer (their public URL), and the
//! fake Twilio ([`PlayedCall`]) follows the TwiML as Twilio does — when a call's
//! stream closes it runs the `<Redirect>` that follows `</Connect>`
//! (<https://www.twilio.com/docs/voice/twiml/stream>,
//! <https://www.twilio.com/docs/voice/twiml/redirect>) through the balancer.

use std::collections::HashSet;

use serde_json::{json, Value};
use switchboard::twilio::signature::sign;

use super::balancer::Balancer;
use super::twilio_player::{parse, Next, PlayedCall, Verb};
use super::{eventually, Node, TestCluster};
use crate::helpers::{
    assert_bridged, event_kinds, Softphone, TwilioStream, ADMIN_TOKEN, CALLER, NUMBER, TWILIO_TOKEN,
};

/// `NUMBER` rings every available agent of workspace `blue`.
pub(super) async fn number_for_everyone(node: &Node) {
    let res = reqwest::Client::new()
        .post(format!("{}/api/numbers", node.url))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({
            "e164": NUMBER,
            "workspace": "blue",
            "route": { "kind": "agents", "agent_ids": [] },
        }))
        .send()
        .await
        .expect("the node answers");
    assert!(
        res.status().is_success(),
        "POST /api/numbers: {}",
        res.status()
    );
}

/// A softphone on `node`, available.
pub(super) async fn available(node: &Node, token: &str) -> Softphone {
    let mut phone = node.softphone(token).await;
    phone.send(json!({ "type": "presence", "status": "available" }));
    phone
        .wait_for("presence", |ack| ack["status"] == "available")
        .await;
    phone
}

/// The call's record on `node` once `done` holds of it.
pub(super) async fn until_call(
    node: &Node,
    call_id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let last = std::cell::RefCell::new(Value::Null);
    eventually(
        async || {
            let (status, body) = node.get(&format!("/api/calls/{call_id}")).await?;
            let found = (status == 200 && done(&body)).then(|| body.clone());
            *last.borrow_mut() = body;
            found
        },
        || {
            format!(
                "call {call_id} on {} never {what}: {}",
                node.id,
                last.borrow()
            )
        },
    )
    .await
}

pub(super) fn count(call: &Value, kind: &str) -> usize {
    event_kinds(call).iter().filter(|k| *k == kind).count()
}

/// The call's events from its one `node_failure` on (that event first).
pub(super) fn from_the_one_failure(call: &Value) -> &[Value] {
    assert_eq!(count(call, "node_failure"), 1, "{call}");
    let events = call["events"].as_array().expect("events");
    let failure = events
        .iter()
        .position(|e| e["kind"] == "node_failure")
        .expect("node_failure");
    &events[failure..]
}

/// The trail's `seq`s are 1, 2, 3… with no duplicate and no gap.
pub(super) fn assert_whole_trail(call: &Value) {
    let seqs: Vec<i64> = call["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["seq"].as_i64().expect("seq"))
        .collect();
    let unique: HashSet<i64> = seqs.iter().copied().collect();
    assert_eq!(unique.len(), seqs.len(), "duplicate seq in {seqs:?}");
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "the trail is not whole: {call}"
    );
}

/// The ws URL of a node's media stream.
pub(super) fn stream_url(node: &Node) -> String {
    format!("{}/twilio/stream", node.url.replacen("http://", "ws://", 1))
}

/// Ada on her softphone, talking with a caller.
struct Answered {
    ada: String,
    token: String,
    phone: Softphone,
    call: PlayedCall,
    stream: TwilioStream,
}

/// Ada (of `blue`, available on `owner`) answers a call to `NUMBER` that the
/// balancer sends to `owner`.
async fn ada_answers_on(owner: &Node, balancer: &Balancer) -> Answered {
    let (ada, token) = owner.create_agent("Ada", "blue").await;
    number_for_everyone(owner).await;
    let mut phone = available(owner, &token).await;
    balancer.set_backends(&[&owner.url]);
    let (call, next) = PlayedCall::dial(&balancer.url, CALLER, NUMBER).await;
    let stream = next.stream();
    let call_id = call.call_id.clone();
    phone.takes(&call_id).await;
    Answered {
        ada,
        token,
        phone,
        call,
        stream,
    }
}

/// Node 1, which holds Ada's call, gets SIGKILL: the balancer is given both
/// nodes, Ada's softphone (signed in with `token`) reconnects to node 2, and
/// Twilio follows the redirect through the balancer, which skips the dead node,
/// to a new stream on node 2. Answers Ada's new softphone and that stream.
async fn node_1_dies(
    cluster: &mut TestCluster,
    balancer: &Balancer,
    token: &str,
    phone: Softphone,
    call: &mut PlayedCall,
    stream: TwilioStream,
) -> (Softphone, TwilioStream) {
    balancer.set_backends(&[&cluster.node("node-1").url, &cluster.node("node-2").url]);
    cluster.node_mut("node-1").kill();
    let survivor = cluster.node("node-2");
    drop(phone);
    let phone = available(survivor, token).await;
    let stream = call.after_close(stream).await.stream();
    assert_eq!(call.streams.last(), Some(&stream_url(survivor)));
    (phone, stream)
}

#[actix_web::test]
async fn when_the_owning_node_is_killed_mid_call_a_survivor_adopts_it_parks_it_and_rings_its_agent_back(
) {
    let (mut cluster, balancer) = TestCluster::behind_a_balancer(2, "").await;
    let owner = cluster.node("node-1");
    // The call lands on node 1, where Ada's softphone is.
    let Answered {
        ada,
        token,
        mut phone,
        mut call,
        mut stream,
    } = ada_answers_on(owner, &balancer).await;
    assert_eq!(
        call.streams,
        [stream_url(owner)],
        "the stream goes to the owner's node URL"
    );
    let resume = format!("{}/twilio/resume?call={}", balancer.url, call.call_id);
    assert_eq!(call.pending_redirect(), Some(resume.as_str()));
    let call_id = call.call_id.clone();
    assert_bridged(&mut stream, &mut phone, 1).await;

    // Node 1 dies.
    let (mut phone, mut stream) =
        node_1_dies(&mut cluster, &balancer, &token, phone, &mut call, stream).await;
    let survivor = cluster.node("node-2");
    assert_eq!(call.redirects.len(), 1, "{:?}", call.redirects);

    // Parked for Ada, and Ada is rung first; she takes it back and talks again.
    phone.takes(&call_id).await;
    assert_bridged(&mut stream, &mut phone, 2).await;

    let record = until_call(survivor, &call_id, "was connected again", |c| {
        count(c, "claimed") == 2
    })
    .await;
    let after = from_the_one_failure(&record);
    assert_eq!(after[0]["detail"]["from_node"], "node-1");
    assert_eq!(after[0]["detail"]["cause"], "node_dead");
    assert!(
        after
            .iter()
            .any(|e| e["kind"] == "parked" && e["detail"]["reason"] == "node_failure"),
        "{record}"
    );
    let ring = after
        .iter()
        .find(|e| e["kind"] == "ring")
        .expect("a ring after the failure");
    assert_eq!(ring["detail"]["stage"], "parker", "{ring}");
    assert_eq!(ring["detail"]["agent_ids"], json!([ada]), "{ring}");
    assert_whole_trail(&record);

    // The caller hangs up: one end, on the survivor.
    stream.stop();
    let ended = until_call(survivor, &call_id, "ended", |c| c["ended_at"].is_string()).await;
    assert_eq!(ended["outcome"], "answered", "{ended}");
    assert_eq!(count(&ended, "ended"), 1, "{ended}");
    assert_eq!(count(&ended, "node_failure"), 1, "{ended}");
    assert_whole_trail(&ended);
    drop(phone);
    cluster.shutdown().await;
}

/// A killed node's membership key outlives it by up to `node_ttl`; a resume does
/// not wait for it when two signs say the node is dead: its link to the
/// survivor is down and its key missed a beat (here a beat every 250 ms, the key
/// living 5 s: the signs come more than 4 s before the key expires).
#[actix_web::test]
async fn a_killed_nodes_call_is_adopted_before_its_membership_key_expires() {
    let timings = "heartbeat_interval_ms = 250\nnode_ttl_ms = 5000";
    let (mut cluster, balancer) =
        TestCluster::behind_a_balancer_timed(2, super::Timings::Defaults, timings).await;
    let owner = cluster.node("node-1");
    let Answered {
        token,
        phone,
        mut call,
        stream,
        ..
    } = ada_answers_on(owner, &balancer).await;
    let call_id = call.call_id.clone();

    let (mut phone, mut stream) =
        node_1_dies(&mut cluster, &balancer, &token, phone, &mut call, stream).await;
    let survivor = cluster.node("node-2");
    phone.takes(&call_id).await;
    assert_bridged(&mut stream, &mut phone, 3).await;

    // The survivor took node 1 for dead on the two signs, not on its key.
    let log = survivor.log();
    assert!(
        log.contains("taken for dead before its key expires"),
        "adopted only once node 1's key expired:\n{log}"
    );
    let record = until_call(survivor, &call_id, "was adopted", |c| {
        count(c, "node_failure") == 1
    })
    .await;
    assert_eq!(
        from_the_one_failure(&record)[0]["detail"]["cause"],
        "node_dead"
    );
    assert_whole_trail(&record);
    stream.stop();
    drop(phone);
    cluster.shutdown().await;
}

#[actix_web::test]
async fn an_engine_side_hang_up_still_ends_the_call_the_resume_answers_hangup() {
    let (cluster, balancer) = TestCluster::behind_a_balancer(2, "").await;
    let owner = cluster.node("node-1");
    let Answered {
        phone,
        mut call,
        stream,
        ..
    } = ada_answers_on(owner, &balancer).await;
    let call_id = call.call_id.clone();
    // Resumes may go to either node now.
    let urls: Vec<&str> = cluster.nodes.iter().map(|n| n.url.as_str()).collect();
    balancer.set_backends(&urls);

    // Ada hangs up: the engine closes the stream; Twilio runs the redirect, and
    // the resume says hang up.
    phone.send(json!({ "type": "hangup", "call_id": call_id }));
    assert!(matches!(call.after_close(stream).await, Next::HungUp));
    let (_, twiml) = call.redirects.last().expect("the redirect was followed");
    assert_eq!(parse(twiml), vec![Verb::Hangup], "{twiml}");
    let record = until_call(owner, &call_id, "ended", |c| c["ended_at"].is_string()).await;
    assert_eq!(record["outcome"], "answered", "{record}");
    assert_eq!(record["end_reason"], "agent_hangup", "{record}");
    assert_eq!(count(&record, "ended"), 1, "{record}");
    assert_eq!(count(&record, "node_failure"), 0, "{record}");
    drop(phone);
    cluster.shutdown().await;
}

#[actix_web::test]
async fn a_stream_that_drops_while_its_node_lives_is_streamed_again_to_that_node_and_the_call_goes_on(
) {
    let (cluster, balancer) = TestCluster::behind_a_balancer(2, "").await;
    let (owner, other) = (cluster.node("node-1"), cluster.node("node-2"));
    let Answered {
        mut phone,
        mut call,
        mut stream,
        ..
    } = ada_answers_on(owner, &balancer).await;
    let call_id = call.call_id.clone();
    assert_bridged(&mut stream, &mut phone, 1).await;

    // The socket drops; the redirect reaches the owner itself, which streams
    // the call again to itself.
    let mut stream = call.after_drop(stream).await.stream();
    assert_eq!(call.streams.last(), Some(&stream_url(owner)));
    // Caller audio counts once the call has the new stream (before that, as
    // after any gap, it goes nowhere).
    until_call(owner, &call_id, "took the new stream", |c| {
        count(c, "media_restarted") == 1
    })
    .await;
    assert_bridged(&mut stream, &mut phone, 2).await;
    // It drops again, and this time the redirect reaches the other node, which
    // sends the stream to the node that holds the call — at once, as that node
    // says over their link that it holds it (not once a dead node's key would
    // have expired).
    balancer.set_backends(&[&other.url]);
    let mut stream = call.after_drop(stream).await.stream();
    assert_eq!(call.streams.last(), Some(&stream_url(owner)));
    assert_eq!(call.streams.len(), 3, "{:?}", call.streams);
    let log = other.log();
    assert!(
        log.contains("resume of a call its live node says it holds: streamed to it at once"),
        "{log}"
    );
    until_call(owner, &call_id, "took the third stream", |c| {
        count(c, "media_restarted") == 2
    })
    .await;
    assert_bridged(&mut stream, &mut phone, 3).await;

    stream.stop();
    let record = until_call(owner, &call_id, "ended", |c| c["ended_at"].is_string()).await;
    assert_eq!(record["outcome"], "answered", "{record}");
    assert_eq!(count(&record, "stream_lost"), 2, "{record}");
    assert_eq!(count(&record, "media_restarted"), 2, "{record}");
    assert_eq!(count(&record, "node_failure"), 0, "{record}");
    assert_eq!(count(&record, "ended"), 1, "{record}");
    assert_whole_trail(&record);
    drop(phone);
    cluster.shutdown().await;
}

/// `POST /twilio/resume?call=…` straight to `node`, signed as Twilio signs it
/// over the public URL: the TwiML answered.
async fn resume_on(node: &Node, public_url: &str, call: &PlayedCall) -> String {
    let path = format!("/twilio/resume?call={}", call.call_id);
    let params: Vec<(String, String)> = [
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("CallSid", call.call_sid.as_str()),
        ("CallStatus", "in-progress"),
        ("From", CALLER),
        ("To", NUMBER),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let signature = sign(TWILIO_TOKEN, &format!("{public_url}{path}"), &params);
    let res = reqwest::Client::new()
        .post(format!("{}{path}", node.url))
        .header("X-Twilio-Signature", signature)
        .form(&params)
        .send()
        .await
        .expect("the node answers");
    assert!(
        res.status().is_success(),
        "resume on {}: {}",
        node.id,
        res.status()
    );
    res.text().await.expect("TwiML")
}

/// A call to `NUMBER`, placed through the balancer on node 1 (whose stream the
/// database shows started); then node 1 is killed (SIGKILL) and its stream is cut.
async fn a_call_whose_node_dies(cluster: &mut TestCluster, balancer: &Balancer) -> PlayedCall {
    number_for_everyone(cluster.node("node-1")).await;
    balancer.set_backends(&[&cluster.node("node-1").url]);
    let (call, next) = PlayedCall::dial(&balancer.url, CALLER, NUMBER).await;
    let stream = next.stream();
    until_call(
        cluster.node("node-2"),
        &call.call_id,
        "had its stream",
        |c| count(c, "media_started") == 1,
    )
    .await;
    cluster.node_mut("node-1").kill();
    drop(stream);
    call
}

#[actix_web::test]
async fn two_nodes_racing_to_adopt_the_same_call_adopt_it_exactly_once() {
    // Three nodes: the owner dies, the two others race.
    let (mut cluster, balancer) = TestCluster::behind_a_balancer(3, "").await;
    let call = a_call_whose_node_dies(&mut cluster, &balancer).await;
    let call_id = call.call_id.clone();

    let (b, c) = (cluster.node("node-2"), cluster.node("node-3"));
    let (on_b, on_c) = tokio::join!(
        resume_on(b, &balancer.url, &call),
        resume_on(c, &balancer.url, &call)
    );
    // Exactly one node adopted the call (its log says so); the other answered
    // with a hang-up (it lost the compare-and-set) or, once it saw the winner
    // alive and holding the call, with a stream to the winner. Either way every
    // stream answered points at the winner.
    let adopters: Vec<&Node> = [b, c]
        .into_iter()
        .filter(|n| n.log().contains("adopted a call"))
        .collect();
    assert_eq!(adopters.len(), 1, "B: {on_b}\nC: {on_c}");
    let winner = adopters[0];
    let answers = [parse(&on_b), parse(&on_c)];
    for verbs in &answers {
        match verbs.first() {
            Some(Verb::Stream { url, .. }) => {
                assert_eq!(url, &stream_url(winner), "B: {on_b}\nC: {on_c}");
                assert!(matches!(&verbs[1], Verb::Redirect { .. }), "{verbs:?}");
            }
            _ => assert_eq!(verbs, &vec![Verb::Hangup], "B: {on_b}\nC: {on_c}"),
        }
    }
    let winner_answer = if winner.id == b.id {
        &answers[0]
    } else {
        &answers[1]
    };
    let Some(Verb::Stream { url, parameters }) = winner_answer.first() else {
        panic!("the winner streams the call: B: {on_b}\nC: {on_c}");
    };

    // The adopted call lives on the winner: its stream starts there.
    let custom: serde_json::Map<String, Value> = parameters
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let mut stream = TwilioStream::open(url, TWILIO_TOKEN, &call.call_sid, Value::Object(custom))
        .await
        .expect("the winner takes the stream");
    let record = until_call(winner, &call_id, "was parked", |c| count(c, "parked") == 1).await;
    assert_eq!(count(&record, "node_failure"), 1, "{record}");
    assert!(record["ended_at"].is_null(), "{record}");
    stream.stop();
    let ended = until_call(winner, &call_id, "ended", |c| c["ended_at"].is_string()).await;
    assert_eq!(count(&ended, "ended"), 1, "{ended}");
    assert_ne!(ended["outcome"], "interrupted", "{ended}");
    assert_whole_trail(&ended);
    cluster.shutdown().await;
}

#[actix_web::test]
async fn a_dead_nodes_call_that_never_comes_back_is_ended_interrupted_by_a_survivor_after_the_wait()
{
    let (mut cluster, balancer) =
        TestCluster::behind_a_balancer(2, "resume_wait_secs = 1.0\nreap_interval_ms = 200").await;
    // Node 1 dies and Twilio never comes back for the call.
    let call = a_call_whose_node_dies(&mut cluster, &balancer).await;
    let call_id = call.call_id.clone();
    let record = until_call(cluster.node("node-2"), &call_id, "ended", |c| {
        c["ended_at"].is_string()
    })
    .await;
    assert_eq!(record["outcome"], "interrupted", "{record}");
    assert_eq!(record["end_reason"], "node_failure", "{record}");
    assert_eq!(count(&record, "ended"), 1, "{record}");
    assert_whole_trail(&record);
    cluster.shutdown().await;
}

#[actix_web::test]
async fn sigterm_drains_a_node_every_call_moves_to_another_node_and_the_node_exits_0() {
    let (mut cluster, balancer) = TestCluster::behind_a_balancer(2, "").await;
    let (draining, survivor) = (cluster.node("node-1"), cluster.node("node-2"));
    let (_, token) = survivor.create_agent("Bob", "blue").await;
    number_for_everyone(draining).await;
    // Two calls on node 1 (no agent there: they wait in voicemail).
    balancer.set_backends(&[&draining.url]);
    let mut calls = Vec::new();
    for _ in 0..2 {
        let (call, next) = PlayedCall::dial(&balancer.url, CALLER, NUMBER).await;
        calls.push((call, next.stream()));
    }
    for (call, _) in &calls {
        until_call(survivor, &call.call_id, "had its stream", |c| {
            count(c, "media_started") == 1
        })
        .await;
    }
    balancer.set_backends(&[&draining.url, &survivor.url]);
    let mut phone = available(survivor, &token).await;

    cluster.node("node-1").terminate();
    let survivor = cluster.node("node-2");
    let mut moved = Vec::new();
    for (mut call, stream) in calls {
        let stream = call.after_close(stream).await.stream();
        assert_eq!(
            call.streams.last(),
            Some(&stream_url(survivor)),
            "{:?}",
            call.streams
        );
        moved.push((call, stream));
    }
    let status = cluster.node_mut("node-1").exited().await;
    assert!(status.success(), "node 1 exited with {status}");
    let log = cluster.node("node-1").log();
    assert!(log.contains("draining"), "{log}");
    assert!(log.contains("every call moved"), "{log}");

    // Every call is alive on the survivor: re-offered there, and Bob takes one.
    let survivor = cluster.node("node-2");
    for (call, _) in &moved {
        let record = until_call(survivor, &call.call_id, "was re-offered", |c| {
            count(c, "node_failure") == 1 && count(c, "parked") >= 1
        })
        .await;
        assert!(record["ended_at"].is_null(), "{record}");
        let failure = record["events"]
            .as_array()
            .expect("events")
            .iter()
            .find(|e| e["kind"] == "node_failure")
            .expect("node_failure");
        assert_eq!(failure["detail"]["cause"], "node_draining", "{record}");
        assert_eq!(count(&record, "released"), 1, "{record}");
        assert_whole_trail(&record);
    }
    let (first, stream) = &mut moved[0];
    let first_id = first.call_id.clone();
    phone.takes(&first_id).await;
    assert_bridged(stream, &mut phone, 3).await;
    for (_, stream) in &mut moved {
        stream.stop();
    }
    for (call, _) in &moved {
        let ended = until_call(survivor, &call.call_id, "ended", |c| {
            c["ended_at"].is_string()
        })
        .await;
        assert_eq!(count(&ended, "ended"), 1, "{ended}");
        assert_whole_trail(&ended);
    }
    drop(phone);
    cluster.shutdown().await;
}

// ---- the compare-and-sets on the call row, on both backends -----------------------

/// Three nodes' stores on one fresh database: `node-a` records a call, `node-b`
/// and `node-c` race to adopt it.
async fn ownership_on(kind: crate::db::TestDb) {
    use switchboard::store::Store;
    use switchboard_actors::journal::{now_ms, CallEvent, CallOpened, JournalEntry};
    use switchboard_actors::machine::{Outcome, Phase};
    use switchboard_actors::{CallId, Workspace};

    let url = crate::db::fresh_database_url(kind).await;
    let a = Store::connect(&url, "node-a").await.expect("connecting");
    a.migrate().await.expect("migrating");
    let b = Store::connect(&url, "node-b").await.expect("connecting");
    let c = Store::connect(&url, "node-c").await.expect("connecting");
    let id = CallId::new();
    let event = |seq: i64, kind: &'static str| {
        JournalEntry::Event(CallEvent {
            call_id: id.clone(),
            seq,
            at: now_ms(),
            kind,
            agent_id: None,
            detail: json!({}),
        })
    };
    a.apply(&[
        JournalEntry::Opened(CallOpened {
            id: id.clone(),
            call_sid: Some(crate::helpers::new_call_sid()),
            from: CALLER.into(),
            to: NUMBER.into(),
            workspace: Some(Workspace::parse("blue").expect("a workspace")),
            direction: "inbound",
            started_at: now_ms(),
        }),
        event(1, "created"),
        event(2, "media_started"),
    ])
    .await
    .expect("the call is recorded");
    let owner = b.call_owner(&id).await.expect("read").expect("the call");
    assert_eq!(
        (owner.node_id.as_str(), owner.owner_epoch, owner.last_seq),
        ("node-a", 0, 2)
    );
    assert!(!owner.ended && !owner.released);

    // Two adopters at once: exactly one wins.
    let (on_b, on_c) = tokio::join!(
        b.adopt_call(&id, "node-a", 0),
        c.adopt_call(&id, "node-a", 0)
    );
    let (on_b, on_c) = (on_b.expect("b"), on_c.expect("c"));
    assert!(on_b ^ on_c, "b: {on_b}, c: {on_c}");
    let (winner, loser, winner_id) = if on_b {
        (&b, &c, "node-b")
    } else {
        (&c, &b, "node-c")
    };
    // The loser's "end it interrupted" is on the owner it saw: no effect now.
    assert!(!loser
        .interrupt_unheld_call(&id, "node-a", 0, "not_resumed")
        .await
        .expect("interrupt"));
    // node-a restarting closes its own calls: this one is not its own any more.
    assert_eq!(a.close_interrupted_calls().await.expect("recovery"), 0);
    let owner = winner
        .call_owner(&id)
        .await
        .expect("read")
        .expect("the call");
    assert_eq!((owner.node_id.as_str(), owner.owner_epoch), (winner_id, 1));
    assert!(!owner.ended);

    // node-a was only cut off: its late entries, numbered over the adopter's,
    // are left out, and the adopter's land.
    let late_status = JournalEntry::Status {
        call_id: id.clone(),
        status: Phase::Connected,
        agent_id: None,
        answered_at: Some(now_ms()),
    };
    let late_close = |outcome| JournalEntry::Closed {
        call_id: id.clone(),
        outcome,
        reason: "caller_hung_up".into(),
        agent_id: None,
        ended_at: now_ms(),
    };
    a.apply(&[
        event(3, "answered"),
        late_status,
        late_close(Outcome::Answered),
    ])
    .await
    .expect("applied");
    assert_eq!(a.fenced_entries(), 3);
    winner
        .apply(&[event(3, "node_failure")])
        .await
        .expect("applied");
    assert_eq!(winner.fenced_entries(), 0);
    let call = a.get_call(&id).await.expect("read").expect("the call");
    assert!(
        call.ended_at.is_none() && call.answered_at.is_none(),
        "{call:?}"
    );
    let kinds: Vec<&str> = call.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["created", "media_started", "node_failure"]);

    // The winner drains: released, then nobody takes it and it ends once.
    assert!(winner.release_call(&id).await.expect("release"));
    assert_eq!(winner.released_calls_here().await.expect("list").len(), 1);
    assert!(!loser.release_call(&id).await.expect("not the loser's"));
    let (first, second) = tokio::join!(
        b.interrupt_unheld_call(&id, winner_id, 1, "node_failure"),
        c.interrupt_unheld_call(&id, winner_id, 1, "node_failure")
    );
    let first_won = first.expect("b");
    assert!(first_won ^ second.expect("c"));
    let call = a.get_call(&id).await.expect("read").expect("the call");
    assert_eq!(call.outcome.as_deref(), Some("interrupted"));
    assert_eq!(call.end_reason.as_deref(), Some("node_failure"));
    let seqs: Vec<(i64, &str)> = call
        .events
        .iter()
        .map(|e| (e.seq, e.kind.as_str()))
        .collect();
    assert_eq!(
        seqs,
        [
            (1, "created"),
            (2, "media_started"),
            (3, "node_failure"),
            (4, "ended")
        ]
    );
    // The node that ended it holds its record now: the other one (the winner,
    // had it only been cut off) adds nothing after the `ended`.
    let (ender, other) = if first_won { (&b, &c) } else { (&c, &b) };
    assert_eq!(
        ender
            .call_owner(&id)
            .await
            .expect("read")
            .expect("the call")
            .node_id,
        ender.node_id()
    );
    other
        .apply(&[event(4, "hold_music"), late_close(Outcome::Answered)])
        .await
        .expect("applied");
    assert_eq!(other.fenced_entries(), 2);
    let call = a.get_call(&id).await.expect("read").expect("the call");
    assert_eq!(call.outcome.as_deref(), Some("interrupted"));
    assert_eq!(call.events.last().map(|e| e.kind.as_str()), Some("ended"));
    for store in [a, b, c] {
        store.close().await;
    }
    crate::db::drop_database(&url).await;
}

#[actix_rt::test]
async fn adoption_and_the_end_of_an_unheld_call_are_compare_and_sets_on_sqlite() {
    ownership_on(crate::db::TestDb::Sqlite).await;
}

#[actix_rt::test]
async fn adoption_and_the_end_of_an_unheld_call_are_compare_and_sets_on_postgres() {
    ownership_on(crate::db::TestDb::Postgres).await;
}
