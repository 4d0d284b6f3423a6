//! `POST /api/assistants`, `GET /api/assistants`, `GET|PUT|DELETE /api/assistants/{id}`.
//!
//! An assistant is read by each call when it starts: a change takes effect on the
//! next call, with no restart.

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
use crate::engine::Engine;
use crate::error::ApiError;
use crate::numbers::route::check_agents;
use crate::store::assistants::{AssistantFields, AssistantRecord, DeleteAssistant};

/// The body of `POST` and `PUT` (a `PUT` replaces every field).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssistantBody {
    name: String,
    workspace: String,
    instructions: String,
    voice: String,
    model: String,
    #[serde(default)]
    greeting: Option<String>,
    /// Parsed one by one, so a refusal names the tool.
    #[serde(default)]
    tools: Vec<Value>,
    /// Omitted: every available agent of the workspace.
    #[serde(default)]
    on_failure: Option<Value>,
}

#[derive(Serialize)]
struct AssistantJson {
    id: AssistantId,
    name: String,
    workspace: String,
    instructions: String,
    voice: String,
    model: String,
    greeting: Option<String>,
    tools: Vec<ToolSpec>,
    on_failure: Route,
    created_at: String,
    updated_at: String,
}

impl From<AssistantRecord> for AssistantJson {
    fn from(a: AssistantRecord) -> Self {
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

pub async fn create(
    _admin: Admin,
    engine: web::Data<Engine>,
    body: web::Json<AssistantBody>,
) -> Result<HttpResponse, ApiError> {
    let fields = parse_body(&engine, body.into_inner()).await?;
    let assistant = engine
        .store
        .create_assistant(&AssistantId::new(), &fields)
        .await?;
    tracing::info!(assistant_id = %assistant.id, "assistant created");
    Ok(HttpResponse::Created().json(AssistantJson::from(assistant)))
}

pub async fn list(_admin: Admin, engine: web::Data<Engine>) -> Result<HttpResponse, ApiError> {
    let assistants: Vec<AssistantJson> = engine
        .store
        .list_assistants()
        .await?
        .into_iter()
        .map(AssistantJson::from)
        .collect();
    Ok(HttpResponse::Ok().json(assistants))
}

pub async fn get(
    _admin: Admin,
    engine: web::Data<Engine>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = assistant_id(&path)?;
    let assistant = engine
        .store
        .get_assistant(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no assistant {id}")))?;
    Ok(HttpResponse::Ok().json(AssistantJson::from(assistant)))
}

/// Replaces every editable field. The workspace may only change while no number
/// routes to the assistant (a number's assistant is of the number's workspace).
pub async fn update(
    _admin: Admin,
    engine: web::Data<Engine>,
    path: web::Path<String>,
    body: web::Json<AssistantBody>,
) -> Result<HttpResponse, ApiError> {
    let id = assistant_id(&path)?;
    let current = engine
        .store
        .get_assistant(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no assistant {id}")))?;
    let fields = parse_body(&engine, body.into_inner()).await?;
    if fields.workspace != current.workspace {
        if let Some(e164) = engine.store.number_routed_to(&id).await? {
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
    Ok(HttpResponse::Ok().json(AssistantJson::from(assistant)))
}

/// 204; 409 `assistant-in-use` while a number routes to it.
pub async fn delete(
    _admin: Admin,
    engine: web::Data<Engine>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = assistant_id(&path)?;
    match engine.store.delete_assistant(&id).await? {
        DeleteAssistant::Deleted => {
            tracing::info!(assistant_id = %id, "assistant deleted");
            Ok(HttpResponse::NoContent().finish())
        }
        DeleteAssistant::NotFound => Err(ApiError::not_found(format!("no assistant {id}"))),
        DeleteAssistant::InUse(e164) => Err(ApiError::new(
            actix_web::http::StatusCode::CONFLICT,
            "assistant-in-use",
            format!("number {e164} routes to assistant {id}; re-route it first"),
        )),
    }
}
