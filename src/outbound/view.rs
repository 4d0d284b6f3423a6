//! What a user is told about an outbound call: the JSON of
//! `GET /api/calls/{id}` for an outbound id, and the `data` of the
//! `call.result` event (the same JSON, built by [`outbound_view`]).
//!
//! An answered outbound call's engine call id IS its outbound id, so when the
//! call reached a CallActor its `calls` record (events, recording, times) and
//! transcript exist under the same id: their fields come first, then the
//! outbound ones (`direction: "outbound"`, `disposition`, `answered_by`,
//! `transcript`, `summary`, `task_outcome`, `consent`, `cost`, `reason`, the
//! times) on top.
//!
//! `cost` puts the submit-time estimate beside what the call actually cost,
//! part by part (telephony, the realtime model, the reasoning model); each
//! actual part is `"status": "estimated"` until the reconciler has written
//! `reconciled_at` (then `"actual"`, except a telephony price Twilio never gave:
//! that keeps the estimate, `"estimated"` with `"note": "twilio_price_unavailable"`).

use serde_json::{json, Map, Value};
use switchboard_actors::CallId;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::submit::telephony_per_min;
use crate::config::Pricing;
use crate::store::calls::CallView;
use crate::store::consent::ConsentRecord;
use crate::store::outbound::OutboundCall;
use crate::store::{Store, StoreError};

/// Milliseconds since the epoch as RFC 3339 (UTC, millisecond precision).
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// `cost_detail.telephony.source` values the reconciler writes.
pub const PRICE_FROM_TWILIO: &str = "twilio_price";
/// Twilio gave no price in time: the estimate is kept.
pub const PRICE_ESTIMATE_KEPT: &str = "estimate_kept";
/// The call never connected: nothing to pay for the line.
pub const PRICE_NOT_CONNECTED: &str = "not_connected";

const MS_PER_MINUTE: i64 = 60_000;

fn round6(amount: f64) -> f64 {
    (amount * 1e6).round() / 1e6
}

fn round2(amount: f64) -> f64 {
    (amount * 100.0).round() / 100.0
}

/// The JSON of a call's `calls` record, as `GET /api/calls/{id}` has always
/// shown it (an inbound call's whole answer).
pub fn call_record_json(public_url: &str, call: &CallView) -> Value {
    let events: Vec<_> = call
        .events
        .iter()
        .map(|e| {
            json!({
                "seq": e.seq,
                "at": rfc3339(e.at),
                "kind": e.kind,
                "agent_id": e.agent_id,
                "detail": e.detail,
            })
        })
        .collect();
    let recording_url = call
        .has_recording
        .then(|| format!("{public_url}/api/calls/{}/recording", call.id));
    json!({
        "id": call.id,
        "call_sid": call.call_sid,
        "direction": call.direction,
        "status": call.status,
        "outcome": call.outcome,
        "end_reason": call.end_reason,
        "agent_id": call.agent_id,
        "from": call.from,
        "to": call.to,
        "workspace": call.workspace,
        "started_at": rfc3339(call.started_at),
        "answered_at": call.answered_at.map(rfc3339),
        "ended_at": call.ended_at.map(rfc3339),
        "events": events,
        "recording_url": recording_url,
        "assistant_id": call.assistant_id,
        "summary": call.summary,
        "ai_outcome": call.ai_outcome,
        "cost": call.cost,
    })
}

/// The consent record as shown: the wording's version and hash, where and when
/// it was signed, and the attestation itself (each box affirmed, the signature).
pub fn consent_json(record: &ConsentRecord) -> Value {
    let mut attestation = Map::new();
    for box_name in &record.affirmed {
        attestation.insert(box_name.clone(), Value::Bool(true));
    }
    attestation.insert(
        "signature_full_name".into(),
        record.signature_full_name.clone().into(),
    );
    attestation.insert(
        "signature_organization".into(),
        record.signature_organization.clone().into(),
    );
    json!({
        "id": record.id.as_str(),
        "wording_version": record.wording_version,
        "wording_hash": record.wording_hash,
        "ip": record.ip,
        "user_agent": record.user_agent,
        "signed_at": rfc3339(record.created_at),
        "attestation": attestation,
    })
}

/// What the line cost by the engine's own count: the connected minutes (from
/// `in_progress` to the end, each started minute billed) at the destination's
/// rate; 0 for a call never answered.
pub fn telephony_estimate_usd(pricing: &Pricing, call: &OutboundCall) -> f64 {
    let progress = &call.progress;
    let (Some(answered), Some(ended)) = (progress.answered_at, progress.ended_at) else {
        return 0.0;
    };
    let ms = (ended - answered).max(0);
    let minutes = (ms + MS_PER_MINUTE - 1) / MS_PER_MINUTE;
    round6(minutes as f64 * telephony_per_min(pricing, &call.to))
}

/// An amount of `cost_detail` (`{"part": {"amount": …}}`), if written.
fn amount_at(detail: Option<&Value>, part: &str) -> Option<f64> {
    detail.and_then(|d| d[part]["amount"].as_f64())
}

