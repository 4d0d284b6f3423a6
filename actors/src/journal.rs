//! What the actors hand to durable storage. The actors never wait for the database:
//! they append entries here and the store's writer persists them in order, retrying
//! until it can (so a database outage delays the record but never loses it).

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::ids::{AgentId, AssistantId, CallId, Workspace};
use crate::machine::{Outcome, Phase};

/// Milliseconds since the Unix epoch: the engine's one timestamp format in storage.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// An instant in milliseconds since the Unix epoch as RFC 3339, in UTC
/// (`2026-12-02T14:52:59.123Z`): how the sockets show times.
pub fn rfc3339(ms: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
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
        assistant_id: AssistantId,
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
    /// About a second of a voicemail being recorded (raw 8 kHz mu-law), written as
    /// it arrives so that a crash keeps what the caller said up to the last chunk.
    RecordingChunk {
        call_id: CallId,
        /// Position in the recording, assigned by the call: 1, 2, 3…
        seq: i64,
        at: i64,
        audio: Bytes,
    },
    /// The voicemail is complete: its chunks become the call's recording (a WAV).
    RecordingFinished {
        call_id: CallId,
        at: i64,
    },
    /// An event for a call that is no longer live on this node (a late Twilio status
    /// callback), known only by its Twilio CallSid: it goes at the end of that
    /// call's trail, and is dropped (logged) if no call has that sid.
    LateEvent {
        call_sid: String,
        at: i64,
        kind: &'static str,
        detail: serde_json::Value,
    },
    /// An event of a call's after-call work (the missed-call text and its delivery
    /// status), known by the call's id: it goes at the end of that call's trail,
    /// after the call's own entries (appended before it), and is dropped (logged)
    /// if no call has that id.
    AfterEvent {
        call_id: CallId,
        at: i64,
        kind: &'static str,
        detail: serde_json::Value,
    },
}

impl JournalEntry {
    /// The call the entry belongs to: its id, or for a [`JournalEntry::LateEvent`]
    /// its Twilio CallSid. Entries of one call are written in the order appended.
    pub fn call_key(&self) -> &str {
        match self {
            JournalEntry::LateEvent { call_sid, .. } => call_sid,
            // Every other entry has its call's id.
            _ => self.call_id().map(CallId::as_str).unwrap_or_default(),
        }
    }

    /// The call's id; `None` for a [`JournalEntry::LateEvent`], known by its
    /// CallSid only.
    pub fn call_id(&self) -> Option<&CallId> {
        match self {
            JournalEntry::Opened(opened) => Some(&opened.id),
            JournalEntry::Event(event) => Some(&event.call_id),
            JournalEntry::Status { call_id, .. }
            | JournalEntry::Closed { call_id, .. }
            | JournalEntry::Recording { call_id, .. }
            | JournalEntry::Turn { call_id, .. }
            | JournalEntry::Assistant { call_id, .. }
            | JournalEntry::AiResult { call_id, .. }
            | JournalEntry::Cost { call_id, .. }
            | JournalEntry::RecordingChunk { call_id, .. }
            | JournalEntry::RecordingFinished { call_id, .. }
            | JournalEntry::AfterEvent { call_id, .. } => Some(call_id),
            JournalEntry::LateEvent { .. } => None,
        }
    }

    /// The call whose holder alone may write this entry: a node whose call was
    /// adopted by another (or ended by another as `interrupted`) must not add to
    /// its trail afterwards. `None` for the entries any node writes: the row
    /// itself (`Opened`) and the events that go at the end of a trail whoever
    /// holds it (`LateEvent`, `AfterEvent`).
    pub fn held_call(&self) -> Option<&CallId> {
        match self {
            JournalEntry::Opened(_)
            | JournalEntry::LateEvent { .. }
            | JournalEntry::AfterEvent { .. } => None,
            _ => self.call_id(),
        }
    }

