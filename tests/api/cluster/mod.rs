//! The multi-process cluster harness (issue 16): N real `switchboard serve`
//! processes on loopback, one cluster — a fresh PostgreSQL database shared by
//! its nodes and a fresh Redis key prefix (`SWITCHBOARD_REDIS_PREFIX`) on the
//! Redis at `SWITCHBOARD_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`,
//! which `.ci/run` starts). Each node has its own id, port and URL
//! (`SWITCHBOARD_NODE_ID`, `SWITCHBOARD_NODE_URL`) and its log in the temp
//! folder. A node can be killed (SIGKILL) or terminated (SIGTERM).
//!
//! [`TestCluster::behind_a_balancer`] puts the nodes behind a load balancer
//! ([`balancer::Balancer`]) whose URL is their `SWITCHBOARD_PUBLIC_URL`, with
//! Twilio's auth token set, for the fake Twilio of the failover tests
//! ([`twilio_player`]).
//!
//! Clean-up: [`TestCluster::shutdown`] kills the nodes, deletes every key under
//! the cluster's prefix and drops its database; if a test panics first, `Drop`
//! still kills the nodes and deletes the keys. Clusters never share a prefix, a
//! database or a port, so their tests run in parallel.
//!
//! The binary is `CARGO_BIN_EXE_switchboard`, or `SWITCHBOARD_TEST_BIN` when set
//! (a target directory shared with other checkouts may hold another branch's
//! build; each node is probed for cluster mode before a test relies on it).

pub mod balancer;
mod bursts;
mod db_outage;
mod failover;
mod failover_ai;
mod failover_bench;
mod floor;
mod membership;
mod presence;
mod redis_outage;
mod split_brain;
pub mod twilio_player;

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use deadpool_redis::redis;
use serde_json::Value;

use crate::db::{drop_database, fresh_database_url, TestDb};
use crate::engine_process::binary;
use crate::fault_proxy::FaultProxy;
use crate::helpers::{
    free_port, spill_path_for, Softphone, WsPeer, ADMIN_TOKEN, FLOOR_MESSAGES, PATIENCE,
};

const REDIS_URL_VAR: &str = "SWITCHBOARD_TEST_REDIS_URL";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// Faster than the defaults so tests are short; the TTL stays well above the
/// beat, so a node starved for a moment on a busy machine is not dropped.
pub const HEARTBEAT_MS: u64 = 500;
pub const NODE_TTL_MS: u64 = 2000;

/// The membership timings a test cluster runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timings {
    /// [`HEARTBEAT_MS`] and [`NODE_TTL_MS`]: short, so tests are short.
    Tests,
    /// The engine's own defaults (`config/default.toml`), as production runs.
    Defaults,
}

pub fn redis_url() -> String {
    std::env::var(REDIS_URL_VAR).unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned())
}

/// The test Redis's address, for a [`FaultProxy`] in front of it.
pub fn redis_addr() -> std::net::SocketAddr {
    redis_url()
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .expect("host:port")
        .parse()
        .expect("the test Redis is at an IP address and port")
}

/// One engine process of a test cluster.
pub struct Node {
    pub id: String,
    /// `http://127.0.0.1:PORT`, its `SWITCHBOARD_NODE_URL`.
    pub url: String,
    child: Child,
    log: PathBuf,
    /// Waited for already (killed, or exited on its own).
    status: Option<ExitStatus>,
}

impl Node {
    /// SIGKILL: the process dies at once, leaving nothing behind on purpose.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }

    /// SIGTERM: the engine's graceful shutdown.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "SIGTERM to node {}", self.id);
    }

    /// Waits (within the patience) for the process to exit on its own.
    pub async fn exited(&mut self) -> ExitStatus {
        let (id, log) = (self.id.clone(), self.log.clone());
        let (status, child) = (&mut self.status, &mut self.child);
        let exited = eventually(
            async || status.or(child.try_wait().expect("the node's status")),
            || format!("node {id} did not exit; its log:\n{}", read_log(&log)),
        )
        .await;
        *status = Some(exited);
        exited
    }

    /// Killed, or exited and waited for.
    pub fn is_dead(&self) -> bool {
        self.status.is_some()
    }

    /// Everything the node wrote on stdout and stderr.
    pub fn log(&self) -> String {
        read_log(&self.log)
    }

    /// `GET path` on this node with the admin token: the status and the JSON
    /// body (`Null` when there is none), or `None` when the node does not answer.
    pub async fn get(&self, path: &str) -> Option<(u16, Value)> {
        let res = reqwest::Client::new()
            .get(format!("{}{path}", self.url))
            .bearer_auth(ADMIN_TOKEN)
            .timeout(PATIENCE)
            .send()
            .await
            .ok()?;
        let status = res.status().as_u16();
        let text = res.text().await.ok()?;
        Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// `POST /api/agents` on this node: the new agent's id and token.
    pub async fn create_agent(&self, name: &str, workspace: &str) -> (String, String) {
        let res = reqwest::Client::new()
            .post(format!("{}/api/agents", self.url))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({ "name": name, "workspace": workspace }))
            .send()
            .await
            .expect("the node answers");
        assert_eq!(res.status().as_u16(), 201);
        let body: Value = res.json().await.expect("JSON");
        let field = |name: &str| body[name].as_str().expect("a field").to_owned();
        (field("id"), field("token"))
    }

    /// A softphone on this node (passing over `welcome`, `roster`, `parking`).
    pub async fn softphone(&self, token: &str) -> Softphone {
        let url = format!(
            "{}/ws/agent?token={token}",
            self.url.replacen("http://", "ws://", 1)
        );
        Softphone {
            peer: WsPeer::connect(&url, None)
                .await
                .expect("the softphone connects"),
            hidden: FLOOR_MESSAGES,
        }
    }

    /// `GET /metrics` as text.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.url))
            .await
            .expect("the node answers /metrics")
            .text()
            .await
            .expect("a body")
    }

    /// `GET /api/cluster` on this node: its `nodes` by id (`alive` and the rest).
    pub async fn members(&self) -> Vec<Value> {
        let (status, body) = self.get("/api/cluster").await.unwrap_or_else(|| {
            panic!("node {} does not answer; its log:\n{}", self.id, self.log())
        });
        assert_eq!(status, 200, "GET /api/cluster on {}: {body}", self.id);
        body["nodes"].as_array().cloned().unwrap_or_default()
    }

    /// Polls `GET /api/cluster` on this node until `done` holds of its nodes
    /// (within the patience), and returns them.
    pub async fn until_members(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let last = std::cell::RefCell::new(Vec::new());
        eventually(
            async || {
                let members = self.members().await;
                let found = done(&members).then(|| members.clone());
                *last.borrow_mut() = members;
                found
            },
            || {
                format!(
                    "node {} never saw {what}; it lists {:?}",
                    self.id,
                    last.borrow()
                )
            },
        )
        .await
    }

    /// Polls until `GET path` answers `status`.
    pub async fn until_status(&self, path: &str, status: u16) -> Value {
        let last = std::cell::RefCell::new(None);
        eventually(
            async || {
                let answer = self.get(path).await;
                let found = match &answer {
                    Some((got, body)) if *got == status => Some(body.clone()),
                    _ => None,
                };
                *last.borrow_mut() = answer;
                found
            },
            || {
                format!(
                    "GET {path} on {} never answered {status} (last: {:?}); its log:\n{}",
                    self.id,
                    last.borrow(),
                    self.log()
                )
            },
        )
        .await
    }
}