/// The `cost` object: the estimate at submit beside the actual cost.
pub fn cost_json(pricing: &Pricing, call: &OutboundCall) -> Value {
    // The submit estimate (the plan's longest call at the telephony rate plus
    // the realtime model's expected rate), split between the two by their rates.
    let telephony_rate = telephony_per_min(pricing, &call.to);
    let both = telephony_rate + pricing.realtime_expected_per_min;
    let estimated_telephony = if both > 0.0 {
        round2(call.estimated_cost_usd * telephony_rate / both)
    } else {
        0.0
    };
    let estimated = json!({
        "telephony": estimated_telephony,
        "realtime_model": round2(call.estimated_cost_usd - estimated_telephony),
        "reasoning_model": 0.0,
        "total": call.estimated_cost_usd,
    });

    let detail = call.progress.cost_detail.as_ref();
    let reconciled = call.progress.reconciled_at.is_some();
    let settled = if reconciled { "actual" } else { "estimated" };
    let mut telephony = match detail.and_then(|d| d.get("telephony")) {
        Some(written) if reconciled => {
            let source = written["source"].as_str().unwrap_or_default();
            let mut part = json!({
                "amount": written["amount"].as_f64().unwrap_or(0.0),
                "status": if source == PRICE_ESTIMATE_KEPT { "estimated" } else { "actual" },
            });
            if source == PRICE_ESTIMATE_KEPT {
                part["note"] = "twilio_price_unavailable".into();
            }
            part
        }
        _ => json!({
            "amount": telephony_estimate_usd(pricing, call),
            "status": "estimated",
        }),
    };
    let never_connected = call.progress.answered_at.is_none() && call.status.is_terminal();
    if never_connected && telephony.get("note").is_none() {
        telephony["note"] = PRICE_NOT_CONNECTED.into();
    }
    let model_part = |part: &str| {
        // A call that never connected used no model.
        let amount = amount_at(detail, part).or(never_connected.then_some(0.0));
        json!({ "amount": amount, "status": settled })
    };
    let realtime = model_part("realtime_model");
    let reasoning = model_part("reasoning_model");
    let total = call.actual_cost_usd.unwrap_or_else(|| {
        round6(
            [&telephony, &realtime, &reasoning]
                .iter()
                .filter_map(|p| p["amount"].as_f64())
                .sum(),
        )
    });
    json!({
        "currency": "USD",
        "estimated": estimated,
        "actual": {
            "telephony": telephony,
            "realtime_model": realtime,
            "reasoning_model": reasoning,
            "total": total,
            "status": settled,
        },
        "detail": detail,
    })
}

/// The outbound call as a user sees it (see the module doc): what
/// `GET /api/calls/{id}` answers and `call.result` carries.
pub async fn outbound_view(
    store: &Store,
    pricing: &Pricing,
    public_url: &str,
    call: &OutboundCall,
) -> Result<Value, StoreError> {
    let call_id = CallId::parse(call.id.as_str()).ok();
    let record = match &call_id {
        Some(id) => store.get_call(id).await?,
        None => None,
    };
    let turns = match (&call_id, &record) {
        (Some(id), Some(_)) => store.turns(id).await?,
        _ => Vec::new(),
    };
    let consent = store.get_consent(&call.consent_id).await?;

    let mut view = match &record {
        Some(record) => call_record_json(public_url, record),
        None => json!({}),
    };
    let progress = &call.progress;
    let transcript: Vec<_> = turns
        .iter()
        .map(|t| json!({ "seq": t.seq, "at": rfc3339(t.at), "role": t.role, "text": t.text }))
        .collect();
    let (task_outcome, task_outcome_error) = match &progress.task_outcome {
        Some(outcome) if outcome.get("unavailable").is_some() => {
            (Value::Null, outcome["unavailable"].clone())
        }
        Some(outcome) => (outcome.clone(), Value::Null),
        None => (Value::Null, Value::Null),
    };
    let fields = json!({
        "id": call.id.as_str(),
        "direction": "outbound",
        "status": record.as_ref().map_or(call.status.as_str(), |r| r.status.as_str()),
        "disposition": call.status.as_str(),
        "user_id": call.user_id.as_str(),
        "workspace": call.workspace.as_str(),
        "to": call.to.as_str(),
        "from": progress.from.clone().or_else(|| record.as_ref().map(|r| r.from.clone())),
        "contact_name": call.contact_name,
        "contact_company": call.contact_company,
        "purpose": call.purpose,
        "objective": call.objective,
        "assistant_id": call.assistant_id,
        "callback_url": call.callback_url,
        "batch_id": progress.batch_id,
        "call_sid": progress.call_sid.clone().or_else(|| record.as_ref().and_then(|r| r.call_sid.clone())),
        "attempts": progress.attempts,
        "answered_by": progress.answered_by,
        "reason": progress.reason,
        "deferred": call.deferred,
        "transcript": transcript,
        "summary": progress.summary,
        "task_outcome": task_outcome,
        "task_outcome_error": task_outcome_error,
        "consent": consent.as_ref().map(consent_json),
        "cost": cost_json(pricing, call),
        "created_at": rfc3339(call.created_at),
        "scheduled_for": rfc3339(call.run_at),
        "dialed_at": progress.dialed_at.map(rfc3339),
        "answered_at": progress.answered_at.map(rfc3339),
        "ended_at": progress.ended_at.map(rfc3339),
        "analyzed_at": progress.analyzed_at.map(rfc3339),
        "reconciled_at": progress.reconciled_at.map(rfc3339),
    });
    if let (Some(view), Value::Object(mut fields)) = (view.as_object_mut(), fields) {
        // Times the outbound row does not know yet (no status callback came)
        // leave the call record's in place.
        for time in ["answered_at", "ended_at"] {
            if fields.get(time).is_some_and(Value::is_null) && view.contains_key(time) {
                fields.remove(time);
            }
        }
        view.extend(fields);
    }
    Ok(view)
}
