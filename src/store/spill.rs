//! The journal's spill file: journal entries the writer could not keep in memory
//! (past `journal.memory_limit_bytes` while the database is away) or could not
//! write before a shutdown, one JSON object per line, oldest first. The writer
//! reads it back in order when it has room, and on start-up before anything else,
//! so nothing the actors appended is lost.
//!
//! Appends are not synced one by one (an engine crash keeps what the OS has); the
//! shutdown path syncs the file before the process exits. A line cut short by a
//! crash is skipped (logged) on reading.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use switchboard_actors::journal::{CallEvent, CallOpened, JournalEntry};
use switchboard_actors::machine::{Outcome, Phase};
use switchboard_actors::{AgentId, AssistantId, CallId, Workspace};

/// An open spill file: appended at the end, read from where the reader stopped.
pub(crate) struct SpillFile {
    path: PathBuf,
    writer: File,
    reader: BufReader<File>,
    line: String,
}

impl SpillFile {
    /// Opens (creating it if needed) the file at `path`; returns it with the number
    /// of entries it already holds, all unread.
    pub(crate) fn open(path: &Path) -> std::io::Result<(SpillFile, u64)> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let writer = OpenOptions::new().create(true).append(true).open(path)?;
        let mut reader = BufReader::new(File::open(path)?);
        let mut lines = 0u64;
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                break;
            }
            lines += 1;
        }
        reader.seek(SeekFrom::Start(0))?;
        Ok((
            SpillFile {
                path: path.to_owned(),
                writer,
                reader,
                line,
            },
            lines,
        ))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn append(&mut self, entry: &JournalEntry) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(&Spilled::from(entry)).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.writer.write_all(&line)
    }

    /// The next unread entry; `Ok(None)` at the end of the file. A line that does not
    /// parse (cut short by a crash) comes back as `Some(None)`.
    pub(crate) fn read(&mut self) -> std::io::Result<Option<Option<JournalEntry>>> {
        self.line.clear();
        if self.reader.read_line(&mut self.line)? == 0 {
            return Ok(None);
        }
        match serde_json::from_str::<Spilled>(self.line.trim_end()) {
            Ok(spilled) => Ok(Some(spilled.into_entry())),
            Err(error) => {
                tracing::error!(
                    path = %self.path.display(),
                    %error,
                    bytes = self.line.len(),
                    "a line of the journal spill file does not parse; skipped"
                );
                Ok(Some(None))
            }
        }
    }

    /// Every entry is written to the database: the file goes.
    pub(crate) fn remove(self) -> std::io::Result<()> {
        drop(self.reader);
        drop(self.writer);
        std::fs::remove_file(&self.path)
    }
}

/// Writes `older` followed by the unread rest of `file` (if any) to `path`, durably,
/// replacing what was there: what a shutdown leaves for the next start.
pub(crate) fn write_all_durably(
    path: &Path,
    older: impl IntoIterator<Item = JournalEntry>,
    file: Option<SpillFile>,
) -> std::io::Result<usize> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let temporary = path.with_extension("spill-new");
    let mut out = std::io::BufWriter::new(File::create(&temporary)?);
    let mut count = 0usize;
    for entry in older {
        serde_json::to_writer(&mut out, &Spilled::from(&entry)).map_err(std::io::Error::other)?;
        out.write_all(b"\n")?;
        count += 1;
    }
    if let Some(mut file) = file {
        let mut line = String::new();
        while file.reader.read_line(&mut line)? > 0 {
            out.write_all(line.as_bytes())?;
            count += 1;
            line.clear();
        }
    }
    let out = out.into_inner().map_err(|e| e.into_error())?;
    out.sync_all()?;
    std::fs::rename(&temporary, path)?;
    Ok(count)
}

/// A journal entry as a line of the spill file.
#[derive(Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Spilled {
    Opened {
        id: CallId,
        call_sid: Option<String>,
        from: String,
        to: String,
        workspace: Option<String>,
        direction: String,
        started_at: i64,
    },
    Event {
        call_id: CallId,
        seq: i64,
        at: i64,
        kind: String,
        agent_id: Option<AgentId>,
        detail: serde_json::Value,
    },
    Status {
        call_id: CallId,
        status: Phase,
        agent_id: Option<AgentId>,
        answered_at: Option<i64>,
    },
    Closed {
        call_id: CallId,
        outcome: Outcome,
        reason: String,
        agent_id: Option<AgentId>,
        ended_at: i64,
    },
    Recording {
        call_id: CallId,
        /// Base64.
        wav: String,
        duration_ms: i64,
        at: i64,
    },
    Turn {
        call_id: CallId,
        seq: i64,
        at: i64,
        role: String,
        text: String,
    },
    Assistant {
        call_id: CallId,
        assistant_id: AssistantId,
    },
    AiResult {
        call_id: CallId,
        summary: Option<String>,
        ai_outcome: Option<String>,
        cost: serde_json::Value,
    },
    Cost {
        call_id: CallId,
        cost: serde_json::Value,
    },
    RecordingChunk {
        call_id: CallId,
        seq: i64,
        at: i64,
        /// Base64.
        audio: String,
    },
    RecordingFinished {
        call_id: CallId,
        at: i64,
    },
    LateEvent {
        call_sid: String,
        at: i64,
        kind: String,
        detail: serde_json::Value,
    },
    AfterEvent {
        call_id: CallId,
        at: i64,
        kind: String,
        detail: serde_json::Value,
    },
}

