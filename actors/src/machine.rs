//! The call state machine: pure, synchronous, no I/O. The [`CallActor`](crate::call)
//! feeds it what happened and carries out what it answers.
//!
//! ```text
//!  AwaitingMedia ──ring(seats)──▶ Ringing ──claim──▶ Connected ──hangup──▶ Ended
//!        │                         │  ▲                 │
//!        │ ring(∅)        decline  │  └─ agent dropped ─┘
//!        │ / voicemail route  all / timeout
//!        ▼                         ▼
//!     Voicemail ◀──────────────────┘ ──caller leaves / limit──▶ Ended
//! ```
//!
//! Every phase may go to Ended when the caller leaves.

use serde::{Deserialize, Serialize};

use crate::ids::AgentId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The webhook was answered; Twilio's media stream has not started yet.
    AwaitingMedia,
    Ringing,
    Connected,
    Voicemail,
    Ended,
}

impl Phase {
    /// The `status` column and API field.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::AwaitingMedia => "starting",
            Phase::Ringing => "ringing",
            Phase::Connected => "connected",
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
}

impl CancelReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CancelReason::AnsweredElsewhere => "answered_elsewhere",
            CancelReason::CallerHangup => "caller_hangup",
            CancelReason::Timeout => "timeout",
            CancelReason::Declined => "declined",
            CancelReason::Busy => "busy",
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

/// The answer to an agent's `answer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimDecision {
    /// This agent has the call; ring the others off.
    Won { cancel: Vec<AgentId> },
    /// Someone else was first, or the call is no longer ringing.
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
}

/// What a departing seat means for the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeatLeft {
    Ignored,
    Ring(RingUpdate),
    /// The connected agent vanished: the caller is kept and must be offered again.
    AgentDropped,
}

/// The end of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    pub outcome: Outcome,
    /// Seats still ringing, to be cancelled.
    pub cancel: Vec<AgentId>,
    /// The connected agent, to be told the call ended.
    pub agent: Option<AgentId>,
}

/// Why a transition was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{event} is not possible while the call is {phase:?}")]
pub struct InvalidTransition {
    pub phase: Phase,
    pub event: &'static str,
}

#[derive(Debug, Clone)]
pub struct CallMachine {
    phase: Phase,
    /// Seats rung in the current round and still ringing.
    ringing: Vec<AgentId>,
    /// Seats that declined this call; not rung again for it.
    declined: Vec<AgentId>,
    /// The agent who has (or last had) the call.
    agent: Option<AgentId>,
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

