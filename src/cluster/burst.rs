//! The outbound burst limiter shared by the nodes (issue 16, item 2): a user's
//! bursts of submits are counted once for the whole cluster, not once per node
//! the load balancer happens to pick. One Lua script per check runs the generic
//! cell rate algorithm (GCRA, the algorithm `governor` runs in memory) on one key
//! per user holding its theoretical arrival time, so a check and its update are
//! one atomic step — never a read-then-write.
//!
//! Times are the engine's clock (its injected one), in microseconds, passed in:
//! the nodes' clocks agree to well under one refill interval (NTP), and the tests'
//! manual clock works as it does on one node.

use std::time::Duration;

use deadpool_redis::redis;

use super::{Cluster, ClusterError};

/// KEYS[1] the user's key; ARGV[1] now, ARGV[2] the interval between two
/// refills, ARGV[3] the burst size; times in microseconds. Returns 0 when the
/// request may go (and counts it), else how long until it may.
const CHECK: &str = r"
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = interval * tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next_tat = tat + interval
local allow_at = next_tat - tolerance
if allow_at > now then
  return allow_at - now
end
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1)
return 0";

impl Cluster {
    /// Counts one request of `user` against `burst` at once, refilled at
    /// `per_second`: `Ok(None)` when it may go, `Ok(Some(wait))` when not yet.
    pub async fn burst_check(
        &self,
        user: &str,
        now_us: u64,
        per_second: u32,
        burst: u32,
    ) -> Result<Option<Duration>, ClusterError> {
        let interval_us = 1_000_000 / u64::from(per_second.max(1));
        let mut conn = self.connection().await?;
        let wait_us: u64 = redis::cmd("EVAL")
            .arg(CHECK)
            .arg(1)
            .arg(self.inner.keys.burst(user))
            .arg(now_us)
            .arg(interval_us)
            .arg(burst.max(1))
            .query_async(&mut *conn)
            .await
            .map_err(ClusterError::redis)?;
        Ok((wait_us > 0).then(|| Duration::from_micros(wait_us)))
    }
}
