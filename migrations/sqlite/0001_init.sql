-- switchboard's first schema (SQLite). Timestamps are milliseconds since the Unix
-- epoch; JSON is stored as TEXT. Keep in step with ../postgres/0001_init.sql.

CREATE TABLE agents (
    id          TEXT    NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL,
    workspace   TEXT    NOT NULL,
    token_hash  TEXT    NOT NULL UNIQUE,
    created_at  BIGINT  NOT NULL
);

CREATE TABLE numbers (
    e164        TEXT    NOT NULL PRIMARY KEY,
    workspace   TEXT    NOT NULL,
    -- JSON of switchboard_actors::number::Route
    route       TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);

CREATE TABLE calls (
    id           TEXT    NOT NULL PRIMARY KEY,
    call_sid     TEXT,
    -- the engine that holds (or held) the call: start-up recovery closes its own
    node_id      TEXT    NOT NULL,
    direction    TEXT    NOT NULL,
    from_number  TEXT    NOT NULL,
    to_number    TEXT    NOT NULL,
    workspace    TEXT,
    status       TEXT    NOT NULL,
    outcome      TEXT,
    agent_id     TEXT,
    started_at   BIGINT  NOT NULL,
    answered_at  BIGINT,
    ended_at     BIGINT,
    end_reason   TEXT
);

CREATE INDEX calls_by_call_sid ON calls (call_sid);
CREATE INDEX calls_open_by_node ON calls (node_id) WHERE ended_at IS NULL;

CREATE TABLE call_events (
    call_id   TEXT    NOT NULL REFERENCES calls (id),
    seq       BIGINT  NOT NULL,
    at        BIGINT  NOT NULL,
    kind      TEXT    NOT NULL,
    agent_id  TEXT,
    -- JSON object
    detail    TEXT    NOT NULL,
    PRIMARY KEY (call_id, seq)
);

CREATE TABLE recordings (
    call_id       TEXT    NOT NULL PRIMARY KEY REFERENCES calls (id),
    content_type  TEXT    NOT NULL,
    bytes         BLOB    NOT NULL,
    duration_ms   BIGINT  NOT NULL,
    created_at    BIGINT  NOT NULL
);
