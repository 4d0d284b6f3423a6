-- Issue 11: users (who asks for outbound calls, with their plan and API key) and
-- the do-not-call list (global, kept by the admin, and each user's own).
-- Keep in step with ../postgres/0007_users.sql.

CREATE TABLE users (
    id                  TEXT    NOT NULL PRIMARY KEY,
    -- lowercased; one user per address
    email               TEXT    NOT NULL UNIQUE,
    name                TEXT    NOT NULL,
    workspace           TEXT    NOT NULL,
    -- an IANA name (America/New_York); NULL: not given
    timezone            TEXT,
    -- a key of the config's [plans.*]
    plan                TEXT    NOT NULL,
    -- 'active', 'paused' or 'suspended'
    status              TEXT    NOT NULL,
    -- SHA-256 (hex) of the API key, which is shown once and never stored
    api_key_hash        TEXT    NOT NULL UNIQUE,
    -- signs the user's callbacks (HMAC-SHA256), so it is kept as given
    webhook_secret      TEXT    NOT NULL,
    -- per-user overrides of the plan; NULL: the plan's
    calls_per_hour      BIGINT,
    calls_per_day       BIGINT,
    monthly_budget_usd  REAL,
    max_call_minutes    BIGINT,
    created_at          BIGINT  NOT NULL,
    updated_at          BIGINT  NOT NULL
);

CREATE TABLE do_not_call (
    e164        TEXT    NOT NULL,
    -- NULL: the global list; else the list of this user
    user_id     TEXT    REFERENCES users (id) ON DELETE CASCADE,
    reason      TEXT,
    created_at  BIGINT  NOT NULL
);
-- A number is on each list at most once (NULLs are distinct in a plain unique
-- index, hence two partial ones).
CREATE UNIQUE INDEX do_not_call_global ON do_not_call (e164) WHERE user_id IS NULL;
CREATE UNIQUE INDEX do_not_call_user ON do_not_call (user_id, e164) WHERE user_id IS NOT NULL;
