//! Recording an outbound call after its notice (issue 12, item 6). When the
//! plan is [`RecordingPlan::AfterNotice`](crate::domain::recording::RecordingPlan)
//! (a callee in an all-party-consent state, or in a state not known), the
//! outbound assistant's relay calls the [`starter`] once the disclosure — which
//! then says the call is recorded — has played to its end (Twilio echoed the
//! marks after its audio). The starter asks Twilio to record the call from now
//! on (`TwilioClient::start_recording`), by the call's `CallSid` on the outbound
//! row.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::providers::twilio::TwilioClient;
use crate::store::outbound::OutboundId;
use crate::store::Store;

/// Starts the recording of an outbound call: the recording's sid, or why not.
pub type StartRecording =
    Arc<dyn Fn(OutboundId) -> BoxFuture<'static, Result<String, String>> + Send + Sync>;

/// The starter of the engine's Twilio account.
pub fn starter(twilio: TwilioClient, store: Store) -> StartRecording {
    Arc::new(move |id: OutboundId| {
        let (twilio, store) = (twilio.clone(), store.clone());
        Box::pin(async move {
            let call = store
                .get_outbound(&id)
                .await
                .map_err(|e| format!("outbound call {id} could not be read: {e}"))?
                .ok_or_else(|| format!("outbound call {id} does not exist"))?;
            let call_sid = call
                .progress
                .call_sid
                .ok_or_else(|| format!("outbound call {id} has no Twilio CallSid"))?;
            let recording = twilio
                .start_recording(&call_sid)
                .await
                .map_err(|e| format!("Twilio did not start the recording of {call_sid}: {e}"))?;
            Ok(recording.sid)
        })
    })
}
