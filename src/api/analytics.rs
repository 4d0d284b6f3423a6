//! `GET /api/analytics/summary` (admin): call analytics for a date range, per
//! workspace, grouped by day, number, route or assistant. The figures are sums
//! and percentiles aggregated by SQL (`store::analytics`); this handler parses
//! the query and turns sums into rates.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::admin::Admin;
use super::flags::query_params;
use crate::domain::field::FieldError;
use crate::engine::Engine;
use crate::error::{ApiError, ErrorBody};
use crate::store::analytics::{AnalyticsScope, CallFigures, GroupBy, OutboundFigures};

/// The longest range one summary covers, in days (a leap year).
const MAX_RANGE_DAYS: i64 = 366;
const MS_PER_DAY: i64 = 86_400_000;

/// The parsed query: `from` and `to` are UTC dates, both included.
struct SummaryQuery {
    from: jiff::civil::Date,
    to: jiff::civil::Date,
    scope: AnalyticsScope,
    group_by: GroupBy,
    group_by_name: &'static str,
}

fn parse_query(query: &str) -> Result<SummaryQuery, ApiError> {
    let params = query_params(query, &["from", "to", "workspace", "group_by"])?;
    let date = |name: &str| -> Result<jiff::civil::Date, ApiError> {
        let raw = params
            .get(name)
            .filter(|raw| !raw.is_empty())
            .ok_or_else(|| FieldError::new(name, "required (a date, YYYY-MM-DD)"))?;
        raw.parse::<jiff::civil::Date>()
            .map_err(|_| FieldError::new(name, "not a date (YYYY-MM-DD)").into())
    };
    let from = date("from")?;
    let to = date("to")?;
    if to < from {
        return Err(FieldError::new("to", "is before from").into());
    }
    let start_ms = utc_midnight_ms(from)?;
    let end_ms = utc_midnight_ms(to)? + MS_PER_DAY;
    if end_ms - start_ms > MAX_RANGE_DAYS * MS_PER_DAY {
        return Err(FieldError::new(
            "to",
            format!("the range is over a year ({MAX_RANGE_DAYS} days at most)"),
        )
        .into());
    }
    let workspace = params
        .get("workspace")
        .filter(|w| !w.is_empty())
        .map(|w| crate::store::db_text(w));
    let (group_by, group_by_name) = match params.get("group_by").map(String::as_str) {
        None | Some("") | Some("day") => (GroupBy::Day, "day"),
        Some("number") => (GroupBy::Number, "number"),
        Some("route") => (GroupBy::Route, "route"),
        Some("assistant") => (GroupBy::Assistant, "assistant"),
        Some(_) => {
            return Err(
                FieldError::new("group_by", "must be one of day, number, route, assistant").into(),
            )
        }
    };
    Ok(SummaryQuery {
        from,
        to,
        scope: AnalyticsScope {
            from_ms: start_ms,
            to_ms: end_ms,
            workspace,
        },
        group_by,
        group_by_name,
    })
}

fn utc_midnight_ms(date: jiff::civil::Date) -> Result<i64, ApiError> {
    format!("{date}T00:00:00Z")
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|e| FieldError::new("from", e.to_string()).into())
}

/// `200 {"from","to","workspace","group_by","totals","groups","cost_by_route","outbound"}`.
/// `GET /api/analytics/summary`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Summary {
    /// `YYYY-MM-DD`, included.
    from: String,
    /// `YYYY-MM-DD`, included.
    to: String,
    /// One workspace, or `null`: all.
    workspace: Option<String>,
    /// `day`, `number`, `route` or `assistant`.
    group_by: &'static str,
    totals: Figures,
    groups: Vec<Group>,
    /// `human` and `ai` side by side.
    cost_by_route: BTreeMap<&'static str, Cost>,
    outbound: Outbound,
}

/// The inbound figures of a group, or of all calls. Rates are 0–1 rounded to 4
/// decimals, `null` when there is nothing to divide by.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = AnalyticsFigures)]
pub struct Figures {
    calls: i64,
    answered: i64,
    answer_rate: Option<f64>,
    time_to_answer_ms: Percentiles,
    abandoned: i64,
    abandon_rate: Option<f64>,
    voicemail: i64,
    ai_calls: i64,
    ai_contained: i64,
    ai_containment: Option<f64>,
    transferred: i64,
    transfer_rate: Option<f64>,
    average_handle_time_secs: Option<f64>,
    cost: Cost,
}

/// Nearest-rank percentiles of answer − start over the answered calls.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Percentiles {
    p50: Option<i64>,
    p90: Option<i64>,
}

/// One group: its key (the day, number, route or assistant; `null` for calls
/// without an assistant) and its figures.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = AnalyticsGroup)]
pub struct Group {
    key: Option<String>,
    #[serde(flatten)]
    figures: Figures,
}

