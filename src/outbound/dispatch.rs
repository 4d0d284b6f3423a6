//! The `OutboundDispatcher`: one actor per engine, the queue's single writer
//! on this node. Woken by a submit ([`DispatchWaker::wake`]) and every
//! `outbound.dispatch_poll`, a round:
//!
//! 1. reconciles the `dial_unknown` calls with no status callback within
//!    `outbound.reconcile` (Twilio lists a call to the number: its sid and
//!    status are adopted; none: the call is queued again, to be dialed with a
//!    new attempt);
//! 2. claims due calls (`Store::claim_due_outbound`: a compare-and-set per row
//!    within the global, per-user and per-batch caps; batch calls whose window
//!    passed end `not_dialed_window_closed`), no more than this node's room:
//!    realtime connections open plus the outbound calls it has in flight stay
//!    below `openai.max_connections × (1 − outbound.reserve_inbound)`, so
//!    outbound work waits and inbound calls are never refused for it;
//! 3. dials each claimed call in its own task (dials run concurrently): the
//!    gates again — the account, the objective screened again
//!    (`safety::predial::screen_objective`; a critical category: `canceled`
//!    `objective-refused`, with a critical flag that pauses the user), the
//!    do-not-call lists, calling hours now (a
//!    closed window puts the call back, `scheduled` for the next open instant)
//!    —, the From number (the workspace's Twilio pool, sorted, one per user by a
//!    stable hash of the user id), then `Calls.json`. Created: the sid is noted
//!    and the status callbacks move the call on. Refused (401, 21216…): `failed`
//!    with Twilio's reason, the quota refunded, never retried. Unknown (a
//!    timeout, a 5xx): `dial_unknown`, reconciled, never dialed blindly. Not
//!    sent (no connection): queued again.
//!
//! Every quarter of `outbound.reconcile`, calls whose Twilio call is known but whose
//! status has not moved for long (a lost callback) are fetched from Twilio and
//! moved to what it says, so no call holds a slot for ever; and `dialing`
//! calls without a Twilio call long past the dial timeout (their engine died
//! mid-dial, this node or another) become `dial_unknown`, to be reconciled.
//!
//! On start, before the first round, recovery: the calls this node left
//! `dialing` become `dial_unknown` (reconciled, not re-dialed), those
//! `ringing` or `in_progress` become `interrupted`.
//!
//! Every status change goes through `Store::advance_outbound` (or, for a claim
//! given back before it was dialed, `Store::release_outbound_claim`) and
//! enqueues a `call.status` event ([`progress::announce`]). A claim's move to
//! `dialing` is announced once the gates have passed, just before the dial: a
//! call a gate stops goes from `queued` (or `scheduled`) to `failed` for the user.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix::prelude::*;
use jiff::Timestamp;
use switchboard_actors::stats::EngineStats;

use crate::config::Settings;
use crate::domain::user::UserStatus;
use crate::outbound::clock::{to_offset_date_time, ClockHandle};
use crate::outbound::hours::{CallingHours, Verdict};
use crate::outbound::progress::{self, announce};
use crate::providers::twilio::calls::{
    AmdMode, AnsweredBy, CallEvent, CallStatus, CreateCall, DialError, MachineDetection,
};
use crate::providers::twilio::TwilioClient;
use crate::safety::predial;
use crate::safety::screen::Screener;
use crate::store::flags::NewFlag;
use crate::store::outbound::{Advanced, OutboundCall, OutboundStatus, Transition};
use crate::store::outbound_dispatch::{AttemptOutcome, ClaimCaps};
use crate::store::Store;
use crate::users::effective_limits;

/// How long Twilio lets the callee's phone ring (`Timeout`).
pub const RING_TIMEOUT_SECS: u32 = 30;
/// Reconciliation lists calls started this long before the attempt's claim
/// (Twilio's `StartTime>` has whole seconds, and clocks differ).
const LIST_SLACK_MS: i64 = 60_000;
/// A claim given back because Twilio could not be reached waits this long.
const NOT_SENT_RETRY_MS: i64 = 5_000;

