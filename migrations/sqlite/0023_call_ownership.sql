-- Issue 16, items 5 and 6 (failover and drain): a call's owner may change while
-- it lives. `node_id` stays the node that holds the call (start-up recovery
-- closes only its own); `owner_epoch` counts the changes, so an adoption is a
-- compare-and-set on (node_id, owner_epoch) that exactly one node wins;
-- `released_at` is set by a draining node on each call it lets go (adoption is
-- then allowed while it is still alive). Keep in step with
-- ../postgres/0023_call_ownership.sql.
ALTER TABLE calls ADD COLUMN owner_epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN released_at BIGINT;
