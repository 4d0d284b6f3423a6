//! The admin bearer (`SWITCHBOARD_ADMIN_TOKEN`) as a request extractor: a handler
//! that takes [`Admin`] runs only for the admin.

use std::future::{ready, Ready};

use actix_web::{web, FromRequest, HttpRequest};
use secrecy::ExposeSecret;

use crate::auth::{bearer_token, secrets_equal};
use crate::engine::Engine;
use crate::error::ApiError;

/// Proof that the request carried the admin bearer token.
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(check(req))
    }
}

fn check(req: &HttpRequest) -> Result<Admin, ApiError> {
    let engine = req
        .app_data::<web::Data<Engine>>()
        .ok_or_else(|| ApiError::unauthorized("engine not configured"))?;
    let presented = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .ok_or_else(|| ApiError::unauthorized("an admin bearer token is required"))?;
    if secrets_equal(presented.trim(), engine.admin_token.expose_secret()) {
        Ok(Admin)
    } else {
        Err(ApiError::unauthorized("wrong admin token"))
    }
}
