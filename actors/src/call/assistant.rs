//! The AI hand-over: an AI-routed call's assistant (started through
//! `CallHooks`), what it reports (turns, tools, usage), and how the caller leaves
//! it — handed over to the agents or voicemail, hung up, or after its failure.

use actix::prelude::*;
use serde_json::json;

use crate::assistant::{
    AssistantNotice, AssistantSession, AssistantUpdate, StopAssistant, Transcript,
};
use crate::ids::AssistantId;
use crate::journal::JournalEntry;
use crate::leg::LegRoute;
use crate::machine::Phase;
use crate::number::Route;

use super::CallActor;

/// The assistant of an AI-routed call, and what it said and spent.
pub(super) struct Assistant {
    pub(super) id: AssistantId,
    /// Stops it; `None` once it has stopped.
    stop: Option<Recipient<StopAssistant>>,
    /// The call's news for it (an answering machine's verdict).
    notices: Recipient<AssistantNotice>,
    /// The whole conversation: before a move between nodes (from the store),
    /// then this node's.
    pub(super) turns: Vec<(String, String)>,
    /// The `seq` of the next turn.
    next_turn_seq: i64,
    pub(super) usage: Vec<(String, serde_json::Value)>,
    pub(super) transcription_usage: Vec<(String, serde_json::Value)>,
    pub(super) reasoning_usage: Vec<(String, serde_json::Value)>,
    pub(super) tools_used: Vec<String>,
    pub(super) ended_by: Option<String>,
}

impl CallActor {
    /// Starts the call's assistant; `before` is the conversation it had on
    /// another node (empty for a call new to it).
    pub(super) fn start_assistant(
        &mut self,
        assistant_id: AssistantId,
        before: Transcript,
        ctx: &mut Context<Self>,
    ) {
        let (Some(hooks), Some(leg)) = (self.deps.hooks.clone(), self.leg.clone()) else {
            self.event(
                "ai_failed",
                None,
                json!({ "assistant_id": assistant_id, "reason": "no assistant service in this engine" }),
            );
            return self.take_route(Route::everyone(), ctx);
        };
        if self.machine.assistant().is_err() {
            return;
        }
        let link = hooks.start_assistant(AssistantSession {
            call: self.call_handle(ctx),
            leg,
            assistant_id: assistant_id.clone(),
            from: self.setup.from.clone(),
            to: self.setup.to.clone(),
            workspace: self.setup.workspace.clone(),
            history: before.turns.clone(),
        });
        self.event("assistant", None, json!({ "assistant_id": assistant_id }));
        self.deps.journal.append(JournalEntry::Assistant {
            call_id: self.setup.id.clone(),
            assistant_id: assistant_id.clone(),
        });
        if let Some(verdict) = &self.answered_by {
            link.notices
                .do_send(AssistantNotice::AnsweredBy(verdict.clone()));
        }
        self.assistant = Some(Assistant {
            id: assistant_id,
            stop: Some(link.stop),
            notices: link.notices,
            turns: before.turns,
            next_turn_seq: before.last_seq + 1,
            usage: Vec::new(),
            transcription_usage: Vec::new(),
            reasoning_usage: Vec::new(),
            tools_used: Vec::new(),
            ended_by: None,
        });
        self.status(None);
    }

    /// Stops the assistant (if it still runs) and notes how its part ended.
    pub(super) fn stop_assistant(&mut self, ended_by: &str, reason: &'static str) {
        if let Some(assistant) = &mut self.assistant {
            if let Some(stop) = assistant.stop.take() {
                stop.do_send(StopAssistant { reason });
            }
            assistant
                .ended_by
                .get_or_insert_with(|| ended_by.to_owned());
        }
    }

    /// The assistant hands the caller on (to the agents, or voicemail).
    fn leave_assistant(&mut self, route: Route, ctx: &mut Context<Self>) {
        if let Some(leg) = &self.leg {
            leg.route(LegRoute::Nowhere);
        }
        match route {
            Route::Ai { .. } => self.take_route(Route::everyone(), ctx),
            other => self.take_route(other, ctx),
        }
    }
}

/// Answering-machine detection's verdict on this (outbound) call: recorded in
/// the trail and passed to the assistant — now if it runs, else when it starts.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MachineVerdict {
    pub answered_by: String,
}

