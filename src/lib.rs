//! switchboard: an actor-based real-time call engine. Calls arrive from Twilio, ring
//! every available agent at once, go to the first who answers, and are bridged
//! through the engine (media-anchored); the rest reach voicemail.
//!
//! # Layout
//!
//! - [`engine`]: the shared state every adapter reaches ([`engine::Engine`]).
//! - [`startup`]: builds the engine (store, journal, actors) and the HTTP server.
//! - [`error`], [`auth`]: errors as HTTP shows them; tokens and the admin bearer.
//! - [`config`]: typed settings from `config/default.toml` and the environment.
//! - [`cluster`]: cluster mode (`REDIS_URL`): the Redis pool, the shared secret's
//!   verifier, membership and its heartbeat.
//! - [`twilio`]: webhooks, signatures, TwiML and the Media Streams socket.
//! - [`ws`]: the agent softphone socket and the socket writer.
//! - [`api`]: the REST API (the admin, and users with their API key): thin
//!   handlers over the services ([`numbers`], [`users`]).
//! - [`ai`]: AI voice agents: assistants, the cost of a call, the post-call summary.
//! - [`store`]: sqlx storage (SQLite or PostgreSQL) and the journal writer.
//! - [`domain`]: types parsed at the edge (phone numbers), URL pieces.
//! - [`health`], [`metrics`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`openapi`]: `/api/openapi.json`, the OpenAPI 3.1 description utoipa
//!   generates from the handlers and their types.
//! - [`alerts`]: alert rules over the engine's state, their firing and resolved
//!   events to webhooks and e-mail, their state for `/metrics`.
//! - [`web`]: the web pages (sign-in, softphone, supervisor console), embedded.
//! - [`providers`]: REST clients of Twilio, Vapi and Retell (phone numbers).
//! - [`numbers`]: the phone-number feature: the pool and its sync, assignment with
//!   its compensation, live routes, cut-over and rollback, the directory (what
//!   `/api/directory` serves), its checks and its JSON.
//! - [`outbound`]: outbound calls on a user's behalf: the request, parsed once, the
//!   consent record of its signed attestation, the injected clock, the callee's time
//!   zones and the calling-hours gate.
//! - [`safety`]: outbound safety: the word categories screened before a call and
//!   after it, the flags that come of them.
//! - [`users`]: users (plans, effective limits, API keys), who ask for outbound
//!   calls; the do-not-call list is in [`store::dnc`].
//! - [`missed_call`]: the missed-call text (a caller who hung up while ringing or
//!   left a voicemail is texted from the number called) and its status callback.
//! - [`cli`]: the command line; `switchboard numbers` is a client of a running
//!   engine that reads only [`numbers::model`].
//!
//! The actors themselves live in the `switchboard-actors` crate; the Twilio request
//! signature in `switchboard-wire`, shared with the load generator, which is its own
//! crate and binary (`loadtest/`, `switchboard-loadtest`, run by
//! `switchboard loadtest` through [`cli::exec_loadtest`]) and never imports this one.

pub mod ai;
pub mod alerts;
pub mod api;
pub mod auth;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod domain;
pub mod engine;
pub mod error;
pub mod health;
pub mod metrics;
pub mod missed_call;
pub mod net;
pub mod numbers;
pub mod openapi;
pub mod outbound;
pub mod providers;
pub mod safety;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod twilio;
pub mod users;
pub mod web;
pub mod ws;