/// What the calls cost, USD.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = AnalyticsCost)]
pub struct Cost {
    calls: i64,
    priced_calls: i64,
    total_usd: f64,
    per_call_usd: Option<f64>,
    per_minute_usd: Option<f64>,
}

/// The outbound calls created in the range.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = AnalyticsOutbound)]
pub struct Outbound {
    calls: i64,
    /// Calls by disposition.
    dispositions: BTreeMap<String, i64>,
    /// Calls with a task outcome.
    judged: i64,
    objective_met: i64,
    objective_met_rate: Option<f64>,
}

/// Call analytics for a date range
///
/// Inbound calls that started in the range and outbound calls created in it,
/// aggregated in SQL: totals, groups, the cost by route (human vs AI) and the
/// outbound dispositions. Unknown parameters are `400 bad-parameter`.
#[utoipa::path(get, path = "/api/analytics/summary", tag = "analytics",
    security(("admin_token" = [])),
    params(
        ("from" = String, Query, description = "A UTC date, `YYYY-MM-DD`, included"),
        ("to" = String, Query, description = "A UTC date, included; at most 366 days after `from`"),
        ("workspace" = Option<String>, Query, description = "One workspace (absent: all)"),
        ("group_by" = Option<String>, Query, description = "`day` (default), `number`, `route` or `assistant`"),
    ),
    responses(
        (status = 200, description = "The summary", body = Summary),
        (status = 400, description = "`bad-field` (a date, the range, `group_by`), `bad-parameter`", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn summary(
    _admin: Admin,
    engine: web::Data<Engine>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = parse_query(req.query_string())?;
    let store = &engine.store;
    let summary = store.call_summary(&query.scope, query.group_by).await?;
    let outbound = store.outbound_figures(&query.scope).await?;
    let (totals, groups) = (summary.totals, summary.groups);
    let mut cost_by_route = BTreeMap::new();
    for route in ["human", "ai"] {
        let figures = summary
            .routes
            .iter()
            .find(|f| f.key.as_deref() == Some(route))
            .cloned()
            .unwrap_or_default();
        cost_by_route.insert(route, cost_json(&figures));
    }
    Ok(HttpResponse::Ok().json(Summary {
        from: query.from.to_string(),
        to: query.to.to_string(),
        workspace: query.scope.workspace,
        group_by: query.group_by_name,
        totals: figures_json(&totals),
        groups: groups
            .iter()
            .map(|g| Group {
                key: g.key.clone(),
                figures: figures_json(g),
            })
            .collect(),
        cost_by_route,
        outbound: outbound_json(&outbound),
    }))
}

/// `part / whole`, rounded to 4 decimals; `null` when there is no whole.
fn rate(part: i64, whole: i64) -> Option<f64> {
    (whole != 0).then(|| round(part as f64 / whole as f64, 4))
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

fn figures_json(f: &CallFigures) -> Figures {
    Figures {
        calls: f.calls,
        answered: f.answered,
        answer_rate: rate(f.answered, f.calls),
        time_to_answer_ms: Percentiles {
            p50: f.answer_p50_ms,
            p90: f.answer_p90_ms,
        },
        abandoned: f.abandoned,
        abandon_rate: rate(f.abandoned, f.calls),
        voicemail: f.voicemail,
        ai_calls: f.ai_calls,
        ai_contained: f.ai_contained,
        ai_containment: rate(f.ai_contained, f.ai_calls),
        transferred: f.transferred,
        transfer_rate: rate(f.transferred, f.calls),
        average_handle_time_secs: (f.handled != 0)
            .then(|| round(f.handle_ms as f64 / f.handled as f64 / 1000.0, 3)),
        cost: cost_json(f),
    }
}

fn cost_json(f: &CallFigures) -> Cost {
    let minutes = f.priced_ms as f64 / 60_000.0;
    Cost {
        calls: f.calls,
        priced_calls: f.priced,
        total_usd: round(f.cost_usd, 6),
        per_call_usd: (f.priced != 0).then(|| round(f.cost_usd / f.priced as f64, 6)),
        per_minute_usd: (f.priced_ms > 0).then(|| round(f.cost_usd / minutes, 6)),
    }
}

fn outbound_json(rows: &[OutboundFigures]) -> Outbound {
    let calls: i64 = rows.iter().map(|r| r.calls).sum();
    let judged: i64 = rows.iter().map(|r| r.judged).sum();
    let met: i64 = rows.iter().map(|r| r.objective_met).sum();
    Outbound {
        calls,
        dispositions: rows.iter().map(|r| (r.status.clone(), r.calls)).collect(),
        judged,
        objective_met: met,
        objective_met_rate: rate(met, judged),
    }
}
