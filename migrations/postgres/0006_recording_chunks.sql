-- A voicemail being recorded, a chunk (about a second of raw 8 kHz mu-law) at a
-- time, so that a crash keeps what the caller said. When the recording is finished
-- (or its call is closed by start-up recovery) the chunks become one WAV in
-- `recordings` and are deleted.
CREATE TABLE recording_chunks (
    call_id  TEXT    NOT NULL REFERENCES calls (id),
    seq      BIGINT  NOT NULL,
    at       BIGINT  NOT NULL,
    audio    BYTEA   NOT NULL,
    PRIMARY KEY (call_id, seq)
);
