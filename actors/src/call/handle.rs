//! `CallHandle`: the typed way to talk to a call; hides the mailbox and its errors.

use std::sync::Arc;

use actix::prelude::*;

use crate::assistant::AssistantUpdate;
use crate::error::EngineError;
use crate::ids::{AgentId, CallId};
use crate::leg::LegHandle;
use crate::machine::ClaimKind;
use crate::outbox::AudioPort;
use crate::seat::SeatLink;

use super::{
    AgentDigits, AgentPresence, AttachCaller, CallActor, CallerDtmf, CallerLeft, CallerMark,
    CancelTransfer, Claim, ClaimResult, CompleteTransfer, Decline, Interrupt, Listen, Park,
    SeatGone, SeatHangup, SupervisorHangup, Transfer, TwilioStatus, Unlisten,
};

/// The typed way to talk to a call.
#[derive(Clone)]
pub struct CallHandle {
    pub(super) id: CallId,
    pub(super) addr: Addr<CallActor>,
    /// The caller's number and the number called, known from the webhook.
    pub(super) parties: Arc<(String, String)>,
}

impl std::fmt::Debug for CallHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallHandle").field("id", &self.id).finish()
    }
}

impl CallHandle {
    pub fn id(&self) -> &CallId {
        &self.id
    }

    /// The caller's number.
    pub fn from(&self) -> &str {
        &self.parties.0
    }

    /// The number called.
    pub fn to(&self) -> &str {
        &self.parties.1
    }

    /// Plays `digits` (already checked) into the call as DTMF tones, for the agent
    /// connected to it.
    pub async fn play_digits(&self, agent_id: AgentId, digits: String) -> Result<(), EngineError> {
        let leg = self
            .ask(AgentDigits {
                agent_id,
                digits: digits.clone(),
            })
            .await??;
        leg.play_digits(digits).await.map(|_| ())
    }

    async fn ask<M>(&self, msg: M) -> Result<M::Result, EngineError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        CallActor: Handler<M>,
    {
        self.addr
            .send(msg)
            .await
            .map_err(|e| EngineError::mailbox("call", e))
    }

    /// Answering-machine detection's verdict (an outbound call's `AnsweredBy`).
    pub fn machine_verdict(&self, answered_by: String) {
        self.addr.do_send(super::MachineVerdict { answered_by });
    }

    pub async fn attach(&self, leg: LegHandle) -> Result<(), EngineError> {
        self.ask(AttachCaller { leg }).await?
    }

    pub async fn claim(
        &self,
        agent_id: AgentId,
        seat: SeatLink,
        kind: ClaimKind,
        notify: bool,
    ) -> Result<ClaimResult, EngineError> {
        self.ask(Claim {
            agent_id,
            seat,
            kind,
            notify,
        })
        .await
    }

    pub async fn park(&self, by: Option<AgentId>, reason: &'static str) -> Result<(), EngineError> {
        self.ask(Park { by, reason }).await?
    }

    pub async fn transfer(
        &self,
        from: AgentId,
        to: SeatLink,
        warm: bool,
    ) -> Result<(), EngineError> {
        self.ask(Transfer {
            from: Some(from),
            to,
            warm,
        })
        .await?
    }

    /// A supervisor's transfer: whoever has the call (or the parking lot) to `to`.
    pub async fn transfer_to(&self, to: SeatLink) -> Result<(), EngineError> {
        self.ask(Transfer {
            from: None,
            to,
            warm: false,
        })
        .await?
    }

    pub async fn complete_transfer(&self, by: AgentId) -> Result<(), EngineError> {
        self.ask(CompleteTransfer { by }).await?
    }

    pub async fn cancel_transfer(&self, by: AgentId) -> Result<(), EngineError> {
        self.ask(CancelTransfer { by }).await?
    }

    pub async fn supervisor_hangup(&self) -> Result<(), EngineError> {
        self.ask(SupervisorHangup).await?
    }

    pub async fn listen(&self, listener: u64, port: AudioPort) -> Result<(), EngineError> {
        self.ask(Listen { listener, port }).await?
    }

    /// Stops what `listener` hears of the call (acked even if it was not listening).
    pub async fn unlisten(&self, listener: u64) -> Result<(), EngineError> {
        self.ask(Unlisten { listener }).await
    }

    pub fn decline(&self, agent_id: AgentId) {
        self.addr.do_send(Decline { agent_id });
    }

    pub fn hangup(&self, agent_id: AgentId) {
        self.addr.do_send(SeatHangup { agent_id });
    }

    pub fn seat_left(&self, agent_id: AgentId) {
        self.addr.do_send(SeatGone { agent_id });
    }

    pub fn agent_presence(&self, agent_id: AgentId, presence: &'static str) {
        self.addr.do_send(AgentPresence { agent_id, presence });
    }

    pub fn caller_left(&self, reason: &'static str) {
        self.addr.do_send(CallerLeft { reason });
    }

    pub fn caller_mark(&self, name: String) {
        self.addr.do_send(CallerMark { name });
    }

    pub fn caller_dtmf(&self, digit: String) {
        self.addr.do_send(CallerDtmf { digit });
    }

    pub fn twilio_status(&self, status: String, detail: serde_json::Value) {
        self.addr.do_send(TwilioStatus { status, detail });
    }

    /// Ends the call as `interrupted`; resolves once the call has handled it.
    pub async fn interrupt(&self, reason: &'static str) {
        let _ = self.addr.send(Interrupt { reason }).await;
    }

    /// News from the call's assistant.
    pub fn assistant_update(&self, update: AssistantUpdate) {
        self.addr.do_send(update);
    }

    pub fn is_alive(&self) -> bool {
        self.addr.connected()
    }
}