/// Why a call failed at dispatch (`reason`), before anything was dialed.
pub mod reasons {
    pub const ACCOUNT_SUSPENDED: &str = "account-suspended";
    /// The user was paused (a critical flag) while the call waited: it ends
    /// `canceled`.
    pub const ACCOUNT_PAUSED: &str = "account-paused";
    pub const DO_NOT_CALL: &str = "do-not-call";
    pub const NO_FROM_NUMBER: &str = "no-from-number";
    pub const NO_CALLING_WINDOW: &str = "no-calling-window";
    pub const PLAN_UNKNOWN: &str = "plan-unknown";
    /// The objective screened again is refused (a category added or made
    /// critical since submit): the call ends `canceled`.
    pub const OBJECTIVE_REFUSED: &str = crate::safety::predial::OBJECTIVE_REFUSED;
}

/// What the dispatcher works with (the engine's parts it needs).
pub struct DispatchDeps {
    pub store: Store,
    pub clock: ClockHandle,
    pub settings: Arc<Settings>,
    pub calling_hours: CallingHours,
    /// `None` without Twilio credentials: calls stay queued, nothing is
    /// claimed or dialed.
    pub twilio: Option<TwilioClient>,
    pub stats: Arc<EngineStats>,
    /// `http(s)://host[:port]` Twilio reaches this engine at.
    pub public_url: Arc<str>,
    /// The safety word categories the objective is screened against again.
    pub screener: Arc<Screener>,
}

/// Wakes the engine's dispatcher (a call was submitted); does nothing before it
/// started. Cheap to clone.
#[derive(Clone, Default)]
pub struct DispatchWaker(Arc<OnceLock<Addr<OutboundDispatcher>>>);

impl DispatchWaker {
    pub fn wake(&self) {
        if let Some(dispatcher) = self.0.get() {
            dispatcher.do_send(Wake);
        }
    }
}

/// Look for due calls now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wake;

pub struct OutboundDispatcher {
    deps: Arc<DispatchDeps>,
    /// A round (or the start-up recovery) is running.
    busy: bool,
    /// Woken while busy: run another round after this one.
    again: bool,
    /// When (the clock's ms) calls were last checked for lost callbacks.
    last_check: Option<i64>,
}

impl OutboundDispatcher {
    /// Starts the dispatcher; `waker` reaches it from then on.
    pub fn start(deps: DispatchDeps, waker: &DispatchWaker) -> Addr<OutboundDispatcher> {
        let addr = OutboundDispatcher {
            deps: Arc::new(deps),
            busy: false,
            again: false,
            last_check: None,
        }
        .start();
        let _ = waker.0.set(addr.clone());
        addr
    }

    fn kick(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            self.again = true;
            return;
        }
        self.busy = true;
        let deps = Arc::clone(&self.deps);
        let now = now_ms(&deps);
        let every = reconcile_ms(&deps) / 4;
        let check = self.last_check.is_none_or(|at| now - at >= every);
        if check {
            self.last_check = Some(now);
        }
        ctx.spawn(
            async move {
                if check {
                    check_stale(&deps).await;
                }
                round(&deps).await
            }
            .into_actor(self)
            .map(|more, act, ctx| {
                act.busy = false;
                if std::mem::take(&mut act.again) || more {
                    act.kick(ctx);
                }
            }),
        );
    }
}

impl Actor for OutboundDispatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.deps.twilio.is_none() {
            tracing::warn!(
                "no Twilio account (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN): outbound calls \
                 are queued but not dialed"
            );
        }
        self.busy = true;
        let deps = Arc::clone(&self.deps);
        ctx.spawn(
            async move { recover(&deps).await }
                .into_actor(self)
                .map(|(), act, ctx| {
                    act.busy = false;
                    act.kick(ctx);
                }),
        );
        let poll = self
            .deps
            .settings
            .outbound
            .dispatch_poll
            .max(Duration::from_millis(10));
        ctx.run_interval(poll, |act, ctx| act.kick(ctx));
    }
}

impl Handler<Wake> for OutboundDispatcher {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Self::Context) {
        self.kick(ctx);
    }
}

fn now_ms(deps: &DispatchDeps) -> i64 {
    deps.clock.now().as_millisecond()
}

/// `outbound.reconcile` in milliseconds.
fn reconcile_ms(deps: &DispatchDeps) -> i64 {
    i64::try_from(deps.settings.outbound.reconcile.as_millis()).unwrap_or(i64::MAX)
}

