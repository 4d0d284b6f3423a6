-- Outbound safety (postgres): flags raised on users and their calls, and the audit
-- trail of every admin action and automatic pause.
-- Keep in step with ../sqlite/0015_safety.sql.

CREATE TABLE flags (
    id             TEXT    NOT NULL PRIMARY KEY,
    user_id        TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- the outbound call it is about; NULL: about the user's pattern as a whole
    outbound_id    TEXT,
    -- what was found: 'objective_screen', 'objective_model', 'velocity_same_number',
    -- 'velocity_distinct_numbers', 'velocity_sequential', 'transcript', 'telephony'…
    type           TEXT    NOT NULL,
    -- 'low', 'medium', 'high', 'critical'
    severity       TEXT    NOT NULL,
    reason         TEXT    NOT NULL,
    -- JSON: quoted turns, counts, the matched words
    evidence       TEXT    NOT NULL,
    auto_detected  BIGINT  NOT NULL,
    created_at     BIGINT  NOT NULL,
    -- the review: when, by whom, which action ('dismiss', 'warn', 'suspend',
    -- 'block_number') and the admin's notes; NULL until resolved
    resolved_at    BIGINT,
    resolved_by    TEXT,
    action         TEXT,
    notes          TEXT
);
CREATE INDEX flags_by_user ON flags (user_id, created_at);
CREATE INDEX flags_open ON flags (resolved_at, created_at);

-- Append-only: the code has no UPDATE or DELETE of this table.
CREATE TABLE audit_log (
    id          TEXT    NOT NULL PRIMARY KEY,
    at          BIGINT  NOT NULL,
    -- 'admin' or 'system'
    actor       TEXT    NOT NULL,
    -- 'flag_resolved', 'user_suspended', 'user_reinstated', 'user_paused'…
    action      TEXT    NOT NULL,
    -- the user it concerns, if any (no foreign key: the trail outlives users)
    user_id     TEXT,
    -- what else it concerns (a flag id, a number)
    subject     TEXT,
    -- JSON: the reason, the notes, what changed
    detail      TEXT    NOT NULL
);
CREATE INDEX audit_log_by_user ON audit_log (user_id, at);
CREATE INDEX audit_log_by_time ON audit_log (at);
