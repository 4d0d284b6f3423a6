//! Errors as the HTTP side shows them: a status, a stable kebab-case `code` and a
//! message; never internals.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use switchboard_actors::EngineError;

use crate::domain::field::FieldError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (a 503: the database is away, or the
    /// engine is busy reading other bodies).
    pub retry_after: Option<u64>,
    /// The field a `400 bad-field` names (sent as `field`, so a form can put the
    /// message next to it).
    pub field: Option<String>,
}

/// The body of every error: what [`ApiError`] sends, and the one schema the
/// OpenAPI description's error responses refer to.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"code": "bad-field", "message": "name: must be 1 to 100 characters", "field": "name"}))]
pub struct ErrorBody {
    /// Stable, kebab-case: what a client branches on (`bad-field`, `not-found`,
    /// `unauthorized`, `database-unavailable`…).
    pub code: String,
    /// For people; a refused field's message starts with the field's path.
    pub message: String,
    /// The field a `400 bad-field` names (`to`, `attestation.not_dnc`), so a form
    /// can put the message next to it; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// What a 503 for an unavailable database tells clients to wait before retrying.
pub const DATABASE_RETRY_AFTER_SECS: u64 = 5;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            field: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// `400 bad-field`: "`field`: `message`", with `field` named in the body.
    pub fn bad_field(field: impl Into<String>, message: impl std::fmt::Display) -> Self {
        FieldError::new(field, message.to_string()).into()
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", message)
    }

    /// 503: try again in `retry_after` seconds (sent as `Retry-After`).
    pub fn unavailable(code: &'static str, message: impl Into<String>, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the engine's log",
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after {
            response.insert_header((actix_web::http::header::RETRY_AFTER, secs.to_string()));
        }
        response.json(ErrorBody {
            code: self.code.to_owned(),
            message: self.message.clone(),
            field: self.field.clone(),
        })
    }
}

impl From<EngineError> for ApiError {
    fn from(err: EngineError) -> Self {
        tracing::error!(%err, "engine error");
        match err {
            EngineError::NotFound(what) => ApiError::not_found(what),
            EngineError::Refused(why) => ApiError::new(StatusCode::CONFLICT, "refused", why),
            EngineError::InvalidTransition(t) => {
                ApiError::new(StatusCode::CONFLICT, "invalid-state", t.to_string())
            }
            EngineError::Unavailable(_)
            | EngineError::Away(_)
            | EngineError::Busy(_)
            | EngineError::WrongWorkspace(_)
            | EngineError::NotOnCall(_) => {
                let code = err.code();
                ApiError::new(StatusCode::CONFLICT, code, err.to_string())
            }
            EngineError::Gone(_) | EngineError::Overloaded(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the engine cannot take this request right now",
            ),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Duplicate(what) => ApiError::new(
                StatusCode::CONFLICT,
                "duplicate",
                format!("{what} exists already"),
            ),
            other if other.is_unavailable() => {
                tracing::warn!(err = %other, "database unavailable");
                ApiError::unavailable(
                    "database-unavailable",
                    "the database is unavailable; retry later",
                    DATABASE_RETRY_AFTER_SECS,
                )
            }
            other => {
                tracing::error!(err = %other, "store error");
                ApiError::internal()
            }
        }
    }
}

/// `400 bad-field`, naming the field.
impl From<FieldError> for ApiError {
    fn from(err: FieldError) -> Self {
        let field = err.field.clone();
        ApiError {
            field: Some(field),
            ..ApiError::bad_request("bad-field", err.to_string())
        }
    }
}

impl From<actix_web::Error> for ApiError {
    fn from(err: actix_web::Error) -> Self {
        ApiError::bad_request("bad-upgrade", err.to_string())
    }
}