impl From<&JournalEntry> for Spilled {
    fn from(entry: &JournalEntry) -> Self {
        match entry.clone() {
            JournalEntry::Opened(o) => Spilled::Opened {
                id: o.id,
                call_sid: o.call_sid,
                from: o.from,
                to: o.to,
                workspace: o.workspace.map(|w| w.as_str().to_owned()),
                direction: o.direction.to_owned(),
                started_at: o.started_at,
            },
            JournalEntry::Event(e) => Spilled::Event {
                call_id: e.call_id,
                seq: e.seq,
                at: e.at,
                kind: e.kind.to_owned(),
                agent_id: e.agent_id,
                detail: e.detail,
            },
            JournalEntry::Status {
                call_id,
                status,
                agent_id,
                answered_at,
            } => Spilled::Status {
                call_id,
                status,
                agent_id,
                answered_at,
            },
            JournalEntry::Closed {
                call_id,
                outcome,
                reason,
                agent_id,
                ended_at,
            } => Spilled::Closed {
                call_id,
                outcome,
                reason,
                agent_id,
                ended_at,
            },
            JournalEntry::Recording {
                call_id,
                wav,
                duration_ms,
                at,
            } => Spilled::Recording {
                call_id,
                wav: STANDARD.encode(&wav),
                duration_ms,
                at,
            },
            JournalEntry::Turn {
                call_id,
                seq,
                at,
                role,
                text,
            } => Spilled::Turn {
                call_id,
                seq,
                at,
                role: role.to_owned(),
                text,
            },
            JournalEntry::Assistant {
                call_id,
                assistant_id,
            } => Spilled::Assistant {
                call_id,
                assistant_id,
            },
            JournalEntry::AiResult {
                call_id,
                summary,
                ai_outcome,
                cost,
            } => Spilled::AiResult {
                call_id,
                summary,
                ai_outcome,
                cost,
            },
            JournalEntry::Cost { call_id, cost } => Spilled::Cost { call_id, cost },
            JournalEntry::RecordingChunk {
                call_id,
                seq,
                at,
                audio,
            } => Spilled::RecordingChunk {
                call_id,
                seq,
                at,
                audio: STANDARD.encode(&audio),
            },
            JournalEntry::RecordingFinished { call_id, at } => {
                Spilled::RecordingFinished { call_id, at }
            }
            JournalEntry::LateEvent {
                call_sid,
                at,
                kind,
                detail,
            } => Spilled::LateEvent {
                call_sid,
                at,
                kind: kind.to_owned(),
                detail,
            },
            JournalEntry::AfterEvent {
                call_id,
                at,
                kind,
                detail,
            } => Spilled::AfterEvent {
                call_id,
                at,
                kind: kind.to_owned(),
                detail,
            },
        }
    }
}

