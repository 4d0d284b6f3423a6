//! `GET /api/session`: who a bearer token is — an agent (the softphone), the admin
//! (the supervisor console) or a user (their API key) — so the web pages can sign
//! in with a pasted token and open the right page. Any other token is `401`.

use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::auth::{bearer_token, secrets_equal, token_hash};
use crate::engine::Engine;
use crate::error::{ApiError, ErrorBody};

/// Who a bearer token is, by its role.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Session {
    /// The admin token.
    Admin,
    /// An agent's token (the softphone).
    Agent {
        agent_id: String,
        name: String,
        workspace: String,
    },
    /// A user's API key.
    User { user_id: String },
}

/// Who a bearer token is
///
/// Any of the three tokens: the web pages' sign-in asks this to open the right
/// page. Answered with `Cache-Control: no-store`.
#[utoipa::path(get, path = "/api/session", tag = "session",
    security(("admin_token" = []), ("agent_token" = []), ("user_api_key" = [])),
    responses(
        (status = 200, description = "The token's role", body = Session),
        (status = 401, description = "No token, or one the engine does not know", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn get(engine: web::Data<Engine>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let token = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .map(str::trim)
        .ok_or_else(|| ApiError::unauthorized("a bearer token is required"))?;
    let session = if secrets_equal(token, engine.admin_token.expose_secret()) {
        Session::Admin
    } else if let Some(agent) = engine.tokens.agent_for_token(&engine.store, token).await? {
        Session::Agent {
            agent_id: agent.id.to_string(),
            name: agent.name,
            workspace: agent.workspace.to_string(),
        }
    } else if let Some(user) = engine.store.user_by_key_hash(&token_hash(token)).await? {
        Session::User {
            user_id: user.id.to_string(),
        }
    } else {
        return Err(ApiError::unauthorized("unknown token"));
    };
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(session))
}
