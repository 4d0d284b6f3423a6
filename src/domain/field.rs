//! Why a field of a request was refused: the field as the API names it and a
//! message. The HTTP side answers it as `400 bad-field` (`error::ApiError`).

/// A refused field; `field` names it as the API does (`voice`, `tools[2].url`,
/// `attestation.not_dnc`…).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}
