-- Consent records (sqlite): the attestation a user signed for an outbound call, kept
-- as evidence — which wording (its version and SHA-256), which boxes, the
-- signature, from where (client address, user agent) and when. Written once,
-- never updated; a call references its record by id.
-- Keep in step with ../postgres/0008_consent_records.sql.

CREATE TABLE consent_records (
    id                      TEXT    NOT NULL PRIMARY KEY,
    user_id                 TEXT    NOT NULL,
    wording_version         TEXT    NOT NULL,
    -- hex SHA-256 of the wording the signer saw
    wording_hash            TEXT    NOT NULL,
    -- JSON array of the boxes affirmed (the request's attestation fields)
    affirmed                TEXT    NOT NULL,
    signature_full_name     TEXT    NOT NULL,
    signature_organization  TEXT,
    -- the client's address (X-Forwarded-For believed only from trusted proxies)
    ip                      TEXT    NOT NULL,
    user_agent              TEXT,
    created_at              BIGINT  NOT NULL
);

CREATE INDEX consent_records_by_user ON consent_records (user_id, created_at);
