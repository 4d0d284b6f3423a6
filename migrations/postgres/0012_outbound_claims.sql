-- Outbound dispatch (postgres): which engine claimed a call, so that start-up
-- recovery only touches the calls this node left dialing, ringing or in
-- progress (a call another engine on the same database dials is its own).
-- Keep in step with ../sqlite/0012_outbound_claims.sql.
ALTER TABLE outbound_calls ADD COLUMN node_id TEXT;
CREATE INDEX outbound_calls_by_node ON outbound_calls (node_id, status);
