-- Missed-call texts (postgres): one row per (caller, number called, UTC day) for which
-- a text was claimed. The unique key makes "at most once per caller per number
-- per day" one atomic INSERT … ON CONFLICT DO NOTHING (never a read-then-write):
-- the caller's second missed call that day finds the row and sends nothing.
-- The row keeps the call that claimed it and what became of the text.
-- Keep in step with ../sqlite/0021_missed_call_texts.sql.

CREATE TABLE missed_call_texts (
    -- the caller (the text's To), E.164
    caller       TEXT    NOT NULL,
    -- the number called (the text's From), E.164
    number       TEXT    NOT NULL,
    -- the UTC day of the claim, YYYY-MM-DD
    day          TEXT    NOT NULL,
    call_id      TEXT    NOT NULL,
    -- sending, then Twilio's status (queued, sent, delivered, undelivered,
    -- failed) as the create and the status callbacks report it
    status       TEXT    NOT NULL,
    -- Twilio's Message sid (SM…), once created
    message_sid  TEXT,
    -- why it failed, when it did (Twilio's code and message, or the transport's)
    error        TEXT,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    PRIMARY KEY (caller, number, day)
);

CREATE INDEX missed_call_texts_by_call ON missed_call_texts (call_id);
