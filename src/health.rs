//! `GET /healthz`: 200 when the engine can take calls (its actors answer). The
//! database is reported but does not fail the check: calls keep flowing while it is
//! away, and their records wait in the journal.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::engine::Engine;

pub async fn healthz(engine: web::Data<Engine>) -> HttpResponse {
    let deadline = Duration::from_secs(2);
    let actors = tokio::time::timeout(deadline, engine.coordinator.seats()).await;
    let database = tokio::time::timeout(deadline, engine.store.ping()).await;
    let database_ok = matches!(database, Ok(Ok(())));
    let body = json!({
        "status": if database_ok { "ok" } else { "degraded" },
        "database": if database_ok { "ok" } else { "unavailable" },
        "journal_backlog": engine.journal.backlog(),
    });
    match actors {
        Ok(Ok(_)) => HttpResponse::Ok().json(body),
        _ => HttpResponse::ServiceUnavailable().json(json!({ "status": "unavailable" })),
    }
}
