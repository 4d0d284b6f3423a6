-- Call analytics (GET /api/analytics/summary) reads calls by start time, within
-- a workspace or across all, and outbound calls by creation time.
CREATE INDEX calls_by_start ON calls (started_at);
CREATE INDEX calls_by_workspace_start ON calls (workspace, started_at);
CREATE INDEX outbound_calls_by_workspace_created ON outbound_calls (workspace, created_at);
CREATE INDEX outbound_calls_by_created ON outbound_calls (created_at);
