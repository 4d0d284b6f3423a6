//! The seam between a call and its AI assistant. The assistant itself (an actor that
//! relays the caller's media stream to a realtime model over a WebSocket) lives in
//! the engine crate, which knows HTTP; a [`CallActor`](crate::call::CallActor) only
//! knows this: it asks [`CallHooks::start_assistant`] for one when its media starts
//! on an AI-routed number, hears back through [`AssistantUpdate`]s, and stops it
//! with [`StopAssistant`]. [`CallHooks::call_ended`] hands every finished call's
//! facts (for its cost, and an AI call's summary) to the engine.

use actix::prelude::*;

use crate::call::CallHandle;
use crate::ids::{AssistantId, CallId, Workspace};
use crate::leg::LegHandle;
use crate::machine::Outcome;
use crate::number::Route;

/// What an assistant needs to take a call.
pub struct AssistantSession {
    pub call: CallHandle,
    /// The caller's leg: the assistant writes its audio, marks and clears here.
    pub leg: LegHandle,
    pub assistant_id: AssistantId,
    pub from: String,
    pub to: String,
    pub workspace: Workspace,
    /// The conversation so far, (`caller`|`assistant`, text) in order, when the
    /// call comes back to its assistant after moving nodes: the new session
    /// starts from it instead of greeting the caller again. Empty otherwise.
    pub history: Vec<(String, String)>,
}

/// A call's transcript as the store has it, when the call moved nodes.
#[derive(Debug, Clone, Default)]
pub struct Transcript {
    /// (`caller`|`assistant`, text), by `seq`.
    pub turns: Vec<(String, String)>,
    /// The highest `seq` among them (0 for none): the next turn is numbered
    /// after it.
    pub last_seq: i64,
}

/// Ends an assistant: the call hung up, or moved on to a human.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopAssistant {
    pub reason: &'static str,
}

/// What a call tells its running assistant, besides [`StopAssistant`].
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub enum AssistantNotice {
    /// Answering-machine detection's verdict on an outbound call (Twilio's
    /// `AnsweredBy`: `human`, `machine_end_beep`, `machine_end_silence`,
    /// `machine_end_other`, `fax`, `unknown`).
    AnsweredBy(String),
}

/// How a call reaches the assistant it started.
pub struct AssistantLink {
    pub stop: Recipient<StopAssistant>,
    pub notices: Recipient<AssistantNotice>,
}

/// What the assistant tells its call.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum AssistantUpdate {
    /// The model accepted the session; the caller is talking to it.
    Connected { model: String },
    /// One finished turn of the conversation (`role` is `caller` or `assistant`).
    Turn {
        role: &'static str,
        text: String,
        at: i64,
    },
    /// The caller spoke over the assistant: its audio was cut where it had played.
    BargeIn { item_id: String, played_ms: u64 },
    /// The model called a tool (and what came of it).
    Tool {
        name: String,
        ok: bool,
        detail: serde_json::Value,
    },
    /// The `log_event` tool: an event the assistant wants in the call's trail.
    Logged {
        name: String,
        detail: serde_json::Value,
    },
    /// An outbound call's recording after its notice: `{"status":"started",
    /// "recording_sid",…}`, `failed` with a `reason`, or `skipped` (the callee
    /// talked over the notice).
    Recording { detail: serde_json::Value },
    /// Token usage of one model response (`response.done.response.usage`).
    Usage {
        model: String,
        usage: serde_json::Value,
    },
    /// Usage of one transcription of the caller's speech, billed apart from the
    /// realtime model (`conversation.item.input_audio_transcription.completed`
    /// `usage`: `{"type":"tokens",…}` or `{"type":"duration","seconds"}`).
    TranscriptionUsage {
        model: String,
        usage: serde_json::Value,
    },
    /// Usage of one request to the reasoning model (the `consult` tool of an
    /// outbound call): the Messages API's `usage`, with its model.
    ReasoningUsage {
        model: String,
        usage: serde_json::Value,
    },
    /// A model response failed (`response.done` with `status` `failed`, or
    /// `incomplete` with an error): the assistant asks for it again once
    /// (`retrying`), and reports `Failed` if that one fails too.
    TurnFailed { reason: String, retrying: bool },
    /// `transfer_to_human`: ring `route`'s agents like any inbound call, with the
    /// assistant's summary so far attached to the ring.
    Handover {
        route: Route,
        summary: String,
        reason: String,
    },
    /// `end_call`, once the goodbye has played.
    HangUp { reason: String },
    /// The model cannot be reached, refused the session or dropped it: the caller
    /// goes to `route` (the agents or voicemail).
    Failed { route: Route, reason: String },
}

/// A finished call, as the engine needs it afterwards.
#[derive(Debug, Clone)]
pub struct CallReport {
    pub call_id: CallId,
    /// Who called (inbound) or was called (outbound), as Twilio gave it.
    pub from: String,
    pub to: String,
    /// `inbound`, or `outbound` for a call the engine placed.
    pub direction: &'static str,
    /// How the call ended, and why (`stream_closed`, `supervisor_hangup`…).
    pub outcome: Outcome,
    pub reason: String,
    pub started_at: i64,
    pub ended_at: i64,
    /// When the caller's media stream started and stopped, if it did.
    pub media: Option<(i64, i64)>,
    /// Set for calls an assistant took.
    pub assistant: Option<AssistantReport>,
}

#[derive(Debug, Clone)]
pub struct AssistantReport {
    pub assistant_id: AssistantId,
    /// The conversation, in order: (`caller`|`assistant`, text).
    pub turns: Vec<(String, String)>,
    /// Every `response.done` usage, with its model.
    pub usage: Vec<(String, serde_json::Value)>,
    /// Every transcription usage of the caller's speech, with its model.
    pub transcription_usage: Vec<(String, serde_json::Value)>,
    /// Every reasoning-model usage (`consult`), with its model.
    pub reasoning_usage: Vec<(String, serde_json::Value)>,
    pub tools_used: Vec<String>,
    /// How the assistant's part ended: `caller_hangup`, `end_call`, `transferred`,
    /// `assistant_failed`…
    pub ended_by: String,
}

/// What the engine plugs into every call.
pub trait CallHooks: Send + Sync + 'static {
    /// Starts an assistant for the call, on the current arbiter.
    fn start_assistant(&self, session: AssistantSession) -> AssistantLink;

    /// The call has written its final record.
    fn call_ended(&self, report: CallReport);
}
