-- Attestation wordings (postgres): each version of the wording a user can accept,
-- with its SHA-256 and its text, pinned the first time an engine runs with it.
-- An engine whose configured wording differs from the pinned text of the same
-- version refuses to start: a new wording needs a new version. Written once per
-- version, never updated; consent_records.wording_version refers to it.
-- Keep in step with ../sqlite/0018_consent_versions.sql.

CREATE TABLE consent_versions (
    version        TEXT    NOT NULL PRIMARY KEY,
    wording_hash   TEXT    NOT NULL,
    wording        TEXT    NOT NULL,
    first_used_at  BIGINT  NOT NULL
);
