//! Everything Twilio-facing: the signature check of every request (the signing and
//! verifying itself is `switchboard_wire::signature`, shared with the load
//! generator), TwiML, the voice and status webhooks, the outbound call's answer and AMD
//! webhooks, the Media Streams socket, and in cluster mode the resume of a
//! call whose node died or drains (`resume`).

pub use switchboard_wire::signature;
pub mod outbound;
pub mod outbound_status;
pub mod resume;
pub mod stream;
pub mod twiml;
pub mod webhook;

use actix_web::HttpRequest;
use secrecy::ExposeSecret;

use crate::engine::Engine;
use signature::{SignatureError, TwilioSignature};

/// Checks `X-Twilio-Signature` over `base` + the request's path and query, and the
/// given POST parameters.
pub fn verify_request(
    engine: &Engine,
    req: &HttpRequest,
    base: &str,
    params: &[(String, String)],
) -> Result<(), SignatureError> {
    let token = engine
        .settings
        .twilio
        .auth_token
        .as_ref()
        .ok_or(SignatureError::NoToken)?;
    let header = req
        .headers()
        .get("X-Twilio-Signature")
        .ok_or(SignatureError::Missing)?
        .to_str()
        .map_err(|_| SignatureError::Malformed)?;
    let signature = TwilioSignature::parse(header)?;
    let path = req
        .uri()
        .path_and_query()
        .map_or(req.path(), |pq| pq.as_str());
    let url = format!("{base}{path}");
    signature::verify(token.expose_secret(), &url, params, &signature)
}
