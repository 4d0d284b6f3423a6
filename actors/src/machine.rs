//! The call state machine: pure, synchronous, no I/O. The [`CallActor`](crate::call)
//! feeds it what happened and carries out what it answers.
//!
//! ```text
//!  AwaitingMedia ──ring(seats)──▶ Ringing ──claim(answer)──▶ Connected ──hangup──▶ Ended
//!        │                         │  ▲ blind transfer ◀──────┤ ▲  │
//!        │ ring(∅)        decline  │  │                park / │ │  │ warm transfer
//!        │ / voicemail route  all / timeout     agent drop  ▼ │  ▼
//!        ▼                         ▼             Parked ─claim(unpark│answer)
//!     Voicemail ◀──────────────────┴──── ladder end ─┘       Consulting ─complete/cancel─▶ Connected
//!        └──caller leaves / limit──▶ Ended
//! ```
//!
//! Every phase may go to Ended when the caller leaves. `claim` is the single
//! place of the single-winner rule: answering, unparking and accepting a transfer
//! all pass through it.

use serde::{Deserialize, Serialize};

use crate::ids::AgentId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The webhook was answered; Twilio's media stream has not started yet.
    AwaitingMedia,
    /// An AI assistant talks with the caller.
    Assistant,
    Ringing,
    Connected,
    /// On hold in the parking lot (possibly offered to seats meanwhile).
    Parked,
    /// Warm transfer: the caller holds while two agents talk.
    Consulting,
    Voicemail,
    Ended,
}

impl Phase {
    /// The `status` column and API field.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::AwaitingMedia => "starting",
            Phase::Assistant => "assistant",
            Phase::Ringing => "ringing",
            Phase::Connected => "connected",
            Phase::Parked => "parked",
            Phase::Consulting => "consulting",
            Phase::Voicemail => "voicemail",
            Phase::Ended => "ended",
        }
    }
}

/// How a call ended; exactly one per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// An agent took the call.
    Answered,
    /// The caller left a message.
    Voicemail,
    /// The caller hung up before reaching anyone (or before leaving any audio).
    Abandoned,
    /// The engine that held the call died.
    Interrupted,
    /// The call could not be handled (unknown number, no media stream, Twilio failure).
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Voicemail => "voicemail",
            Outcome::Abandoned => "abandoned",
            Outcome::Interrupted => "interrupted",
            Outcome::Failed => "failed",
        }
    }
}

/// Why a ringing seat stops ringing; sent to the softphone as `ring_cancel.reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    AnsweredElsewhere,
    CallerHangup,
    Timeout,
    Declined,
    /// The seat took another call while this one was ringing it.
    Busy,
    /// The call was parked while it rang.
    Parked,
}

impl CancelReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CancelReason::AnsweredElsewhere => "answered_elsewhere",
            CancelReason::CallerHangup => "caller_hangup",
            CancelReason::Timeout => "timeout",
            CancelReason::Declined => "declined",
            CancelReason::Busy => "busy",
            CancelReason::Parked => "parked",
        }
    }
}

/// Why a call went to voicemail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoicemailReason {
    /// Nobody of the route was available (or the route is voicemail).
    NoAgents,
    AllDeclined,
    RingTimeout,
}

impl VoicemailReason {
    pub fn as_str(self) -> &'static str {
        match self {
            VoicemailReason::NoAgents => "no_agents",
            VoicemailReason::AllDeclined => "all_declined",
            VoicemailReason::RingTimeout => "ring_timeout",
        }
    }
}

/// How a seat asks for a call. Both go through [`CallMachine::claim`]: the one
/// single-winner rule for answering, unparking and accepting a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimKind {
    /// `answer` to a ring (a new call, a parked call offered again, a transfer).
    Answer,
    /// `unpark`: any seat of the workspace may take a parked call.
    Unpark,
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimDecision {
    /// This agent has the call; ring the others off.
    Won { cancel: Vec<AgentId> },
    /// The consulted agent of a warm transfer answered: the two agents talk, the
    /// caller stays on hold.
    Consulting,
    /// Someone else was first, or the call is no longer claimable this way.
    Lost,
}

