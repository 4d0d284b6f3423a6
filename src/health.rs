//! `GET /healthz` (liveness) and `GET /readyz` (readiness).
//!
//! `/healthz`: 200 when the engine can take calls (its actors answer). The
//! database is reported but does not fail the check: calls keep flowing while it is
//! away, and their records wait in the journal.
//!
//! `/readyz`: 200 only when every check passes — the database answers, every
//! migration embedded in this binary is applied and, in cluster mode, Redis
//! answers (`cluster`) and the node is not draining (`draining`) — so a load
//! balancer sends traffic to a node that can also serve the API; 503 naming the
//! failed checks otherwise.

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::engine::Engine;

/// How long each check may take before it counts as failed.
const CHECK_DEADLINE: Duration = Duration::from_secs(2);

/// `/healthz`'s answer while the engine's actors answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` while the database is away (calls still flow).
    status: &'static str,
    /// `ok` or `unavailable`.
    database: &'static str,
    /// Records waiting in the journal to be written.
    journal_backlog: i64,
}

/// `/healthz`'s answer when the engine's actors do not answer (`503`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Unhealthy {
    /// `unavailable`.
    status: &'static str,
}

/// Liveness: the engine can take calls
///
/// `200` while the engine's actors answer, whatever the database does (records
/// wait in the journal); `503` otherwise. No token.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses(
        (status = 200, description = "Alive", body = Health),
        (status = 503, description = "The engine's actors do not answer", body = Unhealthy),
    ))]
pub async fn healthz(engine: web::Data<Engine>) -> HttpResponse {
    let actors = tokio::time::timeout(CHECK_DEADLINE, engine.coordinator.seats()).await;
    let database = tokio::time::timeout(CHECK_DEADLINE, engine.store.ping()).await;
    let database_ok = matches!(database, Ok(Ok(())));
    let body = Health {
        status: if database_ok { "ok" } else { "degraded" },
        database: if database_ok { "ok" } else { "unavailable" },
        journal_backlog: engine.journal.backlog(),
    };
    match actors {
        Ok(Ok(_)) => HttpResponse::Ok().json(body),
        _ => HttpResponse::ServiceUnavailable().json(Unhealthy {
            status: "unavailable",
        }),
    }
}

/// One readiness check's verdict, as `/readyz` shows it under `checks`.
struct Check {
    ok: bool,
    detail: CheckDetail,
}

/// What `/readyz` says of one check.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CheckDetail {
    /// `ok`, or why not: `unavailable`, `timeout`, `missing`, `unknown`,
    /// `draining` (cluster mode: the node is being drained and takes nothing new).
    status: &'static str,
    /// The migrations embedded in the binary but not applied (`missing` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    missing: Option<Vec<i64>>,
}

/// `/readyz`'s answer, `200` or `503` alike.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` or `not-ready`.
    status: &'static str,
    /// The names of the checks that failed.
    failed: Vec<&'static str>,
    /// Each check by name (`database`, `migrations`).
    checks: BTreeMap<&'static str, CheckDetail>,
}

impl Check {
    fn pass() -> Check {
        Check {
            ok: true,
            detail: CheckDetail {
                status: "ok",
                missing: None,
            },
        }
    }

    fn fail(status: &'static str, missing: Option<Vec<i64>>) -> Check {
        Check {
            ok: false,
            detail: CheckDetail { status, missing },
        }
    }
}

/// Readiness: the database answers and every migration is applied
///
/// No token. `200` only when every check passes, `503` naming the failed ones
/// otherwise; `/healthz` stays the liveness check.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready: `failed` names the checks", body = Readiness),
    ))]
pub async fn readyz(engine: web::Data<Engine>) -> HttpResponse {
    let mut checks: Vec<(&'static str, Check)> = vec![
        ("database", database_check(&engine).await),
        ("migrations", migrations_check(&engine).await),
    ];
    if let Some(cluster) = cluster_check(&engine).await {
        checks.push(("cluster", cluster));
    }
    // A draining node (SIGTERM in cluster mode) takes nothing new.
    if engine.draining.load(std::sync::atomic::Ordering::Relaxed) {
        checks.push(("draining", Check::fail("draining", None)));
    }
    let failed: Vec<&'static str> = checks
        .iter()
        .filter(|(_, check)| !check.ok)
        .map(|(name, _)| *name)
        .collect();
    let ready = failed.is_empty();
    let body = Readiness {
        status: if ready { "ready" } else { "not-ready" },
        failed,
        checks: checks
            .into_iter()
            .map(|(name, check)| (name, check.detail))
            .collect(),
    };
    if ready {
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
            Check::fail("unavailable", None)
        }
        Err(_) => Check::fail("timeout", None),
    }
}

async fn migrations_check(engine: &Engine) -> Check {
    match tokio::time::timeout(CHECK_DEADLINE, engine.store.missing_migrations()).await {
        Ok(Ok(missing)) if missing.is_empty() => Check::pass(),
        Ok(Ok(missing)) => Check::fail("missing", Some(missing)),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness: the applied migrations cannot be read");
            Check::fail("unknown", None)
        }
        Err(_) => Check::fail("timeout", None),
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
                Check::fail("unavailable", None)
            }
            Err(_) => Check::fail("timeout", None),
        },
    )
}
