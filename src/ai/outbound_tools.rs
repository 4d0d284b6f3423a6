//! The relay's outbound behaviour (a child of `relay`, so it reaches the
//! [`AiLeg`]'s state), on when the assistant carries an
//! [`OutboundBrief`](super::super::outbound::OutboundBrief):
//!
//! - the session starts with `create_response: false`: the callee's greeting
//!   (`speech_stopped`), or `greeting_wait` without one, is followed by one
//!   `response.create` with the disclosure; then turns are answered as usual;
//! - `consult`: the reasoning model (the summary's client) gets the objective, the
//!   question and the transcript so far; its answer is the tool's output and its
//!   usage is reported (`ReasoningUsage`);
//! - `opt_out`: the callee's number joins the user's and the global do-not-call
//!   lists, then the assistant leaves once its goodbye has played;
//! - `send_digits`: `[0-9*#wW]` played into the call as DTMF tones by the media
//!   leg (`PlayDigits`): the stream and the model session carry on;
//! - answering-machine verdicts (`AssistantNotice::AnsweredBy`): a machine gets
//!   the voicemail message then a hang-up (`on_machine = leave_message`) or a
//!   hang-up at once, a fax a hang-up; `human` and `unknown` change nothing;
//! - hard limits: `silence_timeout` with nobody speaking (neither side's audio)
//!   and `max_hold` without a turn from the callee end the call;
//! - recording after the notice (`RecordingPlan::AfterNotice`): once the
//!   disclosure — which says the call is recorded — has played to its end
//!   (every mark after its audio echoed), the relay's `start_recording` asks
//!   Twilio to record; a disclosure the callee talked over is not a notice
//!   heard, and the call is not recorded. Each outcome is a `recording` event.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde_json::{json, Value};
use switchboard_actors::assistant::{AssistantNotice, AssistantUpdate};

use super::super::outbound::{self as brief_mod, OutboundBrief};
use super::{AiLeg, Exit, Stage};
use crate::config::OnMachine;
use crate::domain::recording::RecordingPlan;
use crate::store::dnc::DncScope;

/// The longest a voicemail message may take to play before the call hangs up
/// anyway.
const VOICEMAIL_GRACE: Duration = Duration::from_secs(60);

/// An outbound call's state in its relay.
pub(super) struct Outbound {
    brief: Arc<OutboundBrief>,
    /// The disclosure has been asked for.
    opened: bool,
    /// What was said so far, for `consult`: (`caller`|`assistant`, text).
    transcript: Vec<(String, String)>,
    greeting_timer: Option<SpawnHandle>,
    silence_timer: Option<SpawnHandle>,
    hold_timer: Option<SpawnHandle>,
    /// A verdict that came before the session was live.
    verdict: Option<String>,
    /// The callee is in the middle of an utterance (speech started, not stopped).
    speaking: bool,
    /// The greeting wait ran out once while the callee was speaking.
    waited_once: bool,
    /// A verdict was acted on: later ones are ignored.
    decided: bool,
    /// Where the recording notice (the disclosure) stands.
    notice: Notice,
}

/// The disclosure, heard or not: recording after the notice waits for it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Notice {
    /// Not asked for yet.
    NotYet,
    /// Asked for; its response's id once `response.created` names it.
    Playing(Option<String>),
    /// Played to its end, or talked over: decided either way.
    Settled,
}

impl Outbound {
    /// `verdict`: an answering machine's verdict that came first.
    pub(super) fn new(brief: Arc<OutboundBrief>, verdict: Option<String>) -> Outbound {
        Outbound {
            brief,
            opened: false,
            transcript: Vec::new(),
            greeting_timer: None,
            silence_timer: None,
            hold_timer: None,
            verdict,
            speaking: false,
            waited_once: false,
            decided: false,
            notice: Notice::NotYet,
        }
    }
}

