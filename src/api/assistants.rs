//! `POST /api/assistants` (optionally with an automatically assigned number, as
//! agents have), `GET /api/assistants`, `GET|PUT|DELETE /api/assistants/{id}`
//! (a delete gives the assistant's number back to the pool).
//!
//! An assistant is read by each call when it starts: a change takes effect on the
//! next call, with no restart.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_actors::number::Route;
use switchboard_actors::{AssistantId, Workspace};

use super::admin::Admin;
use crate::ai::assistant::{
    check_model, check_tools, check_voice, MAX_GREETING_CHARS, MAX_INSTRUCTIONS_CHARS,
    MAX_NAME_CHARS,
};
use crate::domain::assistant::ToolSpec;
use crate::domain::field::FieldError;
use crate::domain::phone::PhoneNumber;
use crate::engine::Engine;
use crate::error::{ApiError, ErrorBody};
use crate::numbers::route::check_agents;
use crate::store::assistants::{AssistantFields, AssistantRecord, DeleteAssistant};
use crate::store::pool::{Holder, PoolNumber};

/// The body of `POST` and `PUT` (a `PUT` replaces every field).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssistantBody {
    name: String,
    workspace: String,
    /// The system prompt.
    instructions: String,
    /// A realtime voice: `alloy ash ballad coral echo sage shimmer verse marin cedar`.
    voice: String,
    /// The realtime model (`gpt-realtime`…).
    model: String,
    /// Said first, word for word.
    #[serde(default)]
    greeting: Option<String>,
    /// Parsed one by one, so a refusal names the tool.
    #[serde(default)]
    #[schema(value_type = Vec<crate::domain::assistant::ToolSpec>)]
    tools: Vec<Value>,
    /// Where the caller goes when the model fails: `agents` or `voicemail`.
    /// Omitted: every available agent of the workspace.
    #[serde(default)]
    #[schema(value_type = Option<super::schema::RouteJson>)]
    on_failure: Option<Value>,
    /// `POST` only: take an AVAILABLE number of the workspace for this assistant
    /// (its route becomes the assistant).
    #[serde(default)]
    assign_number: bool,
    /// `POST` only: the agent (Retell) or assistant (Vapi) id at the provider;
    /// default the assistant's own id.
    #[serde(default)]
    provider_agent_id: Option<String>,
}

/// The number an assistant holds, in both printed forms.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = AssistantNumber)]
pub struct NumberJson {
    e164: String,
    /// `(415) 555-0100`; `None` if libphonenumber cannot format it.
    national: Option<String>,
}

impl NumberJson {
    fn of(e164: String) -> Self {
        let national = PhoneNumber::parse_with_info(&e164)
            .ok()
            .map(|(_, info)| info.national);
        Self { e164, national }
    }
}

/// An assistant as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Assistant)]
pub struct AssistantJson {
    #[schema(value_type = String)]
    id: AssistantId,
    name: String,
    workspace: String,
    instructions: String,
    voice: String,
    model: String,
    greeting: Option<String>,
    tools: Vec<ToolSpec>,
    #[schema(value_type = super::schema::RouteJson)]
    on_failure: Route,
    /// The pool number the assistant holds (`assign_number`), or `None`.
    number: Option<NumberJson>,
    /// RFC 3339.
    created_at: String,
    /// RFC 3339.
    updated_at: String,
}

/// `POST /api/assistants`'s answer: the assistant and, with `assign_number`,
/// why no number was assigned.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedAssistant {
    #[serde(flatten)]
    assistant: AssistantJson,
    /// With `assign_number` only (empty when a number was assigned).
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings: Option<Vec<String>>,
}

impl AssistantJson {
    /// The assistant with the number it holds.
    fn new(a: AssistantRecord, number: Option<String>) -> Self {
        Self {
            id: a.id,
            name: a.name,
            workspace: a.workspace.to_string(),
            instructions: a.instructions,
            voice: a.voice,
            model: a.model,
            greeting: a.greeting,
            tools: a.tools,
            on_failure: a.on_failure,
            number: number.map(NumberJson::of),
            created_at: super::calls::rfc3339(a.created_at),
            updated_at: super::calls::rfc3339(a.updated_at),
        }
    }
}