    /// Starts (or restarts, after a dropped agent) a ring round. Seats that declined
    /// this call are left out; with nobody left the call goes to voicemail.
    pub fn ring(&mut self, seats: Vec<AgentId>) -> Result<RingUpdate, InvalidTransition> {
        match self.phase {
            Phase::AwaitingMedia | Phase::Ringing => {}
            Phase::Connected if self.agent.is_none() => {}
            phase => {
                return Err(InvalidTransition {
                    phase,
                    event: "ring",
                })
            }
        }
        let mut seats = seats;
        seats.retain(|seat| !self.declined.contains(seat));
        seats.sort();
        seats.dedup();
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

    /// Goes straight to voicemail (a voicemail route).
    pub fn voicemail(&mut self) -> Result<(), InvalidTransition> {
        match self.phase {
            Phase::AwaitingMedia | Phase::Ringing => {
                self.ringing.clear();
                self.phase = Phase::Voicemail;
                Ok(())
            }
            phase => Err(InvalidTransition {
                phase,
                event: "voicemail",
            }),
        }
    }

    /// The single-winner rule: the first claim of a rung seat while ringing wins;
    /// every other claim, then or later, loses.
    pub fn claim(&mut self, seat: &AgentId) -> ClaimDecision {
        if self.phase != Phase::Ringing || !self.ringing.contains(seat) {
            return ClaimDecision::Lost;
        }
        let cancel = std::mem::take(&mut self.ringing)
            .into_iter()
            .filter(|s| s != seat)
            .collect();
        self.phase = Phase::Connected;
        self.agent = Some(seat.clone());
        self.answered = true;
        ClaimDecision::Won { cancel }
    }

    pub fn decline(&mut self, seat: &AgentId) -> RingUpdate {
        if self.phase != Phase::Ringing || !self.ringing.contains(seat) {
            return RingUpdate::Ignored;
        }
        self.ringing.retain(|s| s != seat);
        self.declined.push(seat.clone());
        self.after_ring_shrank(VoicemailReason::AllDeclined)
    }

    /// A seat disconnected, or became busy with another call.
    pub fn seat_left(&mut self, seat: &AgentId) -> SeatLeft {
        match self.phase {
            Phase::Ringing if self.ringing.contains(seat) => {
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

    fn after_ring_shrank(&mut self, reason: VoicemailReason) -> RingUpdate {
        if self.ringing.is_empty() {
            self.phase = Phase::Voicemail;
            RingUpdate::ToVoicemail(reason)
        } else {
            RingUpdate::StillRinging
        }
    }

    /// The ring timeout fired: the seats still ringing are cancelled, the caller goes
    /// to voicemail. `None` if the call is no longer ringing.
    pub fn ring_timeout(&mut self) -> Option<Vec<AgentId>> {
        if self.phase != Phase::Ringing {
            return None;
        }
        self.phase = Phase::Voicemail;
        Some(std::mem::take(&mut self.ringing))
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
            _ if self.answered => Outcome::Answered,
            _ => Outcome::Abandoned,
        };
        Some(self.end(outcome))
    }

    /// The connected agent hung up.
    pub fn agent_hangup(&mut self, seat: &AgentId) -> Result<Ending, InvalidTransition> {
        if self.phase != Phase::Connected || self.agent.as_ref() != Some(seat) {
            return Err(InvalidTransition {
                phase: self.phase,
                event: "agent hangup",
            });
        }
        Ok(self.end(Outcome::Answered))
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
        let agent = if self.phase == Phase::Connected {
            self.agent.clone()
        } else {
            None
        };
        self.phase = Phase::Ended;
        self.outcome = Some(outcome);
        Ending {
            outcome,
            cancel: std::mem::take(&mut self.ringing),
            agent,
        }
    }
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
            m.claim(&s[1]),
            ClaimDecision::Won {
                cancel: vec![s[0].clone(), s[2].clone()]
            }
        );
        assert_eq!(m.phase(), Phase::Connected);
        assert_eq!(m.claim(&s[0]), ClaimDecision::Lost);
        assert_eq!(m.claim(&s[1]), ClaimDecision::Lost);
        assert_eq!(m.agent(), Some(&s[1]));
    }

    #[test]
    fn a_seat_that_was_not_rung_cannot_claim() {
        let (mut m, _) = ringing(2);
        let stranger = AgentId::parse("stranger").expect("valid id");
        assert_eq!(m.claim(&stranger), ClaimDecision::Lost);
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
        assert_eq!(m.claim(&s[1]), ClaimDecision::Lost);
    }

    #[test]
    fn the_ring_timeout_cancels_the_remaining_seats() {
        let (mut m, s) = ringing(2);
        m.decline(&s[0]);
        assert_eq!(m.ring_timeout(), Some(vec![s[1].clone()]));
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
        m.claim(&s[0]);
        assert!(m.agent_hangup(&seats(2)[1]).is_err());
        let end = m.agent_hangup(&s[0]).expect("connected agent may hang up");
        assert_eq!(end.outcome, Outcome::Answered);
        assert_eq!(end.agent, Some(s[0].clone()));

        let (mut m, s) = ringing(1);
        m.claim(&s[0]);
        let end = m.caller_left().expect("ends");
        assert_eq!(
            (end.outcome, end.agent),
            (Outcome::Answered, Some(s[0].clone()))
        );
    }

    #[test]
    fn a_dropped_agent_keeps_the_caller_and_the_call_rings_again() {
        let (mut m, s) = ringing(2);
        m.claim(&s[0]);
        assert_eq!(m.seat_left(&s[0]), SeatLeft::AgentDropped);
        assert_eq!(m.ring(vec![s[1].clone()]), Ok(RingUpdate::StillRinging));
        let end = m.caller_left().expect("ends");
        assert_eq!(end.outcome, Outcome::Answered, "it was answered once");
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
        assert_eq!(m.claim(&s[0]), ClaimDecision::Lost);
        assert_eq!(m.fail(), None);
        assert!(m.voicemail().is_err());
    }
}
