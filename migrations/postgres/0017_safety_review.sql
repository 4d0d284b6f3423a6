-- Post-call review and number health (postgres, issue 12).
-- Keep in step with ../sqlite/0017_safety_review.sql.

-- When the post-call review (src/safety/review.rs) looked at the call (ms);
-- NULL: not yet. Written in the same transaction as the call's flags, so a
-- call is reviewed exactly once, across restarts.
ALTER TABLE outbound_calls ADD COLUMN reviewed_at BIGINT;
CREATE INDEX outbound_calls_unreviewed ON outbound_calls (reviewed_at, status);
-- Number health: the calls placed from one number over a window.
CREATE INDEX outbound_calls_by_from ON outbound_calls (from_e164, ended_at);
-- A user's telephony pattern over a window.
CREATE INDEX outbound_calls_by_user_end ON outbound_calls (user_id, ended_at);

-- Pool numbers rested (not used as caller ID) until `until_at`, and why.
-- One row per number: the latest rest.
CREATE TABLE number_rest (
    e164       TEXT    NOT NULL PRIMARY KEY,
    -- which threshold: 'answer_rate', 'short_call_ratio', 'opt_outs'…
    reason     TEXT    NOT NULL,
    -- JSON: the figures over the window when it was rested
    figures    TEXT    NOT NULL,
    rested_at  BIGINT  NOT NULL,
    until_at   BIGINT  NOT NULL
);
