//! Errors the actors report to their callers (HTTP and socket adapters).

use crate::machine::InvalidTransition;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The actor is gone (the call ended, the seat disconnected).
    #[error("{0} is no longer running")]
    Gone(&'static str),
    /// The actor's mailbox is full: the engine is overloaded.
    #[error("{0} is overloaded")]
    Overloaded(&'static str),
    #[error("not found: {0}")]
    NotFound(String),
    #[error(transparent)]
    InvalidTransition(#[from] InvalidTransition),
    #[error("{0}")]
    Refused(String),
}

impl EngineError {
    pub(crate) fn mailbox(actor: &'static str, err: actix::MailboxError) -> Self {
        match err {
            actix::MailboxError::Closed => EngineError::Gone(actor),
            actix::MailboxError::Timeout => EngineError::Overloaded(actor),
        }
    }
}