/// What a change in the ring set means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingUpdate {
    /// Nothing changed (the seat was not being rung).
    Ignored,
    StillRinging,
    /// The last candidate is gone: play the voicemail prompt.
    ToVoicemail(VoicemailReason),
    /// A parked call's offer ran out: it stays parked.
    StillParked,
    /// A blind transfer's target did not take the call: it is parked, by the
    /// transferring agent, who gets it back if free.
    TransferFailed {
        from: AgentId,
    },
    /// A warm transfer's target did not answer: the caller is back with `from`.
    ConsultFailed {
        from: AgentId,
        target: AgentId,
    },
}

/// What a departing seat means for the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeatLeft {
    Ignored,
    Ring(RingUpdate),
    /// The connected agent vanished: the caller is kept and must be parked.
    AgentDropped,
    /// The transferring agent of a warm transfer left after the target answered:
    /// the caller goes to the target.
    TransferCompleted {
        to: AgentId,
    },
}

/// The end of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    pub outcome: Outcome,
    /// Seats still ringing, to be cancelled.
    pub cancel: Vec<AgentId>,
    /// The connected agent, to be told the call ended.
    pub agent: Option<AgentId>,
    /// The other agent of a warm transfer in progress, told too.
    pub consulted: Option<AgentId>,
}

/// Why a transition was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{event} is not possible while the call is {phase:?}")]
pub struct InvalidTransition {
    pub phase: Phase,
    pub event: &'static str,
}

/// A transfer in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingTransfer {
    pub from: AgentId,
    pub to: AgentId,
    pub warm: bool,
    /// Warm: the target answered and is talking with `from`.
    pub consult_connected: bool,
}

#[derive(Debug, Clone)]
pub struct CallMachine {
    phase: Phase,
    /// Seats rung right now (while ringing, while a parked call is offered, or the
    /// target of a transfer).
    ringing: Vec<AgentId>,
    /// Seats that declined this call's first ring; not rung again for it.
    declined: Vec<AgentId>,
    /// The agent who has (or last had) the call.
    agent: Option<AgentId>,
    /// Who parked the call (an agent; `None` for a supervisor or the engine).
    parked_by: Option<AgentId>,
    transfer: Option<PendingTransfer>,
    /// An agent answered at some point: the call counts as answered even if the
    /// caller later hangs up while it is offered again.
    answered: bool,
    /// Bytes of voicemail recorded so far.
    recorded: usize,
    outcome: Option<Outcome>,
}

impl Default for CallMachine {
    fn default() -> Self {
        Self::new()
    }
}