fn read_log(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Tries `attempt` every 50 ms until it gives a value; past three times the patience
/// panics with `failure()`. (No test asserts how fast: only that it happens.)
pub(super) async fn eventually<T>(
    mut attempt: impl AsyncFnMut() -> Option<T>,
    failure: impl FnOnce() -> String,
) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE * 3;
    loop {
        if let Some(found) = attempt().await {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", failure());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `members` lists node `id` as `alive`.
pub fn lists(members: &[Value], id: &str, alive: bool) -> bool {
    members
        .iter()
        .any(|m| m["id"] == id && m["alive"] == Value::Bool(alive))
}

/// A cluster of engine processes sharing one database and one Redis prefix.
pub struct TestCluster {
    /// Every key of this cluster starts with it.
    pub prefix: String,
    pub secret: String,
    pub database_url: String,
    pub nodes: Vec<Node>,
    /// Configuration file and logs.
    dir: PathBuf,
    /// The balancer's URL when the cluster is behind one: the nodes'
    /// `SWITCHBOARD_PUBLIC_URL`, and Twilio's auth token is set.
    public_url: Option<String>,
    /// More environment for every node (an AI service's URL and key, say).
    env: Vec<(String, String)>,
}

/// `n` nodes (`node-1` … `node-n`), each ready (`/readyz` 200) and in cluster mode.
pub async fn spawn_cluster(n: usize) -> TestCluster {
    let mut cluster = TestCluster::empty().await;
    cluster.add_nodes(n).await;
    cluster
}

impl TestCluster {
    /// A cluster of one node, `name`, that reaches Redis through a
    /// [`FaultProxy`] the test can cut; the node is spawned, not yet waited for.
    pub async fn behind_a_redis_proxy(name: &str) -> (TestCluster, FaultProxy) {
        let proxy = FaultProxy::start(redis_addr()).await;
        let mut cluster = TestCluster::empty().await;
        let port = crate::helpers::free_port();
        let mut command = cluster.command(name, port);
        command.env("REDIS_URL", format!("redis://{}", proxy.addr));
        cluster.spawn_node(name, port, command);
        (cluster, proxy)
    }

    /// `n` nodes behind a [`balancer::Balancer`] (their public URL, every node a
    /// backend), Twilio's auth token set, `cluster_toml` added to their
    /// `[cluster]` section.
    pub async fn behind_a_balancer(
        n: usize,
        cluster_toml: &str,
    ) -> (TestCluster, balancer::Balancer) {
        TestCluster::behind_a_balancer_timed(n, Timings::Tests, cluster_toml).await
    }

    /// [`TestCluster::behind_a_balancer`] with the membership `timings` chosen.
    pub async fn behind_a_balancer_timed(
        n: usize,
        timings: Timings,
        cluster_toml: &str,
    ) -> (TestCluster, balancer::Balancer) {
        TestCluster::behind_a_balancer_with_env(n, timings, cluster_toml, &[]).await
    }

    /// [`TestCluster::behind_a_balancer_timed`] with `env` set on every node.
    pub async fn behind_a_balancer_with_env(
        n: usize,
        timings: Timings,
        cluster_toml: &str,
        env: &[(&str, &str)],
    ) -> (TestCluster, balancer::Balancer) {
        let balancer = balancer::Balancer::start().await;
        let mut cluster = TestCluster::empty_timed(timings, cluster_toml).await;
        cluster.public_url = Some(balancer.url.clone());
        cluster.env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        cluster.add_nodes(n).await;
        let urls: Vec<&str> = cluster.nodes.iter().map(|n| n.url.as_str()).collect();
        balancer.set_backends(&urls);
        (cluster, balancer)
    }

    /// A database, a prefix and a secret, no node yet.
    pub async fn empty() -> TestCluster {
        TestCluster::empty_with("").await
    }

    /// [`TestCluster::empty`] with `cluster_toml` added to the `[cluster]` section.
    pub async fn empty_with(cluster_toml: &str) -> TestCluster {
        TestCluster::empty_timed(Timings::Tests, cluster_toml).await
    }

    /// [`TestCluster::empty_with`] with the membership `timings` chosen.
    pub async fn empty_timed(timings: Timings, cluster_toml: &str) -> TestCluster {
        let timings = match timings {
            Timings::Tests => {
                format!("heartbeat_interval_ms = {HEARTBEAT_MS}\nnode_ttl_ms = {NODE_TTL_MS}\n")
            }
            Timings::Defaults => String::new(),
        };
        let run = uuid::Uuid::new_v4().simple().to_string();
        let database_url = fresh_database_url(TestDb::Postgres).await;
        let dir = std::env::temp_dir().join(format!("sb_cluster_{run}"));
        std::fs::create_dir_all(&dir).expect("the cluster's folder");
        std::fs::write(
            dir.join("node.toml"),
            format!(
                "[journal]\nspill_path = {spill:?}\n\n[cluster]\n{timings}{cluster_toml}\n",
                spill = spill_path_for(&database_url),
            ),
        )
        .expect("the nodes' configuration");
        TestCluster {
            prefix: format!("sbtest:{run}:"),
            secret: format!("cluster-secret-{run}"),
            database_url,
            nodes: Vec::new(),
            dir,
            public_url: None,
            env: Vec::new(),
        }
    }

    /// The command that starts node `id` of this cluster on `port`; a test may
    /// change its environment (another secret, another Redis) before spawning.
    pub fn command(&self, id: &str, port: u16) -> Command {
        let mut command = Command::new(binary());
        command
            .args([
                "--config",
                &self.dir.join("node.toml").display().to_string(),
                "serve",
            ])
            .env("DATABASE_URL", &self.database_url)
            .env("REDIS_URL", redis_url())
            .env("SWITCHBOARD_REDIS_PREFIX", &self.prefix)
            .env("SWITCHBOARD_CLUSTER_SECRET", &self.secret)
            .env("SWITCHBOARD_NODE_ID", id)
            .env("SWITCHBOARD_NODE_URL", format!("http://127.0.0.1:{port}"))
            .env("SWITCHBOARD_BIND", format!("127.0.0.1:{port}"))
            .env("SWITCHBOARD_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "info")
            .env_remove("SWITCHBOARD_PUBLIC_URL")
            .env_remove("TWILIO_AUTH_TOKEN")
            .stdin(Stdio::null());
        if let Some(public_url) = &self.public_url {
            command
                .env("SWITCHBOARD_PUBLIC_URL", public_url)
                .env("TWILIO_AUTH_TOKEN", crate::helpers::TWILIO_TOKEN);
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Spawns `command` as node `id` (its output to its log), not waiting.
    pub fn spawn_node(&mut self, id: &str, port: u16, mut command: Command) -> &mut Node {
        let log = self.dir.join(format!("{id}.log"));
        let file = std::fs::File::create(&log).expect("a log file");
        let child = command
            .stdout(file.try_clone().expect("the log"))
            .stderr(file)
            .spawn()
            .expect("the switchboard binary starts");
        self.nodes.push(Node {
            id: id.to_owned(),
            url: format!("http://127.0.0.1:{port}"),
            child,
            log,
            status: None,
        });
        self.nodes.last_mut().expect("just pushed")
    }

    /// Starts `n` more nodes at once (`node-K` numbered on from the last) and
    /// waits until each is ready.
    pub async fn add_nodes(&mut self, n: usize) {
        let first = self.nodes.len();
        for k in first..first + n {
            let id = format!("node-{}", k + 1);
            let port = free_port();
            let command = self.command(&id, port);
            self.spawn_node(&id, port, command);
        }
        for node in &self.nodes[first..] {
            wait_ready(node).await;
        }
    }

    pub fn node(&self, id: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    pub fn node_mut(&mut self, id: &str) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    /// The keys under this cluster's prefix now.
    pub fn keys(&self) -> Vec<String> {
        let mut conn = redis_connection();
        redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query(&mut conn)
            .expect("KEYS")
    }

    /// Kills every node, deletes the cluster's keys and drops its database.
    pub async fn shutdown(mut self) {
        self.stop();
        drop_database(&self.database_url).await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// Kills the nodes, then deletes the keys; never panics (it runs in `Drop`,
    /// maybe while a test is failing): a Redis that cannot be reached leaves the
    /// keys, and says so.
    fn stop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        let deleted = redis::Client::open(redis_url())
            .and_then(|client| client.get_connection())
            .and_then(|mut conn| {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{}*", self.prefix))
                    .query(&mut conn)?;
                if !keys.is_empty() {
                    redis::cmd("DEL").arg(keys).query::<()>(&mut conn)?;
                }
                Ok(())
            });
        if let Err(err) = deleted {
            eprintln!("the keys under {} are left in Redis: {err}", self.prefix);
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn redis_connection() -> redis::Connection {
    redis::Client::open(redis_url())
        .and_then(|client| client.get_connection())
        .unwrap_or_else(|e| {
            panic!(
                "Redis is required by the cluster tests and could not be reached \
                 ({REDIS_URL_VAR}, default {DEFAULT_REDIS_URL}): {e}"
            )
        })
}

/// Waits until `node` is ready, and checks it is a cluster node of this build.
async fn wait_ready(node: &Node) {
    node.until_status("/readyz", 200).await;
    let (status, body) = node.get("/api/cluster").await.unwrap_or_default();
    assert!(
        status == 200 && body["mode"] == "cluster",
        "{} is not this build in cluster mode (GET /api/cluster: {status} {body}): rebuild it, \
         or point SWITCHBOARD_TEST_BIN at this branch's binary",
        binary().display()
    );
}
