//! The call record: one `calls` row per call, its ordered `call_events` trail, an
//! optional voicemail recording and, for AI calls, the transcript (`call_turns`),
//! summary, AI outcome and cost. Written from the actors' journal entries
//! ([`Store::apply`]); read back by [`Store::get_call`] and [`Store::turns`].

use std::collections::{BTreeSet, HashSet};

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row as _, Transaction};
use switchboard_actors::journal::{now_ms, CallEvent, CallOpened, JournalEntry};
use switchboard_actors::{audio, AgentId, CallId};

use super::{db_text, placeholders, Backend, Store, StoreError, IDS_PER_STATEMENT};

/// A late event may race another writer for the next `seq`; it tries this often.
const LATE_EVENT_ATTEMPTS: usize = 5;

/// A call as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CallView {
    pub id: String,
    pub call_sid: Option<String>,
    pub status: String,
    pub outcome: Option<String>,
    pub agent_id: Option<String>,
    pub from: String,
    pub to: String,
    pub workspace: Option<String>,
    pub direction: String,
    pub started_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub end_reason: Option<String>,
    /// The trail, by `seq`.
    pub events: Vec<EventView>,
    pub has_recording: bool,
    /// The AI assistant that took the call, if one did.
    pub assistant_id: Option<String>,
    /// The post-call summary of an AI call.
    pub summary: Option<String>,
    /// What the AI call came to (`goal_achieved`, `transferred`…).
    pub ai_outcome: Option<String>,
    /// The cost breakdown (a JSON object), once the call is priced.
    pub cost: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    pub seq: i64,
    pub at: i64,
    pub kind: String,
    pub agent_id: Option<String>,
    pub detail: serde_json::Value,
}

/// One turn of an AI call's transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TurnRecord {
    pub seq: i64,
    pub at: i64,
    /// `caller` or `assistant`.
    pub role: String,
    pub text: String,
}

/// A call's voicemail recording.
pub struct Recording {
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub duration_ms: i64,
}

/// What [`Store::claim_call_sid`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SidClaim {
    /// The CallSid is the new call's: its record exists now.
    Claimed,
    /// Another call has this CallSid (unique in `calls`): no record was made.
    Taken { call_id: CallId, ended: bool },
}

/// The next `seq` of a call's trail, for a call aliased `c`.
const NEXT_SEQ: &str =
    "(SELECT COALESCE(MAX(e.seq), 0) + 1 FROM call_events e WHERE e.call_id = c.id)";

impl Store {
    /// The call with its ordered trail, or `None` if no such call was recorded.
    #[tracing::instrument(skip_all, fields(call_id = %id))]
    pub async fn get_call(&self, id: &CallId) -> Result<Option<CallView>, StoreError> {
        let row = sqlx::query(
            "SELECT c.id, c.call_sid, c.status, c.outcome, c.agent_id, c.from_number, \
                    c.to_number, c.workspace, c.direction, c.started_at, c.answered_at, \
                    c.ended_at, c.end_reason, c.assistant_id, c.summary, c.ai_outcome, \
                    c.cost, \
                    (SELECT COUNT(*) FROM recordings r WHERE r.call_id = c.id) AS recordings \
             FROM calls c WHERE c.id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let events = sqlx::query(
            "SELECT seq, at, kind, agent_id, detail FROM call_events \
             WHERE call_id = $1 ORDER BY seq",
        )
        .bind(id.as_str())
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(event_from_row)
        .collect::<Result<Vec<_>, _>>()?;
        let cost = row
            .try_get::<Option<String>, _>("cost")?
            .map(|cost| {
                serde_json::from_str(&cost)
                    .map_err(|e| StoreError::Corrupt(format!("calls.cost of {id}: {e}")))
            })
            .transpose()?;
        Ok(Some(CallView {
            id: row.try_get("id")?,
            call_sid: row.try_get("call_sid")?,
            status: row.try_get("status")?,
            outcome: row.try_get("outcome")?,
            agent_id: row.try_get("agent_id")?,
            from: row.try_get("from_number")?,
            to: row.try_get("to_number")?,
            workspace: row.try_get("workspace")?,
            direction: row.try_get("direction")?,
            started_at: row.try_get("started_at")?,
            answered_at: row.try_get("answered_at")?,
            ended_at: row.try_get("ended_at")?,
            end_reason: row.try_get("end_reason")?,
            events,
            has_recording: row.try_get::<i64, _>("recordings")? > 0,
            assistant_id: row.try_get("assistant_id")?,
            summary: row.try_get("summary")?,
            ai_outcome: row.try_get("ai_outcome")?,
            cost,
        }))
    }