impl CallMachine {
    pub fn new() -> Self {
        Self {
            phase: Phase::AwaitingMedia,
            ringing: Vec::new(),
            declined: Vec::new(),
            agent: None,
            parked_by: None,
            transfer: None,
            answered: false,
            recorded: 0,
            outcome: None,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn agent(&self) -> Option<&AgentId> {
        self.agent.as_ref()
    }

    pub fn parked_by(&self) -> Option<&AgentId> {
        self.parked_by.as_ref()
    }

    pub fn pending_transfer(&self) -> Option<&PendingTransfer> {
        self.transfer.as_ref()
    }

    pub fn ringing(&self) -> &[AgentId] {
        &self.ringing
    }

    pub fn declined(&self) -> &[AgentId] {
        &self.declined
    }

    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome
    }

    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    fn refuse(&self, event: &'static str) -> InvalidTransition {
        InvalidTransition {
            phase: self.phase,
            event,
        }
    }

    /// Starts a ring round: the first one, one after a dropped agent, or an offer
    /// of a parked call (which stays parked while it rings). Seats that declined
    /// this call are left out of a first ring; with nobody left a new call goes to
    /// voicemail and a parked call stays parked.
    pub fn ring(&mut self, seats: Vec<AgentId>) -> Result<RingUpdate, InvalidTransition> {
        let mut seats = seats;
        seats.sort();
        seats.dedup();
        match self.phase {
            Phase::Parked => {
                self.ringing = seats;
                return Ok(if self.ringing.is_empty() {
                    RingUpdate::StillParked
                } else {
                    RingUpdate::StillRinging
                });
            }
            Phase::AwaitingMedia | Phase::Assistant | Phase::Ringing => {}
            _ => return Err(self.refuse("ring")),
        }
        seats.retain(|seat| !self.declined.contains(seat));
        if seats.is_empty() {
            self.ringing.clear();
            let reason = if self.declined.is_empty() {
                VoicemailReason::NoAgents
            } else {
                VoicemailReason::AllDeclined
            };
            self.phase = Phase::Voicemail;
            return Ok(RingUpdate::ToVoicemail(reason));
        }
        self.ringing = seats;
        self.phase = Phase::Ringing;
        Ok(RingUpdate::StillRinging)
    }

    /// A call adopted from another node (issue 16, failover) got its new media
    /// stream: it rings nobody yet and is about to be parked. `answered` carries
    /// over whether an agent had answered it on the node it came from.
    pub fn adopted(&mut self, answered: bool) -> Result<(), InvalidTransition> {
        if self.phase != Phase::AwaitingMedia {
            return Err(self.refuse("adopted"));
        }
        self.phase = Phase::Ringing;
        self.ringing.clear();
        self.answered |= answered;
        Ok(())
    }

    /// Goes to voicemail: a voicemail route, or the end of a parked call's ladder.
    pub fn voicemail(&mut self) -> Result<Vec<AgentId>, InvalidTransition> {
        match self.phase {
            Phase::AwaitingMedia | Phase::Assistant | Phase::Ringing | Phase::Parked => {
                self.phase = Phase::Voicemail;
                self.parked_by = None;
                Ok(std::mem::take(&mut self.ringing))
            }
            _ => Err(self.refuse("voicemail")),
        }
    }

    /// The media stream started on an AI-routed number: the assistant answers.
    pub fn assistant(&mut self) -> Result<(), InvalidTransition> {
        match self.phase {
            Phase::AwaitingMedia => {
                self.phase = Phase::Assistant;
                Ok(())
            }
            _ => Err(self.refuse("assistant")),
        }
    }

    /// The single-winner rule: of all claims on a call, the first valid one wins;
    /// every other claim, then or later, loses.
    pub fn claim(&mut self, seat: &AgentId, kind: ClaimKind) -> ClaimDecision {
        let rung = self.ringing.contains(seat);
        match (self.phase, kind) {
            (Phase::Consulting, ClaimKind::Answer) => {
                let Some(transfer) = &mut self.transfer else {
                    return ClaimDecision::Lost;
                };
                if transfer.to != *seat || transfer.consult_connected {
                    return ClaimDecision::Lost;
                }
                transfer.consult_connected = true;
                self.ringing.clear();
                ClaimDecision::Consulting
            }
            (Phase::Ringing | Phase::Parked, ClaimKind::Answer) if rung => self.win(seat),
            (Phase::Parked, ClaimKind::Unpark) => self.win(seat),
            _ => ClaimDecision::Lost,
        }
    }

    fn win(&mut self, seat: &AgentId) -> ClaimDecision {
        let cancel = std::mem::take(&mut self.ringing)
            .into_iter()
            .filter(|s| s != seat)
            .collect();
        self.phase = Phase::Connected;
        self.agent = Some(seat.clone());
        self.parked_by = None;
        self.transfer = None;
        self.answered = true;
        ClaimDecision::Won { cancel }
    }

    /// Puts the call on hold in the parking lot. `by` is the parking agent (`None`
    /// for a supervisor); the connected agent, if any, is detached and returned.
    /// A ringing call may be parked too (its rings are cancelled).
    pub fn park(&mut self, by: Option<&AgentId>) -> Result<Parking, InvalidTransition> {
        match self.phase {
            Phase::Connected | Phase::Ringing => {}
            _ => return Err(self.refuse("park")),
        }
        let detached = self.agent.take().filter(|_| self.phase == Phase::Connected);
        self.parked_by = by.cloned().or_else(|| detached.clone());
        self.phase = Phase::Parked;
        self.transfer = None;
        Ok(Parking {
            detached,
            cancel: std::mem::take(&mut self.ringing),
        })
    }

    /// Starts a transfer from the connected agent `from` to `to`. Blind: `from` is
    /// released and `to` rings. Warm: the caller is held while `to` rings and then
    /// talks with `from`.
    pub fn start_transfer(
        &mut self,
        from: &AgentId,
        to: &AgentId,
        warm: bool,
    ) -> Result<(), InvalidTransition> {
        if self.phase != Phase::Connected || self.agent.as_ref() != Some(from) || from == to {
            return Err(self.refuse("transfer"));
        }
        self.transfer = Some(PendingTransfer {
            from: from.clone(),
            to: to.clone(),
            warm,
            consult_connected: false,
        });
        self.ringing = vec![to.clone()];
        if warm {
            self.phase = Phase::Consulting;
        } else {
            self.phase = Phase::Ringing;
            self.agent = None;
        }
        Ok(())
    }

    /// Warm transfer, done: the caller goes to the consulted agent.
    pub fn complete_transfer(
        &mut self,
        by: &AgentId,
    ) -> Result<PendingTransfer, InvalidTransition> {
        match &self.transfer {
            Some(t) if self.phase == Phase::Consulting && t.consult_connected && &t.from == by => {}
            _ => return Err(self.refuse("transfer_complete")),
        }
        let transfer = self
            .transfer
            .take()
            .ok_or_else(|| self.refuse("transfer_complete"))?;
        self.phase = Phase::Connected;
        self.agent = Some(transfer.to.clone());
        Ok(transfer)
    }

    /// Warm transfer, called off: the caller is back with the first agent.
    pub fn cancel_transfer(&mut self, by: &AgentId) -> Result<PendingTransfer, InvalidTransition> {
        match &self.transfer {
            Some(t) if self.phase == Phase::Consulting && &t.from == by => {}
            _ => return Err(self.refuse("transfer_cancel")),
        }
        let transfer = self
            .transfer
            .take()
            .ok_or_else(|| self.refuse("transfer_cancel"))?;
        self.ringing.clear();
        self.phase = Phase::Connected;
        Ok(transfer)
    }

    pub fn decline(&mut self, seat: &AgentId) -> RingUpdate {
        if !self.ringing.contains(seat) {
            return RingUpdate::Ignored;
        }
        self.ringing.retain(|s| s != seat);
        if self.phase == Phase::Ringing && self.transfer.is_none() {
            self.declined.push(seat.clone());
        }
        self.after_ring_shrank(VoicemailReason::AllDeclined)
    }

    /// A seat disconnected, or became busy with another call.
    pub fn seat_left(&mut self, seat: &AgentId) -> SeatLeft {
        match self.phase {
            Phase::Consulting => {
                let Some(transfer) = self.transfer.clone() else {
                    return SeatLeft::Ignored;
                };
                if &transfer.from == seat && transfer.consult_connected {
                    self.transfer = None;
                    self.phase = Phase::Connected;
                    self.agent = Some(transfer.to.clone());
                    SeatLeft::TransferCompleted { to: transfer.to }
                } else if &transfer.from == seat {
                    // The consult has not started: carry on as a blind transfer.
                    self.phase = Phase::Ringing;
                    self.agent = None;
                    if let Some(t) = &mut self.transfer {
                        t.warm = false;
                    }
                    SeatLeft::Ring(RingUpdate::StillRinging)
                } else if &transfer.to == seat {
                    self.ringing.clear();
                    SeatLeft::Ring(self.consult_failed())
                } else {
                    SeatLeft::Ignored
                }
            }
            Phase::Ringing | Phase::Parked if self.ringing.contains(seat) => {
                self.ringing.retain(|s| s != seat);
                let reason = if self.declined.is_empty() {
                    VoicemailReason::NoAgents
                } else {
                    VoicemailReason::AllDeclined
                };
                SeatLeft::Ring(self.after_ring_shrank(reason))
            }
            Phase::Connected if self.agent.as_ref() == Some(seat) => {
                self.agent = None;
                SeatLeft::AgentDropped
            }
            _ => SeatLeft::Ignored,
        }
    }

    fn consult_failed(&mut self) -> RingUpdate {
        match self.transfer.take() {
            Some(t) => {
                self.phase = Phase::Connected;
                RingUpdate::ConsultFailed {
                    from: t.from,
                    target: t.to,
                }
            }
            None => RingUpdate::Ignored,
        }
    }

    fn after_ring_shrank(&mut self, reason: VoicemailReason) -> RingUpdate {
        if !self.ringing.is_empty() {
            return RingUpdate::StillRinging;
        }
        match self.phase {
            Phase::Parked => RingUpdate::StillParked,
            Phase::Consulting => self.consult_failed(),
            // The caller stays held (still `Ringing`, with nobody rung) until the
            // call parks it for the agent who transferred it.
            Phase::Ringing => match self.transfer.take() {
                Some(t) => RingUpdate::TransferFailed { from: t.from },
                None => {
                    self.phase = Phase::Voicemail;
                    RingUpdate::ToVoicemail(reason)
                }
            },
            _ => RingUpdate::Ignored,
        }
    }

    /// The ring timeout fired: the seats still ringing are cancelled; what happens
    /// next depends on why they were rung. `None` if nothing was ringing.
    pub fn ring_timeout(&mut self) -> Option<(Vec<AgentId>, RingUpdate)> {
        if self.ringing.is_empty()
            || !matches!(
                self.phase,
                Phase::Ringing | Phase::Parked | Phase::Consulting
            )
        {
            return None;
        }
        let cancel = std::mem::take(&mut self.ringing);
        let update = self.after_ring_shrank(VoicemailReason::RingTimeout);
        Some((cancel, update))
    }

    pub fn recorded(&mut self, bytes: usize) {
        self.recorded += bytes;
    }

    pub fn recorded_bytes(&self) -> usize {
        self.recorded
    }

    /// The caller hung up (or Twilio said the call is over).
    pub fn caller_left(&mut self) -> Option<Ending> {
        let outcome = match self.phase {
            Phase::Ended => return None,
            Phase::Voicemail if self.recorded > 0 => Outcome::Voicemail,
            Phase::Assistant => Outcome::Answered,
            _ if self.answered => Outcome::Answered,
            _ => Outcome::Abandoned,
        };
        Some(self.end(outcome))
    }

    /// The connected agent hung up (during a warm transfer: the consulting one).
    pub fn agent_hangup(&mut self, seat: &AgentId) -> Result<Ending, InvalidTransition> {
        let on_call = match self.phase {
            Phase::Connected | Phase::Consulting => self.agent.as_ref() == Some(seat),
            _ => false,
        };
        if !on_call {
            return Err(self.refuse("agent hangup"));
        }
        Ok(self.end(Outcome::Answered))
    }

    /// A supervisor, or the assistant with `end_call`, hung the call up.
    pub fn hang_up(&mut self) -> Option<Ending> {
        let outcome = if self.answered || self.phase == Phase::Assistant {
            Outcome::Answered
        } else {
            Outcome::Abandoned
        };
        (self.phase != Phase::Ended).then(|| self.end(outcome))
    }

    /// The voicemail recording reached its limit.
    pub fn voicemail_full(&mut self) -> Option<Ending> {
        (self.phase == Phase::Voicemail).then(|| self.end(Outcome::Voicemail))
    }

    /// The engine gives up on the call (no media stream, Twilio says it failed).
    pub fn fail(&mut self) -> Option<Ending> {
        if self.phase == Phase::Ended {
            return None;
        }
        let outcome = if self.answered {
            Outcome::Answered
        } else {
            Outcome::Failed
        };
        Some(self.end(outcome))
    }

    /// The engine is shutting down under the call.
    pub fn interrupt(&mut self) -> Option<Ending> {
        (self.phase != Phase::Ended).then(|| self.end(Outcome::Interrupted))
    }

    fn end(&mut self, outcome: Outcome) -> Ending {
        let agent = match self.phase {
            Phase::Connected | Phase::Consulting => self.agent.clone(),
            _ => None,
        };
        let consulted = self
            .transfer
            .take()
            .filter(|t| t.warm && t.consult_connected)
            .map(|t| t.to);
        self.phase = Phase::Ended;
        self.outcome = Some(outcome);
        Ending {
            outcome,
            cancel: std::mem::take(&mut self.ringing),
            agent,
            consulted,
        }
    }
}

/// What parking did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parking {
    /// The agent who was on the call and no longer is.
    pub detached: Option<AgentId>,
    /// Seats that were ringing for it.
    pub cancel: Vec<AgentId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seats(n: usize) -> Vec<AgentId> {
        (0..n)
            .map(|i| AgentId::parse(&format!("a{i}")).expect("valid id"))
            .collect()
    }