/// Start-up recovery (see the module doc).
async fn recover(deps: &DispatchDeps) {
    match deps.store.recover_outbound(now_ms(deps)).await {
        Ok(recovered) => {
            if !recovered.in_doubt.is_empty() || !recovered.interrupted.is_empty() {
                tracing::warn!(
                    in_doubt = recovered.in_doubt.len(),
                    interrupted = recovered.interrupted.len(),
                    "outbound calls left by a previous run: dialing ones are reconciled, \
                     ringing and in-progress ones interrupted"
                );
            }
            for (from, call) in recovered.in_doubt.iter().chain(&recovered.interrupted) {
                announce(&deps.store, &deps.clock, *from, call).await;
            }
        }
        Err(error) => tracing::error!(%error, "outbound start-up recovery failed"),
    }
}

/// How many more calls this node may dial now (the reserve for inbound).
async fn room(deps: &DispatchDeps) -> u32 {
    let settings = &deps.settings;
    let share = (1.0 - settings.outbound.reserve_inbound).clamp(0.0, 1.0);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let limit = (settings.openai.max_connections as f64 * share).floor() as u64;
    let open = deps
        .stats
        .ai_connections_open
        .load(std::sync::atomic::Ordering::Relaxed);
    let pending = match deps.store.outbound_pending_on_node().await {
        Ok(n) => n,
        Err(error) => {
            tracing::warn!(%error, "cannot count this node's outbound calls; dialing none");
            return 0;
        }
    };
    u32::try_from(limit.saturating_sub(open + pending)).unwrap_or(u32::MAX)
}

/// One round; true when another should follow at once (a call was queued
/// again by reconciliation).
async fn round(deps: &Arc<DispatchDeps>) -> bool {
    if deps.twilio.is_none() {
        // Nothing can be dialed: calls wait in the queue (said once, at start).
        return false;
    }
    let requeued = reconcile_due(deps).await;
    let outbound = &deps.settings.outbound;
    let caps = ClaimCaps {
        max_concurrent: outbound.max_concurrent,
        max_per_user: outbound.max_per_user,
        max_claims: outbound.dispatch_claim_size.min(room(deps).await),
    };
    let claims = match deps.store.claim_due_outbound(&caps, now_ms(deps)).await {
        Ok(claims) => claims,
        Err(error) => {
            tracing::warn!(%error, "claiming due outbound calls failed; next round retries");
            return false;
        }
    };
    for (from, call) in &claims.window_closed {
        announce(&deps.store, &deps.clock, *from, call).await;
    }
    // The numbers resting (number health), read once per round.
    let rested = if claims.claimed.is_empty() {
        Arc::new(HashMap::new())
    } else {
        match deps.store.rested_numbers(now_ms(deps)).await {
            Ok(rested) => Arc::new(rested),
            Err(error) => {
                tracing::warn!(%error, "reading the rested numbers failed; none skipped");
                Arc::new(HashMap::new())
            }
        }
    };
    // Each workspace's Twilio numbers, read once per round.
    let mut pools: HashMap<String, Arc<Vec<String>>> = HashMap::new();
    for (call, from) in claims.claimed.into_iter().zip(claims.claimed_from) {
        let workspace = call.workspace.as_str().to_owned();
        let pool = match pools.get(&workspace) {
            Some(pool) => Some(Arc::clone(pool)),
            None => match deps.store.twilio_numbers_of(&call.workspace).await {
                Ok(numbers) => {
                    let pool = Arc::new(numbers);
                    pools.insert(workspace, Arc::clone(&pool));
                    Some(pool)
                }
                Err(error) => {
                    tracing::warn!(%error, "reading the workspace's Twilio numbers failed");
                    None
                }
            },
        };
        let deps = Arc::clone(deps);
        let rested = Arc::clone(&rested);
        actix_rt::spawn(async move { dial(&deps, from, call, pool, &rested).await });
    }
    requeued
}

