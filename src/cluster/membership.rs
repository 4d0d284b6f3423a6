//! Membership (issue 16, item 1): each node writes its record — id, URL, last
//! heartbeat, calls and seats — to its membership key with a time to live
//! (`cluster.node_ttl_ms`, at most 5 s) and refreshes it every
//! `cluster.heartbeat_interval_ms`. A node that dies stops refreshing, its key
//! expires and the others list it as not alive within the TTL. The same record
//! is kept in the cluster's `nodes` hash, so a gone node is still listed (not
//! alive) until `cluster.forget_after_secs`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis;
use serde::{Deserialize, Serialize};
use switchboard_actors::stats::EngineStats;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Cluster, ClusterError};

/// A node as it last described itself (JSON in Redis).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: String,
    /// The node's own URL (`SWITCHBOARD_NODE_URL`).
    pub url: String,
    /// Random per process: tells a restarted node from the run before it.
    pub incarnation: String,
    /// Unix milliseconds.
    pub started_at_ms: i64,
    /// Unix milliseconds of the beat that wrote this record.
    pub last_heartbeat_ms: i64,
    /// Calls in progress on the node.
    pub calls: i64,
    /// Softphones connected to the node.
    pub seats: i64,
    /// The node left on purpose (a shutdown), rather than stopped beating.
    #[serde(default)]
    pub left: bool,
}

/// A node of the cluster and whether its membership key is still there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub record: NodeRecord,
    pub alive: bool,
}

/// Now, in Unix milliseconds.
pub(super) fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// How often (in beats) a node forgets the records of nodes gone longer than
/// `cluster.forget_after_secs`.
const PRUNE_EVERY_BEATS: u64 = 60;

impl Cluster {
    /// Writes this node's record (membership key with its TTL, and the `nodes`
    /// hash) in one transaction.
    pub(super) async fn beat(&self, calls: i64, seats: i64) -> Result<(), ClusterError> {
        let record = NodeRecord {
            calls,
            seats,
            last_heartbeat_ms: now_ms(),
            ..self.inner.record.clone()
        };
        self.write_record(&record, true).await
    }

    async fn write_record(&self, record: &NodeRecord, alive: bool) -> Result<(), ClusterError> {
        let json = serde_json::to_string(record).map_err(ClusterError::corrupt)?;
        let keys = &self.inner.keys;
        let mut pipe = redis::pipe();
        pipe.atomic();
        if alive {
            pipe.cmd("SET")
                .arg(keys.node(&record.id))
                .arg(&json)
                .arg("PX")
                .arg(self.inner.ttl_ms())
                .ignore();
        } else {
            pipe.cmd("DEL").arg(keys.node(&record.id)).ignore();
        }
        pipe.cmd("HSET")
            .arg(keys.nodes())
            .arg(&record.id)
            .arg(&json)
            .ignore();
        let mut conn = self.connection().await?;
        pipe.query_async::<()>(&mut *conn)
            .await
            .map_err(ClusterError::redis)
    }

    /// This node leaves: its membership key is deleted (the others see it gone
    /// at once) and its record says it left.
    pub async fn leave(&self) -> Result<(), ClusterError> {
        if let Err(err) = self.forget_own_seats().await {
            tracing::warn!(error = %err, "leaving: this node's seats stay until its key expires");
        }
        let record = NodeRecord {
            last_heartbeat_ms: now_ms(),
            left: true,
            calls: 0,
            seats: 0,
            ..self.inner.record.clone()
        };
        self.write_record(&record, false).await
    }

    /// The record under a node's membership key, if it is alive.
    pub(super) async fn alive_record(&self, id: &str) -> Result<Option<NodeRecord>, ClusterError> {
        let mut conn = self.connection().await?;
        let raw: Option<String> = redis::cmd("GET")
            .arg(self.inner.keys.node(id))
            .query_async(&mut *conn)
            .await
            .map_err(ClusterError::redis)?;
        raw.map(|raw| serde_json::from_str(&raw).map_err(ClusterError::corrupt))
            .transpose()
    }

