//! `GET /api/numbers/health` (admin token): every Twilio number of the pool
//! with its outbound figures over the number-health window, whether it rests
//! (not used as caller ID), until when and why (`safety::number_health`).

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::admin::Admin;
use crate::engine::Engine;
use crate::error::{ApiError, ErrorBody};
use crate::safety::number_health;

// The report is built as JSON by `safety::number_health::report` (the safety
// layer, shared with its job); these types describe it for the OpenAPI document.

/// Thresholds of `[safety.number_health]`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HealthThresholds {
    pub min_calls: u64,
    pub min_answer_rate: f64,
    pub short_call_secs: u64,
    pub max_short_call_ratio: f64,
    pub max_opt_outs: u64,
    pub rest_secs: u64,
}

/// A number's outbound figures over the window.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HealthFigures {
    pub calls: u64,
    pub answered: u64,
    pub short_calls: u64,
    pub early_hangups: u64,
    pub opt_outs: u64,
    pub answer_rate: f64,
    pub short_call_ratio: f64,
    pub early_hangup_ratio: f64,
}

/// One Twilio number of the pool.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NumberHealth {
    pub e164: String,
    pub figures: HealthFigures,
    /// Not used as caller ID until `rested_until`.
    pub rested: bool,
    /// The threshold that rested it, with the counts; `null` when not resting.
    pub reason: Option<String>,
    /// RFC 3339, or `null`.
    pub rested_at: Option<String>,
    /// RFC 3339, or `null`.
    pub rested_until: Option<String>,
    /// The figures that rested it, or `null`.
    pub figures_when_rested: Option<HealthFigures>,
    /// What the current figures say (`null`: healthy).
    pub would_rest: Option<String>,
}

/// `GET /api/numbers/health`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HealthReport {
    pub window_secs: u64,
    pub thresholds: HealthThresholds,
    pub numbers: Vec<NumberHealth>,
}

/// Number health: which pool numbers rest
///
/// Every Twilio number of the pool (any workspace) with its outbound calls over
/// `[safety.number_health]`'s window, whether it rests (not used as caller ID),
/// until when and why.
#[utoipa::path(get, path = "/api/numbers/health", tag = "numbers",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The report", body = HealthReport),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn health(_admin: Admin, engine: web::Data<Engine>) -> Result<HttpResponse, ApiError> {
    let now_ms = engine.clock.now().as_millisecond();
    let report = number_health::report(&engine.store, &engine.settings, now_ms).await?;
    Ok(HttpResponse::Ok().json(report))
}