impl AiLeg {
    /// The session is live: wait for the greeting (at most `greeting_wait`), and
    /// start the silence and hold limits.
    pub(super) fn outbound_ready(&mut self, ctx: &mut Context<Self>) {
        if self.outbound.is_none() {
            return;
        }
        self.arm_greeting_wait(ctx);
        self.restart_silence(ctx);
        self.restart_hold(ctx);
        if let Some(verdict) = self.outbound.as_mut().and_then(|o| o.verdict.take()) {
            self.on_verdict(verdict, ctx);
        }
    }

    /// The disclosure follows `greeting_wait` without a finished greeting. A
    /// callee still speaking when it runs out gets one more wait (not to be
    /// talked over); then the disclosure comes regardless.
    fn arm_greeting_wait(&mut self, ctx: &mut Context<Self>) {
        let Some(outbound) = &mut self.outbound else {
            return;
        };
        let wait = outbound.brief.greeting_wait;
        outbound.greeting_timer = Some(ctx.run_later(wait, |act, ctx| {
            let Some(o) = &mut act.outbound else {
                return;
            };
            o.greeting_timer = None;
            if o.speaking && !o.waited_once {
                o.waited_once = true;
                return act.arm_greeting_wait(ctx);
            }
            act.open_outbound(ctx);
        }));
    }

    /// The callee's greeting is over (or never came): the disclosure, then the
    /// model answers turns by itself.
    fn open_outbound(&mut self, ctx: &mut Context<Self>) {
        let Some(outbound) = &mut self.outbound else {
            return;
        };
        if outbound.opened || self.stage != Stage::Live || self.exit.is_some() {
            return;
        }
        outbound.opened = true;
        outbound.notice = Notice::Playing(None);
        if let Some(timer) = outbound.greeting_timer.take() {
            ctx.cancel_future(timer);
        }
        let disclosure = outbound.brief.disclosure.clone();
        self.request_response(json!({
            "type": "response.create",
            "response": {
                "instructions": format!(
                    "Open the call by saying exactly this, and nothing else: {disclosure}"
                ),
            },
        }));
        self.send(json!({
            "type": "session.update",
            "session": {
                "type": "realtime",
                "audio": {
                    "input": {
                        "turn_detection": {
                            "type": "server_vad",
                            "create_response": true,
                            "interrupt_response": true,
                        },
                    },
                },
            },
        }));
    }

    /// `response.created`: the first response after the disclosure was asked
    /// for is the disclosure.
    /// A disclosure whose response failed without audio is asked for again: the
    /// retry's response is the disclosure then.
    pub(super) fn outbound_response_created(&mut self, response: &str) {
        let Some(outbound) = &mut self.outbound else {
            return;
        };
        let replaces = match &outbound.notice {
            Notice::Playing(None) => true,
            Notice::Playing(Some(earlier)) => {
                earlier != response && !self.items.values().any(|i| i.response_id == *earlier)
            }
            _ => false,
        };
        if replaces {
            outbound.notice = Notice::Playing(Some(response.to_owned()));
        }
    }

    /// After a mark echo, a response's end or a barge-in: has the disclosure
    /// been heard to its end (then a recording after the notice starts), or
    /// was it cut (then the call is not recorded)?
    pub(super) fn outbound_notice_check(&mut self, ctx: &mut Context<Self>) {
        let Some(outbound) = &mut self.outbound else {
            return;
        };
        let Notice::Playing(Some(response)) = &outbound.notice else {
            return;
        };
        let cut = self.cancelled_responses.contains(response);
        let mut audio = self
            .items
            .values()
            .filter(|item| item.response_id == *response)
            .peekable();
        let has_audio = audio.peek().is_some();
        let played = audio.all(|item| item.played_ms >= item.sent_ms);
        let done = self.active_response.as_deref() != Some(response.as_str());
        let heard = done && has_audio && played;
        if !(cut || heard) {
            return;
        }
        outbound.notice = Notice::Settled;
        if outbound.brief.recording != RecordingPlan::AfterNotice {
            return;
        }
        if cut {
            tracing::info!(call_id = %self.call.id(), "the recording notice was talked over: not recorded");
            self.update(AssistantUpdate::Recording {
                detail: json!({ "status": "skipped", "reason": "notice_interrupted" }),
            });
            return;
        }
        let Some(start) = self.deps.start_recording.clone() else {
            self.update(AssistantUpdate::Recording {
                detail: json!({ "status": "failed", "reason": "no Twilio account to record with" }),
            });
            return;
        };
        let id = outbound.brief.outbound_id.clone();
        ctx.spawn(start(id).into_actor(self).map(|result, act, _| {
            let detail = match result {
                Ok(sid) => json!({ "status": "started", "after": "notice", "recording_sid": sid }),
                Err(reason) => {
                    tracing::warn!(call_id = %act.call.id(), %reason, "recording not started");
                    json!({ "status": "failed", "reason": reason })
                }
            };
            act.update(AssistantUpdate::Recording { detail });
        }));
    }

