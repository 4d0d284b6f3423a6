//! Cluster membership and trust (issue 16, items 1, 7 and 8), with real engine
//! processes: nodes find each other through Redis, a dead node's key expires, a
//! node with the wrong secret never joins, prefixes keep clusters apart, and
//! readiness follows Redis.

use deadpool_redis::redis;
use serde_json::Value;

use super::{lists, redis_url, spawn_cluster, TestCluster};

fn ids(members: &[Value]) -> Vec<&str> {
    members.iter().filter_map(|m| m["id"].as_str()).collect()
}

#[actix_web::test]
async fn three_nodes_see_each_other_alive_from_every_node() {
    let cluster = spawn_cluster(3).await;
    for node in &cluster.nodes {
        let members = node
            .until_members("all three alive", |m| {
                ["node-1", "node-2", "node-3"]
                    .iter()
                    .all(|id| lists(m, id, true))
            })
            .await;
        assert_eq!(ids(&members), ["node-1", "node-2", "node-3"]);
        for member in &members {
            let id = member["id"].as_str().expect("an id");
            assert_eq!(member["url"], cluster.node(id).url, "{member}");
            assert_eq!(member["calls"], 0, "{member}");
            assert_eq!(member["seats"], 0, "{member}");
            let heartbeat = member["last_heartbeat"].as_str().expect("a heartbeat");
            assert!(
                heartbeat.parse::<jiff::Timestamp>().is_ok(),
                "RFC 3339: {heartbeat}"
            );
        }
        let metrics = node.metrics().await;
        assert!(
            metrics.contains("switchboard_cluster_nodes_alive 3"),
            "{metrics}"
        );
        assert!(
            metrics.contains("switchboard_cluster_node_calls{node=\"node-2\"} 0"),
            "{metrics}"
        );
        let (status, ready) = node.get("/readyz").await.expect("ready answers");
        assert_eq!(status, 200, "{ready}");
        assert_eq!(ready["checks"]["cluster"]["status"], "ok", "{ready}");
    }
    // Redis holds the secret's verifier, never the secret.
    let mut conn = redis::Client::open(redis_url())
        .and_then(|c| c.get_connection())
        .expect("Redis");
    let verifier: String = redis::cmd("GET")
        .arg(format!("{}cluster:verifier", cluster.prefix))
        .query(&mut conn)
        .expect("a verifier");
    assert_eq!(verifier.len(), 64, "{verifier}");
    for key in cluster.keys() {
        let dump: Vec<u8> = redis::cmd("DUMP").arg(&key).query(&mut conn).expect("DUMP");
        assert!(
            !String::from_utf8_lossy(&dump).contains(&cluster.secret),
            "{key} holds the secret"
        );
    }
    cluster.shutdown().await;
}

#[actix_web::test]
async fn a_killed_node_is_marked_not_alive_once_its_key_expires_and_a_terminated_one_at_once() {
    let mut cluster = spawn_cluster(3).await;
    let survivor = &cluster.nodes[0];
    survivor
        .until_members("all three alive", |m| {
            ["node-1", "node-2", "node-3"]
                .iter()
                .all(|id| lists(m, id, true))
        })
        .await;

    cluster.node_mut("node-2").kill();
    for node in [cluster.node("node-1"), cluster.node("node-3")] {
        let members = node
            .until_members("node-2 not alive", |m| lists(m, "node-2", false))
            .await;
        assert!(lists(&members, "node-1", true) && lists(&members, "node-3", true));
    }

    // SIGTERM: the node leaves before it exits, so no TTL is waited for; the
    // survivor's listing is checked right after the exit, once.
    let leaving = cluster.node_mut("node-3");
    leaving.terminate();
    let status = leaving.exited().await;
    assert!(status.success(), "a drained node exits 0: {status:?}");
    assert!(
        leaving.log().contains("left the cluster"),
        "{}",
        leaving.log()
    );
    let members = cluster.node("node-1").members().await;
    assert!(lists(&members, "node-3", false), "{members:?}");
    cluster.shutdown().await;
}

#[actix_web::test]
async fn a_node_with_the_wrong_secret_does_not_join_and_says_why() {
    let mut cluster = spawn_cluster(1).await;
    let port = crate::helpers::free_port();
    let mut command = cluster.command("intruder", port);
    command.env("SWITCHBOARD_CLUSTER_SECRET", "not-the-cluster-secret");
    let intruder = cluster.spawn_node("intruder", port, command);
    let status = intruder.exited().await;
    let log = intruder.log();
    assert!(!status.success(), "refused: {status:?}\n{log}");
    let refusal = log
        .lines()
        .find(|line| line.contains("does not match") && line.contains("ERROR"))
        .unwrap_or_else(|| panic!("the refusal is logged at error level:\n{log}"));
    assert!(refusal.contains("SWITCHBOARD_CLUSTER_SECRET"), "{refusal}");
    assert!(
        !log.contains("not-the-cluster-secret"),
        "the secret is never logged"
    );
    assert!(
        !log.contains("database connected"),
        "a refused node never touches the shared database:\n{log}"
    );
    let members = cluster.node("node-1").members().await;
    assert_eq!(ids(&members), ["node-1"], "{members:?}");
    cluster.shutdown().await;
}

