//! Call analytics: the figures of `GET /api/analytics/summary`, aggregated by SQL
//! on either backend (no row of a call reaches Rust; only one row per group, route
//! and transfer mark — at most four per group — and for the percentiles at most
//! two rows per group and two for all).
//!
//! Scope: inbound calls of `calls` whose `started_at` is in `[from_ms, to_ms)`
//! (and of one workspace when asked), and the outbound calls of `outbound_calls`
//! created in the same range. Indexes: migration 0020.
//!
//! A summary reads the range twice (see [`Store::call_summary`]): the groups,
//! the totals and the split by route are sums of the same cells.
//!
//! Time to answer p50/p90 are nearest-rank percentiles computed in SQL: a window
//! (`ROW_NUMBER() OVER (PARTITION BY key ORDER BY answered_at - started_at)` and
//! the group's `COUNT(*) OVER`, and the same over all rows for the totals) picks
//! the rows of rank `ceil(n·50/100)` and `ceil(n·90/100)`.

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

/// What one summary shows of the inbound calls.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallSummary {
    /// One per key of the grouping, by key.
    pub groups: Vec<CallFigures>,
    /// Every call of the scope (no key).
    pub totals: CallFigures,
    /// Keyed `human` and `ai` (only the routes with calls); without percentiles.
    pub routes: Vec<CallFigures>,
}

impl CallFigures {
    /// Adds the sums of `other` (not its key, not its percentiles).
    fn add(&mut self, other: &CallFigures) {
        self.calls += other.calls;
        self.answered += other.answered;
        self.abandoned += other.abandoned;
        self.voicemail += other.voicemail;
        self.ai_calls += other.ai_calls;
        self.ai_contained += other.ai_contained;
        self.transferred += other.transferred;
        self.handled += other.handled;
        self.handle_ms += other.handle_ms;
        self.priced += other.priced;
        self.cost_usd += other.cost_usd;
        self.priced_ms += other.priced_ms;
    }

    /// Keeps `tta` as p50 and/or p90 when `rank` of `n` is their nearest rank.
    fn take_percentile(&mut self, rank: i64, n: i64, tta: i64) {
        if rank == (n * 50 + 99) / 100 {
            self.answer_p50_ms = Some(tta);
        }
        if rank == (n * 90 + 99) / 100 {
            self.answer_p90_ms = Some(tta);
        }
    }
}

/// The group of `key` in `groups`, added (empty) when missing.
fn group_of<'a>(groups: &'a mut Vec<CallFigures>, key: &Option<String>) -> &'a mut CallFigures {
    let at = match groups.iter().position(|g| &g.key == key) {
        Some(at) => at,
        None => {
            groups.push(CallFigures {
                key: key.clone(),
                ..CallFigures::default()
            });
            groups.len() - 1
        }
    };
    &mut groups[at]
}

