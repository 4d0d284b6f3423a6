//! The missed-call text (issue 14): a caller who hung up while ringing, or who
//! left a voicemail, gets a text from the number they called, through Twilio's
//! Messages API (`providers::twilio::messages`).
//!
//! # Layout
//!
//! - this module: [`TextingHooks`], the engine's [`CallHooks`] wrapped so that
//!   every ended call is also offered to the [`Texter`] — the call's end is the
//!   one place that knows its outcome (`abandoned` by the caller's hang-up, or
//!   `voicemail`), and it is reached after the call's final record is journaled,
//!   so nothing here can delay or lose that record.
//! - [`send`]: the [`Texter`] and its worker: a bounded queue drained by tasks
//!   (at most `missed_call_text.concurrency` at once), each checking the global
//!   do-not-call list, claiming the day's text (`Store::claim_missed_call_text`,
//!   atomic: once per caller, number and UTC day), and sending it with a timeout
//!   and bounded retries (5xx, timeouts, no connection; never a 4xx).
//! - [`status`]: `POST /twilio/missed-call-text/status?call={call_id}`, the
//!   text's `StatusCallback`, signature-checked like every Twilio webhook.
//!
//! What happens is written in the call's trail, after its `ended` event
//! (`JournalEntry::AfterEvent`): `missed_call_text` once (`status` `queued`,
//! `failed`, `skipped` with a `reason`, or `dropped`), then one
//! `missed_call_text_status` per status callback.

pub mod send;
pub mod status;

use std::sync::Arc;

use switchboard_actors::assistant::{AssistantLink, AssistantSession, CallHooks, CallReport};

pub use send::Texter;

/// The engine's hooks, with the missed-call text after every call.
pub struct TextingHooks {
    pub inner: Arc<dyn CallHooks>,
    /// `None` while `[missed_call_text]` is off.
    pub texter: Option<Texter>,
}

impl CallHooks for TextingHooks {
    fn start_assistant(&self, session: AssistantSession) -> AssistantLink {
        self.inner.start_assistant(session)
    }

    fn call_ended(&self, report: CallReport) {
        if let Some(texter) = &self.texter {
            texter.call_ended(&report);
        }
        self.inner.call_ended(report);
    }
}