    fn ringing(n: usize) -> (CallMachine, Vec<AgentId>) {
        let mut m = CallMachine::new();
        let s = seats(n);
        assert_eq!(m.ring(s.clone()), Ok(RingUpdate::StillRinging));
        (m, s)
    }

    #[test]
    fn the_first_claim_wins_and_cancels_every_other_seat() {
        let (mut m, s) = ringing(3);
        assert_eq!(
            m.claim(&s[1], ClaimKind::Answer),
            ClaimDecision::Won {
                cancel: vec![s[0].clone(), s[2].clone()]
            }
        );
        assert_eq!(m.phase(), Phase::Connected);
        assert_eq!(m.claim(&s[0], ClaimKind::Answer), ClaimDecision::Lost);
        assert_eq!(m.claim(&s[1], ClaimKind::Answer), ClaimDecision::Lost);
        assert_eq!(m.agent(), Some(&s[1]));
    }

    #[test]
    fn a_seat_that_was_not_rung_cannot_claim() {
        let (mut m, _) = ringing(2);
        let stranger = AgentId::parse("stranger").expect("valid id");
        assert_eq!(m.claim(&stranger, ClaimKind::Answer), ClaimDecision::Lost);
        assert_eq!(m.phase(), Phase::Ringing);
    }

    #[test]
    fn ringing_nobody_goes_to_voicemail() {
        let mut m = CallMachine::new();
        assert_eq!(
            m.ring(vec![]),
            Ok(RingUpdate::ToVoicemail(VoicemailReason::NoAgents))
        );
        assert_eq!(m.phase(), Phase::Voicemail);
    }

