//! Cluster mode (issue 16): with `REDIS_URL` set, this engine is one node of a
//! cluster sharing PostgreSQL and Redis.
//!
//! # Layout
//!
//! - this file: [`Cluster`], the node's handle on the cluster — its Redis pool
//!   (deadpool-redis, `cluster.redis_pool_size` connections, every command bounded
//!   by `cluster.redis_timeout_ms`), [`Cluster::join`] and [`Cluster::ping`];
//! - [`trust`]: the verifier of the shared secret kept in Redis, checked at join;
//! - [`membership`]: each node's record under a key with a time to live, the
//!   heartbeat that refreshes it, and the list of members;
//! - [`presence`]: this node's seats published to Redis (a hash per workspace,
//!   a channel of changes) and the whole floor's seats read back;
//! - [`burst`]: the outbound burst limiter's count per user, shared by the nodes;
//! - [`failover`]: whether a call's owner is alive (a resume, the survivors'
//!   sweep of dead nodes' calls);
//! - [`keys`]: the Redis key names, every one under `SWITCHBOARD_REDIS_PREFIX`.
//!
//! Single-node mode (no `REDIS_URL`) builds none of this.

pub mod burst;
pub mod failover;
pub mod keys;
pub mod link;
pub mod membership;
pub mod presence;
pub mod slots;
pub mod trust;

use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis::{self, AsyncConnectionConfig};
use deadpool_redis::{Manager, Pool, Runtime};
use secrecy::SecretString;

use crate::config::Settings;
pub use keys::Keys;
pub use membership::{Heartbeat, Member, NodeRecord};
pub use presence::{PresenceChange, SeatRecord};

/// Redis did not answer as expected.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("Redis is unreachable: {0}")]
    Unreachable(String),
    #[error("a cluster record in Redis is not valid: {0}")]
    Corrupt(String),
}

impl ClusterError {
    fn redis(err: redis::RedisError) -> ClusterError {
        ClusterError::Unreachable(err.to_string())
    }

    fn corrupt(err: serde_json::Error) -> ClusterError {
        ClusterError::Corrupt(err.to_string())
    }
}

/// Why this node did not join; each is logged at error level by
/// [`Cluster::join`], and the engine does not start.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("REDIS_URL {url} is not a usable Redis URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("Redis at {url} does not answer ({reason}): this node cannot join the cluster")]
    Unreachable { url: String, reason: String },
    #[error(
        "SWITCHBOARD_CLUSTER_SECRET does not match the secret of the cluster under the Redis \
         prefix {prefix:?} at {url}: this node refuses to join (every node needs the same secret)"
    )]
    WrongSecret { prefix: String, url: String },
    #[error(
        "node id {id:?} is already alive in this cluster at {other_url}, and this node's URL \
         is {url}: give each node its own SWITCHBOARD_NODE_ID"
    )]
    DuplicateId {
        id: String,
        url: String,
        other_url: String,
    },
    #[error("{0}")]
    Settings(String),
}

struct Inner {
    pool: Pool,
    keys: Keys,
    /// This node's record as it started; each beat fills in its counts.
    record: NodeRecord,
    heartbeat_interval: Duration,
    node_ttl: Duration,
    forget_after: Duration,
    timeout: Duration,
}

impl Inner {
    fn ttl_ms(&self) -> u64 {
        self.node_ttl.as_millis() as u64
    }

    fn forget_after_ms(&self) -> i64 {
        self.forget_after.as_millis() as i64
    }
}

/// This node's handle on the cluster: cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.inner.record.id)
            .field("prefix", &self.inner.keys.prefix())
            .finish()
    }
}