/// What the gates at dispatch say.
enum Gate {
    Dial {
        from: String,
        time_limit_secs: u32,
    },
    /// Not now: back to `scheduled` at this instant, `deferred` saying why
    /// (`calling_hours`; `numbers_resting`: every From number rests).
    Defer(Timestamp, &'static str),
    Fail(&'static str),
    /// The account was paused or suspended while the call waited: it ends
    /// `canceled` with this reason.
    Cancel(&'static str),
    /// The objective is refused now: canceled, with these flags raised.
    Refuse(Vec<NewFlag>),
}

/// The gates again, at dispatch (things change while a call waits).
async fn gates(
    deps: &DispatchDeps,
    call: &OutboundCall,
    pool: &[String],
    rested: &HashMap<String, i64>,
) -> Result<Gate, crate::store::StoreError> {
    let store = &deps.store;
    let Some(user) = store.get_user(&call.user_id).await? else {
        return Ok(Gate::Cancel(reasons::ACCOUNT_SUSPENDED));
    };
    match user.status {
        UserStatus::Paused => return Ok(Gate::Cancel(reasons::ACCOUNT_PAUSED)),
        UserStatus::Suspended => return Ok(Gate::Cancel(reasons::ACCOUNT_SUSPENDED)),
        _ => {}
    }
    if let predial::Verdict::Refused(refusal) =
        predial::screen_objective(&deps.screener, &call.objective)
    {
        return Ok(Gate::Refuse(refusal.flags));
    }
    if store.is_do_not_call(&user.id, &call.to).await? {
        return Ok(Gate::Fail(reasons::DO_NOT_CALL));
    }
    match deps.calling_hours.check(&call.to, deps.clock.now()) {
        Ok(Verdict::Open { .. }) => {}
        Ok(Verdict::Deferred { opens, .. }) => return Ok(Gate::Defer(opens, "calling_hours")),
        Err(_) => return Ok(Gate::Fail(reasons::NO_CALLING_WINDOW)),
    }
    let Ok(limits) = effective_limits(&deps.settings.plans, &user) else {
        return Ok(Gate::Fail(reasons::PLAN_UNKNOWN));
    };
    if pool.is_empty() {
        return Ok(Gate::Fail(reasons::NO_FROM_NUMBER));
    }
    let Some(from) = healthy_from_number(pool, call.user_id.as_str(), rested) else {
        // Every number of the pool rests: the call waits for the first rest
        // to end (it does not fail).
        let until = pool
            .iter()
            .filter_map(|n| rested.get(n))
            .min()
            .copied()
            .unwrap_or_else(|| now_ms(deps));
        let at = Timestamp::from_millisecond(until).unwrap_or_else(|_| deps.clock.now());
        return Ok(Gate::Defer(at, "numbers_resting"));
    };
    Ok(Gate::Dial {
        from: from.to_owned(),
        time_limit_secs: limits.max_call_minutes.saturating_mul(60),
    })
}

/// The number a user's calls are placed from: one of the sorted `pool`,
/// chosen by a stable hash (FNV-1a) of the user id, so a user keeps theirs
/// while the pool does not change.
pub fn from_number<'a>(pool: &'a [String], user_id: &str) -> Option<&'a str> {
    if pool.is_empty() {
        return None;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in user_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let index = usize::try_from(hash % pool.len() as u64).unwrap_or(0);
    pool.get(index).map(String::as_str)
}

/// [`from_number`], skipping the numbers resting (number health): the user's
/// own number if it is healthy, else the next healthy one of the sorted pool
/// (wrapping around); `None` when every number rests.
pub fn healthy_from_number<'a>(
    pool: &'a [String],
    user_id: &str,
    rested: &HashMap<String, i64>,
) -> Option<&'a str> {
    let own = from_number(pool, user_id)?;
    let start = pool.iter().position(|n| n == own).unwrap_or(0);
    (0..pool.len())
        .map(|i| &pool[(start + i) % pool.len()])
        .find(|n| !rested.contains_key(n.as_str()))
        .map(String::as_str)
}