    /// The callee started an utterance.
    pub(super) fn outbound_speech_started(&mut self, ctx: &mut Context<Self>) {
        if let Some(outbound) = &mut self.outbound {
            outbound.speaking = true;
        }
        self.outbound_heard_speech(ctx);
    }

    /// Someone is audible (the callee started speaking, or the assistant's audio
    /// goes out or plays): the silence limit starts again.
    pub(super) fn outbound_heard_speech(&mut self, ctx: &mut Context<Self>) {
        if self.outbound.is_some() && self.stage == Stage::Live {
            self.restart_silence(ctx);
        }
    }

    /// The callee finished a turn: the greeting is over, the hold limit starts
    /// again.
    pub(super) fn outbound_speech_stopped(&mut self, ctx: &mut Context<Self>) {
        let Some(outbound) = &mut self.outbound else {
            return;
        };
        outbound.speaking = false;
        if self.stage != Stage::Live {
            return;
        }
        self.restart_hold(ctx);
        self.restart_silence(ctx);
        self.open_outbound(ctx);
    }

    /// A finished turn, kept for `consult`.
    pub(super) fn outbound_turn(&mut self, role: &str, text: &str) {
        if let Some(outbound) = &mut self.outbound {
            outbound.transcript.push((role.to_owned(), text.to_owned()));
        }
    }

    fn restart_silence(&mut self, ctx: &mut Context<Self>) {
        let Some(outbound) = &mut self.outbound else {
            return;
        };
        if let Some(timer) = outbound.silence_timer.take() {
            ctx.cancel_future(timer);
        }
        let limit = outbound.brief.silence_timeout;
        outbound.silence_timer = Some(ctx.run_later(limit, |act, ctx| {
            act.limit_reached("silence_timeout", ctx);
        }));
    }

    fn restart_hold(&mut self, ctx: &mut Context<Self>) {
        let Some(outbound) = &mut self.outbound else {
            return;
        };
        if let Some(timer) = outbound.hold_timer.take() {
            ctx.cancel_future(timer);
        }
        let limit = outbound.brief.max_hold;
        outbound.hold_timer = Some(ctx.run_later(limit, |act, ctx| {
            act.limit_reached("max_hold", ctx);
        }));
    }

    fn limit_reached(&mut self, reason: &str, ctx: &mut Context<Self>) {
        if self.stage != Stage::Live || self.exit.is_some() {
            return;
        }
        tracing::info!(call_id = %self.call.id(), reason, "outbound call limit reached");
        self.exit = Some(Exit::HangUp {
            reason: reason.to_owned(),
        });
        self.exit_now(ctx);
    }

    // ---- tools ----

    pub(super) fn outbound_tool(
        &mut self,
        call_id: String,
        name: String,
        raw: &str,
        ctx: &mut Context<Self>,
    ) {
        let arguments = match serde_json::from_str::<Value>(raw) {
            Ok(value @ Value::Object(_)) => value,
            Ok(_) => {
                return self.bad_arguments(&call_id, &name, "the arguments must be a JSON object")
            }
            Err(e) => {
                return self.bad_arguments(
                    &call_id,
                    &name,
                    &format!("the arguments are not valid JSON: {e}"),
                )
            }
        };
        let text = |key: &str| {
            arguments
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .trim()
                .to_owned()
        };
        match name.as_str() {
            "consult" => self.consult(call_id, text("question"), ctx),
            "opt_out" => self.opt_out(call_id, text("reason"), ctx),
            "send_digits" => self.send_digits(call_id, text("digits"), ctx),
            _ => self.bad_arguments(&call_id, &name, "no such tool"),
        }
    }