/// `redis://user:password@host/…` with the credentials hidden, for messages.
pub fn redacted(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

impl Cluster {
    /// Joins the cluster of `settings` (`REDIS_URL`, `[cluster]`): Redis answers,
    /// the secret matches the cluster's verifier (this node sets it if it is the
    /// first), no other live node has this id at another URL; then this node's
    /// first beat makes it a member. Every refusal is logged at error level.
    pub async fn join(settings: &Settings) -> Result<Cluster, JoinError> {
        let joined = Self::try_join(settings).await;
        if let Err(err) = &joined {
            tracing::error!(
                node = %settings.node_id,
                prefix = %settings.cluster.redis_prefix,
                error = %err,
                "this node does not join the cluster"
            );
        }
        joined
    }

    async fn try_join(settings: &Settings) -> Result<Cluster, JoinError> {
        let cfg = &settings.cluster;
        let url = redacted(&settings.redis_url);
        let (Some(node_url), Some(secret)) = (&cfg.node_url, &cfg.secret) else {
            return Err(JoinError::Settings(
                "cluster mode needs SWITCHBOARD_NODE_URL and SWITCHBOARD_CLUSTER_SECRET".into(),
            ));
        };
        let connection = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(cfg.redis_timeout))
            .set_response_timeout(Some(cfg.redis_timeout));
        let bad_url = |reason: String| JoinError::BadUrl {
            url: url.clone(),
            reason,
        };
        let manager = Manager::new_with_config(settings.redis_url.as_str(), connection)
            .map_err(|e| bad_url(e.to_string()))?;
        let pool = Pool::builder(manager)
            .max_size(cfg.redis_pool_size)
            .wait_timeout(Some(cfg.redis_timeout))
            .create_timeout(Some(cfg.redis_timeout))
            .recycle_timeout(Some(cfg.redis_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| bad_url(e.to_string()))?;
        let now = membership::now_ms();
        let cluster = Cluster {
            inner: Arc::new(Inner {
                pool,
                keys: Keys::new(&cfg.redis_prefix),
                record: NodeRecord {
                    id: settings.node_id.clone(),
                    url: node_url.as_str().to_owned(),
                    incarnation: uuid::Uuid::new_v4().simple().to_string(),
                    started_at_ms: now,
                    last_heartbeat_ms: now,
                    calls: 0,
                    seats: 0,
                    left: false,
                },
                heartbeat_interval: cfg.heartbeat_interval,
                node_ttl: cfg.node_ttl,
                forget_after: cfg.forget_after,
                timeout: cfg.redis_timeout,
            }),
        };
        let unreachable = |err: ClusterError| JoinError::Unreachable {
            url: url.clone(),
            reason: err.to_string(),
        };
        cluster.ping().await.map_err(unreachable)?;
        if !cluster.check_secret(secret).await.map_err(unreachable)? {
            return Err(JoinError::WrongSecret {
                prefix: cfg.redis_prefix.clone(),
                url,
            });
        }
        if let Some(other) = cluster
            .alive_record(&settings.node_id)
            .await
            .map_err(unreachable)?
        {
            if other.url != node_url.as_str() {
                return Err(JoinError::DuplicateId {
                    id: settings.node_id.clone(),
                    url: node_url.as_str().to_owned(),
                    other_url: other.url,
                });
            }
        }
        cluster.beat(0, 0).await.map_err(unreachable)?;
        tracing::info!(
            node = %settings.node_id,
            node_url = %node_url,
            prefix = %cfg.redis_prefix,
            redis = %url,
            "joined the cluster"
        );
        Ok(cluster)
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.inner.record.id
    }

    /// This node's own URL.
    pub fn node_url(&self) -> &str {
        &self.inner.record.url
    }

    /// A pooled connection, or why none could be had within the timeout.
    async fn connection(&self) -> Result<deadpool_redis::Connection, ClusterError> {
        self.inner
            .pool
            .get()
            .await
            .map_err(|e| ClusterError::Unreachable(e.to_string()))
    }

    /// Redis answers a `PING` (readiness).
    pub async fn ping(&self) -> Result<(), ClusterError> {
        let mut conn = self.connection().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut *conn)
            .await
            .map(drop)
            .map_err(ClusterError::redis)
    }

    /// Sets the cluster's verifier if there is none (`SET NX GET`, one atomic
    /// step), else compares this node's with it.
    async fn check_secret(&self, secret: &SecretString) -> Result<bool, ClusterError> {
        let mine = trust::verifier(secret);
        let mut conn = self.connection().await?;
        let stored: Option<String> = redis::cmd("SET")
            .arg(self.inner.keys.verifier())
            .arg(&mine)
            .arg("NX")
            .arg("GET")
            .query_async(&mut *conn)
            .await
            .map_err(ClusterError::redis)?;
        Ok(match stored {
            None => {
                tracing::info!("first node of this cluster: its secret's verifier is set");
                true
            }
            Some(stored) => trust::matches(secret, &stored),
        })
    }
}