/// The request to Twilio for `call`'s `attempt` (URLs per docs/protocol.md).
pub fn create_request(
    public_url: &str,
    call: &OutboundCall,
    attempt: &str,
    from: &str,
    time_limit_secs: u32,
) -> CreateCall {
    let hook = |name: &str| {
        format!(
            "{public_url}/twilio/outbound/{name}?call={}&attempt={attempt}",
            call.id
        )
    };
    CreateCall {
        to: call.to.as_str().to_owned(),
        from: from.to_owned(),
        url: hook("answer"),
        status_callback: hook("status"),
        status_callback_events: CallEvent::ALL.to_vec(),
        machine_detection: Some(MachineDetection {
            mode: AmdMode::DetectMessageEnd,
            async_callback: Some(hook("amd")),
        }),
        timeout_secs: RING_TIMEOUT_SECS,
        time_limit_secs,
        send_digits: None,
        record: false,
    }
}

/// Moves `call` (this attempt only) and announces the change.
async fn advance(
    deps: &DispatchDeps,
    call: &OutboundCall,
    attempt: &str,
    next: OutboundStatus,
    change: Transition<'_>,
    previous: Option<OutboundStatus>,
) {
    let change = Transition {
        attempt_id: Some(attempt),
        ..change
    };
    match deps
        .store
        .advance_outbound(&call.id, next, change, now_ms(deps))
        .await
    {
        Ok(Advanced::Moved { from, call }) => {
            announce(&deps.store, &deps.clock, previous.unwrap_or(from), &call).await;
        }
        Ok(_) => {}
        Err(error) => tracing::error!(
            outbound_id = %call.id,
            %error,
            next = next.as_str(),
            "an outbound call's status could not be written"
        ),
    }
}

/// A claimed call the gates at dispatch stopped: its attempt is noted as never
/// sent, and the call ends `status` with `reason`, its quota refunded.
async fn end_undialed(
    deps: &DispatchDeps,
    call: &OutboundCall,
    attempt: &str,
    status: OutboundStatus,
    reason: &'static str,
    claimed_from: OutboundStatus,
) {
    if let Err(error) = deps
        .store
        .record_attempt(&call.id, attempt, AttemptOutcome::NotSent, None, None)
        .await
    {
        tracing::warn!(outbound_id = %call.id, %error, "attempt not noted");
    }
    let change = Transition {
        reason: Some(reason),
        refund_quota: true,
        ..Transition::default()
    };
    advance(deps, call, attempt, status, change, Some(claimed_from)).await;
}

