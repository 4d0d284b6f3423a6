//! The outbound burst limiter counts once for the whole cluster (issue 16,
//! item 2): a user whose submits the load balancer spreads over the nodes gets
//! `burst_size` at once in all, not per node; the count is one atomic Lua step
//! in Redis per submit.

use std::time::Instant;

use serde_json::{json, Value};

use super::floor::post;
use super::TestCluster;

/// Burst size and refill for this test: ten at once, one more per second.
const BURST: usize = 10;
const SETTINGS: &str = "\n[outbound]\nburst_size = 10\nburst_per_second = 1\n";

#[actix_web::test]
async fn a_users_bursts_of_submits_are_counted_once_across_the_nodes() {
    let mut cluster = TestCluster::empty_with(SETTINGS).await;
    cluster.add_nodes(2).await;
    let user = post(
        &cluster.nodes[0].url,
        "/api/users",
        json!({ "email": "ada@example.com", "name": "Ada Lovelace" }),
    )
    .await;
    let key = user["api_key"].as_str().expect("an API key").to_owned();
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut answers = Vec::new();
    // Twice the burst, alternating nodes: one count would let half through, a
    // count per node all of them. The body is refused after the limiter counts it.
    for i in 0..2 * BURST {
        let node = &cluster.nodes[i % 2];
        let res = client
            .post(format!("{}/api/calls/outbound", node.url))
            .bearer_auth(&key)
            .json(&json!({}))
            .send()
            .await
            .expect("the node answers");
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        answers.push((node.id.clone(), status, body));
    }
    let elapsed = started.elapsed().as_secs_f64();
    for (node, status, body) in &answers {
        assert!(
            *status == 429 || *status == 400 || *status == 422,
            "{node}: {status} {body}"
        );
    }
    let passed = answers
        .iter()
        .filter(|(_, status, _)| *status != 429)
        .count();
    // At most the burst, plus one per second the loop took.
    let allowed = BURST + elapsed.ceil() as usize;
    assert!(
        passed <= allowed,
        "{passed} of {} passed in {elapsed:.2} s (at most {allowed}): {answers:?}",
        answers.len()
    );
    let limited = answers
        .iter()
        .find(|(_, status, _)| *status == 429)
        .expect("a submit was limited");
    assert_eq!(limited.2["code"], "rate-limited", "{limited:?}");
    // Both nodes limited the user: the count is the cluster's.
    for node in ["node-1", "node-2"] {
        assert!(
            answers
                .iter()
                .any(|(n, status, _)| n == node && *status == 429),
            "{node} never limited: {answers:?}"
        );
    }
    cluster.shutdown().await;
}