/// `sql` with the scope's range (and workspace) bound.
fn scoped<'q>(
    sql: &'q str,
    scope: &'q AnalyticsScope,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let mut query = sqlx::query(sql).bind(scope.from_ms).bind(scope.to_ms);
    if let Some(workspace) = &scope.workspace {
        query = query.bind(workspace.as_str());
    }
    query
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
    /// The figures of the inbound calls in `scope`: per group of `group_by`, in
    /// total, and per route, in two passes over the range's rows. The first sums
    /// each (group, route, transferred) cell, which Rust adds up into the three
    /// views (a cell per transfer mark, so the per-call `EXISTS` on `call_events`
    /// runs once per call); the second ranks the answered calls' time to answer
    /// within each group and over all, and returns only the percentile rows.
    #[tracing::instrument(skip_all, fields(group_by = ?group_by))]
    pub async fn call_summary(
        &self,
        scope: &AnalyticsScope,
        group_by: GroupBy,
    ) -> Result<CallSummary, StoreError> {
        let (key, label) = key_sql(self.backend, group_by);
        let cost = cost_total_sql(self.backend);
        let filter = filter_sql(scope);
        let sql = format!(
            "SELECT {label} AS k, r, x, COUNT(*) AS calls, \
               {answered} AS answered, {abandoned} AS abandoned, {voicemail} AS voicemail, \
               {unbroken} AS unbroken, \
               {handled} AS handled, {handle_ms} AS handle_ms, \
               {priced} AS priced, \
               CAST(COALESCE(SUM({cost}), 0) AS DOUBLE PRECISION) AS cost_usd, \
               {priced_ms} AS priced_ms \
             FROM (SELECT {key} AS d, {ROUTE} AS r, \
                     CAST(CASE WHEN {TRANSFERRED} THEN 1 ELSE 0 END AS BIGINT) AS x, \
                     c.answered_at, c.ended_at, c.started_at, c.outcome, c.cost \
                   FROM calls c WHERE {filter}) c \
             GROUP BY d, r, x",
            answered = count_if("c.answered_at IS NOT NULL"),
            abandoned = count_if("c.outcome = 'abandoned'"),
            voicemail = count_if("c.outcome = 'voicemail'"),
            unbroken = count_if(
                "c.ended_at IS NOT NULL AND COALESCE(c.outcome, '') NOT IN ('failed', 'interrupted')"
            ),
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
        let mut tx = self.read_tx().await?;
        let rows = scoped(&sql, scope).fetch_all(&mut *tx).await?;
        let mut summary = CallSummary::default();
        for row in &rows {
            let key: Option<String> = row.try_get("k")?;
            let route: String = row.try_get("r")?;
            let transferred: i64 = row.try_get("x")?;
            let calls: i64 = row.try_get("calls")?;
            let ai = route == "ai";
            let unbroken: i64 = row.try_get("unbroken")?;
            let cell = CallFigures {
                key: None,
                calls,
                answered: row.try_get("answered")?,
                abandoned: row.try_get("abandoned")?,
                voicemail: row.try_get("voicemail")?,
                ai_calls: if ai { calls } else { 0 },
                ai_contained: if ai && transferred == 0 { unbroken } else { 0 },
                transferred: if transferred == 1 { calls } else { 0 },
                handled: row.try_get("handled")?,
                handle_ms: row.try_get("handle_ms")?,
                priced: row.try_get("priced")?,
                cost_usd: row.try_get("cost_usd")?,
                priced_ms: row.try_get("priced_ms")?,
                answer_p50_ms: None,
                answer_p90_ms: None,
            };
            group_of(&mut summary.groups, &key).add(&cell);
            group_of(&mut summary.routes, &Some(route)).add(&cell);
            summary.totals.add(&cell);
        }

        // Time to answer: the nearest-rank rows of each group and of all calls.
        let sql = format!(
            "SELECT {label} AS k, tta, rn, n, rn_all, n_all FROM ( \
               SELECT d, tta, \
                 ROW_NUMBER() OVER (PARTITION BY d ORDER BY tta) AS rn, \
                 COUNT(*) OVER (PARTITION BY d) AS n, \
                 ROW_NUMBER() OVER (ORDER BY tta) AS rn_all, \
                 COUNT(*) OVER () AS n_all \
               FROM (SELECT {key} AS d, c.answered_at - c.started_at AS tta \
                     FROM calls c WHERE {filter} AND c.answered_at IS NOT NULL) c \
             ) r WHERE rn = (n * 50 + 99) / 100 OR rn = (n * 90 + 99) / 100 \
               OR rn_all = (n_all * 50 + 99) / 100 OR rn_all = (n_all * 90 + 99) / 100"
        );
        for row in scoped(&sql, scope).fetch_all(&mut *tx).await? {
            let key: Option<String> = row.try_get("k")?;
            let tta: i64 = row.try_get("tta")?;
            let (rn, n): (i64, i64) = (row.try_get("rn")?, row.try_get("n")?);
            let (rn_all, n_all): (i64, i64) = (row.try_get("rn_all")?, row.try_get("n_all")?);
            if let Some(group) = summary.groups.iter_mut().find(|f| f.key == key) {
                group.take_percentile(rn, n, tta);
            }
            summary.totals.take_percentile(rn_all, n_all, tta);
        }
        tx.commit().await?;
        summary.groups.sort_by(|a, b| a.key.cmp(&b.key));
        summary.routes.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(summary)
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
        let mut tx = self.read_tx().await?;
        let rows = scoped(&sql, scope).fetch_all(&mut *tx).await?;
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

/// The call's route: `ai` when an assistant took it, else `human`.
const ROUTE: &str = "CASE WHEN c.assistant_id IS NOT NULL THEN 'ai' ELSE 'human' END";

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

/// What a call's group is computed from (`d`, per row: kept cheap) and the group's
/// key out of `d` (per group only). A day is grouped by its number since the epoch
/// (`started_at` is never negative, so the division floors), and printed only
/// once per group: formatting a date per row was most of a day grouping's cost.
fn key_sql(backend: Backend, group_by: GroupBy) -> (&'static str, &'static str) {
    match (group_by, backend) {
        (GroupBy::Day, Backend::Sqlite) => (
            "c.started_at / 86400000",
            "strftime('%Y-%m-%d', d * 86400, 'unixepoch')",
        ),
        (GroupBy::Day, Backend::Postgres) => (
            "c.started_at / 86400000",
            "to_char(to_timestamp(d * 86400) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        ),
        (GroupBy::Number, _) => ("c.to_number", "d"),
        (GroupBy::Route, _) => (ROUTE, "d"),
        (GroupBy::Assistant, _) => ("c.assistant_id", "d"),
    }
}

/// The call's cost total (USD) out of its cost JSON (`{"total": …}`).
fn cost_total_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "CAST(json_extract(c.cost, '$.total') AS DOUBLE PRECISION)",
        Backend::Postgres => "CAST(CAST(c.cost AS json)->>'total' AS DOUBLE PRECISION)",
    }
}