/// Gates, then dials one claimed call (see the module doc).
async fn dial(
    deps: &DispatchDeps,
    claimed_from: OutboundStatus,
    call: OutboundCall,
    pool: Option<Arc<Vec<String>>>,
    rested: &HashMap<String, i64>,
) {
    let Some(attempt) = call.attempt_id.clone() else {
        return;
    };
    let store = &deps.store;
    let gated = match &pool {
        Some(pool) => gates(deps, &call, pool, rested).await,
        None => Err(crate::store::StoreError::Corrupt(
            "the workspace's Twilio numbers could not be read".to_owned(),
        )),
    };
    let gate = match gated {
        Ok(gate) => gate,
        Err(error) => {
            tracing::warn!(outbound_id = %call.id, %error, "dispatch gates failed; queued again");
            release(
                deps,
                &call,
                &attempt,
                OutboundStatus::Queued,
                now_ms(deps),
                None,
            )
            .await;
            return;
        }
    };
    let (from, time_limit_secs) = match gate {
        Gate::Dial {
            from,
            time_limit_secs,
        } => (from, time_limit_secs),
        Gate::Defer(opens, why) => {
            tracing::info!(outbound_id = %call.id, opens = %opens, why, "not dialed now");
            release(
                deps,
                &call,
                &attempt,
                OutboundStatus::Scheduled,
                opens.as_millisecond(),
                Some(why),
            )
            .await;
            return;
        }
        Gate::Cancel(reason) => {
            tracing::info!(outbound_id = %call.id, reason, "canceled at dispatch");
            let status = OutboundStatus::Canceled;
            end_undialed(deps, &call, &attempt, status, reason, claimed_from).await;
            return;
        }
        Gate::Refuse(flags) => {
            tracing::warn!(outbound_id = %call.id, "objective refused at dispatch");
            if let Err(error) = store
                .raise_flags(&call.user_id, Some(call.id.as_str()), &flags, now_ms(deps))
                .await
            {
                tracing::error!(outbound_id = %call.id, %error, "flags not raised");
            }
            let (status, reason) = (OutboundStatus::Canceled, reasons::OBJECTIVE_REFUSED);
            end_undialed(deps, &call, &attempt, status, reason, claimed_from).await;
            return;
        }
        Gate::Fail(reason) => {
            tracing::info!(outbound_id = %call.id, reason, "refused at dispatch");
            let status = OutboundStatus::Failed;
            end_undialed(deps, &call, &attempt, status, reason, claimed_from).await;
            return;
        }
    };
    let Some(twilio) = &deps.twilio else {
        return;
    };
    announce(store, &deps.clock, claimed_from, &call).await;
    let mut request = create_request(&deps.public_url, &call, &attempt, &from, time_limit_secs);
    // A recording workspace's call to a one-party-consent state is recorded
    // from the dial; to an all-party-consent state (or an unknown one) the
    // assistant starts the recording once the notice has played.
    request.record = deps
        .settings
        .safety
        .recording
        .plan(call.workspace.as_str(), call.to.as_str())
        == crate::domain::recording::RecordingPlan::FromDial;
    let started = std::time::Instant::now();
    let outcome = twilio.create_call(&request).await;
    tracing::info!(
        outbound_id = %call.id,
        attempt,
        micros = started.elapsed().as_micros() as u64,
        ok = outcome.is_ok(),
        "dialed"
    );
    if outcome.is_err() {
        EngineStats::count(&deps.stats.provider_errors);
    }
    match outcome {
        Ok(created) => {
            if let Err(error) = store
                .record_attempt(
                    &call.id,
                    &attempt,
                    AttemptOutcome::Created,
                    Some(&created.sid),
                    Some(&from),
                )
                .await
            {
                tracing::error!(outbound_id = %call.id, %error, "the call's sid could not be noted");
            }
        }
        Err(DialError::Refused {
            status,
            code,
            message,
        }) => {
            let _ = store
                .record_attempt(
                    &call.id,
                    &attempt,
                    AttemptOutcome::Refused,
                    None,
                    Some(&from),
                )
                .await;
            let reason = match code {
                Some(code) => format!("twilio-refused: HTTP {status}, code {code}: {message}"),
                None => format!("twilio-refused: HTTP {status}: {message}"),
            };
            tracing::warn!(outbound_id = %call.id, %reason, "Twilio refused the call");
            let change = Transition {
                reason: Some(&reason),
                refund_quota: true,
                ..Transition::default()
            };
            advance(deps, &call, &attempt, OutboundStatus::Failed, change, None).await;
        }
        Err(DialError::Unknown { detail }) => {
            tracing::warn!(outbound_id = %call.id, %detail, "the dial's outcome is unknown; reconciling");
            let _ = store
                .record_attempt(
                    &call.id,
                    &attempt,
                    AttemptOutcome::Unknown,
                    None,
                    Some(&from),
                )
                .await;
            advance(
                deps,
                &call,
                &attempt,
                OutboundStatus::DialUnknown,
                Transition::default(),
                None,
            )
            .await;
        }
        Err(DialError::Transport { detail }) => {
            tracing::warn!(outbound_id = %call.id, %detail, "Twilio not reached; queued again");
            release(
                deps,
                &call,
                &attempt,
                OutboundStatus::Queued,
                now_ms(deps) + NOT_SENT_RETRY_MS,
                None,
            )
            .await;
        }
    }
}

/// Gives a claim back, never dialed.
async fn release(
    deps: &DispatchDeps,
    call: &OutboundCall,
    attempt: &str,
    next: OutboundStatus,
    run_at: i64,
    deferred: Option<&str>,
) {
    let released = deps
        .store
        .release_outbound_claim(&call.id, attempt, next, run_at, deferred, now_ms(deps))
        .await;
    match released {
        Ok(true) => {
            if next == OutboundStatus::Scheduled {
                if let Ok(Some(now)) = deps.store.get_outbound(&call.id).await {
                    announce(&deps.store, &deps.clock, OutboundStatus::Dialing, &now).await;
                }
            }
        }
        Ok(false) => {}
        Err(error) => {
            tracing::error!(outbound_id = %call.id, %error, "a claim could not be given back")
        }
    }
}

