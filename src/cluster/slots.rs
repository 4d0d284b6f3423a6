//! Parking slots shared by the nodes (issue 16, item 2): a workspace's slot
//! numbers are one sequence across the cluster, so two calls parked at the same
//! instant on two nodes never show the same number. Each workspace's slots are a
//! Redis hash (slot → `"node call"`); a slot is taken by one Lua script — the
//! lowest slot nobody alive holds, so a dead node's slots are reused without
//! anyone cleaning up after it — and given back by a compare-and-delete, never a
//! read-then-write.

use std::future::Future;
use std::pin::Pin;

use deadpool_redis::redis;
use switchboard_actors::parking::SharedSlots;
use switchboard_actors::{CallId, Workspace};

use super::{Cluster, ClusterError};

/// The most slots a workspace numbers (the lot shows a number per parked call).
pub const MAX_SLOTS: u32 = 9_999;

/// KEYS[1] the workspace's slots; ARGV[1] the holder (`node call`), ARGV[2] the
/// most slots, ARGV[3] the membership key of a node without its id.
const TAKE: &str = r"
for i = 1, tonumber(ARGV[2]) do
  local held = redis.call('HGET', KEYS[1], i)
  local node = held and string.match(held, '^(%S+) ')
  if not held or (node and redis.call('EXISTS', ARGV[3] .. node) == 0) then
    redis.call('HSET', KEYS[1], i, ARGV[1])
    return i
  end
end
return 0";

/// KEYS[1] the workspace's slots; ARGV[1] the slot, ARGV[2] the holder.
const RELEASE: &str = r"
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0";

/// The cluster's parking slots, for this node's parking lot.
pub struct ClusterSlots {
    cluster: Cluster,
}

impl ClusterSlots {
    pub fn new(cluster: Cluster) -> Self {
        ClusterSlots { cluster }
    }
}

impl Cluster {
    fn holder(&self, call_id: &CallId) -> String {
        format!("{} {call_id}", self.node_id())
    }

    /// Takes the lowest slot of `workspace` free across the cluster for `call_id`.
    pub async fn take_slot(&self, workspace: &str, call_id: &CallId) -> Result<u32, ClusterError> {
        let mut conn = self.connection().await?;
        let slot: u32 = redis::cmd("EVAL")
            .arg(TAKE)
            .arg(1)
            .arg(self.inner.keys.parking(workspace))
            .arg(self.holder(call_id))
            .arg(MAX_SLOTS)
            .arg(self.inner.keys.node(""))
            .query_async(&mut *conn)
            .await
            .map_err(ClusterError::redis)?;
        match slot {
            0 => Err(ClusterError::Unreachable(format!(
                "every one of the {MAX_SLOTS} parking slots of {workspace} is held"
            ))),
            slot => Ok(slot),
        }
    }

    /// Gives `slot` back if `call_id` (of this node) still holds it.
    pub async fn release_slot(
        &self,
        workspace: &str,
        slot: u32,
        call_id: &CallId,
    ) -> Result<(), ClusterError> {
        let mut conn = self.connection().await?;
        redis::cmd("EVAL")
            .arg(RELEASE)
            .arg(1)
            .arg(self.inner.keys.parking(workspace))
            .arg(slot)
            .arg(self.holder(call_id))
            .query_async::<i64>(&mut *conn)
            .await
            .map(drop)
            .map_err(ClusterError::redis)
    }
}

impl SharedSlots for ClusterSlots {
    fn take(
        &self,
        workspace: Workspace,
        call_id: CallId,
    ) -> Pin<Box<dyn Future<Output = Option<u32>> + Send>> {
        let cluster = self.cluster.clone();
        Box::pin(async move {
            match cluster.take_slot(workspace.as_str(), &call_id).await {
                Ok(slot) => Some(slot),
                Err(err) => {
                    tracing::warn!(%workspace, %call_id, error = %err, "no cluster parking slot; this node numbers it");
                    None
                }
            }
        })
    }

    fn release(&self, workspace: Workspace, slot: u32, call_id: CallId) {
        let cluster = self.cluster.clone();
        tokio::spawn(async move {
            if let Err(err) = cluster
                .release_slot(workspace.as_str(), slot, &call_id)
                .await
            {
                tracing::warn!(%workspace, slot, error = %err, "a cluster parking slot was not given back; it is reused once its node is gone");
            }
        });
    }
}
