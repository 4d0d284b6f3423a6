//! Call analytics: the figures of `GET /api/analytics/summary`, aggregated by SQL
//! on either backend (no row of a call reaches Rust; only one row per group, and
//! for the percentiles at most two rows per group).
//!
//! Scope: inbound calls of `calls` whose `started_at` is in `[from_ms, to_ms)`
//! (and of one workspace when asked), and the outbound calls of `outbound_calls`
//! created in the same range. Indexes: migration 0020.
//!
//! Time to answer p50/p90 are nearest-rank percentiles computed in SQL: a window
//! (`ROW_NUMBER() OVER (PARTITION BY key ORDER BY answered_at - started_at)` and
//! the group's `COUNT(*) OVER`) picks the rows of rank `ceil(n·50/100)` and
//! `ceil(n·90/100)`, so the database returns at most two rows per group.

use sqlx::Row as _;

use super::{Backend, Store, StoreError};

/// What the figures are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// The UTC day the call started (`YYYY-MM-DD`).
    Day,
    /// The number called.
    Number,
    /// `human` or `ai` (an assistant took the call).
    Route,
    /// The assistant's id (no assistant: no key).
    Assistant,
    /// One group with every call: the totals.
    All,
}

/// The figures of one group of inbound calls, as sums; rates are derived.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallFigures {
    /// The group's key (`None` for the calls without one, e.g. no assistant).
    pub key: Option<String>,
    pub calls: i64,
    /// Calls someone (an agent or an assistant) picked up: `answered_at` is set.
    pub answered: i64,
    pub abandoned: i64,
    pub voicemail: i64,
    /// Calls an assistant took.
    pub ai_calls: i64,
    /// Of those, the ones that ended without a transfer or a handover.
    pub ai_contained: i64,
    /// Calls transferred (a `transferred` or `ai_handover` event) or whose
    /// assistant's outcome is `transferred`.
    pub transferred: i64,
    /// Answered and ended calls, and the sum of their talk time (end − answer).
    pub handled: i64,
    pub handle_ms: i64,
    /// Calls with a cost figure, the sum of their totals (USD) and of their
    /// lengths (end − start).
    pub priced: i64,
    pub cost_usd: f64,
    pub priced_ms: i64,
    /// Time to answer, nearest-rank percentiles (ms); `None` without answered calls.
    pub answer_p50_ms: Option<i64>,
    pub answer_p90_ms: Option<i64>,
}

/// Outbound calls created in the range with one status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundFigures {
    pub status: String,
    pub calls: i64,
    /// Calls whose task outcome was judged, and of those the ones whose
    /// objective was met.
    pub judged: i64,
    pub objective_met: i64,
}

/// The range and scope every query shares.
#[derive(Debug, Clone)]
pub struct AnalyticsScope {
    pub from_ms: i64,
    pub to_ms: i64,
    pub workspace: Option<String>,
}