/// The disposition of a call Twilio lists (`None`: not dialed yet there).
fn listed_disposition(status: CallStatus, answered_by: Option<&str>) -> Option<OutboundStatus> {
    let name = match status {
        CallStatus::Queued => return None,
        CallStatus::Ringing => "ringing",
        CallStatus::InProgress => "in-progress",
        CallStatus::Completed => "completed",
        CallStatus::Busy => "busy",
        CallStatus::Failed => "failed",
        CallStatus::NoAnswer => "no-answer",
        CallStatus::Canceled => "canceled",
    };
    progress::disposition(name, answered_by)
}

/// Reconciles the `dial_unknown` calls due (see the module doc); true when one
/// was queued again.
async fn reconcile_due(deps: &DispatchDeps) -> bool {
    let Some(twilio) = &deps.twilio else {
        return false;
    };
    let before = now_ms(deps).saturating_sub(reconcile_ms(deps));
    let due = match deps
        .store
        .outbound_to_reconcile(before, deps.settings.outbound.dispatch_claim_size)
        .await
    {
        Ok(due) => due,
        Err(error) => {
            tracing::warn!(%error, "listing the calls to reconcile failed");
            return false;
        }
    };
    let mut requeued = false;
    for call in due {
        let Some(attempt) = call.attempt_id.clone() else {
            continue;
        };
        let dialed_at = call.progress.dialed_at.unwrap_or(call.updated_at);
        let since = Timestamp::from_millisecond(dialed_at.saturating_sub(LIST_SLACK_MS))
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let listed = match twilio
            .list_calls_to(call.to.as_str(), to_offset_date_time(since))
            .await
        {
            Ok(listed) => listed,
            Err(error) => {
                tracing::warn!(outbound_id = %call.id, %error, "reconciliation: Twilio's list failed; next round retries");
                continue;
            }
        };
        let ours = listed.into_iter().find(|listed| {
            call.progress
                .from
                .as_deref()
                .is_none_or(|from| listed.from == from)
        });
        match ours {
            Some(found) => {
                tracing::info!(outbound_id = %call.id, call_sid = %found.sid, "reconciliation: the call exists; adopted");
                let _ = deps
                    .store
                    .record_attempt(
                        &call.id,
                        &attempt,
                        AttemptOutcome::Created,
                        Some(&found.sid),
                        None,
                    )
                    .await;
                let answered_by = found.answered_by.map(answered_by_name);
                if let Some(next) = listed_disposition(found.status, answered_by) {
                    let change = Transition {
                        call_sid: Some(&found.sid),
                        answered_by,
                        ..Transition::default()
                    };
                    advance(deps, &call, &attempt, next, change, None).await;
                }
            }
            None => {
                tracing::info!(outbound_id = %call.id, "reconciliation: no call was created; queued again");
                let _ = deps
                    .store
                    .record_attempt(&call.id, &attempt, AttemptOutcome::Absent, None, None)
                    .await;
                advance(
                    deps,
                    &call,
                    &attempt,
                    OutboundStatus::Queued,
                    Transition::default(),
                    None,
                )
                .await;
                requeued = true;
            }
        }
    }
    requeued
}

