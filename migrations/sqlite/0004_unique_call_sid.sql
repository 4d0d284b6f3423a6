-- One call record per Twilio CallSid (SQLite). Before this, a retried voice webhook
-- could record the same CallSid again (after the call ended, or after a restart).
-- Duplicates already recorded keep their record but lose the CallSid, except the
-- earliest call of each CallSid; each gets a `call_sid_duplicate` event naming
-- the CallSid and the call that kept it. Keep in step with
-- ../postgres/0004_unique_call_sid.sql.

CREATE TEMPORARY TABLE call_sid_losers AS
SELECT c.id AS id,
       c.call_sid AS call_sid,
       (SELECT k.id FROM calls k WHERE k.call_sid = c.call_sid
        ORDER BY k.started_at, k.id LIMIT 1) AS kept
FROM calls c
WHERE c.call_sid IS NOT NULL
  AND c.id <> (SELECT k.id FROM calls k WHERE k.call_sid = c.call_sid
               ORDER BY k.started_at, k.id LIMIT 1);

INSERT INTO call_events (call_id, seq, at, kind, agent_id, detail)
SELECT l.id,
       (SELECT COALESCE(MAX(e.seq), 0) + 1 FROM call_events e WHERE e.call_id = l.id),
       CAST(strftime('%s', 'now') AS INTEGER) * 1000,
       'call_sid_duplicate',
       NULL,
       json_object('call_sid', l.call_sid, 'kept_by', l.kept)
FROM call_sid_losers l;

UPDATE calls SET call_sid = NULL WHERE id IN (SELECT id FROM call_sid_losers);

DROP TABLE call_sid_losers;

DROP INDEX calls_by_call_sid;
CREATE UNIQUE INDEX calls_by_call_sid ON calls (call_sid) WHERE call_sid IS NOT NULL;
