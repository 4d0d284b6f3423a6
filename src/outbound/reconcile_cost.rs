//! The reconciler: settles every outbound call that ended. A periodic task
//! ([`CostReconciler`], every `outbound.result_poll_secs`), "now" from the
//! engine's clock:
//!
//! 1. It takes terminal calls with `reconciled_at` unset — an answered one only
//!    once its after-call work is written (`analyzed_at`, by `ai::hooks`), or
//!    `outbound.price_wait_secs` after it ended if that never comes.
//! 2. Telephony: a call that connected (answered, with a CallSid, and not
//!    busy/no_answer/failed/canceled) is priced by Twilio: `GET
//!    Calls/{CallSid}.json` (`TwilioClient::fetch_call`); Twilio's `price` is a
//!    negative string (`"-0.0140"`: a charge) and stays `null` for a while after
//!    the call, so a call without one is asked again next round, and
//!    `price_wait_secs` after its end the engine's own count is kept instead
//!    (`source: "estimate_kept"`, shown as estimated). A call that never
//!    connected costs 0 on the line and is not fetched.
//! 3. `actual_cost_usd` = telephony + the realtime model + the reasoning model
//!    (the after-call work's amounts); `cost_detail` gains `telephony`; then in
//!    ONE transaction (`Store::settle_outbound`): the cost, `reconciled_at`, and,
//!    when the call has a `callback_url`, the `call.result` event (its `data`
//!    is the call's `GET /api/calls/{id}` view, `outbound::view`) with
//!    `result_sent_at`. The update only lands on a call not yet reconciled, so
//!    two engines sharing a database never both send a result.
//!
//! The monthly budget counts `COALESCE(actual_cost_usd, estimated_cost_usd)`:
//! reconciling releases what the estimate held beyond the actual cost.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::clock::ClockHandle;
use super::notify::{self, Event};
use super::view::{
    outbound_view, telephony_estimate_usd, PRICE_ESTIMATE_KEPT, PRICE_FROM_TWILIO,
    PRICE_NOT_CONNECTED,
};
use crate::config::{Pricing, Settings};
use crate::providers::twilio::TwilioClient;
use crate::store::outbound::{OutboundCall, OutboundStatus};
use crate::store::{Store, StoreError};

/// The event a user's endpoint gets once per call, with its final result.
pub const RESULT_EVENT: &str = "call.result";
/// Calls settled per round, at most.
const ROUND_SIZE: u32 = 100;

/// What the reconciler works with.
#[derive(Clone)]
pub struct ReconcileDeps {
    pub store: Store,
    pub clock: ClockHandle,
    /// `None`: no Twilio credentials; prices are never fetched (the engine's
    /// count is kept once `price_wait` has passed).
    pub twilio: Option<TwilioClient>,
    pub pricing: Arc<Pricing>,
    pub public_url: Arc<str>,
    pub price_wait: Duration,
}

impl ReconcileDeps {
    pub fn from_settings(
        settings: &Settings,
        store: Store,
        clock: ClockHandle,
        public_url: Arc<str>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            store,
            clock,
            twilio: TwilioClient::for_calls(settings)?,
            pricing: Arc::new(settings.pricing.clone()),
            public_url,
            price_wait: settings.outbound.price_wait,
        })
    }
}

/// The periodic task; stop it with [`CostReconciler::stop`].
pub struct CostReconciler {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl CostReconciler {
    pub fn spawn(deps: ReconcileDeps, every: Duration) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                if let Err(e) = reconcile_round(&deps).await {
                    tracing::warn!(error = %e, "a cost reconciliation round failed");
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stopped.changed() => return,
                }
            }
        });
        Self { stop, task }
    }

    /// Stops after the round in progress, if any.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// One round: settles what can be settled now; answers how many calls were.