/// Asks Twilio about calls whose status callbacks have not come for long
/// (`Store::outbound_to_check`): a call still dialing `RING_TIMEOUT_SECS` plus
/// `outbound.reconcile` after its claim, ringing that long, or in progress
/// longer than the longest plan's call plus `outbound.reconcile`. Twilio's
/// status is applied like a callback (this attempt only, forward only), so a
/// lost callback never leaves a call holding a slot for ever.
async fn check_stale(deps: &DispatchDeps) {
    let Some(twilio) = &deps.twilio else {
        return;
    };
    let now = now_ms(deps);
    let reconcile = reconcile_ms(deps);
    let ring = i64::from(RING_TIMEOUT_SECS) * 1000 + reconcile;
    let plans = &deps.settings.plans;
    let longest = plans
        .names()
        .filter_map(|name| plans.get(name))
        .map(|plan| i64::from(plan.max_call_minutes) * 60_000)
        .max()
        .unwrap_or(0);
    let stale = match deps
        .store
        .outbound_to_check(
            now - ring,
            now - ring,
            now - longest - reconcile,
            deps.settings.outbound.dispatch_claim_size,
        )
        .await
    {
        Ok(stale) => stale,
        Err(error) => {
            tracing::warn!(%error, "listing outbound calls without news failed");
            return;
        }
    };
    // Dials whose engine died before Twilio answered (another node's too: a
    // dial in flight writes its outcome within the dial timeout): in doubt.
    let dial_timeout =
        i64::try_from(deps.settings.outbound.dial_timeout.as_millis()).unwrap_or(i64::MAX);
    match deps
        .store
        .orphaned_dials(
            now.saturating_sub(dial_timeout.saturating_add(reconcile)),
            deps.settings.outbound.dispatch_claim_size,
        )
        .await
    {
        Ok(orphans) => {
            for call in orphans {
                let Some(attempt) = call.attempt_id.clone() else {
                    continue;
                };
                tracing::warn!(outbound_id = %call.id, "a dial left unanswered by its engine; reconciling");
                advance(
                    deps,
                    &call,
                    &attempt,
                    OutboundStatus::DialUnknown,
                    Transition::default(),
                    None,
                )
                .await;
            }
        }
        Err(error) => tracing::warn!(%error, "listing orphaned dials failed"),
    }
    for call in stale {
        let (Some(attempt), Some(sid)) = (call.attempt_id.clone(), call.progress.call_sid.clone())
        else {
            continue;
        };
        match twilio.fetch_call(&sid).await {
            Ok(found) => {
                let answered_by = found.answered_by.map(answered_by_name);
                if let Some(next) = listed_disposition(found.status, answered_by) {
                    if next != call.status {
                        tracing::info!(outbound_id = %call.id, status = next.as_str(), "a status callback was missed; Twilio's status applied");
                        let change = Transition {
                            answered_by,
                            ..Transition::default()
                        };
                        advance(deps, &call, &attempt, next, change, None).await;
                    }
                }
            }
            Err(error) => {
                tracing::warn!(outbound_id = %call.id, %error, "fetching a call without news failed");
            }
        }
    }
}

/// Twilio's wire name of an `AnsweredBy` verdict.
fn answered_by_name(verdict: AnsweredBy) -> &'static str {
    match verdict {
        AnsweredBy::Human => "human",
        AnsweredBy::MachineStart => "machine_start",
        AnsweredBy::MachineEndBeep => "machine_end_beep",
        AnsweredBy::MachineEndSilence => "machine_end_silence",
        AnsweredBy::MachineEndOther => "machine_end_other",
        AnsweredBy::Fax => "fax",
        AnsweredBy::Unknown => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_keeps_their_from_number_and_an_empty_pool_has_none() {
        let pool: Vec<String> = ["+14155550100", "+14155550101", "+14155550102"]
            .map(String::from)
            .to_vec();
        let first = from_number(&pool, "u_ada").expect("a number");
        assert_eq!(from_number(&pool, "u_ada"), Some(first));
        let spread: std::collections::HashSet<_> = (0..30)
            .filter_map(|i| from_number(&pool, &format!("u_{i}")))
            .collect();
        assert!(spread.len() > 1, "users spread over the pool");
        assert_eq!(from_number(&[], "u_ada"), None);
    }
}

#[cfg(test)]
mod health_tests {
    use super::*;

    #[test]
    fn a_resting_number_is_skipped_for_the_next_healthy_one() {
        let pool: Vec<String> = ["+14155550100", "+14155550101", "+14155550102"]
            .map(String::from)
            .to_vec();
        let own = from_number(&pool, "u_ada").expect("a number").to_owned();
        let none = HashMap::new();
        assert_eq!(
            healthy_from_number(&pool, "u_ada", &none),
            Some(own.as_str())
        );
        let at = pool.iter().position(|n| *n == own).expect("in the pool");
        let next = &pool[(at + 1) % pool.len()];
        let rested = HashMap::from([(own.clone(), 1)]);
        assert_eq!(
            healthy_from_number(&pool, "u_ada", &rested),
            Some(next.as_str())
        );
        let all: HashMap<String, i64> = pool.iter().map(|n| (n.clone(), 1)).collect();
        assert_eq!(healthy_from_number(&pool, "u_ada", &all), None);
    }
}