    /// The variant's name, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            JournalEntry::Opened(_) => "opened",
            JournalEntry::Event(_) => "event",
            JournalEntry::Status { .. } => "status",
            JournalEntry::Closed { .. } => "closed",
            JournalEntry::Recording { .. } => "recording",
            JournalEntry::Turn { .. } => "turn",
            JournalEntry::Assistant { .. } => "assistant",
            JournalEntry::AiResult { .. } => "ai_result",
            JournalEntry::Cost { .. } => "cost",
            JournalEntry::RecordingChunk { .. } => "recording_chunk",
            JournalEntry::RecordingFinished { .. } => "recording_finished",
            JournalEntry::LateEvent { .. } => "late_event",
            JournalEntry::AfterEvent { .. } => "after_event",
        }
    }

    /// The position the entry holds in its call's trail, transcript or recording.
    pub fn seq(&self) -> Option<i64> {
        match self {
            JournalEntry::Event(event) => Some(event.seq),
            JournalEntry::Turn { seq, .. } | JournalEntry::RecordingChunk { seq, .. } => Some(*seq),
            _ => None,
        }
    }

    /// Roughly how many bytes the entry holds (its text, JSON and audio): what a
    /// backlog of entries costs in memory.
    pub fn approx_bytes(&self) -> usize {
        const FIXED: usize = 96;
        let variable = match self {
            JournalEntry::Opened(opened) => {
                opened.from.len()
                    + opened.to.len()
                    + opened.call_sid.as_ref().map_or(0, String::len)
            }
            JournalEntry::Event(event) => json_len(&event.detail),
            JournalEntry::Closed { reason, .. } => reason.len(),
            JournalEntry::Recording { wav, .. } => wav.len(),
            JournalEntry::Turn { text, .. } => text.len(),
            JournalEntry::Assistant { assistant_id, .. } => assistant_id.as_str().len(),
            JournalEntry::AiResult {
                summary,
                ai_outcome,
                cost,
                ..
            } => {
                summary.as_ref().map_or(0, String::len)
                    + ai_outcome.as_ref().map_or(0, String::len)
                    + json_len(cost)
            }
            JournalEntry::Cost { cost, .. } => json_len(cost),
            JournalEntry::RecordingChunk { audio, .. } => audio.len(),
            JournalEntry::LateEvent {
                call_sid, detail, ..
            } => call_sid.len() + json_len(detail),
            JournalEntry::AfterEvent { detail, .. } => json_len(detail),
            JournalEntry::Status { .. } | JournalEntry::RecordingFinished { .. } => 0,
        };
        FIXED + variable
    }

    /// What a log line may say about the entry: its kind, call, position and size;
    /// never its contents (caller numbers, transcripts, audio).
    pub fn describe(&self) -> EntrySummary<'_> {
        EntrySummary(self)
    }
}

/// [`JournalEntry::describe`]: `kind call=… [seq=…] bytes=…`.
pub struct EntrySummary<'a>(&'a JournalEntry);

impl std::fmt::Display for EntrySummary<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entry = self.0;
        write!(f, "{} call={}", entry.kind(), entry.call_key())?;
        if let Some(seq) = entry.seq() {
            write!(f, " seq={seq}")?;
        }
        write!(f, " bytes={}", entry.approx_bytes())
    }
}

/// The length of a JSON value as text, without building the text.
fn json_len(value: &serde_json::Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_described_by_ids_and_size_never_by_its_contents() {
        let call = CallId::new();
        let opened = JournalEntry::Opened(CallOpened {
            id: call.clone(),
            call_sid: Some("CA0123".into()),
            from: "+14155559876".into(),
            to: "+14155550100".into(),
            workspace: None,
            direction: "inbound",
            started_at: 1,
        });
        let text = opened.describe().to_string();
        assert!(text.starts_with("opened call="), "{text}");
        assert!(text.contains(call.as_str()));
        assert!(!text.contains("+1415555"), "{text}");

        let chunk = JournalEntry::RecordingChunk {
            call_id: call.clone(),
            seq: 3,
            at: 1,
            audio: Bytes::from(vec![0x55; 8_000]),
        };
        let text = chunk.describe().to_string();
        assert!(text.contains("seq=3"), "{text}");
        assert!(text.contains("bytes=8096"), "{text}");
        assert!(text.len() < 100, "{text}");
        let late = JournalEntry::LateEvent {
            call_sid: "CA0123".into(),
            at: 1,
            kind: "twilio_status",
            detail: serde_json::json!({ "status": "completed" }),
        };
        assert_eq!(late.call_key(), "CA0123");
    }
}
