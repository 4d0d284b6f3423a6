//! `CallHandle`: the typed way to talk to a call; hides the mailbox and its errors,
//! and whether the call lives on this node or on another node of the cluster.
//!
//! Every request a seat or a console makes of a call is a [`CallRequest`]. A
//! local call turns it into its actor's message; a call owned by another node
//! (issue 16) hands it to a [`CallRemote`], which carries it over the node link to
//! the owner, where the same request reaches the owner's `CallActor`
//! ([`CallHandle::serve`]). So a claim from a seat on another node is one more
//! `Claim` in the owner's mailbox: first-answer-wins stays a property of one
//! mailbox, with no distributed lock.

use std::future::Future;
use std::pin::Pin;
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

/// What a seat or a console may ask of a call, wherever the call lives.
pub enum CallRequest {
    Claim {
        agent_id: AgentId,
        seat: SeatLink,
        kind: ClaimKind,
        notify: bool,
    },
    Decline {
        agent_id: AgentId,
    },
    Hangup {
        agent_id: AgentId,
    },
    SeatGone {
        agent_id: AgentId,
    },
    AgentPresence {
        agent_id: AgentId,
        presence: &'static str,
    },
    Park {
        by: Option<AgentId>,
        reason: &'static str,
    },
    /// `from: None` is a supervisor's transfer.
    Transfer {
        from: Option<AgentId>,
        to: SeatLink,
        warm: bool,
    },
    CompleteTransfer {
        by: AgentId,
    },
    CancelTransfer {
        by: AgentId,
    },
    SupervisorHangup,
    PlayDigits {
        agent_id: AgentId,
        digits: String,
    },
    Listen {
        listener: u64,
        port: AudioPort,
    },
    Unlisten {
        listener: u64,
    },
    /// Whether the call is live where it is (answered `Done`, or `Gone`): a
    /// resume on another node asks the node that holds it before streaming
    /// the caller back to it.
    Holds,
}

impl CallRequest {
    /// The request's name, for logs and the link's wire.
    pub fn name(&self) -> &'static str {
        match self {
            CallRequest::Claim { .. } => "claim",
            CallRequest::Decline { .. } => "decline",
            CallRequest::Hangup { .. } => "hangup",
            CallRequest::SeatGone { .. } => "seat_gone",
            CallRequest::AgentPresence { .. } => "agent_presence",
            CallRequest::Park { .. } => "park",
            CallRequest::Transfer { .. } => "transfer",
            CallRequest::CompleteTransfer { .. } => "complete_transfer",
            CallRequest::CancelTransfer { .. } => "cancel_transfer",
            CallRequest::SupervisorHangup => "supervisor_hangup",
            CallRequest::PlayDigits { .. } => "play_digits",
            CallRequest::Listen { .. } => "listen",
            CallRequest::Unlisten { .. } => "unlisten",
            CallRequest::Holds => "holds",
        }
    }
}

/// A call's answer to a [`CallRequest`].
pub enum CallReply {
    Done,
    Claim(ClaimResult),
}

/// The answer of a call on another node, as a future.
pub type RemoteReply = Pin<Box<dyn Future<Output = Result<CallReply, EngineError>> + Send>>;

/// A call owned by another node: implemented by the cluster's node link.
pub trait CallRemote: Send + Sync + 'static {
    /// Sends `request` to the call and resolves with its answer.
    fn request(&self, call_id: &CallId, request: CallRequest) -> RemoteReply;
    /// Sends `request` without waiting for an answer (a decline, a hang-up).
    fn tell(&self, call_id: &CallId, request: CallRequest);
    /// False once the call is known to be gone or its node unreachable.
    fn is_alive(&self) -> bool;
    /// The node that owns the call.
    fn node(&self) -> &str;
}

#[derive(Clone)]
pub(super) enum Target {
    Local(Addr<CallActor>),
    Remote(Arc<dyn CallRemote>),
}

/// The typed way to talk to a call.
#[derive(Clone)]
pub struct CallHandle {
    pub(super) id: CallId,
    pub(super) target: Target,
    /// The caller's number and the number called, known from the webhook.
    pub(super) parties: Arc<(String, String)>,
}

impl std::fmt::Debug for CallHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallHandle")
            .field("id", &self.id)
            .field("remote", &self.is_remote())
            .finish()
    }
}

fn done(reply: CallReply) -> Result<(), EngineError> {
    match reply {
        CallReply::Done => Ok(()),
        CallReply::Claim(_) => Err(EngineError::Refused(
            "a claim's answer to another request".into(),
        )),
    }
}

