//! What failover (issue 16, item 5) asks of Redis: whether a call's owner is
//! alive — its membership key is there —, for one node (a resume) or many (the
//! survivors' sweep of dead nodes' calls), whether its key shows a missed beat
//! (a sign of death before the key expires), and how long a dead node's key may
//! still look alive (`node_ttl`). The adoption itself is a compare-and-set on
//! the call's row in the database, not here.

use std::collections::HashSet;
use std::time::Duration;

use deadpool_redis::redis;

use super::{Cluster, ClusterError};

impl Cluster {
    /// The node's membership key is there (it beat within `cluster.node_ttl_ms`).
    pub async fn node_alive(&self, id: &str) -> Result<bool, ClusterError> {
        Ok(self.alive_record(id).await?.is_some())
    }

    /// The URL of node `id` (`SWITCHBOARD_NODE_URL`) if it is alive.
    pub async fn alive_node_url(&self, id: &str) -> Result<Option<String>, ClusterError> {
        Ok(self.alive_record(id).await?.map(|record| record.url))
    }

    /// Which of `ids` are alive, in one round trip.
    pub async fn alive_among(&self, ids: &[String]) -> Result<HashSet<String>, ClusterError> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.inner.keys.node(id)).collect();
        let mut conn = self.connection().await?;
        let live: Vec<Option<String>> = redis::cmd("MGET")
            .arg(keys)
            .query_async(&mut *conn)
            .await
            .map_err(ClusterError::redis)?;
        Ok(ids
            .iter()
            .zip(live)
            .filter(|(_, record)| record.is_some())
            .map(|(id, _)| id.clone())
            .collect())
    }

    /// How long after its last beat a dead node still looks alive.
    pub fn node_ttl(&self) -> Duration {
        self.inner.node_ttl
    }

    /// Node `id`'s membership key is there but has not been refreshed for more
    /// than one and a half beat intervals: a beat is missed. Read from the key's
    /// remaining time to live (`PTTL`, Redis's clock alone: no two nodes' clocks
    /// are compared). A key that is gone is not "missed" here: it is dead.
    pub async fn beat_missed(&self, id: &str) -> Result<bool, ClusterError> {
        let mut conn = self.connection().await?;
        let left_ms: i64 = redis::cmd("PTTL")
            .arg(self.inner.keys.node(id))
            .query_async(&mut *conn)
            .await
            .map_err(ClusterError::redis)?;
        Ok(left_ms >= 0 && (left_ms as u128) < self.missed_beat_below().as_millis())
    }

    /// A membership key with less than this left has missed a beat: each beat
    /// sets it to `node_ttl`, and the next comes an interval later (plus the
    /// beat's own latency, for which half an interval is allowed).
    fn missed_beat_below(&self) -> Duration {
        let interval = self.inner.heartbeat_interval;
        self.inner
            .node_ttl
            .saturating_sub(interval)
            .saturating_sub(interval / 2)
    }
}
