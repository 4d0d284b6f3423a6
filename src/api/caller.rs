//! Who is asking: the admin (`SWITCHBOARD_ADMIN_TOKEN`) or a user (their API
//! key), both as `Authorization: Bearer …`. Routes that serve both take
//! [`Caller`]; admin-only routes take [`super::admin::Admin`].
//!
//! A user sees only their own resources: another user's is answered as if it did
//! not exist (404, never 403), so ids cannot be probed. Users are looked up in the
//! database on every request (one indexed read): a paused or suspended status, or
//! a changed plan, counts from the next request, with no cache to invalidate.

use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use secrecy::ExposeSecret;
use switchboard_actors::UserId;

use crate::auth::{bearer_token, secrets_equal, token_hash};
use crate::engine::Engine;
use crate::error::ApiError;
use crate::store::users::UserRecord;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub enum Caller {
    Admin,
    /// A user, as stored when the request arrived (whatever their status: the
    /// gates decide what a paused or suspended user may do).
    User(Box<UserRecord>),
}

impl Caller {
    /// The user, unless the caller is the admin.
    pub fn user(&self) -> Option<&UserRecord> {
        match self {
            Caller::Admin => None,
            Caller::User(user) => Some(user),
        }
    }

    /// Whether the caller may see what belongs to `owner`: the admin everything,
    /// a user their own.
    pub fn may_see(&self, owner: &UserId) -> bool {
        match self {
            Caller::Admin => true,
            Caller::User(user) => user.id == *owner,
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let engine = req.app_data::<web::Data<Engine>>().cloned();
        let presented = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .map(|token| token.trim().to_owned());
        Box::pin(async move {
            let engine = engine.ok_or_else(|| ApiError::unauthorized("engine not configured"))?;
            let presented = presented.ok_or_else(|| {
                ApiError::unauthorized("an admin token or a user's API key is required")
            })?;
            if secrets_equal(&presented, engine.admin_token.expose_secret()) {
                return Ok(Caller::Admin);
            }
            engine
                .store
                .user_by_key_hash(&token_hash(&presented))
                .await?
                .map(|user| Caller::User(Box::new(user)))
                .ok_or_else(|| ApiError::unauthorized("unknown token or API key"))
        })
    }
}
