//! `GET /healthz` (liveness) and `GET /readyz` (readiness).
//!
//! `/healthz`: 200 when the engine can take calls (its actors answer). The
//! database is reported but does not fail the check: calls keep flowing while it is
//! away, and their records wait in the journal.
//!
//! `/readyz`: 200 only when every check passes — the database answers, every
//! migration embedded in this binary is applied and, in cluster mode, Redis
//! answers (`cluster`) — so a load balancer sends traffic to a node that can also
//! serve the API; 503 naming the failed checks otherwise.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};

use crate::engine::Engine;

/// How long each check may take before it counts as failed.
const CHECK_DEADLINE: Duration = Duration::from_secs(2);

pub async fn healthz(engine: web::Data<Engine>) -> HttpResponse {
    let actors = tokio::time::timeout(CHECK_DEADLINE, engine.coordinator.seats()).await;
    let database = tokio::time::timeout(CHECK_DEADLINE, engine.store.ping()).await;
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

/// One readiness check's verdict, as `/readyz` shows it under `checks`.
struct Check {
    ok: bool,
    detail: Value,
}

impl Check {
    fn pass() -> Check {
        Check {
            ok: true,
            detail: json!({ "status": "ok" }),
        }
    }

    fn fail(status: &str, extra: Value) -> Check {
        let mut detail = json!({ "status": status });
        if let (Some(detail), Value::Object(extra)) = (detail.as_object_mut(), extra) {
            detail.extend(extra);
        }
        Check { ok: false, detail }
    }
}

pub async fn readyz(engine: web::Data<Engine>) -> HttpResponse {
    let mut checks: Vec<(&str, Check)> = vec![
        ("database", database_check(&engine).await),
        ("migrations", migrations_check(&engine).await),
    ];
    if let Some(cluster) = cluster_check(&engine).await {
        checks.push(("cluster", cluster));
    }
    let failed: Vec<&str> = checks
        .iter()
        .filter(|(_, check)| !check.ok)
        .map(|(name, _)| *name)
        .collect();
    let body = json!({
        "status": if failed.is_empty() { "ready" } else { "not-ready" },
        "failed": failed,
        "checks": checks
            .into_iter()
            .map(|(name, check)| (name.to_owned(), check.detail))
            .collect::<Map<String, Value>>(),
    });
    if failed.is_empty() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn database_check(engine: &Engine) -> Check {
    match tokio::time::timeout(CHECK_DEADLINE, engine.store.ping()).await {
        Ok(Ok(())) => Check::pass(),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness: the database does not answer");
            Check::fail("unavailable", json!({}))
        }
        Err(_) => Check::fail("timeout", json!({})),
    }
}

async fn migrations_check(engine: &Engine) -> Check {
    match tokio::time::timeout(CHECK_DEADLINE, engine.store.missing_migrations()).await {
        Ok(Ok(missing)) if missing.is_empty() => Check::pass(),
        Ok(Ok(missing)) => Check::fail("missing", json!({ "missing": missing })),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness: the applied migrations cannot be read");
            Check::fail("unknown", json!({}))
        }
        Err(_) => Check::fail("timeout", json!({})),
    }
}

/// In cluster mode (`REDIS_URL`), whether Redis answers a `PING`: a node that
/// cannot reach Redis cannot coordinate with the others, so it takes no new
/// traffic. A single node has no such check.
async fn cluster_check(engine: &Engine) -> Option<Check> {
    let cluster = engine.cluster.as_ref()?;
    Some(
        match tokio::time::timeout(CHECK_DEADLINE, cluster.ping()).await {
            Ok(Ok(())) => Check::pass(),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "readiness: Redis does not answer");
                Check::fail("unavailable", json!({}))
            }
            Err(_) => Check::fail("timeout", json!({})),
        },
    )
}