pub async fn reconcile_round(deps: &ReconcileDeps) -> Result<usize, StoreError> {
    let now_ms = deps.clock.now().as_millisecond();
    let wait_ms = i64::try_from(deps.price_wait.as_millis()).unwrap_or(i64::MAX);
    let due = deps
        .store
        .outbound_to_settle(now_ms.saturating_sub(wait_ms), ROUND_SIZE)
        .await?;
    let mut settled = 0;
    for call in due {
        match settle(deps, &call, now_ms, wait_ms).await {
            Ok(true) => settled += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(outbound_id = %call.id, error = %e, "the call could not be settled")
            }
        }
    }
    Ok(settled)
}

/// Whether the line was ever connected (so Twilio charges for it).
fn connected(call: &OutboundCall) -> bool {
    let unanswered = matches!(
        call.status,
        OutboundStatus::Busy
            | OutboundStatus::NoAnswer
            | OutboundStatus::Failed
            | OutboundStatus::Canceled
            | OutboundStatus::NotDialedWindowClosed
    );
    !unanswered && call.progress.call_sid.is_some() && call.progress.answered_at.is_some()
}

/// The telephony part, or `None` to ask Twilio again next round.
async fn telephony(
    deps: &ReconcileDeps,
    call: &OutboundCall,
    now_ms: i64,
    wait_ms: i64,
) -> Option<Value> {
    if !connected(call) {
        return Some(json!({ "amount": 0.0, "source": PRICE_NOT_CONNECTED }));
    }
    let ended = call.progress.ended_at.unwrap_or(call.updated_at);
    let waited_enough = now_ms.saturating_sub(ended) >= wait_ms;
    let kept = |why: String| {
        json!({
            "amount": telephony_estimate_usd(&deps.pricing, call),
            "source": PRICE_ESTIMATE_KEPT,
            "why": why,
        })
    };
    let (Some(twilio), Some(sid)) = (&deps.twilio, &call.progress.call_sid) else {
        return waited_enough.then(|| kept("no Twilio credentials to fetch the price with".into()));
    };
    match twilio.fetch_call(sid).await {
        Ok(fetched) => match fetched.price {
            Some(price) => Some(json!({
                // Twilio writes a charge as a negative amount.
                "amount": price.abs(),
                "source": PRICE_FROM_TWILIO,
                "price": price,
                "price_unit": fetched.price_unit,
            })),
            None => waited_enough.then(|| kept("Twilio gave no price in time".into())),
        },
        Err(e) => {
            tracing::debug!(outbound_id = %call.id, error = %e, "Twilio's price is not known yet");
            waited_enough.then(|| kept(format!("Twilio's call could not be read: {e}")))
        }
    }
}

fn round6(amount: f64) -> f64 {
    (amount * 1e6).round() / 1e6
}

/// Settles one call, if its price is known (or waited for long enough).
async fn settle(
    deps: &ReconcileDeps,
    call: &OutboundCall,
    now_ms: i64,
    wait_ms: i64,
) -> Result<bool, StoreError> {
    let Some(telephony) = telephony(deps, call, now_ms, wait_ms).await else {
        return Ok(false);
    };
    let mut detail = call
        .progress
        .cost_detail
        .clone()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({ "currency": "USD" }));
    let part = |name: &str| detail[name]["amount"].as_f64().unwrap_or(0.0);
    let actual = round6(
        telephony["amount"].as_f64().unwrap_or(0.0)
            + part("realtime_model")
            + part("reasoning_model"),
    );
    detail["telephony"] = telephony;

    let mut settled = call.clone();
    settled.actual_cost_usd = Some(actual);
    settled.progress.cost_detail = Some(detail.clone());
    settled.progress.reconciled_at = Some(now_ms);
    let result = match &call.callback_url {
        Some(url) => {
            let view =
                outbound_view(&deps.store, &deps.pricing, &deps.public_url, &settled).await?;
            let event = Event {
                kind: RESULT_EVENT.into(),
                data: view,
            };
            Some(notify::delivery(&deps.clock, &call.user_id, url, &event))
        }
        None => None,
    };
    let done = deps
        .store
        .settle_outbound(&call.id, actual, &detail, now_ms, result.as_ref())
        .await?;
    if done {
        tracing::info!(
            outbound_id = %call.id,
            actual_cost_usd = actual,
            result_sent = result.is_some(),
            "outbound call reconciled"
        );
    }
    Ok(done)
}