    /// Asks the reasoning model; its answer goes back as the tool's output.
    fn consult(&mut self, call_id: String, question: String, ctx: &mut Context<Self>) {
        let Some(outbound) = &self.outbound else {
            return;
        };
        let Some(reasoner) = self.deps.reasoner.clone() else {
            self.update(AssistantUpdate::Tool {
                name: "consult".into(),
                ok: false,
                detail: json!({ "error": "no reasoning model is configured" }),
            });
            return self.tool_output(
                &call_id,
                json!({ "error": "no planner is available; decide yourself" }),
            );
        };
        let question = if question.is_empty() {
            "What should I say or do next?".to_owned()
        } else {
            question
        };
        let prompt =
            brief_mod::consult_prompt(&outbound.brief.objective, &question, &outbound.transcript);
        let model = reasoner.model().to_owned();
        let work = async move { reasoner.ask(brief_mod::CONSULT_SYSTEM, &prompt).await };
        ctx.spawn(
            work.into_actor(self)
                .map(move |result, act, _ctx| match result {
                    Ok((answer, usage)) => {
                        act.update(AssistantUpdate::Tool {
                            name: "consult".into(),
                            ok: true,
                            detail: json!({ "question": question, "model": model, "usage": usage }),
                        });
                        if usage.is_object() {
                            act.update(AssistantUpdate::ReasoningUsage {
                                model: model.clone(),
                                usage,
                            });
                        }
                        act.tool_output(&call_id, json!({ "advice": answer }));
                    }
                    Err(e) => {
                        let error = e.to_string();
                        act.update(AssistantUpdate::Tool {
                            name: "consult".into(),
                            ok: false,
                            detail: json!({ "question": question, "error": error }),
                        });
                        act.tool_output(
                            &call_id,
                            json!({ "error": "the planner could not be reached; decide yourself" }),
                        );
                    }
                }),
        );
    }

    /// The callee asked not to be called again.
    fn opt_out(&mut self, call_id: String, reason: String, ctx: &mut Context<Self>) {
        let Some(outbound) = &self.outbound else {
            return;
        };
        let store = self.deps.store.clone();
        let brief = Arc::clone(&outbound.brief);
        let why = format!(
            "{} {}{}",
            crate::store::safety_review::OPT_OUT_REASON_PREFIX,
            brief.outbound_id,
            if reason.is_empty() {
                String::new()
            } else {
                format!(": {reason}")
            }
        );
        let work = async move {
            let user = DncScope::User(brief.user_id.clone());
            store
                .add_do_not_call(&user, &brief.callee, Some(&why))
                .await?;
            store
                .add_do_not_call(&DncScope::Global, &brief.callee, Some(&why))
                .await?;
            Ok::<_, crate::store::StoreError>(())
        };
        ctx.spawn(work.into_actor(self).map(move |result, act, ctx| {
            let (ok, detail) = match &result {
                Ok(()) => (true, json!({ "reason": reason })),
                Err(e) => {
                    tracing::error!(call_id = %act.call.id(), error = %e, "opt_out could not be stored");
                    (false, json!({ "reason": reason, "error": e.to_string() }))
                }
            };
            act.update(AssistantUpdate::Tool {
                name: "opt_out".into(),
                ok,
                detail,
            });
            act.record_output(&call_id, json!({ "ok": ok }));
            act.leave(
                Exit::HangUp {
                    reason: "opt_out".into(),
                },
                ctx,
            );
        }));
    }