#[actix_web::test]
async fn a_node_without_its_url_or_the_secret_is_refused_at_start_with_the_variable_named() {
    let mut cluster = TestCluster::empty().await;
    for (id, missing) in [
        ("no-url", "SWITCHBOARD_NODE_URL"),
        ("no-secret", "SWITCHBOARD_CLUSTER_SECRET"),
    ] {
        let port = crate::helpers::free_port();
        let mut command = cluster.command(id, port);
        command.env_remove(missing);
        let node = cluster.spawn_node(id, port, command);
        let status = node.exited().await;
        let log = node.log();
        assert!(!status.success(), "{id}: {status:?}\n{log}");
        assert!(
            log.contains(&format!("but {missing}")),
            "{id}: the variable is named:\n{log}"
        );
    }
    assert!(cluster.keys().is_empty(), "{:?}", cluster.keys());
    cluster.shutdown().await;
}

#[actix_web::test]
async fn two_clusters_with_different_prefixes_on_one_redis_do_not_see_each_other() {
    let (blue, green) = futures_util::join!(spawn_cluster(2), spawn_cluster(2));
    for cluster in [&blue, &green] {
        for node in &cluster.nodes {
            let members = node
                .until_members("both of its own nodes", |m| {
                    lists(m, "node-1", true) && lists(m, "node-2", true)
                })
                .await;
            assert_eq!(ids(&members), ["node-1", "node-2"]);
            for member in &members {
                let id = member["id"].as_str().expect("an id");
                assert_eq!(
                    member["url"],
                    cluster.node(id).url,
                    "its own node-1 and node-2"
                );
            }
        }
    }
    assert!(blue.keys().iter().all(|k| k.starts_with(&blue.prefix)));
    assert!(!blue.keys().iter().any(|k| k.starts_with(&green.prefix)));
    blue.shutdown().await;
    green.shutdown().await;
}

#[actix_web::test]
async fn a_node_is_not_ready_while_redis_is_unreachable_and_ready_again_after() {
    let (cluster, proxy) = TestCluster::behind_a_redis_proxy("node-1").await;
    let node = cluster.node("node-1");
    super::wait_ready(node).await;

    proxy.cut();
    let body = node.until_status("/readyz", 503).await;
    assert_eq!(body["failed"], serde_json::json!(["cluster"]), "{body}");
    assert_eq!(body["checks"]["database"]["status"], "ok", "{body}");
    let (status, _) = node.get("/healthz").await.expect("alive");
    assert_eq!(status, 200, "liveness does not depend on Redis");
    let (status, body) = node.get("/api/cluster").await.expect("answers");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "cluster-unavailable", "{body}");
    assert!(
        node.metrics()
            .await
            .contains("switchboard_cluster_redis_up 0"),
        "the scrape says Redis is down"
    );

    proxy.heal();
    node.until_status("/readyz", 200).await;
    node.until_members("itself alive again", |m| lists(m, "node-1", true))
        .await;
    cluster.shutdown().await;
}

#[actix_web::test]
async fn a_second_node_with_a_live_nodes_id_at_another_url_is_refused() {
    let mut cluster = spawn_cluster(1).await;
    let port = crate::helpers::free_port();
    let command = cluster.command("node-1", port);
    let twin = cluster.spawn_node("node-1", port, command);
    let status = twin.exited().await;
    let log = twin.log();
    assert!(!status.success(), "refused: {status:?}\n{log}");
    assert!(
        log.lines()
            .any(|line| line.contains("ERROR") && line.contains("already alive")),
        "{log}"
    );
    assert!(
        !log.contains("database connected"),
        "the twin never closes node-1's calls in the shared database:\n{log}"
    );
    let first = &cluster.nodes[0];
    let members = first.members().await;
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members[0]["url"], first.url, "the first node keeps its id");
    cluster.shutdown().await;
}

#[actix_web::test]
async fn a_single_node_lists_itself_alone_and_only_to_the_admin() {
    let app = crate::helpers::spawn_app().await;
    let (status, body) = app.get_json("/api/cluster").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mode"], "single", "{body}");
    let nodes = body["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 1, "{body}");
    assert_eq!(nodes[0]["alive"], true, "{body}");
    assert_eq!(nodes[0]["id"], body["node"], "{body}");
    let (status, _) = app.get("/api/cluster", None).await;
    assert_eq!(status, 401);
    let (status, _) = app.get("/api/cluster", Some("not-the-admin")).await;
    assert_eq!(status, 401);
    let (status, ready) = app.get_json("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert!(
        ready["checks"].get("cluster").is_none(),
        "no cluster check: {ready}"
    );
    let (_, metrics) = app.get("/metrics", None).await;
    assert!(
        !String::from_utf8_lossy(&metrics).contains("switchboard_cluster_"),
        "no cluster gauges on a single node"
    );
}
