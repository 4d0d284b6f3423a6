-- Callback deliveries (sqlite): the outbox of events a user's `callback_url`
-- receives (a call's status changes, its final result). One row per event,
-- written in the transaction that records what happened, delivered by the
-- delivery worker (`outbound::notify`) until the endpoint acknowledges it (2xx)
-- or the attempts run out. Claims are a lease (`claimed_until`, `claim`) so
-- several engines on one database never post the same event at once.
-- Keep in step with ../postgres/0010_callback_deliveries.sql.

CREATE TABLE callback_deliveries (
    -- the event's id, in the body and the X-Switchboard-Event-Id header; the
    -- same on every attempt
    event_id         TEXT    NOT NULL PRIMARY KEY,
    user_id          TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url              TEXT    NOT NULL,
    -- the JSON body, exactly the bytes that are signed and sent
    body             TEXT    NOT NULL,
    -- attempts started (a claim counts one)
    attempts         BIGINT  NOT NULL DEFAULT 0,
    -- milliseconds since the epoch; due when reached
    next_attempt_at  BIGINT  NOT NULL,
    -- an engine is posting it until then (NULL: nobody), under this claim id
    claimed_until    BIGINT,
    claim            TEXT,
    -- acknowledged (2xx): never posted again
    delivered_at     BIGINT,
    -- the attempts ran out: never posted again, last_error says why
    gave_up_at       BIGINT,
    last_error       TEXT,
    created_at       BIGINT  NOT NULL
);

CREATE INDEX callback_deliveries_due ON callback_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;
