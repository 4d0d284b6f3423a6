//! One floor's first half (issue 16, item 3): this node's seats published to
//! Redis. Every change of a seat here (connected, presence, call, gone) becomes
//! the seat's record in the workspace's hash (`{prefix}presence:{workspace}`,
//! agent id → JSON with the node that holds the socket) and a message on the
//! `{prefix}presence` channel, so every node can read the whole floor
//! ([`Cluster::seats`]) and follow its changes.
//!
//! The changes come from the ring coordinator itself: the publisher registers as
//! one more [`FloorFeed`] (as a console does), so it gets the floor's seats
//! first and every seat change after, in order, from the one place that owns
//! them. The feed never blocks the coordinator: it queues into a bounded channel
//! ([`QUEUE`]); when that is full, or Redis fails, the publisher asks the
//! coordinator for a fresh snapshot once it can write again, and republishes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis;
use serde::{Deserialize, Serialize};
use switchboard_actors::coordinator::{
    CoordinatorHandle, FloorEvent, FloorFeed, SeatState, Snapshot,
};
use switchboard_actors::seat::Presence;
use tokio::sync::mpsc;

use super::membership::now_ms;
use super::{Cluster, ClusterError};

/// Seat changes waiting for Redis; past it the publisher resynchronises.
pub const QUEUE: usize = 4096;
/// The coordinator knows the publisher by this id (consoles count up from 0).
const FEED_ID: u64 = u64::MAX;
/// The wait before trying Redis again after a failed write.
const RETRY: Duration = Duration::from_millis(500);

/// Deletes a seat's field only if this node wrote it (another node may hold the
/// agent's seat now); one atomic step, no read-then-write.
const DELETE_IF_MINE: &str = r"
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and cjson.decode(v).node == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0";

/// A seat as the cluster sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatRecord {
    pub agent_id: String,
    pub name: String,
    pub workspace: String,
    pub presence: Presence,
    pub call_id: Option<String>,
    /// The node whose softphone socket this is.
    pub node: String,
    /// Unix milliseconds of the change.
    pub at_ms: i64,
}

impl SeatRecord {
    /// `seat` as held by `node`, at `at_ms`.
    pub fn of(seat: SeatState, node: &str, at_ms: i64) -> SeatRecord {
        SeatRecord {
            agent_id: seat.agent_id.to_string(),
            name: seat.name,
            workspace: seat.workspace.to_string(),
            presence: seat.presence,
            call_id: seat.call_id.map(|id| id.to_string()),
            node: node.to_owned(),
            at_ms,
        }
    }
}

/// What goes out on the `presence` channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PresenceChange {
    Seat(SeatRecord),
    SeatGone {
        agent_id: String,
        workspace: String,
        node: String,
    },
}

enum Change {
    Floor(Vec<SeatState>),
    Seat(SeatState),
    Gone { agent_id: String, workspace: String },
}

/// The coordinator's feed into the publisher.
struct PresenceFeed {
    queue: mpsc::Sender<Change>,
    /// A change was dropped (queue full): the publisher must resynchronise.
    lost: Arc<AtomicBool>,
}

