//! `GET /api/session`: who a bearer token is — an agent (the softphone), the admin
//! (the supervisor console) or a user (their API key) — so the web pages can sign
//! in with a pasted token and open the right page. Any other token is `401`.

use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::auth::{bearer_token, secrets_equal, token_hash};
use crate::engine::Engine;
use crate::error::ApiError;

pub async fn get(engine: web::Data<Engine>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let token = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .map(str::trim)
        .ok_or_else(|| ApiError::unauthorized("a bearer token is required"))?;
    let session = if secrets_equal(token, engine.admin_token.expose_secret()) {
        json!({ "role": "admin" })
    } else if let Some(agent) = engine.tokens.agent_for_token(&engine.store, token).await? {
        json!({
            "role": "agent",
            "agent_id": agent.id,
            "name": agent.name,
            "workspace": agent.workspace,
        })
    } else if let Some(user) = engine.store.user_by_key_hash(&token_hash(token)).await? {
        json!({ "role": "user", "user_id": user.id })
    } else {
        return Err(ApiError::unauthorized("unknown token"));
    };
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(session))
}
