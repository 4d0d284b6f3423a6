-- Outbound calls, dispatch and result (sqlite): what a call becomes after submit.
-- status now takes every disposition: 'queued', 'scheduled', 'dialing',
-- 'dial_unknown', 'ringing', 'in_progress', 'completed', 'busy', 'no_answer',
-- 'failed', 'canceled', 'voicemail', 'interrupted', 'not_dialed_window_closed'
-- (store::outbound::OutboundStatus; a terminal one never changes again).
-- Keep in step with ../postgres/0011_outbound_dispatch.sql.

-- The Twilio call of the current attempt, once known (its answer to Calls.json,
-- a status callback, or reconciliation by listing the calls to the number).
ALTER TABLE outbound_calls ADD COLUMN call_sid TEXT;
-- The workspace pool's number the call is placed from (stable per user).
ALTER TABLE outbound_calls ADD COLUMN from_e164 TEXT;
-- Attempts started (each claim queued → dialing counts one).
ALTER TABLE outbound_calls ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
-- When the current attempt was claimed (ms): reconciliation waits from here.
ALTER TABLE outbound_calls ADD COLUMN dialed_at BIGINT;
-- Twilio's answering-machine verdict: 'human', 'machine_end_beep',
-- 'machine_end_silence', 'machine_end_other', 'fax', 'unknown'.
ALTER TABLE outbound_calls ADD COLUMN answered_by TEXT;
ALTER TABLE outbound_calls ADD COLUMN answered_at BIGINT;
ALTER TABLE outbound_calls ADD COLUMN ended_at BIGINT;
-- Why a call failed or ended as it did (a Twilio error code and message…).
ALTER TABLE outbound_calls ADD COLUMN reason TEXT;
-- 1: the call no longer counts against the hourly and daily quotas (it was
-- refused at dial, so nothing was placed).
ALTER TABLE outbound_calls ADD COLUMN quota_refunded BIGINT NOT NULL DEFAULT 0;
-- The batch the call belongs to (NULL: a single request) and the instant (ms)
-- its window closes: not dialed by then, it ends 'not_dialed_window_closed'.
ALTER TABLE outbound_calls ADD COLUMN batch_id TEXT;
ALTER TABLE outbound_calls ADD COLUMN window_end_at BIGINT;
-- The result: the summary model's summary, the task outcome (JSON
-- {"objective_met","key_findings","evidence"}) and the cost breakdown (JSON:
-- telephony, realtime model, reasoning model; estimated and actual).
ALTER TABLE outbound_calls ADD COLUMN summary TEXT;
ALTER TABLE outbound_calls ADD COLUMN task_outcome TEXT;
ALTER TABLE outbound_calls ADD COLUMN cost_detail TEXT;
-- The after-call work (summary, outcome, model costs) is written (ms).
ALTER TABLE outbound_calls ADD COLUMN analyzed_at BIGINT;
-- Twilio's price is known and actual_cost_usd is final (ms).
ALTER TABLE outbound_calls ADD COLUMN reconciled_at BIGINT;
-- The final result event was enqueued for the callback_url (ms).
ALTER TABLE outbound_calls ADD COLUMN result_sent_at BIGINT;

-- Every attempt ever started, so a callback carrying an old attempt id is still
-- recognised (a replay: accepted, no state change) and a crash between the
-- claim and Twilio's answer leaves the attempt to reconcile.
CREATE TABLE outbound_attempts (
    attempt_id   TEXT    NOT NULL PRIMARY KEY,
    outbound_id  TEXT    NOT NULL REFERENCES outbound_calls (id) ON DELETE CASCADE,
    started_at   BIGINT  NOT NULL,
    -- Twilio's CallSid, once known
    call_sid     TEXT,
    -- 'created', 'refused', 'unknown', 'absent' (reconciliation proved no call)
    outcome      TEXT
);
CREATE INDEX outbound_attempts_by_call ON outbound_attempts (outbound_id);
CREATE INDEX outbound_calls_by_sid ON outbound_calls (call_sid);
CREATE INDEX outbound_calls_by_batch ON outbound_calls (batch_id, status);

-- Batches (POST /api/calls/outbound/batch): one row per batch; its calls carry
-- batch_id. Calls run only inside the window, in each callee's local time, and
-- at most max_concurrency of them at once.
CREATE TABLE outbound_batches (
    id               TEXT    NOT NULL PRIMARY KEY,
    user_id          TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    objective        TEXT    NOT NULL,
    -- "HH:MM" local to each callee
    window_start     TEXT    NOT NULL,
    window_end       TEXT    NOT NULL,
    max_concurrency  BIGINT  NOT NULL,
    created_at       BIGINT  NOT NULL
);
