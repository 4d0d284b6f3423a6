//! An AI call survives its node (issue 16, item 5, for a number routed to an
//! assistant): the survivor that adopts the call gives the caller back to the
//! assistant — a new session with the model, given the conversation so far and
//! asked to say the line dropped rather than greet again — instead of parking it
//! for agents a voice-AI number may not have. The trail has one `node_failure`
//! and no ring, and the transcript goes on after the turns the dead node wrote.

use serde_json::json;

use super::failover::{assert_whole_trail, count, from_the_one_failure, stream_url, until_call};
use super::floor::post;
use super::twilio_player::PlayedCall;
use super::{eventually, Node, TestCluster, Timings};
use crate::fakes::openai::{FakeOpenAi, Reply, Script};
use crate::helpers::{TwilioStream, CALLER, NUMBER};
use crate::outbound_talk::speak;

/// The greeting's audio: 400 ms of `0x11`.
const GREETING_FILL: u8 = 0x11;
/// The caller's request before the node dies, and the assistant's answer.
const ASKED: &str = "I would like a table for two tonight.";
const ANSWERED: &str = "For what time?";

/// The call's transcript as `node` serves it: (`seq`, text) in order, or `None`
/// when the node does not answer.
async fn transcript_on(node: &Node, call_id: &str) -> Option<Vec<(i64, String)>> {
    let (_, body) = node
        .get(&format!("/api/calls/{call_id}/transcript"))
        .await?;
    Some(
        body["turns"]
            .as_array()?
            .iter()
            .map(|t| {
                (
                    t["seq"].as_i64().unwrap_or(0),
                    t["text"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect(),
    )
}

/// Reads the caller's audio until 200 ms of the greeting arrived.
async fn hears_the_greeting(stream: &mut TwilioStream) {
    let mut heard = 0;
    while heard < 1600 {
        let audio = stream.next_media().await;
        if audio.iter().all(|b| *b == GREETING_FILL) {
            heard += audio.len();
        }
    }
}

#[actix_web::test]
async fn when_the_node_of_an_ai_call_is_killed_a_survivor_gives_the_caller_back_to_the_assistant() {
    let fake = FakeOpenAi::start(
        Script::new()
            .greeting(Reply::say(
                "Hello, this is Ada from Acme.",
                400,
                GREETING_FILL,
            ))
            .turn(ASKED, Reply::say(ANSWERED, 200, 0x22)),
    )
    .await;
    let (url, key) = (fake.url(), fake.api_key().to_owned());
    let env = [
        ("OPENAI_REALTIME_URL", url.as_str()),
        ("OPENAI_API_KEY", key.as_str()),
        ("SWITCHBOARD_SUMMARY_PROVIDER", "off"),
    ];
    let (mut cluster, balancer) =
        TestCluster::behind_a_balancer_with_env(2, Timings::Tests, "", &env).await;
    let (owner, survivor) = (cluster.node("node-1"), cluster.node("node-2"));
    let assistant = post(
        &owner.url,
        "/api/assistants",
        json!({
            "name": "Ada",
            "workspace": "blue",
            "instructions": "You answer the phone for Acme.",
            "voice": "marin",
            "model": "gpt-realtime",
            "greeting": "Hello, this is Ada from Acme.",
            "tools": [],
            "on_failure": { "kind": "agents", "agent_ids": [] },
        }),
    )
    .await;
    let assistant_id = assistant["id"]
        .as_str()
        .expect("an assistant id")
        .to_owned();
    post(
        &owner.url,
        "/api/numbers",
        json!({
            "e164": NUMBER,
            "workspace": "blue",
            "route": { "kind": "ai", "assistant_id": assistant_id },
        }),
    )
    .await;
    balancer.set_backends(&[&owner.url]);
    let (mut call, next) = PlayedCall::dial(&balancer.url, CALLER, NUMBER).await;
    let mut stream = next.stream();
    hears_the_greeting(&mut stream).await;
    assert_eq!(fake.sessions(), 1);
    // The record names the assistant (else the survivor goes by the number's
    // route, which names it too).
    until_call(owner, &call.call_id, "with its assistant", |c| {
        c["assistant_id"] == assistant_id.as_str()
    })
    .await;
    // A turn each way, written by node 1's journal before it dies.
    speak(&mut stream, 10, 0x53);
    eventually(
        async || (transcript_on(owner, &call.call_id).await?.len() == 3).then_some(()),
        || "node 1 never wrote the greeting, the request and the answer".to_owned(),
    )
    .await;

    // Node 1 dies; Twilio follows the redirect to node 2.
    balancer.set_backends(&[&owner.url, &survivor.url]);
    cluster.node_mut("node-1").kill();
    let survivor = cluster.node("node-2");
    let mut stream = call.after_close(stream).await.stream();
    assert_eq!(call.streams.last(), Some(&stream_url(survivor)));
    // The assistant answers again, in a second session (the fake plays its
    // scripted greeting on any first `response.create`).
    hears_the_greeting(&mut stream).await;
    eventually(
        async || (fake.sessions() == 2).then_some(()),
        || format!("the survivor opened {} sessions in all", fake.sessions()),
    )
    .await;
    // That session was given the conversation, then asked to say it was cut
    // off, not to greet the caller.
    let events = fake.client_events();
    let second = events
        .iter()
        .rposition(|e| e["type"] == "session.update")
        .expect("the second session's update");
    let given: Vec<(String, String, String)> = events[second..]
        .iter()
        .take_while(|e| e["type"] != "response.create")
        .filter(|e| e["type"] == "conversation.item.create")
        .map(|e| {
            let item = &e["item"];
            (
                item["role"].as_str().unwrap_or_default().to_owned(),
                item["content"][0]["type"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                item["content"][0]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    let message = |role: &str, kind: &str, text: &str| (role.into(), kind.into(), text.into());
    assert_eq!(
        given,
        vec![
            message("assistant", "output_text", "Hello, this is Ada from Acme."),
            message("user", "input_text", ASKED),
            message("assistant", "output_text", ANSWERED),
        ],
        "{events:?}"
    );
    let asked = events[second..]
        .iter()
        .find(|e| e["type"] == "response.create")
        .expect("a response asked for");
    let instructions = asked["response"]["instructions"]
        .as_str()
        .unwrap_or_default();
    assert!(
        instructions.contains("cut off") && !instructions.contains("Greet"),
        "{asked}"
    );
    let call_id = call.call_id.clone();
    let record = until_call(survivor, &call_id, "with its assistant again", |c| {
        count(c, "assistant") == 2
    })
    .await;
    let after = from_the_one_failure(&record);
    for kind in ["parked", "ring"] {
        assert!(
            after.iter().all(|e| e["kind"] != kind),
            "{kind} after the failure: {record}"
        );
    }
    assert_eq!(record["assistant_id"], assistant_id.as_str(), "{record}");
    assert_whole_trail(&record);

    // The transcript goes on after the dead node's three turns: the resumed
    // session's first words are the fourth.
    let turns = eventually(
        async || {
            let turns = transcript_on(survivor, &call_id).await?;
            (turns.len() >= 4).then_some(turns)
        },
        || "the survivor never wrote its first turn".to_owned(),
    )
    .await;
    assert_eq!(
        turns,
        vec![
            (1, "Hello, this is Ada from Acme.".to_owned()),
            (2, ASKED.to_owned()),
            (3, ANSWERED.to_owned()),
            (4, "Hello, this is Ada from Acme.".to_owned()),
        ],
    );

    // The caller hangs up: one end, on the survivor.
    stream.stop();
    let ended = until_call(survivor, &call_id, "ended", |c| c["ended_at"].is_string()).await;
    assert_eq!(count(&ended, "ended"), 1, "{ended}");
    assert_whole_trail(&ended);
    cluster.shutdown().await;
}
