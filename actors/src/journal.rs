//! What the actors hand to durable storage. The actors never wait for the database:
//! they append entries here and the store's writer persists them in order, retrying
//! until it can (so a database outage delays the record but never loses it).

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::ids::{AgentId, CallId, Workspace};
use crate::machine::{Outcome, Phase};

/// Milliseconds since the Unix epoch: the engine's one timestamp format in storage.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// The call's row, written once when the call starts.
#[derive(Debug, Clone, PartialEq)]
pub struct CallOpened {
    pub id: CallId,
    pub call_sid: Option<String>,
    pub from: String,
    pub to: String,
    pub workspace: Option<Workspace>,
    pub direction: &'static str,
    pub started_at: i64,
}

/// One entry of a call's ordered event trail.
#[derive(Debug, Clone, PartialEq)]
pub struct CallEvent {
    pub call_id: CallId,
    /// Position in the trail, assigned by the call's own actor: 1, 2, 3…
    pub seq: i64,
    pub at: i64,
    pub kind: &'static str,
    pub agent_id: Option<AgentId>,
    /// Event-specific details as a JSON object.
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum JournalEntry {
    Opened(CallOpened),
    Event(CallEvent),
    /// The call's live status (and, once answered, who has it).
    Status {
        call_id: CallId,
        status: Phase,
        agent_id: Option<AgentId>,
        answered_at: Option<i64>,
    },
    /// The one final record.
    Closed {
        call_id: CallId,
        outcome: Outcome,
        reason: String,
        agent_id: Option<AgentId>,
        ended_at: i64,
    },
    Recording {
        call_id: CallId,
        wav: Bytes,
        duration_ms: i64,
        at: i64,
    },
    /// One turn of an AI call's transcript.
    Turn {
        call_id: CallId,
        /// Position in the transcript, assigned by the call: 1, 2, 3…
        seq: i64,
        at: i64,
        /// `caller` or `assistant`.
        role: &'static str,
        text: String,
    },
    /// The assistant that took the call.
    Assistant {
        call_id: CallId,
        assistant_id: String,
    },
    /// What an AI call came to: the summary, the AI outcome and the cost breakdown.
    AiResult {
        call_id: CallId,
        summary: Option<String>,
        ai_outcome: Option<String>,
        cost: serde_json::Value,
    },
    /// The cost breakdown of a call without AI, written right after it closes.
    Cost {
        call_id: CallId,
        cost: serde_json::Value,
    },
}

impl JournalEntry {
    pub fn call_id(&self) -> &CallId {
        match self {
            JournalEntry::Opened(opened) => &opened.id,
            JournalEntry::Event(event) => &event.call_id,
            JournalEntry::Status { call_id, .. }
            | JournalEntry::Closed { call_id, .. }
            | JournalEntry::Recording { call_id, .. }
            | JournalEntry::Turn { call_id, .. }
            | JournalEntry::Assistant { call_id, .. }
            | JournalEntry::AiResult { call_id, .. }
            | JournalEntry::Cost { call_id, .. } => call_id,
        }
    }
}

/// Durable storage as the actors see it: append and forget.
pub trait Journal: Send + Sync + 'static {
    fn append(&self, entry: JournalEntry);
}

/// A journal that keeps entries in memory: for tests and benchmarks.
#[derive(Debug, Default, Clone)]
pub struct MemoryJournal {
    entries: Arc<Mutex<Vec<JournalEntry>>>,
}

impl MemoryJournal {
    pub fn entries(&self) -> Vec<JournalEntry> {
        self.entries
            .lock()
            .map(|entries| entries.clone())
            .unwrap_or_default()
    }
}

impl Journal for MemoryJournal {
    fn append(&self, entry: JournalEntry) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.push(entry);
        }
    }
}
