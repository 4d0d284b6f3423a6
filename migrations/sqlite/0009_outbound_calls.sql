-- Outbound calls (sqlite): the durable queue of calls users asked switchboard to
-- place. A row is written at submit, in the same transaction that counts the
-- user's hourly and daily quotas (and stores the consent record it references);
-- the dispatcher (a later migration's columns) claims rows by (status, run_at).
-- Keep in step with ../postgres/0009_outbound_calls.sql.

CREATE TABLE outbound_calls (
    id                  TEXT    NOT NULL PRIMARY KEY,
    user_id             TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    workspace           TEXT    NOT NULL,
    to_e164             TEXT    NOT NULL,
    contact_name        TEXT,
    contact_company     TEXT,
    -- 'existing_client', 'warm_lead', 'referral', 'vendor_inquiry', 'partnership',
    -- 'other_business'
    purpose             TEXT    NOT NULL,
    objective           TEXT    NOT NULL,
    -- NULL: the workspace's built-in outbound assistant
    assistant_id        TEXT,
    callback_url        TEXT,
    consent_id          TEXT    NOT NULL REFERENCES consent_records (id),
    -- 'queued', 'scheduled' or 'canceled' (the dispatcher adds 'dialing'…)
    status              TEXT    NOT NULL,
    -- why the call waits past the time asked for: 'calling_hours'; NULL: it does not
    deferred            TEXT,
    -- milliseconds since the epoch: not dialed before this instant
    run_at              BIGINT  NOT NULL,
    -- what the call may cost at most (the plan's longest call at the rates), USD;
    -- counted against the monthly budget until the actual cost is known
    estimated_cost_usd  REAL    NOT NULL,
    -- the reconciled cost, USD; NULL until known
    actual_cost_usd     REAL,
    -- the dispatcher's current attempt; NULL until dialed
    attempt_id          TEXT,
    created_at          BIGINT  NOT NULL,
    updated_at          BIGINT  NOT NULL
);

-- The dispatcher's claim: the due calls of a status, oldest run_at first.
CREATE INDEX outbound_calls_due ON outbound_calls (status, run_at);
-- The quota windows and the month's budget, per user.
CREATE INDEX outbound_calls_by_user ON outbound_calls (user_id, created_at);
