//! Who owns a live call in a cluster (issue 16, items 5 and 6): `calls.node_id`
//! (the owner; start-up recovery closes only its own), `owner_epoch` (bumped by
//! each adoption) and `released_at` (a draining owner let the call go). Every
//! change of owner, and every end of a call this node does not hold, is a
//! compare-and-set on the row: of any number of nodes trying at once exactly one
//! changes it.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::Row as _;
use switchboard_actors::journal::now_ms;
use switchboard_actors::CallId;

use super::{placeholders, Store, StoreError};

/// A call's row as an adopter needs it.
#[derive(Debug, Clone)]
pub struct CallOwner {
    pub call_sid: Option<String>,
    /// The node that holds the call.
    pub node_id: String,
    pub owner_epoch: i64,
    /// The owner let the call go (it drains): another node may adopt it.
    pub released: bool,
    pub ended: bool,
    pub from: String,
    pub to: String,
    pub workspace: Option<String>,
    pub direction: String,
    /// The last agent who had the call.
    pub agent_id: Option<String>,
    pub answered: bool,
    pub started_at: i64,
    /// The highest `seq` of the call's trail.
    pub last_seq: i64,
    /// The AI assistant that answered the call, if one did.
    pub assistant_id: Option<String>,
    /// The assistant handed the call over, or failed: it is the agents' now.
    pub assistant_let_go: bool,
}

/// An open call of another node, as the survivors' sweep sees it.
#[derive(Debug, Clone)]
pub struct OpenCall {
    pub call_id: CallId,
    pub node_id: String,
    pub owner_epoch: i64,
}

