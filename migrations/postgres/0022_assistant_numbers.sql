-- Issue 14: a pool number may be held by an AI assistant (POST /api/assistants
-- with assign_number) instead of an agent; at most one of agent_id and
-- assistant_id is set on an ASSIGNED number. Keep in step with
-- ../sqlite/0022_assistant_numbers.sql.
ALTER TABLE phone_numbers ADD COLUMN assistant_id TEXT;
CREATE INDEX phone_numbers_by_assistant ON phone_numbers (assistant_id);