    #[test]
    fn when_every_seat_declines_the_call_goes_to_voicemail() {
        let (mut m, s) = ringing(2);
        assert_eq!(m.decline(&s[0]), RingUpdate::StillRinging);
        assert_eq!(m.decline(&s[0]), RingUpdate::Ignored);
        assert_eq!(
            m.decline(&s[1]),
            RingUpdate::ToVoicemail(VoicemailReason::AllDeclined)
        );
        assert_eq!(m.claim(&s[1], ClaimKind::Answer), ClaimDecision::Lost);
    }

    #[test]
    fn the_ring_timeout_cancels_the_remaining_seats() {
        let (mut m, s) = ringing(2);
        m.decline(&s[0]);
        assert_eq!(
            m.ring_timeout(),
            Some((
                vec![s[1].clone()],
                RingUpdate::ToVoicemail(VoicemailReason::RingTimeout)
            ))
        );
        assert_eq!(m.phase(), Phase::Voicemail);
        assert_eq!(m.ring_timeout(), None);
    }

    #[test]
    fn a_caller_hanging_up_while_ringing_abandons_and_cancels_all() {
        let (mut m, s) = ringing(3);
        let end = m.caller_left().expect("ends");
        assert_eq!(end.outcome, Outcome::Abandoned);
        assert_eq!(end.cancel, s);
        assert_eq!(end.agent, None);
        assert_eq!(m.caller_left(), None, "a call ends exactly once");
    }