impl Spilled {
    /// The entry again; `None` (logged) when a field no longer parses.
    fn into_entry(self) -> Option<JournalEntry> {
        let bytes = |text: String| match STANDARD.decode(text) {
            Ok(bytes) => Some(Bytes::from(bytes)),
            Err(error) => {
                tracing::error!(%error, "audio in the journal spill file is not base64");
                None
            }
        };
        Some(match self {
            Spilled::Opened {
                id,
                call_sid,
                from,
                to,
                workspace,
                direction,
                started_at,
            } => JournalEntry::Opened(CallOpened {
                id,
                call_sid,
                from,
                to,
                workspace: workspace.and_then(|w| Workspace::parse(&w).ok()),
                direction: intern(direction),
                started_at,
            }),
            Spilled::Event {
                call_id,
                seq,
                at,
                kind,
                agent_id,
                detail,
            } => JournalEntry::Event(CallEvent {
                call_id,
                seq,
                at,
                kind: intern(kind),
                agent_id,
                detail,
            }),
            Spilled::Status {
                call_id,
                status,
                agent_id,
                answered_at,
            } => JournalEntry::Status {
                call_id,
                status,
                agent_id,
                answered_at,
            },
            Spilled::Closed {
                call_id,
                outcome,
                reason,
                agent_id,
                ended_at,
            } => JournalEntry::Closed {
                call_id,
                outcome,
                reason,
                agent_id,
                ended_at,
            },
            Spilled::Recording {
                call_id,
                wav,
                duration_ms,
                at,
            } => JournalEntry::Recording {
                call_id,
                wav: bytes(wav)?,
                duration_ms,
                at,
            },
            Spilled::Turn {
                call_id,
                seq,
                at,
                role,
                text,
            } => JournalEntry::Turn {
                call_id,
                seq,
                at,
                role: intern(role),
                text,
            },
            Spilled::Assistant {
                call_id,
                assistant_id,
            } => JournalEntry::Assistant {
                call_id,
                assistant_id,
            },
            Spilled::AiResult {
                call_id,
                summary,
                ai_outcome,
                cost,
            } => JournalEntry::AiResult {
                call_id,
                summary,
                ai_outcome,
                cost,
            },
            Spilled::Cost { call_id, cost } => JournalEntry::Cost { call_id, cost },
            Spilled::RecordingChunk {
                call_id,
                seq,
                at,
                audio,
            } => JournalEntry::RecordingChunk {
                call_id,
                seq,
                at,
                audio: bytes(audio)?,
            },
            Spilled::RecordingFinished { call_id, at } => {
                JournalEntry::RecordingFinished { call_id, at }
            }
            Spilled::LateEvent {
                call_sid,
                at,
                kind,
                detail,
            } => JournalEntry::LateEvent {
                call_sid,
                at,
                kind: intern(kind),
                detail,
            },
            Spilled::AfterEvent {
                call_id,
                at,
                kind,
                detail,
            } => JournalEntry::AfterEvent {
                call_id,
                at,
                kind: intern(kind),
                detail,
            },
        })
    }
}

/// The journal's names (event kinds, directions, roles) are `&'static str`: one
/// read back from a spill file is stored once for the life of the process. They
/// are a small fixed set, so this holds a few dozen short strings.
fn intern(name: String) -> &'static str {
    static NAMES: LazyLock<Mutex<HashSet<&'static str>>> = LazyLock::new(Default::default);
    let mut names = NAMES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(known) = names.get(name.as_str()) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.into_boxed_str());
    names.insert(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_entry_survives_the_spill_file() {
        let call = CallId::new();
        let entries = vec![
            JournalEntry::Opened(CallOpened {
                id: call.clone(),
                call_sid: Some("CA1".into()),
                from: "+1555\0".into(),
                to: "+1666".into(),
                workspace: Workspace::parse("production").ok(),
                direction: "inbound",
                started_at: 1,
            }),
            JournalEntry::Event(CallEvent {
                call_id: call.clone(),
                seq: 1,
                at: 2,
                kind: "ring",
                agent_id: Some(AgentId::new()),
                detail: json!({ "a": [1, 2] }),
            }),
            JournalEntry::RecordingChunk {
                call_id: call.clone(),
                seq: 1,
                at: 3,
                audio: Bytes::from_static(&[0, 1, 255, 10, 13]),
            },
            JournalEntry::RecordingFinished {
                call_id: call.clone(),
                at: 4,
            },
            JournalEntry::Closed {
                call_id: call.clone(),
                outcome: Outcome::Voicemail,
                reason: "caller_hangup".into(),
                agent_id: None,
                ended_at: 5,
            },
            JournalEntry::LateEvent {
                call_sid: "CA1".into(),
                at: 6,
                kind: "twilio_status",
                detail: json!({ "status": "completed" }),
            },
            JournalEntry::AfterEvent {
                call_id: call.clone(),
                at: 7,
                kind: "missed_call_text",
                detail: json!({ "status": "queued" }),
            },
        ];
        let path = std::env::temp_dir().join(format!("sb_spill_{}.spill", uuid::Uuid::new_v4()));
        let (mut file, existing) = SpillFile::open(&path).expect("open");
        assert_eq!(existing, 0);
        for entry in &entries {
            file.append(entry).expect("append");
        }
        let mut back = Vec::new();
        while let Some(entry) = file.read().expect("read") {
            back.push(entry.expect("parses"));
        }
        assert_eq!(back, entries);
        drop(file);
        let (_file, existing) = SpillFile::open(&path).expect("reopen");
        assert_eq!(existing, entries.len() as u64);
        let _ = std::fs::remove_file(&path);
    }
}
