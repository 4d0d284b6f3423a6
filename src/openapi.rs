//! `GET /api/openapi.json`: the OpenAPI 3.1 description of the HTTP API, made by
//! utoipa from the handlers themselves — each handler carries its
//! `#[utoipa::path]` (method, path, parameters, body and answer types, security)
//! next to its code, and the bodies are the types the handlers (de)serialise,
//! deriving `ToSchema`. This module only gathers them: the REST API (`api`), the
//! operations routes (`health`, `metrics`), Twilio's webhooks (`twilio`,
//! `missed_call`) and the socket upgrades (`ws`, `twilio::stream`). The document is
//! rendered once, on first request, and served as it is.
//!
//! tests/api/openapi.rs compares it with the routes the source registers.

use std::sync::LazyLock;

use actix_web::http::header::ContentType;
use actix_web::HttpResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{api, cluster, health, metrics, missed_call, twilio, ws};

/// The security schemes a route's `security(...)` names. All three are
/// `Authorization: Bearer …` (the scheme word case-insensitive); which secret it
/// is decides the role.
pub const ADMIN_TOKEN: &str = "admin_token";
pub const AGENT_TOKEN: &str = "agent_token";
pub const USER_API_KEY: &str = "user_api_key";
/// Twilio's request signature, on every `/twilio/*` route.
pub const TWILIO_SIGNATURE: &str = "twilio_signature";
/// A node's HMAC handshake on `/cluster/link` (cluster mode).
pub const CLUSTER_LINK: &str = "cluster_link";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "switchboard",
        description = "The HTTP API of switchboard, an actor-based real-time call engine. \
            docs/protocol.md is the prose reference: what each route does, its rules and \
            its errors; the WebSocket protocols (`/ws/agent`, `/ws/supervisor`, \
            `/twilio/stream`) are described there only. Every error body is `ErrorBody`."
    ),
    modifiers(&BearerSchemes),
    tags(
        (name = "session", description = "Who a bearer token is"),
        (name = "agents", description = "Human agents and their softphone tokens (admin)"),
        (name = "assistants", description = "AI assistants (admin)"),
        (name = "numbers", description = "Phone numbers: the pool, routes, cut-over (admin)"),
        (name = "directory", description = "The number directory and its checks (admin)"),
        (name = "users", description = "Users who place outbound calls"),
        (name = "safety", description = "Flags, the audit trail, the do-not-call list"),
        (name = "calls", description = "Call records, transcripts, recordings, live events"),
        (name = "outbound", description = "Outbound calls on a user's behalf"),
        (name = "analytics", description = "Call analytics (admin)"),
        (name = "operations", description = "Liveness, readiness, metrics, this description"),
        (name = "twilio", description = "Twilio's signed webhooks (form-encoded)"),
        (name = "sockets", description = "WebSocket upgrades; see docs/protocol.md"),
        (name = "cluster", description = "Between the nodes of a cluster"),
    ),
    paths(
        serve,
        health::healthz,
        health::readyz,
        metrics::metrics,
        api::cluster::get,
        api::cluster::seats,
        twilio::webhook::voice,
        twilio::webhook::status,
        twilio::resume::resume,
        twilio::outbound::answer,
        twilio::outbound::amd,
        twilio::outbound_status::status,
        missed_call::status::status,
        twilio::stream::stream,
        ws::agent::agent_socket,
        ws::supervisor::supervisor_socket,
        cluster::link::link_socket,
        api::session::get,
        api::agents::create,
        api::agents::list,
        api::agents::get,
        api::agents::update,
        api::agents::delete,
        api::assistants::create,
        api::assistants::list,
        api::assistants::get,
        api::assistants::update,
        api::assistants::delete,
        api::assistants::assign_number,
        api::numbers::sync,
        api::number_health::health,
        api::numbers::import,
        api::numbers::migrate,
        api::numbers::rollback,
        api::numbers::set_route,
        api::numbers::create,
        api::numbers::list,
        api::numbers::get,
        api::directory::list,
        api::directory::validate,
        api::directory::diff,
        api::directory::assign,
        api::directory::show,
        api::directory::agent_numbers,
        api::users::create,
        api::users::list,
        api::users::get,
        api::users::update,
        api::users::suspend,
        api::users::reinstate,
        api::flags::list,
        api::flags::get,
        api::flags::resolve,
        api::audit::list,
        api::analytics::summary,
        api::dnc::add,
        api::dnc::list,
        api::dnc::remove,
        api::outbound_batch::submit,
        api::outbound_batch::get,
        api::outbound_check::check,
        api::outbound::submit,
        api::outbound::list,
        api::outbound::get,
        api::outbound::cancel,
        api::calls::find,
        api::calls::get,
        api::calls::recording,
        api::call_events::events,
        api::calls::transcript,
    )
)]
struct ApiDoc;

/// Adds the bearer schemes and Twilio's signature to the components, and makes
/// each operation's id unique: `{tag}_{handler}` (utoipa names an operation after
/// its handler, and several modules have a `list` or a `get`).
struct BearerSchemes;

impl Modify for BearerSchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                let tag = operation
                    .tags
                    .as_ref()
                    .and_then(|tags| tags.first())
                    .cloned()
                    .unwrap_or_default();
                if let Some(id) = operation.operation_id.as_mut() {
                    *id = format!("{tag}_{id}");
                }
            }
        }
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, what) in [
            (
                ADMIN_TOKEN,
                "The admin token (`SWITCHBOARD_ADMIN_TOKEN`). It works on every route that \
                 takes a user's API key too.",
            ),
            (
                AGENT_TOKEN,
                "An agent's token (`sbt_…`, shown once by `POST /api/agents`): the softphone's.",
            ),
            (
                USER_API_KEY,
                "A user's API key (`sbu_…`, shown once by `POST /api/users`). On an \
                 admin-only route it is `401 unauthorized`, as a wrong token is.",
            ),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(what))
                        .build(),
                ),
            );
        }
        components.add_security_scheme(
            TWILIO_SIGNATURE,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Twilio-Signature",
                "HMAC-SHA1 (base64) under `TWILIO_AUTH_TOKEN` of `SWITCHBOARD_PUBLIC_URL` + \
                 path (+ query) and the sorted POST parameters (docs/protocol.md §3).",
            ))),
        );
        components.add_security_scheme(
            CLUSTER_LINK,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Switchboard-Signature",
                "HMAC-SHA256 (hex) under `SWITCHBOARD_CLUSTER_SECRET` of the dialing node's \
                 id, this node's id, the time and a nonce (`X-Switchboard-Node`, \
                 `-Target`, `-Time`, `-Nonce`); docs/protocol.md, \"Node links\".",
            ))),
        );
    }
}

/// The description as served: rendered once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_json()
        .expect("the OpenAPI document serialises")
});

/// The description as utoipa builds it (tests and tools read it without a server).
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// This description: OpenAPI 3.1, JSON
///
/// No token: it describes the API and holds no secret.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "operations",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of this engine's HTTP API",
            content_type = "application/json", body = Object),
    )
)]
pub async fn serve() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(DOCUMENT.as_str())
}