    #[test]
    fn either_side_hanging_up_a_connected_call_is_answered() {
        let (mut m, s) = ringing(1);
        m.claim(&s[0], ClaimKind::Answer);
        assert!(m.agent_hangup(&seats(2)[1]).is_err());
        let end = m.agent_hangup(&s[0]).expect("connected agent may hang up");
        assert_eq!(end.outcome, Outcome::Answered);
        assert_eq!(end.agent, Some(s[0].clone()));

        let (mut m, s) = ringing(1);
        m.claim(&s[0], ClaimKind::Answer);
        let end = m.caller_left().expect("ends");
        assert_eq!(
            (end.outcome, end.agent),
            (Outcome::Answered, Some(s[0].clone()))
        );
    }

    #[test]
    fn a_dropped_agent_keeps_the_caller_parked_and_offered_again() {
        let (mut m, s) = ringing(2);
        m.claim(&s[0], ClaimKind::Answer);
        assert_eq!(m.seat_left(&s[0]), SeatLeft::AgentDropped);
        let parking = m.park(Some(&s[0])).expect("parks");
        assert_eq!(parking.detached, None, "already detached");
        assert_eq!(m.parked_by(), Some(&s[0]));
        assert_eq!(m.ring(vec![s[1].clone()]), Ok(RingUpdate::StillRinging));
        assert_eq!(m.phase(), Phase::Parked, "offered while parked");
        let end = m.caller_left().expect("ends");
        assert_eq!(end.outcome, Outcome::Answered, "it was answered once");
    }