impl Store {
    /// The call's owner and what adopting it needs, or `None` for no such call.
    #[tracing::instrument(skip_all, fields(call_id = %id))]
    pub async fn call_owner(&self, id: &CallId) -> Result<Option<CallOwner>, StoreError> {
        let row = sqlx::query(
            "SELECT c.call_sid, c.node_id, c.owner_epoch, c.released_at, c.ended_at, \
                    c.from_number, c.to_number, c.workspace, c.direction, c.agent_id, \
                    c.answered_at, c.started_at, c.assistant_id, \
                    (SELECT COALESCE(MAX(e.seq), 0) FROM call_events e WHERE e.call_id = c.id) \
                        AS last_seq, \
                    (SELECT COUNT(*) FROM call_events e WHERE e.call_id = c.id \
                        AND e.kind IN ('ai_handover', 'ai_failed')) AS assistant_let_go \
             FROM calls c WHERE c.id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(CallOwner {
            call_sid: row.try_get("call_sid")?,
            node_id: row.try_get("node_id")?,
            owner_epoch: row.try_get("owner_epoch")?,
            released: row.try_get::<Option<i64>, _>("released_at")?.is_some(),
            ended: row.try_get::<Option<i64>, _>("ended_at")?.is_some(),
            from: row.try_get("from_number")?,
            to: row.try_get("to_number")?,
            workspace: row.try_get("workspace")?,
            direction: row.try_get("direction")?,
            agent_id: row.try_get("agent_id")?,
            answered: row.try_get::<Option<i64>, _>("answered_at")?.is_some(),
            started_at: row.try_get("started_at")?,
            last_seq: row.try_get("last_seq")?,
            assistant_id: row.try_get("assistant_id")?,
            assistant_let_go: row.try_get::<i64, _>("assistant_let_go")? > 0,
        }))
    }

    /// Takes the call over for this node if it is still open and still owned by
    /// `node_id` at `epoch` (a compare-and-set): true for the one node that wins.
    #[tracing::instrument(skip_all, fields(call_id = %id, from = node_id))]
    pub async fn adopt_call(
        &self,
        id: &CallId,
        node_id: &str,
        epoch: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE calls SET node_id = $4, owner_epoch = owner_epoch + 1, released_at = NULL \
             WHERE id = $1 AND node_id = $2 AND owner_epoch = $3 AND ended_at IS NULL",
        )
        .bind(id.as_str())
        .bind(node_id)
        .bind(epoch)
        .bind(self.node_id())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// This node (draining) lets its call go: another node may adopt it while
    /// this one is still alive. False if the call is not open here.
    #[tracing::instrument(skip_all, fields(call_id = %id))]
    pub async fn release_call(&self, id: &CallId) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE calls SET released_at = $2 \
             WHERE id = $1 AND node_id = $3 AND ended_at IS NULL",
        )
        .bind(id.as_str())
        .bind(now_ms())
        .bind(self.node_id())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends a call nobody holds (its node is gone, or could not hand it over) as
    /// `interrupted` with `reason`, if it is still open and still owned by
    /// `node_id` at `epoch`: one `ended` event and the final record, written by
    /// exactly one node however many try. The row names this node as its holder
    /// from then on, so late entries of a node that was only cut off are left out
    /// (see `Store::apply`) rather than added after the `ended`.
    #[tracing::instrument(skip_all, fields(call_id = %id, node = node_id))]
    pub async fn interrupt_unheld_call(
        &self,
        id: &CallId,
        node_id: &str,
        epoch: i64,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        let closed = sqlx::query(
            "UPDATE calls SET status = 'ended', outcome = 'interrupted', end_reason = $4, \
                 ended_at = $5, node_id = $6, owner_epoch = owner_epoch + 1 \
             WHERE id = $1 AND node_id = $2 AND owner_epoch = $3 AND ended_at IS NULL",
        )
        .bind(id.as_str())
        .bind(node_id)
        .bind(epoch)
        .bind(reason)
        .bind(now)
        .bind(self.node_id())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if closed == 1 {
            let detail = serde_json::json!({ "outcome": "interrupted", "reason": reason });
            sqlx::query(
                "INSERT INTO call_events (call_id, seq, at, kind, agent_id, detail) \
                 SELECT c.id, \
                        (SELECT COALESCE(MAX(e.seq), 0) + 1 FROM call_events e \
                         WHERE e.call_id = c.id), \
                        $2, 'ended', c.agent_id, $3 \
                 FROM calls c WHERE c.id = $1",
            )
            .bind(id.as_str())
            .bind(now)
            .bind(detail.to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        if closed == 1 {
            tracing::warn!(reason, "ended a call no node holds as interrupted");
        }
        Ok(closed == 1)
    }

    /// The open calls of other nodes (the survivors' sweep picks the dead ones'),
    /// at most `limit`.
    pub async fn open_calls_elsewhere(&self, limit: i64) -> Result<Vec<OpenCall>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, node_id, owner_epoch FROM calls \
             WHERE ended_at IS NULL AND node_id <> $1 ORDER BY started_at LIMIT $2",
        )
        .bind(self.node_id())
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(open_call).collect()
    }

    /// The open calls this node released and no one has adopted yet, with their
    /// epoch (a draining node waits for them, then ends what is left).
    pub async fn released_calls_here(&self) -> Result<Vec<OpenCall>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, node_id, owner_epoch FROM calls \
             WHERE ended_at IS NULL AND node_id = $1 AND released_at IS NOT NULL",
        )
        .bind(self.node_id())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(open_call).collect()
    }

    /// Counts a beat of this node (cluster mode): a node whose count goes on
    /// still records its calls, whatever Redis says of it.
    pub async fn node_beat(&self) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO node_beats (node_id, beats) VALUES ($1, 1) \
             ON CONFLICT (node_id) DO UPDATE SET beats = node_beats.beats + 1",
        )
        .bind(self.node_id())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The beat counts of those of `nodes` that ever beat.
    pub async fn node_beats(&self, nodes: &[String]) -> Result<HashMap<String, i64>, StoreError> {
        if nodes.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!(
            "SELECT node_id, beats FROM node_beats WHERE node_id IN ({})",
            placeholders(1, nodes.len())
        );
        let mut query = sqlx::query(&sql);
        for node in nodes {
            query = query.bind(node);
        }
        let rows = query.fetch_all(self.pool()).await?;
        rows.iter()
            .map(|row| Ok((row.try_get("node_id")?, row.try_get("beats")?)))
            .collect()
    }
}

/// An open call from a row of `id, node_id, owner_epoch`.
fn open_call(row: &AnyRow) -> Result<OpenCall, StoreError> {
    let id: String = row.try_get("id")?;
    Ok(OpenCall {
        call_id: CallId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        node_id: row.try_get("node_id")?,
        owner_epoch: row.try_get("owner_epoch")?,
    })
}
