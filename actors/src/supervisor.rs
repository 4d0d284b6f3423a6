//! SupervisorActor: one supervisor console. Gets a snapshot of the floor, then every
//! change as it happens (from the RingCoordinator), and steers calls: park, unpark
//! to an agent, transfer, hang up, listen in, stop listening.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use crate::call::{CallHandle, ClaimResult};
use crate::coordinator::{
    CoordinatorHandle, FloorCall, FloorCoverage, FloorEvent, FloorFeed, SeatState, Snapshot,
};
use crate::error::EngineError;
use crate::ids::{AgentId, CallId, Workspace};
use crate::machine::ClaimKind;
use crate::outbox::{Outbox, OutboxLimits, CLOSE_GOING_AWAY, CLOSE_NORMAL, CLOSE_POLICY};
use crate::registry::RegistryHandle;
use crate::seat::{Parked, SeatConfig};
use crate::stats::EngineStats;

/// What the console asked for: a text frame, read straight into this type
/// (`{"type":"unpark","call_id":…,"agent_id":…}`; ids are checked by their parsers as
/// they are read, other fields are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SupervisorCommand {
    Park { call_id: CallId },
    Unpark { call_id: CallId, agent_id: AgentId },
    Transfer { call_id: CallId, agent_id: AgentId },
    Hangup { call_id: CallId },
    Listen { call_id: CallId },
    Unlisten { call_id: CallId },
}

impl SupervisorCommand {
    /// Every command's `type`, to tell an unknown type from a bad message of a known one.
    pub const TYPES: &'static [&'static str] =
        &["park", "unpark", "transfer", "hangup", "listen", "unlisten"];

    /// The command's `type`, as its `ack` repeats it.
    pub fn name(&self) -> &'static str {
        match self {
            SupervisorCommand::Park { .. } => "park",
            SupervisorCommand::Unpark { .. } => "unpark",
            SupervisorCommand::Transfer { .. } => "transfer",
            SupervisorCommand::Hangup { .. } => "hangup",
            SupervisorCommand::Listen { .. } => "listen",
            SupervisorCommand::Unlisten { .. } => "unlisten",
        }
    }

    fn call_id(&self) -> &CallId {
        match self {
            SupervisorCommand::Park { call_id }
            | SupervisorCommand::Unpark { call_id, .. }
            | SupervisorCommand::Transfer { call_id, .. }
            | SupervisorCommand::Hangup { call_id }
            | SupervisorCommand::Listen { call_id }
            | SupervisorCommand::Unlisten { call_id } => call_id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SupervisorInput {
    Command(SupervisorCommand),
    /// The console answered a ping: it reads what it is sent.
    Pong,
    Invalid {
        code: &'static str,
        message: String,
    },
    Violation(String),
}

/// What the console is told: serialised as it is, one JSON text frame each (see
/// docs/protocol.md).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SupervisorOutput {
    /// The whole floor, first ([`SupervisorOutput::snapshot`]).
    Snapshot {
        seats: Vec<SeatState>,
        calls: Vec<FloorCall>,
        /// The parked calls among `calls`, by slot.
        parking: Vec<LotEntry>,
        /// `partial` and `partial_reasons`: how much of the cluster this is.
        #[serde(flatten)]
        coverage: FloorCoverage,
    },
    /// How much of the cluster the console sees changed (cluster mode): the
    /// `partial` and `partial_reasons` of a new snapshot.
    Floor(FloorCoverage),
    Ack {
        command: &'static str,
        call_id: CallId,
    },
    Error {
        code: &'static str,
        message: String,
    },
    /// A change of the floor, with its own `type` (`seat`, `call`, `parked`…).
    #[serde(untagged)]
    Event(FloorEvent),
}

/// A parked call as a snapshot's `parking` lists it: the `parked` event's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LotEntry {
    #[serde(flatten)]
    pub parked: Parked,
    pub workspace: Workspace,
}

impl SupervisorOutput {
    /// The `snapshot` message of the floor.
    pub fn snapshot(floor: Snapshot) -> Self {
        let parking = floor
            .parking
            .into_iter()
            .map(|(workspace, parked)| LotEntry { parked, workspace })
            .collect();
        SupervisorOutput::Snapshot {
            seats: floor.seats,
            calls: floor.calls,
            parking,
            coverage: floor.coverage,
        }
    }
}

/// Messages a console may be behind before it is closed (the documented queue).
pub const CONSOLE_QUEUE: usize = 4096;
/// What a console that fell behind is told as it is closed (documented).
pub const FELL_BEHIND: &str = "fell behind the floor's events; reconnect for a fresh snapshot";

/// A console's outbox: [`CONSOLE_QUEUE`] messages, then closed with [`FELL_BEHIND`].
/// Its audio lane (what the console listens to) keeps the engine's bound.
pub fn console_outbox(limits: OutboxLimits, stats: Arc<EngineStats>) -> Outbox<SupervisorOutput> {
    let limits = OutboxLimits {
        control_messages: CONSOLE_QUEUE,
        ..limits
    };
    Outbox::with_overflow_reason(limits, stats, FELL_BEHIND)
}

impl FloorFeed for Outbox<SupervisorOutput> {
    fn snapshot(&self, snapshot: Snapshot) -> bool {
        self.send(SupervisorOutput::snapshot(snapshot))
    }

    /// A seat's or a call's change supersedes its older change still queued, so an
    /// agent toggling presence as fast as it can costs each console one queued
    /// message, not one per toggle.
    fn event(&self, event: FloorEvent) -> bool {
        use SupervisorOutput::Event;
        match &event {
            FloorEvent::Seat(seat) => {
                let agent_id = seat.agent_id.clone();
                self.send_superseding(Event(event), |queued| {
                    matches!(queued, Event(FloorEvent::Seat(old)) if old.agent_id == agent_id)
                })
            }
            FloorEvent::Call(call) => {
                let call_id = call.call_id.clone();
                self.send_superseding(Event(event), |queued| {
                    matches!(queued, Event(FloorEvent::Call(old)) if old.call_id == call_id)
                })
            }
            _ => self.send(Event(event)),
        }
    }