impl PresenceFeed {
    fn queue(&self, change: Change) -> bool {
        match self.queue.try_send(change) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.lost.store(true, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

impl FloorFeed for PresenceFeed {
    fn snapshot(&self, snapshot: Snapshot) -> bool {
        self.queue(Change::Floor(snapshot.seats))
    }

    fn event(&self, event: FloorEvent) -> bool {
        match event {
            FloorEvent::Seat(seat) => self.queue(Change::Seat(seat)),
            FloorEvent::SeatGone {
                agent_id,
                workspace,
            } => self.queue(Change::Gone {
                agent_id: agent_id.to_string(),
                workspace: workspace.to_string(),
            }),
            _ => true,
        }
    }

    /// This node publishes its own seats only.
    fn whole_cluster(&self) -> bool {
        false
    }
}

impl Cluster {
    fn presence_key(&self, workspace: &str) -> String {
        format!("{}presence:{workspace}", self.inner.keys.prefix())
    }

    fn workspaces_key(&self) -> String {
        format!("{}presence:workspaces", self.inner.keys.prefix())
    }

    fn channel(&self) -> String {
        format!("{}presence", self.inner.keys.prefix())
    }

    fn record(&self, seat: &SeatState) -> SeatRecord {
        SeatRecord::of(seat.clone(), self.node_id(), now_ms())
    }

    /// Publishes this node's seats from now on: registers with the coordinator
    /// (which answers with the seats it has) and spawns the writer.
    pub async fn start_presence(&self, coordinator: CoordinatorHandle) -> Result<(), ClusterError> {
        let (queue, mut changes) = mpsc::channel(QUEUE);
        let lost = Arc::new(AtomicBool::new(false));
        let feed = Arc::new(PresenceFeed {
            queue,
            lost: Arc::clone(&lost),
        });
        coordinator
            .register_supervisor(FEED_ID, feed.clone())
            .await
            .map_err(|e| ClusterError::Unreachable(e.to_string()))?;
        let cluster = self.clone();
        tokio::spawn(async move {
            let mut failing = false;
            while let Some(change) = changes.recv().await {
                let mut written = cluster.publish(&change).await;
                while let Err(err) = written {
                    if !failing {
                        failing = true;
                        tracing::warn!(error = %err, "publishing seat presence to Redis failed; retrying");
                    }
                    tokio::time::sleep(RETRY).await;
                    // What changed meanwhile is in the next snapshot.
                    lost.store(true, Ordering::Relaxed);
                    written = cluster.ping().await;
                }
                if std::mem::take(&mut failing) {
                    tracing::info!("seat presence published to Redis again");
                }
                if lost.swap(false, Ordering::Relaxed) {
                    // A fresh snapshot: the coordinator forgets the feed and
                    // takes it again, answering with its seats now.
                    coordinator.unregister_supervisor(FEED_ID);
                    if let Err(err) = coordinator.register_supervisor(FEED_ID, feed.clone()).await {
                        tracing::error!(error = %err, "seat presence: the coordinator is gone");
                        return;
                    }
                }
            }
        });
        Ok(())
    }

    async fn publish(&self, change: &Change) -> Result<(), ClusterError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        match change {
            Change::Floor(seats) => {
                self.forget_own_seats().await?;
                for seat in seats {
                    self.set_seat(&mut pipe, &self.record(seat))?;
                }
            }
            Change::Seat(seat) => self.set_seat(&mut pipe, &self.record(seat))?,
            Change::Gone {
                agent_id,
                workspace,
            } => {
                pipe.cmd("EVAL")
                    .arg(DELETE_IF_MINE)
                    .arg(1)
                    .arg(self.presence_key(workspace))
                    .arg(agent_id)
                    .arg(self.node_id())
                    .ignore();
                let gone = PresenceChange::SeatGone {
                    agent_id: agent_id.clone(),
                    workspace: workspace.clone(),
                    node: self.node_id().to_owned(),
                };
                pipe.cmd("PUBLISH")
                    .arg(self.channel())
                    .arg(serde_json::to_string(&gone).map_err(ClusterError::corrupt)?)
                    .ignore();
            }
        }
        let mut conn = self.connection().await?;
        pipe.query_async::<()>(&mut *conn)
            .await
            .map_err(ClusterError::redis)
    }

    fn set_seat(
        &self,
        pipe: &mut redis::Pipeline,
        record: &SeatRecord,
    ) -> Result<(), ClusterError> {
        let json = serde_json::to_string(record).map_err(ClusterError::corrupt)?;
        pipe.cmd("SADD")
            .arg(self.workspaces_key())
            .arg(&record.workspace)
            .ignore();
        pipe.cmd("HSET")
            .arg(self.presence_key(&record.workspace))
            .arg(&record.agent_id)
            .arg(&json)
            .ignore();
        let change = PresenceChange::Seat(record.clone());
        pipe.cmd("PUBLISH")
            .arg(self.channel())
            .arg(serde_json::to_string(&change).map_err(ClusterError::corrupt)?)
            .ignore();
        Ok(())
    }

    /// Removes every seat this node wrote (a fresh snapshot follows, or the node
    /// leaves).
    pub(super) async fn forget_own_seats(&self) -> Result<(), ClusterError> {
        let mut conn = self.connection().await?;
        let workspaces: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.workspaces_key())
            .query_async(&mut *conn)
            .await
            .map_err(ClusterError::redis)?;
        for workspace in workspaces {
            let key = self.presence_key(&workspace);
            let seats: Vec<(String, String)> = redis::cmd("HGETALL")
                .arg(&key)
                .query_async(&mut *conn)
                .await
                .map_err(ClusterError::redis)?;
            for (agent_id, raw) in seats {
                let mine = serde_json::from_str::<SeatRecord>(&raw)
                    .is_ok_and(|seat| seat.node == self.node_id());
                if mine {
                    redis::cmd("EVAL")
                        .arg(DELETE_IF_MINE)
                        .arg(1)
                        .arg(&key)
                        .arg(&agent_id)
                        .arg(self.node_id())
                        .query_async::<i64>(&mut *conn)
                        .await
                        .map_err(ClusterError::redis)?;
                }
            }
        }
        Ok(())
    }

    /// Every seat of the cluster (of `workspace` only, if given) whose node is
    /// alive, by workspace then agent.
    pub async fn seats(&self, workspace: Option<&str>) -> Result<Vec<SeatRecord>, ClusterError> {
        let alive: Vec<String> = self
            .members()
            .await?
            .into_iter()
            .filter(|m| m.alive)
            .map(|m| m.record.id)
            .collect();
        let mut conn = self.connection().await?;
        let workspaces: Vec<String> = match workspace {
            Some(workspace) => vec![workspace.to_owned()],
            None => redis::cmd("SMEMBERS")
                .arg(self.workspaces_key())
                .query_async(&mut *conn)
                .await
                .map_err(ClusterError::redis)?,
        };
        let mut seats = Vec::new();
        for workspace in workspaces {
            let raw: Vec<String> = redis::cmd("HVALS")
                .arg(self.presence_key(&workspace))
                .query_async(&mut *conn)
                .await
                .map_err(ClusterError::redis)?;
            seats.extend(
                raw.iter()
                    .filter_map(|raw| serde_json::from_str::<SeatRecord>(raw).ok())
                    .filter(|seat| alive.contains(&seat.node)),
            );
        }
        seats.sort_by(|a, b| (&a.workspace, &a.agent_id).cmp(&(&b.workspace, &b.agent_id)));
        Ok(seats)
    }
}
