//! `GET /api/cluster` (admin): the nodes of the cluster as Redis lists them —
//! each node's id, own URL, whether its membership key is alive, its last
//! heartbeat and its calls and seats. A single node (no `REDIS_URL`) lists
//! itself. `GET /api/cluster/seats[?workspace=W]` (admin): every softphone seat
//! of the cluster, with the node its socket is on.

use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::api::admin::Admin;
use crate::cluster::{Member, SeatRecord};
use crate::engine::Engine;
use crate::error::ApiError;

/// One node as `GET /api/cluster` shows it.
#[derive(Debug, Serialize)]
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
#[derive(Debug, Serialize)]
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

#[derive(Debug, serde::Deserialize)]
pub struct SeatsQuery {
    pub workspace: Option<String>,
}

/// `GET /api/cluster/seats`: the seats of every live node (a single node: its
/// own), by workspace then agent.
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
    Ok(HttpResponse::Ok().json(serde_json::json!({ "seats": seats })))
}