    fn coverage(&self, coverage: &FloorCoverage) -> bool {
        self.send(SupervisorOutput::Floor(coverage.clone()))
    }
}

pub struct SupervisorSetup {
    pub outbox: Outbox<SupervisorOutput>,
    pub coordinator: CoordinatorHandle,
    pub registry: RegistryHandle,
    pub config: SeatConfig,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub struct SupervisorActor {
    id: u64,
    outbox: Outbox<SupervisorOutput>,
    coordinator: CoordinatorHandle,
    registry: RegistryHandle,
    config: SeatConfig,
    /// When the console last answered a ping: only a pong shows it reads.
    last_pong: Instant,
}

impl SupervisorActor {
    pub fn start<S>(setup: SupervisorSetup, input: S) -> Addr<SupervisorActor>
    where
        S: Stream<Item = SupervisorInput> + 'static,
    {
        SupervisorActor::create(|ctx| {
            ctx.add_stream(input);
            SupervisorActor {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                outbox: setup.outbox,
                coordinator: setup.coordinator,
                registry: setup.registry,
                config: setup.config,
                last_pong: Instant::now(),
            }
        })
    }

    fn command(&mut self, command: SupervisorCommand, ctx: &mut Context<Self>) {
        let name = command.name();
        let call_id = command.call_id().clone();
        let (registry, coordinator) = (self.registry.clone(), self.coordinator.clone());
        let outbox = self.outbox.clone();
        let listener = self.id;
        let run = async move {
            // A call of this node, else (cluster mode) one another node owns.
            let call = match registry.lookup(call_id.clone()).await? {
                Some(call) => call,
                None => coordinator
                    .remote_call(call_id.clone())
                    .await?
                    .ok_or_else(|| EngineError::NotFound(format!("no live call {call_id}")))?,
            };
            steer(&coordinator, call, command, &outbox, listener).await
        };
        ctx.spawn(
            run.into_actor(self)
                .map(move |result, act, _ctx| match result {
                    Ok(call_id) => {
                        act.outbox.send(SupervisorOutput::Ack {
                            command: name,
                            call_id,
                        });
                    }
                    Err(err) => {
                        act.outbox.send(SupervisorOutput::Error {
                            code: err.code(),
                            message: err.to_string(),
                        });
                    }
                }),
        );
    }
}

/// Carries out one command on a live call.
async fn steer(
    coordinator: &CoordinatorHandle,
    call: CallHandle,
    command: SupervisorCommand,
    outbox: &Outbox<SupervisorOutput>,
    listener: u64,
) -> Result<CallId, EngineError> {
    let call_id = call.id().clone();
    match command {
        SupervisorCommand::Park { .. } => call.park(None, "supervisor").await?,
        SupervisorCommand::Hangup { .. } => call.supervisor_hangup().await?,
        SupervisorCommand::Listen { .. } => call.listen(listener, Arc::new(outbox.clone())).await?,
        SupervisorCommand::Unlisten { .. } => call.unlisten(listener).await?,
        SupervisorCommand::Unpark { agent_id, .. } => {
            let (state, link) = coordinator.connected_seat(agent_id.clone()).await?;
            if state.call_id.is_some() {
                return Err(EngineError::Busy(format!("agent {agent_id} is on a call")));
            }
            match call.claim(agent_id, link, ClaimKind::Unpark, true).await? {
                ClaimResult::Won { .. } => {}
                ClaimResult::Lost => {
                    return Err(EngineError::Refused(
                        "the call is not parked (or is in another workspace)".into(),
                    ))
                }
            }
        }
        SupervisorCommand::Transfer { agent_id, .. } => {
            let (state, link) = coordinator.connected_seat(agent_id).await?;
            state.ringable()?;
            call.transfer_to(link).await?
        }
    }
    Ok(call_id)
}

impl Actor for SupervisorActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        let coordinator = self.coordinator.clone();
        let (id, feed) = (self.id, Arc::new(self.outbox.clone()));
        let register = async move { coordinator.register_supervisor(id, feed).await };
        ctx.spawn(register.into_actor(self).map(|registered, act, ctx| {
            if registered.is_err() {
                act.outbox
                    .close(CLOSE_GOING_AWAY, "the floor is unavailable");
                ctx.stop();
            }
        }));
        ctx.run_interval(self.config.heartbeat_interval, |act, ctx| {
            if act.outbox.is_closed() {
                // Closed by its feed (it fell behind): the floor has forgotten it.
                ctx.stop();
            } else if act.last_pong.elapsed() > act.config.client_timeout {
                act.outbox.close(CLOSE_GOING_AWAY, "heartbeat timeout");
                ctx.stop();
            } else {
                act.outbox.ping();
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.coordinator.unregister_supervisor(self.id);
        self.outbox.close(CLOSE_NORMAL, "supervisor closed");
    }
}

impl StreamHandler<SupervisorInput> for SupervisorActor {
    fn handle(&mut self, input: SupervisorInput, ctx: &mut Self::Context) {
        match input {
            SupervisorInput::Command(command) => self.command(command, ctx),
            SupervisorInput::Pong => self.last_pong = Instant::now(),
            SupervisorInput::Invalid { code, message } => {
                self.outbox.send(SupervisorOutput::Error { code, message });
            }
            SupervisorInput::Violation(reason) => {
                self.outbox.close(CLOSE_POLICY, reason);
                ctx.stop();
            }
        }
    }
}
