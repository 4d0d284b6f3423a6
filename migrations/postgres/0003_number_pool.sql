-- The phone-number pool (issue 5): every number each provider account holds, per
-- workspace, with its status and assigned agent; and the route migrations that
-- cut numbers over between routes, with what they replaced so a rollback restores
-- it exactly. Keep in step with ../sqlite/0003_number_pool.sql.

CREATE TABLE phone_numbers (
    id           TEXT    NOT NULL PRIMARY KEY,
    -- twilio | vapi | retell
    provider     TEXT    NOT NULL,
    -- the provider's own id: Twilio PN… sid, Vapi id, Retell E.164
    provider_id  TEXT    NOT NULL,
    workspace    TEXT    NOT NULL,
    e164         TEXT    NOT NULL,
    -- local | toll-free | mobile | voip | …, from libphonenumber's metadata
    number_type  TEXT    NOT NULL,
    nickname     TEXT,
    -- AVAILABLE | ASSIGNED | RELEASED
    status       TEXT    NOT NULL,
    -- the switchboard agent holding it (ASSIGNED), or who last held it (RELEASED)
    agent_id     TEXT,
    -- where the provider sends the number's calls (Twilio voice_url)
    voice_url    TEXT,
    -- the agent or assistant the provider itself has on the number
    provider_agent TEXT,
    -- JSON: SIP trunk facts (trunk sid, termination URI, auth user); never a password
    sip_trunk    TEXT,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    released_at  BIGINT,
    UNIQUE (provider, provider_id, workspace)
);

CREATE INDEX phone_numbers_by_e164 ON phone_numbers (e164);
CREATE INDEX phone_numbers_by_agent ON phone_numbers (agent_id);
CREATE INDEX phone_numbers_by_status ON phone_numbers (workspace, status, e164);
-- the directory's order
CREATE INDEX phone_numbers_by_workspace ON phone_numbers (workspace, e164, provider, provider_id);

CREATE TABLE route_migrations (
    id              TEXT    NOT NULL PRIMARY KEY,
    workspace       TEXT    NOT NULL,
    -- JSON of the route the numbers were moved to
    target_route    TEXT    NOT NULL,
    percent         BIGINT  NOT NULL,
    created_at      BIGINT  NOT NULL,
    rolled_back_at  BIGINT
);

CREATE TABLE route_migration_entries (
    migration_id        TEXT    NOT NULL REFERENCES route_migrations (id),
    e164                TEXT    NOT NULL,
    -- JSON of the route before the move
    previous_route      TEXT    NOT NULL,
    -- the Twilio number (PN…) whose webhook was re-pointed, and where it pointed
    twilio_sid          TEXT,
    previous_voice_url  TEXT,
    PRIMARY KEY (migration_id, e164)
);