/// Checks every field; nothing is stored unless all pass.
async fn parse_body(engine: &Engine, body: AssistantBody) -> Result<AssistantFields, ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::from(FieldError::new(
            "name",
            format!("must be 1 to {MAX_NAME_CHARS} characters"),
        )));
    }
    let workspace = Workspace::parse(&body.workspace)
        .map_err(|e| ApiError::from(FieldError::new("workspace", e.to_string())))?;
    let instructions = body.instructions.trim();
    if instructions.is_empty() || instructions.chars().count() > MAX_INSTRUCTIONS_CHARS {
        return Err(ApiError::from(FieldError::new(
            "instructions",
            format!("must be 1 to {MAX_INSTRUCTIONS_CHARS} characters"),
        )));
    }
    check_voice(&body.voice).map_err(ApiError::from)?;
    check_model(&body.model).map_err(ApiError::from)?;
    let greeting = body
        .greeting
        .map(|g| g.trim().to_owned())
        .filter(|g| !g.is_empty());
    if greeting
        .as_ref()
        .is_some_and(|g| g.chars().count() > MAX_GREETING_CHARS)
    {
        return Err(ApiError::from(FieldError::new(
            "greeting",
            format!("must be at most {MAX_GREETING_CHARS} characters"),
        )));
    }
    let tools = body
        .tools
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            serde_json::from_value::<ToolSpec>(raw)
                .map_err(|e| ApiError::from(FieldError::new(format!("tools[{i}]"), e.to_string())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_tools(&tools).map_err(ApiError::from)?;
    let on_failure = parse_on_failure(engine, body.on_failure, &workspace).await?;
    Ok(AssistantFields {
        name: name.to_owned(),
        workspace,
        instructions: instructions.to_owned(),
        voice: body.voice,
        model: body.model,
        greeting,
        tools,
        on_failure,
    })
}

/// `agents` (which must exist, in the assistant's workspace) or `voicemail`.
async fn parse_on_failure(
    engine: &Engine,
    raw: Option<Value>,
    workspace: &Workspace,
) -> Result<Route, ApiError> {
    let Some(raw) = raw else {
        return Ok(Route::Agents { agent_ids: vec![] });
    };
    match raw.get("kind").and_then(Value::as_str).unwrap_or_default() {
        "agents" | "voicemail" => {}
        "ai" => {
            return Err(ApiError::bad_request(
                "bad-field",
                "on_failure: an assistant cannot fail over to an assistant; \
                 use \"agents\" or \"voicemail\"",
            ))
        }
        other => {
            return Err(ApiError::bad_request(
                "bad-field",
                format!("on_failure.kind must be \"agents\" or \"voicemail\", not {other:?}"),
            ))
        }
    }
    let route: Route = serde_json::from_value(raw)
        .map_err(|e| ApiError::bad_request("bad-field", format!("on_failure: {e}")))?;
    if let Route::Agents { agent_ids } = &route {
        check_agents(&engine.store, agent_ids, workspace, "on_failure").await?;
    }
    Ok(route)
}

fn assistant_id(raw: &str) -> Result<AssistantId, ApiError> {
    AssistantId::parse(raw).map_err(|e| ApiError::bad_request("bad-id", e.to_string()))
}

/// The E.164 form of the (first) number the assistant holds.
async fn number_of(engine: &Engine, id: &AssistantId) -> Result<Option<String>, ApiError> {
    let held = engine
        .store
        .numbers_of(&Holder::Assistant(id.clone()))
        .await?;
    Ok(held.into_iter().next().map(|n| n.e164))
}

/// The assistant `id`, or `404`.
async fn existing(engine: &Engine, id: &AssistantId) -> Result<AssistantRecord, ApiError> {
    engine
        .store
        .get_assistant(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no assistant {id}")))
}

/// An AVAILABLE number of the assistant's workspace, claimed, assigned at its
/// provider (as `provider_agent`) and routed to it; or why none was.
async fn take_number(
    engine: &Engine,
    assistant: &AssistantRecord,
    provider_agent: &str,
) -> Result<PoolNumber, String> {
    super::numbers::service(engine)
        .assign_any(
            &Holder::Assistant(assistant.id.clone()),
            &assistant.workspace,
            provider_agent,
        )
        .await
}

/// Gives an assistant a number
///
/// `POST /api/assistants/{id}/number` (admin): an assistant without a number gets
/// one — an AVAILABLE number of its workspace, claimed, assigned at its provider
/// and routed to it, exactly as `assign_number` at creation. `200` the assistant
/// with its `number`; `409 has-number` when it holds one already; `409
/// number-not-assigned` with the reason (no number left, a provider refusal)
/// when none could be given — nothing changed then (the claim is given back).
#[utoipa::path(post, path = "/api/assistants/{id}/number", tag = "assistants",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "The assistant's id")),
    responses(
        (status = 200, description = "The assistant with its `number`", body = AssistantJson),
        (status = 400, description = "`bad-id`", body = ErrorBody),
        (status = 404, description = "No such assistant", body = ErrorBody),
        (status = 409, description = "`has-number`; `number-not-assigned` with the reason (nothing changed)", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn assign_number(
    _admin: Admin,
    engine: web::Data<Engine>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = assistant_id(&path)?;
    let assistant = existing(&engine, &id).await?;
    let has_number = |number| {
        ApiError::new(
            StatusCode::CONFLICT,
            "has-number",
            format!("assistant {id} holds {number} already"),
        )
    };
    if let Some(number) = number_of(&engine, &id).await? {
        return Err(has_number(number));
    }
    match take_number(&engine, &assistant, id.as_str()).await {
        Ok(assigned) => {
            Ok(HttpResponse::Ok().json(AssistantJson::new(assistant, Some(assigned.e164))))
        }
        // A request racing this one gave the assistant its number first.
        Err(reason) => Err(match number_of(&engine, &id).await? {
            Some(number) => has_number(number),
            None => ApiError::new(StatusCode::CONFLICT, "number-not-assigned", reason),
        }),
    }
}

/// Creates an assistant
///
/// `201` with the assistant; with `assign_number`, also `number` (or `null`) and
/// `warnings` (why no number was assigned): the assistant is created either way.
#[utoipa::path(post, path = "/api/assistants", tag = "assistants",
    security(("admin_token" = [])),
    request_body = AssistantBody,
    responses(
        (status = 201, description = "The assistant", body = CreatedAssistant),
        (status = 400, description = "`bad-field` naming the field, `bad-json`", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn create(
    _admin: Admin,
    engine: web::Data<Engine>,
    body: web::Json<AssistantBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let (assign_number, provider_agent) = (body.assign_number, body.provider_agent_id.clone());
    let fields = parse_body(&engine, body).await?;
    let assistant = engine
        .store
        .create_assistant(&AssistantId::new(), &fields)
        .await?;
    tracing::info!(assistant_id = %assistant.id, "assistant created");
    if !assign_number {
        return Ok(HttpResponse::Created().json(CreatedAssistant {
            assistant: AssistantJson::new(assistant, None),
            warnings: None,
        }));
    }
    let provider_agent = provider_agent.unwrap_or_else(|| assistant.id.to_string());
    let assigned = take_number(&engine, &assistant, &provider_agent).await;
    let (number, warnings) = match assigned {
        Ok(number) => (Some(number.e164), vec![]),
        Err(warning) => (None, vec![warning]),
    };
    Ok(HttpResponse::Created().json(CreatedAssistant {
        assistant: AssistantJson::new(assistant, number),
        warnings: Some(warnings),
    }))
}

/// Lists the assistants
///
/// Each with the pool number it holds, or `number: null`.
#[utoipa::path(get, path = "/api/assistants", tag = "assistants",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Every assistant", body = Vec<AssistantJson>),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn list(_admin: Admin, engine: web::Data<Engine>) -> Result<HttpResponse, ApiError> {
    let mut numbers = engine.store.assistant_numbers().await?;
    let assistants: Vec<AssistantJson> = engine
        .store
        .list_assistants()
        .await?
        .into_iter()
        .map(|a| {
            let number = numbers.remove(a.id.as_str());
            AssistantJson::new(a, number)
        })
        .collect();
    Ok(HttpResponse::Ok().json(assistants))
}

/// Reads an assistant
///
/// With the pool number it holds, or `number: null`.
#[utoipa::path(get, path = "/api/assistants/{id}", tag = "assistants",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "The assistant's id")),
    responses(
        (status = 200, description = "The assistant", body = AssistantJson),
        (status = 400, description = "`bad-id`", body = ErrorBody),
        (status = 404, description = "No such assistant", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn get(
    _admin: Admin,
    engine: web::Data<Engine>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = assistant_id(&path)?;
    let assistant = existing(&engine, &id).await?;
    let number = number_of(&engine, &id).await?;
    Ok(HttpResponse::Ok().json(AssistantJson::new(assistant, number)))
}

/// Replaces an assistant
///
/// Replaces every editable field; applies from the next call. The workspace may only change while no number
/// routes to the assistant and it holds none (a number's assistant is of the
/// number's workspace); its number is not changed here (`assign_number` is
/// refused: delete the assistant to give its number back).
#[utoipa::path(put, path = "/api/assistants/{id}", tag = "assistants",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "The assistant's id")),
    request_body = AssistantBody,
    responses(
        (status = 200, description = "The assistant", body = AssistantJson),
        (status = 400, description = "`bad-field`, `bad-id`, `number-immutable`, `wrong-workspace`", body = ErrorBody),
        (status = 404, description = "No such assistant", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn update(
    _admin: Admin,
    engine: web::Data<Engine>,
    path: web::Path<String>,
    body: web::Json<AssistantBody>,
) -> Result<HttpResponse, ApiError> {
    let id = assistant_id(&path)?;
    let current = existing(&engine, &id).await?;
    let body = body.into_inner();
    if body.assign_number || body.provider_agent_id.is_some() {
        return Err(ApiError::bad_request(
            "number-immutable",
            "assign_number: an assistant's number cannot be changed; delete the assistant \
             to return its number to the pool",
        ));
    }
    let fields = parse_body(&engine, body).await?;
    let number = number_of(&engine, &id).await?;
    if fields.workspace != current.workspace {
        let routed = match &number {
            Some(held) => Some(held.clone()),
            None => engine.store.number_routed_to(&id).await?,
        };
        if let Some(e164) = routed {
            return Err(ApiError::bad_request(
                "wrong-workspace",
                format!(
                    "workspace: number {e164} of workspace {} routes to this assistant",
                    current.workspace
                ),
            ));
        }
    }
    let assistant = engine
        .store
        .update_assistant(&id, &fields)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no assistant {id}")))?;
    tracing::info!(assistant_id = %assistant.id, "assistant updated");
    Ok(HttpResponse::Ok().json(AssistantJson::new(assistant, number)))
}

/// Deletes an assistant
///
/// 204: the numbers the assistant holds (`assign_number`) are taken off it at
/// their provider and go back to the pool (AVAILABLE), their calls to voicemail.
/// 409 `assistant-in-use`, nothing changed, while a number it does not hold
/// routes to it (routed by hand or by a cut-over: an operator's choice, which a
/// delete does not silently undo); 502 `provider-failed`, nothing changed, when a
/// provider refuses to take a number off it.
#[utoipa::path(delete, path = "/api/assistants/{id}", tag = "assistants",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "The assistant's id")),
    responses(
        (status = 204, description = "Deleted; its numbers are back in the pool"),
        (status = 400, description = "`bad-id`", body = ErrorBody),
        (status = 404, description = "No such assistant", body = ErrorBody),
        (status = 409, description = "`assistant-in-use`: a number it does not hold routes to it", body = ErrorBody),
        (status = 502, description = "`provider-failed`: nothing changed", body = ErrorBody),
        (status = 401, description = "No token, a wrong one, or a user's API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn delete(
    _admin: Admin,
    engine: web::Data<Engine>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = assistant_id(&path)?;
    if engine.store.get_assistant(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("no assistant {id}")));
    }
    let holder = Holder::Assistant(id.clone());
    let held: Vec<String> = engine
        .store
        .numbers_of(&holder)
        .await?
        .into_iter()
        .map(|n| n.e164)
        .collect();
    let routed = engine.store.numbers_routed_to(&id).await?;
    if let Some(e164) = routed.iter().find(|e164| !held.contains(e164)) {
        return Err(in_use(e164, &id));
    }
    let released = super::numbers::service(&engine)
        .unassign_all(&holder)
        .await?;
    match engine.store.delete_assistant(&id).await? {
        DeleteAssistant::Deleted => {
            tracing::info!(assistant_id = %id, numbers = released.len(), "assistant deleted");
            Ok(HttpResponse::NoContent().finish())
        }
        DeleteAssistant::NotFound => Err(ApiError::not_found(format!("no assistant {id}"))),
        DeleteAssistant::InUse(e164) => Err(in_use(&e164, &id)),
    }
}

fn in_use(e164: &str, id: &AssistantId) -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::CONFLICT,
        "assistant-in-use",
        format!("number {e164} routes to assistant {id}; re-route it first"),
    )
}
