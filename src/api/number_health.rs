//! `GET /api/numbers/health` (admin token): every Twilio number of the pool
//! with its outbound figures over the number-health window, whether it rests
//! (not used as caller ID), until when and why (`safety::number_health`).

use actix_web::{web, HttpResponse};

use super::admin::Admin;
use crate::engine::Engine;
use crate::error::ApiError;
use crate::safety::number_health;

pub async fn health(_admin: Admin, engine: web::Data<Engine>) -> Result<HttpResponse, ApiError> {
    let now_ms = engine.clock.now().as_millisecond();
    let report = number_health::report(&engine.store, &engine.settings, now_ms).await?;
    Ok(HttpResponse::Ok().json(report))
}
