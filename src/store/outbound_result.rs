//! The result of an outbound call, written after it ends: the after-call work
//! (summary, task outcome, model costs, `analyzed_at`:
//! [`Store::record_outbound_analysis`]) and the reconciliation (Twilio's price,
//! the actual cost, `reconciled_at`, and the `call.result` event with
//! `result_sent_at` in the same transaction: [`Store::settle_outbound`]). The
//! status never changes here (that is `Store::advance_outbound`'s alone).

use serde_json::Value;

use super::deliveries::{enqueue_delivery, NewDelivery};
use super::outbound::OUTBOUND_COLUMNS;
use super::outbound::{outbound_from_row, OutboundCall, OutboundId, OutboundStatus};
use super::{db_text, Store, StoreError};

/// What the after-call work found.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundAnalysis {
    pub summary: Option<String>,
    /// The task outcome, or `{"unavailable": "<why>"}`.
    pub task_outcome: Option<Value>,
    /// The model costs (`realtime_model`, `reasoning_model`, each with its
    /// `amount`).
    pub cost_detail: Value,
}

/// `status IN (…every terminal status…)`.
fn terminal_sql() -> String {
    let names: Vec<String> = OutboundStatus::ALL
        .iter()
        .filter(|s| s.is_terminal())
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    format!("status IN ({})", names.join(", "))
}

fn json_text(value: &Value, what: &str) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

impl Store {
    /// Writes the after-call work once (a second report of the same call
    /// changes nothing); a call already reconciled keeps its cost detail.
    /// Answers whether it was written.
    #[tracing::instrument(skip_all, fields(outbound_id = %id))]
    pub async fn record_outbound_analysis(
        &self,
        id: &OutboundId,
        analysis: &OutboundAnalysis,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let outcome = analysis
            .task_outcome
            .as_ref()
            .map(|o| json_text(o, "task_outcome"))
            .transpose()?;
        let detail = json_text(&analysis.cost_detail, "cost_detail")?;
        let done = sqlx::query(
            "UPDATE outbound_calls SET summary = $1, task_outcome = $2, \
             cost_detail = CASE WHEN reconciled_at IS NULL THEN $3 ELSE cost_detail END, \
             analyzed_at = $4, updated_at = $4 \
             WHERE id = $5 AND analyzed_at IS NULL",
        )
        .bind(analysis.summary.as_deref().map(db_text))
        .bind(outcome.as_deref().map(db_text))
        .bind(db_text(&detail))
        .bind(now_ms)
        .bind(id.as_str())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Terminal calls not reconciled yet, oldest end first: an answered call
    /// once its after-call work is written, or once it ended at or before
    /// `analysis_deadline_ms` (the work never came: an engine stopped).
    #[tracing::instrument(skip_all)]
    pub async fn outbound_to_settle(
        &self,
        analysis_deadline_ms: i64,
        limit: u32,
    ) -> Result<Vec<OutboundCall>, StoreError> {
        let sql = format!(
            "SELECT {OUTBOUND_COLUMNS} FROM outbound_calls \
             WHERE {} AND reconciled_at IS NULL \
             AND (answered_at IS NULL OR analyzed_at IS NOT NULL \
                  OR COALESCE(ended_at, updated_at) <= $1) \
             ORDER BY COALESCE(ended_at, updated_at), id LIMIT $2",
            terminal_sql()
        );
        let rows = sqlx::query(&sql)
            .bind(analysis_deadline_ms)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(outbound_from_row).collect()
    }

    /// Reconciles a call: its actual cost and cost detail, `reconciled_at`,
    /// and — given a delivery — the `call.result` event enqueued with
    /// `result_sent_at`, all in one transaction, only while the call is not
    /// reconciled yet (so two engines never both send a result). Answers
    /// whether this call settled it.
    #[tracing::instrument(skip_all, fields(outbound_id = %id))]
    pub async fn settle_outbound(
        &self,
        id: &OutboundId,
        actual_cost_usd: f64,
        cost_detail: &Value,
        now_ms: i64,
        result: Option<&NewDelivery>,
    ) -> Result<bool, StoreError> {
        let detail = json_text(cost_detail, "cost_detail")?;
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE outbound_calls SET actual_cost_usd = $1, cost_detail = $2, \
             reconciled_at = $3, updated_at = $3, \
             result_sent_at = CASE WHEN $4 = 1 THEN $3 ELSE result_sent_at END \
             WHERE id = $5 AND reconciled_at IS NULL",
        )
        .bind(actual_cost_usd)
        .bind(db_text(&detail))
        .bind(now_ms)
        .bind(i64::from(result.is_some()))
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(delivery) = result {
            enqueue_delivery(&mut tx, delivery).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}