/// The requests nobody waits for, to a call on this node.
fn tell_local(addr: &Addr<CallActor>, request: CallRequest) {
    match request {
        CallRequest::Decline { agent_id } => addr.do_send(Decline { agent_id }),
        CallRequest::Hangup { agent_id } => addr.do_send(SeatHangup { agent_id }),
        CallRequest::SeatGone { agent_id } => addr.do_send(SeatGone { agent_id }),
        CallRequest::AgentPresence { agent_id, presence } => {
            addr.do_send(AgentPresence { agent_id, presence })
        }
        other => tracing::error!(
            request = other.name(),
            "a request that needs an answer was told"
        ),
    }
}

impl CallHandle {
    /// A call owned by another node, reached through `remote`.
    pub fn remote(id: CallId, from: String, to: String, remote: Arc<dyn CallRemote>) -> Self {
        CallHandle {
            id,
            target: Target::Remote(remote),
            parties: Arc::new((from, to)),
        }
    }

    pub fn id(&self) -> &CallId {
        &self.id
    }

    /// Whether the call lives on another node.
    pub fn is_remote(&self) -> bool {
        matches!(self.target, Target::Remote(_))
    }

    /// The node that owns the call, when it is another node.
    pub fn remote_node(&self) -> Option<&str> {
        match &self.target {
            Target::Remote(remote) => Some(remote.node()),
            Target::Local(_) => None,
        }
    }

    /// The caller's number.
    pub fn from(&self) -> &str {
        &self.parties.0
    }

    /// The number called.
    pub fn to(&self) -> &str {
        &self.parties.1
    }

    /// Carries out `request` on this node's call (the node link's entry point for
    /// requests from other nodes), or passes it on to a remote one.
    pub async fn serve(&self, request: CallRequest) -> Result<CallReply, EngineError> {
        let addr = match &self.target {
            Target::Remote(remote) => return remote.request(&self.id, request).await,
            Target::Local(addr) => addr,
        };
        let ask = |e| EngineError::mailbox("call", e);
        Ok(match request {
            CallRequest::Claim {
                agent_id,
                seat,
                kind,
                notify,
            } => CallReply::Claim(
                addr.send(Claim {
                    agent_id,
                    seat,
                    kind,
                    notify,
                })
                .await
                .map_err(ask)?,
            ),
            request @ (CallRequest::Decline { .. }
            | CallRequest::Hangup { .. }
            | CallRequest::SeatGone { .. }
            | CallRequest::AgentPresence { .. }) => {
                tell_local(addr, request);
                CallReply::Done
            }
            CallRequest::Park { by, reason } => {
                addr.send(Park { by, reason }).await.map_err(ask)??;
                CallReply::Done
            }
            CallRequest::Transfer { from, to, warm } => {
                addr.send(Transfer { from, to, warm })
                    .await
                    .map_err(ask)??;
                CallReply::Done
            }
            CallRequest::CompleteTransfer { by } => {
                addr.send(CompleteTransfer { by }).await.map_err(ask)??;
                CallReply::Done
            }
            CallRequest::CancelTransfer { by } => {
                addr.send(CancelTransfer { by }).await.map_err(ask)??;
                CallReply::Done
            }
            CallRequest::SupervisorHangup => {
                addr.send(SupervisorHangup).await.map_err(ask)??;
                CallReply::Done
            }
            CallRequest::PlayDigits { agent_id, digits } => {
                let leg = addr
                    .send(AgentDigits {
                        agent_id,
                        digits: digits.clone(),
                    })
                    .await
                    .map_err(ask)??;
                leg.play_digits(digits).await?;
                CallReply::Done
            }
            CallRequest::Listen { listener, port } => {
                addr.send(Listen { listener, port }).await.map_err(ask)??;
                CallReply::Done
            }
            CallRequest::Unlisten { listener } => {
                addr.send(Unlisten { listener }).await.map_err(ask)?;
                CallReply::Done
            }
            CallRequest::Holds if addr.connected() => CallReply::Done,
            CallRequest::Holds => return Err(EngineError::Gone("call")),
        })
    }

    /// A request whose answer nobody waits for.
    fn tell(&self, request: CallRequest) {
        match &self.target {
            Target::Remote(remote) => remote.tell(&self.id, request),
            Target::Local(addr) => tell_local(addr, request),
        }
    }

    async fn request(&self, request: CallRequest) -> Result<(), EngineError> {
        self.serve(request).await.and_then(done)
    }

    /// Plays `digits` (already checked) into the call as DTMF tones, for the agent
    /// connected to it.
    pub async fn play_digits(&self, agent_id: AgentId, digits: String) -> Result<(), EngineError> {
        self.request(CallRequest::PlayDigits { agent_id, digits })
            .await
    }

