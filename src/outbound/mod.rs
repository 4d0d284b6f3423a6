//! Outbound calls on a user's behalf (issue 11): the parts that decide whether,
//! and when, a call may be placed, and how the user hears what happened.
//!
//! # Module map
//!
//! - [`batch`]: the body of `POST /api/calls/outbound/batch` (JSON, or CSV with
//!   the other fields in the query string), its window intersected with
//!   calling hours, and the objective template's placeholders.
//! - [`clock`]: the injected clock the gates read "now" from (the system clock in
//!   the engine, a [`clock::ManualClock`] in tests).
//! - [`zones`]: the callee's time zones from the number (libphonenumber's prefix →
//!   time-zone map, shipped in `assets/phone_timezones.txt`).
//! - [`hours`]: the calling-hours gate: the configured local window intersected
//!   across the callee's zones, open now or deferred to the next allowed instant.
//! - [`request`]: the body of `POST /api/calls/outbound`, parsed once into an
//!   `OutboundRequest` (the number, the purpose, the objective, the signed
//!   attestation, the schedule…); a refusal names its field.
//! - [`consent`]: the attestation's versioned wording and its hash, the consent
//!   record made from a signed attestation (stored by `store::consent`), and the
//!   client address it notes.
//! - [`notify`]: callbacks to the user: events enqueued in the outbox
//!   (`store::deliveries`), signed and posted to the user's `callback_url` by the
//!   delivery worker, retried with backoff until acknowledged (2xx).
//! - [`submit`]: what else runs at submit: the cost estimate, the budget's month,
//!   the per-user burst limiter (`governor`). The gates' order is in
//!   `api::outbound`; the quotas and the budget are counted in the transaction
//!   that stores the call (`store::outbound`).
//! - [`reconcile_cost`]: the reconciler: settles each call that ended (Twilio's
//!   price, the actual cost, `reconciled_at`) and sends its one `call.result`
//!   event.
//! - [`view`]: an outbound call as its user sees it: the JSON of
//!   `GET /api/calls/{id}` and of the `call.result` event (disposition,
//!   transcript, summary, task outcome, consent record, cost estimated and
//!   actual).
//! - [`dispatch`]: the `OutboundDispatcher` actor: claims due calls, runs the
//!   gates again, picks the From number, dials through Twilio's Calls resource,
//!   reconciles dials whose outcome is unknown, and recovers at start-up.
//! - [`progress`]: Twilio's call statuses as dispositions, and the
//!   `call.status` event each status change enqueues.

pub mod batch;
pub mod clock;
pub mod consent;
pub mod dispatch;
pub mod hours;
pub mod notify;
pub mod progress;
pub mod reconcile_cost;
pub mod recording;
pub mod request;
pub mod submit;
pub mod view;
pub mod zones;