    #[test]
    fn a_parked_call_goes_to_exactly_one_unparking_seat() {
        let (mut m, s) = ringing(3);
        m.claim(&s[0], ClaimKind::Answer);
        let parking = m.park(Some(&s[0])).expect("parks");
        assert_eq!(parking.detached, Some(s[0].clone()));
        assert_eq!(m.phase(), Phase::Parked);
        assert!(matches!(
            m.claim(&s[2], ClaimKind::Unpark),
            ClaimDecision::Won { .. }
        ));
        assert_eq!(m.claim(&s[1], ClaimKind::Unpark), ClaimDecision::Lost);
        assert_eq!(m.agent(), Some(&s[2]));
        // The chain goes on: park again, another seat retrieves it.
        m.park(Some(&s[2])).expect("parks again");
        assert!(matches!(
            m.claim(&s[1], ClaimKind::Unpark),
            ClaimDecision::Won { .. }
        ));
    }

    #[test]
    fn unpark_is_not_an_answer_and_answer_is_not_an_unpark() {
        let (mut m, s) = ringing(2);
        assert_eq!(m.claim(&s[0], ClaimKind::Unpark), ClaimDecision::Lost);
        m.claim(&s[0], ClaimKind::Answer);
        m.park(None).expect("a supervisor parks");
        assert_eq!(
            m.claim(&s[1], ClaimKind::Answer),
            ClaimDecision::Lost,
            "not rung"
        );
        assert_eq!(m.parked_by(), Some(&s[0]), "parked away from its agent");
    }

    #[test]
    fn an_unanswered_offer_leaves_the_call_parked() {
        let (mut m, s) = ringing(2);
        m.claim(&s[0], ClaimKind::Answer);
        m.park(Some(&s[0])).expect("parks");
        m.ring(vec![s[1].clone()]).expect("offers");
        assert_eq!(
            m.ring_timeout(),
            Some((vec![s[1].clone()], RingUpdate::StillParked))
        );
        assert_eq!(m.phase(), Phase::Parked);
        assert_eq!(m.voicemail(), Ok(vec![]), "the ladder ends in voicemail");
    }

    #[test]
    fn a_blind_transfer_rings_the_target_and_comes_back_parked_if_declined() {
        let (mut m, s) = ringing(1);
        let target = AgentId::parse("target").expect("valid");
        m.claim(&s[0], ClaimKind::Answer);
        assert!(
            m.start_transfer(&s[0], &s[0], false).is_err(),
            "not to oneself"
        );
        m.start_transfer(&s[0], &target, false).expect("transfers");
        assert_eq!((m.phase(), m.agent()), (Phase::Ringing, None));
        assert_eq!(
            m.decline(&target),
            RingUpdate::TransferFailed { from: s[0].clone() }
        );
        m.park(Some(&s[0])).expect("parked for its agent");
        assert_eq!(m.phase(), Phase::Parked);
        assert!(matches!(
            m.claim(&s[0], ClaimKind::Unpark),
            ClaimDecision::Won { .. }
        ));
    }

    #[test]
    fn a_blind_transfer_answered_connects_the_target() {
        let (mut m, s) = ringing(1);
        let target = AgentId::parse("target").expect("valid");
        m.claim(&s[0], ClaimKind::Answer);
        m.start_transfer(&s[0], &target, false).expect("transfers");
        assert!(matches!(
            m.claim(&target, ClaimKind::Answer),
            ClaimDecision::Won { .. }
        ));
        assert_eq!(m.agent(), Some(&target));
    }

    #[test]
    fn a_warm_transfer_consults_then_completes_or_cancels() {
        let (mut m, s) = ringing(1);
        let target = AgentId::parse("target").expect("valid");
        m.claim(&s[0], ClaimKind::Answer);
        m.start_transfer(&s[0], &target, true).expect("consults");
        assert_eq!(m.phase(), Phase::Consulting);
        assert!(
            m.complete_transfer(&s[0]).is_err(),
            "not before the target answers"
        );
        assert_eq!(
            m.claim(&target, ClaimKind::Answer),
            ClaimDecision::Consulting
        );
        assert_eq!(m.claim(&target, ClaimKind::Answer), ClaimDecision::Lost);
        let done = m.complete_transfer(&s[0]).expect("completes");
        assert_eq!(done.to, target);
        assert_eq!((m.phase(), m.agent()), (Phase::Connected, Some(&target)));

        let (mut m, s) = ringing(1);
        m.claim(&s[0], ClaimKind::Answer);
        m.start_transfer(&s[0], &target, true).expect("consults");
        m.claim(&target, ClaimKind::Answer);
        m.cancel_transfer(&s[0]).expect("cancels");
        assert_eq!((m.phase(), m.agent()), (Phase::Connected, Some(&s[0])));
    }

