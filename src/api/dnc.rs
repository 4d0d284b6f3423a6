//! `POST /api/dnc`, `GET /api/dnc`, `DELETE /api/dnc/{e164}`: the do-not-call
//! list. The admin token works on the global list; a user's API key on the
//! user's own, and reads the global one too. A user cannot lift a global entry:
//! `403 forbidden` (the entry is no secret, `GET` lists it).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::caller::Caller;
use super::input::fields;
use super::numbers::e164_field;
use crate::engine::Engine;
use crate::error::{ApiError, ErrorBody};
use crate::store::dnc::{DncAdded, DncEntry, DncScope};

/// The longest reason.
const MAX_REASON_CHARS: usize = 500;

/// The body of `POST /api/dnc`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddNumber {
    /// International form, valid by libphonenumber.
    e164: String,
    /// At most 500 characters.
    #[serde(default)]
    reason: Option<String>,
}

/// An entry of a do-not-call list.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = DncEntry)]
pub struct EntryJson {
    e164: String,
    /// `global` or `user`.
    scope: &'static str,
    reason: Option<String>,
    /// RFC 3339.
    created_at: String,
}

impl From<DncEntry> for EntryJson {
    fn from(entry: DncEntry) -> Self {
        Self {
            e164: entry.e164.into_string(),
            scope: match entry.scope {
                DncScope::Global => "global",
                DncScope::User(_) => "user",
            },
            reason: entry.reason,
            created_at: super::calls::rfc3339(entry.created_at),
        }
    }
}

/// The list the caller's token may change.
fn own_list(caller: &Caller) -> DncScope {
    match caller.user() {
        None => DncScope::Global,
        Some(user) => DncScope::User(user.id.clone()),
    }
}

/// Adds a number to a do-not-call list
///
/// The admin's token adds to the global list, a user's key to the user's own.
/// `201` with the entry; `200` with the entry as it was when the number was on
/// that list already.
#[utoipa::path(post, path = "/api/dnc", tag = "safety", operation_id = "add_dnc",
    security(("admin_token" = []), ("user_api_key" = [])),
    request_body = AddNumber,
    responses(
        (status = 201, description = "Added", body = EntryJson),
        (status = 200, description = "On that list already", body = EntryJson),
        (status = 400, description = "`bad-field`", body = ErrorBody),
        (status = 401, description = "No token or a wrong one", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn add(
    caller: Caller,
    engine: web::Data<Engine>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let body: AddNumber = fields(body.into_inner())?;
    let e164 = e164_field(&body.e164, "e164")?;
    let reason = body
        .reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    if reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_REASON_CHARS)
    {
        return Err(ApiError::bad_request(
            "bad-field",
            format!("reason: must be at most {MAX_REASON_CHARS} characters"),
        ));
    }
    let scope = own_list(&caller);
    match engine
        .store
        .add_do_not_call(&scope, &e164, reason.as_deref())
        .await?
    {
        DncAdded::Added(entry) => {
            tracing::info!(e164 = %entry.e164, user_id = ?caller.user().map(|u| &u.id), "number added to the do-not-call list");
            Ok(HttpResponse::Created().json(EntryJson::from(entry)))
        }
        DncAdded::Already(entry) => Ok(HttpResponse::Ok().json(EntryJson::from(entry))),
    }
}

/// Lists the do-not-call entries
///
/// The admin: the global list. A user: their own entries and the global ones,
/// each with its `scope`.
#[utoipa::path(get, path = "/api/dnc", tag = "safety", operation_id = "list_dnc",
    security(("admin_token" = []), ("user_api_key" = [])),
    responses(
        (status = 200, description = "The entries, by number", body = Vec<EntryJson>),
        (status = 401, description = "No token or a wrong one", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn list(caller: Caller, engine: web::Data<Engine>) -> Result<HttpResponse, ApiError> {
    let entries: Vec<EntryJson> = engine
        .store
        .list_do_not_call(caller.user().map(|u| &u.id))
        .await?
        .into_iter()
        .map(EntryJson::from)
        .collect();
    Ok(HttpResponse::Ok().json(entries))
}

/// Takes a number off a do-not-call list
///
/// `204`; `404` when the number is not on the caller's list; `403` when a user
/// asks to lift a number that only the global list holds.
#[utoipa::path(delete, path = "/api/dnc/{e164}", tag = "safety", operation_id = "remove_dnc",
    security(("admin_token" = []), ("user_api_key" = [])),
    params(("e164" = String, Path, description = "The number (`+` may be sent as `%2B`)")),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "`bad-field`: not a phone number", body = ErrorBody),
        (status = 403, description = "Only the global list holds it", body = ErrorBody),
        (status = 404, description = "Not on the caller's list", body = ErrorBody),
        (status = 401, description = "No token or a wrong one", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn remove(
    caller: Caller,
    engine: web::Data<Engine>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let e164 = e164_field(&path, "e164")?;
    let scope = own_list(&caller);
    if engine.store.remove_do_not_call(&scope, &e164).await? {
        tracing::info!(%e164, user_id = ?caller.user().map(|u| &u.id), "number removed from the do-not-call list");
        return Ok(HttpResponse::NoContent().finish());
    }
    if scope != DncScope::Global
        && engine
            .store
            .do_not_call_entry(&DncScope::Global, &e164)
            .await?
            .is_some()
    {
        return Err(ApiError::forbidden(format!(
            "{e164} is on the global do-not-call list, which only the admin changes"
        )));
    }
    Err(ApiError::not_found(format!(
        "{e164} is not on your do-not-call list"
    )))
}