    /// Whether a call of this id was recorded.
    #[tracing::instrument(skip_all, fields(call_id = %id))]
    pub async fn call_exists(&self, id: &CallId) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 AS one FROM calls WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?;
        Ok(row.is_some())
    }

    /// The transcript of a call, by `seq`; empty for an unknown call or one
    /// without AI.
    #[tracing::instrument(skip_all, fields(call_id = %call_id))]
    pub async fn turns(&self, call_id: &CallId) -> Result<Vec<TurnRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at, role, text FROM call_turns WHERE call_id = $1 ORDER BY seq",
        )
        .bind(call_id.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(TurnRecord {
                    seq: row.try_get("seq")?,
                    at: row.try_get("at")?,
                    role: row.try_get("role")?,
                    text: row.try_get("text")?,
                })
            })
            .collect()
    }

    /// The call that Twilio knows by `call_sid` (the latest, should a sid repeat).
    #[tracing::instrument(skip_all, fields(call_sid = %call_sid))]
    pub async fn call_id_by_sid(&self, call_sid: &str) -> Result<Option<CallId>, StoreError> {
        let row = sqlx::query(
            "SELECT id FROM calls WHERE call_sid = $1 ORDER BY started_at DESC, id LIMIT 1",
        )
        .bind(call_sid)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| stored_call_id(row.try_get("id")?))
            .transpose()
    }

    /// Records a new call under its CallSid before the call starts, so that the
    /// unique index on `calls.call_sid` (migration 0004) decides which delivery of
    /// a webhook owns the CallSid: a retry — after the call ended, after a restart,
    /// or racing the first delivery — finds the existing call and makes no record.
    /// The journal's `Opened` for the same call id later finds the row in place.
    #[tracing::instrument(skip_all, fields(call_id = %opened.id))]
    pub async fn claim_call_sid(&self, opened: &CallOpened) -> Result<SidClaim, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO calls (id, call_sid, node_id, direction, from_number, to_number, \
                 workspace, status, started_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'starting', $8) \
             ON CONFLICT DO NOTHING",
        )
        .bind(opened.id.as_str())
        .bind(opened.call_sid.as_deref())
        .bind(self.node_id())
        .bind(opened.direction)
        .bind(opened.from.as_str())
        .bind(opened.to.as_str())
        .bind(opened.workspace.as_ref().map(|w| w.as_str()))
        .bind(opened.started_at)
        .execute(self.pool())
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(SidClaim::Claimed);
        }
        let row = sqlx::query("SELECT id, ended_at FROM calls WHERE call_sid = $1 OR id = $2")
            .bind(opened.call_sid.as_deref())
            .bind(opened.id.as_str())
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::Conflict("the CallSid was taken and released".into()))?;
        Ok(SidClaim::Taken {
            call_id: stored_call_id(row.try_get("id")?)?,
            ended: row.try_get::<Option<i64>, _>("ended_at")?.is_some(),
        })
    }

    #[tracing::instrument(skip_all, fields(call_id = %call_id))]
    pub async fn get_recording(&self, call_id: &CallId) -> Result<Option<Recording>, StoreError> {
        let row = sqlx::query(
            "SELECT content_type, bytes, duration_ms FROM recordings WHERE call_id = $1",
        )
        .bind(call_id.as_str())
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(Recording {
            content_type: row.try_get("content_type")?,
            bytes: row.try_get("bytes")?,
            duration_ms: row.try_get("duration_ms")?,
        }))
    }

    /// An event for a call no longer live: it takes `seq` = max + 1 in one
    /// statement. An unknown call gets nothing (logged). (The status webhook journals
    /// [`JournalEntry::LateEvent`] instead, which works the same way by CallSid and
    /// is taken while the database is away.)
    ///
    /// The call's own trail must be written first, or its last events would collide
    /// with this one and be dropped as already present: flush the
    /// [`JournalWriter`](super::JournalWriter) before calling this.
    #[tracing::instrument(skip_all, fields(call_id = %call_id, kind = %kind))]
    pub async fn append_late_event(
        &self,
        call_id: &CallId,
        kind: &str,
        detail: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO call_events (call_id, seq, at, kind, agent_id, detail) \
             SELECT c.id, {NEXT_SEQ}, $2, $3, NULL, $4 FROM calls c WHERE c.id = $1"
        );
        let detail = detail.to_string();
        let mut attempt = 1;
        loop {
            let result = sqlx::query(&sql)
                .bind(call_id.as_str())
                .bind(now_ms())
                .bind(kind)
                .bind(detail.as_str())
                .execute(self.pool())
                .await
                .map_err(|e| StoreError::unique(e, || format!("event of call {call_id}")));
            match result {
                Ok(done) if done.rows_affected() == 0 => {
                    tracing::warn!("late event for an unknown call dropped");
                    return Ok(());
                }
                Ok(_) => return Ok(()),
                // Another writer took the same seq between our read and our insert.
                Err(e) if e.is_duplicate() && attempt < LATE_EVENT_ATTEMPTS => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// Start-up recovery: every call of this node still open is closed: status
    /// `ended`, outcome `interrupted`, end reason `engine_restart`, plus an `ended`
    /// event at the end of its trail. Returns how many. Other nodes' calls are left
    /// alone. Run it before this node takes calls.
    #[tracing::instrument(skip_all, fields(node_id = %self.node_id()))]
    pub async fn close_interrupted_calls(&self) -> Result<u64, StoreError> {
        let now = now_ms();
        let detail = serde_json::json!({ "outcome": "interrupted", "reason": "engine_restart" });
        let mut tx = self.begin().await?;
        // A voicemail cut off by the crash keeps what was recorded: its chunks
        // become the call's recording (also for a call whose close was written but
        // whose recording was not).
        let unassembled = sqlx::query(
            "SELECT DISTINCT k.call_id FROM recording_chunks k \
             JOIN calls c ON c.id = k.call_id WHERE c.node_id = $1",
        )
        .bind(self.node_id())
        .fetch_all(&mut *tx)
        .await?;
        for row in &unassembled {
            let call_id: String = row.try_get("call_id")?;
            assemble_recording(&mut tx, &call_id, now).await?;
        }
        sqlx::query(&format!(
            "INSERT INTO call_events (call_id, seq, at, kind, agent_id, detail) \
             SELECT c.id, {NEXT_SEQ}, $2, 'ended', c.agent_id, $3 FROM calls c \
             WHERE c.node_id = $1 AND c.ended_at IS NULL"
        ))
        .bind(self.node_id())
        .bind(now)
        .bind(detail.to_string())
        .execute(&mut *tx)
        .await?;
        let closed = sqlx::query(
            "UPDATE calls SET status = 'ended', outcome = 'interrupted', \
                 end_reason = 'engine_restart', ended_at = $2 \
             WHERE node_id = $1 AND ended_at IS NULL",
        )
        .bind(self.node_id())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        if closed > 0 {
            tracing::warn!(closed, "closed calls interrupted by the last shutdown");
        }
        Ok(closed)
    }

    /// Applies journal entries in order inside one transaction. Idempotent: the
    /// same batch applied again (after a failed commit) changes nothing. Inserts
    /// skip rows already present; `Closed` only touches a call still open, so a
    /// call has exactly one final record; `Status` never reopens an ended call;
    /// `Assistant`, `AiResult` and `Cost` set columns to the same values again.
    #[tracing::instrument(skip_all, fields(entries = entries.len()))]
    pub async fn apply(&self, entries: &[JournalEntry]) -> Result<(), StoreError> {
        self.apply_all(entries.iter()).await
    }

    /// [`Store::apply`] over borrowed entries.
    pub(crate) async fn apply_all<'a>(
        &self,
        entries: impl ExactSizeIterator<Item = &'a JournalEntry>,
    ) -> Result<(), StoreError> {
        if entries.len() == 0 {
            return Ok(());
        }
        let entries: Vec<&JournalEntry> = entries.collect();
        let mut tx = self.begin().await?;
        // The rows first: a call's other entries come after its `Opened`, and
        // whether this node holds a call is read from its row.
        for entry in entries
            .iter()
            .filter(|e| matches!(e, JournalEntry::Opened(_)))
        {
            self.apply_one(&mut tx, entry).await?;
        }
        let elsewhere = self.held_elsewhere(&mut tx, &entries).await?;
        let mut fenced = 0;
        for entry in entries
            .iter()
            .filter(|e| !matches!(e, JournalEntry::Opened(_)))
        {
            if entry
                .held_call()
                .is_some_and(|id| elsewhere.contains(id.as_str()))
            {
                fenced += 1;
                continue;
            }
            self.apply_one(&mut tx, entry).await?;
        }
        tx.commit().await?;
        if fenced > 0 {
            self.fenced
                .fetch_add(fenced, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(
                fenced,
                calls = ?elsewhere,
                "journal entries of calls another node holds now are left out"
            );
        }
        Ok(())
    }

    /// The calls of `entries` whose row names another node as their holder: it
    /// adopted the call, or ended it as `interrupted`, while this node was cut
    /// off, and this node's late entries must not touch its record (a late
    /// `ended`, events numbered over the adopter's). On PostgreSQL the rows stay
    /// share-locked until the transaction ends, so no adoption slips in between
    /// this read and the writes; SQLite runs one writer at a time.
    async fn held_elsewhere(
        &self,
        tx: &mut Transaction<'static, Any>,
        entries: &[&JournalEntry],
    ) -> Result<HashSet<String>, StoreError> {
        let ids: BTreeSet<&str> = entries
            .iter()
            .filter_map(|e| e.held_call())
            .map(CallId::as_str)
            .collect();
        let ids: Vec<&str> = ids.into_iter().collect();
        let lock = match self.backend() {
            Backend::Postgres => " FOR SHARE",
            Backend::Sqlite => "",
        };
        let mut elsewhere = HashSet::new();
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let sql = format!(
                "SELECT id, node_id FROM calls WHERE id IN ({}){lock}",
                placeholders(1, chunk.len())
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query.fetch_all(&mut **tx).await? {
                let node: String = row.try_get("node_id")?;
                if node != self.node_id() {
                    elsewhere.insert(row.try_get("id")?);
                }
            }
        }
        Ok(elsewhere)
    }

    async fn apply_one(
        &self,
        tx: &mut Transaction<'static, Any>,
        entry: &JournalEntry,
    ) -> Result<(), StoreError> {
        match entry {
            JournalEntry::Opened(opened) => self.insert_call(tx, opened).await,
            JournalEntry::Event(event) => insert_event(tx, event).await,
            JournalEntry::Status {
                call_id,
                status,
                agent_id,
                answered_at,
            } => {
                sqlx::query(
                    "UPDATE calls SET status = $2, agent_id = COALESCE($3, agent_id), \
                         answered_at = COALESCE(answered_at, $4) \
                     WHERE id = $1 AND ended_at IS NULL",
                )
                .bind(call_id.as_str())
                .bind(status.as_str())
                .bind(agent_id.as_ref().map(AgentId::as_str))
                .bind(*answered_at)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }
            JournalEntry::Closed {
                call_id,
                outcome,
                reason,
                agent_id,
                ended_at,
            } => {
                sqlx::query(
                    "UPDATE calls SET status = 'ended', outcome = $2, end_reason = $3, \
                         agent_id = COALESCE($4, agent_id), ended_at = $5 \
                     WHERE id = $1 AND ended_at IS NULL",
                )
                .bind(call_id.as_str())
                .bind(outcome.as_str())
                .bind(db_text(reason))
                .bind(agent_id.as_ref().map(AgentId::as_str))
                .bind(*ended_at)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }
            JournalEntry::Recording {
                call_id,
                wav,
                duration_ms,
                at,
            } => {
                sqlx::query(
                    "INSERT INTO recordings (call_id, content_type, bytes, duration_ms, created_at) \
                     VALUES ($1, 'audio/wav', $2, $3, $4) \
                     ON CONFLICT (call_id) DO NOTHING",
                )
                .bind(call_id.as_str())
                .bind(wav.as_ref())
                .bind(*duration_ms)
                .bind(*at)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }
            JournalEntry::Turn {
                call_id,
                seq,
                at,
                role,
                text,
            } => {
                sqlx::query(
                    "INSERT INTO call_turns (call_id, seq, at, role, text) \
                     VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (call_id, seq) DO NOTHING",
                )
                .bind(call_id.as_str())
                .bind(*seq)
                .bind(*at)
                .bind(*role)
                .bind(db_text(text))
                .execute(&mut **tx)
                .await?;
                Ok(())
            }
            JournalEntry::Assistant {
                call_id,
                assistant_id,
            } => {
                sqlx::query("UPDATE calls SET assistant_id = $2 WHERE id = $1")
                    .bind(call_id.as_str())
                    .bind(db_text(assistant_id.as_str()))
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }
            JournalEntry::AiResult {
                call_id,
                summary,
                ai_outcome,
                cost,
            } => {
                sqlx::query(
                    "UPDATE calls SET summary = $2, ai_outcome = $3, cost = $4 WHERE id = $1",
                )
                .bind(call_id.as_str())
                .bind(summary.as_deref().map(db_text))
                .bind(ai_outcome.as_deref().map(db_text))
                .bind(cost.to_string())
                .execute(&mut **tx)
                .await?;
                Ok(())
            }
            JournalEntry::Cost { call_id, cost } => {
                sqlx::query("UPDATE calls SET cost = $2 WHERE id = $1")
                    .bind(call_id.as_str())
                    .bind(cost.to_string())
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }
            JournalEntry::RecordingChunk {
                call_id,
                seq,
                at,
                audio,
            } => {
                sqlx::query(
                    "INSERT INTO recording_chunks (call_id, seq, at, audio) \
                     VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (call_id, seq) DO NOTHING",
                )
                .bind(call_id.as_str())
                .bind(*seq)
                .bind(*at)
                .bind(audio.as_ref())
                .execute(&mut **tx)
                .await?;
                Ok(())
            }
            JournalEntry::RecordingFinished { call_id, at } => {
                assemble_recording(tx, call_id.as_str(), *at).await?;
                Ok(())
            }
            JournalEntry::LateEvent {
                call_sid,
                at,
                kind,
                detail,
            } => {
                // The latest call of that sid, should a sid repeat.
                let done = sqlx::query(&format!(
                    "INSERT INTO call_events (call_id, seq, at, kind, agent_id, detail) \
                     SELECT c.id, {NEXT_SEQ}, $2, $3, NULL, $4 FROM calls c \
                     WHERE c.id = (SELECT l.id FROM calls l WHERE l.call_sid = $1 \
                                   ORDER BY l.started_at DESC, l.id LIMIT 1)"
                ))
                .bind(db_text(call_sid))
                .bind(*at)
                .bind(*kind)
                .bind(detail.to_string())
                .execute(&mut **tx)
                .await?;
                if done.rows_affected() == 0 {
                    tracing::warn!(call_sid = %call_sid, kind, "late event for an unknown call dropped");
                }
                Ok(())
            }
            JournalEntry::AfterEvent {
                call_id,
                at,
                kind,
                detail,
            } => {
                let done = sqlx::query(&format!(
                    "INSERT INTO call_events (call_id, seq, at, kind, agent_id, detail) \
                     SELECT c.id, {NEXT_SEQ}, $2, $3, NULL, $4 FROM calls c WHERE c.id = $1"
                ))
                .bind(call_id.as_str())
                .bind(*at)
                .bind(*kind)
                .bind(detail.to_string())
                .execute(&mut **tx)
                .await?;
                if done.rows_affected() == 0 {
                    tracing::warn!(call_id = %call_id, kind, "after-call event for an unknown call dropped");
                }
                Ok(())
            }
        }
    }

    async fn insert_call(
        &self,
        tx: &mut Transaction<'static, Any>,
        opened: &CallOpened,
    ) -> Result<(), StoreError> {
        // No conflict target: a row of this id (claimed by the webhook) or of this
        // CallSid (unique) is already there; the claimed row only lacks the
        // workspace, which the call knows.
        let inserted = sqlx::query(
            "INSERT INTO calls (id, call_sid, node_id, direction, from_number, to_number, \
                 workspace, status, started_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'starting', $8) \
             ON CONFLICT DO NOTHING",
        )
        .bind(opened.id.as_str())
        .bind(opened.call_sid.as_deref().map(db_text))
        .bind(self.node_id())
        .bind(opened.direction)
        .bind(db_text(&opened.from))
        .bind(db_text(&opened.to))
        .bind(opened.workspace.as_ref().map(|w| w.as_str()))
        .bind(opened.started_at)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            if let Some(workspace) = &opened.workspace {
                sqlx::query("UPDATE calls SET workspace = $2 WHERE id = $1 AND workspace IS NULL")
                    .bind(opened.id.as_str())
                    .bind(workspace.as_str())
                    .execute(&mut **tx)
                    .await?;
            }
        }
        Ok(())
    }
}

