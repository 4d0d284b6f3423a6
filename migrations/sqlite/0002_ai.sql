-- AI voice agents (SQLite): assistants, the transcript of each AI call, and what
-- the call record gains (its assistant, summary, AI outcome and cost breakdown).
-- Keep in step with ../postgres/0002_ai.sql.

CREATE TABLE assistants (
    id            TEXT    NOT NULL PRIMARY KEY,
    name          TEXT    NOT NULL,
    workspace     TEXT    NOT NULL,
    instructions  TEXT    NOT NULL,
    voice         TEXT    NOT NULL,
    model         TEXT    NOT NULL,
    greeting      TEXT,
    -- JSON array of switchboard::ai::assistant::ToolSpec
    tools         TEXT    NOT NULL,
    -- JSON of switchboard_actors::number::Route (agents or voicemail)
    on_failure    TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);

CREATE TABLE call_turns (
    call_id  TEXT    NOT NULL REFERENCES calls (id),
    seq      BIGINT  NOT NULL,
    at       BIGINT  NOT NULL,
    -- 'caller' or 'assistant'
    role     TEXT    NOT NULL,
    text     TEXT    NOT NULL,
    PRIMARY KEY (call_id, seq)
);

-- The assistant that took the call (no foreign key: the record outlives it).
ALTER TABLE calls ADD COLUMN assistant_id TEXT;
ALTER TABLE calls ADD COLUMN summary TEXT;
-- goal_achieved, transferred, caller_hung_up, no_answer, error, unresolved
ALTER TABLE calls ADD COLUMN ai_outcome TEXT;
-- JSON object: the cost breakdown (switchboard::ai::cost::breakdown)
ALTER TABLE calls ADD COLUMN cost TEXT;
