//! Errors the actors report to their callers (HTTP and socket adapters), each with
//! a stable kebab-case code.

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
    /// The agent is not connected.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Away(String),
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    WrongWorkspace(String),
    /// A request about a call this agent is not connected to.
    #[error("{0}")]
    NotOnCall(String),
}

impl EngineError {
    pub(crate) fn mailbox(actor: &'static str, err: actix::MailboxError) -> Self {
        match err {
            actix::MailboxError::Closed => EngineError::Gone(actor),
            actix::MailboxError::Timeout => EngineError::Overloaded(actor),
        }
    }

    /// The stable code softphones, consoles and the API report.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Gone(_) => "gone",
            EngineError::Overloaded(_) => "overloaded",
            EngineError::NotFound(_) => "not-found",
            EngineError::InvalidTransition(_) => "invalid-state",
            EngineError::Refused(_) => "refused",
            EngineError::Unavailable(_) => "agent-unavailable",
            EngineError::Away(_) => "agent-away",
            EngineError::Busy(_) => "agent-busy",
            EngineError::WrongWorkspace(_) => "wrong-workspace",
            EngineError::NotOnCall(_) => "not-on-call",
        }
    }
}
