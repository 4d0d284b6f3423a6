//! `GET /api/cluster` (admin): the nodes of the cluster as Redis lists them —
//! each node's id, own URL, whether its membership key is alive, its last
//! heartbeat and its calls and seats. A single node (no `REDIS_URL`) lists
//! itself. `GET /api/cluster/seats[?workspace=W]` (admin): every softphone seat
//! of the cluster, with the node its socket is on.

use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};
use serde::Serialize;
use switchboard_actors::seat::Presence;
use utoipa::ToSchema;

use crate::api::admin::Admin;
use crate::cluster::{Member, SeatRecord};
use crate::engine::Engine;
use crate::error::{ApiError, ErrorBody};

/// One node as `GET /api/cluster` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeJson {
    pub id: String,
    pub url: String,
    pub alive: bool,
    /// RFC 3339.
    pub last_heartbeat: String,
    pub calls: i64,
    pub seats: i64,
}

/// The answer: `mode` is `cluster` or `single`, `node` the id of the node that
/// answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterJson {
    pub mode: &'static str,
    pub node: String,
    pub nodes: Vec<NodeJson>,
}

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|at| at.to_string())
        .unwrap_or_default()
}

impl From<Member> for NodeJson {
    fn from(member: Member) -> NodeJson {
        let record = member.record;
        NodeJson {
            id: record.id,
            url: record.url,
            alive: member.alive,
            last_heartbeat: rfc3339(record.last_heartbeat_ms),
            calls: record.calls,
            seats: record.seats,
        }
    }
}

/// The cluster's nodes
///
/// Each node as Redis lists it: its id, own URL, whether its membership key is
/// alive, its last heartbeat, its calls and seats. A single node (no
/// `REDIS_URL`) lists itself, `mode` `single`.
#[utoipa::path(get, path = "/api/cluster", tag = "operations",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The nodes", body = ClusterJson),
        (status = 401, description = "No token, a wrong one, or not the admin's", body = ErrorBody),
        (status = 503, description = "`cluster-unavailable`: Redis does not answer (`Retry-After: 1`)", body = ErrorBody),
    ))]
pub async fn get(_admin: Admin, engine: web::Data<Engine>) -> Result<HttpResponse, ApiError> {
    let Some(cluster) = &engine.cluster else {
        let stats = &engine.stats;
        return Ok(HttpResponse::Ok().json(ClusterJson {
            mode: "single",
            node: engine.settings.node_id.clone(),
            nodes: vec![NodeJson {
                id: engine.settings.node_id.clone(),
                url: engine.public_url.to_string(),
                alive: true,
                last_heartbeat: jiff::Timestamp::now().to_string(),
                calls: stats.calls_active.load(Ordering::Relaxed),
                seats: stats.seats_connected.load(Ordering::Relaxed),
            }],
        }));
    };
    let members = cluster.members().await.map_err(|err| {
        tracing::warn!(error = %err, "GET /api/cluster: Redis does not answer");
        ApiError::unavailable(
            "cluster-unavailable",
            "the cluster's membership cannot be read: Redis does not answer",
            1,
        )
    })?;
    Ok(HttpResponse::Ok().json(ClusterJson {
        mode: "cluster",
        node: cluster.node_id().to_owned(),
        nodes: members.into_iter().map(NodeJson::from).collect(),
    }))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub struct SeatsQuery {
    /// Only this workspace's seats.
    pub workspace: Option<String>,
}

/// A softphone seat as `GET /api/cluster/seats` shows it (`SeatRecord`).
#[derive(Debug, Serialize, ToSchema)]
pub struct SeatJson {
    pub agent_id: String,
    pub name: String,
    pub workspace: String,
    /// `available`, `away`, `busy` or `wrap_up`.
    #[schema(value_type = String)]
    pub presence: Presence,
    /// The call the seat is on, if any.
    pub call_id: Option<String>,
    /// The node whose softphone socket this is.
    pub node: String,
    /// Unix milliseconds of the seat's last change.
    pub at_ms: i64,
}

impl From<SeatRecord> for SeatJson {
    fn from(seat: SeatRecord) -> SeatJson {
        SeatJson {
            agent_id: seat.agent_id,
            name: seat.name,
            workspace: seat.workspace,
            presence: seat.presence,
            call_id: seat.call_id,
            node: seat.node,
            at_ms: seat.at_ms,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SeatsJson {
    pub seats: Vec<SeatJson>,
}

/// The cluster's softphone seats
///
/// The seats of every live node (a single node: its own), by workspace then
/// agent, each with the node its socket is on.
#[utoipa::path(get, path = "/api/cluster/seats", tag = "operations",
    security(("admin_token" = [])),
    params(SeatsQuery),
    responses(
        (status = 200, description = "The seats", body = SeatsJson),
        (status = 400, description = "`bad-workspace`", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or not the admin's", body = ErrorBody),
        (status = 503, description = "`cluster-unavailable`: Redis does not answer; `engine-busy` (`Retry-After: 1`)", body = ErrorBody),
    ))]
pub async fn seats(
    _admin: Admin,
    engine: web::Data<Engine>,
    query: web::Query<SeatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let workspace = match query.into_inner().workspace {
        Some(raw) => Some(
            switchboard_actors::Workspace::parse(&raw)
                .map_err(|e| ApiError::bad_request("bad-workspace", e.to_string()))?
                .to_string(),
        ),
        None => None,
    };
    let seats: Vec<SeatRecord> = match &engine.cluster {
        Some(cluster) => cluster.seats(workspace.as_deref()).await.map_err(|err| {
            tracing::warn!(error = %err, "GET /api/cluster/seats: Redis does not answer");
            ApiError::unavailable(
                "cluster-unavailable",
                "the cluster's seats cannot be read: Redis does not answer",
                1,
            )
        })?,
        None => {
            let now = jiff::Timestamp::now().as_millisecond();
            let mut seats: Vec<SeatRecord> = engine
                .coordinator
                .seats()
                .await
                .map_err(|e| ApiError::unavailable("engine-busy", e.to_string(), 1))?
                .into_iter()
                .filter(|seat| {
                    workspace
                        .as_deref()
                        .is_none_or(|w| seat.workspace.as_str() == w)
                })
                .map(|seat| SeatRecord::of(seat, &engine.settings.node_id, now))
                .collect();
            seats.sort_by(|a, b| (&a.workspace, &a.agent_id).cmp(&(&b.workspace, &b.agent_id)));
            seats
        }
    };
    Ok(HttpResponse::Ok().json(SeatsJson {
        seats: seats.into_iter().map(SeatJson::from).collect(),
    }))
}
