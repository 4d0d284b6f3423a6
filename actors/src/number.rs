//! NumberActor: one phone number of the engine and its route. The NumberBook
//! finds a number's actor by its E.164 form. A changed route takes effect on the
//! number's next call.

use std::collections::HashMap;

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use crate::call::{CallActor, CallDeps, CallHandle, CallSetup};
use crate::error::EngineError;
use crate::ids::{AgentId, AssistantId, CallId, Workspace};

/// Where a number's calls go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Route {
    /// Ring these agents at once; an empty list rings every available agent of the
    /// number's workspace.
    Agents {
        #[serde(default)]
        agent_ids: Vec<AgentId>,
    },
    /// Straight to the voicemail prompt.
    Voicemail,
    /// An AI assistant talks with the caller (and can hand over to the agents).
    Ai { assistant_id: AssistantId },
}

impl Route {
    /// Every available agent of the number's workspace.
    pub fn everyone() -> Route {
        Route::Agents {
            agent_ids: Vec::new(),
        }
    }
}

/// A call arrived for this number.
#[derive(Message)]
#[rtype(result = "CallHandle")]
pub struct IncomingCall {
    pub id: CallId,
    pub call_sid: Option<String>,
    pub from: String,
    /// The webhook's fields as received, escaped, when they had to be cleaned.
    pub raw: Option<serde_json::Value>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct SetRoute {
    pub workspace: Workspace,
    pub route: Route,
}

pub struct NumberActor {
    e164: String,
    workspace: Workspace,
    route: Route,
    deps: CallDeps,
}

impl Actor for NumberActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
    }
}

impl Handler<IncomingCall> for NumberActor {
    type Result = MessageResult<IncomingCall>;

    fn handle(&mut self, msg: IncomingCall, _ctx: &mut Self::Context) -> Self::Result {
        let setup = CallSetup {
            id: msg.id,
            call_sid: msg.call_sid,
            from: msg.from,
            to: self.e164.clone(),
            workspace: self.workspace.clone(),
            route: self.route.clone(),
            raw: msg.raw,
            direction: "inbound",
        };
        MessageResult(CallActor::launch(setup, self.deps.clone()))
    }
}

impl Handler<SetRoute> for NumberActor {
    type Result = ();

    fn handle(&mut self, msg: SetRoute, _ctx: &mut Self::Context) {
        self.workspace = msg.workspace;
        self.route = msg.route;
    }
}

#[derive(Clone)]
pub struct NumberHandle {
    addr: Addr<NumberActor>,
}

impl NumberHandle {
    /// Starts a call for this number; the call is registered when this returns.
    pub async fn incoming(
        &self,
        id: CallId,
        call_sid: Option<String>,
        from: String,
        raw: Option<serde_json::Value>,
    ) -> Result<CallHandle, EngineError> {
        self.addr
            .send(IncomingCall {
                id,
                call_sid,
                from,
                raw,
            })
            .await
            .map_err(|e| EngineError::mailbox("number", e))
    }
}

// ---- the book: E.164 → number actor ------------------------------------------

#[derive(Message)]
#[rtype(result = "()")]
pub struct UpsertNumber {
    pub e164: String,
    pub workspace: Workspace,
    pub route: Route,
}

#[derive(Message)]
#[rtype(result = "Option<NumberHandle>")]
pub struct LookupNumber {
    pub e164: String,
}

/// The engine's live numbers: E.164 → the number's actor.
pub struct NumberBook {
    numbers: HashMap<String, Addr<NumberActor>>,
    deps: CallDeps,
}

impl Actor for NumberBook {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
    }
}

impl Handler<UpsertNumber> for NumberBook {
    type Result = ();

    fn handle(&mut self, msg: UpsertNumber, _ctx: &mut Self::Context) {
        match self.numbers.get(&msg.e164) {
            Some(number) if number.connected() => number.do_send(SetRoute {
                workspace: msg.workspace,
                route: msg.route,
            }),
            _ => {
                let number = NumberActor {
                    e164: msg.e164.clone(),
                    workspace: msg.workspace,
                    route: msg.route,
                    deps: self.deps.clone(),
                }
                .start();
                self.numbers.insert(msg.e164, number);
            }
        }
    }
}

impl Handler<LookupNumber> for NumberBook {
    type Result = Option<NumberHandle>;

    fn handle(&mut self, msg: LookupNumber, _ctx: &mut Self::Context) -> Self::Result {
        self.numbers
            .get(&msg.e164)
            .map(|addr| NumberHandle { addr: addr.clone() })
    }
}

/// The typed handle of the [`NumberBook`].
#[derive(Clone)]
pub struct NumberBookHandle {
    addr: Addr<NumberBook>,
}

impl NumberBookHandle {
    pub fn start(deps: CallDeps) -> Self {
        Self {
            addr: NumberBook {
                numbers: HashMap::new(),
                deps,
            }
            .start(),
        }
    }

    pub async fn upsert(
        &self,
        e164: String,
        workspace: Workspace,
        route: Route,
    ) -> Result<(), EngineError> {
        self.addr
            .send(UpsertNumber {
                e164,
                workspace,
                route,
            })
            .await
            .map_err(|e| EngineError::mailbox("number book", e))
    }

    pub async fn lookup(&self, e164: String) -> Result<Option<NumberHandle>, EngineError> {
        self.addr
            .send(LookupNumber { e164 })
            .await
            .map_err(|e| EngineError::mailbox("number book", e))
    }
}
