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
use crate::error::ApiError;
use crate::store::dnc::{DncAdded, DncEntry, DncScope};

/// The longest reason.
const MAX_REASON_CHARS: usize = 500;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddNumber {
    e164: String,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Serialize)]
struct EntryJson {
    e164: String,
    /// `global` or `user`.
    scope: &'static str,
    reason: Option<String>,
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

/// `201` with the entry; `200` with the entry as it was when the number was on
/// that list already.
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

/// The admin: the global list. A user: their own entries and the global ones.
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

/// `204`; `404` when the number is not on the caller's list; `403` when a user
/// asks to lift a number that only the global list holds.
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
