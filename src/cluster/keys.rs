//! The names of the cluster's Redis keys, every one under the configured prefix
//! (`SWITCHBOARD_REDIS_PREFIX`), so clusters and test runs sharing one Redis
//! never read each other's keys.

/// Builds the cluster's key names from its prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The HMAC of a fixed string under the cluster secret (never the secret).
    pub fn verifier(&self) -> String {
        format!("{}cluster:verifier", self.prefix)
    }

    /// A node's membership key: its record, with a time to live the heartbeat
    /// refreshes. It exists exactly while the node is alive.
    pub fn node(&self, id: &str) -> String {
        format!("{}node:{id}", self.prefix)
    }

    /// Every node's last record by id (a hash): what is listed once a node's
    /// membership key has expired, as not alive.
    pub fn nodes(&self) -> String {
        format!("{}nodes", self.prefix)
    }

    /// A workspace's parking slots (a hash: slot → the node and call holding it).
    pub fn parking(&self, workspace: &str) -> String {
        format!("{}parking:{workspace}", self.prefix)
    }

    /// A user's outbound bursts (the theoretical arrival time of its next submit).
    pub fn burst(&self, user: &str) -> String {
        format!("{}burst:{user}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_starts_with_the_prefix() {
        let keys = Keys::new("t1:");
        for key in [
            keys.verifier(),
            keys.node("a"),
            keys.nodes(),
            keys.parking("w"),
            keys.burst("u"),
        ] {
            assert!(key.starts_with("t1:"), "{key}");
        }
        assert_ne!(keys.node("a"), keys.node("b"));
    }
}
