//! What an outbound call's progress means and who hears of it: Twilio's call
//! statuses mapped to dispositions (for the status callback and for
//! reconciliation), and the `call.status` event each status change enqueues
//! for the user's `callback_url`.

use jiff::Timestamp;
use serde_json::json;

use crate::outbound::clock::ClockHandle;
use crate::outbound::notify::{self, Event};
use crate::store::outbound::{OutboundCall, OutboundStatus};
use crate::store::Store;

/// The event kind of a status change.
pub const STATUS_EVENT: &str = "call.status";

/// The disposition Twilio's `CallStatus` means (`queued` and `initiated`: none,
/// the call is still being dialed); a `completed` call answered by a machine
/// (`AnsweredBy` `machine_*`) is `voicemail`.
pub fn disposition(call_status: &str, answered_by: Option<&str>) -> Option<OutboundStatus> {
    Some(match call_status {
        "ringing" => OutboundStatus::Ringing,
        "in-progress" | "answered" => OutboundStatus::InProgress,
        "completed" if answered_by.is_some_and(|a| a.starts_with("machine")) => {
            OutboundStatus::Voicemail
        }
        "completed" => OutboundStatus::Completed,
        "busy" => OutboundStatus::Busy,
        "no-answer" => OutboundStatus::NoAnswer,
        "failed" => OutboundStatus::Failed,
        "canceled" => OutboundStatus::Canceled,
        _ => return None,
    })
}

/// The `call.status` event of a change from `previous` to `call.status`:
/// `{"id","status","previous","at","reason"?,"answered_by"?}`.
pub fn status_event(previous: OutboundStatus, call: &OutboundCall) -> Event {
    let at = Timestamp::from_millisecond(call.updated_at)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let mut data = json!({
        "id": call.id.as_str(),
        "status": call.status.as_str(),
        "previous": previous.as_str(),
        "at": at,
    });
    if let Some(reason) = &call.progress.reason {
        data["reason"] = json!(reason);
    }
    if let Some(answered_by) = &call.progress.answered_by {
        data["answered_by"] = json!(answered_by);
    }
    Event {
        kind: STATUS_EVENT.to_owned(),
        data,
    }
}

/// Enqueues the `call.status` event of a change, when the call has a
/// `callback_url`. A failure is logged, never returned: the change stands
/// whether or not the user hears of it.
pub async fn announce(
    store: &Store,
    clock: &ClockHandle,
    previous: OutboundStatus,
    call: &OutboundCall,
) {
    let Some(url) = &call.callback_url else {
        return;
    };
    let event = status_event(previous, call);
    if let Err(error) = notify::enqueue(store, clock, &call.user_id, url, &event).await {
        tracing::warn!(
            outbound_id = %call.id,
            %error,
            status = call.status.as_str(),
            "a call.status event could not be enqueued"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilios_statuses_map_to_dispositions() {
        assert_eq!(disposition("queued", None), None);
        assert_eq!(disposition("initiated", None), None);
        assert_eq!(disposition("ringing", None), Some(OutboundStatus::Ringing));
        assert_eq!(
            disposition("in-progress", None),
            Some(OutboundStatus::InProgress)
        );
        assert_eq!(
            disposition("completed", Some("human")),
            Some(OutboundStatus::Completed)
        );
        assert_eq!(
            disposition("completed", Some("machine_end_beep")),
            Some(OutboundStatus::Voicemail)
        );
        assert_eq!(disposition("busy", None), Some(OutboundStatus::Busy));
        assert_eq!(
            disposition("no-answer", None),
            Some(OutboundStatus::NoAnswer)
        );
        assert_eq!(disposition("failed", None), Some(OutboundStatus::Failed));
        assert_eq!(
            disposition("canceled", None),
            Some(OutboundStatus::Canceled)
        );
        assert_eq!(disposition("bogus", None), None);
    }
}