impl Store {
    /// The figures of the inbound calls in `scope`, one row per group.
    #[tracing::instrument(skip_all, fields(group_by = ?group_by))]
    pub async fn call_figures(
        &self,
        scope: &AnalyticsScope,
        group_by: GroupBy,
    ) -> Result<Vec<CallFigures>, StoreError> {
        let key = key_sql(self.backend, group_by);
        let cost = cost_total_sql(self.backend);
        let filter = filter_sql(scope);
        let sql = format!(
            "SELECT {key} AS k, COUNT(*) AS calls, \
               {answered} AS answered, {abandoned} AS abandoned, {voicemail} AS voicemail, \
               {ai_calls} AS ai_calls, {contained} AS ai_contained, {transferred} AS transferred, \
               {handled} AS handled, {handle_ms} AS handle_ms, \
               {priced} AS priced, \
               CAST(COALESCE(SUM({cost}), 0) AS DOUBLE PRECISION) AS cost_usd, \
               {priced_ms} AS priced_ms \
             FROM calls c WHERE {filter} GROUP BY {key}",
            answered = count_if("c.answered_at IS NOT NULL"),
            abandoned = count_if("c.outcome = 'abandoned'"),
            voicemail = count_if("c.outcome = 'voicemail'"),
            ai_calls = count_if("c.assistant_id IS NOT NULL"),
            contained = count_if(&format!(
                "c.assistant_id IS NOT NULL AND c.ended_at IS NOT NULL \
                 AND COALESCE(c.outcome, '') NOT IN ('failed', 'interrupted') \
                 AND NOT ({TRANSFERRED})"
            )),
            transferred = count_if(TRANSFERRED),
            handled = count_if("c.answered_at IS NOT NULL AND c.ended_at IS NOT NULL"),
            handle_ms = sum_if(
                "c.answered_at IS NOT NULL AND c.ended_at IS NOT NULL",
                "c.ended_at - c.answered_at"
            ),
            priced = count_if("c.cost IS NOT NULL"),
            priced_ms = sum_if(
                "c.cost IS NOT NULL AND c.ended_at IS NOT NULL",
                "c.ended_at - c.started_at"
            ),
        );
        let mut query = sqlx::query(&sql).bind(scope.from_ms).bind(scope.to_ms);
        if let Some(workspace) = &scope.workspace {
            query = query.bind(workspace.as_str());
        }
        let mut tx = self.read_tx().await?;
        let rows = query.fetch_all(&mut *tx).await?;
        let mut figures = rows
            .iter()
            .map(|row| {
                Ok(CallFigures {
                    key: row.try_get("k")?,
                    calls: row.try_get("calls")?,
                    answered: row.try_get("answered")?,
                    abandoned: row.try_get("abandoned")?,
                    voicemail: row.try_get("voicemail")?,
                    ai_calls: row.try_get("ai_calls")?,
                    ai_contained: row.try_get("ai_contained")?,
                    transferred: row.try_get("transferred")?,
                    handled: row.try_get("handled")?,
                    handle_ms: row.try_get("handle_ms")?,
                    priced: row.try_get("priced")?,
                    cost_usd: row.try_get("cost_usd")?,
                    priced_ms: row.try_get("priced_ms")?,
                    answer_p50_ms: None,
                    answer_p90_ms: None,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;

        // Time to answer: the two nearest-rank rows of each group.
        let sql = format!(
            "SELECT k, tta, rn, n FROM ( \
               SELECT {key} AS k, c.answered_at - c.started_at AS tta, \
                 ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY c.answered_at - c.started_at) AS rn, \
                 COUNT(*) OVER (PARTITION BY {key}) AS n \
               FROM calls c WHERE {filter} AND c.answered_at IS NOT NULL \
             ) r WHERE rn = (n * 50 + 99) / 100 OR rn = (n * 90 + 99) / 100"
        );
        let mut query = sqlx::query(&sql).bind(scope.from_ms).bind(scope.to_ms);
        if let Some(workspace) = &scope.workspace {
            query = query.bind(workspace.as_str());
        }
        for row in query.fetch_all(&mut *tx).await? {
            let key: Option<String> = row.try_get("k")?;
            let tta: i64 = row.try_get("tta")?;
            let rn: i64 = row.try_get("rn")?;
            let n: i64 = row.try_get("n")?;
            if let Some(group) = figures.iter_mut().find(|f| f.key == key) {
                if rn == (n * 50 + 99) / 100 {
                    group.answer_p50_ms = Some(tta);
                }
                if rn == (n * 90 + 99) / 100 {
                    group.answer_p90_ms = Some(tta);
                }
            }
        }
        tx.commit().await?;
        figures.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(figures)
    }

    /// A transaction for the analytics' reads. PostgreSQL: without its JIT, whose
    /// compilation (about 0.5 s, measured) the planner picks for these aggregates
    /// over tens of thousands of rows and costs more than the whole query.
    async fn read_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SET LOCAL jit = off").execute(&mut *tx).await?;
        }
        Ok(tx)
    }

    /// The outbound calls created in `scope`, one row per status.
    #[tracing::instrument(skip_all)]
    pub async fn outbound_figures(
        &self,
        scope: &AnalyticsScope,
    ) -> Result<Vec<OutboundFigures>, StoreError> {
        let met = match self.backend {
            Backend::Sqlite => "json_extract(o.task_outcome, '$.objective_met') = 1",
            Backend::Postgres => "CAST(o.task_outcome AS json)->>'objective_met' = 'true'",
        };
        let workspace = if scope.workspace.is_some() {
            " AND o.workspace = $3"
        } else {
            ""
        };
        let sql = format!(
            "SELECT o.status AS status, COUNT(*) AS calls, \
               CAST(COALESCE(SUM(CASE WHEN o.task_outcome IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS judged, \
               CAST(COALESCE(SUM(CASE WHEN o.task_outcome IS NOT NULL AND {met} THEN 1 ELSE 0 END), 0) AS BIGINT) AS met \
             FROM outbound_calls o \
             WHERE o.created_at >= $1 AND o.created_at < $2{workspace} \
             GROUP BY o.status ORDER BY o.status"
        );
        let mut query = sqlx::query(&sql).bind(scope.from_ms).bind(scope.to_ms);
        if let Some(workspace) = &scope.workspace {
            query = query.bind(workspace.as_str());
        }
        let mut tx = self.read_tx().await?;
        let rows = query.fetch_all(&mut *tx).await?;
        tx.commit().await?;
        rows.iter()
            .map(|row| {
                Ok(OutboundFigures {
                    status: row.try_get("status")?,
                    calls: row.try_get("calls")?,
                    judged: row.try_get("judged")?,
                    objective_met: row.try_get("met")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}

/// A call was transferred: by an agent or supervisor, or handed over by its
/// assistant.
const TRANSFERRED: &str = "COALESCE(c.ai_outcome, '') = 'transferred' OR EXISTS ( \
     SELECT 1 FROM call_events e WHERE e.call_id = c.id AND e.kind IN ('transferred', 'ai_handover'))";

fn filter_sql(scope: &AnalyticsScope) -> String {
    let mut filter =
        String::from("c.direction = 'inbound' AND c.started_at >= $1 AND c.started_at < $2");
    if scope.workspace.is_some() {
        filter.push_str(" AND c.workspace = $3");
    }
    filter
}

/// `COUNT(*) FILTER (WHERE …)` in the SQL both backends speak; PostgreSQL sums
/// integers as NUMERIC, which the `Any` driver cannot read: cast back.
fn count_if(condition: &str) -> String {
    sum_if(condition, "1")
}

fn sum_if(condition: &str, value: &str) -> String {
    format!("CAST(COALESCE(SUM(CASE WHEN {condition} THEN {value} ELSE 0 END), 0) AS BIGINT)")
}

fn key_sql(backend: Backend, group_by: GroupBy) -> &'static str {
    match (group_by, backend) {
        (GroupBy::Day, Backend::Sqlite) => "strftime('%Y-%m-%d', c.started_at / 1000, 'unixepoch')",
        (GroupBy::Day, Backend::Postgres) => {
            "to_char(to_timestamp(c.started_at / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
        }
        (GroupBy::Number, _) => "c.to_number",
        (GroupBy::Route, _) => "CASE WHEN c.assistant_id IS NOT NULL THEN 'ai' ELSE 'human' END",
        (GroupBy::Assistant, _) => "c.assistant_id",
        // Always `inbound` (the filter): one group, and no constant in GROUP BY,
        // which PostgreSQL refuses.
        (GroupBy::All, _) => "c.direction",
    }
}

/// The call's cost total (USD) out of its cost JSON (`{"total": …}`).
fn cost_total_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "CAST(json_extract(c.cost, '$.total') AS DOUBLE PRECISION)",
        Backend::Postgres => "CAST(CAST(c.cost AS json)->>'total' AS DOUBLE PRECISION)",
    }
}