    /// Every node of the cluster not forgotten yet, by id: alive when its
    /// membership key is there (its record then is that key's, the freshest).
    pub async fn members(&self) -> Result<Vec<Member>, ClusterError> {
        let keys = &self.inner.keys;
        let mut conn = self.connection().await?;
        let records: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(keys.nodes())
            .query_async(&mut *conn)
            .await
            .map_err(ClusterError::redis)?;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let live: Vec<Option<String>> = redis::cmd("MGET")
            .arg(
                records
                    .iter()
                    .map(|(id, _)| keys.node(id))
                    .collect::<Vec<_>>(),
            )
            .query_async(&mut *conn)
            .await
            .map_err(ClusterError::redis)?;
        let forget_before = now_ms() - self.inner.forget_after_ms();
        let mut members = Vec::with_capacity(records.len());
        for ((id, last), live) in records.into_iter().zip(live) {
            let alive = live.is_some();
            let raw = live.unwrap_or(last);
            let record: NodeRecord = match serde_json::from_str(&raw) {
                Ok(record) => record,
                Err(err) => {
                    tracing::warn!(node = %id, error = %err, "a cluster node's record does not parse");
                    continue;
                }
            };
            if alive || record.last_heartbeat_ms >= forget_before {
                members.push(Member { record, alive });
            }
        }
        members.sort_by(|a, b| a.record.id.cmp(&b.record.id));
        Ok(members)
    }

    /// Drops the records of nodes gone longer than `cluster.forget_after_secs`.
    async fn prune(&self) -> Result<(), ClusterError> {
        let listed: Vec<String> = self
            .members()
            .await?
            .into_iter()
            .map(|m| m.record.id)
            .collect();
        let mut conn = self.connection().await?;
        let all: Vec<String> = redis::cmd("HKEYS")
            .arg(self.inner.keys.nodes())
            .query_async(&mut *conn)
            .await
            .map_err(ClusterError::redis)?;
        let forgotten: Vec<&String> = all.iter().filter(|id| !listed.contains(id)).collect();
        if !forgotten.is_empty() {
            redis::cmd("HDEL")
                .arg(self.inner.keys.nodes())
                .arg(forgotten)
                .query_async::<()>(&mut *conn)
                .await
                .map_err(ClusterError::redis)?;
        }
        Ok(())
    }

    /// Starts this node's heartbeat: a beat every `cluster.heartbeat_interval_ms`
    /// with the engine's calls and seats. A failed beat is logged once per
    /// outage (and its end once); the node keeps beating.
    pub fn start_heartbeat(&self, stats: Arc<EngineStats>) -> Heartbeat {
        let (stop, mut stopped) = watch::channel(false);
        let cluster = self.clone();
        let every = self.inner.heartbeat_interval;
        let task = tokio::spawn(async move {
            let mut failing = false;
            let mut beats: u64 = 0;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stopped.changed() => return,
                }
                let calls = stats.calls_active.load(Ordering::Relaxed);
                let seats = stats.seats_connected.load(Ordering::Relaxed);
                match cluster.beat(calls, seats).await {
                    Ok(()) if failing => {
                        failing = false;
                        tracing::info!("cluster heartbeat written again: Redis answers");
                    }
                    Ok(()) => {}
                    Err(err) if !failing => {
                        failing = true;
                        tracing::warn!(
                            error = %err,
                            "cluster heartbeat failed: the other nodes will see this node \
                             gone once its membership key expires"
                        );
                    }
                    Err(_) => {}
                }
                beats += 1;
                if !failing && beats % PRUNE_EVERY_BEATS == 0 {
                    if let Err(err) = cluster.prune().await {
                        tracing::debug!(error = %err, "forgetting gone cluster nodes failed");
                    }
                }
            }
        });
        Heartbeat {
            stop,
            task,
            cluster: self.clone(),
        }
    }
}

/// The running heartbeat; [`Heartbeat::stop`] ends it and leaves the cluster.
pub struct Heartbeat {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    cluster: Cluster,
}

impl Heartbeat {
    /// Stops beating, then leaves (the membership key is deleted), within the
    /// Redis timeout; a leave that fails is logged (the key expires anyway).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let limit = self.cluster.inner.timeout + Duration::from_millis(100);
        match tokio::time::timeout(limit, self.cluster.leave()).await {
            Ok(Ok(())) => tracing::info!("left the cluster"),
            Ok(Err(err)) => tracing::warn!(error = %err, "leaving the cluster failed"),
            Err(_) => tracing::warn!("leaving the cluster timed out"),
        }
    }
}