impl Handler<MachineVerdict> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: MachineVerdict, _ctx: &mut Self::Context) {
        if self.machine.is_ended() || self.answered_by.is_some() {
            return;
        }
        self.event(
            "answered_by",
            None,
            json!({ "answered_by": msg.answered_by }),
        );
        if let Some(assistant) = self.assistant.as_ref().filter(|a| a.stop.is_some()) {
            assistant
                .notices
                .do_send(AssistantNotice::AnsweredBy(msg.answered_by.clone()));
        }
        self.answered_by = Some(msg.answered_by);
    }
}

impl Handler<AssistantUpdate> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: AssistantUpdate, ctx: &mut Self::Context) {
        if self.machine.is_ended() {
            return;
        }
        let talking = self.machine.phase() == Phase::Assistant;
        match msg {
            AssistantUpdate::Connected { model } => {
                self.event("ai_connected", None, json!({ "model": model }));
            }
            AssistantUpdate::Turn { role, text, at } => {
                self.event("transcript", None, json!({ "role": role, "text": text }));
                if let Some(assistant) = &mut self.assistant {
                    let seq = assistant.next_turn_seq;
                    assistant.next_turn_seq += 1;
                    assistant.turns.push((role.to_owned(), text.clone()));
                    self.deps.journal.append(JournalEntry::Turn {
                        call_id: self.setup.id.clone(),
                        seq,
                        at,
                        role,
                        text,
                    });
                }
            }
            AssistantUpdate::BargeIn { item_id, played_ms } => {
                self.event(
                    "barge_in",
                    None,
                    json!({ "item_id": item_id, "played_ms": played_ms }),
                );
            }
            AssistantUpdate::Tool { name, ok, detail } => {
                self.event(
                    "tool_call",
                    None,
                    json!({ "name": name, "ok": ok, "detail": detail }),
                );
                if let Some(assistant) = &mut self.assistant {
                    assistant.tools_used.push(name);
                }
            }
            AssistantUpdate::Logged { name, detail } => {
                self.event("ai_log", None, json!({ "name": name, "detail": detail }));
            }
            AssistantUpdate::Recording { detail } => {
                self.event("recording", None, detail);
            }
            AssistantUpdate::Usage { model, usage } => {
                if let Some(assistant) = &mut self.assistant {
                    assistant.usage.push((model, usage));
                }
            }
            AssistantUpdate::TranscriptionUsage { model, usage } => {
                if let Some(assistant) = &mut self.assistant {
                    assistant.transcription_usage.push((model, usage));
                }
            }
            AssistantUpdate::ReasoningUsage { model, usage } => {
                if let Some(assistant) = &mut self.assistant {
                    assistant.reasoning_usage.push((model, usage));
                }
            }
            AssistantUpdate::TurnFailed { reason, retrying } => {
                self.event(
                    "ai_turn_failed",
                    None,
                    json!({ "reason": reason, "retrying": retrying }),
                );
            }
            AssistantUpdate::Handover {
                route,
                summary,
                reason,
            } if talking => {
                self.stop_assistant("transferred", "handover");
                self.event(
                    "ai_handover",
                    None,
                    json!({ "reason": reason, "summary": summary }),
                );
                self.handover_summary = Some(summary);
                self.leave_assistant(route, ctx);
            }
            AssistantUpdate::HangUp { reason } if talking => {
                self.stop_assistant("end_call", "end_call");
                self.event(
                    "hangup",
                    None,
                    json!({ "by": "assistant", "reason": reason }),
                );
                if let Some(ending) = self.machine.hang_up() {
                    self.finish(ending, "assistant_end_call", ctx);
                }
            }
            AssistantUpdate::Failed { route, reason } if talking => {
                self.stop_assistant("assistant_failed", "failed");
                let to = serde_json::to_value(&route).unwrap_or_default();
                self.event("ai_failed", None, json!({ "reason": reason, "route": to }));
                if let Some(leg) = &self.leg {
                    leg.clear();
                }
                self.leave_assistant(route, ctx);
            }
            AssistantUpdate::Handover { .. }
            | AssistantUpdate::HangUp { .. }
            | AssistantUpdate::Failed { .. } => {}
        }
    }
}