    /// Plays keys into the call as DTMF tones.
    fn send_digits(&mut self, call_id: String, digits: String, ctx: &mut Context<Self>) {
        let keys = match brief_mod::keypad(&digits) {
            Ok(keys) => keys,
            Err(error) => return self.bad_arguments(&call_id, "send_digits", &error),
        };
        let leg = self.leg.clone();
        let work = async move { leg.play_digits(keys).await };
        ctx.spawn(work.into_actor(self).map(move |result, act, _ctx| {
            let (ok, output) = match result {
                Ok(took) => (
                    true,
                    json!({ "ok": true, "digits": digits, "played_ms": took.as_millis() as u64 }),
                ),
                Err(e) => (false, json!({ "error": e.to_string() })),
            };
            act.update(AssistantUpdate::Tool {
                name: "send_digits".into(),
                ok,
                detail: output.clone(),
            });
            // The tones are the answer: the model listens to what follows.
            act.record_output(&call_id, output);
        }));
    }

    /// Gives the model a tool's answer without asking it to speak.
    fn record_output(&mut self, call_id: &str, output: Value) {
        if self.stage != Stage::Live {
            return;
        }
        self.send(json!({
            "type": "conversation.item.create",
            "item": {
                "type": "function_call_output",
                "call_id": call_id,
                "output": output.to_string(),
            },
        }));
    }

    // ---- answering machines ----

    fn on_verdict(&mut self, verdict: String, ctx: &mut Context<Self>) {
        let Some(outbound) = &mut self.outbound else {
            if self.stage == Stage::Connecting && self.assistant.is_none() {
                // The assistant is still being read: kept until it is.
                self.early_verdict = Some(verdict);
            }
            return;
        };
        if self.stage != Stage::Live {
            outbound.verdict = Some(verdict);
            return;
        }
        if outbound.decided || self.exit.is_some() {
            return;
        }
        let machine = verdict.starts_with("machine_");
        if !(machine || verdict == "fax") {
            return; // human, unknown: the conversation goes on
        }
        outbound.decided = true;
        let leave_message = machine && outbound.brief.on_machine == OnMachine::LeaveMessage;
        let voicemail = outbound.brief.voicemail.clone();
        if let Some(timer) = outbound.greeting_timer.take() {
            ctx.cancel_future(timer);
        }
        outbound.opened = true; // no disclosure after this
        tracing::info!(call_id = %self.call.id(), %verdict, leave_message, "answering machine verdict");
        self.stop_speaking();
        if !leave_message {
            let reason = if verdict == "fax" {
                "fax"
            } else {
                "answering_machine"
            };
            self.exit = Some(Exit::HangUp {
                reason: reason.into(),
            });
            return self.exit_now(ctx);
        }
        self.request_response(json!({
            "type": "response.create",
            "response": {
                "instructions": format!(
                    "You reached an answering machine. Leave this message by saying \
                     exactly this, and nothing else: {voicemail}"
                ),
                "tool_choice": "none",
            },
        }));
        self.leave_within(
            Exit::HangUp {
                reason: "voicemail_left".into(),
            },
            VOICEMAIL_GRACE,
            ctx,
        );
    }

    /// Cuts whatever the assistant is saying: the response is cancelled, its
    /// queued audio cleared and its late deltas dropped.
    fn stop_speaking(&mut self) {
        if let Some(response) = self.active_response.take() {
            self.send(json!({ "type": "response.cancel" }));
            self.cancelled_responses.insert(response);
        }
        for item in self.items.values() {
            self.cancelled_responses.insert(item.response_id.clone());
        }
        self.want_response = false;
        self.pending_request = None;
        self.active_request = None;
        self.unmarked = None;
        self.unmarked_ms = 0;
        self.marks.clear();
        self.leg.clear();
    }
}

impl Handler<AssistantNotice> for AiLeg {
    type Result = ();

    fn handle(&mut self, msg: AssistantNotice, ctx: &mut Self::Context) {
        match msg {
            AssistantNotice::AnsweredBy(verdict) => self.on_verdict(verdict, ctx),
        }
    }
}
