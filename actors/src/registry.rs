//! CallRegistry: the index of live calls, by engine id and by Twilio CallSid, so that
//! a media stream or a status callback finds its call.

use std::collections::HashMap;

use actix::prelude::*;

use crate::call::CallHandle;
use crate::error::EngineError;
use crate::ids::CallId;

#[derive(Message)]
#[rtype(result = "()")]
pub struct Register {
    pub handle: CallHandle,
    pub call_sid: Option<String>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Unregister {
    pub id: CallId,
}

#[derive(Message)]
#[rtype(result = "Option<CallHandle>")]
pub struct Lookup {
    pub id: CallId,
}

#[derive(Message)]
#[rtype(result = "Option<CallHandle>")]
pub struct LookupSid {
    pub call_sid: String,
}

#[derive(Message)]
#[rtype(result = "Vec<CallHandle>")]
pub struct LiveCalls;

#[derive(Default)]
pub struct CallRegistry {
    calls: HashMap<CallId, (CallHandle, Option<String>)>,
    by_sid: HashMap<String, CallId>,
}

impl Actor for CallRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
    }
}

impl Supervised for CallRegistry {}

impl Handler<Register> for CallRegistry {
    type Result = ();

    fn handle(&mut self, msg: Register, _ctx: &mut Self::Context) {
        if let Some(sid) = &msg.call_sid {
            self.by_sid.insert(sid.clone(), msg.handle.id().clone());
        }
        self.calls
            .insert(msg.handle.id().clone(), (msg.handle, msg.call_sid));
    }
}

impl Handler<Unregister> for CallRegistry {
    type Result = ();

    fn handle(&mut self, msg: Unregister, _ctx: &mut Self::Context) {
        if let Some((_, Some(sid))) = self.calls.remove(&msg.id) {
            self.by_sid.remove(&sid);
        }
    }
}

impl Handler<Lookup> for CallRegistry {
    type Result = Option<CallHandle>;

    fn handle(&mut self, msg: Lookup, _ctx: &mut Self::Context) -> Self::Result {
        self.calls.get(&msg.id).map(|(handle, _)| handle.clone())
    }
}

impl Handler<LookupSid> for CallRegistry {
    type Result = Option<CallHandle>;

    fn handle(&mut self, msg: LookupSid, _ctx: &mut Self::Context) -> Self::Result {
        let id = self.by_sid.get(&msg.call_sid)?;
        self.calls.get(id).map(|(handle, _)| handle.clone())
    }
}

impl Handler<LiveCalls> for CallRegistry {
    type Result = MessageResult<LiveCalls>;

    fn handle(&mut self, _msg: LiveCalls, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.calls.values().map(|(h, _)| h.clone()).collect())
    }
}

#[derive(Clone)]
pub struct RegistryHandle {
    addr: Addr<CallRegistry>,
}

impl RegistryHandle {
    pub fn start() -> Self {
        Self {
            addr: Supervisor::start(|_| CallRegistry::default()),
        }
    }

    /// Synchronous enqueue: a call registered here is found by any lookup sent after.
    pub fn register(&self, handle: CallHandle, call_sid: Option<String>) {
        self.addr.do_send(Register { handle, call_sid });
    }

    pub fn unregister(&self, id: CallId) {
        self.addr.do_send(Unregister { id });
    }

    pub async fn lookup(&self, id: CallId) -> Result<Option<CallHandle>, EngineError> {
        self.addr
            .send(Lookup { id })
            .await
            .map_err(|e| EngineError::mailbox("call registry", e))
    }

    pub async fn lookup_sid(&self, call_sid: String) -> Result<Option<CallHandle>, EngineError> {
        self.addr
            .send(LookupSid { call_sid })
            .await
            .map_err(|e| EngineError::mailbox("call registry", e))
    }

    pub async fn live(&self) -> Result<Vec<CallHandle>, EngineError> {
        self.addr
            .send(LiveCalls)
            .await
            .map_err(|e| EngineError::mailbox("call registry", e))
    }
}