    #[test]
    fn a_consulted_agent_who_does_not_answer_returns_the_caller() {
        let (mut m, s) = ringing(1);
        let target = AgentId::parse("target").expect("valid");
        m.claim(&s[0], ClaimKind::Answer);
        m.start_transfer(&s[0], &target, true).expect("consults");
        let (cancel, update) = m.ring_timeout().expect("was ringing");
        assert_eq!(cancel, vec![target.clone()]);
        assert_eq!(
            update,
            RingUpdate::ConsultFailed {
                from: s[0].clone(),
                target
            }
        );
        assert_eq!((m.phase(), m.agent()), (Phase::Connected, Some(&s[0])));
    }

    #[test]
    fn a_ringing_seat_leaving_shrinks_the_ring_set() {
        let (mut m, s) = ringing(2);
        assert_eq!(m.seat_left(&s[0]), SeatLeft::Ring(RingUpdate::StillRinging));
        assert_eq!(
            m.seat_left(&s[1]),
            SeatLeft::Ring(RingUpdate::ToVoicemail(VoicemailReason::NoAgents))
        );
    }

    #[test]
    fn voicemail_outcome_depends_on_recorded_audio() {
        let mut m = CallMachine::new();
        m.voicemail().expect("voicemail from start");
        assert_eq!(m.caller_left().map(|e| e.outcome), Some(Outcome::Abandoned));

        let mut m = CallMachine::new();
        m.voicemail().expect("voicemail from start");
        m.recorded(160);
        assert_eq!(m.caller_left().map(|e| e.outcome), Some(Outcome::Voicemail));
    }

    #[test]
    fn an_interrupted_call_ends_once_as_interrupted() {
        let (mut m, s) = ringing(2);
        let end = m.interrupt().expect("ends");
        assert_eq!((end.outcome, end.cancel), (Outcome::Interrupted, s));
        assert_eq!(m.interrupt(), None);
    }

    #[test]
    fn ended_calls_refuse_everything() {
        let (mut m, s) = ringing(1);
        m.caller_left();
        assert!(m.ring(s.clone()).is_err());
        assert_eq!(m.claim(&s[0], ClaimKind::Answer), ClaimDecision::Lost);
        assert_eq!(m.fail(), None);
        assert!(m.voicemail().is_err());
    }

    #[test]
    fn an_assistant_call_that_the_caller_ends_was_answered() {
        let mut m = CallMachine::new();
        assert_eq!(m.assistant(), Ok(()));
        assert_eq!(m.phase(), Phase::Assistant);
        assert!(m.assistant().is_err());
        assert_eq!(m.caller_left().map(|e| e.outcome), Some(Outcome::Answered));
    }

    #[test]
    fn an_assistant_hands_over_to_the_same_ring_as_a_new_call() {
        let mut m = CallMachine::new();
        m.assistant().expect("media started");
        let s = seats(2);
        assert_eq!(m.ring(s.clone()), Ok(RingUpdate::StillRinging));
        assert_eq!(
            m.claim(&s[0], ClaimKind::Answer),
            ClaimDecision::Won {
                cancel: vec![s[1].clone()]
            }
        );
        let mut nobody = CallMachine::new();
        nobody.assistant().expect("media started");
        assert_eq!(
            nobody.ring(Vec::new()),
            Ok(RingUpdate::ToVoicemail(VoicemailReason::NoAgents))
        );
    }

    #[test]
    fn an_assistant_ending_the_call_counts_as_answered() {
        let mut m = CallMachine::new();
        m.assistant().expect("media started");
        assert_eq!(m.hang_up().map(|e| e.outcome), Some(Outcome::Answered));
        let mut failed = CallMachine::new();
        failed.assistant().expect("media started");
        assert!(failed.voicemail().is_ok());
    }
}
