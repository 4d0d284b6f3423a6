-- Issue 16 (split brain): each cluster node counts its beats in the database
-- too, every `cluster.reap_interval_ms`. A survivor ends a node's calls only if
-- the node is silent in Redis, has no link to it, *and* its count here has
-- stopped: a node cut off from Redis and from its peers but still recording its
-- calls still holds them (its callers are still talking). A counter rather than
-- a time, so no two nodes' clocks are compared. Keep in step with
-- ../sqlite/0024_node_beats.sql.
CREATE TABLE node_beats (
    node_id TEXT PRIMARY KEY,
    beats BIGINT NOT NULL
);