/// Joins a call's recording chunks, in order, into its recording (a mu-law WAV) and
/// deletes them. Nothing happens when the call has no chunks; a recording already
/// there is kept (a replayed entry changes nothing).
async fn assemble_recording(
    tx: &mut Transaction<'static, Any>,
    call_id: &str,
    at: i64,
) -> Result<(), StoreError> {
    let rows = sqlx::query("SELECT audio FROM recording_chunks WHERE call_id = $1 ORDER BY seq")
        .bind(call_id)
        .fetch_all(&mut **tx)
        .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let mut samples = Vec::new();
    for row in &rows {
        samples.extend_from_slice(&row.try_get::<Vec<u8>, _>("audio")?);
    }
    let duration_ms = audio::duration_ms(samples.len()) as i64;
    sqlx::query(
        "INSERT INTO recordings (call_id, content_type, bytes, duration_ms, created_at) \
         VALUES ($1, 'audio/wav', $2, $3, $4) \
         ON CONFLICT (call_id) DO NOTHING",
    )
    .bind(call_id)
    .bind(audio::ulaw_wav(&samples).as_ref())
    .bind(duration_ms)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM recording_chunks WHERE call_id = $1")
        .bind(call_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn insert_event(
    tx: &mut Transaction<'static, Any>,
    event: &CallEvent,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO call_events (call_id, seq, at, kind, agent_id, detail) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (call_id, seq) DO NOTHING",
    )
    .bind(event.call_id.as_str())
    .bind(event.seq)
    .bind(event.at)
    .bind(event.kind)
    .bind(event.agent_id.as_ref().map(AgentId::as_str))
    .bind(event.detail.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn event_from_row(row: &AnyRow) -> Result<EventView, StoreError> {
    let seq: i64 = row.try_get("seq")?;
    let detail: String = row.try_get("detail")?;
    Ok(EventView {
        seq,
        at: row.try_get("at")?,
        kind: row.try_get("kind")?,
        agent_id: row.try_get("agent_id")?,
        detail: serde_json::from_str(&detail)
            .map_err(|e| StoreError::Corrupt(format!("call_events.detail of seq {seq}: {e}")))?,
    })
}

/// A call id read back from `calls.id`, which only ever holds ids the engine made.
fn stored_call_id(raw: String) -> Result<CallId, StoreError> {
    CallId::parse(&raw).map_err(|e| StoreError::Corrupt(format!("calls.id {raw:?}: {e}")))
}