    fn local(&self) -> Option<&Addr<CallActor>> {
        match &self.target {
            Target::Local(addr) => Some(addr),
            Target::Remote(_) => None,
        }
    }

    /// Answering-machine detection's verdict (an outbound call's `AnsweredBy`).
    pub fn machine_verdict(&self, answered_by: String) {
        if let Some(addr) = self.local() {
            addr.do_send(super::MachineVerdict { answered_by });
        }
    }

    pub async fn attach(&self, leg: LegHandle) -> Result<(), EngineError> {
        let addr = self
            .local()
            .ok_or_else(|| EngineError::Refused("the call lives on another node".into()))?;
        addr.send(AttachCaller { leg })
            .await
            .map_err(|e| EngineError::mailbox("call", e))?
    }

    pub async fn claim(
        &self,
        agent_id: AgentId,
        seat: SeatLink,
        kind: ClaimKind,
        notify: bool,
    ) -> Result<ClaimResult, EngineError> {
        let request = CallRequest::Claim {
            agent_id,
            seat,
            kind,
            notify,
        };
        match self.serve(request).await? {
            CallReply::Claim(result) => Ok(result),
            CallReply::Done => Err(EngineError::Refused(
                "the call answered a claim with no result".into(),
            )),
        }
    }

    pub async fn park(&self, by: Option<AgentId>, reason: &'static str) -> Result<(), EngineError> {
        self.request(CallRequest::Park { by, reason }).await
    }

    pub async fn transfer(
        &self,
        from: AgentId,
        to: SeatLink,
        warm: bool,
    ) -> Result<(), EngineError> {
        self.request(CallRequest::Transfer {
            from: Some(from),
            to,
            warm,
        })
        .await
    }

    /// A supervisor's transfer: whoever has the call (or the parking lot) to `to`.
    pub async fn transfer_to(&self, to: SeatLink) -> Result<(), EngineError> {
        self.request(CallRequest::Transfer {
            from: None,
            to,
            warm: false,
        })
        .await
    }

    pub async fn complete_transfer(&self, by: AgentId) -> Result<(), EngineError> {
        self.request(CallRequest::CompleteTransfer { by }).await
    }

    pub async fn cancel_transfer(&self, by: AgentId) -> Result<(), EngineError> {
        self.request(CallRequest::CancelTransfer { by }).await
    }

    pub async fn supervisor_hangup(&self) -> Result<(), EngineError> {
        self.request(CallRequest::SupervisorHangup).await
    }

    pub async fn listen(&self, listener: u64, port: AudioPort) -> Result<(), EngineError> {
        self.request(CallRequest::Listen { listener, port }).await
    }

    /// Stops what `listener` hears of the call (acked even if it was not listening).
    pub async fn unlisten(&self, listener: u64) -> Result<(), EngineError> {
        self.request(CallRequest::Unlisten { listener }).await
    }

    pub fn decline(&self, agent_id: AgentId) {
        self.tell(CallRequest::Decline { agent_id });
    }

    pub fn hangup(&self, agent_id: AgentId) {
        self.tell(CallRequest::Hangup { agent_id });
    }

    pub fn seat_left(&self, agent_id: AgentId) {
        self.tell(CallRequest::SeatGone { agent_id });
    }

    pub fn agent_presence(&self, agent_id: AgentId, presence: &'static str) {
        self.tell(CallRequest::AgentPresence { agent_id, presence });
    }

    pub fn caller_left(&self, reason: &'static str) {
        if let Some(addr) = self.local() {
            addr.do_send(CallerLeft { reason });
        }
    }

    pub fn caller_mark(&self, name: String) {
        if let Some(addr) = self.local() {
            addr.do_send(CallerMark { name });
        }
    }

    pub fn caller_dtmf(&self, digit: String) {
        if let Some(addr) = self.local() {
            addr.do_send(CallerDtmf { digit });
        }
    }

    pub fn twilio_status(&self, status: String, detail: serde_json::Value) {
        if let Some(addr) = self.local() {
            addr.do_send(TwilioStatus { status, detail });
        }
    }

    /// Ends the call as `interrupted`; resolves once the call has handled it.
    pub async fn interrupt(&self, reason: &'static str) {
        if let Some(addr) = self.local() {
            let _ = addr.send(Interrupt { reason }).await;
        }
    }

    /// News from the call's assistant.
    pub fn assistant_update(&self, update: AssistantUpdate) {
        if let Some(addr) = self.local() {
            addr.do_send(update);
        }
    }

    pub fn is_alive(&self) -> bool {
        match &self.target {
            Target::Local(addr) => addr.connected(),
            Target::Remote(remote) => remote.is_alive(),
        }
    }
}
